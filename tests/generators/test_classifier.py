"""The in-project Fashion-MNIST classifier on real test images: it learns, its features are the
penultimate layer, fits repeat for a seed without touching global generators, checkpoints round-trip
bitwise (and resume exactly), and bad input fails with one line before any compute."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmwork
from mmwork import MmworkError
from mmwork.models.judges import Classifier
from mmwork.models.generators import Generator

QUICK = dict(device="cpu", epochs=2, batch_size=32, channels=8, features=32)


def _equal_state(a, b) -> bool:
    ta, tb = a._tensors(), b._tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.fixture(scope="module")
def fitted(images):
    """The default classifier after 3 epochs on 192 real images (the other 64 are held out)."""
    x, y = images
    return Classifier(device="cpu", epochs=3, batch_size=16).fit(x[:192], y[:192], valid=(x[192:], y[192:]))


def test_learns_well_above_chance_on_held_out_images(fitted, images):
    x, y = images
    history = fitted.history_
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["accuracy"] > history[0]["accuracy"]
    assert fitted.accuracy(x[192:], y[192:]) > 0.5  # 10 classes: chance is 0.1
    best = min(history, key=lambda h: h["valid_loss"])
    assert fitted.best_epoch_ == best["epoch"]


def test_predictions_and_features(fitted, images):
    x, y = images[0][192:], images[1][192:]
    proba = fitted.predict_proba(x)
    assert proba.shape == (64, 10) and torch.allclose(proba.sum(1), torch.ones(64))
    assert torch.equal(fitted.predict(x), proba.argmax(1))
    assert fitted.accuracy(x, y) == pytest.approx((fitted.predict(x) == y).double().mean().item())
    assert fitted.accuracy(x, y.numpy()) == fitted.accuracy(x, y.tolist())
    features = fitted.features(x)
    assert features.shape == (64, 128) and features.dtype == torch.float32 and not features.requires_grad
    assert (features >= 0).all()  # after the ReLU
    assert torch.allclose(fitted.net_.out(features), fitted.logits(x), atol=1e-5)  # the layer before the output
    # batching and order change nothing but rounding (a batch size may pick another convolution kernel)
    assert torch.allclose(fitted.features(x[:5]), features[:5], rtol=1e-5, atol=1e-5)
    assert not hasattr(fitted, "sample")  # a judge, not a generator: it draws nothing


def test_same_seed_same_model_and_global_generators_untouched(images):
    x, y = images[0][:128], images[1][:128]
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first, again = Classifier(seed=3, **QUICK).fit(x, y), Classifier(seed=3, **QUICK).fit(x, y)
    assert _equal_state(first, again) and first.history_[-1]["loss"] == again.history_[-1]["loss"]
    assert not _equal_state(first, Classifier(seed=4, **QUICK).fit(x, y))
    assert not _equal_state(first, Classifier(seed=3, **QUICK | {"dropout": 0.0}).fit(x, y))  # dropout is drawn
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


def test_save_load_bitwise_and_resume_equals_an_uninterrupted_fit(fitted, images, tmp_path):
    x, y = images
    loaded = mmwork.load(fitted.save(tmp_path / "clf"), device="cpu")
    with pytest.raises(MmworkError, match="holds a Classifier, which cannot be loaded as Generator"):
        Generator.load(tmp_path / "clf")
    assert type(loaded) is Classifier and loaded.config == fitted.config and _equal_state(loaded, fitted)
    assert loaded.history_ == fitted.history_ and torch.equal(loaded.features(x[:9]), fitted.features(x[:9]))
    # the learning rate follows a one-cycle schedule over `epochs`: a run killed in its third epoch,
    # resumed from its checkpoint with the same epochs, ends where an uninterrupted run does
    class Killed(Exception):
        pass

    def measure(model):  # lower every epoch, so the last epoch's state is kept
        return -float(len(model.history_))

    def killed(model):
        if len(model.history_) == 2:
            raise Killed
        return measure(model)
    whole = Classifier(**QUICK | {"epochs": 3}).fit(x[:128], y[:128], valid=measure)
    with pytest.raises(Killed):
        Classifier(**QUICK | {"epochs": 3}).fit(x[:128], y[:128], valid=killed, checkpoint=tmp_path / "ckpt")
    resumed = Classifier(**QUICK | {"epochs": 3}).fit(x[:128], y[:128], valid=measure, resume_from=tmp_path / "ckpt")
    assert _equal_state(resumed, whole) and resumed.history_[-1]["loss"] == whole.history_[-1]["loss"]
    assert not _equal_state(resumed, Classifier(**QUICK | {"epochs": 3, "schedule": "constant"}).fit(x[:128], y[:128]))


def test_augmentation_shifts_and_mirrors_each_image_with_the_models_generator(images):
    x = images[0][:64]
    model = Classifier(device="cpu", shift=2)
    out = model._augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out, model._augment(x, torch.Generator().manual_seed(0)))
    padded = F.pad(x, (2, 2, 2, 2))
    seen = set()
    for i in range(64):  # each image is one of its 5 x 5 shifts, mirrored or not
        found = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (0, 1)
                 if torch.equal(out[i], (padded[i].flip(2) if flip else padded[i])[:, dy:dy + 28, dx:dx + 28])]
        assert found, f"image {i} is no shifted or mirrored copy"
        seen.update(found)
    assert {f for _, _, f in seen} == {0, 1} and len({(dy, dx) for dy, dx, _ in seen}) > 10
    assert torch.equal(Classifier(device="cpu", shift=0, flip=False)._augment(x, torch.Generator()), x)


def test_one_cycle_learning_rate():
    model, total = Classifier(lr=0.01), 1000
    lrs = [model._lr(step, total) for step in range(total)]
    assert lrs[0] == pytest.approx(0.0004) and max(lrs) == pytest.approx(0.01) and lrs[-1] < 1e-5
    assert lrs.index(max(lrs)) == 250 and all(a <= b for a, b in zip(lrs[:251], lrs[1:251]))
    assert all(a >= b for a, b in zip(lrs[250:], lrs[251:]))
    assert Classifier(lr=0.01, schedule="constant")._lr(999, total) == 0.01


def _bad_inputs(x, y):
    yield lambda: Classifier(dropout=1.0), "dropout: Input should be less than 1"
    yield lambda: Classifier(n_classes=0), "n_classes: Input should be greater than 0"
    yield lambda: Classifier(schedule="cosine"), "schedule: Input should be 'onecycle' or 'constant'"
    yield lambda: Classifier(shift=-1), "shift: Input should be greater than or equal to 0"
    yield lambda: Classifier(device="cpu").fit(x[:, 0], y), r"shape \(N, 1, 28, 28\) for classifier, got \(256, 28"
    yield lambda: Classifier(device="cpu").fit(x * 255, y), r"lie in \[0, 1\]"
    yield lambda: Classifier(device="cpu").fit(x), "classifier needs labels: one integer class in 0..9"
    yield (lambda: Classifier(device="cpu").fit(x, y[:100]),
           r"256 integer class indices \(shape \(256,\)\), got torch.int64 of shape \(100,\)")
    yield lambda: Classifier(device="cpu").fit(x, y.float()), "got torch.float32"
    yield lambda: Classifier(device="cpu", n_classes=5).fit(x, y), r"labels must lie in 0..4 \(n_classes=5\), got 0..9"
    yield lambda: Classifier(device="cpu").fit(x, y, valid=x), "valid labels: one integer class"
    yield lambda: Classifier(device="cpu").features(x), "not fitted"


@pytest.mark.parametrize("case", range(12))
def test_bad_input_is_one_line_before_compute(case, images, monkeypatch):
    call, message = list(_bad_inputs(*images))[case]
    monkeypatch.setattr(Classifier, "_build", lambda self: pytest.fail("built the network before refusing the input"))
    with pytest.raises(MmworkError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
