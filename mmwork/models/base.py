"""The base every trained model shares (recommenders, generators, judges): a typed config, learned
state as named tensors, and one persistence (``save(path)`` / ``TrainedModel.load(path)``).

Learned state follows scikit-learn's convention: attributes ending in ``_``, set by ``fit`` only.
``_state`` names the learned tensors and modules; ``_tensors()`` flattens them into named tensors
(``net_.encoder.0.weight`` for a module, the attribute's name for a tensor) and ``_load_tensors``
puts such a dict back. Every model keeps ``history_`` (one dict per epoch; empty for closed-form
models) and ``best_epoch_`` (the epoch whose state was kept; None without epochs), and both are saved.

``save`` writes the tensors to safetensors and the rest to JSON through
:mod:`mmwork.store.artifacts` (atomic, versioned, SHA-256 checked). The JSON names the class by
its module path (``mmwork.models.generators.vae:VAE``); ``load`` imports that module only if it
lies inside mmwork and the class is a :class:`TrainedModel`, so loading never runs foreign code and
needs no registry.

>>> from mmwork.models.base import model_class
>>> model_class("mmwork.models.recommenders.popularity:MostPopular").__name__
'MostPopular'
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import ClassVar

import torch

from mmwork.core.config import Configurable, ModelConfig
from mmwork.core.device import resolve_device
from mmwork.core.errors import MmworkError
from mmwork.store.artifacts import read_artifact, write_artifact


class TrainedModel(Configurable):
    """Base class. Subclasses set ``name`` and ``config_class`` and list their learned state in
    ``_state``; iterative ones train through :class:`mmwork.models.training.Training`."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    _state: ClassVar[tuple[str, ...]] = ()

    # -- learned state as named tensors --------------------------------------------------------------
    def _state_names(self) -> tuple[str, ...]:
        """The attributes ``_tensors`` flattens (``_state``; subclasses may add optional ones)."""
        return self._state

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The learned state, flattened: ``net_.encoder.0.weight`` for modules, the name for tensors."""
        out = {}
        for name in self._state_names():
            value = getattr(self, name)
            if isinstance(value, torch.nn.Module):
                items = value.state_dict().items()
            else:
                items = [("", value if isinstance(value, torch.Tensor) else torch.as_tensor(value))]
            out.update({f"{name}.{k}" if k else name: v.detach() for k, v in items})
        return out

    def _tensors_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self._tensors().items()}

    @torch.no_grad()
    def _load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put ``tensors`` (as from ``_tensors``) back: modules and existing tensors of the same shape
        are copied into in place (an optimizer keeps holding them); other names are set anew."""
        modules = {n for n in self._state_names() if isinstance(self.__dict__.get(n), torch.nn.Module)}
        for name in modules:
            getattr(self, name).load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items()
                                                 if k.startswith(name + ".")})
        for name, value in tensors.items():
            if name.split(".")[0] in modules:
                continue
            old = self.__dict__.get(name)
            if isinstance(old, torch.Tensor) and old.shape == value.shape and old.dtype == value.dtype:
                old.copy_(value)
            else:
                setattr(self, name, value.to(getattr(self, "device_", value.device)))

    def _check_fitted(self) -> None:
        missing = [n for n in self._state if n not in self.__dict__]
        if missing:
            raise MmworkError(f"{self.name} is not fitted (no {', '.join(missing)}); call fit first")

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` (learned tensors) and ``path/model.json`` (class, name,
        parameters, history, mmwork and format versions, the tensors' SHA-256), atomically."""
        self._check_fitted()
        return write_artifact(Path(path), self._tensors() | self._extra_tensors(), self._meta())

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        """Saved beside the learned state (names starting with ``_``), e.g. a recommender's training
        matrix."""
        return {}

    def _meta(self) -> dict:
        return {"class": class_path(type(self)), "name": self.name, "params": self.get_params(),
                "history": getattr(self, "history_", []), "best_epoch": getattr(self, "best_epoch_", None)}

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "TrainedModel":
        """Load a model written by :meth:`save` (or a training checkpoint: its last epoch). Called on a
        subclass, the saved model must be one of it."""
        path = Path(path)
        meta, tensors = read_artifact(path, framework="torch")
        klass = model_class(meta.get("class", ""), path)
        if not issubclass(klass, cls):
            raise MmworkError(f"{path} holds a {klass.__name__}, which cannot be loaded as {cls.__name__}")
        model = klass(meta["params"], device=device)
        model.device_ = resolve_device(device)
        model._restore(meta, tensors, path)
        model.history_, model.best_epoch_ = meta.get("history", []), meta.get("best_epoch")
        return model

    def _restore(self, meta: dict, tensors: dict[str, torch.Tensor], path: Path) -> None:
        """Rebuild the learned state from a save (``device_`` and the config are set)."""
        self._load_tensors({k: v.to(self.device_) for k, v in tensors.items() if not k.startswith("_")})


def class_path(klass: type) -> str:
    """``module:QualName`` of a class, as the JSON of a save records it."""
    return f"{klass.__module__}:{klass.__qualname__}"


def model_class(spec: str, path: str | Path = "the save") -> type[TrainedModel]:
    """The :class:`TrainedModel` class a save names (``mmwork.models.generators.vae:VAE``); only
    modules inside mmwork are imported."""
    module, _, qualname = str(spec).partition(":")
    if not module.startswith("mmwork.") or not qualname.isidentifier():
        raise MmworkError(f"{path} names the class {spec!r}, which is no mmwork model (module:Class inside mmwork "
                          "expected); it was not written by this mmwork's save")
    try:
        klass = getattr(importlib.import_module(module), qualname, None)
    except ImportError:
        klass = None
    if not (isinstance(klass, type) and issubclass(klass, TrainedModel)):
        raise MmworkError(f"{path} holds a {spec}, which is no model this mmwork knows")
    return klass
