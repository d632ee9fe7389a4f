"""AudioVAE on real log-mel patches of speech prompts: learning, likelihood bounds, determinism,
checkpoints, conditions by name, sound out, bad input."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.models.generators import AudioVAE, Generator
from mmwork.models.data import MelParams, audio_clips
from mmwork.models.data.images import one_hot

TINY = {"latent": 8, "channels": 4, "hidden": 32, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def clips(speech_slice_root):
    root = speech_slice_root
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        return audio_clips("speech-prompts", "train", max_patches=2)


def tiny(clips, **params):
    return AudioVAE(**(TINY | {"mel": clips.mel, "classes": clips.classes} | params))


def condition(clips):
    return one_hot(clips.labels, len(clips.classes))


@pytest.fixture(scope="module")
def fitted(clips):
    return tiny(clips, epochs=4, warmup_epochs=1).fit(clips.patches, condition(clips))


def test_a_few_epochs_reduce_the_loss_on_real_patches(clips, fitted):
    assert fitted.config.condition_dim == 4  # taken from the classes
    one = tiny(clips, epochs=1, warmup_epochs=1).fit(clips.patches, condition(clips))
    # the same first epoch, then three more: a higher ELBO on the same patches
    terms = ("loss", "recon", "kl")
    assert [fitted.history_[0][k] for k in terms] == [one.history_[0][k] for k in terms]
    before = one.elbo(clips.patches, condition(clips)).mean()
    after = fitted.elbo(clips.patches, condition(clips)).mean()
    assert after > before + 100  # nats per patch (4096 values)
    assert fitted.history_[-1]["recon"] < fitted.history_[0]["recon"]


def test_importance_sampled_nll_is_within_the_elbo_bound(clips, fitted):
    x, c = clips.patches[:16], condition(clips)[:16]
    nll = fitted.importance_nll(x, c, k=20)
    assert nll.dtype == torch.float64 and nll.shape == (16,)
    assert nll.mean() <= -fitted.elbo(x, c).mean()


def test_same_seed_same_model_and_samples(clips, fitted):
    again = tiny(clips, epochs=4, warmup_epochs=1).fit(clips.patches, condition(clips))
    assert all(torch.equal(a, b) for a, b in zip(fitted._tensors().values(), again._tensors().values()))
    digits = fitted.condition("digits")
    assert torch.equal(fitted.sample(5, digits, seed=3), again.sample(5, digits, seed=3))
    assert not torch.equal(fitted.sample(5, digits, seed=3), fitted.sample(5, digits, seed=4))
    seeded = [tiny(clips, epochs=1, seed=seed).fit(clips.patches, condition(clips)) for seed in (0, 1)]
    assert not torch.equal(seeded[0].net_.posterior.weight, seeded[1].net_.posterior.weight)


def test_save_load_round_trip_keeps_weights_format_and_classes(clips, fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m", device="cpu")
    assert type(loaded) is AudioVAE and loaded.config == fitted.config
    assert loaded.config.mel == clips.mel and loaded.config.classes == clips.classes
    assert all(torch.equal(a, b) for a, b in zip(fitted._tensors().values(), loaded._tensors().values()))
    assert torch.equal(loaded.sample(4, loaded.condition("letters"), seed=2),
                       fitted.sample(4, fitted.condition("letters"), seed=2))
    assert loaded.history_ == fitted.history_ and loaded.best_epoch_ == fitted.best_epoch_


def test_samples_decode_to_patches_and_sound(clips, fitted):
    x = fitted.sample(3, fitted.condition(["digits", "general", "letters"]), seed=0)
    assert x.shape == (3, 1, 64, 64) and 0 <= x.min() and x.max() <= 1
    sounds = fitted.sample_audio(2, fitted.condition("digits"), n_iter=4)
    assert [y.shape for y in sounds] == [(clips.mel.segment,)] * 2 and all(np.isfinite(y).all() for y in sounds)
    recon = fitted.reconstruct(clips.patches[:8], condition(clips)[:8])
    noise = torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    assert (recon - clips.patches[:8]).abs().mean() < (noise - clips.patches[:8]).abs().mean()


def test_bad_input_is_refused_before_training(clips):
    model = tiny(clips, epochs=1)
    with pytest.raises(MmworkError, match=r"shape \(N, 1, 64, 64\) for audio-vae, got \(4, 1, 28, 28\)"):
        model.fit(torch.rand(4, 1, 28, 28), condition(clips)[:4])
    with pytest.raises(MmworkError, match=r"condition must have shape \(10, 4\)"):
        model.fit(clips.patches[:10], torch.zeros(10, 3))
    with pytest.raises(MmworkError, match=r"must lie in \[0, 1\]"):
        model.fit(clips.patches[:10] * 2 - 1, condition(clips)[:10])
    with pytest.raises(MmworkError, match="not fitted"):
        model.sample(2, model.condition("digits"))
    with pytest.raises(MmworkError, match="unknown class 'music'; the classes are digits, general"):
        model.condition("music")
    with pytest.raises(MmworkError, match="multiples of 8"):
        AudioVAE(mel=MelParams(frames=60))
    with pytest.raises(MmworkError, match="condition_dim=3 but 4 classes"):
        AudioVAE(classes=clips.classes, condition_dim=3)
    with pytest.raises(MmworkError, match="no category names"):
        AudioVAE(condition_dim=2).condition("digits")


def test_the_condition_reaches_every_decoder_resolution_and_the_prior(clips, fitted):
    net = fitted.net_
    assert fitted.config.conditional_prior and fitted.config.condition_channels == 8  # the defaults
    assert net.encoder[0].in_channels == 1 + 8 and [up.in_channels for up in net.up] == [16 + 8, 8 + 8, 4 + 8]
    z = torch.zeros(2, fitted.config.latent)
    a, b = fitted.decode(z, fitted.condition(["digits", "digits"])), fitted.decode(z, fitted.condition(["general"] * 2))
    assert not torch.allclose(a, b)  # the same z, another category: another patch
    mu, logvar = fitted.prior(fitted.condition(["digits", "general"]))
    assert not torch.allclose(mu[0], mu[1])  # the prior learned where each category puts z
    # the options off: the condition enters the linear layers only, and the prior is N(0, I)
    plain = tiny(clips, epochs=1, condition_channels=0, conditional_prior=False).fit(clips.patches, condition(clips))
    assert plain.net_.embed is None and plain.net_.prior_net is None and plain.net_.encoder[0].in_channels == 1
    assert all(torch.equal(t, torch.zeros_like(t)) for t in plain.prior(plain.condition(["digits"])))
    assert torch.isfinite(plain.elbo(clips.patches[:4], condition(clips)[:4])).all()


def test_a_time_budget_caps_training(clips):
    budgeted = tiny(clips, epochs=50, time_budget=0.001).fit(clips.patches, condition(clips))
    assert len(budgeted.history_) == 1  # the first epoch already overran the budget
