"""Modality completion by retrieval: ranks and recall on a hand-made case, the baselines on a synthetic
linear case, and the bad inputs."""
import numpy as np
import pandas as pd
import pytest

from mmwork import MmworkError
from mmwork.evaluation.completion import (completion_table, distinct, fit_cca, fit_ridge, ranks, show_completions,
                                          summary)


def test_ranks_and_recall_by_hand():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    predicted = np.array([[1.0, 0.1], [1.0, 0.9], [0.0, -1.0]])
    # cosines: row 0 -> best gallery 0; row 1 -> 2 first, then 0 (0.74) before 1 (0.67); row 2 -> all <= 0
    r = ranks(predicted, gallery, np.array([0, 1, 1]))
    assert r.tolist() == [1, 3, 4]
    assert float((r <= 2).mean()) == pytest.approx(1 / 3)
    first, inverse = distinct(np.array([[1, 2], [3, 4], [1, 2]]))
    assert len(first) == 2 and inverse[0] == inverse[2] != inverse[1]


def test_identity_predictor_is_perfect_and_random_is_k_over_g():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    vectors = {"a": x, "b": x.copy()}  # each modality equals the other: copying the given one is exact

    def copy(train):
        return lambda given, target: next(iter(given.values()))
    table = completion_table(vectors, {"copy": copy}, seeds=[0, 1], dims=5, k=10)
    assert (table.loc[table["method"] == "copy", "recall"] == 1.0).all()
    assert (table.loc[table["method"] == "copy", "median_rank"] == 1.0).all()
    random = table[table["method"] == "random"]
    assert np.allclose(random["recall"], 10 / 60) and np.allclose(random["median_rank"], 30.5)
    assert set(table["test"]) == {12}
    assert list(summary(table).columns) == ["a", "b"]


def test_cca_and_ridge_beat_random_on_a_linear_case():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 6))
    vectors = {m: z @ rng.normal(size=(6, d)) + 0.3 * rng.normal(size=(300, d))
               for m, d in (("text", 20), ("image", 30), ("audio", 12))}
    table = completion_table(vectors, {"cca": fit_cca, "ridge": fit_ridge}, seeds=[0], dims=8)
    means = table.groupby(["method", "hidden"])["recall"].mean().unstack()
    assert (means.loc["cca"] > 3 * means.loc["random"]).all()
    assert (means.loc["ridge"] > 3 * means.loc["random"]).all()


def test_show_completions_retrieves_real_descriptions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 4))
    vectors = {"text": x, "image": x.copy(), "audio": x.copy()}
    items = pd.DataFrame({"item_id": [f"u{i}" for i in range(20)], "text": [f"t{i}" for i in range(20)],
                          "image": [f"i{i}.png" for i in range(20)]})
    copy_audio = lambda train: (lambda given, target: given["audio"])  # noqa: E731
    shown = show_completions(items["item_id"], vectors, items, copy_audio, ["u3", "u7"], dims=4)
    assert shown["retrieved_text"].tolist() == ["t3", "t7"] and shown["retrieved_image"].tolist() == ["i3.png", "i7.png"]
    with pytest.raises(MmworkError, match="no vectors"):
        show_completions(items["item_id"], vectors, items, copy_audio, ["nope"], dims=4)


def test_bad_inputs():
    with pytest.raises(MmworkError, match="two modalities"):
        completion_table({"a": np.zeros((20, 2))}, {})
    with pytest.raises(MmworkError, match="different numbers of rows"):
        completion_table({"a": np.zeros((20, 2)), "b": np.zeros((19, 2))}, {})
