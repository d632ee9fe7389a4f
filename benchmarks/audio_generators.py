"""The category-conditioned audio VAE (instrument-samples or speech-prompts): are its samples recognised as
the category asked for, and how far are they from their floors? The demo's configuration and the full-size
one, in one run each, to JSON.

Clips come from the store, cut into log-mel patches (``audio_clips``; at most 8 per clip), split by a hash
of the item_id: 20% of the clips are the test set; of the rest, 15% (another hash: ``hold_out``) are the
validation clips, the only held-out data early stopping and every choice of default saw. The judge, the
in-project ``AudioClassifier`` with its defaults, is trained on the other training clips' patches and
early-stopped on the validation ones (its validation and test accuracy reported); then the ``AudioVAE``
with the registry's defaults (``--param`` overrides) and a wall-clock ``time_budget``, for each seed.
``recognition`` (``mmwork.apps.generate.evaluation``) then scores its samples by the judge, after
Griffin-Lim and re-analysis (what a listener hears): ``balanced`` requests (the categories in turn, so a
generator that ignored its condition scores 1/categories, the majority share of the requests) and
``held-out`` requests (one per real patch, for its category; majority share = the largest category's
share), each next to the judge's figure on the real patches (its ceiling), on the validation clips and on
the test clips. For the first seed ``audio_report`` adds FD-mfcc-stats (78-d) of as many samples as test
patches (conditioned on their categories) against the real test segments, next to the Griffin-Lim floor
(real training patches through the vocoder), the real floor and a noise baseline; MCD; ELBO and IS-NLL.

    python benchmarks/audio_generators.py --config demo --threads 1     # the demo: 45 CPU-seconds of VAE training
    python benchmarks/audio_generators.py --config full --threads 1     # full size: 10 CPU-minutes of VAE training

Measured (instrument-samples, 1 thread, load 5-15; benchmarks/results/audio_generators.json): early stopping
on the validation clips ends training after 45-50 epochs (about 45 CPU-seconds; epoch 35-40 kept: the
259 training patches are overfitted after that), so the full configuration's 600 CPU-second budget is never
reached and its seed 0 is the demo's seed 0, bit for bit (CPU fits repeat exactly for a seed).

Needs the store (``mmwork data get instrument-samples``). The results file keeps one entry per
``--config`` (and data set).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mmwork.apps.generate.evaluation import recognition
from mmwork.apps.generate.registry import MODELS
from mmwork.evaluation.audio_generation import audio_report
from mmwork.models.data import audio_clips, hold_out, one_hot
from mmwork.models.generators import AudioVAE
from mmwork.models.judges import AudioClassifier

RESULTS = Path(__file__).resolve().parent / "results" / "audio_generators.json"
CONFIGS = {"demo": {"time_budget": 45, "seeds": [0, 1, 2]}, "full": {"time_budget": 600, "seeds": [0]}}


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="demo", choices=list(CONFIGS))
    parser.add_argument("--dataset", default="instrument-samples", choices=["speech-prompts", "instrument-samples"])
    parser.add_argument("--time-budget", type=float, help="seconds of VAE training (default: the config's)")
    parser.add_argument("--budget-clock", default="cpu", choices=["cpu", "wall"],
                        help="what the budget counts: CPU-seconds of this process (load-independent) or wall seconds")
    parser.add_argument("--seeds", type=int, nargs="+", help="VAE seeds (default: the config's)")
    parser.add_argument("--param", action="append", default=[], help="an AudioVAE parameter, NAME=JSON")
    parser.add_argument("--griffin-lim-iter", type=int, default=32)
    parser.add_argument("--nll-k", type=int, default=100, help="importance samples per test patch")
    parser.add_argument("--no-report", action="store_true", help="skip audio_report (FD-mfcc, MCD, NLL)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    config = CONFIGS[args.config]
    budget = args.time_budget or config["time_budget"]
    seeds = args.seeds or config["seeds"]
    params = MODELS["audio-vae"].defaults | {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    started = time.perf_counter()

    (train_all, test), load_s = _timed(lambda: (audio_clips(args.dataset, "train"), audio_clips(args.dataset, "test")))
    train, valid = hold_out(train_all, 0.15)
    k = len(train.classes)
    share = lambda y: float(np.bincount(y.numpy()).max() / len(y))  # noqa: E731
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                       "cpus": os.cpu_count(), "cuda": torch.cuda.is_available(), "load_average_at_start": _load()},
           "protocol": " ".join(__doc__.split("\n\n")[1].split()), "config": args.config, "dataset": args.dataset,
           "time_budget_s": budget, "budget_clock": args.budget_clock, "seeds": seeds,
           "mel": train.mel.model_dump(), "classes": train.classes,
           "clips": {"train": len(set(train.item_ids)), "valid": len(set(valid.item_ids)),
                     "test": len(set(test.item_ids))},
           "patches": {"train": len(train.patches), "valid": len(valid.patches), "test": len(test.patches)},
           "majority_share": {"valid": share(valid.labels), "test": share(test.labels)},
           "test_patches_per_class": np.bincount(test.labels.numpy(), minlength=k).tolist(), "load_s": load_s}
    print("data", json.dumps(out["clips"] | {"patches": out["patches"]}), flush=True)

    judge, seconds = _timed(lambda: AudioClassifier(mel=train.mel, classes=train.classes, seed=0)
                            .fit(train.patches, train.labels, valid=(valid.patches, valid.labels)))
    out["classifier"] = {"params": judge.get_params(), "epochs_run": len(judge.history_),
                         "best_epoch": judge.best_epoch_, "fit_s": seconds,
                         "valid_accuracy": judge.accuracy(valid.patches, valid.labels),
                         "test_accuracy": judge.accuracy(test.patches, test.labels)}
    print("classifier", json.dumps(out["classifier"], default=str), flush=True)

    runs = []
    for seed in seeds:
        load_before = _load()
        vae, seconds = _timed(lambda: AudioVAE(**(params | {"mel": train.mel, "classes": train.classes, "seed": seed,
                                                            "time_budget": budget, "budget_clock": args.budget_clock}))
                              .fit(train.patches, one_hot(train.labels, k),
                                   valid=(valid.patches, one_hot(valid.labels, k))))
        run = {"seed": seed, "fit_s": seconds, "load_before": load_before, "load_after": _load(),
               "epochs_run": len(vae.history_), "best_epoch": vae.best_epoch_,
               "patches_per_s": round(len(train.patches) * len(vae.history_) / seconds, 1),
               "valid_loss": vae.history_[vae.best_epoch_ - 1].get("valid_loss")}
        for split, clips in (("valid", valid), ("test", test)):
            for requests in ("balanced", "held-out"):
                run[f"{split}_{requests}"] = recognition(vae, judge, clips, requests=requests, seed=seed,
                                                         n_iter=args.griffin_lim_iter)
        print("vae", json.dumps({key: value for key, value in run.items()}, default=str), flush=True)
        runs.append(run | {"history": vae.history_})
        if seed == seeds[0]:
            out["vae_params"] = vae.get_params()
            first = vae
    out["runs"] = runs
    out["summary"] = {f"{split}_{requests}_{key}": float(np.median([r[f"{split}_{requests}"][key] for r in runs]))
                      for split in ("valid", "test") for requests in ("balanced", "held-out")
                      for key in ("recognised", "majority_share", "real_recognised")}
    print("summary (medians over seeds)", json.dumps(out["summary"]), flush=True)

    if not args.no_report:
        report, seconds = _timed(lambda: audio_report(first, test, judge, clips_train=train_all, seed=0,
                                                      n_iter=args.griffin_lim_iter, k=args.nll_k))
        out["report"] = report | {"report_s": seconds,
                                  "fd_over_vocoder_floor": report["fd_samples"] / report["fd_floor_vocoder"]}
        print("report", json.dumps(out["report"], default=str), flush=True)
    out["total_s"] = round(time.perf_counter() - started, 1)
    out["load_average_at_end"] = _load()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    previous = previous if "runs_by_config" in previous else {"runs_by_config": {}}
    previous["runs_by_config"][f"{args.config}/{args.dataset}"] = out
    args.output.write_text(json.dumps(previous, indent=1, default=str))


if __name__ == "__main__":
    main()
