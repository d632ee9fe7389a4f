"""Fit a named generator on the store's data, with checkpoints, resume and per-epoch progress lines.

``train`` reads the data (:mod:`mmwork.apps.generate.data`), builds the model from the registry
entry, fits it with early stopping on the held-out part (a GAN's on its samples' distance to the
held-out images in the classifier's feature space) and saves it (:mod:`mmwork.apps.generate.folders`).

>>> model = train("fashion-mnist", "cvae", epochs=5, limit=5000)                # doctest: +SKIP
>>> classifier("fashion-mnist").config.features                                 # doctest: +SKIP
128
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from mmwork.apps.generate.data import TrainingData, read_audio, read_images, text_embed, training_condition
from mmwork.apps.generate.folders import checkpoint_dir, info, load, model_dir, save
from mmwork.apps.generate.registry import DATASETS, SCORER, ModelSpec, build, make_config, spec, train_command
from mmwork.core.errors import MmworkError
from mmwork.store.tables import write_json

log = logging.getLogger("mmwork.apps.generate")


@contextlib.contextmanager
def progress_log(enabled: bool):
    """Per-epoch log lines of the generators (and of ``mmwork.apps.generate``) on stderr while ``enabled``."""
    if not enabled or getattr(progress_log, "active", False):
        yield
        return
    progress_log.active = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    loggers = [logging.getLogger("mmwork.models"), log]
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
        progress_log.active = False


def train(dataset: str, model: str, *, epochs: int | None = None, limit: int | None = None,
          params: dict | None = None, device: str = "auto", seed: int = 0, resume: bool = False,
          progress: bool = True, time_budget: float | str | None = None):
    """Fit the named ``model`` on ``dataset``'s training data and save it (see
    :func:`mmwork.apps.generate.folders.model_dir`).

    ``limit`` caps the training images (another tenth as many are read and held out for early
    stopping; all 60,000 read when None: 54,000 to train, 6,000 held out), or for sound the training
    clips (some of them held out by a hash of their id); the image GAN's early stopping scores its
    samples with the in-project classifier, trained first if absent (see :func:`classifier`);
    ``params`` are the model's config fields (``VAEConfig`` etc.), validated with ``epochs``,
    ``device`` and ``seed`` before any data is read. After every epoch a checkpoint is written to
    ``checkpoint_dir``; ``resume=True`` continues it (an interrupted run, or a finished one given
    more ``epochs``). The saved model is replaced only once the new one is complete. ``time_budget``
    (seconds, or ``"90s"``, ``"2m"``) stops training after the last epoch that fits in it and keeps the
    best validated epoch (the data reading and the GAN's classifier come on top). Returns the fitted
    generator.
    """
    found = spec(dataset, model)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise MmworkError(f"limit must be a positive number of training examples, got {limit!r}")
    config = make_config(found, model, params, epochs=epochs, device=device, seed=seed, time_budget=time_budget)
    checkpoint = checkpoint_dir(dataset, model)
    if resume:
        if not (checkpoint / "run.json").exists():
            raise MmworkError(f"nothing to resume: no checkpoint at {checkpoint}; train without --resume first")
        before = json.loads((checkpoint / "run.json").read_text())
        if limit is not None and limit != before["limit"]:
            raise MmworkError(f"{checkpoint} was trained with limit={before['limit']}; resume with that limit")
        limit = before["limit"]
    with progress_log(progress):
        started = time.perf_counter()
        data = read_audio(dataset, limit) if found.data == "audio" else read_images(limit)
        fitted = _fit(found, model, config, data, dataset, device, checkpoint, resume, limit, progress)
        seconds = time.perf_counter() - started
        record = {"dataset": dataset, "model": model, "class": found.cls, "condition": found.condition,
                  "classes": data.classes, "limit": limit, "train_examples": len(data.train[0]),
                  "valid_examples": None if data.valid is None else len(data.valid[0]), "fit_s": round(seconds, 1),
                  "epochs_run": len(fitted.history_), "best_epoch": fitted.best_epoch_,
                  "device": str(fitted.device_)}
        save(fitted, record, model_dir(dataset, model))
        last = fitted.history_[-1]
        log.info("%s on %s: %d epochs in %.1f s (best %s, %s); saved to %s", model, dataset, len(fitted.history_),
                 seconds, fitted.best_epoch_, ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                                                        if k in ("loss", "valid_loss") or k.startswith("valid_")),
                 model_dir(dataset, model))
    return fitted


def _fit(found: ModelSpec, model: str, config, data: TrainingData, dataset: str, device: str, checkpoint: Path,
         resume: bool, limit: int | None, progress: bool):
    train_set, valid_set = data.train, data.valid
    text_dim = int(text_embed(data.classes[:1]).shape[1]) if found.condition == "text" else None
    built = build(found, config, data.classes, mel=data.extra.get("mel"), text_dim=text_dim)
    condition = training_condition(found.condition, train_set[1], data.classes, config.seed)
    if valid_set is None:
        valid = None
    elif found.cls == "GAN":
        valid = _gan_validation(dataset, valid_set, data.classes, device, progress)
    else:
        valid_condition = training_condition(found.condition, valid_set[1], data.classes, config.seed + 1)
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


def classifier(dataset: str = "fashion-mnist", device: str = "auto", progress: bool = True):
    """The in-project classifier of ``dataset`` (images: "classifier", sound: "audio-classifier"),
    trained with its defaults on first use and then loaded from the data root."""
    name = SCORER[DATASETS.get(dataset, "image")]
    if info(dataset, name) is None:
        log.info("training the %s once for %s (%s)", name, dataset, train_command(dataset, name))
        return train(dataset, name, device=device, progress=progress)
    return load(dataset, name, device=device)
