"""The training bookkeeping every generator shares (mmwork.models.generators.base.Training), exercised through
the VAE on real images: a NaN loss stops with the last good state, early stopping keeps the best
epoch, and a resumed fit equals an uninterrupted one."""
import json

import pytest
import torch

from mmwork import MmworkError
from mmwork.models.generators import VAE, GeneratorConfig

QUICK = dict(device="cpu", batch_size=64)  # 128 images: 2 steps per epoch


def _equal_state(a, b) -> bool:
    ta, tb = a._tensors(), b._tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in history]


def test_every_config_field_is_documented():
    from mmwork.models.generators import VAEConfig
    for config in (GeneratorConfig, VAEConfig):
        assert all(config.describe().values()), config.describe()


def test_nan_loss_stops_and_keeps_the_last_good_epoch(images, tmp_path, monkeypatch):
    x = images[0][:128]
    clean = VAE(epochs=1, **QUICK).fit(x)
    terms, calls = VAE._terms, []

    def poisoned(self, *args, **kwargs):  # the loss turns NaN from the third step (epoch 2)
        calls.append(1)
        recon, kl = terms(self, *args, **kwargs)
        return (recon * float("nan") if len(calls) > 2 else recon), kl
    monkeypatch.setattr(VAE, "_terms", poisoned)
    model = VAE(epochs=5, **QUICK)
    with pytest.raises(MmworkError, match=r"vae: loss nan, .* in epoch 2; training stopped and the model keeps "
                                          r"epoch 1's state; checkpoint .* holds it too; try a lower lr") as err:
        model.fit(x, checkpoint=tmp_path / "ckpt")
    assert "\n" not in str(err.value)
    assert len(calls) == 4 and len(model.history_) == 1 and model.best_epoch_ == 1
    assert _equal_state(model, clean)
    monkeypatch.undo()
    saved = VAE.load(tmp_path / "ckpt")
    assert _equal_state(saved, clean)
    assert json.loads((tmp_path / "ckpt" / "model.json").read_text())["training"]["epoch"] == 1
    assert torch.isfinite(model.sample(4)).all()


def test_a_huge_learning_rate_fails_clearly(images):
    model = VAE(lr=1e6, epochs=3, **QUICK)
    with pytest.raises(MmworkError, match=r"in epoch 1, before any epoch finished; .* not fitted; "
                                          r"try a lower lr \(now 1e\+06\)"):
        model.fit(images[0][:128])
    with pytest.raises(MmworkError, match="not fitted"):
        model.sample(1)


def test_early_stopping_keeps_the_best_epoch(images):
    x = images[0][:128]
    scores = iter([5.0, 4.0, 4.5, 4.6, 4.7, 1.0])

    def valid(model):
        return next(scores)
    model = VAE(epochs=6, patience=2, **QUICK).fit(x, valid=valid)
    assert [h["valid_loss"] for h in model.history_] == [5.0, 4.0, 4.5, 4.6]  # stopped 2 epochs after the best
    assert model.best_epoch_ == 2
    assert _equal_state(model, VAE(epochs=2, **QUICK).fit(x))  # the validation call draws no training noise


def test_resume_equals_an_uninterrupted_fit(images, tmp_path):
    x, valid = images[0][:128], images[0][128:160]
    VAE(epochs=2, patience=5, **QUICK).fit(x, valid=valid, checkpoint=tmp_path / "ckpt")
    resumed = VAE(epochs=4, patience=5, **QUICK).fit(x, valid=valid, resume_from=tmp_path / "ckpt")
    whole = VAE(epochs=4, patience=5, **QUICK).fit(x, valid=valid)
    assert _equal_state(resumed, whole)
    assert _without_seconds(resumed.history_) == _without_seconds(whole.history_)
    assert resumed.best_epoch_ == whole.best_epoch_


def test_resume_refuses_what_it_cannot_continue(images, tmp_path):
    x = images[0][:128]
    VAE(epochs=1, **QUICK).fit(x, checkpoint=tmp_path / "ckpt")
    with pytest.raises(MmworkError, match="trained with other parameters: latent=16 there, 8 here"):
        VAE(epochs=3, latent=8, **QUICK).fit(x, resume_from=tmp_path / "ckpt")
    with pytest.raises(MmworkError, match="already holds 1 epochs"):
        VAE(epochs=1, **QUICK).fit(x, resume_from=tmp_path / "ckpt")
    VAE(epochs=1, **QUICK).fit(x).save(tmp_path / "saved")
    with pytest.raises(MmworkError, match="a saved model, not a training checkpoint"):
        VAE(epochs=3, **QUICK).fit(x, resume_from=tmp_path / "saved")

    class Other(VAE):
        name = "other"
    with pytest.raises(MmworkError, match="holds a VAE checkpoint; it cannot resume a Other"):
        Other(epochs=3, **QUICK).fit(x, resume_from=tmp_path / "ckpt")
