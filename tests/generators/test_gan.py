"""The conditional GAN on real Fashion-MNIST test images: both losses are recorded and finite, the
discriminator learns to tell real from generated, samples come from the moving average and respond to
the condition, fits repeat for a seed, checkpoints round-trip bitwise and resume exactly, and bad input
fails with one line before any compute."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmwork import MmworkError
from mmwork.models.generators import GAN, Generator
from mmwork.models.generators.gan import _Discriminator
from mmwork.models.data import one_hot

QUICK = dict(device="cpu", epochs=2, batch_size=32, channels=8, noise_dim=16)  # 128 images: 4 steps per epoch


def _equal_state(a, b) -> bool:
    ta, tb = a._tensors(), b._tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in history]


@pytest.fixture(scope="module")
def fitted(images):
    """A conditional GAN after 3 epochs on 192 real images with their one-hot classes (no auxiliary
    loss, so d_loss is the hinge loss alone)."""
    x, y = images
    return GAN(device="cpu", epochs=3, batch_size=32, channels=16, condition_dim=10, aux_weight=0.0).fit(
        x[:192], one_hot(y[:192], 10))


def test_losses_are_recorded_and_the_discriminator_learns(fitted, images):
    history = fitted.history_
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for row in history:
        assert all(np.isfinite(row[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake"))
        assert row["loss"] == pytest.approx(row["d_loss"] + row["g_loss"])
    # at initialisation both scores are near 0, so the hinge loss is near 2; it must fall below that,
    # with real images scored above generated ones, in training and on held-out images
    assert all(row["d_loss"] < 1.9 and row["d_real"] > row["d_fake"] for row in history)
    x, c = images[0][192:], one_hot(images[1][192:], 10)
    assert fitted.discriminate(x, c).mean() > fitted.discriminate(fitted.sample(64, c, seed=0), c).mean()
    samples = fitted.sample(10, one_hot(range(10), 10), seed=3)
    assert samples.shape == (10, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1


def test_samples_come_from_the_moving_average(fitted):
    ema, raw = fitted.ema_.state_dict(), fitted.generator_.state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if k.endswith("weight"))
    c = one_hot([3] * 6, 10)
    z = torch.randn(6, 64, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fitted.sample(6, c, seed=5), fitted._generate(fitted.ema_, z, c))
    assert not torch.equal(fitted.sample(6, c, seed=5), fitted._generate(fitted.generator_, z, c))


def test_without_averaging_samples_come_from_the_raw_generator(images):
    model = GAN(ema_decay=0.0, **QUICK).fit(images[0][:128])
    ema, raw = model.ema_.state_dict(), model.generator_.state_dict()
    assert ema.keys() == raw.keys() and all(torch.equal(ema[k], raw[k]) for k in ema)
    assert torch.equal(model.sample(4, seed=1), model._generate(
        model.generator_, torch.randn(4, 16, generator=torch.Generator().manual_seed(1)), None))


def test_conditional_samples_respond_to_the_condition(fitted):
    boots, trousers = fitted.sample(8, one_hot([9], 10)[0], seed=0), fitted.sample(8, one_hot([1] * 8, 10), seed=0)
    assert (boots - trousers).abs().mean() > 0.01
    assert torch.equal(boots, fitted.sample(8, one_hot([9] * 8, 10), seed=0))  # one vector is broadcast
    assert torch.equal(boots, fitted.sample(8, one_hot([9], 10)[0], seed=0))
    assert not torch.equal(boots, fitted.sample(8, one_hot([9], 10)[0], seed=1))


def test_the_condition_reaches_every_batch_norm(fitted, images):
    for norm in (fitted.generator_.norm1, fitted.generator_.norm2):  # start at zero, then learn
        assert not norm.norm.affine and norm.film.weight.abs().max() > 0
    G = fitted.ema_
    z, c = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)), one_hot([0, 2, 4, 6], 10)
    h = F.relu(G.norm1(G.linear(torch.cat([z, c], 1)).unflatten(1, (-1, 7, 7)), c))
    assert not torch.equal(G.norm2(G.up1(h), c), G.norm2(G.up1(h), one_hot([1, 3, 5, 7], 10)))
    plain = GAN(**QUICK).fit(images[0][:128]).generator_
    assert plain.norm1.film is None and plain.norm1.norm.affine


def test_n_critic_discriminator_steps_per_generator_step(images, monkeypatch):
    steps = []
    update = GAN._update_ema
    monkeypatch.setattr(GAN, "_update_ema", lambda self, step: (steps.append(step), update(self, step)))
    model = GAN(n_critic=2, **QUICK).fit(images[0][:128])  # 4 real batches per epoch, 2 epochs
    assert steps == [1, 2, 3, 4] and all(np.isfinite(row["g_loss"]) for row in model.history_)


def test_auxiliary_classifier_learns_the_classes_of_real_images(images):
    x, y = images
    model = GAN(aux_weight=1.0, condition_dim=10, **QUICK | {"epochs": 6}).fit(x[:128], one_hot(y[:128], 10))
    assert GAN(aux_weight=0.0, condition_dim=10, **QUICK).fit(x[:128], one_hot(y[:128], 10)).discriminator_.aux is None
    with torch.no_grad():
        _, logits = model.discriminator_.scores(x[128:] * 2 - 1, one_hot(y[128:], 10))
    assert (logits.argmax(1) == y[128:]).double().mean() > 0.3  # held-out images; chance is 0.1


def test_same_seed_same_model_and_global_generators_untouched(images):
    x, c = images[0][:128], one_hot(images[1][:128], 10)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first, again = GAN(seed=3, condition_dim=10, **QUICK).fit(x, c), GAN(seed=3, condition_dim=10, **QUICK).fit(x, c)
    assert _equal_state(first, again) and _without_seconds(first.history_) == _without_seconds(again.history_)
    assert torch.equal(first.sample(4, c[:4], seed=1), again.sample(4, c[:4], seed=1))
    assert not _equal_state(first, GAN(seed=4, condition_dim=10, **QUICK).fit(x, c))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


def test_save_load_bitwise_and_resume_equals_an_uninterrupted_fit(fitted, images, tmp_path):
    x, c = images[0][:128], one_hot(images[1][:128], 10)
    loaded = Generator.load(fitted.save(tmp_path / "gan"), device="cpu")
    assert type(loaded) is GAN and loaded.config == fitted.config and _equal_state(loaded, fitted)
    assert loaded.history_ == fitted.history_
    assert torch.equal(loaded.sample(6, c[:6], seed=2), fitted.sample(6, c[:6], seed=2))
    assert torch.equal(loaded.discriminate(x[:6], c[:6]), fitted.discriminate(x[:6], c[:6]))
    whole = GAN(condition_dim=10, **QUICK | {"epochs": 3}).fit(x, c)
    GAN(condition_dim=10, **QUICK).fit(x, c, checkpoint=tmp_path / "ckpt")
    resumed = GAN(condition_dim=10, **QUICK | {"epochs": 3}).fit(x, c, resume_from=tmp_path / "ckpt")
    assert _equal_state(resumed, whole) and _without_seconds(resumed.history_) == _without_seconds(whole.history_)


def test_unconditional_with_a_validation_callback(images):
    calls = []

    def spread(model):  # any measure, lower is better: here the negative spread of 32 samples
        calls.append(1)
        return -float(model.sample(32, seed=0).std())
    spread.name = "spread"
    model = GAN(**QUICK).fit(images[0][:128], valid=spread)
    assert len(calls) == 2 and all("valid_spread" in row for row in model.history_)
    assert model.best_epoch_ == min(model.history_, key=lambda h: h["valid_spread"])["epoch"]
    assert model.sample(3).shape == (3, 1, 28, 28) and model.discriminator_.embed is None


def test_non_finite_weights_stop_and_keep_the_last_good_epoch(images, monkeypatch):
    x = images[0][:128]
    clean = GAN(**QUICK | {"epochs": 1}).fit(x)
    update = GAN._update_ema

    def poisoned(self, step):  # the generator's weights turn NaN in the second epoch
        if step == 6:
            next(self.generator_.parameters()).data.fill_(float("nan"))
        update(self, step)
    monkeypatch.setattr(GAN, "_update_ema", poisoned)
    model = GAN(**QUICK | {"epochs": 4})
    with pytest.raises(MmworkError, match=r"gan: .*non-finite .* in epoch 2; training stopped and the model keeps "
                                          r"epoch 1's state") as err:
        model.fit(x)
    assert "\n" not in str(err.value) and _equal_state(model, clean) and len(model.history_) == 1


def _bad_inputs(x, y):
    c = one_hot(y, 10)
    yield None, lambda: GAN(ema_decay=1.0), "ema_decay: Input should be less than 1"
    yield None, lambda: GAN(channels=0), "channels: Input should be greater than 0"
    yield None, lambda: GAN(noise_dim=-1), "noise_dim: Input should be greater than 0"
    yield None, lambda: GAN(lr=0), "lr: Input should be greater than 0"
    yield None, lambda: GAN(d_lr=-1e-4), "d_lr: Input should be greater than 0"
    yield None, lambda: GAN(beta1=1.0), "beta1: Input should be less than 1"
    yield None, lambda: GAN(n_critic=0), "n_critic: Input should be greater than 0"
    yield None, lambda: GAN(aux_weight=-1), "aux_weight: Input should be greater than or equal to 0"
    yield 0, lambda m: m.fit(x[:, 0]), r"shape \(N, 1, 28, 28\) for gan, got \(256, 28, 28\)"
    yield 0, lambda m: m.fit(x.expand(-1, 3, -1, -1)), r"got \(256, 3, 28, 28\)"
    yield 0, lambda m: m.fit(x * 2 - 1), r"lie in \[0, 1\], got values from -1"
    yield 0, lambda m: m.fit(x, c), "unconditional .* got a condition"
    yield 0, lambda m: m.fit(x, valid=x), "a GAN has no likelihood .* pass valid=a callback"
    yield 10, lambda m: m.fit(x), r"conditional \(condition_dim=10\): pass a condition of shape \(256, 10\)"
    yield 10, lambda m: m.fit(x, c[:, :9]), r"condition must have shape \(256, 10\) .* got \(256, 9\)"
    yield 10, lambda m: m.fit(x, c[:100]), r"got \(100, 10\)"
    yield 10, lambda m: m.sample(4, c[0]), "not fitted"
    yield (10, lambda m: GAN(device="cpu", condition_dim=10, aux_weight=0.5).fit(x, c * 2),
           "aux_weight=0.5 reads each condition row as a distribution .* sum to 1")


@pytest.mark.parametrize("case", range(18))
def test_bad_input_is_one_line_before_compute(case, images, monkeypatch):
    dim, call, message = list(_bad_inputs(*images))[case]
    monkeypatch.setattr(GAN, "_build", lambda self: pytest.fail("built the networks before refusing the input"))
    with pytest.raises(MmworkError, match=message) as err:
        call() if dim is None else call(GAN(device="cpu", condition_dim=dim))
    assert "\n" not in str(err.value)


def test_bad_arguments_of_a_fitted_model(fitted, images):
    with pytest.raises(MmworkError, match="n must be a positive integer"):
        fitted.sample(0, one_hot([1], 10)[0])
    with pytest.raises(MmworkError, match=r"condition must have shape \(2, 10\) .* got \(3, 10\)"):
        fitted.sample(2, one_hot([1, 2, 3], 10))
    with pytest.raises(MmworkError, match=r"condition must have shape \(4, 10\) .* got \(4, 9\)"):
        fitted.discriminate(images[0][:4], torch.zeros(4, 9))


@pytest.mark.gpu
def test_trains_on_cuda_with_mixed_precision(images):
    x, c = images[0], one_hot(images[1], 10)
    model = GAN(device="cuda", amp=True, epochs=2, condition_dim=10).fit(x, c)
    assert model.ema_.linear.weight.device.type == "cuda" and np.isfinite(model.history_[-1]["loss"])
    assert model.sample(8, c[:8]).shape == (8, 1, 28, 28)


def test_the_matrix_product_layers_equal_torch_convolutions():
    from mmwork.models.layers import ConvAsMatmul, ConvTransposeAsMatmul
    torch.manual_seed(0)
    for layer, reference, shape in ((ConvAsMatmul(1, 8, 4, 2, 1), F.conv2d, (3, 1, 28, 28)),
                                    (ConvTransposeAsMatmul(8, 1, 4, 2, 1), F.conv_transpose2d, (3, 8, 14, 14))):
        x = torch.randn(shape, requires_grad=True)
        out, expected = layer(x), reference(x, layer.weight, layer.bias, 2, 1)
        assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-5)
        grads = torch.autograd.grad(out.square().sum(), (x, layer.weight))
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in
                   zip(grads, torch.autograd.grad(expected.square().sum(), (x, layer.weight))))
    x = torch.randn(3, 8, 14, 14).contiguous(memory_format=torch.channels_last)  # as the generator gives it
    layer = ConvTransposeAsMatmul(8, 1, 4, 2, 1)
    assert torch.allclose(layer(x), F.conv_transpose2d(x, layer.weight, layer.bias, 2, 1), atol=1e-5)


def test_real_and_generated_images_share_one_discriminator_pass(images, monkeypatch):
    calls = []
    scores = _Discriminator.scores
    monkeypatch.setattr(_Discriminator, "scores", lambda self, x, c: (calls.append(len(x)), scores(self, x, c))[1])
    GAN(condition_dim=10, **QUICK | {"epochs": 1}).fit(images[0][:64], one_hot(images[1][:64], 10))
    assert calls == [64, 32, 64, 32]  # per batch of 32: real + generated together, then the generator's step
