"""Experiments by name, for the CLI and notebooks: a data set, a protocol, model names.

>>> result = run_experiment("movielens-100k", ["pop", "ease"], protocol="recbole")   # doctest: +SKIP
>>> result.table[["ndcg@10", "recall@10"]]                                           # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from mmwork.core.errors import MmworkError
from mmwork.evaluation import splits
from mmwork.evaluation.experiment import Experiment, ExperimentResult
from mmwork.store.tables import read_table, table_path

SPLITTERS = {
    "recbole": lambda inter, items, seed: splits.recbole_split(inter, item_ids=items, seed=seed),
    "ratio": lambda inter, items, seed: splits.ratio_split(inter, item_ids=items, seed=seed),
    "temporal": lambda inter, items, seed: splits.temporal_split(inter, item_ids=items),
    "loo": lambda inter, items, seed: splits.leave_one_out(inter, item_ids=items, seed=seed),
    "cold-items": lambda inter, items, seed: splits.cold_start_split(inter, items, seed=seed),
}


def make_split(dataset: str, protocol: str | None = None, seed: int = 2020, split_dir: str | Path | None = None,
               threshold: float | None = None, mask: str | None = None):
    """The split of ``dataset`` under ``protocol`` (default "recbole"), or the ``train.csv``,
    ``test.csv`` [and ``valid.csv``] in ``split_dir``, whose relevance ``threshold`` and masking rule
    ``mask`` ("recbole" or "cornac") can be chosen. With split files the data set still gives the
    item catalogue (every item is a column; under the cornac rule only items seen in training are ranked).

    >>> make_split("movielens-100k", split_dir="cornac_split/", threshold=4, mask="cornac")   # doctest: +SKIP
    """
    if split_dir is None and (threshold is not None or mask is not None):
        raise MmworkError("threshold and mask (--threshold, --mask) apply to split files only (--split-dir); "
                          "each protocol fixes its own")
    if split_dir is not None and protocol is not None:
        raise MmworkError(f"--protocol {protocol} and --split-dir cannot be combined: the files in {split_dir} are the "
                          "split (protocol 'files'); choose the ranking rule with --mask recbole|cornac")
    items = read_table(dataset, "items", columns=["item_id"])["item_id"]
    if split_dir is not None:
        folder = Path(split_dir)
        valid = folder / "valid.csv"
        return splits.split_from_files(folder / "train.csv", valid if valid.exists() else None, folder / "test.csv",
                                       item_ids=items, threshold=threshold, mask=mask or "recbole")
    protocol = protocol or "recbole"
    if protocol not in SPLITTERS:
        raise MmworkError(f"unknown protocol {protocol!r}; choose from {sorted(SPLITTERS)} (or give split files)")
    if not table_path(dataset, "interactions").exists():
        raise MmworkError(f"data set {dataset!r} has no interactions table to split")
    return SPLITTERS[protocol](read_table(dataset, "interactions"), items, seed)


def default_feature_specs(dataset: str) -> list[str]:
    """The content features a content-aware model reads when none are named: every vector column of
    the text feature table except the skip-gram one (too weak on short titles)."""
    import pyarrow.parquet as pq
    path = table_path(dataset, "features/text")
    if not path.exists():
        raise MmworkError(f"content models need item features; run `mmwork extract {dataset} --modalities text` "
                          "first, or name a feature table with --features TABLE:COLUMN")
    names = pq.read_schema(next(p for p in sorted(path.glob("part-*.parquet")))).names
    return [f"text:{c}" for c in names if c not in ("item_id", "content_hash", "skipgram")]


def build_models(names: list[str], params: dict[str, dict] | None = None, device: str = "auto", seed: int = 0):
    """The named recommenders with their parameters, validated before anything trains."""
    from mmwork.models.recommenders import MODELS
    params = params or {}
    unknown = [n for n in list(names) + list(params) if n not in MODELS]
    if unknown:
        raise MmworkError(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    return [MODELS[name]({"device": device, "seed": seed} | params.get(name, {})) for name in names]


def run_experiment(dataset: str, models: list[str], protocol: str | None = None, k: int = 10, seed: int = 2020,
                   features: list[str] | None = None, params: dict[str, dict] | None = None, device: str = "auto",
                   split_dir: str | Path | None = None, threshold: float | None = None, mask: str | None = None,
                   verbose: bool = True) -> ExperimentResult:
    """Split ``dataset`` (see :func:`make_split`), build the named models (validated before anything
    trains), run them."""
    built = build_models(models, params, device=device, seed=seed)
    split = make_split(dataset, protocol, seed=seed, split_dir=split_dir, threshold=threshold, mask=mask)
    item_features = None
    if features or any(m.uses_features for m in built):
        from mmwork.store.item_features import load_item_features
        item_features = load_item_features(dataset, features or default_feature_specs(dataset), split.item_ids)
    result = Experiment(split, built, k=k, item_features=item_features, verbose=verbose).run()
    result.setup["dataset"] = dataset
    result.setup["item_catalogue"] = f"{dataset} items ({len(split.item_ids)})"
    result.setup["split_dir"] = str(split_dir) if split_dir is not None else None
    result.setup["features"] = features or (default_feature_specs(dataset) if item_features is not None else [])
    return result
