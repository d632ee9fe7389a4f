"""Cross-modal generation by name: train a :class:`~mmwork.models.generators.MultimodalVAE` on a
multimodal data set, generate any of its modalities from any others, and measure it as the
multimodal-VAE literature does (MoPoE / MultiVae protocol, :mod:`mmwork.evaluation.cross_modal`).

Training uses the data set's training split and stops early on its validation split; the judges (one
:class:`~mmwork.models.judges.ModalityClassifier` per modality) are trained once on the same training
split, early-stopped on validation, and saved beside the generators; every figure is measured on the
test split, whose samples of every modality were set aside before pairing.

>>> model = train("digits-av", params={"fusion": "attention"}, time_budget="60s")      # doctest: +SKIP
>>> out = generate_from("digits-av", {"text": "seven"}, ["image", "audio"], n=8)         # doctest: +SKIP
>>> save_outputs("digits-av", out, "seven/")                                              # doctest: +SKIP
>>> evaluate("digits-av")["coherence"]["mean"]                                            # doctest: +SKIP
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.apps.generate.folders import info, load, model_dir, save
from mmwork.apps.generate.registry import make_config, spec
from mmwork.apps.generate.sampling import save_grid, save_wavs
from mmwork.apps.generate.training import progress_log
from mmwork.core.errors import MmworkError
from mmwork.evaluation.cross_modal import (conditional_coherence, joint_coherence, latent_probe, mean_elbo,
                                           modality_fd)
from mmwork.models.data.multimodal import (MultimodalData, decode_text, digits_av, encode_text, mfcc_to_waveform,
                                          standardise)
from mmwork.models.judges import ModalityClassifier
from mmwork.store.tables import swap_in_folder, write_json

MODEL = "multimodal-vae"
LOADERS = {"digits-av": digits_av}
"""Multimodal data sets -> their loader ``(split, seed=, n=) -> MultimodalData``."""
PROTOCOL = ("MoPoE/MultiVae protocol on the test split (every modality's test pool set aside before pairing): "
            "per-modality classifiers trained on the training split only, early-stopped on validation; conditional "
            "coherence = share of generated targets classified as the given row's class, for every non-empty proper "
            "subset of given modalities -> each missing one, averaged by subset size; joint coherence = share of "
            "prior samples whose modalities all get one class; FD-clf-<modality> = Frechet distance in that "
            "classifier's penultimate features (not FID) with the real-vs-real floor and a noise baseline at equal "
            "counts; latent probe = logistic regression on training latents scored on test latents; test ELBO in "
            "nats per example")


def load_split(dataset: str, split: str, *, seed: int = 0, n: int | None = None) -> MultimodalData:
    """One split of a multimodal data set, paired (see the loader, e.g. :func:`~mmwork.models.data.digits_av`)."""
    if dataset not in LOADERS:
        raise MmworkError(f"{dataset!r} is not a multimodal data set; choose from {', '.join(LOADERS)}")
    return LOADERS[dataset](split, seed=seed, n=n)


def fit(dataset: str, model: str = MODEL, *, epochs: int | None = None, limit: int | None = None,
        params: dict | None = None, device: str = "auto", seed: int = 0, progress: bool = True,
        time_budget: float | str | None = None):
    """Fit the multimodal model on ``dataset``'s training split (``limit``: its first rows), early-stopped
    on the validation split, without saving it. ``params`` are
    :class:`~mmwork.models.generators.multimodal.MultimodalVAEConfig` fields (e.g. ``{"fusion": "poe"}``),
    validated before any data is read. Returns (the fitted model, what training recorded)."""
    found = spec(dataset, model)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise MmworkError(f"limit must be a positive number of training rows, got {limit!r}")
    config = make_config(found, model, params, epochs=epochs, device=device, seed=seed, time_budget=time_budget)
    with progress_log(progress):
        started = time.perf_counter()
        data, valid = load_split(dataset, "train", seed=seed, n=limit), load_split(dataset, "valid", seed=seed)
        fitted = found.klass.from_data(config.model_dump(exclude_unset=True), data=data).fit(data, valid=valid)
    seconds = [row["seconds"] for row in fitted.history_ if "seconds" in row]
    record = {"dataset": dataset, "model": model, "class": found.cls, "condition": "the given modalities",
              "classes": data.classes, "modalities": list(data.arrays), "limit": limit, "train_examples": len(data),
              "valid_examples": len(valid), "fit_s": round(time.perf_counter() - started, 1),
              "epochs_run": len(fitted.history_), "best_epoch": fitted.best_epoch_,
              "s_per_epoch": round(float(np.median(seconds)), 2) if seconds else None,
              "fusion": fitted.config.fusion, "device": str(fitted.device_)}
    return fitted, record


def train(dataset: str, model: str = MODEL, **options):
    """:func:`fit`, then save the model under :func:`~mmwork.apps.generate.folders.model_dir` (where
    ``sample``/``evaluate`` find it). Returns the fitted model."""
    fitted, record = fit(dataset, model, **options)
    save_model(dataset, fitted, record, model)
    return fitted


def save_model(dataset: str, fitted, record: dict, model: str = MODEL) -> None:
    """Save a model :func:`fit` returned where ``sample``/``evaluate`` (and the CLI) find it."""
    save(fitted, record, model_dir(dataset, model))


def classifiers(dataset: str, *, device: str = "auto", progress: bool = True,
                time_budget: float | str | None = None) -> dict[str, ModalityClassifier]:
    """One judge per modality of ``dataset``, trained once (training split, early stopping on the
    validation split) and then loaded from ``<models>/<dataset>/classifier-<modality>``."""
    found: dict[str, ModalityClassifier] = {}
    data = valid = None
    for name in _modalities(dataset):
        where = model_dir(dataset, f"classifier-{name}")
        if (where / "run.json").exists():
            found[name] = ModalityClassifier.load(where, device=device)
            continue
        if data is None:
            data, valid = load_split(dataset, "train"), load_split(dataset, "valid")
        with progress_log(progress):
            clf = ModalityClassifier.for_spec(data.specs[name], len(data.classes), device=device,
                                              time_budget=time_budget)
            clf.fit(data.arrays[name], data.labels, valid=(valid.arrays[name], valid.labels))
        test = load_split(dataset, "test")
        save(clf, {"dataset": dataset, "modality": name, "train_examples": len(data),
                   "test_accuracy": clf.accuracy(test.arrays[name], test.labels)}, where)
        found[name] = clf
    return found


def classifier_accuracy(dataset: str) -> dict[str, float]:
    """Each modality judge's recorded test accuracy (the ceiling next to every coherence)."""
    return {name: info(dataset, f"classifier-{name}")["test_accuracy"] for name in _modalities(dataset)
            if info(dataset, f"classifier-{name}")}


