"""One readable line per experiment, in the spirit of Cornac:

>>> from mmwork.evaluation import Experiment, recbole_split
>>> from mmwork.models.recommenders import EASE, MostPopular
>>> result = Experiment(split, [MostPopular(), EASE()], k=10).run()      # doctest: +SKIP
>>> result.table                                                          # doctest: +SKIP

Each model is fitted on ``split.train`` (``split.valid``, when it has relevant interactions, is
given for early stopping only) and ranked on ``split.test`` under the split's masking rule; the result
carries the protocol, masking rule, seed, data hash, each model's training epochs and time, and
per-user metrics, so a paired significance test between any two models is one call.
"""
from __future__ import annotations

import html
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.evaluation import masking
from mmwork.evaluation.metrics import RANKING_METRICS, coverage, intra_list_diversity, novelty, paired_test
from mmwork.evaluation.ranking import Ranking, Validator, evaluate
from mmwork.store.interactions import Split
from mmwork.store.item_features import content_vector

BEYOND_ACCURACY = ("coverage", "novelty", "diversity")


@dataclass
class ExperimentResult:
    """The tidy table (one row per model: metrics, ``best_epoch`` and ``epochs`` — None for models
    that do not train in epochs — ``fit_s``, ``eval_s``), the per-user metrics, and what it was
    measured under (``setup``)."""

    table: pd.DataFrame
    rankings: dict[str, Ranking]
    setup: dict
    histories: dict[str, list] = field(default_factory=dict)

    def significance(self, model_a: str, model_b: str, metric: str = "ndcg") -> dict:
        """Paired test of ``metric`` between two models over the same test users."""
        for name in (model_a, model_b):
            if name not in self.rankings:
                raise MmworkError(f"no model named {name!r} in this result; it has {list(self.rankings)}")
        return paired_test(self.rankings[model_a].metrics[metric], self.rankings[model_b].metrics[metric]) | {
            "metric": f"{metric}@{self.setup['k']}", "a": model_a, "b": model_b}

    def headline(self) -> str:
        """One line: protocol, masking rule, relevance, K, users evaluated, data hash."""
        s = self.setup
        relevance = "every held-out interaction" if s["threshold"] is None else f"rating >= {s['threshold']:g}"
        return (f"protocol {s['protocol']}, mask {s['mask']}, relevant: {relevance}, K={s['k']}, "
                f"{s['evaluated_users']} users evaluated, data hash {s['data_hash']}")

    def __repr__(self) -> str:
        return f"{self.headline()}\n{self.table.round(4).to_string()}"

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.headline())}</p>{self.table.round(4).to_html()}"

    def to_dict(self) -> dict:
        records = json.loads(self.table.reset_index().to_json(orient="records", double_precision=15))
        return {"setup": self.setup, "results": records}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, default=float)
        if path is not None:
            Path(path).write_text(text)
        return text


@dataclass
class Experiment:
    """Fit and evaluate ``models`` on one ``split`` at cut-off ``k``.

    item_features: content features aligned to ``split.item_ids`` (an array, or a dict of arrays by
    modality); given to models that read content and used for intra-list diversity.
    """

    split: Split
    models: list
    metrics: tuple[str, ...] = tuple(RANKING_METRICS) + BEYOND_ACCURACY
    k: int = 10
    item_features: np.ndarray | dict | None = None
    verbose: bool = True

    def run(self) -> ExperimentResult:
        unknown = set(self.metrics) - set(RANKING_METRICS) - set(BEYOND_ACCURACY)
        if unknown:
            raise MmworkError(f"unknown metric(s) {sorted(unknown)}; choose from "
                              f"{sorted(RANKING_METRICS) + list(BEYOND_ACCURACY)}")
        names = [getattr(m, "label", None) or m.name for m in self.models]
        if len(set(names)) != len(names):
            raise MmworkError(f"two models share a name in {names}; give one a label (model.label = '...')")
        ranking_metrics = tuple(m for m in self.metrics if m in RANKING_METRICS)
        diversity_features = _stack(self.item_features)
        popularity = np.diff(self.split.train.binary().tocsc().indptr)
        rows, rankings, histories = [], {}, {}
        for name, model in zip(names, self.models):
            started = time.perf_counter()
            features = self.item_features if getattr(model, "uses_features", False) else None
            valid = Validator(self.split) if masking.relevant(self.split, "valid").nnz else None
            model.fit(self.split.train, item_features=features, valid=valid)
            fit_s = time.perf_counter() - started
            started = time.perf_counter()
            ranking = evaluate(model, self.split, "test", k=self.k, metrics=ranking_metrics)
            eval_s = time.perf_counter() - started
            row = {"model": name} | {f"{m}@{self.k}": float(v.mean()) for m, v in ranking.metrics.items()}
            if "coverage" in self.metrics:
                ranked = masking.candidates(self.split, "test")
                n = len(ranked) if ranked is not None else self.split.train.n_items
                row[f"coverage@{self.k}"] = coverage(ranking.top_items, n)
            if "novelty" in self.metrics:
                row[f"novelty@{self.k}"] = float(novelty(ranking.top_items, popularity, self.split.train.n_users).mean())
            if "diversity" in self.metrics and diversity_features is not None:
                row[f"diversity@{self.k}"] = float(intra_list_diversity(ranking.top_items, diversity_features).mean())
            histories[name] = history = getattr(model, "history_", [])
            row |= {"best_epoch": getattr(model, "best_epoch_", None), "epochs": len(history) or None,
                    "fit_s": round(fit_s, 3), "eval_s": round(eval_s, 3)}
            rows.append(row)
            rankings[name] = ranking
            if self.verbose:
                shown = {k: round(v, 4) for k, v in row.items() if k.startswith(("ndcg", "recall"))}
                print(f"  {name:<10} {shown}  fit {fit_s:.1f} s, eval {eval_s:.2f} s", flush=True)
        import torch
        setup = self.split.describe() | {
            "mask_rule": masking.MASKS[self.split.mask], "k": self.k,
            "evaluated_users": int(len(next(iter(rankings.values())).users)),
            "models": {n: {"class": type(m).__name__, "params": m.get_params()} for n, m in zip(names, self.models)},
            "seeds": {n: m.get_params().get("seed") for n, m in zip(names, self.models)},
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "device": str(getattr(self.models[0], "device_", "cpu"))},
        }
        table = pd.DataFrame(rows).set_index("model").astype({"best_epoch": "Int64", "epochs": "Int64"})
        return ExperimentResult(table, rankings, setup, histories)


def _stack(features) -> np.ndarray | None:
    if features is None:
        return None
    if isinstance(features, dict):
        return content_vector(features, np.float32)
    return np.asarray(features, dtype=np.float32)
