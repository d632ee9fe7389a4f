"""The one ``--param GROUP.NAME=VALUE`` grammar of every command (``audio.n_mfcc=13``, ``bpr.epochs=50``,
``vae.latent_dim=32``, ``lm.hidden_dim=128``). VALUE is read as YAML, so numbers, booleans and lists
keep their type; the names are checked by each component's typed config, before any compute.
Papermill's ``-p NAME VALUE`` stays the grammar of ``mmwork report run``.

>>> parse_params(["audio.n_mfcc=13", "image.cnn=false"])
{'audio': {'n_mfcc': 13}, 'image': {'cnn': False}}
>>> personalise_params({"personalise": {"vocab_size": 400}, "lm": {"epochs": 2}})
{'vocab_size': 400, 'lm': {'epochs': 2}}
"""
from __future__ import annotations

from collections.abc import Iterable

from mmwork.core.errors import MmworkError

PERSONALISE_GROUPS = ("personalise", "lm", "guide", "judge", "judge2")
"""``generate for-user``'s groups: ``personalise.*`` sets PersonaliseConfig's own fields, the others its parts."""


def parse_params(pairs: Iterable[str], groups: Iterable[str] | None = None, what: str = "GROUP") -> dict[str, dict]:
    """``["GROUP.NAME=VALUE", ...]`` -> ``{GROUP: {NAME: value}}``; with ``groups``, only those groups."""
    import yaml
    allowed = None if groups is None else list(groups)
    params: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        group, dot, name = key.strip().partition(".")
        if not sep or not dot or not group or not name:
            example = f"{allowed[0]}.NAME=VALUE" if allowed else "audio.n_mfcc=13 or bpr.epochs=50"
            raise MmworkError(f"--param {pair!r} must look like {what}.NAME=VALUE, e.g. {example}")
        if allowed is not None and group not in allowed:
            raise MmworkError(f"--param {pair!r}: {group!r} is not one of {', '.join(allowed)} here")
        params.setdefault(group, {})[name] = yaml.safe_load(value)
    return params


def personalise_params(grouped: dict[str, dict]) -> dict:
    """The keyword arguments of ``personalise.train``: ``personalise.*`` at the top, the rest by part."""
    top = dict(grouped.get("personalise", {}))
    return top | {group: values for group, values in grouped.items() if group != "personalise"}