def load_model(dataset: str, model: str = MODEL, device: str = "auto"):
    """The multimodal model ``train`` saved for ``dataset`` (a one-line error saying how to train it if none)."""
    return load(dataset, model, device=device)


def _modalities(dataset: str) -> list[str]:
    recorded = info(dataset, MODEL)
    return recorded["modalities"] if recorded else list(load_split(dataset, "valid", n=1).arrays)


def parse_given(dataset: str, given: dict, model=None) -> dict[str, torch.Tensor]:
    """The given modalities as one row each: ``text`` is any string; ``image`` a PNG/JPEG path;
    ``audio`` a ``.npy`` file of raw MFCC frames (T, 13); any modality may also be ``test:<class>``,
    the first test row of that class (e.g. ``audio=test:7``).

    >>> parse_given("digits-av", {"text": "seven"})["text"].shape      # doctest: +SKIP
    torch.Size([1, 12])
    """
    model = model or load(dataset, MODEL, device="cpu")
    if not given:
        raise MmworkError("give at least one modality, e.g. --from text=seven")
    specs = model.config.modalities
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise MmworkError(f"the model was trained on {', '.join(specs)}, not {', '.join(unknown)}")
    out = {}
    for name, value in given.items():
        kind = specs[name].kind
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, str) and value.startswith("test:"):
            out[name] = _test_row(dataset, name, value[5:], model.config.classes)
        elif kind == "tokens":
            out[name] = encode_text([str(value)], specs[name])
        elif kind == "image":
            out[name] = _read_image(value, specs[name].shape)
        elif kind == "sequence":
            out[name] = _read_frames(value, specs[name])
        else:
            raise MmworkError(f"{name}: give a tensor or test:<class> for a {kind} modality")
    return out


def _test_row(dataset: str, name: str, wanted: str, classes: list[str]) -> torch.Tensor:
    if wanted not in classes:
        raise MmworkError(f"test:{wanted}: unknown class; choose from {', '.join(classes)}")
    test = load_split(dataset, "test")
    row = int(torch.nonzero(test.labels == classes.index(wanted))[0])
    return test.arrays[name][row:row + 1]


