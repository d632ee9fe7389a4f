"""Typed, validated configuration for every component (recommenders, extractors, generators).

Each component declares one small pydantic class with a docstring under each field (in the style of
LensKit 2025); the component validates its parameters when it is constructed, so a wrong value fails
before any compute, with one readable message. Values given as strings (from the command line or a
YAML file) are converted by pydantic's usual rules (``"50"`` -> 50, ``"false"`` -> False).

>>> from pydantic import Field
>>> class Knobs(Config):
...     epochs: int = Field(10, gt=0, description="Passes over the data.")
>>> Knobs.make(epochs="5").epochs
5
>>> Knobs.make(epochs=0)
Traceback (most recent call last):
...
mmwork.core.errors.MmworkError: bad parameter for Knobs: epochs: Input should be greater than 0 (got 0)
>>> Knobs.describe()["epochs"]
'Passes over the data.'
"""
from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, NonNegativeInt, PositiveFloat, ValidationError

from mmwork.core.errors import MmworkError


_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def seconds(value: Any) -> Any:
    """``"90s"``, ``"2m"``, ``"1.5h"`` or a number (seconds) as seconds; anything else is left for
    pydantic to refuse.

    >>> seconds("90s"), seconds("2m"), seconds("1.5h"), seconds(30)
    (90.0, 120.0, 5400.0, 30)
    """
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|sec|m|min|h)?\s*", value.lower())
        if found is None:
            raise ValueError(f"{value!r} is no duration; write e.g. 90s, 2m or 1.5h")
        return float(found[1]) * _UNITS[found[2] or "s"]
    return value


Duration = Annotated[PositiveFloat, BeforeValidator(seconds)]
"""A wall-clock duration in seconds, also written ``"90s"``, ``"2m"`` or ``"1.5h"``."""


class Config(BaseModel):
    """Base of every component's configuration: unknown fields are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False,
                              protected_namespaces=())

    @classmethod
    def make(cls, config: "Config | dict | None" = None, /, **params: Any) -> "Config":
        """A validated instance from another config, a dict and/or keyword parameters (which win)."""
        if isinstance(config, BaseModel):
            config = config.model_dump()
        try:
            return cls.model_validate((config or {}) | params)
        except ValidationError as exc:
            raise MmworkError(f"bad parameter for {cls.__name__.removesuffix('Config') or cls.__name__}: "
                              f"{explain(exc, cls)}") from None

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Each field's docstring, by name (what ``--help``-style listings show)."""
        return {name: field.description or "" for name, field in cls.model_fields.items()}


class ModelConfig(Config):
    """Parameters every trained model (recommender or generator) has."""

    device: str = "auto"
    """Torch device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1", ..."""
    seed: NonNegativeInt = 0
    """Seeds the model's own random generators (never the global ones); CPU fits repeat exactly."""


class Configurable:
    """A component whose constructor validates and stores ``self.config`` (an instance of
    ``config_class``), from a config, a dict and/or keyword parameters."""

    config_class: ClassVar[type[Config]] = Config

    def __init__(self, config: Config | dict | None = None, /, **params: Any):
        self.config = self.config_class.make(config, **params)

    def get_params(self) -> dict:
        return self.config.model_dump()

    def __repr__(self) -> str:
        defaults = self.config_class()
        changed = {k: v for k, v in self.get_params().items() if getattr(defaults, k) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @classmethod
    def subclass_named(cls, name: str) -> type | None:
        """The subclass (at any depth) with this class name, for loading saved models."""
        todo = list(cls.__subclasses__())
        while todo:
            sub = todo.pop()
            if sub.__name__ == name:
                return sub
            todo += sub.__subclasses__()
        return None


def explain(exc: ValidationError, config: type[Config]) -> str:
    """A pydantic error as one line: ``field: message (got value)`` for each problem."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "value"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {where!r} (it has {', '.join(config.model_fields)})")
        else:
            message = error["msg"].removeprefix("Value error, ")  # a field validator's own message
            parts.append(f"{where}: {message} (got {error.get('input')!r})")
    return "; ".join(parts)
