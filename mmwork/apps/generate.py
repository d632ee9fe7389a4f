"""Generators by name, for the CLI, notebooks and the demo: a data set, a model name, a folder.

``train`` fits a named model on the store's data (the last tenth of the images it reads held out for
early stopping) and saves it under ``data/models/generators/<dataset>/<model>/``; ``load``,
``sample`` and ``evaluate`` find it there. One registry, :data:`MODELS`, says what each name is: the
class, its defaults, the kind of data and the kind of condition it takes.

>>> sorted(MODELS)[:4]
['audio-classifier', 'audio-vae', 'classifier', 'cvae']
>>> model = train("fashion-mnist", "cvae", epochs=5, limit=5000)                    # doctest: +SKIP
>>> save_grid(sample("fashion-mnist", "cvae", 64, condition="ankle boot").data, "boots.png")  # doctest: +SKIP
>>> evaluate("fashion-mnist", "cvae", n=2000).metrics["conditional_accuracy"]      # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root
from mmwork.store.tables import swap_in_folder, write_json

log = logging.getLogger("mmwork.apps.generate")


@dataclass(frozen=True)
class ModelSpec:
    """What a model name stands for."""

    cls: str
    """Class name in ``mmwork.models.generators`` (looked up when used)."""
    data: str
    """"image" (Fashion-MNIST) or "audio" (log-mel patches of clips)."""
    condition: str
    """"none", "class" (one-hot), "text" (a sentence embedding) or "label" (a classifier's labels)."""
    defaults: dict = field(default_factory=dict)
    """Parameters on top of the class's own defaults (``--param`` overrides them)."""
    about: str = ""


MODELS: dict[str, ModelSpec] = {
    "vae": ModelSpec("VAE", "image", "none", {"epochs": 20}, "convolutional VAE, Bernoulli likelihood"),
    "cvae": ModelSpec("VAE", "image", "class", {"epochs": 20}, "conditional VAE on the one-hot class"),
    "text-cvae": ModelSpec("VAE", "image", "text", {"epochs": 20},
                           "conditional VAE on a MiniLM embedding of a text (any text, not only a class name)"),
    "gan": ModelSpec("GAN", "image", "class", {"epochs": 10, "channels": 32},
                     "conditional hinge GAN: spectral norm, projection + auxiliary class head, class batch norm, EMA"),
    "classifier": ModelSpec("Classifier", "image", "label", {"epochs": 8},
                            "the in-project classifier that evaluate() scores images with"),
    "audio-vae": ModelSpec("AudioVAE", "audio", "class", {}, "VAE on log-mel patches, conditioned on the category"),
    "audio-classifier": ModelSpec("AudioClassifier", "audio", "label", {},
                                  "the in-project audio classifier that evaluate() scores sounds with"),
}
DATASETS = {"fashion-mnist": "image", "speech-prompts": "audio", "instrument-samples": "audio"}
SCORER = {"image": "classifier", "audio": "audio-classifier"}  # the model evaluate() labels samples with
LABEL_METRICS = ("conditional_accuracy", "classes_present", "min_class_share", "max_class_share")
VALID_SHARE = 10  # one image in ten of those read is held out for early stopping


class Samples(NamedTuple):
    """What :func:`sample` returns."""

    data: torch.Tensor
    """Images (N, 1, 28, 28) in [0, 1], or waveforms (N, T)."""
    conditions: list[str] | None
    """The condition of each sample (a class name or the text), None for unconditional models."""
    sr: int | None = None
    """Sampling rate of waveforms (None for images)."""


# -- names and folders -------------------------------------------------------------------------------
def spec(dataset: str, model: str) -> ModelSpec:
    """The registry entry for ``model``, checked against ``dataset``'s kind of data."""
    if dataset not in DATASETS:
        raise MmworkError(f"unknown data set {dataset!r} for generators; choose from {', '.join(DATASETS)}")
    if model not in MODELS:
        raise MmworkError(f"unknown generator model {model!r}; choose from {', '.join(MODELS)}")
    found = MODELS[model]
    if found.data != DATASETS[dataset]:
        fits = [name for name, s in MODELS.items() if s.data == DATASETS[dataset]]
        raise MmworkError(f"{model} is a model for {found.data} data and {dataset} holds {DATASETS[dataset]}; "
                          f"for {dataset} choose from {', '.join(fits)}")
    return found


def model_dir(dataset: str, model: str) -> Path:
    """Where ``train`` saves the model: ``<data root>/models/generators/<dataset>/<model>``."""
    return data_root() / "models" / "generators" / dataset / model


def checkpoint_dir(dataset: str, model: str) -> Path:
    """The training checkpoint, rewritten after every epoch (``train(..., resume=True)`` continues it)."""
    return model_dir(dataset, model).with_name(f"{model}.checkpoint")


def _class(name: str):
    import mmwork.models.generators as generators
    klass = getattr(generators, name, None)
    if klass is None:
        raise MmworkError(f"this mmwork has no mmwork.models.generators.{name} yet; update mmwork for this model")
    return klass


def _train_command(dataset: str, model: str) -> str:
    return f"mmwork generate train --dataset {dataset} --model {model}"


def models() -> pd.DataFrame:
    """Every model name with its class, data, condition, description and, per data set, whether a
    trained copy is under the data root."""
    rows = []
    for name, s in MODELS.items():
        for dataset, kind in DATASETS.items():
            if kind == s.data:
                recorded = _info(dataset, name) or {}
                rows.append({"dataset": dataset, "model": name, "class": s.cls, "condition": s.condition,
                             "trained": bool(recorded), "train_examples": recorded.get("train_examples"),
                             "about": s.about})
    return pd.DataFrame(rows)


def info(dataset: str, model: str) -> dict | None:
    """What ``train`` recorded about the saved model (classes, counts, epochs, seconds, device), or
    None when it was never trained under this data root."""
    return _info(dataset, model)


def _info(dataset: str, model: str) -> dict | None:
    path = model_dir(dataset, model) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def conditions(dataset: str, model: str, n: int, condition=None) -> tuple[torch.Tensor | None, list[str] | None]:
    """The condition rows a trained ``model``'s ``sample`` takes for ``n`` samples, and their names, as
    :func:`sample` builds them (``condition``: a name or text for all, one per sample, or None for the
    classes in turn); (None, None) for unconditional models."""
    found = spec(dataset, model)
    recorded = _info(dataset, model)
    if recorded is None:
        raise MmworkError(f"no trained {model} for {dataset}; train it first: {_train_command(dataset, model)}")
    return _request(found, model, n, condition, recorded["classes"])


def _make_config(found: ModelSpec, model: str, params: dict | None, **fixed):
    """The validated config (before any data is read); ``condition_dim`` comes from the data."""
    params = dict(params or {})
    fixed_by_data = sorted({"condition_dim", "n_classes", "classes", "mel"} & set(params))
    if fixed_by_data:
        raise MmworkError(f"{model}: {', '.join(fixed_by_data)} come(s) from the data set; leave them out")
    config_class = _class(found.cls).config_class
    values = found.defaults | params | {k: v for k, v in fixed.items() if v is not None}
    return config_class.make(values)


# -- data --------------------------------------------------------------------------------------------
@dataclass
class _Data:
    train: Any
    valid: Any
    classes: list[str]
    extra: dict = field(default_factory=dict)


def _read_images(limit: int | None) -> _Data:
    from mmwork.models.data import fashion_mnist
    wanted = None if limit is None else limit + max(1, limit // (VALID_SHARE - 1))
    images = fashion_mnist("train", limit=wanted)
    n_valid = max(1, len(images.images) // VALID_SHARE)
    n_train = len(images.images) - n_valid
    if n_train < 1:
        raise MmworkError(f"the fashion-mnist train split holds {len(images.images)} image(s); too few to train on")
    cut = lambda s: type(images)(images.images[s], images.labels[s], images.classes)  # noqa: E731
    return _Data(cut(slice(0, n_train)), cut(slice(n_train, None)), images.classes)


def _read_audio(dataset: str, limit: int | None) -> _Data:
    """The training clips' patches (the first ``limit`` clips), some clips held out by a hash of their id."""
    from mmwork.models.data import audio_clips, hold_out
    clips = audio_clips(dataset, "train", limit=limit)
    kept, valid = hold_out(clips)
    return _Data(kept, valid, list(clips.classes), {"mel": clips.mel})


def _text_embed(texts: list[str]) -> torch.Tensor:
    from mmwork.models.data import images as data
    if not hasattr(data, "text_condition"):
        raise MmworkError("text-cvae needs mmwork.models.data.images.text_condition, which this mmwork lacks")
    return torch.as_tensor(data.text_condition(texts)).float()


def _condition(kind: str, labels: torch.Tensor, classes: list[str], seed: int = 0) -> torch.Tensor | None:
    """The training condition of each example: its one-hot class or the embedding of its class name."""
    from mmwork.models.data import one_hot
    if kind == "class":
        return one_hot(labels, len(classes))
    if kind == "text":  # several wordings of each class name when the data module has them
        from mmwork.models.data import images as data
        if hasattr(data, "describe_classes"):
            return _text_embed(data.describe_classes(labels, classes, seed=seed))
        return _text_embed(list(classes))[labels]
    if kind == "label":
        return labels
    return None


def _request(found: ModelSpec, model: str, n: int, condition, classes: list[str]):
    """The condition rows for ``n`` samples and their names: one class name or text for all, or
    (``condition=None`` on a conditional model) the classes in turn."""
    from mmwork.models.data import class_condition, one_hot
    if found.condition == "none":
        if condition is not None:
            conditional = [m for m, s in MODELS.items() if s.data == found.data and s.condition in ("class", "text")]
            raise MmworkError(f"{model} is unconditional and takes no condition; use {' or '.join(conditional)} "
                              "for class or text conditions")
        return None, None
    if condition is None:
        names = [classes[i % len(classes)] for i in range(n)]
    elif isinstance(condition, str):
        names = [condition] * n
    else:
        names = [str(c) for c in condition]
        if len(names) != n:
            raise MmworkError(f"got {len(names)} conditions for {n} samples; give one, or one per sample")
    if found.condition == "text":
        unique = sorted(set(names))
        table = _text_embed(unique)
        return table[[unique.index(t) for t in names]], names
    if condition is None:
        return one_hot(torch.arange(n) % len(classes), len(classes)), names
    return class_condition(names, classes), names


# -- progress ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _progress(enabled: bool):
    """Per-epoch log lines of the generators (and of this module) on stderr while ``enabled``."""
    if not enabled or getattr(_progress, "active", False):
        yield
        return
    _progress.active = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    loggers = [logging.getLogger("mmwork.models.generators"), log]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
        _progress.active = False


# -- training ----------------------------------------------------------------------------------------
def train(dataset: str, model: str, *, epochs: int | None = None, limit: int | None = None,
          params: dict | None = None, device: str = "auto", seed: int = 0, resume: bool = False,
          progress: bool = True):
    """Fit the named ``model`` on ``dataset``'s training data and save it (see :func:`model_dir`).

    ``limit`` caps the training images (another tenth as many are read and held out for early
    stopping; all 60,000 read when None: 54,000 to train, 6,000 held out), or for sound the training
    clips (some of them held out by a hash of their id); the image GAN's early stopping scores its
    samples with the in-project classifier, trained first if absent (see :func:`classifier`);
    ``params`` are the model's config fields (``VAEConfig`` etc.), validated with ``epochs``,
    ``device`` and ``seed`` before any data is read. After every epoch a checkpoint is written to
    :func:`checkpoint_dir`; ``resume=True`` continues it (an interrupted run, or a finished one given
    more ``epochs``). The saved model is replaced only once the new one is complete. Returns the fitted generator.
    """
    found = spec(dataset, model)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise MmworkError(f"limit must be a positive number of training examples, got {limit!r}")
    config = _make_config(found, model, params, epochs=epochs, device=device, seed=seed)
    checkpoint = checkpoint_dir(dataset, model)
    if resume:
        if not (checkpoint / "run.json").exists():
            raise MmworkError(f"nothing to resume: no checkpoint at {checkpoint}; train without --resume first")
        before = json.loads((checkpoint / "run.json").read_text())
        if limit is not None and limit != before["limit"]:
            raise MmworkError(f"{checkpoint} was trained with limit={before['limit']}; resume with that limit")
        limit = before["limit"]
    with _progress(progress):
        started = time.perf_counter()
        data = _read_audio(dataset, limit) if found.data == "audio" else _read_images(limit)
        fitted = _fit(found, model, config, data, dataset, device, checkpoint, resume, limit, progress)
        seconds = time.perf_counter() - started
        record = {"dataset": dataset, "model": model, "class": found.cls, "condition": found.condition,
                "classes": data.classes, "limit": limit, "train_examples": len(data.train[0]),
                "valid_examples": None if data.valid is None else len(data.valid[0]), "fit_s": round(seconds, 1),
                "epochs_run": len(fitted.history_), "best_epoch": fitted.best_epoch_,
                "device": str(fitted.device_)}
        _save(fitted, record, model_dir(dataset, model))
        last = fitted.history_[-1]
        log.info("%s on %s: %d epochs in %.1f s (best %s, %s); saved to %s", model, dataset, len(fitted.history_),
                 seconds, fitted.best_epoch_, ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                                                        if k in ("loss", "valid_loss") or k.startswith("valid_")),
                 model_dir(dataset, model))
    return fitted


def _fit(found: ModelSpec, model: str, config, data: _Data, dataset: str, device: str, checkpoint: Path,
         resume: bool, limit: int | None, progress: bool):
    klass = _class(found.cls)
    train_set, valid_set = data.train, data.valid
    if found.data == "audio":
        dim = len(data.classes) if found.condition == "class" else None
        built = klass(config, classes=data.classes, mel=data.extra["mel"], **({} if dim is None else
                                                                             {"condition_dim": dim}))
    elif found.condition == "label":
        built = klass(config, n_classes=len(data.classes))
    elif found.condition == "text":
        built = klass(config, condition_dim=int(_text_embed(data.classes[:1]).shape[1]))
    else:
        built = klass(config, condition_dim=len(data.classes) if found.condition == "class" else 0)
    condition = _condition(found.condition, train_set[1], data.classes, config.seed)
    if valid_set is None:
        valid = None
    elif found.cls == "GAN":
        valid = _gan_validation(dataset, valid_set, data.classes, device, progress)
    else:
        valid_condition = _condition(found.condition, valid_set[1], data.classes, config.seed + 1)
        valid = valid_set[0] if valid_condition is None else (valid_set[0], valid_condition)
    if not resume:
        shutil.rmtree(checkpoint, ignore_errors=True)
        write_json(checkpoint / "run.json", {"dataset": dataset, "model": model, "limit": limit})
    return built.fit(train_set[0], condition, valid, checkpoint=checkpoint,
                     resume_from=checkpoint if resume else None)


def _gan_validation(dataset: str, valid_set, classes: list[str], device: str, progress: bool):
    """Early stopping for a GAN: the distance between samples (drawn for the held-out images'
    classes) and the held-out images in the classifier's feature space; a Fréchet distance when there
    are at least twice as many images as features, else KID's unbiased MMD² on the whole sets
    (``mmd2``: one estimate, no subsets). The held-out images are training images, never test ones."""
    from mmwork.evaluation.generation import frechet_distance, mmd2
    from mmwork.models.data import one_hot
    scorer = classifier(dataset, device=device, progress=progress)
    images, labels = valid_set[0][:2000], valid_set[1][:2000]
    real = scorer.features(images)
    condition = one_hot(labels, len(classes))
    use_fd = len(real) >= 2 * real.shape[1]

    def measure(model) -> float:
        fake = scorer.features(model.sample(len(images), condition, seed=0))
        return frechet_distance(fake, real) if use_fd else mmd2(fake, real)
    measure.name = "fd_classifier" if use_fd else "kid_classifier"
    return measure


def _save(fitted, recorded: dict, target: Path) -> None:
    """Write the model and its ``run.json`` to a hidden sibling folder, then swap it into place, so
    ``target`` always holds one whole model (the old one until the new one is complete)."""
    from mmwork.core.version import version
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    fitted.save(staging)
    write_json(staging / "run.json", recorded | {"mmwork_version": version()})
    swap_in_folder(staging, target)


# -- loading and sampling ----------------------------------------------------------------------------
def load(dataset: str, model: str, device: str = "auto"):
    """The generator ``train`` saved for ``dataset`` and ``model``."""
    return _load(dataset, model, device)[0]


def _load(dataset: str, model: str, device: str = "auto"):
    found = spec(dataset, model)
    recorded = _info(dataset, model)
    if recorded is None:
        raise MmworkError(f"no trained {model} for {dataset} under {model_dir(dataset, model)}; train it first: "
                          f"{_train_command(dataset, model)}")
    return _class(found.cls).load(model_dir(dataset, model), device=device), recorded


def classifier(dataset: str = "fashion-mnist", device: str = "auto", progress: bool = True):
    """The in-project classifier of ``dataset`` (images: "classifier", sound: "audio-classifier"),
    trained with its defaults on first use and then loaded from the data root."""
    name = SCORER[DATASETS.get(dataset, "image")]
    if _info(dataset, name) is None:
        log.info("training the %s once for %s (%s)", name, dataset, _train_command(dataset, name))
        return train(dataset, name, device=device, progress=progress)
    return load(dataset, name, device=device)


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
    recorded = _info(dataset, model)
    if recorded is None:
        raise MmworkError(f"no trained {model} for {dataset}; train it first: {_train_command(dataset, model)}")
    if found.condition == "label":
        raise MmworkError(f"{model} labels data and draws no samples; sample from a generator instead")
    rows, names = _request(found, model, n, condition, recorded["classes"])
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


# -- evaluation --------------------------------------------------------------------------------------
@dataclass
class GenerationReport:
    """What :func:`evaluate` returns: a tidy ``table`` with the columns of
    ``mmwork.evaluation.generation.TABLE_COLUMNS`` (one row per source, feature space and metric:
    the model's samples, the real-vs-real floor "train images", the "uniform noise" baseline, with
    their counts), the same figures as a flat ``metrics`` dict (``<metric>_<space>`` for the model,
    ``..._floor``, ``..._noise`` and ``..._test`` for the others), and ``setup``."""

    table: pd.DataFrame
    metrics: dict[str, float]
    setup: dict

    def __repr__(self) -> str:
        s = self.setup
        wide = self.table.pivot_table(index=["feature_space", "metric"], columns="source", values="value", sort=False)
        return (f"{s['model']} on {s['dataset']}: {s['samples']} samples; scorer ({s['scorer']}) test accuracy "
                f"{s['scorer_test_accuracy']:.4f}\n{wide.round(4).to_string()}")

    def to_dict(self) -> dict:
        return {"setup": self.setup, "metrics": self.metrics,
                "table": json.loads(self.table.to_json(orient="records", double_precision=15))}


def evaluate(dataset: str, model: str, n: int = 2000, *, seed: int = 0, device: str = "auto", k: int = 100,
             likelihood_examples: int = 500, effnet_samples: int = 0, progress: bool = True) -> GenerationReport:
    """Score ``n`` samples of the trained ``model`` (conditional models: the classes in turn).

    Images: ``mmwork.evaluation.generation.image_generation_table`` in the in-project classifier's
    feature space (trained on first use; ``effnet_samples`` > 0 adds EfficientNet-Lite0 space on
    that many): Fréchet distance, KID, precision/recall/density/coverage against as many real test
    images, next to the real-vs-real floor and a uniform-noise baseline, and memorisation; then the
    conditional accuracy and the class histogram by the classifier (its test accuracy in ``setup``),
    and for VAEs the test ELBO and ``k``-sample importance-sampled NLL (nats) on
    ``likelihood_examples`` test images, named for what they are: ``elbo_nats``/``is_nll_nats`` for
    log p(x), ``elbo_given_c_nats``/``is_nll_given_c_nats`` for a conditional model's log p(x|c) (the
    class-conditional VAE also gets ``is_nll_nats``, its class summed out: ``VAE.marginal_nll``). Sound: ``mmwork.evaluation.audio_generation.audio_report``.
    """
    found = spec(dataset, model)
    for name, value, least in (("n", n, 2), ("k", k, 1), ("likelihood_examples", likelihood_examples, 1),
                               ("effnet_samples", effnet_samples, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise MmworkError(f"{name} must be an integer of at least {least}, got {value!r}")
    generator, recorded = _load(dataset, model, device)
    with _progress(progress):
        scorer = classifier(dataset, device=device, progress=progress)
        started = time.perf_counter()
        if found.data == "audio":
            return _evaluate_audio(dataset, model, found, generator, scorer, recorded, n, seed, k, started)
        return _evaluate_images(dataset, model, found, generator, scorer, recorded, n, seed, k, likelihood_examples,
                                effnet_samples, started)


def _evaluate_images(dataset, model, found, generator, scorer, recorded, n, seed, k, likelihood_examples,
                     effnet_samples, started) -> GenerationReport:
    from mmwork.evaluation import generation as gen
    from mmwork.models.data import fashion_mnist
    test = fashion_mnist("test")
    scorer_accuracy = scorer.accuracy(test.images, test.labels)
    setup = {"dataset": dataset, "model": model, "samples": n, "scorer": SCORER["image"],
             "scorer_test_accuracy": scorer_accuracy, "test_images": len(test.images)} | {
        key: recorded.get(key) for key in ("train_examples", "valid_examples", "epochs_run", "best_epoch", "fit_s")}
    if found.condition == "label":
        accuracy = generator.accuracy(test.images, test.labels)
        table = pd.DataFrame([{"source": model, "kind": "model", "feature_space": "labels", "metric": "accuracy",
                               "value": accuracy, "std": np.nan, "n_samples": len(test.images),
                               "n_real": len(test.images), "detail": "share of test images labelled correctly"}],
                             columns=gen.TABLE_COLUMNS)
        return _report(table, model, setup, started)
    dims = scorer.config.features
    if n <= dims or n > len(test.images):
        raise MmworkError(f"n={n}: a Fréchet distance in the classifier's {dims}-d space needs more than {dims} "
                          f"samples, and there are {len(test.images)} test images to compare with; use "
                          f"{dims + 1} <= n <= {len(test.images)} (2,000 or more for a stable figure)")
    if effnet_samples and (effnet_samples <= gen.effnet_features.dims or effnet_samples > n):
        raise MmworkError(f"effnet_samples={effnet_samples}: EfficientNet-Lite0 space has 1280 dimensions; use "
                          f"1281 <= effnet_samples <= n={n}, or 0 to leave it out")
    train_examples = fashion_mnist("train", limit=max(recorded["train_examples"], n)).images
    rows, names = _request(found, model, n, None, recorded["classes"])
    samples = generator.sample(n, rows, seed=seed).cpu()
    spaces = gen.image_spaces(scorer, effnet=bool(effnet_samples))
    counts = {gen.CLASSIFIER: n} | ({gen.EFFNET: effnet_samples} if effnet_samples else {})
    table = gen.image_generation_table({model: samples}, test=test.images, train=train_examples, spaces=spaces,
                                       n=counts, seed=seed)  # KID: subsets of 1,000, or of n // 2 below 1,001
    extra = []

    def add(metric, space, value, count, detail, source=model, kind="model"):
        extra.append({"source": source, "kind": kind, "feature_space": space, "metric": metric, "value": float(value),
                      "std": np.nan, "n_samples": count, "n_real": None, "detail": detail})

    predicted = scorer.predict(samples).cpu()
    about = f"labels by the in-project classifier (test accuracy {scorer_accuracy:.4f})"
    if names is not None:
        wanted = torch.tensor([recorded["classes"].index(c) for c in names])
        add("conditional_accuracy", gen.CLASSIFIER, (predicted == wanted).double().mean(), n,
            f"share of samples labelled as their requested class; {about}")
    shares = gen.class_histogram(predicted, len(recorded["classes"]))
    verdict = gen.mode_coverage(shares)
    add("classes_present", gen.CLASSIFIER, (shares > 0).sum(), n, about)
    add("min_class_share", gen.CLASSIFIER, shares.min(), n, about)
    add("max_class_share", gen.CLASSIFIER, shares.max(), n, f"mode coverage {'met' if verdict.covered else 'missed'} "
        f"(all present, none < {verdict.low:g} or > {verdict.high:g})")
    if found.cls == "VAE":
        _likelihood_rows(add, generator, found, test, recorded["classes"], min(likelihood_examples, len(test.images)),
                         k, seed)
    table = pd.concat([table, pd.DataFrame(extra, columns=gen.TABLE_COLUMNS)], ignore_index=True)
    setup |= {"nll_k": k, "effnet_samples": effnet_samples,
              "class_shares": dict(zip(recorded["classes"], shares.round(4).tolist()))}
    return _report(table, model, setup, started)


def _likelihood_rows(add, generator, found: ModelSpec, test, classes: list[str], m: int, k: int, seed: int) -> None:
    """A VAE's likelihoods of the first ``m`` test images, each named for what it is: ``elbo_nats`` and
    ``is_nll_nats`` bound and estimate log p(x) (unconditional models; for a class-conditional one
    ``is_nll_nats`` sums the class out, so it sits beside an unconditional model's), while
    ``elbo_given_c_nats`` and ``is_nll_given_c_nats`` are conditional: log p(x|c) given the image's own
    class or its text, up to log(classes) nats below -log p(x) and never the same quantity."""
    from mmwork.models.data import one_hot
    x, c = test.images[:m], _condition(found.condition, test.labels[:m], classes)
    about = f"{generator.config.likelihood} likelihood"
    if c is None:
        add("elbo_nats", "likelihood", generator.elbo(x, seed=seed).mean(), m,
            f"evidence lower bound on log p(x) per test image ({about})")
        add("is_nll_nats", "likelihood", generator.importance_nll(x, k=k, seed=seed).mean(), m,
            f"importance-sampled -log p(x) per test image, k={k} ({about})")
        return
    given = "its class (one-hot)" if found.condition == "class" else "a MiniLM embedding of a text naming its class"
    add("elbo_given_c_nats", "likelihood", generator.elbo(x, c, seed=seed).mean(), m,
        f"evidence lower bound on the conditional log p(x|c) per test image, c = {given} ({about}); not log p(x)")
    add("is_nll_given_c_nats", "likelihood", generator.importance_nll(x, c, k=k, seed=seed).mean(), m,
        f"importance-sampled conditional -log p(x|c) per test image, c = {given}, k={k} ({about}); not -log p(x)")
    if found.condition == "class":
        add("is_nll_nats", "likelihood", generator.marginal_nll(x, one_hot(range(len(classes)), len(classes)), k=k,
                                                                seed=seed).mean(), m,
            f"importance-sampled -log p(x) = -log sum_c p(c) p(x|c) per test image, the {len(classes)} classes equally "
            f"likely, k={k} per class ({about}): comparable with an unconditional VAE's -log p(x)")


SOURCE_SUFFIX = {"train images": "_floor", "uniform noise": "_noise", "test images": "_test"}


def _report(table: pd.DataFrame, model: str, setup: dict, started: float) -> GenerationReport:
    metrics = {}
    for row in table.itertuples(index=False):
        space = "" if row.feature_space in ("likelihood", "labels", "mcd") or row.metric in LABEL_METRICS else \
            f"_{row.feature_space}"
        name = {"FD": "frechet_distance", "KID": "kid"}.get(row.metric, row.metric)
        metrics[name + space + ("" if row.source == model else SOURCE_SUFFIX.get(row.source, f"_{row.source}"))] = \
            float(row.value)
    metrics["scorer_test_accuracy"] = setup["scorer_test_accuracy"]
    setup = setup | {"eval_s": round(time.perf_counter() - started, 1),
                     "note": "distances in the named feature spaces (FD-classifier, FD-effnet-lite0, FD-mfcc), "
                             "never FID; compare figures only at equal sample counts"}
    return GenerationReport(table, metrics, setup)


def _evaluate_audio(dataset, model, found, generator, scorer, recorded, n, seed, k, started) -> GenerationReport:
    from mmwork.evaluation.audio_generation import audio_report
    from mmwork.evaluation.generation import TABLE_COLUMNS
    from mmwork.models.data import audio_clips
    test, train_clips = audio_clips(dataset, "test"), audio_clips(dataset, "train")
    accuracy = scorer.accuracy(test.patches, test.labels)
    setup = {"dataset": dataset, "model": model, "samples": n, "scorer": SCORER["audio"],
             "scorer_test_accuracy": accuracy, "test_patches": len(test.patches)} | {
        key: recorded.get(key) for key in ("train_examples", "valid_examples", "epochs_run", "best_epoch", "fit_s")}
    if found.condition == "label":
        table = pd.DataFrame([{"source": model, "kind": "model", "feature_space": "labels", "metric": "accuracy",
                               "value": accuracy, "std": np.nan, "n_samples": len(test.patches),
                               "n_real": len(test.patches), "detail": "share of test patches labelled correctly"}],
                             columns=TABLE_COLUMNS)
        return _report(table, model, setup, started)
    n = min(n, len(test.patches), len(train_clips.patches))
    # Griffin-Lim costs ~0.3 s per patch and audio_report runs it on five sets as large as the test set
    test = type(test)(test.patches[:n], test.labels[:n], test.classes, test.mel, test.item_ids[:n], test.audio[:n])
    out = audio_report(generator, test, scorer, train_clips, n=n, seed=seed, k=k)
    space = "mfcc_stats"
    sources = {"fd_samples": (model, "model"), "fd_floor_real": ("train images", "floor"),
               "fd_floor_vocoder": ("vocoder", "floor"), "fd_noise": ("uniform noise", "baseline")}
    rows = [{"source": src, "kind": kind, "feature_space": space, "metric": "FD", "value": out[key], "std": np.nan,
             "n_samples": out["n_samples"], "n_real": out["n_test"], "detail": out["feature_space"]}
            for key, (src, kind) in sources.items() if out[key] is not None]
    conditional = bool(generator.config.condition_dim)  # then the likelihoods are log p(x|c), c the category
    for key, space, source in (("elbo_test", "likelihood", model), ("nll_test", "likelihood", model),
                               ("conditional_accuracy", "audio-classifier", model),
                               ("mcd_reconstruction", "mcd", model), ("mcd_floor_vocoder", "mcd", "vocoder")):
        if out[key] is not None:
            given = "_given_c" if conditional else ""
            metric = {"elbo_test": f"elbo{given}_nats", "nll_test": f"is_nll{given}_nats", "mcd_floor_vocoder": "mcd_db",
                      "mcd_reconstruction": "mcd_db"}.get(key, key)
            rows.append({"source": source, "kind": "model" if source == model else "floor", "feature_space": space,
                         "metric": metric, "value": out[key], "std": np.nan, "n_samples": out["n_test"],
                         "n_real": out["n_test"], "detail": out["mcd"] if space == "mcd" else
                         ("conditional: log p(x|c), c the patch's category" if conditional and space == "likelihood"
                          else "")})
    setup |= {"scorer_test_accuracy_vocoder": out["classifier_accuracy_vocoder"], "nll_k": k, "samples": n,
              "griffin_lim_iterations": out["griffin_lim_iterations"]}
    return _report(pd.DataFrame(rows, columns=TABLE_COLUMNS), model, setup, started)
