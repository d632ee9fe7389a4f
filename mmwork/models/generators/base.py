"""The one interface every generator follows (images, sound and text alike), on the shared base of
the networks trained in epochs (:mod:`mmwork.models.network`).

The constructor validates and stores a typed configuration, so a wrong parameter fails before any
compute; ``fit(data, condition=None, valid=None)`` checks its input and learns; ``sample(n,
condition=None, seed=0)`` draws, the same samples for the same seed. What ``sample`` returns depends
on the class's ``data_kind``, one type per kind:

- "image": a float32 tensor (n, *data_shape) on the model's device, values in the data's range;
- "audio": a float32 tensor (n, 1, n_mels, frames) of scaled log-mel patches in [0, 1] on the
  model's device (``sample_audio`` turns them into waveforms);
- "text": a ``list[list[int]]``, one list of token ids per sample (EOS and PAD left out).

Learned state follows scikit-learn's convention: attributes ending in ``_``, set by ``fit`` only
(``_state`` names the learned modules/tensors, ``history_`` holds one dict per epoch, ``best_epoch_``
the epoch whose state was kept). ``save``/``load`` write safetensors for tensors and JSON for the
rest (:mod:`mmwork.models.base`), so loading never unpickles code.

Training is repeatable for a seed on CPU and never touches torch's or numpy's global generators: the
weights are initialised inside ``torch.random.fork_rng`` and every draw uses the model's own
``torch.Generator``. :class:`~mmwork.models.training.Training` holds the epoch bookkeeping every model
shares: the progress bar, early stopping on a validation loss, the stop on a NaN/inf loss,
checkpoints and resuming.

>>> from mmwork.models.generators import VAE
>>> from mmwork.models.data import fashion_mnist, train_valid_split
>>> train, valid = train_valid_split(fashion_mnist("train"))        # doctest: +SKIP
>>> model = VAE(epochs=20).fit(train.images, valid=valid.images)   # early stopping never sees test data  # doctest: +SKIP
>>> model.save("data/models/vae"); VAE.load("data/models/vae").sample(16, seed=1)   # doctest: +SKIP
"""
from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import torch

from mmwork.core.errors import MmworkError
from mmwork.models.network import NetworkConfig, NetworkModel, Preset
from mmwork.models.training import Training, Validation

__all__ = ["Generator", "GeneratorConfig", "Preset", "Training", "Validation"]

log = logging.getLogger("mmwork.models.generators")


class GeneratorConfig(NetworkConfig):
    """Parameters every generator has."""


class Generator(NetworkModel):
    """Base class. Subclasses set ``name``, ``config_class``, ``data_shape``, ``data_kind``,
    ``conditions`` and ``presets``, list their learned modules/tensors in ``_state``, and implement
    ``_build`` (empty modules from the config), ``_fit``, ``_valid_loss`` and ``sample`` (returning
    the type the module docstring gives for its ``data_kind``)."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def sample(self, n: int, condition=None, seed: int = 0):
        """``n`` samples drawn with ``seed`` (one ``condition`` for all, or one row each)."""
        raise NotImplementedError

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
