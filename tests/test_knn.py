"""Exact k-NN streamed from Parquet equals a float64 brute force on real features, ties included."""
import json
import math

import numpy as np
import pyarrow as pa
import pytest

import mmwork
from mmwork import MmworkError, datasets, read_table
from mmwork.search import bounds, columns, knn
from mmwork.search.stats import column_stats
from mmwork.features import extract
from mmwork.store.tables import table_path, write_table

FEATURES = "audio:mfcc_stats"


def write_features(dataset: str, ids: list[str], vectors: np.ndarray, parts: int = 3, fixed: bool = True) -> None:
    """A feature table of ``parts`` part files (as the pipeline writes them) in the current data root."""
    kind = pa.list_(pa.float32(), vectors.shape[1]) if fixed else pa.list_(pa.float32())
    schema = pa.schema([("item_id", pa.string()), ("mfcc_stats", kind)])
    folder = table_path(dataset, "features/audio")
    for old in folder.glob("part-*.parquet") if folder.is_dir() else []:
        old.unlink()
    for part, rows in enumerate(np.array_split(np.arange(len(ids)), parts)):
        flat = pa.array(vectors[rows].astype(np.float32).ravel())
        column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]) if fixed else \
            pa.ListArray.from_arrays(pa.array(np.arange(len(rows) + 1, dtype=np.int32) * vectors.shape[1]), flat)
        write_table(pa.table({"item_id": [ids[i] for i in rows], "mfcc_stats": column}, schema=schema),
                    folder / f"part-{part:05d}.parquet", schema=schema, producer="test")


