"""The base of the models trained on arrays of examples in epochs (generators and judges): the
training hyper-parameters, the networks built inside a seeded ``fork_rng``, the input checks, and a
``fit`` that runs :class:`mmwork.models.training.Training` on a held-out loss (lower is better).

Each class also describes itself: the kind of data it takes (``data_kind``: "image", "audio" or
"text"), the conditions it can be built for (``conditions``: "none", "class", "text" or "label"),
its named ``presets`` (default parameters and a one-line description), and ``from_data`` builds it
from what the training data says (the class names, the text embedding's width, the mel format).

>>> from mmwork.models.generators import VAE
>>> [p.name for p in VAE.presets], VAE.data_kind
(['vae', 'cvae', 'text-cvae'], 'image')
>>> VAE.from_data({"epochs": 1}, condition="class", classes=["a", "b", "c"]).config.condition_dim
3
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import PositiveFloat, PositiveInt

from mmwork.core.device import resolve_device
from mmwork.core.errors import MmworkError
from mmwork.models.base import TrainedModel
from mmwork.models.training import BudgetedConfig, Training, Validation, read_checkpoint

DataKind = Literal["image", "audio", "text"]
Condition = Literal["none", "class", "text", "label"]


@dataclass(frozen=True)
class Preset:
    """A named way to build a model class: the condition it is built for, parameters on top of the
    class's own defaults, and a one-line description."""

    name: str
    condition: Condition
    defaults: dict = field(default_factory=dict)
    about: str = ""


class NetworkConfig(BudgetedConfig):
    """Parameters every network trained in epochs has."""

    epochs: PositiveInt = 10
    """Maximum number of passes over the training data."""
    batch_size: PositiveInt = 128
    """Examples per gradient step (and per forward pass when evaluating)."""
    lr: PositiveFloat = 1e-3
    """Adam learning rate."""
    patience: PositiveInt = 3
    """Epochs without a lower validation loss before training stops (when ``fit`` gets ``valid``);
    the best epoch's state is kept."""
    amp: bool = False
    """Mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling); ignored
    elsewhere."""


