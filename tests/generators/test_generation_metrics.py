"""Generation metrics on cases with known answers: closed forms, brute force, the prdc reference."""
import numpy as np
import pytest
import scipy.linalg
import torch

from mmwork import MmworkError
from mmwork.evaluation import generation
from mmwork.evaluation.generation import active_units, frechet_distance, kid, prdc


def _closed_form(mu_a, cov_a, mu_b, cov_b) -> float:
    """Fréchet distance of two Gaussians with scipy's general matrix square root."""
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * cross))


def test_frechet_distance_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(torch.from_numpy(x).float(), x) == pytest.approx(0.0, abs=1e-5)


def test_frechet_distance_equals_the_closed_form():
    rng = np.random.default_rng(1)
    mu_a, mu_b = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, 2.0])
    root_a, root_b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    cov_a, cov_b = root_a @ root_a.T + 0.1 * np.eye(3), root_b @ root_b.T + 0.1 * np.eye(3)
    a = rng.multivariate_normal(mu_a, cov_a, size=20000)
    b = rng.multivariate_normal(mu_b, cov_b, size=20000)
    # exact against the sample moments (another square-root method), close to the population's
    moments = _closed_form(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(moments, rel=1e-9)
    assert frechet_distance(a, b) == pytest.approx(_closed_form(mu_a, cov_a, mu_b, cov_b), rel=0.03)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    # diagonal covariances: sum of (sqrt(var_a) - sqrt(var_b))^2 plus the squared mean shift
    x = rng.normal(size=(50000, 2)) * [1.0, 2.0]
    y = rng.normal(size=(50000, 2)) * [3.0, 0.5] + [1.0, 1.0]
    assert frechet_distance(x, y) == pytest.approx((1 - 3) ** 2 + (2 - 0.5) ** 2 + 2, rel=0.02)


def test_frechet_distance_refuses_too_few_samples():
    x = np.zeros((64, 64))
    with pytest.raises(MmworkError, match=r"64 dimensions needs .* at least 65 .* got 64 and 1000") as err:
        frechet_distance(x, np.ones((1000, 64)))
    assert "\n" not in str(err.value)
    with pytest.raises(MmworkError, match="different feature sizes: 3 and 4"):
        frechet_distance(np.ones((10, 3)), np.ones((10, 4)))
    with pytest.raises(MmworkError, match="NaN"):
        frechet_distance(np.full((10, 2), np.nan), np.ones((10, 2)))


def test_kid_is_unbiased_and_detects_a_shift():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    same = kid(a, b, subsets=50, subset_size=300)
    assert abs(same.mean) < 3 * same.std and (same.subsets, same.subset_size) == (50, 300)
    shifted = kid(a, b + 0.5, subsets=50, subset_size=300)
    assert shifted.mean > 10 * shifted.std + abs(same.mean)
    assert kid(a, b, subsets=2, subset_size=5000).subset_size == 600  # capped at the smaller set


def test_kid_matches_the_unbiased_estimator_written_out():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 1
    k = lambda u, v: (u @ v / 2 + 1) ** 3  # noqa: E731
    m = 6
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert kid(x, y, subsets=1, subset_size=6).mean == pytest.approx(within - 2 * across, rel=1e-12)


def _prdc_full_matrix(real, fake, k):
    """The reference prdc package's computation, with full distance matrices."""
    d = lambda u, v: np.sqrt(((u[:, None] - v[None]) ** 2).sum(-1))  # noqa: E731
    r_real = np.sort(d(real, real), axis=1)[:, k]
    r_fake = np.sort(d(fake, fake), axis=1)[:, k]
    rf = d(real, fake)
    return {"precision": (rf < r_real[:, None]).any(0).mean(), "recall": (rf < r_fake[None]).any(1).mean(),
            "density": (rf < r_real[:, None]).sum(0).mean() / k, "coverage": (rf.min(1) < r_real).mean()}


def test_prdc_matches_the_reference_computation_in_small_blocks(monkeypatch):
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(120, 5)), rng.normal(size=(90, 5)) * 1.3 + 0.2
    expected = _prdc_full_matrix(real, fake, 5)
    blocks = generation._distance_blocks
    monkeypatch.setattr(generation, "_distance_blocks", lambda x, y: blocks(x, y, budget=500))
    got = prdc(real, fake, k=5)
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0 < got["precision"] < 1 and 0 < got["coverage"] < 1


def test_prdc_known_cases():
    rng = np.random.default_rng(5)
    real = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 20])  # two modes
    same = prdc(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0, abs=0.05)
    collapsed = prdc(real, rng.normal(size=(400, 2)))  # every sample from the first mode only
    assert collapsed["precision"] > 0.9 and collapsed["coverage"] < 0.55 and collapsed["recall"] < 0.55
    far = prdc(real, rng.normal(size=(100, 2)) + 1000)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    with pytest.raises(MmworkError, match="more than 5 samples"):
        prdc(real, real[:5])


def test_active_units():
    mu = np.random.default_rng(6).normal(size=(500, 4)) * [1.0, 0.2, 0.05, 0.0]
    assert active_units(mu) == 2
    assert active_units(torch.from_numpy(mu), threshold=0.001) == 3
    with pytest.raises(MmworkError, match=r"\(samples, features\)"):
        active_units(np.ones(5))
