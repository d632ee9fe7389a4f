"""Where trained generators live, what their training recorded, and how a model is saved and loaded.

A model is a folder ``<data root>/models/generators/<dataset>/<model>/`` holding the model's own
files and ``run.json`` (what ``train`` recorded); its training checkpoint sits beside it.

>>> model_dir("fashion-mnist", "cvae").parts[-3:]
('generators', 'fashion-mnist', 'cvae')
>>> checkpoint_dir("fashion-mnist", "cvae").name
'cvae.checkpoint'
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from mmwork.apps.generate.registry import DATASETS, MODELS, spec, train_command
from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root
from mmwork.store.tables import swap_in_folder, write_json


def model_dir(dataset: str, model: str) -> Path:
    """Where ``train`` saves the model: ``<data root>/models/generators/<dataset>/<model>``."""
    return data_root() / "models" / "generators" / dataset / model


def checkpoint_dir(dataset: str, model: str) -> Path:
    """The training checkpoint, rewritten after every epoch (``train(..., resume=True)`` continues it)."""
    return model_dir(dataset, model).with_name(f"{model}.checkpoint")


def info(dataset: str, model: str) -> dict | None:
    """What ``train`` recorded about the saved model (classes, counts, epochs, seconds, device), or
    None when it was never trained under this data root."""
    path = model_dir(dataset, model) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def trained_info(dataset: str, model: str) -> dict:
    """:func:`info`, or a one-line error that says how to train the model."""
    recorded = info(dataset, model)
    if recorded is None:
        raise MmworkError(f"no trained {model} for {dataset}; train it first: {train_command(dataset, model)}")
    return recorded


def models() -> pd.DataFrame:
    """Every model name with its class, data, condition, description and, per data set, whether a
    trained copy is under the data root."""
    rows = []
    for name, s in MODELS.items():
        for dataset, kind in DATASETS.items():
            if kind == s.data:
                recorded = info(dataset, name) or {}
                rows.append({"dataset": dataset, "model": name, "class": s.cls, "condition": s.condition,
                             "trained": bool(recorded), "train_examples": recorded.get("train_examples"),
                             "about": s.about})
    return pd.DataFrame(rows)


def save(fitted, recorded: dict, target: Path) -> None:
    """Write the model and its ``run.json`` to a hidden sibling folder, then swap it into place, so
    ``target`` always holds one whole model (the old one until the new one is complete)."""
    from mmwork.core.version import version
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    fitted.save(staging)
    write_json(staging / "run.json", recorded | {"mmwork_version": version()})
    swap_in_folder(staging, target)


def load(dataset: str, model: str, device: str = "auto"):
    """The generator ``train`` saved for ``dataset`` and ``model``."""
    return load_with_info(dataset, model, device)[0]


def load_with_info(dataset: str, model: str, device: str = "auto"):
    """(the saved model, what its training recorded)."""
    found = spec(dataset, model)
    recorded = info(dataset, model)
    if recorded is None:
        raise MmworkError(f"no trained {model} for {dataset} under {model_dir(dataset, model)}; train it first: "
                          f"{train_command(dataset, model)}")
    return found.klass.load(model_dir(dataset, model), device=device), recorded
