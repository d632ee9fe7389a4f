"""Generation metrics on cases with known answers: closed forms, brute force, the prdc reference."""
import numpy as np
import pytest
import scipy.linalg
import torch

from mmwork import MmworkError
from mmwork.evaluation import generation
from mmwork.evaluation.generation import active_units, frechet_distance, kid, mmd2, neighbours, prdc


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
    assert kid(a, b, subsets=2, subset_size=5000).subset_size == 300  # half the smaller set


def _written_out(x, y):
    """The unbiased MMD² with the cubic kernel, pair by pair (sets of any sizes)."""
    k = lambda u, v: (u @ v / x.shape[1] + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    return (sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
            + sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
            - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n))


def test_kid_matches_the_unbiased_estimator_written_out():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(9, 2)) + 1
    draws = np.random.default_rng(4)
    i, j = draws.choice(8, 6, replace=False), draws.choice(9, 6, replace=False)
    assert kid(x, y, subsets=1, subset_size=6, seed=4).mean == pytest.approx(_written_out(x[i], y[j]), rel=1e-12)
    assert mmd2(x, y) == pytest.approx(_written_out(x, y), rel=1e-12)  # whole sets of unequal sizes


def test_kid_std_is_never_a_false_zero_on_small_sets():
    """Issue 19: with subsets as large as the sets every subset was the whole set, so the std over
    them was 0 whatever the data; now subsets are strictly smaller, or the std is undefined."""
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.2
    for asked in (30, 1000):  # the old code drew the whole 30-sample set every time here
        got = kid(a, b, subsets=50, subset_size=asked, seed=1)
        assert got.subset_size == 15 and got.std > 0 and np.isfinite(got.std)
        # the std is the real spread of subset estimates at that size: the same draws, written out
        draws, values = np.random.default_rng(1), []
        for _ in range(50):
            i, j = draws.choice(40, 15, replace=False), draws.choice(30, 15, replace=False)
            values.append(mmd2(a[i], b[j]))
        assert got.std == pytest.approx(np.std(values), rel=1e-9) and got.mean == pytest.approx(np.mean(values))
        assert len({round(v, 12) for v in values}) == 50  # fifty different subsets, not one set fifty times
    assert kid(a, b, subsets=5, subset_size=29).subset_size == 29  # below both sets: as asked
    tiny = kid(a[:3], b, subsets=50, subset_size=1000)  # too few for two different halves: one estimate
    assert np.isnan(tiny.std) and (tiny.subsets, tiny.subset_size) == (1, 3)
    assert tiny.mean == pytest.approx(_written_out(a[:3], b), rel=1e-12)
    assert generation.format_kid(tiny.mean, tiny.std).endswith("± n/a")
    with pytest.raises(MmworkError, match="subset_size must be an integer of at least 2"):
        kid(a, b, subset_size=1)


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
    blocks = neighbours._distance_blocks
    monkeypatch.setattr(neighbours, "_distance_blocks", lambda x, y: blocks(x, y, budget=500))
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


def test_kid_whole_kernel_matrices_give_the_per_subset_estimate():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 0.3
    for subsets in (2, 40):  # 2 x 30^2 < 110^2: products per subset; 40 x 30^2 > 110^2: whole matrices
        draws, expected = np.random.default_rng(9), []
        for _ in range(subsets):
            x, y = a[draws.choice(60, 30, replace=False)], b[draws.choice(50, 30, replace=False)]
            expected.append(mmd2(x, y))  # the estimate on one subset pair
        got = kid(a, b, subsets=subsets, subset_size=30, seed=9)
        assert got.mean == pytest.approx(np.mean(expected), rel=1e-10)
        assert got.std == pytest.approx(np.std(expected), rel=1e-8)


# -- images: nearest neighbours, memorisation, mode coverage, the table --------------------------------

def test_nearest_neighbours_equal_brute_force_on_real_images(images, monkeypatch):
    x = images[0]
    queries = torch.cat([x[:40], (x[40:80] + 0.05 * torch.randn(40, 1, 28, 28, generator=torch.Generator()
                                                                   .manual_seed(0))).clamp(0, 1)])
    reference = x[40:]
    full = torch.cdist(queries.flatten(1).double(), reference.flatten(1).double())
    distance, index = generation.nearest_neighbours(queries, reference, budget=4000)  # many small blocks
    assert index.dtype == np.int64 and distance.dtype == np.float64
    np.testing.assert_array_equal(index, full.argmin(1).numpy())
    np.testing.assert_allclose(distance, full.min(1).values.numpy(), rtol=1e-12)
    assert (distance[40:] == 0).sum() == 0 and (distance[40:] < distance[:40]).all()  # noisy copies of refs


