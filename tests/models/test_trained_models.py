"""The one base of every trained model: one training loop in "min" and "max" mode, its NaN guard and
bit-exact resuming (a recommender too), one persistence that ``mmwork.load`` reads for any model, a
tampered or foreign save refused, the private torch API in one place, and the presets the classes
declare."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import mmwork
from mmwork.core.errors import MmworkError
from mmwork.models.recommenders.bpr import BPR
from mmwork.models.recommenders.multvae import MultVAE
from mmwork.store.interactions import Interactions


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 60, 900).astype(str),
                          "item_id": rng.integers(0, 40, 900).astype(str)}).drop_duplicates()
    return Interactions.from_frame(frame)


def scripted(scores, name="ndcg@10"):
    """A validation callback that returns the given scores in turn."""
    it = iter(scores)

    def valid(model):
        return next(it)
    valid.name = name
    return valid


def test_max_mode_keeps_the_highest_evaluated_epoch_and_stops_on_patience(train):
    # evaluated at 2, 4, 6, 8 (every 2): best 0.3 at epoch 4; 4 more epochs without a higher one stop it at 8
    model = BPR(device="cpu", epochs=20, eval_every=2, patience=4, factors=4)
    model.fit(train, valid=scripted([0.1, 0.3, 0.3, 0.2]))
    assert [h["epoch"] for h in model.history_ if "valid_ndcg@10" in h] == [2, 4, 6, 8]
    assert model.best_epoch_ == 4 and len(model.history_) == 8  # 0.3 again at 6 is no strict improvement


def test_min_mode_keeps_the_lowest_loss(images_like):
    from mmwork.models.generators import VAE
    model = VAE(device="cpu", epochs=4, patience=2, channels=4, hidden=8)
    model.fit(images_like, valid=scripted([3.0, 1.0, 2.0, 5.0], "loss"))
    assert model.best_epoch_ == 2 and [h["valid_loss"] for h in model.history_] == [3.0, 1.0, 2.0, 5.0]


@pytest.fixture(scope="module")
def images_like():
    return torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_nan_guard_keeps_the_last_good_epoch_for_a_recommender(train, monkeypatch):
    model = BPR(device="cpu", epochs=6, factors=4)
    calls = {"n": 0}
    real = torch.Tensor.__float__

    def third_loss_is_nan(self):
        value = real(self)
        if self.ndim == 0 and self.dtype == torch.float32 and value > 0.3:  # the epoch's summed loss
            calls["n"] += 1
            return float("nan") if calls["n"] == 3 else value
        return value
    monkeypatch.setattr(torch.Tensor, "__float__", third_loss_is_nan)
    with pytest.raises(MmworkError, match="keeps epoch 2's state"):
        model.fit(train)
    assert model.best_epoch_ == 2 and len(model.history_) == 2


@pytest.mark.parametrize("klass, params", [(BPR, dict(factors=4, eval_every=2)),
                                           (MultVAE, dict(hidden=8, latent=4, batch_size=16, eval_every=2))])
def test_resume_equals_an_uninterrupted_fit_for_a_recommender(klass, params, train, tmp_path):
    valid = lambda m: float(m.score(np.arange(10))[:, :5].mean())  # noqa: E731
    whole = klass(device="cpu", epochs=6, **params).fit(train, valid=valid)
    calls = []

    def interrupted(model):  # the run is cut during epoch 4's evaluation: the checkpoint holds epoch 3
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return valid(model)
    with pytest.raises(KeyboardInterrupt):
        klass(device="cpu", epochs=6, **params).fit(train, valid=interrupted, checkpoint=tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "model.json").read_text())["training"]["epoch"] == 3
    resumed = klass(device="cpu", epochs=6, **params).fit(train, valid=valid, resume_from=tmp_path / "ckpt")
    users = np.arange(train.n_users)
    assert torch.equal(resumed.score(users), whole.score(users))
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(resumed.history_) == drop(whole.history_) and resumed.best_epoch_ == whole.best_epoch_


def test_mmwork_load_reads_a_recommender_a_generator_and_a_judge(train, images_like, tmp_path):
    from mmwork.models.generators import VAE
    from mmwork.models.judges import Classifier
    bpr = BPR(device="cpu", epochs=2, factors=4).fit(train)
    vae = VAE(device="cpu", epochs=1, channels=4, hidden=8).fit(images_like)
    judge = Classifier(device="cpu", epochs=1, n_classes=3).fit(images_like, torch.arange(48) % 3)
    for model, check in ((bpr, lambda m: m.score(np.arange(5))), (vae, lambda m: m.sample(2, seed=1)),
                         (judge, lambda m: m.features(images_like[:4]))):
        loaded = mmwork.load(model.save(tmp_path / model.name), device="cpu")
        assert type(loaded) is type(model) and loaded.history_ == model.history_
        assert loaded.best_epoch_ == model.best_epoch_
        assert torch.equal(check(loaded), check(model))
    meta = json.loads((tmp_path / "bpr" / "model.json").read_text())
    assert meta["class"] == "mmwork.models.recommenders.bpr:BPR" and len(meta["tensors_sha256"]) == 64
    assert not hasattr(judge, "sample")  # judges draw nothing


def test_a_tampered_or_foreign_save_is_refused(train, tmp_path):
    path = BPR(device="cpu", epochs=1, factors=4).fit(train).save(tmp_path / "m")
    blob = bytearray((path / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(MmworkError, match="SHA-256"):
        mmwork.load(path)
    blob[-1] ^= 1
    (path / "model.safetensors").write_bytes(bytes(blob))
    meta = json.loads((path / "model.json").read_text())
    for spec in ("os:system", "mmwork.core.errors:MmworkError", "builtins:eval"):
        (path / "model.json").write_text(json.dumps(meta | {"class": spec}))
        with pytest.raises(MmworkError, match="no mmwork model|no model this mmwork knows"):
            mmwork.load(path)


def test_torch_private_api_is_still_there():
    """Fails the day torch drops a private function mmwork relies on (the fallbacks keep working)."""
    from mmwork.models import torch_private
    missing = [name for name in torch_private.PRIVATE_NAMES if not hasattr(torch, name)]
    assert not missing, f"torch {torch.__version__} lacks {missing}: mmwork.models.torch_private falls back"
    assert torch_private.fused_adam_available({"cpu"})


def test_adam_falls_back_to_torch_optim_without_the_fused_kernel(monkeypatch):
    from mmwork.models.recommenders.optim import Adam
    monkeypatch.delattr(torch, "_fused_adam_")
    weights = torch.zeros(3, requires_grad=True)
    adam = Adam([weights], lr=0.1)
    assert not adam.fused and isinstance(adam._torch, torch.optim.Adam)
    weights.sum().backward()
    adam.step()
    assert torch.allclose(weights, torch.full((3,), -0.1))


def test_presets_match_the_generate_registry_and_build_from_data():
    from mmwork.models.catalog import presets
    found = {name: (klass.__name__, klass.data_kind, p.condition, p.defaults) for name, (klass, p) in presets().items()}
    assert found == {
        "vae": ("VAE", "image", "none", {"epochs": 20}), "cvae": ("VAE", "image", "class", {"epochs": 20}),
        "text-cvae": ("VAE", "image", "text", {"epochs": 20}),
        "gan": ("GAN", "image", "class", {"epochs": 10, "channels": 32}),
        "classifier": ("Classifier", "image", "label", {"epochs": 8}),
        "audio-vae": ("AudioVAE", "audio", "class", {}),
        "audio-classifier": ("AudioClassifier", "audio", "label", {}),
        "multimodal-vae": ("MultimodalVAE", "multimodal", "none", {})}
    klass, preset = presets()["text-cvae"]
    assert klass.from_data(preset.defaults, condition="text", condition_dim=384).config.condition_dim == 384
    klass, preset = presets()["audio-vae"]
    from mmwork.models.data import MelParams
    model = klass.from_data(preset.defaults, condition="class", classes=["a", "b"], mel=MelParams(n_mels=16, frames=16))
    assert model.config.condition_dim == 2 and model.config.classes == ["a", "b"]
    klass, preset = presets()["classifier"]
    assert klass.from_data(preset.defaults, condition="label", classes=list("abc")).config.n_classes == 3
    with pytest.raises(MmworkError, match="conditions"):
        klass.from_data({}, condition="text")


def test_audio_vae_conditional_prior_is_an_option(tmp_path):
    from mmwork.models.data import MelParams, one_hot
    from mmwork.models.generators import AudioVAE
    patches = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    c = one_hot(torch.arange(16) % 2, 2)
    kw = dict(mel=MelParams(n_mels=16, frames=16), classes=["a", "b"], epochs=1, channels=4, hidden=8, device="cpu")
    plain = AudioVAE(**kw, conditional_prior=False).fit(patches, c)
    assert plain.net_.prior_net is None
    with_prior = AudioVAE(**kw, conditional_prior=True).fit(patches, c)
    assert with_prior.net_.prior_net is not None
    mu, logvar = with_prior.prior(c[:2])
    assert mu.shape == (2, with_prior.config.latent)
    assert with_prior.marginal_nll(patches[:2], one_hot(range(2), 2), k=3).shape == (2,)
    loaded = mmwork.load(with_prior.save(tmp_path / "p"), device="cpu")
    assert torch.equal(loaded.sample(2, condition=c[0], seed=1), with_prior.sample(2, condition=c[0], seed=1))


class TenSecondsACall:
    """A clock that moves 10 s each time it is read: a budget then runs out after a few epochs."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 10.0
        return self.t


