"""Split protocols, metric definitions and full-ranking evaluation on the real MovieLens-100K."""
import json

import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.evaluation import (Experiment, cold_start_split, evaluate, leave_one_out, paired_test, ratio_split,
                               recbole_split, split_from_files, temporal_split)
from mmwork.evaluation.metrics import RANKING_METRICS, coverage, intra_list_diversity, novelty
from mmwork.evaluation.splits import split_counts
from mmwork.models.recommenders import MostPopular, Recommender
from mmwork.store.interactions import Interactions


@pytest.fixture(scope="module")
def split(recbole_split_2020):
    return recbole_split_2020


def _pairs(part: Interactions) -> set:
    coo = part.matrix.tocoo()
    return set(zip(part.user_ids[coo.row], part.item_ids[coo.col]))


def test_split_counts_follow_recbole():
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(5, (0.8, 0.1, 0.1)) == [3, 1, 1]
    assert split_counts(2, (0.8, 0.1, 0.1)) == [1, 0, 1]
    assert split_counts(20, (0.8, 0.1, 0.1)) == [16, 2, 2]
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]


def test_recbole_split_partitions_every_interaction(movielens, split):
    inter, _ = movielens
    train, valid, test = _pairs(split.train), _pairs(split.valid), _pairs(split.test)
    assert not (train & valid) and not (train & test) and not (valid & test), "no test interaction leaks into training"
    assert train | valid | test == set(zip(inter["user_id"], inter["item_id"]))
    assert (split.train.nnz, split.valid.nnz, split.test.nnz) == (80_808, 9_596, 9_596)
    per_user = [np.diff(getattr(split, p).matrix.indptr) for p in ("train", "valid", "test")]
    totals = per_user[0] + per_user[1] + per_user[2]
    for u in range(split.train.n_users):
        assert [p[u] for p in per_user] == split_counts(int(totals[u]), (0.8, 0.1, 0.1))
    again = recbole_split(inter, item_ids=split.item_ids, seed=2020)
    assert again.data_hash() == split.data_hash()
    assert recbole_split(inter, item_ids=split.item_ids, seed=1).data_hash() != split.data_hash()


def test_other_protocols(movielens):
    inter, items = movielens
    ratio = ratio_split(inter, threshold=4, item_ids=items["item_id"])
    assert ratio.test.matrix.data.min() >= 4 and ratio.valid.matrix.data.min() >= 4
    assert ratio.train.matrix.data.min() == 1  # training keeps every rating
    temporal = temporal_split(inter, item_ids=items["item_id"])
    times = inter.set_index(["user_id", "item_id"])["timestamp"]
    train, test = temporal.train.to_frame(), temporal.test.to_frame()
    last_train = train.assign(t=times.loc[list(zip(train.user_id, train.item_id))].values).groupby("user_id")["t"].max()
    first_test = test.assign(t=times.loc[list(zip(test.user_id, test.item_id))].values).groupby("user_id")["t"].min()
    assert (last_train.loc[first_test.index] <= first_test).all()
    loo = leave_one_out(inter, item_ids=items["item_id"])
    assert (np.diff(loo.test.matrix.indptr) == 1).all() and (np.diff(loo.valid.matrix.indptr) == 1).all()
    held_out = loo.test.to_frame().merge(inter, on=["user_id", "item_id"])
    latest = inter.groupby("user_id")["timestamp"].max()
    assert (held_out["timestamp"].to_numpy() == latest.loc[held_out["user_id"]].to_numpy()).all()
    cold = cold_start_split(inter, items["item_id"], cold_share=0.2, seed=3)
    test_items = set(cold.item_ids[cold.candidates])
    assert not test_items & {i for _, i in _pairs(cold.train)}, "cold test items have no training interactions"
    assert {i for _, i in _pairs(cold.test)} == test_items


def test_split_round_trips_through_files(split, tmp_path):
    folder = split.to_files(tmp_path / "split")
    again = split_from_files(folder / "train.csv", folder / "valid.csv", folder / "test.csv", item_ids=split.item_ids)
    assert again.data_hash() == split.data_hash()
    with pytest.raises(MmworkError, match="does not exist"):
        split_from_files(tmp_path / "nope.csv", folder / "valid.csv", folder / "test.csv")


