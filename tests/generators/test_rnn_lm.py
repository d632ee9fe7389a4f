"""The recurrent language model on real MovieLens titles: sampling repeats for a seed and its filters
reduce to greedy decoding where they should, perplexity equals its known value on known
distributions, the condition steers the samples, save/load round-trips, and bad input fails with one
line before any compute."""
import math

import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.models.generators import Generator
from mmwork.models.generators.rnn_lm import RecurrentNet, RNNLanguageModel
from mmwork.models.data.text import BOS, EOS, Tokenizer

SMALL = dict(embedding_dim=32, hidden_dim=64, batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def titles(title_corpus):
    """200 training and 40 validation titles of MovieLens-100K (split by item), word-tokenised."""
    corpus = title_corpus
    train = [t for t, s in zip(corpus.titles, corpus.split) if s == "train"][:200]
    valid = [t for t, s in zip(corpus.titles, corpus.split) if s == "valid"][:40]
    tokenizer = Tokenizer("word", vocab_size=5000, min_frequency=1, lowercase=True).fit(train)
    return tokenizer, tokenizer.encode(train), tokenizer.encode(valid)


@pytest.fixture(scope="module")
def fitted(titles):
    tokenizer, train, valid = titles
    return RNNLanguageModel(vocab_size=tokenizer.vocab_size_, epochs=6, lr=5e-3, **SMALL).fit(train, valid=valid)


def greedy(model: RNNLanguageModel, steps: int, condition=None) -> list[int]:
    """Greedy decoding written out step by step: the reference the sampling filters must reach."""
    token, state, out = BOS, None, []
    c = None if condition is None else torch.as_tensor(condition, dtype=torch.float32)[None]
    with torch.no_grad():
        for _ in range(steps):
            logits, state = model.net_(torch.tensor([[token]]), c, state)
            token = int(logits[0, -1].argmax())
            if token == EOS:
                break
            out.append(token)
    return out


def test_training_lowers_the_loss_and_valid_loss_is_the_held_out_nll(fitted, titles):
    _, _, valid = titles
    history = fitted.history_
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    assert all(h["tokens_per_s"] > 0 for h in history)
    best = history[fitted.best_epoch_ - 1]["valid_loss"]
    assert math.log(fitted.perplexity(valid)) == pytest.approx(best, rel=1e-6)


def test_sampling_repeats_for_a_seed_and_differs_across_seeds(fitted):
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = fitted.sample(20, seed=3)
    assert fitted.sample(20, seed=3) == first
    assert fitted.sample(20, seed=4) != first
    assert len(first) == 20 and all(isinstance(t, int) and t > EOS for row in first for t in row)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


def test_filters_reduce_to_greedy_decoding(fitted):
    reference = greedy(fitted, 64)
    assert reference, "the greedy title is not empty"
    assert fitted.sample(5, seed=1, top_k=1) == [reference] * 5
    assert fitted.sample(5, seed=1, top_p=1e-6) == [reference] * 5
    share = [np.mean([s == reference for s in fitted.sample(40, seed=2, temperature=t)]) for t in (1.0, 0.3, 1e-4)]
    assert share[0] < 0.5 and share[0] <= share[1] <= share[2] == 1.0, share  # colder: greedier


def test_top_k_and_top_p_only_cut_the_tail(fitted):
    plain = fitted.sample(60, seed=5)
    assert fitted.sample(60, seed=5, top_k=fitted.config.vocab_size) == plain  # keeping everything changes nothing
    assert fitted.sample(60, seed=5, top_p=1.0) == plain
    narrow = {t for row in fitted.sample(60, seed=5, top_k=2) for t in row}
    assert len(narrow) < len({t for row in plain for t in row})


def test_max_len_is_respected(fitted):
    short = fitted.sample(30, seed=0, max_len=2)
    assert max(map(len, short)) == 2 and all(1 <= len(s) <= 2 for s in short)
    assert all(len(s) <= fitted.config.max_len for s in fitted.sample(30, seed=0))


def test_uniform_model_has_perplexity_of_the_tokens_it_can_write(titles):
    tokenizer, train, valid = titles
    model = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, epochs=1, **SMALL).fit(train[:32])
    with torch.no_grad():
        model.net_.out.weight.zero_(), model.net_.out.bias.zero_()
    nll, counts = model.log_likelihood(valid)
    writable = tokenizer.vocab_size_ - 2  # every id but PAD and BOS
    assert counts.tolist() == [len(s) + 1 for s in valid]
    np.testing.assert_allclose(nll, counts * math.log(writable), rtol=1e-6)  # float32 per token
    assert model.perplexity(valid) == pytest.approx(writable, rel=1e-6)