def test_memorisation_finds_copied_training_images(images):
    x = images[0]
    train, test = x[:160], x[160:]
    copied = [5, 99, 150]
    samples = torch.cat([train[copied], test[:5]])
    m = generation.memorisation(samples, train, test)
    assert m.space == "pixels" and m.n_train == 160 and len(m.test_distance) == 96
    assert (m.distance[:3] == 0).all() and (m.distance[3:] > 0).all()
    for i, j in zip(copied, m.nearest[:3]):
        assert torch.equal(train[j], train[i])  # the copy's own image (or an identical one)
    summary = m.summary()
    assert summary["share_below_test_p1"] >= 3 / 8 and summary["p5"] == 0.0
    assert summary["test_p5"] > 0 and summary["median"] > 0
    again = generation.memorisation(samples[:3], train, test_distance=m.test_distance)
    np.testing.assert_array_equal(again.distance, m.distance[:3])
    # in a feature space: the same copies still sit at distance 0
    pooled = generation.memorisation(samples, train, test, space=lambda t: torch.nn.functional.avg_pool2d(t, 4))
    assert (pooled.distance[:3] == 0).all() and pooled.space != "pixels"
    with pytest.raises(MmworkError, match="either test images or test_distance"):
        generation.memorisation(samples, train)
    with pytest.raises(MmworkError, match="different sizes per row: 784 and 16"):
        generation.memorisation(samples, train[:, :, :4, :4], test)


def test_class_histogram_and_mode_coverage_verdicts():
    even = generation.class_histogram(torch.arange(1000) % 10, 10)
    assert even.tolist() == [0.1] * 10 and generation.mode_coverage(even).covered
    skewed = np.r_[np.repeat(np.arange(10), 90), np.full(100, 3)]  # class 3: 190 of 1000
    verdict = generation.mode_coverage(generation.class_histogram(skewed, 10))
    assert not verdict.covered and verdict.above == [3] and verdict.missing == verdict.below == []
    few = np.r_[np.repeat(np.arange(9), 110), np.full(10, 9)]       # class 9: 10 of 1000
    assert generation.mode_coverage(generation.class_histogram(few, 10)).below == [9]
    missing = generation.mode_coverage(generation.class_histogram(np.arange(900) % 9, 10))
    assert missing.missing == [9] and not missing.covered
    assert generation.mode_coverage([0.5, 0.5], low=0.4, high=0.6).covered
    with pytest.raises(MmworkError, match=r"lie in 0\.\.9"):
        generation.class_histogram([0, 10], 10)
    with pytest.raises(MmworkError, match="integer classes"):
        generation.class_histogram(np.array([0.5, 1.0]), 10)
    with pytest.raises(MmworkError, match="summing to 1"):
        generation.mode_coverage([3, 7])


def _pool(x):
    """A small real feature space: 7 x 7 average pooling of the images, 16-d."""
    return torch.nn.functional.avg_pool2d(torch.as_tensor(x), 7).flatten(1).double().numpy()


def test_image_generation_table_on_real_images(images):
    x = images[0]
    train, test = x[:128], x[128:]
    blurred = torch.nn.functional.avg_pool2d(test, 3, stride=1, padding=1)
    table = generation.image_generation_table({"test copy": test, "blurred": blurred}, test=test, train=train,
                                              spaces={"pool": _pool}, kid_subsets=20, kid_subset_size=64)
    assert list(table.columns) == generation.TABLE_COLUMNS
    value = table.set_index(["source", "feature_space", "metric"])["value"]
    assert set(table["source"]) == {"test copy", "blurred", "train images", "uniform noise", "test images"}
    assert set(table.loc[table.kind == "floor", "source"]) == {"train images", "test images"}
    # n defaults to the smallest set (128 training images): the copy is scored on 128 of its own images
    assert (table.loc[table.feature_space == "pool", ["n_samples", "n_real"]] == 128).all().all()
    assert value["test copy", "pool", "FD"] < value["train images", "pool", "FD"] < value["uniform noise", "pool", "FD"]
    assert value["train images", "pool", "precision"] > 0.5 > value["uniform noise", "pool", "precision"]
    kid_row = table[(table.source == "uniform noise") & (table.metric == "KID")].iloc[0]
    assert kid_row["value"] > 3 * kid_row["std"] and kid_row["detail"].endswith("20 subsets of 64")
    assert not table["metric"].str.contains("FID").any()
    # memorisation in pixels: nothing here copies the 128 training images, noise is far away
    assert value["test images", "pixels", "share_below_test_p1"] == pytest.approx(0.01, abs=0.01)
    assert value["uniform noise", "pixels", "nn_train_median"] > 2 * value["blurred", "pixels", "nn_train_median"]


