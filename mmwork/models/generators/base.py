"""The one interface every generator follows (images, sound and text alike), in the style of
``mmwork.models.recommenders.base``.

The constructor validates and stores a typed configuration, so a wrong parameter fails before any
compute; ``fit(data, condition=None, valid=None)`` checks its input and learns; ``sample(n,
condition=None, seed=0)`` returns a tensor on the model's device, the same one for the same seed.
Learned state follows scikit-learn's convention: attributes ending in ``_``, set by ``fit`` only
(``_state`` names the learned modules/tensors, ``history_`` holds one dict per epoch, ``best_epoch_``
the epoch whose state was kept). ``save``/``load`` write safetensors for tensors and JSON for the
rest, so loading never unpickles code.

Training is repeatable for a seed on CPU and never touches torch's or numpy's global generators: the
weights are initialised inside ``torch.random.fork_rng`` and every draw uses the model's own
``torch.Generator``. :class:`Training` holds the epoch bookkeeping the models share: the progress bar,
early stopping on a validation loss, the stop on a NaN/inf loss, checkpoints and resuming.

>>> from mmwork.models.generators import VAE
>>> from mmwork.models.data import fashion_mnist, train_valid_split
>>> train, valid = train_valid_split(fashion_mnist("train"))        # doctest: +SKIP
>>> model = VAE(epochs=20).fit(train.images, valid=valid.images)   # early stopping never sees test data  # doctest: +SKIP
>>> model.save("data/models/vae"); VAE.load("data/models/vae").sample(16, seed=1)   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import PositiveFloat, PositiveInt
from tqdm import tqdm

from mmwork.core.config import Configurable, ModelConfig
from mmwork.core.device import resolve_device
from mmwork.core.errors import MmworkError

log = logging.getLogger("mmwork.models.generators")

FORMAT = 2  # version of the model.json / model.safetensors layout; bump when it changes


class GeneratorConfig(ModelConfig):
    """Parameters every generator has."""

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


Validation = Callable[["Generator"], float]


class Generator(Configurable):
    """Base class. Subclasses set ``name``, ``config_class`` and ``data_shape``, list their learned
    modules/tensors in ``_state``, and implement ``_build`` (empty modules from the config), ``_fit``,
    ``_valid_loss`` and ``sample``."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    data_shape: ClassVar[tuple[int, ...]] = ()  # shape of one example, e.g. (1, 28, 28)
    value_range: ClassVar[tuple[float, float] | None] = None  # e.g. (0, 1) for pixels; None: any finite value
    _state: ClassVar[tuple[str, ...]] = ()

    # -- training ------------------------------------------------------------------------------------
    def fit(self, data, condition=None, valid=None, *, checkpoint: str | Path | None = None,
            resume_from: str | Path | None = None) -> "Generator":
        """Learn from ``data`` (with one ``condition`` row per example for conditional models).

        ``valid`` drives early stopping: held-out data (``(data, condition)`` for conditional models),
        scored by the model's validation loss, or a callback ``valid(model) -> float``; lower is better.
        ``checkpoint`` names a folder rewritten after every epoch; ``resume_from`` continues from one
        (same class and parameters, except ``epochs``, ``patience`` and ``device``). Returns self.
        """
        x = self._check_data(data)
        c = self._check_condition(condition, len(x))
        measure = self._check_valid(valid)
        resumed = _read_checkpoint(resume_from, self) if resume_from is not None else None
        for name in self._state + ("history_", "best_epoch_"):
            self.__dict__.pop(name, None)  # a failed fit must not leave an older fit's state behind
        self.device_ = resolve_device(self.config.device)
        self._init_state()
        self._fit(x.to(self.device_), None if c is None else c.to(self.device_),
                  Training(self, measure, checkpoint, resumed))
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

    def _draw_noise(self, n: int, dim: int, condition, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """For ``sample``: check the request, then ``n`` standard-normal vectors of size ``dim`` drawn
        with ``seed`` and the condition (one vector for all or one row each), both on the device."""
        self._check_fitted()
        if not isinstance(n, int) or n < 1:
            raise MmworkError(f"n must be a positive integer, got {n!r}")
        c = self._check_condition(condition, n, broadcast=True)
        generator = torch.Generator(self.device_).manual_seed(seed)
        z = torch.randn(n, dim, generator=generator, device=self.device_)
        return z, None if c is None else c.to(self.device_)

    def _check_condition(self, condition, n: int, what: str = "condition", broadcast: bool = False):
        """``condition`` as a float32 CPU tensor (n, condition_dim), or None for unconditional models;
        with ``broadcast`` one vector is repeated n times."""
        dim = getattr(self.config, "condition_dim", 0)
        if dim == 0:
            if condition is not None:
                raise MmworkError(f"this {self.name} is unconditional (condition_dim=0) but got a {what}; "
                                  f"make it with condition_dim=<width of the {what} vectors>")
            return None
        if condition is None:
            raise MmworkError(f"this {self.name} is conditional (condition_dim={dim}): pass a {what} of shape "
                              f"({n}, {dim}), e.g. mmwork.models.generators.one_hot(labels, {dim})")
        if not isinstance(condition, (torch.Tensor, np.ndarray)):
            raise MmworkError(f"{what} must be a tensor or numpy array, got {type(condition).__name__}")
        c = torch.as_tensor(condition).detach().cpu().float()
        if broadcast and c.ndim == 1:
            c = c.expand(n, -1)
        if c.shape != (n, dim):
            raise MmworkError(f"{what} must have shape ({n}, {dim}) (one row of width condition_dim={dim} "
                              f"per example), got {tuple(c.shape)}")
        if not torch.isfinite(c).all():
            raise MmworkError(f"{what} holds NaN or infinite values")
        return c

    def _check_valid(self, valid) -> Validation | None:
        if valid is None or callable(valid):
            return valid
        data, condition = valid if isinstance(valid, tuple) else (valid, None)
        x = self._check_data(data, "valid data")
        c = self._check_condition(condition, len(x), "valid condition")
        return lambda model: model._valid_loss(x.to(model.device_), None if c is None else c.to(model.device_))

    # -- learned state as named tensors --------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The learned state, flattened: ``net_.encoder.0.weight`` for modules, the name for tensors."""
        out = {}
        for name in self._state:
            value = getattr(self, name)
            items = value.state_dict().items() if isinstance(value, torch.nn.Module) else [("", value)]
            out.update({f"{name}.{k}" if k else name: v.detach() for k, v in items})
        return out

    def _tensors_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self._tensors().items()}

    @torch.no_grad()
    def _load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy ``tensors`` (as from ``_tensors``) into the existing state, in place."""
        for name in self._state:
            value = getattr(self, name)
            if isinstance(value, torch.nn.Module):
                value.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")})
            else:
                value.copy_(tensors[name])

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` (learned tensors) and ``path/model.json`` (class, name,
        parameters, history, mmwork and format versions)."""
        self._check_fitted()
        return _write(Path(path), self._tensors(), self._meta())

    def _meta(self) -> dict:
        from mmwork.core.version import version
        return {"class": type(self).__name__, "name": self.name, "params": self.get_params(),
                "mmwork_version": version(), "format": FORMAT,
                "history": getattr(self, "history_", []), "best_epoch": getattr(self, "best_epoch_", None)}

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "Generator":
        """Load a model written by :meth:`save` (or a training checkpoint: its last epoch)."""
        path = Path(path)
        meta, tensors = _read(path)
        klass = _generator_class(meta, path)
        if cls is not Generator and not issubclass(klass, cls):
            raise MmworkError(f"{path} holds a {meta['class']} checkpoint, which cannot be loaded as {cls.__name__}")
        model = klass(meta["params"], device=device)
        model.device_ = resolve_device(device)
        model._init_state()
        try:
            model._load_tensors({k: v for k, v in tensors.items() if not k.startswith("_")})
        except (RuntimeError, KeyError) as error:  # tensors that do not fit this mmwork's network
            raise MmworkError(f"{path} holds a {meta['class']} whose tensors do not fit this mmwork's "
                              f"{klass.__name__} ({str(error).splitlines()[0]}); retrain it") from None
        model.history_, model.best_epoch_ = meta["history"], meta["best_epoch"]
        return model