def test_trained_perplexity_reaches_the_corpus_entropy(titles):
    tokenizer, _, _ = titles
    star_wars, fargo = tokenizer.encode(["Star Wars (1977)", "Fargo (1996)"])
    model = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, epochs=25, lr=1e-2, dropout=0.0, **SMALL)
    model.fit([star_wars] * 32)  # one title: every token is certain
    assert 1.0 < model.perplexity([star_wars]) < 1.05
    model.fit([star_wars, fargo] * 32)  # two titles, equally often: one fair choice (log 2 nats) per pair
    expected = math.exp(2 * math.log(2) / (len(star_wars) + len(fargo) + 2))
    assert model.perplexity([star_wars, fargo]) == pytest.approx(expected, rel=0.02)
    assert model.perplexity([star_wars]) != pytest.approx(model.perplexity([fargo]), rel=1e-3)  # lengths differ


def test_batches_do_not_leak_between_sequences(fitted, titles):
    _, _, valid = titles
    together, counts = fitted.log_likelihood(valid[:12])
    alone = np.concatenate([fitted.log_likelihood([s])[0] for s in valid[:12]])
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    assert counts.tolist() == [len(s) + 1 for s in valid[:12]]


@pytest.fixture(scope="module")
def genre_titles(title_corpus):
    """Titles of single-genre Comedy, Drama and Horror films, each led by its genre's word; the
    condition is the film's real genres + year vector, so it determines the first token."""
    corpus = title_corpus
    columns = {g: corpus.columns.index(g) for g in ("Comedy", "Drama", "Horror")}
    genre_sums = corpus.conditions[:, :-1].sum(1)
    texts, rows = [], []
    for genre, col in columns.items():
        picked = ((corpus.conditions[:, col] == 1) & (genre_sums == 1)).nonzero().squeeze(1)[:60].tolist()
        texts += [f"{genre} : {corpus.titles[i]}" for i in picked]
        rows += picked
    tokenizer = Tokenizer("word", vocab_size=5000, min_frequency=1, lowercase=True).fit(texts)
    return tokenizer, tokenizer.encode(texts), corpus.conditions[rows], columns


def test_the_condition_sets_the_first_token(genre_titles):
    tokenizer, ids, conditions, columns = genre_titles
    model = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, condition_dim=conditions.shape[1], epochs=20,
                             lr=5e-3, **SMALL).fit(ids, conditions)
    firsts = {}
    for genre, col in columns.items():
        condition = conditions[conditions[:, col] == 1][0]  # one real film's vector of that genre
        samples = model.sample(30, condition, seed=0)
        expected = tokenizer.encode([genre.lower()])[0][0]
        assert np.mean([s[0] == expected for s in samples]) >= 0.9, genre
        firsts[genre] = greedy(model, 20, condition)
    assert len({tuple(v) for v in firsts.values()}) == 3  # each condition gets its own title
    with pytest.raises(MmworkError, match=r"conditional \(condition_dim=20\): pass a condition"):
        model.sample(2)


def test_save_and_load_give_the_same_samples_and_perplexity(fitted, titles, tmp_path):
    _, _, valid = titles
    fitted.save(tmp_path / "lm")
    loaded = Generator.load(tmp_path / "lm", device="cpu")
    assert type(loaded) is RNNLanguageModel and loaded.config == fitted.config
    assert loaded.history_ == fitted.history_ and loaded.best_epoch_ == fitted.best_epoch_
    assert loaded.sample(10, seed=2, temperature=0.8, top_p=0.9) == fitted.sample(10, seed=2, temperature=0.8,
                                                                                 top_p=0.9)
    assert loaded.perplexity(valid) == fitted.perplexity(valid)


