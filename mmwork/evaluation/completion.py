"""Modality completion by retrieval: hide one modality of test items, predict its feature vector from
the others, and rank the true held-out vector among ALL items' vectors of that modality by cosine.

Protocol (:func:`completion_table`): per seed, the items are split train/test (``test_fraction``,
seeded). Each modality's vectors are z-scored and reduced by PCA to ``dims`` dimensions, both fitted on
the train items only (``dims=32`` keeps a linear map from two modalities, 64 inputs, well posed with
~380 train units). The gallery of a modality is its DISTINCT vectors over all items (many Wesnoth
units share one death sound or one description): the true target is the row holding the unit's own
vector, so random retrieval gives Recall@K = K/G and median rank (G+1)/2 exactly, for G distinct rows.

A predictor is any ``callable(given: dict[str, ndarray], target: str) -> ndarray`` (one row per given
row); a *method* is ``fit(train: dict[str, ndarray]) -> predictor``, fitted on the train items' vectors:
:func:`fit_cca` (linear CCA, the baseline the issue names), :func:`fit_ridge`, and
:func:`fit_multimodal_vae` (mmwork's MultimodalVAE over "vector" modalities).

>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(200, 4))
>>> vectors = {"a": z @ rng.normal(size=(4, 6)), "b": z @ rng.normal(size=(4, 5))}
>>> table = completion_table(vectors, {"cca": fit_cca}, seeds=[0], dims=4)
>>> bool(table.loc[table["method"] == "cca", "recall"].min() > 0.9)
True
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError

Predictor = Callable[[dict[str, np.ndarray], str], np.ndarray]
Method = Callable[[dict[str, np.ndarray]], Predictor]
WESNOTH_FEATURES = {"text": "text:minilm", "image": "image:cnn_effnet_lite0", "audio": "audio:mfcc_stats"}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with each row of ``b``: (len(a), len(b))."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def ranks(predicted: np.ndarray, gallery: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of the true gallery row ``truth[i]`` for each predicted row, by cosine (a tie with
    the truth counts against it: rank = 1 + rows scoring at least as high, other than the truth).

    >>> ranks(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 1.0]]), np.array([0, 2]))
    array([1, 2])
    """
    sims = cosine(predicted, gallery)
    own = sims[np.arange(len(sims)), truth][:, None]
    return (sims >= own).sum(axis=1)


def distinct(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the first item of each distinct row, which distinct row each item holds)."""
    _, first, inverse = np.unique(vectors, axis=0, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _reduce(x: np.ndarray, train: np.ndarray, dims: int) -> np.ndarray:
    """z-score with the train rows' statistics, then PCA fitted on the train rows."""
    mean, std = x[train].mean(0), x[train].std(0)
    z = (x - mean) / np.where(std > 0, std, 1)
    k = min(dims, len(train) - 1, x.shape[1])
    _, _, vt = np.linalg.svd(z[train] - z[train].mean(0), full_matrices=False)
    return (z @ vt[:k].T).astype(np.float64)


def fit_ridge(train: dict[str, np.ndarray], alpha: float = 10.0) -> Predictor:
    """Ridge regression from the concatenated given modalities to the target (alpha=10: the inputs are
    z-scored PCA components, so one common scale suits them)."""
    from sklearn.linear_model import Ridge

    def predict(given, target):
        names = sorted(given)
        x = np.hstack([train[n] for n in names])
        return Ridge(alpha=alpha).fit(x, train[target]).predict(np.hstack([given[n] for n in names]))
    return predict


def fit_cca(train: dict[str, np.ndarray], components: int = 8) -> Predictor:
    """Linear CCA between the concatenated given modalities and the target, predicting the target through
    the canonical directions (sklearn's ``CCA.predict``); 8 components: half the smallest gallery's PCA
    dims used here, more only fit noise with ~380 units."""
    from sklearn.cross_decomposition import CCA

    def predict(given, target):
        names = sorted(given)
        x = np.hstack([train[n] for n in names])
        k = min(components, x.shape[1], train[target].shape[1])
        model = CCA(n_components=k, max_iter=1000).fit(x, train[target])
        return model.predict(np.hstack([given[n] for n in names]))
    return predict


