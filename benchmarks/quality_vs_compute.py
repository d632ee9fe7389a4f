"""Quality against CPU-minutes for the image generators, side by side with pythae's VAE (issue 21).

Protocol: Fashion-MNIST's first 55,000 training images train, the last 5,000 validate
(``train_valid_split``); the test split is never read. Each model trains on all 55,000 under a budget
of ``--minutes`` CPU-minutes of its own process (``time_budget`` with ``budget_clock="cpu"``: the
clock counts this process's CPU-seconds, so the figure does not depend on the machine's load), one
torch thread (``--threads``), ``epochs=1000`` so only the budget stops it; mmwork's loop stops after
the last whole epoch that fits, so a model may overrun its budget by up to one epoch's remainder:
the CPU-seconds it actually used are recorded and the figures plot against them.

Scores, on validation data only:
- VAEs: the importance-sampled NLL (nats per image, ``--k`` samples) of the first ``--nll-images``
  validation images; pythae's with its own ``get_nll``.
- conditional models (cvae, gan): the share of ``--samples`` samples (as many per class) that a
  judge classifier labels as the requested class ("conditional accuracy"), and the Fréchet distance
  between samples and as many validation images in that classifier's 128-d feature space
  (FD-classifier: our own extractor, never FID), next to its floor (training images against the
  validation images) and uniform noise; the unconditional VAE: the spread of the judge's labels over
  its samples (the least and most frequent class share).
  The judge is a ``Classifier`` (3 epochs) trained on the same 55,000 images only.

pythae 0.1.2 runs in its own venv (``bash benchmarks/pythae_env.sh``) through
``benchmarks/pythae_runner.py --budget``: its ``VAE`` with its MNIST networks, BCE and Adam 1e-3,
batch 100, in a plain step loop that stops when its process has used the same CPU-seconds (pythae's
trainer stops only at epoch ends, and one epoch of its 17M-parameter network takes longer than the
smallest budgets). Seeds and budgets alternate models (A B C, B C A, ...); medians over seeds.

    bash benchmarks/pythae_env.sh
    python benchmarks/quality_vs_compute.py --minutes 1 3 --seeds 0 1 2 --out benchmarks/results/quality_vs_compute.json
    python benchmarks/quality_vs_compute.py --plot docs/quality_vs_compute.png   # the figure, from the JSON
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
PYTHAE = Path(os.environ.get("PYTHAE_VENV", HERE / ".venvs" / "pythae")) / "bin" / "python"
MODELS = ("vae", "cvae", "gan", "pythae-vae")


def load_data():
    from mmwork.models.data import fashion_mnist
    from mmwork.models.data.images import train_valid_split
    return train_valid_split(fashion_mnist("train"))


def judge(train, path: Path):
    """The classifier that labels samples and gives the feature space: trained once on the 55,000."""
    from mmwork.models.judges import Classifier
    from mmwork.models.persistence import load
    if path.exists():
        return load(path)
    model = Classifier(epochs=3, device="cpu", seed=0).fit(train.images, train.labels)
    model.save(path)
    return model


def score_images(samples, wanted, clf, valid) -> dict:
    from mmwork.evaluation.generation.distances import frechet_distance
    n = len(samples)
    labels = clf.predict(samples)
    share = np.bincount(labels.numpy(), minlength=10) / n
    out = {"fd_classifier": frechet_distance(clf.features(samples).numpy(), clf.features(valid.images[:n]).numpy()),
           "class_share_min": float(share.min()), "class_share_max": float(share.max())}
    if wanted is not None:
        out["conditional_accuracy"] = float((labels == wanted).float().mean())
    return out


def train_mmwork(name: str, minutes: float, seed: int, train, valid, clf, args) -> dict:
    from mmwork.models.data import one_hot
    from mmwork.models.generators import GAN, VAE
    common = {"epochs": 1000, "time_budget": minutes * 60, "budget_clock": "cpu", "seed": seed, "device": "cpu"}
    c = one_hot(train.labels, 10)
    started = time.process_time()
    if name == "vae":
        model = VAE(**common).fit(train.images, valid=valid.images[:2000])
    elif name == "cvae":
        model = VAE(condition_dim=10, **common).fit(train.images, c, valid=(valid.images[:2000], one_hot(valid.labels[:2000], 10)))
    else:
        model = GAN(condition_dim=10, **common).fit(train.images, c)
    cpu = time.process_time() - started
    row = {"model": name, "minutes": minutes, "seed": seed, "cpu_s": cpu, "epochs": len(model.history_),
           "best_epoch": model.best_epoch_}
    n = args.samples
    wanted = None if name == "vae" else torch.arange(n) % 10
    samples = model.sample(n, None if wanted is None else one_hot(wanted, 10), seed=seed + 1)
    row |= score_images(samples, wanted, clf, valid)
    if name in ("vae", "cvae"):
        x = valid.images[:args.nll_images]
        cond = None if name == "vae" else one_hot(valid.labels[:args.nll_images], 10)
        row["valid_nll"] = float(model.importance_nll(x, cond, k=args.k).mean())
    return row


def train_pythae(minutes: float, seed: int, train, valid, args) -> dict:
    if not PYTHAE.exists():
        raise SystemExit(f"no pythae venv at {PYTHAE}: run `bash benchmarks/pythae_env.sh` first")
    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/train.npy", train.images.numpy())
        np.save(f"{folder}/valid.npy", valid.images[:args.nll_images].numpy())
        np.save(f"{folder}/test.npy", valid.images[:0].numpy())  # no test images: this benchmark never reads them
        json.dump({"seed": seed, "latent": 16, "lr": 1e-3, "batch_size": 100, "epochs": 1000, "k": args.k,
                   "threads": args.threads, "budget": minutes * 60, "samples": args.samples},
                  open(f"{folder}/args.json", "w"))
        subprocess.run([str(PYTHAE), str(HERE / "pythae_runner.py"), folder], check=True)
        result = json.load(open(f"{folder}/result.json"))
        samples = torch.from_numpy(np.load(f"{folder}/samples.npy"))
    return {"model": "pythae-vae", "minutes": minutes, "seed": seed, "cpu_s": result["fit_cpu_s"],
            "epochs": result["epochs_done"], "valid_nll": float(np.mean(result["valid_nll_per_image"])),
            "library": result["library"]} | score_images(samples, None, args.clf, valid)


def floors(train, valid, clf, n: int) -> dict:
    from mmwork.evaluation.generation.distances import frechet_distance
    real = clf.features(valid.images[:n]).numpy()
    noise = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return {"fd_classifier_floor": frechet_distance(clf.features(train.images[:n]).numpy(), real),
            "fd_classifier_noise": frechet_distance(clf.features(noise).numpy(), real),
            "valid_accuracy_of_judge": float((clf.predict(valid.images) == valid.labels).float().mean())}


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for key in sorted({(r["model"], r["minutes"]) for r in rows}):
        group = [r for r in rows if (r["model"], r["minutes"]) == key]
        metrics = [k for k in group[0] if isinstance(group[0][k], float) and k not in ("minutes",)]
        out.append({"model": key[0], "minutes": key[1], "seeds": len(group)}
                   | {k: statistics.median(r[k] for r in group) for k in metrics})
    return out


COLOURS = {"vae": "tab:blue", "cvae": "tab:orange", "gan": "tab:green", "pythae-vae": "tab:red"}


def plot(result: dict, path: str, text: dict | None = None) -> None:
    """One panel per measure: each model's runs (dots) and seed medians (lines) against the CPU-minutes
    they used, with the floor and the noise baseline where they apply; with ``text``
    (``results/text_speed.json``), a last panel: the Austen LSTM's test perplexity per epoch against its
    cumulative CPU-minutes, next to the fair Kneser-Ney 5-gram."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("valid_nll", "validation NLL, nats/image (lower is better)", ("vae", "cvae", "pythae-vae")),
              ("conditional_accuracy", "conditional accuracy (judge's labels)", ("cvae", "gan")),
              ("fd_classifier", "FD in the judge's feature space (lower is better)", ("vae", "cvae", "gan", "pythae-vae"))]
    fig, axes = plt.subplots(1, len(panels) + bool(text), figsize=(4.6 * (len(panels) + bool(text)), 3.6))
    for ax, (metric, title, models) in zip(axes, panels):
        for model in models:
            rows = [r for r in result["rows"] if r["model"] == model and metric in r]
            if not rows:
                continue
            colour = COLOURS[model]
            ax.scatter([r["cpu_s"] / 60 for r in rows], [r[metric] for r in rows], s=12, alpha=0.5, color=colour)
            medians = sorted((m for m in result["medians"] if m["model"] == model and metric in m), key=lambda m: m["minutes"])
            ax.plot([m["cpu_s"] / 60 for m in medians], [m[metric] for m in medians], marker="o", label=model, color=colour)
        if metric == "fd_classifier":
            ax.axhline(result["baselines"]["fd_classifier_floor"], ls="--", c="grey", lw=1, label="floor (real vs real)")
            ax.axhline(result["baselines"]["fd_classifier_noise"] / 10, ls=":", c="black", lw=1, label="noise / 10")
            ax.set_yscale("log")
        if metric == "conditional_accuracy":
            ax.axhline(result["baselines"]["valid_accuracy_of_judge"], ls="--", c="grey", lw=1, label="real images")
            ax.axhline(0.1, ls=":", c="black", lw=1, label="chance")
        ax.set(title=title, xlabel="CPU-minutes used (one thread)", xscale="log")
    if text:
        ax, curve = axes[-1], text["full_curve"]["curve"]
        ax.plot([c["cpu_s"] / 60 for c in curve], [c["test"] for c in curve], marker="o", color="tab:purple",
                label="LSTM 128/256, adaptive softmax")
        ax.axhline(70.51, ls="--", c="grey", lw=1, label="fair Kneser-Ney 5-gram")
        ax.set(title="Austen test perplexity per BPE piece (4,000)", xlabel="CPU-minutes used (one thread)")
    for ax in axes:
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Fashion-MNIST: trained on 55,000 images, scored on the 5,000 validation images, "
                 f"{result['samples']} samples; dots: seeds, lines: medians", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--minutes", nargs="+", type=float, default=[1, 3, 10])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--nll-images", type=int, default=200)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--out", default=str(HERE / "results" / "quality_vs_compute.json"))
    parser.add_argument("--plot", metavar="PNG", help="draw the figure from --out's JSON and stop")
    args = parser.parse_args()
    out = Path(args.out)
    if args.plot:
        text = HERE / "results" / "text_speed.json"
        return plot(json.loads(out.read_text()), args.plot, json.loads(text.read_text()) if text.exists() else None)
    torch.set_num_threads(args.threads)
    done = json.loads(out.read_text()) if out.exists() else {"rows": []}
    train, valid = load_data()
    args.clf = judge(train, HERE / ".cache" / "judge-55k")
    rows = done["rows"]
    plan = [(m, s) for m in args.minutes for s in args.seeds]
    for i, (minutes, seed) in enumerate(plan):
        order = args.models[i % len(args.models):] + args.models[:i % len(args.models)]  # alternate who goes first
        for name in order:
            if any((r["model"], r["minutes"], r["seed"]) == (name, minutes, seed) for r in rows):
                continue  # kept from an earlier run into the same file
            load = os.getloadavg()[0]
            row = train_pythae(minutes, seed, train, valid, args) if name == "pythae-vae" else \
                train_mmwork(name, minutes, seed, train, valid, args.clf, args)
            row["load_1min"] = load
            rows.append(row)
            print(json.dumps(row), flush=True)
            result = {"protocol": __doc__.split("Scores,")[0].strip(), "machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                      "samples": args.samples, "nll_images": args.nll_images, "k": args.k,
                      "baselines": floors(train, valid, args.clf, args.samples), "rows": rows, "medians": summarise(rows)}
            out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
