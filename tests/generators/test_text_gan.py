"""SeqGAN on real MovieLens titles: one policy-gradient step moves the generator towards what the
discriminator rewards, ``pretrained=`` starts it from a language model's weights, a full fit records
what it does to likelihood, and save/load round-trips."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.models.generators import Generator
from mmwork.models.generators.rnn_lm import RecurrentNet, RNNLanguageModel, continue_sequences
from mmwork.models.data.text import BOS, EOS, PAD, Tokenizer
from mmwork.models.generators import recurrent
from mmwork.models.generators.text_gan import SeqGAN

SMALL = dict(embedding_dim=32, hidden_dim=64, batch_size=32, device="cpu")
D_SMALL = dict(d_embedding_dim=16, d_filters=16, d_widths=(1, 2, 3))


@pytest.fixture(scope="module")
def titles(title_corpus):
    """200 training and 40 validation titles (split by item), word-tokenised, with their genres + year."""
    corpus = title_corpus
    train = np.flatnonzero(corpus.split == "train")[:200]
    valid = np.flatnonzero(corpus.split == "valid")[:40]
    tokenizer = Tokenizer("word", vocab_size=5000, min_frequency=1, lowercase=True).fit(
        [corpus.titles[i] for i in train])
    ids = tokenizer.encode(corpus.titles)
    return (tokenizer, [ids[i] for i in train], [ids[i] for i in valid], corpus.conditions[train],
            corpus.conditions[valid])


@pytest.fixture(scope="module")
def two_titles(titles):
    """A language model that writes "Star Wars (1977)" and "Fargo (1996)" about equally often."""
    tokenizer = titles[0]
    star_wars, fargo = tokenizer.encode(["Star Wars (1977)", "Fargo (1996)"])
    lm = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, epochs=25, lr=1e-2, dropout=0.0, **SMALL)
    lm.fit([star_wars, fargo] * 32)
    return lm, star_wars, fargo


def _equal_nets(a, b) -> bool:
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_one_adversarial_step_raises_what_the_discriminator_rewards(two_titles):
    lm, star_wars, fargo = two_titles
    before, _ = lm.log_likelihood([star_wars, fargo])
    assert (before < 1.2).all()  # the pre-trained generator writes each with probability > 0.3
    # real data: Star Wars only; the discriminator learns that Fargo comes from the generator
    model = SeqGAN(vocab_size=lm.config.vocab_size, dropout=0.0, epochs=1, g_steps=1, d_steps=0, d_pretrain_steps=40,
                   d_lr=1e-2, g_lr=1e-2, g_batch=32, rollouts=2, **D_SMALL, **SMALL)
    model.fit([star_wars] * 32, pretrained=lm)
    real, generated = model.discriminate([star_wars, fargo])
    assert real > 0.5 > generated, (real, generated)
    assert not _equal_nets(model, lm)
    after, _ = model.log_likelihood([star_wars, fargo])
    assert after[0] < before[0] - 0.01 and after[1] > before[1] + 0.01, (before, after)  # NLL: lower is likelier
    row = model.history_[0]
    assert row["epoch"] == 1 and row["d_accuracy"] is None and 0 < row["reward"] < 1
    assert [r["phase"] for r in model.pretrain_history_] == ["mle"] * len(lm.history_) + ["discriminator"]
    assert model.pretrain_history_[-1]["d_accuracy"] > 0.5


def test_rewards_of_finished_sequences_are_the_discriminators_scores(two_titles):
    lm, star_wars, fargo = two_titles
    model = SeqGAN(vocab_size=lm.config.vocab_size, epochs=1, g_steps=0, d_steps=0, d_pretrain_steps=5,
                   **D_SMALL, **SMALL).fit([star_wars] * 8, pretrained=lm)
    generator = torch.Generator().manual_seed(0)
    bos = torch.full((6,), BOS)
    y, states = continue_sequences(model.net_, bos, None, None, generator, model.config.max_len, keep_states=True)
    rewards = model._rewards(y, states, None, generator)
    lengths = (y != PAD).sum(1)
    drawn = [[t for t in row if t > EOS] for row in y.tolist()]
    np.testing.assert_allclose(rewards[torch.arange(6), lengths - 1].numpy(), model.discriminate(drawn), rtol=1e-6)
    assert ((rewards > 0) == (y != PAD)).all()  # a reward for every drawn token, none after EOS



def test_rollouts_run_as_one_batch_and_complete_each_prefix(two_titles, monkeypatch):
    """All prefixes x rollouts go through the network together (one call per drawn position, not one
    per prefix), and each completion continues its own prefix from its stored state: with greedy
    drawing, every reward equals the discriminator's score of that prefix completed on its own."""
    lm, star_wars, fargo = two_titles
    model = SeqGAN(vocab_size=lm.config.vocab_size, epochs=1, g_steps=0, d_steps=0, d_pretrain_steps=5, rollouts=3,
                   **D_SMALL, **SMALL).fit([star_wars] * 8, pretrained=lm)
    generator = torch.Generator().manual_seed(0)
    y, states = continue_sequences(model.net_, torch.full((16,), BOS), None, None, generator, model.config.max_len,
                                   keep_states=True)
    monkeypatch.setattr(recurrent, "draw", lambda logits, *args, **kwargs: logits.argmax(-1))
    batches, forward = [], RecurrentNet.forward

    def recording(net, tokens, *args, **kwargs):
        batches.append(len(tokens))
        return forward(net, tokens, *args, **kwargs)

    monkeypatch.setattr(RecurrentNet, "forward", recording)
    rewards = model._rewards(y, states, None, generator)
    monkeypatch.setattr(RecurrentNet, "forward", forward)
    lengths = (y != PAD).sum(1)
    assert len(batches) <= model.config.max_len  # the sequences' scores aside, one batch per step
    assert batches[0] == 3 * int((lengths - 1).sum())  # every prefix that goes on, 3 times
    with torch.no_grad():
        for i in range(16):
            for t in range(1, int(lengths[i])):
                _, state = model.net_(torch.cat([torch.tensor([BOS]), y[i, :t - 1]])[None])
                rest, _ = continue_sequences(model.net_, y[i, t - 1:t], state, None, generator,
                                             model.config.max_len - t)
                alone = model._real(torch.cat([y[i:i + 1, :t], rest], 1), None)
                assert float(rewards[i, t - 1]) == pytest.approx(float(alone), abs=1e-5), (i, t)


