"""Load any saved mmwork model (recommender, generator, judge) without knowing its class: the save
names it (see :mod:`mmwork.models.base`). ``mmwork.load`` is this function.

>>> import mmwork
>>> mmwork.load.__module__
'mmwork.models.persistence'
>>> model = mmwork.load("data/models/generators/fashion-mnist/vae")     # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from mmwork.models.base import TrainedModel


def load(path: str | Path, device: str = "auto") -> TrainedModel:
    """The model saved in folder ``path`` (by ``save`` or as a training checkpoint), on ``device``;
    refused when the files were altered or were not written by an mmwork save."""
    return TrainedModel.load(path, device=device)
