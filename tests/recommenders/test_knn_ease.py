"""ItemKNN, UserKNN and EASE: hand-computed tiny cases, accuracy on the real MovieLens-100K RecBole
split, save/load round trips, and bad parameters."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mmwork import MmworkError
from mmwork.evaluation import evaluate
from mmwork.models.recommenders import MostPopular, neighbourhood
from mmwork.models.recommenders.base import Recommender
from mmwork.store.interactions import Interactions
from mmwork.models.recommenders.ease import EASE
from mmwork.models.recommenders.neighbourhood import ItemKNN, UserKNN

R2 = math.sqrt(2) - 1  # 1 / (sqrt(2) + 1): a shrunk cosine below

# 3 users x 4 items; u0 rated i0 with 5 stars: the models binarise, so it counts as 1
TINY = [[1, 1, 1, 0],
        [1, 0, 0, 0],
        [0, 1, 1, 1]]


@pytest.fixture
def tiny() -> Interactions:
    rows, cols = np.nonzero(TINY)
    frame = pd.DataFrame({"user_id": [f"u{r}" for r in rows], "item_id": [f"i{c}" for c in cols],
                          "weight": np.where((rows == 0) & (cols == 0), 5.0, 1.0)})
    return Interactions.from_frame(frame)


def _dense_similarity(model) -> np.ndarray:
    n = model.neighbors_.shape[0]
    out = np.zeros((n, n))
    out[np.arange(n)[:, None], model.neighbors_.cpu().numpy()] = model.similarities_.cpu().numpy()
    return out


def _scores(model, n_users=3) -> np.ndarray:
    return model.score(np.arange(n_users)).cpu().numpy()


def test_itemknn_tiny_case_by_hand(tiny):
    # item columns i0=[1,1,0], i1=i2=[1,0,1], i3=[0,0,1]; with shrink 1:
    # sim(0,1)=sim(0,2)=1/(2+1), sim(1,2)=2/(2+1), sim(1,3)=sim(2,3)=1/(sqrt2+1), sim(0,3)=0.
    # k=2 keeps, per target item (row), its two most similar other items.
    model = ItemKNN(k_neighbors=2, shrink=1.0, device="cpu").fit(tiny)
    expected_sim = np.array([[0, 1 / 3, 1 / 3, 0],
                             [0, 0, 2 / 3, R2],
                             [0, 2 / 3, 0, R2],
                             [0, R2, R2, 0]])
    np.testing.assert_allclose(_dense_similarity(model), expected_sim, atol=1e-6)
    # score(u, i) = sum_j X[u, j] sim(i, j)
    expected = np.array([[2 / 3, 2 / 3, 2 / 3, 2 * R2],
                         [0, 0, 0, 0],
                         [2 / 3, 2 / 3 + R2, 2 / 3 + R2, 2 * R2]])
    np.testing.assert_allclose(_scores(model), expected, atol=1e-6)

    # all neighbours, no shrink: the plain cosine matrix (zero diagonal) and X S^T, straight from numpy
    full = ItemKNN(k_neighbors=50, shrink=0.0, device="cpu").fit(tiny)
    x = np.asarray(TINY, float)
    gram = x.T @ x
    cosine = gram / np.outer(np.sqrt(np.diag(gram)), np.sqrt(np.diag(gram)))
    np.fill_diagonal(cosine, 0)
    np.testing.assert_allclose(_dense_similarity(full), cosine, atol=1e-6)
    np.testing.assert_allclose(_scores(full), x @ cosine.T, atol=1e-6)


def test_userknn_tiny_case_by_hand(tiny):
    # user rows u0=[1,1,1,0], u1=[1,0,0,0], u2=[0,1,1,1]: cos(0,1)=1/sqrt3, cos(0,2)=2/3, cos(1,2)=0
    model = UserKNN(k_neighbors=1, device="cpu").fit(tiny)
    assert model.neighbors_.ravel().tolist() == [2, 0, 0]
    np.testing.assert_allclose(model.similarities_.ravel().numpy(), [2 / 3, 1 / math.sqrt(3), 2 / 3], atol=1e-6)
    x = np.asarray(TINY, float)
    expected = np.array([2 / 3 * x[2], 1 / math.sqrt(3) * x[0], 2 / 3 * x[0]])  # score(u) = sum_v sim(u,v) X[v]
    np.testing.assert_allclose(_scores(model), expected, atol=1e-6)


def test_sparse_and_blocked_paths_match_dense(tiny, monkeypatch):
    def models():
        return ItemKNN(k_neighbors=2, shrink=1.0, device="cpu"), UserKNN(k_neighbors=2, device="cpu")

    dense = [m.fit(tiny) for m in models()]
    monkeypatch.setattr(neighbourhood, "_DENSE_CELLS", 0)  # score through torch sparse matrices
    monkeypatch.setattr(neighbourhood, "_BLOCK_CELLS", 4)  # similarities one row at a time
    sparse = [m.fit(tiny) for m in models()]
    assert sparse[0]._similarity_matrix().is_sparse and sparse[1]._items_by_users().is_sparse
    for a, b in zip(dense, sparse):
        torch.testing.assert_close(a.neighbors_, b.neighbors_)
        np.testing.assert_allclose(_scores(a), _scores(b), atol=1e-6)


def test_ease_matches_numpy_closed_form(tiny):
    l2 = 0.7
    model = EASE(l2=l2, device="cpu").fit(tiny)
    x = np.asarray(TINY, float)
    p = np.linalg.inv(x.T @ x + l2 * np.eye(4))
    b = np.eye(4) - p / np.diag(p)[None, :]  # B = I - P diag(1/diag(P))
    weights = model.weights_.cpu().numpy()
    assert weights.dtype == np.float32 and weights.shape == (4, 4)
    np.testing.assert_array_equal(np.diag(weights), 0)
    np.testing.assert_allclose(weights, b, atol=1e-6)
    np.testing.assert_allclose(_scores(model), x @ b, atol=1e-5)


@pytest.fixture(scope="module")
def split(recbole_split_2020):
    return recbole_split_2020


@pytest.fixture(scope="module")
def fitted(split):
    return {m.name: m.fit(split.train) for m in (MostPopular(), ItemKNN(), UserKNN(), EASE())}


def test_models_beat_popularity_and_ease_beats_itemknn(split, fitted):
    ndcg = {name: float(evaluate(m, split, "test", k=10).metrics["ndcg"].mean()) for name, m in fitted.items()}
    assert ndcg["pop"] == pytest.approx(0.144, abs=0.002)
    for name in ("itemknn", "userknn", "ease"):
        assert ndcg[name] > ndcg["pop"] + 0.1, ndcg
    assert abs(ndcg["itemknn"] - 0.2768) < 0.02, ndcg  # RecBole's published BPR NDCG@10 on this protocol
    assert ndcg["ease"] > max(ndcg["itemknn"], ndcg["userknn"]) + 0.02, ndcg
    assert ndcg["ease"] > 0.30, ndcg


@pytest.mark.gpu
def test_cuda_scores_match_cpu(tiny):
    for make in (lambda d: ItemKNN(k_neighbors=2, shrink=1.0, device=d), lambda d: UserKNN(k_neighbors=2, device=d),
                 lambda d: EASE(l2=0.7, device=d)):
        on_gpu, on_cpu = make("cuda").fit(tiny), make("cpu").fit(tiny)
        scores = on_gpu.score(np.arange(3))
        assert scores.device.type == "cuda"
        np.testing.assert_allclose(scores.cpu().numpy(), _scores(on_cpu), atol=1e-5)


def test_single_item_catalogue_is_a_clear_error():
    one = Interactions.from_frame(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "x"]}))
    with pytest.raises(MmworkError, match="at least 2 items"):
        ItemKNN().fit(one)
