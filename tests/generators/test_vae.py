"""The convolutional (conditional) VAE on real Fashion-MNIST test images: it learns, its likelihood
bound holds, fits repeat for a seed without touching global generators, checkpoints round-trip
bitwise, and every bad input fails with one line before any compute."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.models.generators import VAE, Generator
from mmwork.models.data import one_hot
from mmwork.store.artifacts import FORMAT

QUICK = dict(device="cpu", epochs=2, batch_size=64)
CVAE_EPOCHS = 10


def _equal_state(a: Generator, b: Generator) -> bool:
    ta, tb = a._tensors(), b._tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.fixture(scope="module")
def fitted(images):
    """The default VAE after 3 epochs on 192 real images (the other 64 are held out)."""
    return VAE(device="cpu", epochs=3, batch_size=32).fit(images[0][:192])


def test_a_few_steps_lower_the_loss_on_real_images(images):
    x = images[0][:192]
    model = VAE(device="cpu", epochs=4, batch_size=32, warmup_epochs=0).fit(x, valid=images[0][192:])
    history = model.history_
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    losses = [h["loss"] for h in history]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0]
    assert history[-1]["loss"] == pytest.approx(history[-1]["recon"] + history[-1]["kl"], rel=1e-5)
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    # the recorded validation loss is the held-out negative ELBO (seed 0)
    assert model.best_epoch_ == min(history, key=lambda h: h["valid_loss"])["epoch"]
    assert -model.elbo(images[0][192:]).mean().item() == pytest.approx(
        history[model.best_epoch_ - 1]["valid_loss"], rel=1e-9)


def test_importance_sampled_nll_is_below_the_negative_elbo(fitted, images):
    held_out = images[0][192:]
    negative_elbo = -fitted.elbo(held_out)
    nll_5, nll_100 = fitted.importance_nll(held_out, k=5), fitted.importance_nll(held_out, k=100)
    assert nll_100.dtype == torch.float64 and nll_100.shape == (64,) and torch.isfinite(nll_100).all()
    assert nll_100.mean() < nll_5.mean() < negative_elbo.mean()  # the bound tightens as k grows
    assert (nll_100 > 0).all()  # binary cross-entropy on grey pixels is positive
    # k=1 estimates the ELBO itself (with a sampled KL): the same figure on average
    assert fitted.importance_nll(held_out, k=1).mean().item() == pytest.approx(negative_elbo.mean().item(), rel=0.02)
    again = fitted.importance_nll(held_out[:3], k=20, seed=4)
    assert torch.equal(fitted.importance_nll(held_out[:3], k=20, seed=4), again)


def test_same_seed_same_model_and_global_generators_untouched(images):
    x = images[0][:128]
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first, again = VAE(seed=3, **QUICK).fit(x), VAE(seed=3, **QUICK).fit(x)
    samples = first.sample(8, seed=1)
    assert _equal_state(first, again) and torch.equal(samples, again.sample(8, seed=1))
    assert first.history_[-1]["loss"] == again.history_[-1]["loss"]
    assert not torch.equal(samples, first.sample(8, seed=2))
    assert not _equal_state(first, VAE(seed=4, **QUICK).fit(x))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


def test_save_and_load_round_trip_bitwise(fitted, images, tmp_path):
    import json
    fitted.save(tmp_path / "vae")
    assert sorted(p.name for p in (tmp_path / "vae").iterdir()) == ["model.json", "model.safetensors"]
    meta = json.loads((tmp_path / "vae" / "model.json").read_text())
    assert (meta["class"], meta["name"], meta["format"], meta["params"]["latent"]) == ("mmwork.models.generators.vae:VAE", "vae", FORMAT, 16)
    assert meta["mmwork_version"] and len(meta["history"]) == 3
    loaded = Generator.load(tmp_path / "vae", device="cpu")
    assert type(loaded) is VAE and loaded.config == fitted.config and _equal_state(loaded, fitted)
    assert loaded.history_ == fitted.history_ and loaded.best_epoch_ == fitted.best_epoch_ == 3
    assert torch.equal(loaded.sample(6, seed=7), fitted.sample(6, seed=7))
    assert torch.equal(loaded.elbo(images[0][:8]), fitted.elbo(images[0][:8]))
    assert _equal_state(VAE.load(tmp_path / "vae"), fitted)


def test_load_refuses_other_checkpoints(fitted, tmp_path):
    import json
    path = fitted.save(tmp_path / "vae")
    meta = json.loads((path / "model.json").read_text())

    class Other(VAE):
        name = "other"
    with pytest.raises(MmworkError, match="holds a VAE, which cannot be loaded as Other"):
        Other.load(path)
    with pytest.raises(MmworkError, match="holds no saved mmwork artifact"):
        VAE.load(tmp_path / "nothing")
    (path / "model.json").write_text(json.dumps(meta | {"format": 99}))
    with pytest.raises(MmworkError, match=f"format 99 .* this mmwork reads format {FORMAT}"):
        VAE.load(path)
    (path / "model.json").write_text(json.dumps(meta | {"params": meta["params"] | {"latent": 8}}))
    with pytest.raises(MmworkError, match="holds a VAE whose tensors do not fit this mmwork's VAE .*; retrain it"):
        VAE.load(path)
    (path / "model.json").write_text(json.dumps(meta | {"class": "mmwork.models.recommenders.bpr:BPR"}))  # a recommender's
    with pytest.raises(MmworkError, match="holds a BPR, which cannot be loaded as VAE"):
        VAE.load(path)
    (path / "model.json").write_text(json.dumps(meta))
    blob = bytearray((path / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(MmworkError, match="does not match model.json"):
        VAE.load(path)


def test_conditional_vae_reads_its_condition(images):
    x, labels = images[0][:128], images[1][:128]
    model = VAE(condition_dim=10, **QUICK).fit(x, one_hot(labels, 10))
    boots, trousers = model.sample(4, one_hot([9], 10)[0], seed=0), model.sample(4, one_hot([1] * 4, 10), seed=0)
    assert boots.shape == (4, 1, 28, 28) and not torch.equal(boots, trousers)
    assert torch.equal(boots, model.sample(4, one_hot([9] * 4, 10), seed=0))  # one vector is broadcast
    condition = one_hot(labels[:16], 10)
    assert (model.importance_nll(x[:16], condition, k=20).mean() < -model.elbo(x[:16], condition).mean())
    mu, logvar = model.encode(x[:16], condition)
    assert mu.shape == logvar.shape == (16, 16)
    assert model.reconstruct(x[:16], condition).shape == (16, 1, 28, 28)


def test_conditional_vae_samples_follow_their_condition(images):
    """Trained briefly on 256 real images, the samples for a class resemble that class's real images
    more than any other's, and two conditions differ more than two seeds of one condition."""
    x, labels = images
    model = VAE(condition_dim=10, device="cpu", epochs=CVAE_EPOCHS, batch_size=16, lr=3e-3).fit(x, one_hot(labels, 10))
    real = torch.stack([x[labels == k].mean(0) for k in range(10)]).flatten(1)
    samples = model.sample(200, one_hot(torch.arange(200) % 10, 10), seed=0)
    means = torch.stack([samples[k::10].mean(0) for k in range(10)]).flatten(1)
    nearest = torch.cdist(means, real).argmin(1)
    assert (nearest == torch.arange(10)).sum() >= 8, nearest.tolist()
    trousers, bags = model.sample(32, one_hot([1], 10)[0], seed=0), model.sample(32, one_hot([8], 10)[0], seed=0)
    other_seed = model.sample(32, one_hot([1], 10)[0], seed=1)
    assert (trousers - bags).abs().mean() > 2 * (trousers - other_seed).abs().mean()
    # the prior is conditional: it started as N(0, I) and learned a mean per class
    mu, logvar = model.prior(one_hot(torch.arange(10), 10))
    assert mu.shape == logvar.shape == (10, 16) and mu.norm(dim=1).min() > 0.1
    assert [t.abs().max().item() for t in VAE(device="cpu", epochs=1).fit(x[:32]).prior()] == [0.0, 0.0]
    # -log p(x|c) is a conditional likelihood; -log p(x) sums the class out (issue 19: never one quantity)
    given = model.importance_nll(x[:16], one_hot(labels[:16], 10), k=20, seed=0)
    marginal = model.marginal_nll(x[:16], one_hot(torch.arange(10), 10), k=20, seed=0)
    per_class = torch.stack([model.importance_nll(x[:16], one_hot([j] * 16, 10), k=20, seed=0) for j in range(10)])
    assert torch.allclose(marginal, -torch.logsumexp(np.log(0.1) - per_class, 0), rtol=1e-12)
    assert torch.equal(per_class[labels[:16], torch.arange(16)], given)  # the own class's term is -log p(x|c)
    assert (marginal <= given + np.log(10) + 1e-9).all()  # p(x) >= p(c) p(x|c)
    assert (marginal - given).abs().max() > 0.1  # log 10 + log p(c|x): another quantity, image by image
    with pytest.raises(MmworkError, match="this VAE is unconditional; use importance_nll"):
        VAE(device="cpu", epochs=1).fit(x[:32]).marginal_nll(x[:2], one_hot([0], 10))


