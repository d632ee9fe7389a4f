"""The cross-modal metrics against hand-computed cases (mmwork.evaluation.cross_modal) and the modality
classifier (mmwork.models.judges.ModalityClassifier) on each kind of modality; tiny, seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmwork.core.errors import MmworkError
from mmwork.evaluation.cross_modal import (conditional_coherence, joint_coherence, latent_probe, mean_elbo,
                                           modality_fd, noise_like, proper_subsets)
from mmwork.models.judges import ModalityClassifier


class FirstValue:
    """A stand-in classifier: the class is the first value of the row; features are the row itself."""

    def predict(self, x):
        return torch.as_tensor(x)[:, 0].long()

    def features(self, x):
        return torch.as_tensor(x).double()


LABELS = torch.tensor([0, 1, 2, 3])
DATA = {m: LABELS[:, None].float() for m in ("a", "b", "c")}
CLASSIFIERS = {m: FirstValue() for m in DATA}


def scripted(targets, given):
    """Right on the first len(given) rows (+1 for target "c"), wrong (label + 1) on the others."""
    out = {}
    for t in targets:
        right = len(given) + (t == "c")
        values = LABELS.clone()
        values[right:] += 1
        out[t] = values[:, None].float()
    return out


def test_conditional_coherence_matches_the_hand_computed_table():
    result = conditional_coherence(scripted, DATA, CLASSIFIERS, labels=LABELS)
    table = {(tuple(r["given"]), r["target"]): r["coherence"] for r in result["table"]}
    assert table == {(("a",), "b"): 0.25, (("a",), "c"): 0.5, (("b",), "a"): 0.25, (("b",), "c"): 0.5,
                     (("c",), "a"): 0.25, (("c",), "b"): 0.25,
                     (("a", "b"), "c"): 0.75, (("a", "c"), "b"): 0.5, (("b", "c"), "a"): 0.5}
    assert result["by_size"] == pytest.approx({1: 2 / 6, 2: 7 / 12})
    assert result["mean"] == pytest.approx(11 / 24)


def test_conditional_coherence_reads_a_multimodal_data_and_refuses_bad_input():
    class Data:
        arrays, labels = DATA, LABELS
    assert conditional_coherence(scripted, Data(), CLASSIFIERS)["mean"] == pytest.approx(11 / 24)
    with pytest.raises(MmworkError, match="no classifier for modality c"):
        conditional_coherence(scripted, DATA, {"a": FirstValue(), "b": FirstValue()}, labels=LABELS)
    with pytest.raises(MmworkError, match="non-empty proper subset"):
        conditional_coherence(scripted, DATA, CLASSIFIERS, labels=LABELS, subsets=[("a", "b", "c")])
    with pytest.raises(MmworkError, match="one row per label"):
        conditional_coherence(scripted, DATA, CLASSIFIERS, labels=LABELS[:3])
    with pytest.raises(MmworkError, match="must return 4 rows"):
        conditional_coherence(lambda t, g: {}, DATA, CLASSIFIERS, labels=LABELS)
    assert proper_subsets("abc") == [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]


def test_joint_coherence_is_the_share_where_every_modality_agrees():
    def sample(n):  # rows 0 and 3 agree across all three modalities
        return {"a": torch.tensor([[0.], [1.], [2.], [3.]]), "b": torch.tensor([[0.], [1.], [5.], [3.]]),
                "c": torch.tensor([[0.], [7.], [2.], [3.]])}
    assert joint_coherence(sample, CLASSIFIERS, n=4) == 0.5
    with pytest.raises(MmworkError, match="returned 4 rows"):
        joint_coherence(sample, CLASSIFIERS, n=5)


def test_modality_fd_compares_at_equal_counts_with_floor_and_noise():
    real = torch.from_numpy(np.random.default_rng(0).normal(size=(4000, 2)))
    shifted = real[:2000] + torch.tensor([3.0, 0.0], dtype=real.dtype)
    fd = modality_fd({"a": shifted}, {"a": real, "b": real}, {"a": FirstValue(), "b": FirstValue()})
    a = fd["FD-clf-a"]
    assert a["n"] == 2000 and fd["FD-clf-b"]["model"] is None
    assert a["floor"] < 0.02 and 8.5 < a["model"] < 9.5   # a shift of 3: |mean difference|^2 = 9
    assert a["noise"] < 0.05                                 # Gaussian noise with the data's moments
    assert noise_like(torch.tensor([[1, 5]]), 3).dtype == torch.int64
    assert 0 <= noise_like(torch.rand(5, 2), 100).min() and noise_like(torch.rand(5, 2), 100).max() <= 1


def test_latent_probe_and_mean_elbo():
    rng = np.random.default_rng(0)
    labels = torch.arange(200) % 2
    z = torch.from_numpy(rng.normal(size=(200, 3))) + 4 * labels[:, None]
    assert latent_probe(z, labels, z, labels) == 1.0
    assert latent_probe(z, labels, z, 1 - labels) == 0.0
    with pytest.raises(MmworkError, match="one label per latent row"):
        latent_probe(z, labels[:5], z, labels)
    assert mean_elbo(lambda arrays: -arrays["a"][:, 0], {"a": torch.tensor([[1.], [3.]])}) == -2.0


@pytest.mark.parametrize("kind, shape, make", [
    ("image", [1, 8, 8], lambda y: (y[:, None, None, None] / 4 + 0.1 * torch.rand(len(y), 1, 8, 8)).clamp(0, 1)),
    ("sequence", [6, 3], lambda y: y[:, None, None].float() + 0.1 * torch.randn(len(y), 6, 3)),
    ("tokens", [5], lambda y: (y[:, None] + 2).repeat(1, 5)),
    ("vector", [4], lambda y: y[:, None].float() + 0.1 * torch.randn(len(y), 4)),
])
def test_modality_classifier_learns_each_kind_and_checks_its_input(kind, shape, make):
    torch.manual_seed(0)
    y = torch.arange(120) % 4
    x = make(y)
    clf = ModalityClassifier(kind=kind, shape=shape, vocab_size=6 if kind == "tokens" else None, n_classes=4,
                             epochs=15, lr=1e-2, batch_size=32, device="cpu", seed=0).fit(x, y, valid=(x, y))
    assert clf.accuracy(x, y) > 0.9
    assert clf.features(x[:3]).shape == (3, 64) and clf.predict_proba(x[:3]).shape == (3, 4)
    with pytest.raises(MmworkError, match="shape"):
        clf.predict(x[..., :2])
    if kind == "tokens":
        with pytest.raises(MmworkError, match="ids in 0..5"):
            clf.predict(x + 10)