def _generator_class(meta: dict, path: Path) -> type[Generator]:
    import mmwork.models.generators  # noqa: F401 - makes every model class known
    if meta.get("format") is None:
        raise MmworkError(f"{path} holds a {meta.get('class', 'model')} that is not an mmwork generator checkpoint")
    if meta["format"] != FORMAT:
        raise MmworkError(f"{path} was written in checkpoint format {meta['format']} (mmwork "
                          f"{meta.get('mmwork_version')}); this mmwork reads format {FORMAT}: retrain or "
                          "load it with that mmwork version")
    klass = Generator.subclass_named(meta["class"])
    if klass is None:
        raise MmworkError(f"{path} holds a {meta['class']}, which is no generator this mmwork knows")
    return klass


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Each file is written to a temporary sibling and renamed into place; model.json comes last and
    records the tensors' SHA-256, so a save cut in the middle is detected when loading."""
    from safetensors.torch import save_file
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "model.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    meta = meta | {"tensors_sha256": hashlib.sha256(tmp.read_bytes()).hexdigest()}
    os.replace(tmp, path / "model.safetensors")
    (path / "model.json.tmp").write_text(json.dumps(meta, indent=1, default=str))
    os.replace(path / "model.json.tmp", path / "model.json")
    return path


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load
    if not (path / "model.json").exists() or not (path / "model.safetensors").exists():
        raise MmworkError(f"{path} holds no saved generator (model.json and model.safetensors expected)")
    meta = json.loads((path / "model.json").read_text())
    blob = (path / "model.safetensors").read_bytes()
    if meta.get("tensors_sha256") not in (None, hashlib.sha256(blob).hexdigest()):
        raise MmworkError(f"{path}/model.safetensors does not match model.json (an interrupted save?); save it again")
    return meta, load(blob)


