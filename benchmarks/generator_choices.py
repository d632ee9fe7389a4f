"""The image generators' defaults chosen again on validation images carved from the training split
(issue 19: no test image in any choice), written to JSON.

Protocol: Fashion-MNIST's 60,000 training images from the store; the last 5,000 are the validation
set (``mmwork.models.data.images.train_valid_split``), the test split is never read. One torch thread.
(1) The classifier's ``shift``: 0 against 2, every other parameter at its default (8 epochs, one-cycle,
mirroring), seed 0, trained on the other 55,000; accuracy and cross-entropy on the 5,000 validation
images. (2) The GAN's ``aux_weight``: 0 against 0.5 (the default), conditional, every other parameter
at its default, on the first ``--gan-images`` training images for ``--gan-epochs`` epochs, seeds
``--gan-seeds``; each draws 5,000 samples (500 per class) scored by the shift-0 classifier of (1):
the share labelled as their requested class, and the Fréchet distance and KID (100 subsets of 1,000)
against the 5,000 validation images in that classifier's feature space.

    python benchmarks/generator_choices.py --parts classifier,gan
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from mmwork.evaluation.generation import classifier_space, frechet_distance, kid
from mmwork.models.generators import GAN
from mmwork.models.judges import Classifier
from mmwork.models.data import fashion_mnist, one_hot
from mmwork.models.data.images import train_valid_split

RESULTS = Path(__file__).resolve().parent / "results" / "generator_choices.json"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _write(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


def _merge_classifier_runs(out: dict, path: Path) -> None:
    """Add the runs of other shifts already in ``path`` (e.g. written by a parallel ``--shifts 0``
    process), then say which shift the validation images choose once both are there."""
    rows = out["classifier_shift"]
    before = json.loads(path.read_text()).get("classifier_shift", {}) if path.exists() else {}
    mine = {r["shift"] for r in rows["runs"]}
    rows["runs"] = sorted([r for r in before.get("runs", []) if r["shift"] not in mine] + rows["runs"],
                          key=lambda r: r["shift"])
    by_shift = {r["shift"]: r for r in rows["runs"]}
    if {0, 2} <= set(by_shift):
        rows["chosen_shift"] = max(by_shift.values(), key=lambda r: r["valid_accuracy"])["shift"]
        rows["valid_accuracy_shift0_minus_shift2"] = by_shift[0]["valid_accuracy"] - by_shift[2]["valid_accuracy"]


def classifier_choice(train, valid, args, out: dict, path: Path, folder: Path) -> Classifier | None:
    rows = out.setdefault("classifier_shift", {"runs": []})
    judge = None
    for shift in args.shifts:
        load, started = os.getloadavg(), time.perf_counter()
        model = Classifier(shift=shift, seed=0, device="cpu",
                           **({} if args.classifier_epochs is None else {"epochs": args.classifier_epochs}))
        model.fit(train.images, train.labels)
        seconds = time.perf_counter() - started
        logits = model.logits(valid.images).cpu()
        rows["runs"].append({
            "shift": shift, "fit_s": round(seconds, 1), "load_average_before": load,
            "load_average_after": os.getloadavg(),
            "valid_accuracy": float((logits.argmax(1) == valid.labels).double().mean()),
            "valid_cross_entropy": float(torch.nn.functional.cross_entropy(logits, valid.labels)),
            "train_accuracy_last_epoch": model.history_[-1]["accuracy"]})
        print("classifier", rows["runs"][-1], flush=True)
        if shift == 0:
            judge = model
            model.save(folder / "classifier-shift0")
        _merge_classifier_runs(out, path)
        _write(out, path)
    return judge


def _gan(train, aux: float, seed: int, args) -> tuple[GAN, dict]:
    """The GAN of one (aux_weight, seed), trained here or loaded from an earlier ``--parts gan-train``."""
    folder = args.classifier / f"gan-aux{aux:g}-seed{seed}"
    if (folder / "model.json").exists():
        return GAN.load(folder, device="cpu"), json.loads((folder / "fit.json").read_text())
    data = train.images[:args.gan_images], one_hot(train.labels[:args.gan_images], 10)
    load, started = os.getloadavg(), time.perf_counter()
    model = GAN(aux_weight=aux, condition_dim=10, epochs=args.gan_epochs, seed=seed, device="cpu").fit(*data)
    fit = {"fit_s": round(time.perf_counter() - started, 1), "load_average_before": load,
           "load_average_after": os.getloadavg(), "train_images": len(data[0]), "epochs": args.gan_epochs}
    model.save(folder)
    (folder / "fit.json").write_text(json.dumps(fit))
    return model, fit


def gan_choice(train, valid, judge: Classifier | None, args, out: dict, path: Path) -> None:
    if judge is None:  # --parts gan-train: only fit and save the GANs
        for seed in args.gan_seeds:
            for aux in (0.0, 0.5):
                print("gan trained", aux, seed, _gan(train, aux, seed, args)[1], flush=True)
        return
    rows = out.setdefault("gan_aux_weight", {"runs": []})
    space = classifier_space(judge)
    real = space(valid.images)
    wanted = torch.arange(5000) % 10
    for seed in args.gan_seeds:
        for aux in (0.0, 0.5):
            model, fit = _gan(train, aux, seed, args)
            drawn = model.sample(len(wanted), one_hot(wanted, 10), seed=1).cpu()
            fake = space(drawn)
            distance = kid(fake, real, subsets=100, subset_size=1000, seed=0)
            rows["runs"].append({
                "aux_weight": aux, "seed": seed, **fit,
                "conditional_accuracy": float((judge.predict(drawn).cpu() == wanted).double().mean()),
                "fd_classifier_vs_valid": frechet_distance(fake, real),
                "kid_classifier_vs_valid": distance.mean, "kid_std": distance.std})
            print("gan", rows["runs"][-1], flush=True)
            _write(out, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="classifier,gan", help="classifier, gan, or gan-train (fit and save "
                        "the GANs only, e.g. beside a running classifier part; gan then loads them)")
    parser.add_argument("--gan-images", type=int, default=20_000)
    parser.add_argument("--gan-epochs", type=int, default=3)
    parser.add_argument("--gan-seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    parser.add_argument("--shifts", type=lambda s: [int(x) for x in s.split(",")], default=[0, 2],
                        help="the classifier shifts to fit here (runs of others already in --output are kept)")
    parser.add_argument("--classifier-epochs", type=int, help="default: the Classifier's own (8)")
    parser.add_argument("--train-limit", type=int, help="only the first N training images (a smoke run)")
    parser.add_argument("--classifier", type=Path, default=Path("/tmp/generator-choices"),
                        help="folder for the shift-0 classifier (the GAN part loads it from there)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    parts = args.parts.split(",")
    train, valid = train_valid_split(fashion_mnist("train"), limit=args.train_limit)
    out = json.loads(args.output.read_text()) if args.output.exists() else {}
    out |= {"protocol": " ".join(__doc__.split("\n\n")[1].split()),
            "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1,
                        "cpus": os.cpu_count(), "uptime_at_start": _uptime()},
            "train_images": len(train.images), "valid_images": len(valid.images),
            "valid_class_counts": torch.bincount(valid.labels).tolist()}
    judge = None
    if "classifier" in parts:
        out["classifier_shift"] = {"runs": []}
        judge = classifier_choice(train, valid, args, out, args.output, args.classifier)
    if "gan-train" in parts:
        gan_choice(train, valid, None, args, out, args.output)
        return
    if "gan" in parts:
        out.pop("gan_aux_weight", None)
        judge = judge or Classifier.load(args.classifier / "classifier-shift0", device="cpu")
        gan_choice(train, valid, judge, args, out, args.output)
    out["machine"]["uptime_at_end"] = _uptime()
    _write(out, args.output)


if __name__ == "__main__":
    main()