def test_a_time_budget_stops_training_and_validates_its_last_epoch(train, monkeypatch):
    from mmwork.models import training
    monkeypatch.setattr(training, "now", TenSecondsACall())
    seen = []

    def valid(model):
        seen.append(len(model.history_) + 1)  # the epoch being validated
        return 0.1 * len(seen)
    model = BPR(device="cpu", epochs=50, eval_every=7, patience=50, factors=4, time_budget="2m")
    model.fit(train, valid=valid)
    last = model.history_[-1]
    assert 1 < len(model.history_) < 50 and last["stopped"] == "time budget"
    assert seen[-1] == last["epoch"] and "valid_score" in last  # off the every-7 schedule, still validated
    assert model.best_epoch_ == last["epoch"]  # the best validated epoch is kept (scores rise)


def test_a_time_budget_keeps_the_best_epoch_not_the_last(train, monkeypatch):
    from mmwork.models import training
    monkeypatch.setattr(training, "now", TenSecondsACall())
    scores = iter([0.2, 0.5, 0.3, 0.1] + [0.0] * 50)
    model = BPR(device="cpu", epochs=50, eval_every=1, patience=50, factors=4, time_budget="100s", seed=3)
    model.fit(train, valid=lambda m: next(scores))
    assert [row["epoch"] for row in model.history_] == [1, 2, 3] and model.history_[-1]["stopped"] == "time budget"
    again = BPR(device="cpu", epochs=2, factors=4, seed=3).fit(train)  # the same draws, stopped at epoch 2
    assert model.best_epoch_ == 2 and torch.equal(model.user_factors_, again.user_factors_)