def _read_checkpoint(path: str | Path, model: Generator) -> tuple[dict, dict]:
    path = Path(path)
    meta, tensors = _read(path)
    klass = _generator_class(meta, path)
    if klass is not type(model):
        raise MmworkError(f"{path} holds a {meta['class']} checkpoint; it cannot resume a {type(model).__name__}")
    if "training" not in meta:
        raise MmworkError(f"{path} is a saved model, not a training checkpoint; fit(..., checkpoint=DIR) writes those")
    free = {"epochs", "patience", "device"}
    differ = {k: (v, meta["params"].get(k)) for k, v in model.get_params().items()
              if k not in free and meta["params"].get(k) != v}
    if differ:
        raise MmworkError(f"{path} was trained with other parameters: " +
                          ", ".join(f"{k}={old!r} there, {new!r} here" for k, (new, old) in differ.items()))
    if meta["training"]["epoch"] >= model.config.epochs:
        raise MmworkError(f"{path} already holds {meta['training']['epoch']} epochs; ask for more (epochs=...)")
    return meta, tensors


class Training:
    """Epoch bookkeeping for a generator's ``_fit`` loop::

        for epoch in training.epochs(optimizer, generator):
            ...  training.step(loss) for each batch ...
            training.end_epoch({"loss": ...})

    ``end_epoch`` records the row in ``history_``, calls the validation measure (lower is better) and
    stops after ``patience`` epochs without improvement, writes the checkpoint, and on a NaN/inf value
    puts back the last good epoch's state and raises. When the loop ends the model holds the best
    epoch's state (the last one without validation). Resuming restores weights, optimizer moments,
    the random generator and the history, so a resumed fit equals an uninterrupted one on CPU.
    """

    def __init__(self, model: Generator, valid: Validation | None, checkpoint: str | Path | None,
                 resumed: tuple[dict, dict] | None):
        self.model, self.valid, self.resumed = model, valid, resumed
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.key = f"valid_{getattr(valid, 'name', 'loss')}"
        device = model.device_
        self.amp_dtype = None
        if model.config.amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)

    def autocast(self):
        """Mixed precision where ``amp`` asks for it and the device is CUDA; full precision elsewhere."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def epochs(self, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> Iterator[int]:
        model, config = self.model, self.model.config
        self.optimizer, self.generator = optimizer, generator
        model.history_, start = [], 1
        self.best, self.best_epoch, self.best_state = np.inf, None, None
        if self.resumed is not None:
            start = self._resume(*self.resumed)
        self.good = (start - 1, model._tensors_copy()) if start > 1 else None
        self.stop = False
        bar = tqdm(total=config.epochs, initial=start - 1, desc=f"{model.name} epochs", unit="epoch",
                   leave=False, disable=None)  # tqdm turns itself off when stderr is no terminal
        try:
            for epoch in range(start, config.epochs + 1):
                self.epoch = epoch
                yield epoch
                bar.set_postfix({k: f"{v:.4g}" for k, v in model.history_[-1].items() if k in ("loss", self.key)},
                                refresh=False)
                bar.update()
                if self.stop:
                    break
        finally:
            bar.close()
        model.best_epoch_ = self.best_epoch or model.history_[-1]["epoch"]
        if self.best_state is not None:
            model._load_tensors(self.best_state)

    def end_epoch(self, row: dict) -> None:
        model, epoch = self.model, self.epoch
        row = {"epoch": epoch} | row
        if self.valid is not None and np.isfinite(row["loss"]):
            row[self.key] = float(self.valid(model))
        bad = [f"{k} {v}" for k, v in row.items() if isinstance(v, float) and not np.isfinite(v)]
        # the epoch's last step can break the weights after its loss was computed
        bad += [f"non-finite {k}" for k, v in model._tensors().items() if v.is_floating_point() and
                not torch.isfinite(v).all()][:1]
        if bad:
            self._fail(epoch, bad)
        model.history_.append(row)
        if self.valid is not None and row[self.key] < self.best:
            self.best, self.best_epoch, self.best_state = row[self.key], epoch, model._tensors_copy()
        self.stop = self.best_epoch is not None and epoch - self.best_epoch >= model.config.patience
        if self.stop:
            log.info("%s: no lower %s for %d epochs; keeping epoch %d (%.4f)", model.name, self.key,
                     model.config.patience, self.best_epoch, self.best)
        log.info("%s epoch %d: %s", model.name, epoch,
                 ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
        self.good = (epoch, model._tensors_copy())
        if self.checkpoint is not None:
            self._save_checkpoint()

    def _fail(self, epoch: int, bad: list[str]) -> None:
        model = self.model
        what = ", ".join(bad)
        hint = f"try a lower lr (now {model.config.lr:g})"
        if self.good is None:
            for name in model._state:
                model.__dict__.pop(name, None)
            raise MmworkError(f"{model.name}: {what} in epoch {epoch}, before any epoch finished; training "
                              f"stopped and the model is not fitted; {hint}")
        good_epoch, state = self.good
        model._load_tensors(state)
        model.best_epoch_ = good_epoch
        kept = f"; checkpoint {self.checkpoint} holds it too" if self.checkpoint is not None else ""
        raise MmworkError(f"{model.name}: {what} in epoch {epoch}; training stopped and the model keeps "
                          f"epoch {good_epoch}'s state{kept}; {hint}")

    def _save_checkpoint(self) -> None:
        tensors = self.model._tensors() | {"_generator": self.generator.get_state()}
        for index, state in self.optimizer.state_dict()["state"].items():
            tensors |= {f"_optimizer.{index}.{k}": v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if self.best_state is not None:
            tensors |= {f"_best.{k}": v for k, v in self.best_state.items()}
        training = {"epoch": self.epoch, "best_epoch": self.best_epoch,
                    "best": self.best if self.best_state is not None else None}
        meta = self.model._meta() | {"best_epoch": self.best_epoch or self.epoch, "training": training}
        _write(self.checkpoint, tensors, meta)

    def _resume(self, meta: dict, tensors: dict) -> int:
        model = self.model
        model._load_tensors({k: v for k, v in tensors.items() if not k.startswith("_")})
        self.generator.set_state(tensors["_generator"])
        state = self.optimizer.state_dict()
        for key, value in tensors.items():
            if key.startswith("_optimizer."):
                _, index, name = key.split(".", 2)
                state["state"].setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict(state)
        best = {k[len("_best."):]: v.to(model.device_) for k, v in tensors.items() if k.startswith("_best.")}
        if best:
            self.best, self.best_epoch, self.best_state = meta["training"]["best"], meta["training"]["best_epoch"], best
        model.history_ = meta["history"]
        log.info("%s: resuming after epoch %d", model.name, meta["training"]["epoch"])
        return meta["training"]["epoch"] + 1
