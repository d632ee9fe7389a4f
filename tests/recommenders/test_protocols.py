"""Split files with a relevance threshold, the RecBole and Cornac masking rules, and what results
report (rule, epochs, short reprs), on the real MovieLens-100K."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmwork import MmworkError, datasets
from mmwork.cli import main
from mmwork.evaluation import Experiment, evaluate, split_from_files
from mmwork.models.recommenders import BPR, MostPopular, Recommender


@pytest.fixture(scope="module")
def ratings(movielens):
    """Cornac-style: a global random 80/20 split of every rating (seed 123); the item catalogue."""
    inter, items = movielens
    frame = inter[["user_id", "item_id", "weight"]]
    test = np.random.default_rng(123).permutation(len(frame))[: len(frame) // 5]
    is_test = np.zeros(len(frame), bool)
    is_test[test] = True
    return frame[~is_test], frame[is_test], items["item_id"]


class _Random(Recommender):
    """Seeded random distinct scores (a permutation): deterministic and tie-free, to check the ranking
    rules exactly."""
    name = "random"

    def _fit(self, train, item_features, valid):
        self.valid_given = valid
        generator = torch.Generator().manual_seed(self.config.seed)
        order = torch.randperm(train.n_users * train.n_items, generator=generator)
        self.scores_ = order.float().reshape(train.n_users, train.n_items)

    def _score(self, users):
        return self.scores_[torch.as_tensor(users)]


def _cornac_ranking_eval(scores, train, valid, test, threshold, k=10):
    """Per-user NDCG/Recall/Precision@k transcribed from cornac 3.0.1 eval_methods/base_method.py
    ranking_eval (exclude_unknowns=True): candidates are the training items minus the user's positive
    training and validation items; test rows of unknown users or items are dropped."""
    known_items = np.flatnonzero(train.getnnz(0) > 0)
    out = {}
    for u in np.flatnonzero(train.getnnz(1) > 0):
        positives = lambda m: {i for i, r in zip(m[u].indices, m[u].data) if r >= threshold}  # noqa: E731
        gt_pos = positives(test) & set(known_items)
        if not gt_pos:
            continue
        masked = (positives(train) | positives(valid)) - gt_pos
        items = np.array([i for i in known_items if i not in masked])
        top = items[np.argsort(-scores[u, items], kind="stable")][:k]
        hits = np.isin(top, list(gt_pos))
        ideal = (1 / np.log2(np.arange(min(len(gt_pos), k)) + 2)).sum()
        out[u] = ((hits / np.log2(np.arange(k) + 2)).sum() / ideal, hits.sum() / len(gt_pos), hits.sum() / k)
    return out


def test_split_without_valid_file_trains_without_early_stopping(ratings, tmp_path):
    train, test, item_ids = ratings
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    split = split_from_files(tmp_path / "train.csv", None, tmp_path / "test.csv", item_ids=item_ids)
    assert split.valid.nnz == 0 and split.test.nnz == len(test) and split.valid.n_items == 1682
    spy, bpr = _Random(), BPR(epochs=3, device="cpu")
    result = Experiment(split, [spy, bpr], k=10, verbose=False).run()
    assert spy.valid_given is None, "no validation data: no early-stopping callback"
    assert len(bpr.history_) == 3 and bpr.best_epoch_ == 3, "trains every epoch, keeps the last"
    assert result.table.loc["bpr", "epochs"] == 3 and result.setup["valid"] == 0
    folder = split.to_files(tmp_path / "again")  # an empty valid.csv reads back as no validation data
    assert split_from_files(*(folder / f"{p}.csv" for p in ("train", "valid", "test")),
                            item_ids=item_ids).data_hash() == split.data_hash()


def test_threshold_and_the_two_masking_rules(ratings):
    train, test, item_ids = ratings
    split = split_from_files(train, None, test, item_ids=item_ids, threshold=4)
    ranking = evaluate(MostPopular().fit(split.train), split, "test", k=10)
    relevant = test[test["weight"] >= 4].groupby("user_id").size()
    np.testing.assert_array_equal(ranking.n_relevant, relevant.loc[split.user_ids[ranking.users]].to_numpy())
    seen = split.train.matrix
    assert not any(set(row) & set(seen[u].indices) for row, u in zip(ranking.top_items, ranking.users)), \
        "recbole rule: no training item is ever ranked"

    cornac = split_from_files(train, None, test, item_ids=item_ids, threshold=4, mask="cornac")
    ranking = evaluate(MostPopular().fit(cornac.train), cornac, "test", k=10)
    low_seen = 0
    for row, u in zip(ranking.top_items, ranking.users):
        items, ratings_ = seen[u].indices, seen[u].data
        assert not set(row) & set(items[ratings_ >= 4]), "cornac rule: positive training items are never ranked"
        low_seen += len(set(row) & set(items[ratings_ < 4]))
    assert low_seen > 0, "cornac rule: a user's low-rated training items stay rankable"
    assert "mask cornac" in repr(cornac) and cornac.describe()["mask"] == "cornac"
    with pytest.raises(MmworkError, match="unknown mask"):
        split_from_files(train, None, test, mask="lenskit")


def test_cornac_rule_matches_cornacs_ranking_eval(ratings):
    train, test, item_ids = ratings
    users = sorted(set(train["user_id"]))[:150]  # a slice of real users keeps the reference loop quick
    train, test = train[train["user_id"].isin(users)], test[test["user_id"].isin(users)]
    cold = train["item_id"].value_counts().index[40]  # an item unseen in training: Cornac drops its test rows
    test = test[test["item_id"] != cold]
    valid, test = test.iloc[: len(test) // 3], test.iloc[len(test) // 3:]
    test = pd.concat([test, train[train["item_id"] == cold].assign(weight=5.0)])
    train = train[train["item_id"] != cold]
    split = split_from_files(train, valid, test, item_ids=item_ids, threshold=4, mask="cornac")
    model = _Random(seed=1).fit(split.train)
    ranking = evaluate(model, split, "test", k=10, metrics=("ndcg", "recall", "precision"))
    expected = _cornac_ranking_eval(model.scores_.numpy(), split.train.matrix, split.valid.matrix,
                                    split.test.matrix, threshold=4)
    assert sorted(expected) == list(ranking.users)
    got = np.column_stack([ranking.metrics[m] for m in ("ndcg", "recall", "precision")])
    np.testing.assert_allclose(got, np.array([expected[u] for u in ranking.users]), rtol=1e-12)
    cold_index = split.train.item_index([cold])[0]
    assert cold_index not in ranking.top_items
    assert cold_index in evaluate(_Random(seed=1).fit(split.train), split_from_files(
        train, valid, test, item_ids=item_ids, threshold=4), "test", k=50).top_items  # recbole ranks every item


def test_results_report_rule_epochs_and_short_reprs(recbole_split_2020):
    split = recbole_split_2020
    bpr = BPR(epochs=4, eval_every=2, device="cpu")
    result = Experiment(split, [MostPopular(), bpr], k=10, verbose=False).run()
    assert result.table.loc["bpr", "best_epoch"] == bpr.best_epoch_ and result.table.loc["bpr", "epochs"] == 4
    assert result.table.loc["bpr", "fit_s"] > 0
    row = {r["model"]: r for r in result.to_dict()["results"]}
    assert row["pop"]["best_epoch"] is None and row["pop"]["epochs"] is None and row["bpr"]["epochs"] == 4
    assert result.setup["mask"] == "recbole" and "RecBole" in result.setup["mask_rule"]
    assert result.setup["seeds"] == {"pop": 0, "bpr": 0}
    assert len(repr(split)) < 160 and repr(split).startswith("Split(protocol='recbole', 943 users x 1682 items")
    assert "<code>" in split._repr_html_()
    assert len(repr(result)) < 1000 and "mask recbole" in repr(result).splitlines()[0]
    assert "<table" in result._repr_html_() and len(result._repr_html_()) < 4000
    json.dumps(result.to_dict())  # valid JSON: no NaN


def test_cli_split_dir_says_what_it_uses(ratings, data_root, tmp_path, capsys):
    datasets.get("movielens-100k")  # into the private data root: the catalogue the CLI reads
    train, test, _ = ratings
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    base = ["recommend", "evaluate", "--models", "pop", "--split-dir", str(tmp_path)]
    assert main(base + ["--protocol", "ratio"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert main(["recommend", "evaluate", "--models", "pop", "--mask", "cornac"]) == 2
    assert "split files only" in capsys.readouterr().err
    assert main(base + ["--threshold", "4", "--mask", "cornac"]) == 0
    out = capsys.readouterr().out
    assert "item catalogue: movielens-100k items (1682)" in out and "mask cornac" in out and "Cornac 3.0.1" in out
    assert main(base + ["--threshold", "4", "--mask", "cornac", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["setup"]["mask"] == "cornac" and payload["setup"]["threshold"] == 4
    assert payload["setup"]["valid"] == 0 and payload["results"][0]["best_epoch"] is None