def fit_multimodal_vae(train: dict[str, np.ndarray], seed: int = 0, valid_fraction: float = 0.1,
                       **params) -> Predictor:
    """mmwork's MultimodalVAE on the vectors (each a "vector" modality), trained on the train items (a
    seeded ``valid_fraction`` of them held out for early stopping); it predicts the target as the
    decoder's mean at the fused posterior's mean. Defaults: attention fusion (the issue's own; fixed
    before any test result was seen), latent 16, at most 200 epochs (about 20-40 s on one thread here),
    patience 30: on the ~37 held-out train units the validation loss is noisy, and with patience 5 one
    seed stopped at epoch 7 whose loss kept falling until epoch 164."""
    import torch
    from mmwork.models.generators import MultimodalVAE
    settings = {"fusion": "attention", "latent": 16, "epochs": 200, "patience": 30, "device": "cpu",
                "seed": seed} | params
    fit_rows, valid_rows = split(len(next(iter(train.values()))), valid_fraction, seed)
    data = {n: torch.as_tensor(v[fit_rows], dtype=torch.float32) for n, v in train.items()}
    valid = {n: torch.as_tensor(v[valid_rows], dtype=torch.float32) for n, v in train.items()}
    model = MultimodalVAE(**settings).fit(data, valid=valid)

    def predict(given, target):
        inputs = {n: torch.as_tensor(v, dtype=torch.float32) for n, v in given.items()}
        return model.generate([target], inputs, seed=seed, mean_z=True)[target].detach().cpu().numpy()
    return predict


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) positions of n items."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def completion_table(vectors: dict[str, np.ndarray], methods: dict[str, Method], *, seeds=(0, 1, 2),
                     test_fraction: float = 0.2, dims: int = 32, k: int = 10) -> pd.DataFrame:
    """One row per (seed, method, hidden modality): Recall@k, median rank, gallery size, test items;
    plus a ``random`` row per seed and modality (its exact expectation k/G and (G+1)/2).

    ``vectors``: {modality: (N, d) array}, rows aligned (the same N items). Every other modality is given.
    """
    names = list(vectors)
    if len(names) < 2:
        raise MmworkError(f"completion needs at least two modalities, got {names}")
    sizes = {len(v) for v in vectors.values()}
    if len(sizes) != 1:
        raise MmworkError(f"the modalities' vectors have different numbers of rows: "
                          f"{ {n: len(v) for n, v in vectors.items()} }")
    n = sizes.pop()
    if n < 10:
        raise MmworkError(f"completion needs at least 10 items, got {n}")
    galleries = {m: distinct(np.asarray(v)) for m, v in vectors.items()}
    rows = []
    for seed in seeds:
        train, test = split(n, test_fraction, seed)
        reduced = {m: _reduce(np.asarray(v, dtype=np.float64), train, dims) for m, v in vectors.items()}
        for target in names:
            first, inverse = galleries[target]
            g = len(first)
            rows.append({"seed": seed, "method": "random", "hidden": target, "recall": min(k, g) / g,
                         "median_rank": (g + 1) / 2, "gallery": g, "test": len(test)})
        for method, fit in methods.items():
            predictor = fit({m: z[train] for m, z in reduced.items()})
            for target in names:
                first, inverse = galleries[target]
                given = {m: z[test] for m, z in reduced.items() if m != target}
                predicted = np.asarray(predictor(given, target), dtype=np.float64)
                r = ranks(predicted, reduced[target][first], inverse[test])
                rows.append({"seed": seed, "method": method, "hidden": target, "recall": float((r <= k).mean()),
                             "median_rank": float(np.median(r)), "gallery": len(first), "test": len(test)})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Recall@k mean ± sd over seeds: one row per method, one column per hidden modality."""
    grouped = table.groupby(["method", "hidden"])["recall"].agg(["mean", "std"]).reset_index()
    grouped["cell"] = [f"{m:.3f} ± {s:.3f}" if s == s else f"{m:.3f}" for m, s in zip(grouped["mean"], grouped["std"])]
    return grouped.pivot(index="method", columns="hidden", values="cell")


def load_vectors(dataset: str = "wesnoth", features: dict[str, str] | None = None) -> tuple[np.ndarray, dict]:
    """(item ids, {modality: vectors}) of the items that have a row in every feature table."""
    from mmwork.store.item_features import load_item_features
    from mmwork.store.tables import read_table
    features = features or WESNOTH_FEATURES
    ids = read_table(dataset, "items", columns=["item_id"])["item_id"].astype(str).to_numpy()
    import warnings
    with warnings.catch_warnings():  # the units without a death sound: dropped below, and counted by the caller
        warnings.simplefilter("ignore")
        loaded = load_item_features(dataset, list(features.values()), ids)
    keep = loaded.coverage
    return ids[keep], {m: loaded[spec][keep] for m, spec in features.items()}


def show_completions(item_ids, vectors: dict[str, np.ndarray], items: pd.DataFrame, method: Method,
                     units: list[str], *, dims: int = 32, train=None) -> pd.DataFrame:
    """For each of ``units``: its real description and sprite next to the "generated" ones. The generated
    description and sprite are RETRIEVED, not written or drawn: the real description (sprite) of the unit
    whose text (image) vector is nearest by cosine to the vector predicted from the unit's other
    modalities (no pixel or text decoder exists for these feature vectors). ``method`` is fitted on the
    ``train`` positions (default: every item) in the space of :func:`completion_table` (z-score + PCA
    fitted on them); pass the train positions of a split to show test units."""
    item_ids = np.asarray(item_ids, dtype=str)
    train = np.arange(len(item_ids)) if train is None else np.asarray(train)
    reduced = {m: _reduce(np.asarray(v, dtype=np.float64), train, dims) for m, v in vectors.items()}
    predictor = method({m: z[train] for m, z in reduced.items()})
    info = items.set_index(items["item_id"].astype(str))
    rows = []
    for unit in units:
        hits = np.flatnonzero(item_ids == unit)
        if not len(hits):
            raise MmworkError(f"unit {unit!r} has no vectors in every modality")
        i = hits[0]
        row = {"item_id": unit, "real_text": info.loc[unit, "text"], "real_image": info.loc[unit, "image"]}
        for target, column in (("text", "text"), ("image", "image")):
            given = {m: z[i:i + 1] for m, z in reduced.items() if m != target}
            nearest = int(np.argmax(cosine(np.asarray(predictor(given, target)), reduced[target])[0]))
            row[f"retrieved_{column}_unit"] = item_ids[nearest]
            row[f"retrieved_{column}"] = info.loc[item_ids[nearest], column]
        rows.append(row)
    return pd.DataFrame(rows)