def test_image_generation_table_counts_per_space_and_refusals(images):
    x = images[0]
    pooled = dict(spaces={"pool": _pool, "coarse": lambda t: _pool(t)[:, :4]}, memorise=False, kid_subsets=5)
    table = generation.image_generation_table({"m": x[:100]}, test=x[100:], train=x, n={"coarse": 20}, **pooled)
    assert table.groupby("feature_space")["n_samples"].first().to_dict() == {"coarse": 20, "pool": 100}
    with pytest.raises(MmworkError, match=r"pool space \(16 dimensions\) needs more than 16 samples per set, got "
                                          r"n=10; draw at least 17"):
        generation.image_generation_table({"m": x[:10]}, test=x, train=x, **pooled)
    kid_only = generation.image_generation_table({"m": x[:10]}, test=x, train=x, metrics="KID", **pooled)
    assert set(kid_only["metric"]) == {"KID"} and len(kid_only) == 6  # model, floor, noise; two spaces
    # 10 images per set and 1,000 asked: subsets of 5, a real spread (the old code: the whole set, std 0)
    assert (kid_only["std"] > 0).all() and kid_only["detail"].str.endswith("subsets of 5 (half the set: 1000 asked)").all()
    with pytest.raises(MmworkError, match=r"unknown metrics \['FID'\]"):
        generation.image_generation_table({"m": x}, test=x, train=x, metrics=["FD", "FID"], **pooled)
    with pytest.raises(MmworkError, match=r"n=200 for the pool space exceeds the smallest set \(samples 'm': 100"):
        generation.image_generation_table({"m": x[:100]}, test=x, train=x, n=200, **pooled)
    with pytest.raises(MmworkError, match="'uniform noise' names a source the table adds itself"):
        generation.image_generation_table({"uniform noise": x}, test=x, train=x, **pooled)
    with pytest.raises(MmworkError, match=r"the samples 'm' must lie in \[0, 1\]"):
        generation.image_generation_table({"m": x * 255}, test=x, train=x, **pooled)
    with pytest.raises(MmworkError, match=r"the samples 'm' have shape \(1, 14, 14\) per image"):
        generation.image_generation_table({"m": x[:, :, :14, :14]}, test=x, train=x, **pooled)


def test_classifier_space_is_the_penultimate_layer(images):
    from mmwork.models.judges import Classifier
    x, y = images[0][:96], images[1][:96]
    model = Classifier(device="cpu", epochs=1, batch_size=32, channels=8, features=32).fit(x, y)
    space = generation.classifier_space(model)
    features = space(x[:5])
    assert features.dtype == np.float64 and features.shape == (5, 32) and space.dims == 32
    np.testing.assert_array_equal(features, model.features(x[:5]).double().numpy())
    assert list(generation.image_spaces(model, effnet=False)) == ["classifier"]
    with pytest.raises(MmworkError, match="needs a fitted"):
        generation.classifier_space(Classifier())


def test_effnet_features_take_the_feature_pipelines_path(fashion_store):
    from mmwork.features.image import decode_image, get_cnn_encoder
    from mmwork.models.data import fashion_mnist
    from mmwork.store.tables import read_table
    x = fashion_mnist("test", limit=2).images
    features = generation.effnet_features(x, device="cpu")
    assert features.shape == (2, 1280) and features.dtype == np.float64 and np.isfinite(features).all()
    pngs = read_table("fashion-mnist", "items", columns=["image"], filters=[("split", "==", "test")])["image"][:2]
    pipeline = get_cnn_encoder("cpu").encode([decode_image(png) for png in pngs])  # what `mmwork extract` stores
    np.testing.assert_allclose(features, pipeline, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(generation.effnet_features(x, device="cpu"), features)  # deterministic
    with pytest.raises(MmworkError, match=r"non-empty \(N, 1, H, W\)"):
        generation.effnet_features(x[0], device="cpu")
