"""Ad-hoc queries: pushdown results equal pandas, neighbours equal brute force, clear errors."""
import shutil

import numpy as np
import pandas as pd
import pytest

import mmwork
import mmwork.core.paths
from mmwork import MmworkError, datasets, read_table
from mmwork.features import extract
from mmwork.search.queries import feature_stat_by, parse_where, top_items_by
from mmwork.search.similar import similar_to_vector


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("data")))
        datasets.get("speech-prompts")
        datasets.get("movielens-100k")
        extract("speech-prompts", "audio", scheduler="threads", chunk_size=64, progress=False)
        yield


def test_filters_and_projection_equal_pandas(root):
    items = read_table("speech-prompts", "items")
    got = mmwork.open("speech-prompts", "items", columns=["item_id", "duration_s"],
                      filters=[("duration_s", ">", 2.0), ("category", "==", "general")]).compute()
    assert list(got.columns) == ["item_id", "duration_s"]
    want = items[(items["duration_s"] > 2.0) & (items["category"] == "general")][["item_id", "duration_s"]]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)
    via_cli_syntax = mmwork.query("speech-prompts", "items", columns=["item_id"],
                                  where=["category in [digits, letters]", "duration_s <= 0.7"])
    want = items[items["category"].isin(["digits", "letters"]) & (items["duration_s"] <= 0.7)]
    assert sorted(via_cli_syntax["item_id"]) == sorted(want["item_id"])
    assert len(mmwork.query("speech-prompts", "items", limit=7)) == 7


def test_query_writes_output_files(root, tmp_path):
    mmwork.query("speech-prompts", "items", columns=["item_id", "text"], where=["category == digits"],
                 output=tmp_path / "digits.csv")
    assert len(pd.read_csv(tmp_path / "digits.csv")) == 94


def test_similar_matches_brute_force(root):
    table = read_table("speech-prompts", "features/audio")
    vectors = np.stack(table["mfcc_stats"]).astype(np.float64)
    z = (vectors - vectors.mean(0)) / vectors.std(0)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    query = int(np.flatnonzero(table["item_id"] == "digits/7")[0])
    order = np.argsort(-(z @ z[query]), kind="stable")
    want = [table["item_id"][i] for i in order if i != query][:10]
    got = mmwork.similar("speech-prompts", "digits/7", features="audio:mfcc_stats", k=10)
    assert got["item_id"].tolist() == want
    assert {"text", "category"} <= set(got.columns)  # titles come with the answer
    raw = similar_to_vector("speech-prompts", vectors[query], "audio:mfcc_stats", k=1, standardize=False)
    assert raw["item_id"].item() == "digits/7" and raw["similarity"].item() == pytest.approx(1.0, abs=1e-5)


def test_similar_on_a_distributed_cluster(root):
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
        got = mmwork.similar("speech-prompts", "digits/7", features="audio:mfcc_stats", k=5,
                             scheduler=cluster.scheduler_address)
    assert got["item_id"].tolist() == mmwork.similar("speech-prompts", "digits/7", features="audio:mfcc_stats",
                                                     k=5)["item_id"].tolist()


def test_analyst_joins(root):
    by_category = feature_stat_by("speech-prompts", "audio:mfcc_stats", by="category")
    assert by_category["count"].sum() == 568 and by_category.index[-1] == "silence"  # silence has the least energy
    per_genre = top_items_by("movielens-100k", "genres", k=1).set_index("genres")
    assert per_genre.loc["Sci-Fi", "title"] == "Star Wars" and per_genre.loc["Sci-Fi", "interactions"] == 583


def test_catalog_lists_tables_with_extractor_params(root):
    cat = mmwork.catalog()
    audio = cat[(cat["dataset"] == "speech-prompts") & (cat["table"] == "features/audio")].iloc[0]
    assert audio["rows"] == 568 and audio["params"]["params"]["n_mfcc"] == 20


@pytest.mark.parametrize("call, message", [
    (lambda: mmwork.open("speech-prompts", "items", columns=["nope"]), "no column 'nope'"),
    (lambda: mmwork.open("speech-prompts", "items", filters=[("duration_s", ">", "long")]), "not a number"),
    (lambda: mmwork.open("speech-prompts", "items", filters=[("category", "~", "x")]), "unknown filter operator"),
    (lambda: mmwork.open("speech-prompts", "nope"), "no table 'nope'"),
    (lambda: parse_where(["duration_s 2"]), "cannot read --where"),
    (lambda: mmwork.similar("speech-prompts", "no-such-item", features="audio:mfcc_stats"), "has no row"),
    (lambda: mmwork.similar("speech-prompts", "digits/7", features="audio:nope"), "has no column"),
    (lambda: mmwork.similar("speech-prompts", "digits/7", features="mfcc_stats"), "MODALITY:COLUMN"),
    (lambda: mmwork.query("speech-prompts", "items", output="x.xlsx"), "must end in .csv"),
])
def test_bad_queries_fail_clearly(root, call, message):
    with pytest.raises(MmworkError, match=message):
        call()


def test_free_text_queries_use_the_model_that_computed_the_table(root):
    """Two saved text fits exist (two configurations); the query must use the one recorded in the
    table, whichever was written last, and refuse when the table no longer matches any saved fit."""
    fast = {"minilm": False, "skipgram_epochs": 1, "max_features": 2000}
    for first, second in ((8, 16), (16, 8)):
        for lsa in (first, second):
            extract("movielens-100k", "text", scheduler="sync", progress=False,
                    params={"text": fast | {"lsa_components": lsa}})
        text = read_table("movielens-100k", "items").set_index("item_id").loc["50", "text"]  # the input column
        hits = mmwork.similar_to_text("movielens-100k", text, features="text:tfidf_lsa", k=3)
        assert hits["item_id"].iloc[0] == "50", (second, hits)
        assert hits["similarity"].iloc[0] > 0.99
    for saved in (mmwork.core.paths.data_root() / "models" / "movielens-100k").glob("text-*"):
        shutil.rmtree(saved) if saved.is_dir() else saved.unlink()
    with pytest.raises(MmworkError, match="not saved here"):
        mmwork.similar_to_text("movielens-100k", "star wars", features="text:tfidf_lsa")
