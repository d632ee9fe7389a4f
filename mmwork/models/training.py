"""The one training loop every iterative model uses (recommenders, generators, judges): evaluation
every N epochs and at the last, early stopping that keeps the best evaluated epoch, a stop on NaN/inf
that keeps the last good epoch, checkpoints and bit-exact resuming, a progress bar, amp on CUDA.

A model's ``_fit`` drives it::

    training = Training(model, valid, mode="max", every=5)
    for epoch in training.epochs(optimizer, generator):
        ...  training.step(loss) (or its own update) for each batch ...
        training.end_epoch({"loss": ...})

``valid`` is a :data:`Validation`, a callback ``valid(model) -> float``; ``mode`` says which way is
better ("min": a held-out loss, "max": a ranking score). A score only counts when strictly better
than the best so far, and after ``patience`` epochs without one (counted at evaluated epochs) the
loop stops; the model then holds the best evaluated epoch's state (the last epoch's without
``valid``). With a ``time_budget`` (the config's, in seconds) the loop also stops after the last
epoch that fits: when the time spent plus the longest epoch so far would overrun the budget, the
epoch just trained is the last, and it is validated like a last epoch. The progress bar shows the
time left. Resuming restores the weights, the optimizer's moments and learning rates, the random
generator, the history and the model's own extra state, so a resumed fit equals an uninterrupted one
on CPU.

>>> training = Training(model, valid=lambda m: 0.5, mode="max", every=5)   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from mmwork.core.config import Duration, ModelConfig
from mmwork.core.errors import MmworkError
from mmwork.models.base import TrainedModel, model_class
from mmwork.store.artifacts import read_artifact, write_artifact

log = logging.getLogger("mmwork.models.training")

Validation = Callable[[TrainedModel], float]
"""A validation measure: ``valid(model) -> float``; its direction is the ``mode`` of the
:class:`Training` that calls it (and its ``name`` attribute, when set, names the history column
``valid_<name>``)."""

Mode = Literal["min", "max"]


def now() -> float:
    """The loop's wall clock (seconds; monotonic)."""
    return time.perf_counter()


def cpu_now() -> float:
    """The loop's CPU clock: seconds of CPU this process has used, all its threads together (so a
    budget in CPU-minutes means the same on a busy machine and with any number of threads)."""
    return time.process_time()


class BudgetedConfig(ModelConfig):
    """Parameters of every model trained by :class:`Training`."""

    time_budget: Duration | None = None
    """Time budget of ``fit`` (seconds, or ``"90s"``, ``"2m"``; wall-clock unless ``budget_clock="cpu"``):
    training stops after the last
    epoch that fits in it (or at ``epochs``, or on early stopping, whichever comes first), that epoch
    is validated, and the best validated epoch is kept. None: no budget."""
    budget_clock: Literal["wall", "cpu"] = "wall"
    """What ``time_budget`` counts: "wall" seconds, or "cpu" seconds of this process (all its threads
    together: the quality-per-CPU-minute benchmarks use it, as it does not depend on the load)."""