def test_pythae_mnist_architecture_is_pythaes_layer_for_layer(images):
    from torch import nn
    from mmwork.models.layers import ConvAsMatmul, ConvTransposeAsMatmul
    model = VAE(architecture="pythae-mnist", device="cpu", epochs=1, batch_size=8, warmup_epochs=0).fit(images[0][:16])
    net = model.net_
    assert sum(p.numel() for p in net.parameters()) == 17_232_033  # pythae 0.1.2's VAE at latent 16
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
              m.output_padding if isinstance(m, nn.ConvTranspose2d) else None)
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs == [(1, 128, (4, 4), (2, 2), (1, 1), None), (128, 256, (4, 4), (2, 2), (1, 1), None),
                     (256, 512, (4, 4), (2, 2), (1, 1), None), (512, 1024, (4, 4), (2, 2), (1, 1), None),
                     (1024, 512, (3, 3), (2, 2), (1, 1), (0, 0)), (512, 256, (3, 3), (2, 2), (1, 1), (1, 1)),
                     (256, 1, (3, 3), (2, 2), (1, 1), (1, 1))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 6 and not net.training
    held_out = images[0][16:24]
    assert torch.equal(model.sample(4, seed=3), model.sample(4, seed=3))  # eval mode: batch norm's running stats
    assert model.importance_nll(held_out, k=10).mean() < -model.elbo(held_out).mean()
    # the matrix-product layers compute exactly what torch's convolutions do, gradients included
    for gemm, plain, x in [(ConvAsMatmul(8, 6, 4, 2, padding=1), nn.Conv2d(8, 6, 4, 2, padding=1),
                            torch.rand(3, 8, 3, 3)),
                           (ConvTransposeAsMatmul(8, 6, 3, 2, padding=1, output_padding=1),
                            nn.ConvTranspose2d(8, 6, 3, 2, padding=1, output_padding=1), torch.rand(3, 8, 4, 4))]:
        plain.load_state_dict(gemm.state_dict())
        a, b = gemm(x), plain(x)
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)
        a.square().sum().backward(), b.square().sum().backward()
        assert torch.allclose(gemm.weight.grad, plain.weight.grad, atol=1e-4)


