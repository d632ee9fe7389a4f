"""The conditional GAN's speed and its quality within a demo-sized time budget (issue 21), written to
``benchmarks/results/gan_speed.json``.

(a) Speed: images per second of ``fit`` on the first ``--speed-images`` Fashion-MNIST training images
(one epoch, conditional), one torch thread, the GAN of ``--baseline`` (a commit: its ``gan.py`` is
loaded from git) against this checkout's GAN under several settings, all in one process, alternating,
the median of ``--repeats`` runs each; reported as ratios to the baseline, since other processes on a
shared machine inflate the absolute seconds (the load average is recorded).

(b) Quality in a budget: the chosen demo configuration (``--params``, JSON) trained on the first 55,000
training images with ``--time-budget`` seconds on ``--threads`` threads, seed ``--seed``; the last
5,000 training images are the validation set (the test split is never read). Scored in the in-project
classifier's feature space (``--classifier``, a saved ``Classifier``): the Fréchet distance
("FD-classifier", not FID) of ``--samples`` samples (an equal share per class) against as many
validation images, next to the real-vs-real floor (as many other training images) and a uniform-noise
baseline; the share of samples the classifier labels as their requested class; and the classifier's
class histogram of samples whose classes are drawn uniformly at random (the spread per class).

    OMP_NUM_THREADS=1 python benchmarks/gan_speed.py --parts speed,budget --threads 1 --time-budget 140
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.evaluation.generation import class_histogram, frechet_distance, mode_coverage
from mmwork.models.data import fashion_mnist, one_hot
from mmwork.models.generators import GAN
from mmwork.models.judges import Classifier

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gan_speed.json"
BASELINE = "d8da0bc"  # the GAN before issue 21: three discriminator passes a step, oneDNN on every layer
SPEED_VARIANTS = {"baseline, batch 64": ("baseline", {"batch_size": 64}),
                  "new, batch 64": ("new", {"batch_size": 64}),
                  "new, batch 128": ("new", {"batch_size": 128}),
                  "new, batch 256": ("new", {"batch_size": 256})}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _baseline_class(commit: str):
    """The ``GAN`` class of ``mmwork/models/generators/gan.py`` at ``commit``, loaded as its own module."""
    source = subprocess.run(["git", "show", f"{commit}:mmwork/models/generators/gan.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = Path("/tmp") / f"gan_baseline_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"gan_baseline_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the config's annotations through it
    spec.loader.exec_module(module)
    return module.GAN


def speed(args) -> dict:
    torch.set_num_threads(1)
    data = fashion_mnist("train", limit=args.speed_images)
    x, c = data.images, one_hot(data.labels, 10)
    classes = {"baseline": _baseline_class(args.baseline), "new": GAN}
    seconds = {name: [] for name in SPEED_VARIANTS}
    loads = [_uptime()]
    for _ in range(args.repeats):
        for name, (which, params) in SPEED_VARIANTS.items():
            model = classes[which](device="cpu", epochs=1, condition_dim=10, **params)
            started = time.perf_counter()
            model.fit(x, c)
            seconds[name].append(time.perf_counter() - started)
        loads.append(_uptime())
    base = statistics.median(seconds["baseline, batch 64"])
    rows = {name: {"params": SPEED_VARIANTS[name][1], "code": SPEED_VARIANTS[name][0],
                   "median_s": statistics.median(s), "images_per_s": len(x) / statistics.median(s),
                   "ratio_to_baseline": base / statistics.median(s), "runs_s": s} for name, s in seconds.items()}
    for name, row in rows.items():
        print(f"{name:22s} {row['images_per_s']:7.0f} images/s  x{row['ratio_to_baseline']:.2f}", flush=True)
    return {"protocol": f"fit, 1 epoch, {len(x)} images, conditional, channels 32, 1 thread, median of {args.repeats} "
                        f"alternating runs; baseline = gan.py at {args.baseline}",
            "uptime": loads, "variants": rows}


def budget(args) -> dict:
    torch.set_num_threads(args.threads)
    data = fashion_mnist("train")
    x, y = data.images, data.labels
    train_x, train_c, valid = x[:55000], one_hot(y[:55000], 10), x[55000:]
    n = args.samples
    classifier = Classifier.load(args.classifier, device="cpu")
    space = lambda images: classifier.features(images).double().numpy()  # noqa: E731
    real = space(valid[:n])
    floor_rows = torch.randperm(55000, generator=torch.Generator().manual_seed(args.seed))[:n]
    floor = frechet_distance(space(train_x[floor_rows]), real)
    noise = frechet_distance(space(torch.rand((n, 1, 28, 28), generator=torch.Generator().manual_seed(args.seed))),
                             real)
    params = json.loads(args.params)
    load_before = _uptime()
    started = time.perf_counter()
    model = GAN(device="cpu", condition_dim=10, seed=args.seed, **params).fit(train_x, train_c)
    fit_s = time.perf_counter() - started
    load_after = _uptime()
    wanted = torch.arange(n) % 10
    samples = model.sample(n, one_hot(wanted, 10), seed=args.seed + 1)
    fd = frechet_distance(space(samples), real)
    accuracy = float((classifier.predict(samples).cpu() == wanted).double().mean())
    per_class = [float((classifier.predict(samples[wanted == k]).cpu() == k).double().mean()) for k in range(10)]
    drawn = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(args.seed + 2))
    shares = class_histogram(classifier.predict(model.sample(n, one_hot(drawn, 10), seed=args.seed + 3)).cpu(), 10)
    verdict = mode_coverage(shares)
    out = {"protocol": f"trained on training images 0-54,999 with time_budget {args.time_budget} s on {args.threads} "
                       f"thread(s), seed {args.seed}; {n} samples (equal share per class) against {n} validation "
                       "images (training images 55,000-59,999; the test split is never read) in the in-project "
                       f"classifier's feature space ({args.classifier}); floor: {n} other training images; noise: "
                       f"{n} uniform-noise images",
           "params": params | {"time_budget": args.time_budget}, "threads": args.threads, "seed": args.seed,
           "samples": n, "fit_s": round(fit_s, 1), "epochs_run": len(model.history_),
           "images_per_s": [round(h["images_per_s"]) for h in model.history_],
           "uptime": [load_before, load_after],
           "fd_classifier": fd, "fd_classifier_floor": floor, "fd_classifier_noise": noise,
           "fd_over_noise": fd / noise, "fd_over_floor": fd / floor, "target_fd_at_most": noise / 10,
           "conditional_accuracy": accuracy, "per_class_conditional_accuracy": per_class,
           "uniform_class_shares": np.round(shares, 4).tolist(), "spread_5_15_met": bool(verdict.covered)}
    print(json.dumps({k: v for k, v in out.items() if k != "protocol"}, indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="speed,budget")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--speed-images", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", default='{"batch_size": 128, "epochs": 20}')
    parser.add_argument("--time-budget", type=float, default=140.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", default=str(ROOT / "data/models/generators/fashion-mnist/classifier"))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()}}
    path = Path(args.output)
    before = json.loads(path.read_text()) if path.exists() else {}
    parts = args.parts.split(",")
    if "speed" in parts:
        out["speed"] = speed(args)
    if "budget" in parts:
        args.params = json.dumps(json.loads(args.params) | {"time_budget": args.time_budget})
        out["budget"] = budget(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(before | out, indent=1))


if __name__ == "__main__":
    main()
