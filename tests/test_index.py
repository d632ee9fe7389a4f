"""The IVF and HNSW indexes: recall on real features, exact re-scoring, stale tables rebuilt, foreign indexes refused."""
import json
import logging
import shutil

import numpy as np
import pytest

import mmwork
from mmwork import MmworkError, datasets, read_table
from mmwork.search import columns, index
from mmwork.features import extract
from test_knn import FEATURES, write_features


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """``clips``: speech-prompts' real MFCC statistics, each clip repeated 40 times with 5% noise per
    dimension (22,720 rows, as the 1M-row benchmark does): neighbours are many and close, so the
    graph must actually search. ``small``: the 568 real rows alone, for the tests that rebuild."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("data")))
        datasets.get("speech-prompts")
        extract("speech-prompts", "audio", scheduler="threads", chunk_size=64, progress=False)
        table = read_table("speech-prompts", "features/audio")
        base = np.stack(table["mfcc_stats"]).astype(np.float32)
        rng = np.random.default_rng(0)
        copies = 40
        vectors = np.tile(base, (copies, 1)) + rng.normal(0, 0.05, (copies * len(base), base.shape[1])) * base.std(0)
        ids = [f"{i}#{r}" for r in range(copies) for i in table["item_id"]]
        write_features("clips", ids, vectors.astype(np.float32), parts=2)
        write_features("small", ids[:len(base)], base, parts=2)
        yield ids, vectors.astype(np.float32)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_recall_at_10_on_real_features(real, kind):
    ids, _ = real
    index.build("clips", FEATURES, kind=kind, progress=False)
    assert index.recall_at_k("clips", FEATURES, ids[::227][:100], k=10, kind=kind) >= 0.95


def test_the_index_rescores_exactly(real):
    ids, _ = real
    queries = ids[::227][:100]
    exact = mmwork.similar("clips", queries[:20], features=FEATURES, k=10)
    approx = mmwork.similar("clips", queries[:20], features=FEATURES, k=10, index=True)
    both = exact.merge(approx, on=["query", "item_id"], suffixes=("_exact", "_index"))
    np.testing.assert_allclose(both["similarity_exact"], both["similarity_index"], rtol=0, atol=1e-12)
    firsts = exact["rank"] <= 3  # the top neighbours are the same, in the same order
    assert exact[firsts][["query", "item_id"]].values.tolist() == approx[approx["rank"] <= 3][["query", "item_id"]].values.tolist()


def test_a_stale_index_is_rebuilt_never_used(real, caplog):
    ids, vectors = real
    ids, vectors = ids[:568], vectors[:568]
    index.build("small", FEATURES, standardize=False, progress=False)
    changed = vectors.copy()
    changed[5] = -vectors[9]  # item 5 now points away from item 9
    write_features("small", ids, changed, parts=2)
    with caplog.at_level(logging.WARNING, logger="mmwork.search.index"):
        found = index.search("small", FEATURES, changed[5], k=3, standardize=False)
    assert "stale" in caplog.text
    assert found["item_id"].iloc[0] == ids[5] and found["similarity"].iloc[0] == pytest.approx(1.0)
    listed = index.list_indexes().set_index(["table", "standardize"]).loc[("small/features/audio:mfcc_stats", False)]
    assert listed["state"] == "fresh" and listed["rows"] == len(ids)
    write_features("small", ids, vectors, parts=2)
    listed = index.list_indexes().set_index(["table", "standardize"]).loc[("small/features/audio:mfcc_stats", False)]
    assert listed["state"] == "stale"


def test_an_index_for_another_column_is_refused(real):
    ids, vectors = real
    write_features("other", ids[:500], vectors[:500, :60], parts=1)  # same column name, another table and width
    built = index.build("small", FEATURES, standardize=False, progress=False)
    theirs = index.folder(columns.feature_column("small", FEATURES), False)
    ours = index.folder(columns.feature_column("other", FEATURES), False)
    shutil.copytree(theirs, ours)
    with pytest.raises(MmworkError, match="was built for small/features/audio:mfcc_stats"):
        mmwork.similar("other", ids[0], features=FEATURES, standardize=False, index=True)
    assert json.loads((ours / "meta.json").read_text())["fingerprint"] == built["fingerprint"]  # left as it was


def test_cli_builds_lists_and_searches(real, capsys):
    from mmwork.cli import main
    ids, _ = real
    assert main(["index", "build", "small", FEATURES, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 568
    assert main(["index", "list", "--json"]) == 0
    assert any(r["table"] == "small/features/audio:mfcc_stats" and r["state"] == "fresh" and r["standardize"]
               for r in json.loads(capsys.readouterr().out))
    assert main(["similar", "small", ids[0], "--features", FEATURES, "--k", "3", "--index", "--json"]) == 0
    assert [r["rank"] for r in json.loads(capsys.readouterr().out)] == [1, 2, 3]
    with pytest.raises(SystemExit):
        main(["index", "build", "small", FEATURES, "--kind", "lsh"])


def test_on_a_cluster_the_search_stays_exact(real, caplog):
    from distributed import Client, LocalCluster
    ids, _ = real
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster), \
            caplog.at_level(logging.WARNING, logger="mmwork.search.index"):
        got = mmwork.similar("clips", ids[3], features=FEATURES, k=5, index=True, scheduler=cluster.scheduler_address)
    assert "not used on a Dask cluster" in caplog.text
    assert got["item_id"].tolist() == mmwork.similar("clips", ids[3], features=FEATURES, k=5)["item_id"].tolist()