def test_continue_sequences_stops_each_row_at_its_limit(two_titles):
    lm = two_titles[0]
    limit = torch.tensor([1, 2, 3, 50])
    y, _ = continue_sequences(lm.net_, torch.full((4,), BOS), None, None, torch.Generator().manual_seed(1), 50,
                              limit=limit)
    lengths = (y != PAD).sum(1)
    assert (lengths <= limit).all() and lengths[:3].tolist() == [1, 2, 3]


def test_the_policy_gradient_scores_the_policy_that_sampled(titles, monkeypatch):
    """REINFORCE needs log G of the policy that drew the sequences. They are drawn with dropout off,
    so the log-probabilities of the update must be too (issue 19): with dropout 0.5 they equal the
    model's own likelihood of the drawn sequences, and the network never runs in training mode during
    the adversarial epochs."""
    tokenizer, train, _, _, _ = titles
    lm = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, epochs=1, dropout=0.5, **SMALL).fit(train)
    model = SeqGAN(vocab_size=tokenizer.vocab_size_, dropout=0.5, epochs=2, g_steps=1, d_steps=1, d_pretrain_steps=1,
                   g_batch=8, rollouts=1, **D_SMALL, **SMALL)
    modes, forward = [], RecurrentNet.forward

    def recording(net, *args, **kwargs):
        modes.append(net.training)
        return forward(net, *args, **kwargs)

    monkeypatch.setattr(RecurrentNet, "forward", recording)
    model.fit(train, pretrained=lm)  # pretrained: every forward pass is an adversarial one
    monkeypatch.undo()
    assert modes and not any(modes)  # sampling, rollouts and the policy's log-probabilities: all in eval mode
    # the log-probabilities the update uses are those of the sampling policy (dropout would make them random)
    y, _ = continue_sequences(model.net_, torch.full((8,), BOS), None, None, torch.Generator().manual_seed(3),
                              model.config.max_len)
    ended = (y == EOS).any(1)
    y = y[ended]
    log_p = model._policy_log_probs(y, None)
    assert log_p.requires_grad
    drawn = [[t for t in row if t > EOS] for row in y.tolist()]
    nll, _ = model.log_likelihood(drawn)
    np.testing.assert_allclose(-log_p.detach().double().sum(1).numpy(), nll, rtol=1e-5)
    again = model._policy_log_probs(y, None)
    assert torch.equal(log_p, again)  # no dropout draw: the same policy every time


def test_pretrained_copies_the_language_models_weights(two_titles):
    lm, star_wars, fargo = two_titles
    model = SeqGAN(vocab_size=lm.config.vocab_size, epochs=1, g_steps=0, d_steps=1, d_pretrain_steps=2,
                   **D_SMALL, **SMALL).fit([star_wars, fargo] * 4, pretrained=lm)
    assert _equal_nets(model, lm)  # no generator step: the weights are the language model's
    assert model.sample(10, seed=3) == lm.sample(10, seed=3)
    assert model.perplexity([star_wars]) == lm.perplexity([star_wars])
    assert [{k: v for k, v in r.items() if k != "phase"} for r in model.pretrain_history_[:-1]] == lm.history_