def test_gru_layers_tying_and_condition_round_trip(titles, tmp_path):
    tokenizer, train, valid = titles
    condition = torch.rand(len(train), 3, generator=torch.Generator().manual_seed(0))
    params = dict(vocab_size=tokenizer.vocab_size_, cell="gru", layers=2, embedding_dim=48, hidden_dim=48,
                  tie_weights=True, condition_dim=3, epochs=2, device="cpu")
    model = RNNLanguageModel(**params).fit(train, condition)
    again = RNNLanguageModel(**params).fit(train, condition)
    assert model.sample(8, condition[0], seed=1) == again.sample(8, condition[0], seed=1)  # dropout from the seed
    assert "net_.out.weight" not in model._tensors()  # tied: the embedding is the output layer
    model.save(tmp_path / "gru")
    loaded = RNNLanguageModel.load(tmp_path / "gru")
    assert loaded.sample(8, condition[:8], seed=1) == model.sample(8, condition[:8], seed=1)
    assert loaded.perplexity(valid, condition[0]) == model.perplexity(valid, condition[0])
    assert "vocab_size=" in repr(model) and "cell='gru'" in repr(model)


def test_training_cuts_sequences_at_max_len(titles):
    tokenizer, train, _ = titles
    long = [s for s in train if len(s) >= 4][:32]
    model = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, max_len=3, epochs=15, lr=1e-2, **SMALL).fit(long)
    # no sequence ended within its first 3 positions, so the model never learned to write EOS there
    assert all(len(s) == 3 for s in model.sample(20, seed=0, max_len=3))



def test_adaptive_softmax_gives_exact_normalised_probabilities(titles):
    """The adaptive softmax (frequent ids in the head, rare ones in a cluster) scores each target with
    the log-probability its full distribution gives that id: the distribution sums to 1 over the
    ids the model writes, and the perplexity is that of those log-probabilities."""
    tokenizer, train, valid = titles
    model = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, softmax="adaptive", cutoffs=(20, 200), epochs=2,
                             **SMALL).fit(train)
    counts = torch.bincount(torch.tensor([t for s in train for t in s + [EOS]]), minlength=tokenizer.vocab_size_)
    ranks = model.net_.class_of[2:][counts[2:].argsort(descending=True, stable=True)]
    assert ranks.tolist() == list(range(len(ranks)))  # the most frequent ids first: EOS and common words in the head
    x = torch.tensor([[BOS] + valid[0]])
    with torch.no_grad():
        log_p, _ = model.net_(x)
    assert torch.isinf(log_p[..., :2]).all()  # PAD and BOS are never written
    np.testing.assert_allclose(log_p.logsumexp(-1).numpy(), 0, atol=1e-5)
    target = torch.tensor(valid[0] + [EOS])
    nll, n = model.log_likelihood(valid[:1])
    assert n[0] == len(target)
    assert nll[0] == pytest.approx(-float(log_p[0].gather(1, target[:, None]).sum()), rel=1e-5)
    assert "cutoffs=[20, 200]" in repr(model)


def test_the_training_path_equals_the_full_logits(fitted, titles):
    """Training and scoring compute the output only at real targets and over the ids the model writes:
    the same per-token NLL as a cross-entropy over the whole logits with PAD and BOS at -inf."""
    _, _, valid = titles
    x = fitted._check_data(valid[:8])
    with torch.no_grad():
        logits, _ = fitted.net_(torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], 1))
        reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten(), ignore_index=0,
                                                      reduction="none").view(x.shape)
        np.testing.assert_allclose(fitted._token_nll(x, None).numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_an_added_condition_enters_once_and_steers(genre_titles, tmp_path):
    tokenizer, ids, conditions, columns = genre_titles
    model = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, condition_dim=conditions.shape[1],
                             condition_input="add", softmax="adaptive", cutoffs=(8,), epochs=20, lr=5e-3,
                             **SMALL).fit(ids, conditions)
    assert model.net_.rnn[0].input_size == SMALL["embedding_dim"]  # not widened by the condition
    for genre, col in columns.items():
        condition = conditions[conditions[:, col] == 1][0]
        expected = tokenizer.encode([genre.lower()])[0][0]
        assert np.mean([s[0] == expected for s in model.sample(30, condition, seed=0)]) >= 0.9, genre
    model.save(tmp_path / "added")
    loaded = RNNLanguageModel.load(tmp_path / "added")
    assert loaded.sample(8, conditions[:8], seed=1) == model.sample(8, conditions[:8], seed=1)
    assert loaded.perplexity(ids[:20], conditions[:20]) == model.perplexity(ids[:20], conditions[:20])


