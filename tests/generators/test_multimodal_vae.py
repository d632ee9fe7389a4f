"""MultimodalVAE on tiny real slices of digits-av (MNIST images, FSDD MFCC frames, digit words): every
fusion generates every modality from every subset, joint sampling, save/load, determinism, bad input."""
import itertools

import pytest
import torch

from mmwork.core.errors import MmworkError
from mmwork.models.generators import MultimodalVAE
from mmwork.models.generators.multimodal.fusion import FUSIONS

TINY = dict(latent=4, width=4, hidden=16, attention_dim=8, heads=2, batch_size=32, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def digits():
    from mmwork import datasets
    from mmwork.models.data.multimodal import digits_av
    datasets.get("digits-av")  # a few seconds the first time, cached afterwards
    return digits_av("train", n=64), digits_av("valid", n=32)


@pytest.fixture(scope="module")
def models(digits):
    train, valid = digits
    return {f: MultimodalVAE.from_data(TINY | {"fusion": f}, data=train).fit(train, valid=valid) for f in FUSIONS}


def subsets(names):
    return [s for k in range(1, len(names) + 1) for s in itertools.combinations(names, k)]


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_generates_every_modality_from_every_subset(models, digits, fusion):
    model, (train, _) = models[fusion], digits
    names, rows = list(train.arrays), {m: x[:5] for m, x in train.arrays.items()}
    assert names == ["image", "audio", "text"] and model.config.dataset == "digits-av"
    for given in subsets(names):
        out = model.generate(names, {m: rows[m] for m in given}, seed=3)
        assert {m: tuple(v.shape) for m, v in out.items()} == {m: tuple(rows[m].shape) for m in names}, given
        assert 0 <= float(out["image"].min()) and float(out["image"].max()) <= 1
        assert out["text"].dtype == torch.long and int(out["text"].max()) < len(train.specs["text"].vocab)
        assert torch.isfinite(out["audio"]).all()
    mu, logvar = model.encode({"audio": rows["audio"]})
    assert mu.shape == logvar.shape == (5, 4)
    elbo = model.elbo({"image": rows["image"], "text": rows["text"]})
    assert elbo.dtype == torch.float64 and elbo.shape == (5,) and bool((elbo < 0).all())
    assert "valid_loss" in model.history_[-1]


def test_joint_sampling_is_seeded_and_has_every_modality(models, digits):
    model, (train, _) = models["attention"], digits
    a, b, c = model.sample(6, seed=1), model.sample(6, seed=1), model.sample(6, seed=2)
    assert {m: tuple(v.shape[1:]) for m, v in a.items()} == {m: tuple(s.shape) for m, s in train.specs.items()}
    assert all(torch.equal(a[m], b[m]) for m in a) and not torch.equal(a["image"], c["image"])


@pytest.mark.parametrize("fusion", ["attention", "mopoe"])
def test_save_and_load_give_identical_generations(models, digits, fusion, tmp_path):
    model, given = models[fusion], {"text": digits[0].arrays["text"][:4]}
    model.save(tmp_path / fusion)
    loaded = MultimodalVAE.load(tmp_path / fusion, device="cpu", dataset="digits-av")
    before = model.generate(["image", "audio"], given, seed=5)
    after = loaded.generate(["image", "audio"], given, seed=5)
    assert all(torch.equal(before[m], after[m]) for m in before)
    assert torch.equal(model.sample(3, seed=0)["text"], loaded.sample(3, seed=0)["text"])


def test_a_fit_repeats_exactly_for_a_seed(digits):
    train, _ = digits
    one, two = (MultimodalVAE.from_data(TINY | {"fusion": "moe"}, data=train).fit(train) for _ in range(2))
    assert all(torch.equal(v, two._tensors()[k]) for k, v in one._tensors().items())
    assert one.history_[0]["loss"] == two.history_[0]["loss"]


def test_texts_go_in_as_strings(models):
    out = models["poe"].generate("image", {"text": ["seven", "Trois"]}, seed=0)
    assert tuple(out["image"].shape) == (2, 1, 28, 28)


def test_bad_input_is_one_clear_error_before_any_compute(models, digits, tmp_path):
    model, (train, _) = models["attention"], digits
    rows = {m: x[:2] for m, x in train.arrays.items()}
    cases = [
        (lambda: model.generate(["image"], {"video": rows["image"]}), "knows no modality 'video'"),
        (lambda: model.generate(["smell"], {"text": rows["text"]}), "knows no modality 'smell'"),
        (lambda: model.generate(["image"], {}), "empty subset"),
        (lambda: model.encode({}), "empty subset"),
        (lambda: model.generate([], {"text": rows["text"]}), "no target modality"),
        (lambda: model.generate(["image"], {"audio": torch.zeros(2, 15, 13)}), "must have shape (N, 16, 13)"),
        (lambda: model.generate(["image"], {"image": rows["image"] * 3}), "pixels must lie in [0, 1]"),
        (lambda: model.generate(["image"], {"text": rows["text"].float()}), "integer token ids"),
        (lambda: model.generate(["image"], {"text": ["@#$%"]}), "no known characters"),
        (lambda: model.generate(["image"], {"audio": rows["audio"], "text": rows["text"][:1]}),
         "different numbers of rows"),
        (lambda: model.fit({"image": rows["image"], "text": rows["text"]}), "must hold every modality"),
    ]
    for call, message in cases:
        with pytest.raises(MmworkError, match=None) as error:
            call()
        assert message in str(error.value) and "\n" not in str(error.value), (message, str(error.value))
    other = train.subset(["image", "text"])
    other.dataset = "wesnoth"
    with pytest.raises(MmworkError, match="from data set 'wesnoth'"):
        model.encode(other)
    model.save(tmp_path / "m")
    with pytest.raises(MmworkError, match="trained on data set 'digits-av', not 'wesnoth'"):
        MultimodalVAE.load(tmp_path / "m", device="cpu", dataset="wesnoth")
    with pytest.raises(MmworkError, match="bad parameter for MultimodalVAE: fusion"):
        MultimodalVAE(fusion="sum")


def test_the_preset_builds_it_from_the_data(digits):
    from mmwork.models.catalog import presets
    klass, preset = presets()["multimodal-vae"]
    model = klass.from_data(preset.defaults | {"fusion": "mopoe"}, data=digits[0])
    assert klass is MultimodalVAE and sorted(model.config.modalities) == ["audio", "image", "text"]
    assert model.config.classes == [str(d) for d in range(10)]