def test_metrics_against_hand_computed_values():
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], bool)
    n_relevant = np.array([2, 3, 5])
    m = {name: f(hits, n_relevant) for name, f in RANKING_METRICS.items()}
    np.testing.assert_allclose(m["recall"], [1.0, 0.0, 0.2])
    np.testing.assert_allclose(m["precision"], [0.5, 0.0, 0.25])
    np.testing.assert_allclose(m["hit"], [1, 0, 1])
    np.testing.assert_allclose(m["mrr"], [1.0, 0.0, 0.5])
    np.testing.assert_allclose(m["ndcg"], [(1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)), 0.0,
                                           (1 / np.log2(3)) / sum(1 / np.log2(i + 2) for i in range(4))])
    np.testing.assert_allclose(m["map"], [(1 + 2 / 3) / 2, 0.0, 0.5 / 4])
    assert coverage(np.array([[0, 1], [1, 2]]), 10) == 0.3
    np.testing.assert_allclose(novelty(np.array([[0, 1]]), np.array([50, 25]), 100), [1.5])
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(intra_list_diversity(np.array([[0, 1], [0, 2]]), features), [1.0, 0.0])


def test_paired_test_detects_a_real_difference():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    better = paired_test(base + 0.05 + rng.normal(0, 0.01, 500), base)
    assert better["t_pvalue"] < 1e-6 and better["ci95"][0] > 0
    same = paired_test(base, base + rng.normal(0, 0.01, 500))
    assert same["t_pvalue"] > 0.01


class _Oracle(Recommender):
    """Scores the test items of each user highest: a perfect ranker to check the evaluation."""
    name = "oracle"

    def __init__(self, truth=None, device="cpu", seed=0):
        super().__init__(device=device, seed=seed)
        self.truth = truth

    def _fit(self, train, item_features, valid):
        pass

    def _score(self, users):
        return torch.as_tensor(self.truth[users].toarray(), dtype=torch.float32)


def test_full_ranking_masks_seen_items_and_scores_a_perfect_model_1(split):
    oracle = _Oracle(split.test.matrix).fit(split.train)
    ranking = evaluate(oracle, split, "test", k=10)
    assert len(ranking.users) == 943 and ranking.metrics["hit"].mean() == 1.0
    np.testing.assert_allclose(ranking.metrics["ndcg"], 1.0)
    np.testing.assert_allclose(ranking.metrics["recall"], np.minimum(10, ranking.n_relevant) / ranking.n_relevant)
    popular = evaluate(MostPopular().fit(split.train), split, "test", k=10)
    seen = (split.train.matrix + split.valid.matrix).tocsr()
    for row, user in zip(popular.top_items, popular.users):
        assert not set(row) & set(seen[user].indices), "training and validation items are never ranked"
    with pytest.raises(MmworkError, match="larger than the number of items"):
        evaluate(oracle, split, "test", k=5000)


def test_experiment_records_protocol_and_significance(split):
    result = Experiment(split, [MostPopular(), _Oracle(split.test.matrix)], k=10, verbose=False).run()
    assert result.table.loc["oracle", "ndcg@10"] == 1.0 and result.table.loc["pop", "ndcg@10"] < 0.3
    setup = json.loads(result.to_json())["setup"]
    assert setup["protocol"] == "recbole" and setup["params"]["seed"] == 2020 and setup["data_hash"] == split.data_hash()
    assert result.significance("oracle", "pop")["t_pvalue"] < 1e-10
    with pytest.raises(MmworkError, match="unknown metric"):
        Experiment(split, [MostPopular()], metrics=("ndcg", "auc")).run()


def test_recommend_and_bad_input(split):
    model = MostPopular().fit(split.train)
    recs = model.recommend(["1", "2"], k=5)
    assert recs.groupby("user_id").size().tolist() == [5, 5]
    seen = set(split.train.to_frame().query("user_id == '1'")["item_id"])
    assert not seen & set(recs.query("user_id == '1'")["item_id"])
    with pytest.raises(MmworkError, match="unknown user"):
        model.recommend(["no-such-user"])
    with pytest.raises(MmworkError, match="k must be between"):
        model.recommend(["1"], k=10_000)
    with pytest.raises(MmworkError, match="not fitted"):
        MostPopular().recommend(["1"])
