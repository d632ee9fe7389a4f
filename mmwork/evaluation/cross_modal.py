"""Cross-modal generation measured as the multimodal-VAE literature does (MoPoE, MultiVae): per-modality
classifiers trained on the training split judge what a model generates.

- :func:`conditional_coherence`: for every non-empty proper subset of modalities given, each missing
  target is generated, and the share classified as the given row's class is its coherence; the table
  (one row per subset and target), the mean by subset size (as MultiVae's ``mean_coherence_k``) and
  ``mean``, the average of the by-size means (each size weighs the same).
- :func:`joint_coherence`: n samples from the prior, the share whose modalities all get one class.
- :func:`modality_fd`: Fréchet distance per modality in its classifier's feature space ("FD-clf-image"),
  next to the real-vs-real floor (two disjoint real halves at equal counts) and a noise baseline.
- :func:`latent_probe`: logistic regression on the latent means of training rows, scored on test rows'.
- :func:`mean_elbo`: the mean ELBO per example (nats) of a model's ``elbo`` (on the test rows: test ELBO).

``generate(targets, given) -> dict`` and ``sample(n) -> dict`` are plain callables, so a peer's outputs
(read back from a file) are scored by the same code as mmwork's ``MultimodalVAE``.

>>> import torch
>>> class Parity:                                    # a "classifier": the class is the first value's parity
...     def predict(self, x): return x[:, 0].long() % 2
>>> data = {"a": torch.tensor([[0.], [1.]]), "b": torch.tensor([[2.], [3.]])}
>>> copy = lambda targets, given: {t: next(iter(given.values())) for t in targets}
>>> result = conditional_coherence(copy, data, {"a": Parity(), "b": Parity()}, labels=torch.tensor([0, 1]))
>>> result["by_size"], result["mean"]
({1: 1.0}, 1.0)
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import torch

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.distances import frechet_distance


def proper_subsets(names) -> list[tuple[str, ...]]:
    """Every non-empty proper subset of ``names``, by size then in the given order.

    >>> proper_subsets(["image", "audio", "text"])
    [('image',), ('audio',), ('text',), ('image', 'audio'), ('image', 'text'), ('audio', 'text')]
    """
    names = list(names)
    return [s for k in range(1, len(names)) for s in combinations(names, k)]


def _arrays_and_labels(data, labels):
    """(dict of tensors, labels tensor) from a ``MultimodalData`` or a dict plus ``labels``."""
    arrays = getattr(data, "arrays", data)
    labels = getattr(data, "labels", None) if labels is None else labels
    if not isinstance(arrays, dict) or len(arrays) < 2:
        raise MmworkError("cross-modal metrics need a dict of at least two modalities (or a MultimodalData)")
    if labels is None:
        raise MmworkError("cross-modal coherence needs one class label per row")
    labels = torch.as_tensor(np.asarray(labels)).long().cpu()
    sizes = {name: len(x) for name, x in arrays.items()}
    if set(sizes.values()) != {len(labels)}:
        raise MmworkError(f"every modality needs one row per label ({len(labels)}), got {sizes}")
    return arrays, labels


def _check_classifiers(names, classifiers) -> None:
    missing = [n for n in names if n not in classifiers]
    if missing:
        raise MmworkError(f"no classifier for modality {', '.join(missing)} (have {', '.join(classifiers)})")


def _predict(classifier, x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(classifier.predict(x))).long().cpu()


def conditional_coherence(generate, data, classifiers: dict, labels=None, subsets=None) -> dict:
    """Coherence of every (given subset -> missing target) translation.

    ``generate(targets, given)`` returns a dict with one generated row per given row for each target;
    ``data`` is a ``MultimodalData`` (its ``arrays`` and ``labels``) or a dict of tensors with
    ``labels``; ``classifiers`` maps each modality to a judge with ``predict``; ``subsets`` defaults to
    :func:`proper_subsets`. Returns ``{"table": [{"given", "target", "coherence"}], "by_size": {k:
    mean}, "mean": mean of by_size}``.
    """
    arrays, labels = _arrays_and_labels(data, labels)
    names = list(arrays)
    _check_classifiers(names, classifiers)
    subsets = proper_subsets(names) if subsets is None else [tuple(s) for s in subsets]
    for subset in subsets:
        if not subset or set(subset) >= set(names) or not set(subset) <= set(names):
            raise MmworkError(f"a given subset must be a non-empty proper subset of {names}, got {list(subset)}")
    table = []
    for subset in subsets:
        targets = [n for n in names if n not in subset]
        out = generate(targets, {n: arrays[n] for n in subset})
        for target in targets:
            if target not in out or len(out[target]) != len(labels):
                raise MmworkError(f"generate({targets}, given={list(subset)}) must return {len(labels)} rows of "
                                  f"{target!r}")
            hits = _predict(classifiers[target], out[target]) == labels
            table.append({"given": list(subset), "target": target, "coherence": float(hits.double().mean())})
    sizes = sorted({len(row["given"]) for row in table})
    by_size = {k: float(np.mean([r["coherence"] for r in table if len(r["given"]) == k])) for k in sizes}
    return {"table": table, "by_size": by_size, "mean": float(np.mean(list(by_size.values())))}


def joint_coherence(sample, classifiers: dict, n: int = 10_000) -> float:
    """The share of ``n`` joint samples (``sample(n) -> dict`` of modalities) whose classifiers all
    give one class.

    >>> class Sign:
    ...     def predict(self, x): return (x[:, 0] > 0).long()
    >>> draw = lambda n: {"a": torch.tensor([[1.], [1.], [-1.], [-1.]]), "b": torch.tensor([[1.], [-1.], [-1.], [1.]])}
    >>> joint_coherence(draw, {"a": Sign(), "b": Sign()}, n=4)
    0.5
    """
    if n < 1:
        raise MmworkError(f"joint coherence needs n >= 1 samples, got {n}")
    samples = sample(n)
    if len(samples) < 2:
        raise MmworkError(f"joint coherence needs samples of at least two modalities, got {list(samples)}")
    _check_classifiers(samples, classifiers)
    predicted = torch.stack([_predict(classifiers[m], x) for m, x in samples.items()])
    if predicted.shape[1] != n:
        raise MmworkError(f"sample({n}) returned {predicted.shape[1]} rows")
    return float((predicted == predicted[0]).all(0).double().mean())


def noise_like(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` rows of noise shaped like ``x``: uniform ids over the ids seen for integer data (tokens),
    uniform in [0, 1] for data inside [0, 1] (pixels), else a Gaussian with ``x``'s per-value mean and
    standard deviation (a baseline that matches first and second moments value by value)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x)
    shape = (n, *x.shape[1:])
    if not x.is_floating_point():
        return torch.randint(int(x.min()), int(x.max()) + 1, shape, generator=g, dtype=x.dtype)
    if x.min() >= 0 and x.max() <= 1:
        return torch.rand(shape, generator=g)
    return x.mean(0) + x.std(0) * torch.randn(shape, generator=g)


def modality_fd(generated: dict, real: dict, classifiers: dict, seed: int = 0) -> dict:
    """Fréchet distance per modality in its classifier's feature space, at equal counts.

    ``real`` rows are split into two disjoint halves A and B (a seeded permutation); with m = the
    half's size, the first m ``generated`` rows, half A and m noise rows (:func:`noise_like`) are each
    compared with half B. Returns ``{"FD-clf-<name>": {"model", "floor", "noise", "n"}}``; ``model`` is
    None for a modality ``generated`` lacks.
    """
    out = {}
    for name, x in real.items():
        _check_classifiers([name], classifiers)
        x = torch.as_tensor(x)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        m = len(x) // 2
        if name in generated:
            m = min(m, len(generated[name]))
        half_a, half_b = x[order[:m]], x[order[m:2 * m]]
        clf = classifiers[name]

        def features(rows):
            return torch.as_tensor(np.asarray(clf.features(rows))).double().numpy()
        reference = features(half_b)
        model = frechet_distance(features(torch.as_tensor(generated[name])[:m]), reference) \
            if name in generated else None
        out[f"FD-clf-{name}"] = {"model": model, "floor": frechet_distance(features(half_a), reference),
                                 "noise": frechet_distance(features(noise_like(x, m, seed)), reference), "n": m}
    return out


def latent_probe(train_z, train_labels, test_z, test_labels, max_iter: int = 2000) -> float:
    """Test accuracy of a logistic regression (on standardised latents) fitted on the latent means of
    the training rows and scored on the test rows' (e.g. ``model.encode(data.arrays)[0]``: every
    modality given).

    >>> z = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    >>> latent_probe(z, [0, 0, 1, 1], -z, [1, 1, 0, 0])
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def rows(z, what):
        z = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float64)
        if z.ndim != 2 or not np.isfinite(z).all():
            raise MmworkError(f"{what} latents must be a finite (N, latent) array, got shape {z.shape}")
        return z
    train_z, test_z = rows(train_z, "training"), rows(test_z, "test")
    y_train, y_test = np.asarray(train_labels).astype(int), np.asarray(test_labels).astype(int)
    if len(y_train) != len(train_z) or len(y_test) != len(test_z):
        raise MmworkError(f"one label per latent row: {len(train_z)} and {len(test_z)} rows, got "
                          f"{len(y_train)} and {len(y_test)} labels")
    scaler = StandardScaler().fit(train_z)
    probe = LogisticRegression(max_iter=max_iter).fit(scaler.transform(train_z), y_train)
    return float(probe.score(scaler.transform(test_z), y_test))


def mean_elbo(elbo, data) -> float:
    """The mean of ``elbo(inputs) -> (N,)`` over the rows of ``data`` (nats per example; higher is better)."""
    arrays = getattr(data, "arrays", data)
    return float(torch.as_tensor(elbo(arrays)).double().mean())