def test_adaptive_fits_repeat_and_resume_exactly(titles, tmp_path):
    tokenizer, train, valid = titles
    params = dict(vocab_size=tokenizer.vocab_size_, softmax="adaptive", cutoffs=(50,), **SMALL)
    whole = RNNLanguageModel(epochs=3, **params).fit(train, valid=valid)
    assert torch.equal(whole.net_.class_of, RNNLanguageModel(epochs=3, **params).fit(train, valid=valid).net_.class_of)
    RNNLanguageModel(epochs=2, **params).fit(train, valid=valid, checkpoint=tmp_path / "ck")
    resumed = RNNLanguageModel(epochs=3, **params).fit(train, valid=valid, resume_from=tmp_path / "ck")
    assert all(torch.equal(a, b) for a, b in zip(whole._tensors().values(), resumed._tensors().values()))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), r"n must be a positive integer, got 0"),
    (dict(n=2.0), r"n must be a positive integer, got 2\.0"),
    (dict(temperature=0), r"temperature must be a finite number > 0, got 0"),
    (dict(temperature=-1.0), r"temperature must be a finite number > 0"),
    (dict(temperature=float("nan")), r"temperature must be a finite number > 0"),
    (dict(top_k=0), r"top_k must be a positive integer or None, got 0"),
    (dict(top_p=0.0), r"top_p must lie in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must lie in \(0, 1\]"),
    (dict(max_len=0), r"max_len must be a positive integer or None"),
    (dict(condition=np.ones(3)), r"unconditional \(condition_dim=0\) but got a condition"),
])
def test_bad_sampling_parameters_fail_before_compute(fitted, monkeypatch, kwargs, message):
    def no_compute(*args, **kwargs):
        raise AssertionError("the network ran before the parameters were checked")
    monkeypatch.setattr(RecurrentNet, "forward", no_compute)
    with pytest.raises(MmworkError, match=message) as err:
        fitted.sample(**({"n": 3} | kwargs))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data, message", [
    ([], r"data is empty"),
    ([[4, 5], []], r"data holds 1 empty sequence\(s\) \(the first at index 1\); drop them"),
    ([[4, 5], [0, 5]], r"token ids from 0 to 5, outside \[3, \d+\]: ids 0-2 are PAD/BOS/EOS"),
    ([[4, 10**6]], r"token ids from 4 to 1000000, outside"),
    ([[4.0, 5.0]], r"data must hold integer token ids \(one flat list per sequence\), got float64"),
    ([[4, [5, 6]]], r"data must hold integer token ids \(one flat list per sequence\), got nested lists"),
    ("toy story", r"data must be a list of token-id lists \(Tokenizer.encode\(texts\)\), got str"),
    (torch.ones(2, 3, dtype=torch.long), r"data must be a list of token-id lists .*got Tensor"),
    ([4, 5], r"data must be a list of token-id lists; int found"),
])
def test_bad_data_fails_in_one_line(titles, data, message):
    model = RNNLanguageModel(vocab_size=titles[0].vocab_size_, **SMALL)
    with pytest.raises(MmworkError, match=message) as err:
        model.fit(data)
    assert "\n" not in str(err.value) and "net_" not in model.__dict__
    with pytest.raises(MmworkError, match="not fitted"):
        model.sample(1)


def test_bad_parameters_fail_at_construction():
    with pytest.raises(MmworkError, match=r"tie_weights needs softmax='full'"):
        RNNLanguageModel(vocab_size=100, tie_weights=True, embedding_dim=8, hidden_dim=8, softmax="adaptive")
    with pytest.raises(MmworkError, match=r"cutoffs must increase strictly"):
        RNNLanguageModel(vocab_size=100, cutoffs=(50, 20))
    with pytest.raises(MmworkError, match=r"vocab_size: Input should be greater than 4"):
        RNNLanguageModel(vocab_size=4)
    with pytest.raises(MmworkError, match=r"vocab_size: Field required"):
        RNNLanguageModel()
    with pytest.raises(MmworkError, match=r"tie_weights needs embedding_dim == hidden_dim \(got 256 and 512\)"):
        RNNLanguageModel(vocab_size=100, tie_weights=True)
    with pytest.raises(MmworkError, match=r"cell: Input should be 'lstm' or 'gru'"):
        RNNLanguageModel(vocab_size=100, cell="rnn")


def test_every_config_field_is_documented():
    from mmwork.models.generators.rnn_lm import RNNLanguageModelConfig
    assert all(RNNLanguageModelConfig.describe().values())