def test_gaussian_likelihood_learns_its_scale(images):
    model = VAE(likelihood="gaussian", **QUICK).fit(images[0][:128])
    scale = model.net_.log_scale.exp().item()
    assert scale != pytest.approx(0.1) and 0 < scale < 1
    samples = model.sample(8)
    assert samples.min() >= 0 and samples.max() <= 1
    held_out = images[0][128:160]
    assert model.importance_nll(held_out, k=20).mean() < -model.elbo(held_out).mean()


def test_encode_decode_shapes(fitted, images):
    mu, logvar = fitted.encode(images[0][:5])
    assert mu.shape == logvar.shape == (5, 16)
    decoded = fitted.decode(mu)
    assert decoded.shape == (5, 1, 28, 28) and 0 <= decoded.min() and decoded.max() <= 1
    assert torch.equal(decoded, fitted.reconstruct(images[0][:5]))


def _bad_inputs(x, labels):
    c = one_hot(labels, 10)
    yield "constructor", lambda: VAE(latent=0), "latent: Input should be greater than 0"
    yield "constructor", lambda: VAE(likelihood="poisson"), "likelihood: Input should be 'bernoulli' or 'gaussian'"
    yield "constructor", lambda: VAE(lattent=3), "unknown parameter 'lattent'"
    yield "fit", lambda m: m.fit(x[:, 0]), r"shape \(N, 1, 28, 28\) for vae, got \(256, 28, 28\)"
    yield "fit", lambda m: m.fit(x.expand(-1, 3, -1, -1)), r"got \(256, 3, 28, 28\)"
    yield "fit", lambda m: m.fit((x * 255).to(torch.uint8)), "must hold floats, got torch.uint8"
    yield "fit", lambda m: m.fit(x * 255), r"lie in \[0, 1\], got values from 0 to 255"
    yield "fit", lambda m: m.fit(torch.where(x > 0.99, float("nan"), x)), "NaN or infinite"
    yield "fit", lambda m: m.fit(x.tolist()), "must be a tensor or numpy array, got list"
    yield "fit", lambda m: m.fit(x, c), "unconditional .* got a condition"
    yield "fit", lambda m: m.fit(x, valid=x[:, 0]), r"valid data must have shape"
    yield "cvae", lambda m: m.fit(x), r"conditional \(condition_dim=10\): pass a condition of shape \(256, 10\)"
    yield "cvae", lambda m: m.fit(x, c[:, :9]), r"condition must have shape \(256, 10\) .* got \(256, 9\)"
    yield "cvae", lambda m: m.fit(x, c[:100]), r"got \(100, 10\)"
    yield "cvae", lambda m: m.fit(x, c, valid=(x[:10], c[:9])), r"valid condition must have shape \(10, 10\)"
    yield "fit", lambda m: m.sample(4), "not fitted"
    yield "constructor", lambda: VAE(architecture="pythae-mnist", condition_dim=10), "'pythae-mnist' is unconditional"