def test_pretrained_must_fit_the_network(two_titles, titles):
    lm, star_wars, _ = two_titles
    other = SeqGAN(vocab_size=lm.config.vocab_size, **dict(SMALL, hidden_dim=32), **D_SMALL)
    with pytest.raises(MmworkError, match=r"pretrained has another network: hidden_dim=64 there, 32 here; make") as err:
        other.fit([star_wars], pretrained=lm)
    assert "\n" not in str(err.value) and "net_" not in other.__dict__
    with pytest.raises(MmworkError, match=r"rnn-lm is not fitted"):
        SeqGAN(vocab_size=lm.config.vocab_size, **SMALL, **D_SMALL).fit(
            [star_wars], pretrained=RNNLanguageModel(vocab_size=lm.config.vocab_size, **SMALL))
    with pytest.raises(MmworkError, match=r"pretrained must be a fitted RNNLanguageModel, got str"):
        SeqGAN(vocab_size=lm.config.vocab_size, **SMALL, **D_SMALL).fit([star_wars], pretrained="lm")


@pytest.fixture(scope="module")
def fitted(titles):
    """A conditional SeqGAN: 3 maximum-likelihood epochs, then 2 adversarial ones, on 200 titles."""
    tokenizer, train, valid, c_train, c_valid = titles
    return SeqGAN(vocab_size=tokenizer.vocab_size_, condition_dim=c_train.shape[1], pretrain_epochs=3, epochs=2,
                  lr=5e-3, d_pretrain_steps=5, d_steps=2, g_batch=16, rollouts=2, max_len=16, **D_SMALL,
                  **SMALL).fit(train, c_train, valid=(valid, c_valid))


def test_full_fit_records_both_phases_and_the_likelihood(fitted, titles):
    _, _, valid, _, c_valid = titles
    mle = [r for r in fitted.pretrain_history_ if r["phase"] == "mle"]
    assert len(mle) == 3 and mle[-1]["valid_loss"] < mle[0]["valid_loss"]
    assert fitted.pretrain_history_[-1]["phase"] == "discriminator"
    assert [r["epoch"] for r in fitted.history_] == [1, 2]
    for row in fitted.history_:
        assert set(row) == {"epoch", "loss", "g_loss", "reward", "d_loss", "d_accuracy", "seconds", "valid_loss"}
        assert 0 <= row["d_accuracy"] <= 1 and 0 < row["reward"] < 1
    best = fitted.history_[fitted.best_epoch_ - 1]["valid_loss"]
    assert np.log(fitted.perplexity(valid, c_valid)) == pytest.approx(best, rel=1e-6)
    assert all(len(s) <= 16 for s in fitted.sample(20, c_valid[:20], seed=0))


def test_fit_repeats_for_a_seed_without_touching_global_generators(titles):
    tokenizer, train, _, _, _ = titles
    params = dict(vocab_size=tokenizer.vocab_size_, pretrain_epochs=1, epochs=1, d_pretrain_steps=2, d_steps=1,
                  g_batch=8, rollouts=2, max_len=12, **D_SMALL, **SMALL)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first, again = SeqGAN(**params).fit(train[:64]), SeqGAN(**params).fit(train[:64])
    assert all(torch.equal(a, b) for a, b in zip(first._tensors().values(), again._tensors().values()))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


def test_save_and_load_round_trip(fitted, titles, tmp_path):
    _, _, valid, _, c_valid = titles
    fitted.save(tmp_path / "seqgan")
    loaded = Generator.load(tmp_path / "seqgan", device="cpu")
    assert type(loaded) is SeqGAN and loaded.config == fitted.config and loaded.history_ == fitted.history_
    assert loaded.sample(8, c_valid[0], seed=1, temperature=0.7) == fitted.sample(8, c_valid[0], seed=1,
                                                                                  temperature=0.7)
    assert loaded.perplexity(valid, c_valid) == fitted.perplexity(valid, c_valid)
    np.testing.assert_array_equal(loaded.discriminate(valid, c_valid), fitted.discriminate(valid, c_valid))


def test_bad_parameters_fail_at_construction_or_before_compute(fitted):
    with pytest.raises(MmworkError, match=r"rollouts: Input should be greater than 0"):
        SeqGAN(vocab_size=100, rollouts=0)
    with pytest.raises(MmworkError, match=r"widest discriminator filter \(80 tokens\) is longer than max_len \(64\)"):
        SeqGAN(vocab_size=100, d_widths=(2, 80))
    with pytest.raises(MmworkError, match=r"d_widths: .*at least 1 item"):
        SeqGAN(vocab_size=100, d_widths=())
    with pytest.raises(MmworkError, match=r"top_p must lie in \(0, 1\]"):
        fitted.sample(3, np.zeros(20), top_p=0)


def test_every_config_field_is_documented():
    from mmwork.models.generators.text_gan import SeqGANConfig
    assert all(SeqGANConfig.describe().values())
