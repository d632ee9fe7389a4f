"""Experiments by name, for the CLI and notebooks: a data set, a protocol, model names.

>>> result = run_experiment("movielens-100k", ["pop", "ease"], protocol="recbole")   # doctest: +SKIP
>>> result.table[["ndcg@10", "recall@10"]]                                           # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from mmwork.errors import MmworkError
from mmwork.evaluation import splits
from mmwork.evaluation.experiment import Experiment, ExperimentResult
from mmwork.store import read_table, table_path

SPLITTERS = {
    "recbole": lambda inter, items, seed: splits.recbole_split(inter, item_ids=items, seed=seed),
    "ratio": lambda inter, items, seed: splits.ratio_split(inter, item_ids=items, seed=seed),
    "temporal": lambda inter, items, seed: splits.temporal_split(inter, item_ids=items),
    "loo": lambda inter, items, seed: splits.leave_one_out(inter, item_ids=items, seed=seed),
    "cold-items": lambda inter, items, seed: splits.cold_start_split(inter, items, seed=seed),
}


def make_split(dataset: str, protocol: str = "recbole", seed: int = 2020, split_dir: str | Path | None = None):
    """The split of ``dataset`` under ``protocol`` (or the train/valid/test files in ``split_dir``)."""
    items = read_table(dataset, "items", columns=["item_id"])["item_id"]
    if split_dir is not None:
        folder = Path(split_dir)
        return splits.split_from_files(*(folder / f"{p}.csv" for p in ("train", "valid", "test")), item_ids=items)
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
    from mmwork.recommenders import MODELS
    params = params or {}
    unknown = [n for n in list(names) + list(params) if n not in MODELS]
    if unknown:
        raise MmworkError(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    return [MODELS[name](device=device, seed=seed, **params.get(name, {})) for name in names]


def run_experiment(dataset: str, models: list[str], protocol: str = "recbole", k: int = 10, seed: int = 2020,
                   features: list[str] | None = None, params: dict[str, dict] | None = None, device: str = "auto",
                   split_dir: str | Path | None = None, verbose: bool = True) -> ExperimentResult:
    """Split ``dataset``, build the named models (validated before anything trains), run them."""
    built = build_models(models, params, device=device, seed=seed)
    split = make_split(dataset, protocol, seed=seed, split_dir=split_dir)
    item_features = None
    if features or any(m.uses_features for m in built):
        from mmwork.recommenders.features import load_item_features
        item_features = load_item_features(dataset, features or default_feature_specs(dataset), split.item_ids)
    result = Experiment(split, built, k=k, item_features=item_features, verbose=verbose).run()
    result.setup["dataset"] = dataset
    result.setup["features"] = features or (default_feature_specs(dataset) if item_features is not None else [])
    return result