@pytest.mark.parametrize("case", range(17))
def test_bad_input_is_one_line_before_compute(case, images, monkeypatch):
    where, call, message = list(_bad_inputs(*images))[case]
    monkeypatch.setattr(VAE, "_build", lambda self: pytest.fail("built the network before refusing the input"))
    model = None if where == "constructor" else VAE(device="cpu", condition_dim=10 if where == "cvae" else 0)
    with pytest.raises(MmworkError, match=message) as err:
        call() if model is None else call(model)
    assert "\n" not in str(err.value)


def test_bad_arguments_of_a_fitted_model(fitted, images):
    with pytest.raises(MmworkError, match="n must be a positive integer"):
        fitted.sample(0)
    with pytest.raises(MmworkError, match="unconditional"):
        fitted.sample(2, condition=one_hot([1, 2], 10))
    with pytest.raises(MmworkError, match="k .* must be a positive integer"):
        fitted.importance_nll(images[0][:2], k=0)
    with pytest.raises(MmworkError, match=r"latent vectors must have shape \(N, 16\)"):
        fitted.decode(torch.zeros(2, 8))


@pytest.mark.gpu
def test_trains_on_cuda_with_mixed_precision(images):
    model = VAE(device="cuda", amp=True, epochs=2, batch_size=64).fit(images[0][:192])
    assert model.net_.posterior.weight.device.type == "cuda" and np.isfinite(model.history_[-1]["loss"])
    assert model.importance_nll(images[0][192:], k=20).mean() < -model.elbo(images[0][192:]).mean()