class NetworkModel(TrainedModel):
    """Base class. Subclasses set ``name``, ``config_class``, ``data_shape`` and the description
    (``data_kind``, ``conditions``, ``presets``), list their learned modules/tensors in ``_state``,
    and implement ``_build`` (empty modules from the config), ``_fit``, ``_valid_loss`` and
    ``_check_condition`` (the per-example side input: a condition vector or a label)."""

    config_class: ClassVar[type[NetworkConfig]] = NetworkConfig
    data_shape: ClassVar[tuple[int, ...]] = ()  # shape of one example, e.g. (1, 28, 28)
    value_range: ClassVar[tuple[float, float] | None] = None  # e.g. (0, 1) for pixels; None: any finite value
    data_kind: ClassVar[DataKind] = "image"
    conditions: ClassVar[tuple[Condition, ...]] = ("none",)
    presets: ClassVar[tuple[Preset, ...]] = ()

    # -- built from the data -------------------------------------------------------------------------
    @classmethod
    def from_data(cls, params: dict | None = None, /, *, condition: Condition = "none", classes=(),
                  condition_dim: int | None = None, mel=None) -> "NetworkModel":
        """The model for training data with these ``classes`` (names by index), conditioned as
        ``condition`` says: "class" takes one-hot rows of len(classes), "text" embeddings of width
        ``condition_dim``, "label" a judge's integer labels; audio models take the data's ``mel``."""
        if condition not in cls.conditions:
            raise MmworkError(f"{cls.__name__} is built for conditions {', '.join(cls.conditions)}, not {condition!r}")
        return cls(dict(params or {}) | cls._params_from_data(condition, list(classes), condition_dim, mel))

    @classmethod
    def _params_from_data(cls, condition, classes, condition_dim, mel) -> dict:
        if condition == "class":
            return {"condition_dim": len(classes)}
        if condition == "text":
            if not condition_dim:
                raise MmworkError(f"{cls.__name__} on a text condition needs condition_dim (the embedding's width)")
            return {"condition_dim": int(condition_dim)}
        if condition == "label":
            return {"n_classes": len(classes)}
        return {"condition_dim": 0} if "condition_dim" in cls.config_class.model_fields else {}

    # -- training ------------------------------------------------------------------------------------
    def fit(self, data, condition=None, valid=None, *, checkpoint: str | Path | None = None,
            resume_from: str | Path | None = None) -> "NetworkModel":
        """Learn from ``data`` (with one ``condition`` row per example for conditional models).

        ``valid`` drives early stopping: held-out data (``(data, condition)`` for conditional models),
        scored by the model's validation loss, or a callback ``valid(model) -> float``; lower is better.
        ``checkpoint`` names a folder rewritten after every epoch; ``resume_from`` continues from one
        (same class and parameters, except ``epochs``, ``patience`` and ``device``). Returns self.
        """
        x = self._check_data(data)
        c = self._check_condition(condition, len(x))
        measure = self._check_valid(valid)
        resumed = read_checkpoint(resume_from, self) if resume_from is not None else None
        for name in self._state + ("history_", "best_epoch_"):
            self.__dict__.pop(name, None)  # a failed fit must not leave an older fit's state behind
        self.device_ = resolve_device(self.config.device)
        self._init_state()
        self._fit(x.to(self.device_), None if c is None else c.to(self.device_),
                  Training(self, measure, checkpoint, resumed, mode="min"))
        return self

    def _fit(self, x: torch.Tensor, condition: torch.Tensor | None, training: "Training") -> None:
        raise NotImplementedError

    def _build(self) -> None:
        """Create the learned modules/tensors named in ``_state``, initialised from torch's global
        generator (which ``_init_state`` forks and seeds)."""
        raise NotImplementedError

    def _init_state(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self._build()
        for name in self._state:
            setattr(self, name, getattr(self, name).to(self.device_))

    def _valid_loss(self, x: torch.Tensor, condition: torch.Tensor | None) -> float:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        missing = [n for n in self._state if n not in self.__dict__]
        if missing:
            raise MmworkError(f"{self.name} is not fitted (no {', '.join(missing)}); call fit(data) first")

    # -- input checks (all before any compute) -------------------------------------------------------
    def _check_data(self, data, what: str = "data") -> torch.Tensor:
        """``data`` as a float32 CPU tensor of shape (N, *data_shape) with finite values."""
        if not isinstance(data, (torch.Tensor, np.ndarray)):
            raise MmworkError(f"{what} must be a tensor or numpy array, got {type(data).__name__}")
        x = torch.as_tensor(data).detach()
        if not x.is_floating_point():
            raise MmworkError(f"{what} must hold floats, got {x.dtype}; images go in as floats in [0, 1] "
                              "(divide uint8 pixels by 255)")
        if x.ndim != 1 + len(self.data_shape) or tuple(x.shape[1:]) != self.data_shape:
            raise MmworkError(f"{what} must have shape (N, {', '.join(map(str, self.data_shape))}) for "
                              f"{self.name}, got {tuple(x.shape)}")
        if len(x) == 0:
            raise MmworkError(f"{what} is empty")
        x = x.cpu().float()
        if not torch.isfinite(x).all():
            raise MmworkError(f"{what} holds NaN or infinite values ({int((~torch.isfinite(x)).sum())} of them)")
        if self.value_range is not None and (x.min() < self.value_range[0] or x.max() > self.value_range[1]):
            low, high = self.value_range
            raise MmworkError(f"{what} must lie in [{low:g}, {high:g}], got values from {float(x.min()):.4g} "
                              f"to {float(x.max()):.4g}")
        return x

    def _check_condition(self, condition, n: int, what: str = "condition", broadcast: bool = False):
        raise NotImplementedError

    def _check_valid(self, valid) -> Validation | None:
        if valid is None or callable(valid):
            return valid
        data, condition = valid if isinstance(valid, tuple) else (valid, None)
        x = self._check_data(data, "valid data")
        c = self._check_condition(condition, len(x), "valid condition")
        return lambda model: model._valid_loss(x.to(model.device_), None if c is None else c.to(model.device_))

    # -- persistence ---------------------------------------------------------------------------------
    def _restore(self, meta: dict, tensors: dict[str, torch.Tensor], path: Path) -> None:
        self._init_state()
        try:
            super()._restore(meta, tensors, path)
        except (RuntimeError, KeyError) as error:  # tensors that do not fit this mmwork's network
            raise MmworkError(f"{path} holds a {type(self).__name__} whose tensors do not fit this mmwork's "
                              f"{type(self).__name__} ({str(error).splitlines()[0]}); retrain it") from None