def test_a_budgeted_fit_resumes_from_its_checkpoint(train, monkeypatch, tmp_path):
    from mmwork.models import training
    monkeypatch.setattr(training, "now", TenSecondsACall())
    first = BPR(device="cpu", epochs=8, factors=4, seed=1, time_budget="45s").fit(train, checkpoint=tmp_path / "ck")
    assert len(first.history_) == 2 and first.history_[-1]["stopped"] == "time budget"
    resumed = BPR(device="cpu", epochs=8, factors=4, seed=1, time_budget="45s")
    resumed.fit(train, resume_from=tmp_path / "ck")  # a fresh budget for the resumed session
    assert [row["epoch"] for row in resumed.history_] == [1, 2, 3, 4]
    plain = BPR(device="cpu", epochs=4, factors=4, seed=1).fit(train)
    assert torch.equal(resumed.user_factors_, plain.user_factors_)


def test_a_cpu_budget_counts_this_process_cpu_seconds(train, monkeypatch):
    from mmwork.models import training
    monkeypatch.setattr(training, "now", lambda: 0.0)  # the wall clock stands still: only the CPU clock moves
    monkeypatch.setattr(training, "cpu_now", TenSecondsACall())
    model = BPR(device="cpu", epochs=50, factors=4, time_budget="45s", budget_clock="cpu").fit(train)
    assert len(model.history_) == 2 and model.history_[-1]["stopped"] == "time budget"


def test_without_a_budget_the_clock_changes_nothing(train, monkeypatch):
    from mmwork.models import training
    plain = BPR(device="cpu", epochs=6, eval_every=2, factors=4).fit(train)
    monkeypatch.setattr(training, "now", TenSecondsACall())
    timed = BPR(device="cpu", epochs=6, eval_every=2, factors=4).fit(train)
    assert len(timed.history_) == 6 and torch.equal(timed.user_factors_, plain.user_factors_)


@pytest.mark.parametrize("budget, message", [("2x", "no duration"), (0, "greater than 0"), ("-5s", "no duration")])
def test_a_bad_time_budget_fails_before_compute(budget, message):
    from mmwork.models.generators import VAE
    with pytest.raises(MmworkError, match=message):
        VAE(time_budget=budget)