def _read_image(path, shape) -> torch.Tensor:
    from PIL import Image
    if not Path(path).is_file():
        raise MmworkError(f"image {path!r} is not a file (give a PNG or JPEG path, or test:<class>)")
    channels, size = shape[0], shape[1]
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB").resize((size, size))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).reshape(1, *shape)


def _read_frames(path, spec) -> torch.Tensor:
    if not str(path).endswith(".npy") or not Path(path).is_file():
        raise MmworkError(f"audio {path!r}: give a .npy file of MFCC frames (T, {spec.shape[1]}), or test:<class>")
    frames = np.load(path)
    if frames.ndim != 2 or frames.shape[1] != spec.shape[1] or not np.isfinite(frames).all():
        raise MmworkError(f"audio {path}: MFCC frames must be a finite (T, {spec.shape[1]}) array, got {frames.shape}")
    fixed = np.zeros(spec.shape, dtype=np.float32)
    fixed[:] = frames[-1:] if len(frames) else 0
    fixed[:min(len(frames), spec.shape[0])] = frames[:spec.shape[0]]
    return torch.from_numpy(standardise(fixed, spec)).float()[None]


def generate_from(dataset: str, given: dict, targets, n: int = 8, seed: int = 0, device: str = "auto",
                  model=None) -> dict:
    """``n`` samples of each of ``targets`` generated from one ``given`` row per modality (see
    :func:`parse_given`). Returns ``{target: tensor (n, ...)}``."""
    if not isinstance(n, int) or n < 1:
        raise MmworkError(f"n must be a positive integer, got {n!r}")
    model = model or load(dataset, MODEL, device=device)
    rows = parse_given(dataset, given, model)
    repeated = {name: row.expand(n, *row.shape[1:]) for name, row in rows.items()}
    return model.generate(list(targets), repeated, seed=seed)


def describe(dataset: str, outputs: dict, model=None) -> dict:
    """Generated outputs as a person meets them: texts decoded, sounds as waveforms (``(waves, sr)``),
    images as they are."""
    specs = (model or load(dataset, MODEL, device="cpu")).config.modalities
    shown = {}
    for name, x in outputs.items():
        spec_ = specs[name]
        if spec_.kind == "tokens":
            shown[name] = decode_text(x, spec_)
        elif spec_.kind == "sequence" and spec_.params:
            shown[name] = (np.stack([mfcc_to_waveform(row, spec_) for row in x.cpu().numpy()]), int(spec_.params["sr"]))
        else:
            shown[name] = x
    return shown


def save_outputs(dataset: str, outputs: dict, out: str | Path, manifest: dict | None = None, model=None) -> Path:
    """Write generated outputs into the folder ``out``: images as ``image.png`` (a grid), sounds as WAV files
    under ``audio/`` (MFCCs inverted: :func:`~mmwork.models.data.mfcc_to_waveform`), texts and what was asked
    in ``manifest.json``. The folder appears whole or not at all."""
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written = {}
        for name, shown in describe(dataset, outputs, model).items():
            if isinstance(shown, list):
                written[name] = shown
            elif isinstance(shown, tuple):
                waves, sr = shown
                paths = save_wavs(waves, sr, staging / name)
                written[name] = [str(out / name / p.name) for p in paths]
            else:
                save_grid(shown.cpu(), staging / f"{name}.png", ncols=min(8, len(shown)), scale=3)
                written[name] = str(out / f"{name}.png")
        write_json(staging / "manifest.json", (manifest or {}) | {"dataset": dataset, "outputs": written})
        swap_in_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def parse_from(pairs: list[str]) -> dict[str, str]:
    """``["text=seven", "audio=test:7"]`` -> ``{"text": "seven", "audio": "test:7"}``.

    >>> parse_from(["text=seven", "audio=test:7"])
    {'text': 'seven', 'audio': 'test:7'}
    """
    given = {}
    for pair in pairs:
        match = re.fullmatch(r"\s*([a-z_]+)\s*=(.*)", pair)
        if not match or not match.group(2):
            raise MmworkError(f"--from takes MODALITY=VALUE (e.g. text=seven, audio=test:7), got {pair!r}")
        given[match.group(1)] = match.group(2)
    return given


def evaluate(dataset: str, model: str = MODEL, *, n_joint: int = 10_000, seed: int = 0, device: str = "auto",
             progress: bool = True) -> dict:
    """:func:`measure` the model saved for ``dataset``."""
    return measure(load(dataset, model, device=device), dataset, n_joint=n_joint, seed=seed, device=device,
                   progress=progress) | {"model": model, "trained": info(dataset, model)}