def brute_force(vectors, ids, query, k, standardize, exclude=None):
    """float64 cosine over every row, one row at a time with exactly rounded sums (a BLAS matrix-vector
    product rounds a row differently by its position, so equal rows would not tie on every CPU); ties
    broken by item id ascending."""
    x, q = np.array(vectors, np.float64), np.array(query, np.float64)
    if standardize:
        mean, std = x.mean(0), x.std(0)
        x, q = (x - mean) / std, (q - mean) / std
    q = q / math.sqrt(math.fsum(q * q))
    sims = np.array([math.fsum(row * q) / math.sqrt(math.fsum(row * row)) for row in x])
    order = [i for i in sorted(range(len(ids)), key=lambda i: (-sims[i], ids[i])) if ids[i] != exclude][:k]
    return [ids[i] for i in order], sims[order]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """speech-prompts' real MFCC statistics, plus ``dupes``: the same rows in three parts with 40 rows
    duplicated under other ids (exact ties), some sorting before their original and some after."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("data")))
        datasets.get("speech-prompts")
        extract("speech-prompts", "audio", scheduler="threads", chunk_size=64, progress=False)
        table = read_table("speech-prompts", "features/audio")
        ids = table["item_id"].tolist()
        vectors = np.stack(table["mfcc_stats"]).astype(np.float32)
        twins = list(range(0, 400, 10))
        ids += [f"{'0' if j % 2 else 'zz'}-twin-of-{ids[i]}" for j, i in enumerate(twins)]
        vectors = np.concatenate([vectors, vectors[twins]])
        write_features("dupes", ids, vectors)
        write_features("dupes-list", ids, vectors, fixed=False)
        yield ids, vectors


@pytest.mark.parametrize("standardize", [False, True])
def test_exact_neighbours_equal_a_float64_brute_force_ties_included(real, standardize):
    ids, vectors = real
    for q in (0, 10, 130, 399, 500):  # 0, 10, 130 and 399... have twins: a tie at similarity 1
        got = knn.nearest("dupes", FEATURES, vectors[q], k=12, standardize=standardize, exclude=ids[q])
        want, sims = brute_force(vectors, ids, vectors[q], 12, standardize, exclude=ids[q])
        assert got["item_id"].tolist() == want
        np.testing.assert_allclose(got["similarity"], sims, rtol=0, atol=1e-12)
        assert got["rank"].tolist() == list(range(1, 13)) and (got["query"] == 0).all()
    twin = next(i for i in ids if i.endswith("twin-of-" + ids[10]))
    top = knn.nearest("dupes", FEATURES, vectors[10], k=2, standardize=standardize)
    assert top["item_id"].tolist() == sorted([ids[10], twin])  # equal similarity: ordered by id
    as_lists = knn.nearest("dupes-list", FEATURES, vectors[130], k=12, standardize=standardize)
    assert as_lists["item_id"].tolist() == knn.nearest("dupes", FEATURES, vectors[130], k=12,
                                                       standardize=standardize)["item_id"].tolist()


def test_a_batch_of_queries_equals_single_queries(real):
    ids, _ = real
    some = [ids[i] for i in (3, 10, 77, 250, 567, 570)]
    batch = mmwork.similar("dupes", some, features=FEATURES, k=7)
    assert batch["query"].tolist() == [i for i in some for _ in range(7)]
    for item in some:
        one = mmwork.similar("dupes", item, features=FEATURES, k=7)
        mine = batch[batch["query"] == item].reset_index(drop=True)
        assert mine["item_id"].tolist() == one["item_id"].tolist()
        np.testing.assert_array_equal(mine["similarity"].to_numpy(), one["similarity"].to_numpy())


def test_the_item_lookup_returns_its_stored_vector(real):
    ids, vectors = real
    picks = [567, 3, 300, 580]  # across the three parts, out of order
    np.testing.assert_array_equal(columns.vectors_of("dupes", FEATURES, [ids[i] for i in picks]), vectors[picks])
    with pytest.raises(MmworkError, match=r"'nope' has no row in dupes/features/audio \(nor 1 more\)"):
        columns.vectors_of("dupes", FEATURES, [ids[0], "nope", "nope-2"])


def test_statistics_are_stored_and_recomputed_when_the_table_changes(real):
    ids, vectors = real
    stats = column_stats("dupes", FEATURES)
    np.testing.assert_allclose(stats.mean, vectors.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, vectors.astype(np.float64).std(0), rtol=1e-10)
    col = columns.feature_column("dupes", FEATURES)
    stored = json.loads((col.derived_dir() / "mfcc_stats.stats.json").read_text())
    assert stored["fingerprint"] == col.fingerprint() and stored["count"] == len(ids)

    fewer = len(ids) - 100  # the table changes: stats follow, and so do z-scored answers
    write_features("dupes", ids[:fewer], vectors[:fewer])
    changed = column_stats("dupes", FEATURES)
    assert changed.count == fewer
    np.testing.assert_allclose(changed.mean, vectors[:fewer].astype(np.float64).mean(0), rtol=1e-12)
    got = knn.nearest("dupes", FEATURES, vectors[5], k=10, standardize=True, exclude=ids[5])
    assert got["item_id"].tolist() == brute_force(vectors[:fewer], ids[:fewer], vectors[5], 10, True, ids[5])[0]
    write_features("dupes", ids, vectors)


def test_bad_input_fails_before_compute_with_one_line(real):
    ids, vectors = real
    with pytest.raises(MmworkError, match="query vectors have 20 dimension.* but dupes/features/audio:mfcc_stats has 120"):
        knn.nearest("dupes", FEATURES, vectors[0][:20])
    with pytest.raises(MmworkError, match=f"k must be between 1 and {len(ids) - 1:,}"):
        mmwork.similar("dupes", ids[0], features=FEATURES, k=len(ids))
    with pytest.raises(MmworkError, match="NaN or infinite"):
        knn.nearest("dupes", FEATURES, np.full(120, np.nan))
    with pytest.raises(MmworkError, match="zero vector"):
        knn.nearest("dupes", FEATURES, np.zeros(120))
    with pytest.raises(MmworkError, match="has no row"):
        mmwork.similar("dupes", "no-such-item", features=FEATURES)
    with pytest.raises(MmworkError, match="MODALITY:COLUMN"):
        knn.nearest("dupes", "mfcc_stats", vectors[0])
    broken = vectors.copy()
    broken[[7, 70, 400]] = np.nan
    broken[8, 3] = np.inf
    write_features("broken", ids, broken)
    for standardize in (False, True):
        with pytest.raises(MmworkError, match=r"broken/features/audio:mfcc_stats has 4 vector\(s\) with NaN"):
            knn.nearest("broken", FEATURES, vectors[0], standardize=standardize)
    assert not (columns.feature_column("broken", FEATURES).derived_dir() / "mfcc_stats.stats.json").exists()


def test_cli_answers_several_items_in_one_pass(real, capsys):
    from mmwork.cli import main
    ids, _ = real
    assert main(["similar", "dupes", ids[1], ids[2], "--features", FEATURES, "--k", "3", "--no-standardize",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["query"] for r in rows] == [ids[1]] * 3 + [ids[2]] * 3
    assert main(["similar", "dupes", ids[1], "--features", "audio:mfcc_stats", "--k", "99999"]) == 2
    assert "k must be between" in capsys.readouterr().err


def offset_table(dataset: str, n: int = 3000, dim: int = 8):
    """Rows whose first dimension is 10,000.000488 ± 0.005: float32 steps there are 0.000977 apart, so
    the float32 mean sits half a step (0.1 standard deviations) from the float64 one, and float32
    z-scoring moves cosines by up to 0.1, far beyond a fixed float32 margin (the old rule,
    4·d·2⁻²⁴ ≈ 2·10⁻⁶: it lost a true neighbour for 10 of the 20 queries below). Row 5 has three exact
    twins whose ids sort before and after its own."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors[:, 0] = (1e4 + 0.000488 + rng.normal(scale=0.005, size=n)).astype(np.float32)
    ids = [f"item-{i:05d}" for i in range(n)] + ["item-00004-twin", "item-00005-twin", "zz-twin"]
    vectors = np.concatenate([vectors, vectors[[5, 5, 5]]])
    write_features(dataset, ids, vectors)
    return ids, vectors


