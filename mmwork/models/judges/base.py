"""The interface every judge (a classifier that labels generated samples and scores real ones) follows:
``fit(data, labels, valid=None)``, ``predict``, ``predict_proba``, ``logits``, ``features`` (the
penultimate layer: a feature space for generation metrics) and ``accuracy``. Judges draw nothing:
they have no ``sample``.

It stands on the base of the networks trained in epochs (:mod:`mmwork.models.network`: typed config,
input checks, the shared :class:`~mmwork.models.training.Training` loop with early stopping on the
held-out cross-entropy, NaN stop, checkpoints and amp, safetensors + JSON save/load); the labels
travel where a generator's condition does.

>>> import torch
>>> from mmwork.models.judges import Classifier
>>> images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
>>> Classifier(epochs=1, device="cpu").fit(images, torch.arange(32) % 10).predict(images[:2]).shape
torch.Size([2])
"""
from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from mmwork.core.errors import MmworkError
from mmwork.models.network import NetworkConfig, NetworkModel
from mmwork.models.training import Training


class JudgeConfig(NetworkConfig):
    """Parameters every judge has."""


class Judge(NetworkModel):
    """Base class. Subclasses set ``name``, ``config_class``, ``data_shape`` and the description,
    build ``net_`` (a module with ``forward(x, generator=None)`` returning logits and
    ``features(x)``) in ``_build``, say how many classes there are (``n_classes``) and implement
    ``_fit``."""

    config_class: ClassVar[type[JudgeConfig]] = JudgeConfig
    conditions = ("label",)
    example: ClassVar[tuple[str, str]] = ("example", "examples")  # what examples are called in messages
    _state = ("net_",)

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, y: torch.Tensor, training: Training) -> None:
        """Cross-entropy with Adam over shuffled batches, each batch through ``_augment`` and at the
        learning rate ``_lr`` gives; the shared loop validates, stops and keeps the best epoch."""
        config, device = self.config, self.device_
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=config.lr)
        n, steps_per_epoch = len(x), math.ceil(len(x) / config.batch_size)
        for epoch in training.epochs(optimizer, generator):
            started = time.perf_counter()
            self.net_.train()
            order = torch.randperm(n, generator=generator, device=device)
            sums = torch.zeros(2, device=device)  # cross-entropy and correct predictions, summed
            for i, start in enumerate(range(0, n, config.batch_size)):
                batch = order[start:start + config.batch_size]
                lr = self._lr((epoch - 1) * steps_per_epoch + i, config.epochs * steps_per_epoch)
                if lr is not None:
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                with training.autocast():
                    logits = self.net_(self._augment(x[batch], generator), generator)
                    loss = F.cross_entropy(logits.float(), y[batch])
                training.step(loss)
                sums += torch.stack([loss.detach() * len(batch), (logits.argmax(1) == y[batch]).sum()])
            self.net_.eval()
            seconds = time.perf_counter() - started
            loss, accuracy = (sums / n).tolist()
            training.end_epoch({"loss": loss, "accuracy": accuracy, "seconds": seconds, "images_per_s": n / seconds})

    def _lr(self, step: int, total: int) -> float | None:
        """The learning rate of optimizer step ``step`` of ``total`` (None: Adam's ``lr`` throughout)."""
        return None

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A training batch as the network sees it (no augmentation unless a judge adds one)."""
        return x

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    def _check_condition(self, labels, n: int, what: str = "labels", broadcast: bool = False):
        """The labels (the base class's per-example side input) as an int64 CPU tensor (n,)."""
        what = what.replace("condition", "labels")
        k = self.n_classes
        if labels is None:
            raise MmworkError(f"{self.name} needs {what}: one integer class in 0..{k - 1} per {self.example[0]}")
        if not isinstance(labels, (torch.Tensor, np.ndarray, list, tuple)):
            raise MmworkError(f"{what} must be a tensor, array or list of integers, got {type(labels).__name__}")
        y = torch.as_tensor(np.asarray(labels)).detach().cpu()
        if y.is_floating_point() or y.dtype == torch.bool or y.shape != (n,):
            raise MmworkError(f"{what} must be {n} integer class indices (shape ({n},)), got {y.dtype} of "
                              f"shape {tuple(y.shape)}")
        if y.min() < 0 or y.max() >= k:
            raise MmworkError(f"{what} must lie in 0..{k - 1} ({self._classes_said()}), got "
                              f"{int(y.min())}..{int(y.max())}")
        return y.long()

    def _classes_said(self) -> str:
        return f"{self.n_classes} classes"

    @torch.no_grad()
    def _valid_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(F.cross_entropy(self._batched(lambda b: self.net_(b), x), y, reduction="sum")) / len(x)

    # -- prediction ----------------------------------------------------------------------------------
    def predict(self, data) -> torch.Tensor:
        """The most probable class of each example (N,), int64."""
        return self.logits(data).argmax(1)

    def predict_proba(self, data) -> torch.Tensor:
        """Class probabilities (N, n_classes), float32."""
        return self.logits(data).softmax(1)

    @torch.no_grad()
    def logits(self, data) -> torch.Tensor:
        """The output layer's scores (N, n_classes), float32."""
        return self._batched(lambda b: self.net_(b), self._examples(data))

    @torch.no_grad()
    def features(self, data) -> torch.Tensor:
        """Penultimate-layer activations (N, features), float32: the feature space for generation metrics."""
        x = self._examples(data)  # checks it is fitted before net_ is read
        return self._batched(self.net_.features, x)

    def accuracy(self, data, labels) -> float:
        """The fraction of examples whose predicted class is their label."""
        x = self._examples(data)
        y = self._check_condition(labels, len(x)).to(self.device_)
        return float((self.predict(x) == y).double().mean())

    def _examples(self, data) -> torch.Tensor:
        self._check_fitted()
        return self._check_data(data, self.example[1]).to(self.device_)

    def _batched(self, fn, x: torch.Tensor) -> torch.Tensor:
        self.net_.eval()
        size = max(self.config.batch_size, 256)
        return torch.cat([fn(x[s:s + size]).float() for s in range(0, len(x), size)])