def measure(fitted, dataset: str, *, n_joint: int = 10_000, seed: int = 0, device: str = "auto",
            progress: bool = True) -> dict:
    """The cross-modal figures of a fitted model on ``dataset``'s test split (see :data:`PROTOCOL`): the
    judges' test accuracy, conditional coherence (table, by subset size, mean), joint coherence over
    ``n_joint`` prior samples, FD per modality with floor and noise, the latent probe and the test ELBO."""
    if not isinstance(n_joint, int) or n_joint < 1:
        raise MmworkError(f"n_joint must be a positive integer, got {n_joint!r}")
    judges = classifiers(dataset, device=device, progress=progress)
    train_data, test = load_split(dataset, "train", seed=seed), load_split(dataset, "test", seed=seed)
    coherence = conditional_coherence(lambda targets, given: fitted.generate(targets, given, seed=seed), test, judges)
    joint = joint_coherence(lambda k: fitted.sample(k, seed=seed), judges, n=n_joint)
    drawn = {k: v.cpu() for k, v in fitted.sample(len(test), seed=seed + 1).items()}
    fd = modality_fd(drawn, test.arrays, judges, seed)
    probe = latent_probe(fitted.encode(train_data.arrays)[0], train_data.labels, fitted.encode(test.arrays)[0],
                         test.labels)
    return {"dataset": dataset, "model": MODEL, "fusion": fitted.config.fusion, "protocol": PROTOCOL,
            "test_examples": len(test), "joint_samples": n_joint,
            "classifier_test_accuracy": classifier_accuracy(dataset),
            "coherence": coherence, "joint_coherence": joint, "fd": fd, "latent_probe": probe,
            "test_elbo": mean_elbo(fitted.elbo, test)}


def fusion_table(reports: dict[str, dict]):
    """One row per model (name -> :func:`measure` report): coherence by given-subset size and its mean,
    joint coherence, FD per modality, the latent probe and the test ELBO; then the floor and noise rows."""
    import pandas as pd
    rows = {}
    for name, report in reports.items():
        row = {f"coherence from {k}": v for k, v in report["coherence"]["by_size"].items()}
        row |= {"coherence (mean)": report["coherence"]["mean"], "joint coherence": report["joint_coherence"]}
        row |= {key: fd["model"] for key, fd in report["fd"].items()}
        rows[name] = row | {"latent probe": report["latent_probe"], "test ELBO (nats)": report["test_elbo"]}
    first = next(iter(reports.values()))
    rows["real vs real (floor)"] = {key: fd["floor"] for key, fd in first["fd"].items()}
    rows["noise (baseline)"] = {key: fd["noise"] for key, fd in first["fd"].items()}
    return pd.DataFrame(rows).T


def summary(report: dict) -> str:
    """:func:`evaluate`'s report as a few readable lines (the JSON holds everything)."""
    accuracy = report["classifier_test_accuracy"]
    lines = [f"{report['model']} ({report['fusion']} fusion) on {report['dataset']}: {report['test_examples']} "
             "test rows",
             "judges' test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()),
             "conditional coherence by given subset size: "
             + ", ".join(f"{k}: {v:.3f}" for k, v in report["coherence"]["by_size"].items())
             + f"; mean {report['coherence']['mean']:.3f}",
             f"joint coherence ({report['joint_samples']} prior samples): {report['joint_coherence']:.3f}",
             f"latent probe accuracy {report['latent_probe']:.3f}; test ELBO {report['test_elbo']:.1f} nats"]
    for name, fd in report["fd"].items():
        lines.append(f"{name}: model {fd['model']:.2f}, floor (real vs real) {fd['floor']:.2f}, "
                     f"noise {fd['noise']:.2f} "
                     f"(n={fd['n']})")
    lines.append(coherence_matrix(report["coherence"]).round(3).to_string(na_rep="-"))
    return "\n".join(lines)


def coherence_matrix(coherence: dict):
    """The conditional-coherence table as a (given subset x target) DataFrame, for a heatmap."""
    import pandas as pd
    frame = pd.DataFrame([{"given": " + ".join(row["given"]), "target": row["target"], "coherence": row["coherence"]}
                          for row in coherence["table"]])
    return frame.pivot(index="given", columns="target", values="coherence")


__all__ = ["LOADERS", "MODEL", "PROTOCOL", "classifier_accuracy", "classifiers", "coherence_matrix", "describe",
           "evaluate", "fit", "fusion_table", "generate_from", "load_model", "load_split", "measure", "parse_from",
           "parse_given", "save_model", "save_outputs", "summary", "train"]