class Training:
    """Epoch bookkeeping for a model's ``_fit`` (see the module docstring). ``epochs``, ``patience``
    and ``amp`` default to the model's config; ``checkpoint`` names a folder rewritten after every
    epoch and ``resumed`` is what :func:`read_checkpoint` read."""

    def __init__(self, model: TrainedModel, valid: Validation | None = None, checkpoint: str | Path | None = None,
                 resumed: tuple[dict, dict] | None = None, *, mode: Mode = "min", every: int = 1,
                 epochs: int | None = None, patience: int | None = None):
        if mode not in ("min", "max"):
            raise MmworkError(f"mode must be 'min' or 'max', got {mode!r}")
        config = model.config
        self.model, self.valid, self.resumed, self.mode, self.every = model, valid, resumed, mode, every
        self.last_epoch = epochs if epochs is not None else config.epochs
        self.patience = patience if patience is not None else config.patience
        self.time_budget = getattr(config, "time_budget", None)
        # looked up here, not bound at import, so a test can swap the clock and run a budget without sleeping
        self.clock = cpu_now if getattr(config, "budget_clock", "wall") == "cpu" else now
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.key = f"valid_{getattr(valid, 'name', 'loss' if mode == 'min' else 'score')}"
        device = getattr(model, "device_", torch.device("cpu"))
        self.amp_dtype = None
        if getattr(config, "amp", False) and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)

    # -- inside an epoch -----------------------------------------------------------------------------
    def autocast(self):
        """Mixed precision where ``amp`` asks for it and the device is CUDA; full precision elsewhere."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def step(self, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss`` (with loss scaling under float16 amp)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def better(self, score: float, than: float) -> bool:
        return score < than if self.mode == "min" else score > than

    # -- the loop ------------------------------------------------------------------------------------
    def epochs(self, optimizer, generator: torch.Generator, *, save_extra: Callable[[], dict] | None = None,
               load_extra: Callable[[dict], None] | None = None) -> Iterator[int]:
        """Yield the epoch numbers to train. ``optimizer`` and ``generator`` are checkpointed and
        restored; ``save_extra() -> dict`` (JSON) and ``load_extra(dict)`` carry any other state the
        model's loop keeps (a step counter, a scheduler), ``load_extra`` running after the learned
        tensors are back."""
        model = self.model
        self.optimizer, self.generator, self.save_extra = optimizer, generator, save_extra
        model.history_, start = [], 1
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch, self.best_state = None, None
        if self.resumed is not None:
            start = self._resume(*self.resumed, load_extra)
        self.good = (start - 1, model._tensors_copy()) if start > 1 else None
        self.stop = self.final = False
        self.started, self.longest = self.clock(), 0.0
        bar = tqdm(total=self.last_epoch, initial=start - 1, desc=f"{model.name} epochs", unit="epoch",
                   leave=False, disable=None)  # tqdm turns itself off when stderr is no terminal
        try:
            for epoch in range(start, self.last_epoch + 1):
                began = self.clock()
                if epoch > start:  # the whole previous epoch: training, validation, checkpoint
                    self.longest = max(self.longest, began - self.epoch_started)
                self.epoch, self.epoch_started = epoch, began
                yield epoch
                shown = {k: f"{v:.4g}" for k, v in model.history_[-1].items() if k in ("loss", self.key)}
                if self.time_budget is not None:
                    shown["left"] = f"{max(0.0, self.time_budget - (self.clock() - self.started)):.0f}s"
                bar.set_postfix(shown, refresh=False)
                bar.update()
                if self.stop or self.final:
                    break
        finally:
            bar.close()
        model.best_epoch_ = self.best_epoch or model.history_[-1]["epoch"]
        if self.best_state is not None:
            model._load_tensors(self.best_state)

    def due(self, epoch: int | None = None) -> bool:
        """Whether ``valid`` is called at this epoch: every ``every`` epochs and at the last (the last
        ``epochs`` asks for, or the last the time budget leaves room for)."""
        epoch = self.epoch if epoch is None else epoch
        last = epoch == self.last_epoch or (epoch == getattr(self, "epoch", None) and self.final)
        return self.valid is not None and (epoch % self.every == 0 or last)

    def _check_time(self) -> None:
        """Whether another epoch would overrun the time budget, judged by the longest epoch so far
        (this one's training included)."""
        if self.time_budget is not None:
            at = self.clock()
            self.needed = max(self.longest, at - self.epoch_started)
            self.final = at - self.started + self.needed > self.time_budget

    def end_epoch(self, row: dict, after: Callable[[dict], None] | None = None) -> dict:
        """Record the epoch: evaluate when due (skipped on a non-finite loss), call ``after(row)``
        (to add columns or step a scheduler on the score), stop on NaN/inf, keep the best state,
        decide on early stopping, write the checkpoint. Returns the row as ``history_`` holds it."""
        model, epoch = self.model, self.epoch
        row = {"epoch": epoch} | row
        self._check_time()
        evaluated = self.due(epoch) and np.isfinite(row.get("loss", 0.0))
        if evaluated:
            row[self.key] = float(self.valid(model))
        if after is not None:
            after(row)
        bad = [f"{k} {v}" for k, v in row.items() if isinstance(v, float) and not np.isfinite(v)]
        # the epoch's last step can break the weights after its loss was computed
        bad += [f"non-finite {k}" for k, v in model._tensors().items() if v.is_floating_point() and
                not torch.isfinite(v).all()][:1]
        if bad:
            self._fail(epoch, bad)
        if self.final and epoch < self.last_epoch:
            row["stopped"] = "time budget"
            log.info("%s: time budget of %gs reached after epoch %d (%.0fs spent, an epoch takes up to %.0fs)",
                     model.name, self.time_budget, epoch, self.clock() - self.started, self.needed)
        model.history_.append(row)
        if evaluated:
            if self.better(row[self.key], self.best):
                self.best, self.best_epoch, self.best_state = row[self.key], epoch, model._tensors_copy()
            self.stop = epoch - self.best_epoch >= self.patience
            if self.stop:
                log.info("%s: no %s %s for %d epochs; keeping epoch %d (%.4f)", model.name,
                         "lower" if self.mode == "min" else "higher", self.key, self.patience, self.best_epoch,
                         self.best)
        level = logging.INFO if evaluated or epoch == 1 or self.every == 1 else logging.DEBUG
        log.log(level, "%s epoch %d: %s", model.name, epoch,
                ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
        self.good = (epoch, model._tensors_copy())
        if self.checkpoint is not None:
            self._save_checkpoint()
        return row

    def _fail(self, epoch: int, bad: list[str]) -> None:
        model = self.model
        what = ", ".join(bad)
        lr = getattr(model.config, "lr", None)
        hint = f"try a lower lr (now {lr:g})" if lr is not None else "try a lower learning rate"
        if self.good is None:
            for name in model._state_names():
                model.__dict__.pop(name, None)
            raise MmworkError(f"{model.name}: {what} in epoch {epoch}, before any epoch finished; training "
                              f"stopped and the model is not fitted; {hint}")
        good_epoch, state = self.good
        model._load_tensors(state)
        model.best_epoch_ = good_epoch
        kept = f"; checkpoint {self.checkpoint} holds it too" if self.checkpoint is not None else ""
        raise MmworkError(f"{model.name}: {what} in epoch {epoch}; training stopped and the model keeps "
                          f"epoch {good_epoch}'s state{kept}; {hint}")

    # -- checkpoints ---------------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        model = self.model
        tensors = model._tensors() | model._extra_tensors() | {"_generator": self.generator.get_state()}
        optimizer = self.optimizer.state_dict()
        for index, state in optimizer["state"].items():
            tensors |= {f"_optimizer.{index}.{k}": v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if self.best_state is not None:
            tensors |= {f"_best.{k}": v for k, v in self.best_state.items()}
        groups = [{k: v for k, v in g.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                  for g in optimizer["param_groups"]]
        training = {"epoch": self.epoch, "best_epoch": self.best_epoch, "param_groups": groups,
                    "best": self.best if self.best_state is not None else None,
                    "extra": self.save_extra() if self.save_extra is not None else {}}
        meta = model._meta() | {"best_epoch": self.best_epoch or self.epoch, "training": training}
        write_artifact(self.checkpoint, tensors, meta)

    def _resume(self, meta: dict, tensors: dict, load_extra) -> int:
        model, training = self.model, meta["training"]
        model._load_tensors({k: v.to(model.device_) for k, v in tensors.items() if not k.startswith("_")})
        if load_extra is not None:
            load_extra(training.get("extra", {}))
        self.generator.set_state(tensors["_generator"])
        state = self.optimizer.state_dict()
        for key, value in tensors.items():
            if key.startswith("_optimizer."):
                _, index, name = key.split(".", 2)
                state["state"].setdefault(int(index), {})[name] = value
        for group, saved in zip(state["param_groups"], training.get("param_groups", [])):
            group.update(saved)
        self.optimizer.load_state_dict(state)
        best = {k[len("_best."):]: v.to(model.device_) for k, v in tensors.items() if k.startswith("_best.")}
        if best:
            self.best, self.best_epoch, self.best_state = training["best"], training["best_epoch"], best
        model.history_ = meta["history"]
        log.info("%s: resuming after epoch %d", model.name, training["epoch"])
        return training["epoch"] + 1


FREE_ON_RESUME = ("epochs", "patience", "device", "time_budget", "budget_clock")


def read_checkpoint(path: str | Path, model: TrainedModel,
                    free: tuple[str, ...] = FREE_ON_RESUME) -> tuple[dict, dict]:
    """A training checkpoint that ``model`` can resume from: same class, same parameters except
    ``free``, fewer epochs than asked for."""
    path = Path(path)
    meta, tensors = read_artifact(path, framework="torch")
    klass = model_class(meta.get("class", ""), path)
    if klass is not type(model):
        raise MmworkError(f"{path} holds a {klass.__name__} checkpoint; it cannot resume a {type(model).__name__}")
    if "training" not in meta:
        raise MmworkError(f"{path} is a saved model, not a training checkpoint; fit(..., checkpoint=DIR) writes those")
    differ = {k: (v, meta["params"].get(k)) for k, v in model.get_params().items()
              if k not in free and meta["params"].get(k) != v}
    if differ:
        raise MmworkError(f"{path} was trained with other parameters: " +
                          ", ".join(f"{k}={old!r} there, {new!r} here" for k, (new, old) in differ.items()))
    if meta["training"]["epoch"] >= model.config.epochs:
        raise MmworkError(f"{path} already holds {meta['training']['epoch']} epochs; ask for more (epochs=...)")
    return meta, tensors
