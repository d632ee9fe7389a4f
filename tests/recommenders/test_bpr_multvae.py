"""BPR and Mult-VAE on the real MovieLens-100K under RecBole's protocol: they learn (beat MostPopular),
are repeatable for a seed on CPU, survive save/load, and record a falling training loss."""
import numpy as np
import pytest
import torch

from mmwork import MmworkError
from mmwork.evaluation import Validator, evaluate
from mmwork.models.recommenders.base import Recommender
from mmwork.models.recommenders.bpr import BPR
from mmwork.models.recommenders.multvae import MultVAE
from mmwork.models.recommenders.popularity import MostPopular

# short runs: enough to clearly beat popularity, cheap on two CPU cores
QUICK = {"bpr": dict(epochs=15, eval_every=5), "multvae": dict(epochs=20, eval_every=5)}
MODELS = {"bpr": BPR, "multvae": MultVAE}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are small: one intra-op thread is as fast on an idle machine and avoids OpenMP
    threads waiting on each other (many times slower) when the CI runner's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def split(recbole_split_2020):
    return recbole_split_2020


@pytest.fixture(scope="module")
def popularity_ndcg(split):
    return evaluate(MostPopular(device="cpu").fit(split.train), split, "test", k=10).metrics["ndcg"].mean()


@pytest.fixture(scope="module", params=["bpr", "multvae"])
def fitted(request, split):
    """Each model trained briefly on the RecBole split, with early stopping on its validation part."""
    return MODELS[request.param](device="cpu", **QUICK[request.param]).fit(split.train, valid=Validator(split))


def test_beats_most_popular(fitted, split, popularity_ndcg):
    ndcg = evaluate(fitted, split, "test", k=10).metrics["ndcg"].mean()
    assert popularity_ndcg == pytest.approx(0.144, abs=0.005)
    assert ndcg > popularity_ndcg + 0.06, f"{fitted.name} NDCG@10 {ndcg:.4f} vs MostPopular {popularity_ndcg:.4f}"


def test_history_records_a_falling_loss(fitted):
    history = fitted.history_
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    losses = np.array([h["loss"] for h in history])
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0]
    assert (np.diff(losses[:5]) < 0).all()  # the first epochs each lower the loss
    evaluated = [h for h in history if "valid_ndcg@10" in h]
    assert evaluated and all(0 < h["valid_ndcg@10"] < 1 for h in evaluated)
    assert fitted.best_epoch_ in [h["epoch"] for h in evaluated]


@pytest.mark.parametrize("name", ["bpr", "multvae"])
def test_same_seed_same_scores_on_cpu(name, split):
    users = np.arange(split.train.n_users)
    make = lambda seed: MODELS[name](device="cpu", epochs=2, seed=seed).fit(split.train).score(users)  # noqa: E731
    first = make(0)
    assert torch.equal(first, make(0))
    assert not torch.equal(first, make(1))


def test_bpr_hand_written_gradient_matches_autograd():
    """BPR trains with gradients written by hand; they must equal autograd's for the documented loss,
    including users and items that occur several times in one batch."""
    from mmwork.models.recommenders.bpr import _BprStep
    gen = torch.Generator().manual_seed(0)
    users, items = torch.randn(5, 8, generator=gen), torch.randn(7, 8, generator=gen)
    u, i, j = (torch.randint(n, (40,), generator=gen) for n in (5, 7, 7))
    reg = 0.03
    p, q = users.clone().requires_grad_(), items.clone().requires_grad_()
    pu, qi, qj = p[u], q[i], q[j]
    x = (pu * (qi - qj)).sum(1)
    loss = -torch.nn.functional.logsigmoid(x).mean() + reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / 40
    loss.backward()
    users.grad, items.grad = torch.full_like(users, 9.0), torch.full_like(items, 9.0)  # stale values are overwritten
    ranking_loss = _BprStep(users, items, 64, reg)(u, i, j)
    torch.testing.assert_close(users.grad, p.grad)
    torch.testing.assert_close(items.grad, q.grad)
    torch.testing.assert_close(ranking_loss / 40, -torch.nn.functional.logsigmoid(x.detach()).mean())


def test_multvae_reads_weights_unless_binarized(split):
    """By default the rows are the interaction weights (MovieLens ratings); binarize=True is the same as
    training on 0/1 data, and negative weights, which are no counts, are refused."""
    from mmwork.store.interactions import Interactions
    train = split.train
    binary = Interactions(train.binary(), train.user_ids, train.item_ids)
    users = np.arange(0, train.n_users, 5)
    fit = lambda data, **kw: MultVAE(device="cpu", epochs=2, **kw).fit(data).score(users)  # noqa: E731
    assert set(np.unique(train.matrix.data)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert torch.equal(fit(train, binarize=True), fit(binary))
    assert not torch.equal(fit(train), fit(binary))
    negative = Interactions(train.matrix.multiply(-1).tocsr(), train.user_ids, train.item_ids)
    with pytest.raises(MmworkError, match="binarize=True"):
        fit(negative)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["bpr", "multvae"])
def test_trains_on_cuda_with_mixed_precision(name, split, popularity_ndcg):
    extra = {"amp": True} if name == "multvae" else {}
    model = MODELS[name](device="cuda", **extra, **QUICK[name]).fit(split.train, valid=Validator(split))
    scores = model.score(np.arange(10))
    assert scores.device.type == "cuda" and torch.isfinite(scores).all()
    assert evaluate(model, split, "test", k=10).metrics["ndcg"].mean() > popularity_ndcg + 0.06


@pytest.mark.slow
def test_defaults_reach_recbole_published_ndcg(split):
    """RecBole 1.2.1 reports BPR NDCG@10 0.2768 on this protocol; Mult-VAE should be close or better."""
    results = {}
    for name, model in MODELS.items():
        model = model(device="cpu").fit(split.train, valid=Validator(split))
        results[name] = evaluate(model, split, "test", k=10).metrics["ndcg"].mean()
    assert results["bpr"] >= 0.2768, results
    assert results["multvae"] >= results["bpr"] - 0.02, results