def test_per_row_error_bounds_keep_the_true_best_k_where_a_fixed_margin_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("MMWORK_DATA", str(tmp_path))
    ids, vectors = offset_table("offset")
    for q in range(0, 3000, 150):
        got = knn.nearest("offset", FEATURES, vectors[q], k=10, standardize=True, exclude=ids[q])
        want, sims = brute_force(vectors, ids, vectors[q], 10, True, exclude=ids[q])
        assert got["item_id"].tolist() == want
        # the statistics' own float64 rounding (a mean near 10,000 over a spread of 0.01) differs by 1e-11
        np.testing.assert_allclose(got["similarity"], sims, rtol=0, atol=1e-9)


@pytest.mark.parametrize("standardize", [False, True])
def test_ties_that_straddle_the_k_boundary_are_broken_by_id(tmp_path, monkeypatch, standardize):
    """Row 5 and its three twins rank 8th to 11th for row 1597 (z-scored); the fixed margin got every
    cut through them wrong."""
    monkeypatch.setenv("MMWORK_DATA", str(tmp_path))
    ids, vectors = offset_table("ties")
    group = sorted(["item-00004-twin", "item-00005", "item-00005-twin", "zz-twin"])  # four equal rows
    ranking, sims = brute_force(vectors, ids, vectors[1597], len(ids) - 1, standardize, exclude=ids[1597])
    first = min(ranking.index(i) for i in group)
    assert ranking[first:first + 4] == group and len(set(sims[first:first + 4])) == 1
    assert first == 7 or not standardize
    for k in range(first + 1, first + 4):  # the boundary cuts the tie after 1, 2 and 3 of the four
        got = knn.nearest("ties", FEATURES, vectors[1597], k=k, standardize=standardize, exclude=ids[1597])
        assert got["item_id"].tolist() == ranking[:k]
    # the same vector at every position of an array scores the same, to the last bit
    stats = column_stats("ties", FEATURES) if standardize else None
    unit = knn.unit_queries(vectors[[1597]], stats)[0]
    assert len(set(bounds.exact_cosines(np.repeat(vectors[[5]], 37, axis=0), unit, stats).tolist())) == 1
