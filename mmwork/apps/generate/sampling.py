"""Draw samples from a trained generator and write them out: images as one PNG grid, sound as WAV files.

>>> samples = sample("fashion-mnist", "cvae", 64, condition="ankle boot")        # doctest: +SKIP
>>> save_samples(samples, "boots.png")                                           # doctest: +SKIP
[PosixPath('boots.png')]
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from mmwork.apps.generate.data import request
from mmwork.apps.generate.folders import load, trained_info
from mmwork.apps.generate.registry import spec
from mmwork.core.errors import MmworkError


class Samples(NamedTuple):
    """What :func:`sample` returns."""

    data: torch.Tensor
    """Images (N, 1, 28, 28) in [0, 1], or waveforms (N, T)."""
    conditions: list[str] | None
    """The condition of each sample (a class name or the text), None for unconditional models."""
    sr: int | None = None
    """Sampling rate of waveforms (None for images)."""


def sample(dataset: str, model: str, n: int = 64, condition=None, seed: int = 0, device: str = "auto") -> Samples:
    """``n`` samples of the trained ``model``: for a conditional model ``condition`` is a class name
    (or, for text models, any text) for all of them, one per sample, or None for the classes in turn;
    unconditional models take none.

    >>> sample("fashion-mnist", "cvae", 8, condition="ankle boot").data.shape     # doctest: +SKIP
    torch.Size([8, 1, 28, 28])
    """
    found = spec(dataset, model)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise MmworkError(f"n must be a positive number of samples, got {n!r}")
    recorded = trained_info(dataset, model)
    if found.condition == "label":
        raise MmworkError(f"{model} labels data and draws no samples; sample from a generator instead")
    rows, names = request(found, model, n, condition, recorded["classes"])
    generator = load(dataset, model, device=device)
    if found.data == "audio":
        clips = generator.sample_audio(n, rows, seed=seed)
        return Samples(torch.as_tensor(np.stack(clips)), names, int(generator.config.mel.sr))
    return Samples(generator.sample(n, rows, seed=seed).cpu(), names)


def save_grid(images, path: str | Path, ncols: int | None = None, scale: int = 2) -> Path:
    """Write images (N, 1, H, W) in [0, 1] as one PNG grid (``ncols`` per row, default about square,
    each pixel ``scale`` x ``scale``); the file appears whole or not at all.

    >>> import torch, tempfile, os
    >>> save_grid(torch.rand(6, 1, 28, 28), os.path.join(tempfile.mkdtemp(), "grid.png")).name
    'grid.png'
    """
    from PIL import Image
    x = torch.as_tensor(images).detach().cpu().float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1 or len(x) == 0:
        raise MmworkError(f"save_grid takes greyscale images (N, 1, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    pad = 2
    grid = np.ones(((h + pad) * nrows + pad, (w + pad) * ncols + pad), dtype=np.uint8) * 255
    pixels = (x.clamp(0, 1).numpy()[:, 0] * 255).round().astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = pixels[i]
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise MmworkError(f"save_grid writes PNG: give a path ending in .png, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(tmp, "PNG")
    os.replace(tmp, path)
    return path


def save_wavs(clips, sr: int, directory: str | Path, names: list[str] | None = None) -> list[Path]:
    """Write each waveform (N, T) as a 16-bit WAV file ``directory/NNN[-name].wav``; returns the paths.

    >>> import numpy as np, tempfile
    >>> [p.name for p in save_wavs(np.zeros((2, 800)), 8000, tempfile.mkdtemp(), ["a b", "c"])]
    ['000-a-b.wav', '001-c.wav']
    """
    import soundfile
    waves = np.asarray(clips.detach().cpu() if hasattr(clips, "detach") else clips, dtype=np.float32)
    if waves.ndim != 2 or len(waves) == 0:
        raise MmworkError(f"save_wavs takes waveforms (N, T), got shape {waves.shape}")
    if not isinstance(sr, int) or sr < 1:
        raise MmworkError(f"sr must be a positive sampling rate in Hz, got {sr!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, wave in enumerate(waves):
        label = "" if names is None else "-" + "".join(ch if ch.isalnum() else "-" for ch in names[i].lower())[:40]
        path = directory / f"{i:03d}{label}.wav"
        tmp = path.with_name(f".{path.name}.tmp")
        soundfile.write(tmp, np.clip(wave, -1, 1), sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def save_samples(samples: Samples, out: str | Path) -> list[Path]:
    """Images as one PNG grid at ``out``; sound as WAV files in the folder ``out``."""
    if samples.sr is None:
        return [save_grid(samples.data, out)]
    return save_wavs(samples.data, samples.sr, out, samples.conditions)
