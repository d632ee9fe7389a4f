"""The category-conditioned audio VAE on speech-prompts (or instrument-samples), with every figure next to
its floor, in one run, to JSON.

Clips come from the store, cut into log-mel patches (``audio_clips``; at most ``--max-patches`` per clip),
split by a hash of the item_id: 20% of the clips are the test set; of the rest, 15% (another hash) are
held out for early stopping of both models. The in-project ``AudioClassifier`` is trained on the other
clips' patches (its test accuracy reported), then the ``AudioVAE`` (category one-hot condition, Gaussian
likelihood, KL warm-up). ``audio_report`` then gives, on the test patches: ELBO and importance-sampled NLL
(nats per patch, k draws), both of the conditional log p(x|c), c the patch's category (not log p(x)); FD-mfcc-stats (the feature pipeline's ``audio_features`` mfcc_stats with
n_mfcc 13: 78-d) of as many samples as test patches, conditioned on the test patches' categories, against
the real test segments, next to the real floor (as many training segments), the vocoder floor (those
training patches through Griffin-Lim) and a noise baseline (uniform patches through Griffin-Lim);
conditional accuracy (samples' Griffin-Lim sound re-analysed, labelled by the classifier) next to the
classifier's accuracy on the real test patches and on their Griffin-Lim round trip; MCD of
reconstructions next to the Griffin-Lim round trip of the real patch (the vocoder's floor).

    python benchmarks/audio_generators.py --dataset speech-prompts --vae-epochs 60 --threads 2

Needs the store (``mmwork data get speech-prompts``). ``--train-limit N`` keeps the first N training
clips (a smoke run).
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

from mmwork.evaluation.audio_generation import audio_report
from mmwork.models.judges import AudioClassifier
from mmwork.models.generators import AudioVAE
from mmwork.models.data import audio_clips, hold_out, one_hot

RESULTS = Path(__file__).resolve().parent / "results" / "audio_generators.json"


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="speech-prompts", choices=["speech-prompts", "instrument-samples"])
    parser.add_argument("--vae-epochs", type=int, default=60)
    parser.add_argument("--classifier-epochs", type=int, default=30)
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--max-patches", type=int, default=8, help="patches per clip at most")
    parser.add_argument("--griffin-lim-iter", type=int, default=32)
    parser.add_argument("--samples", type=int, help="samples (and training segments for the floors); default: as "
                        "many as test patches")
    parser.add_argument("--nll-k", type=int, default=100, help="importance samples per test patch")
    parser.add_argument("--train-limit", type=int, help="only the first N training clips (a smoke run)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    started = time.perf_counter()

    (train_all, test), load_s = _timed(lambda: (
        audio_clips(args.dataset, "train", limit=args.train_limit, max_patches=args.max_patches),
        audio_clips(args.dataset, "test", max_patches=args.max_patches)))
    train, valid = hold_out(train_all, 0.15)
    k = len(train.classes)
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                       "cpus": os.cpu_count(), "cuda": torch.cuda.is_available(),
                       "load_average_at_start": os.getloadavg()},
           "protocol": " ".join(__doc__.split("\n\n")[1].split()), "dataset": args.dataset,
           "mel": train.mel.model_dump(), "classes": train.classes,
           "clips": {"train": len(set(train.item_ids)), "valid": len(set(valid.item_ids)),
                     "test": len(set(test.item_ids))},
           "patches": {"train": len(train.patches), "valid": len(valid.patches), "test": len(test.patches)},
           "test_patches_per_class": np.bincount(test.labels.numpy(), minlength=k).tolist(), "load_s": load_s}
    print("data", json.dumps(out["clips"] | {"patches": out["patches"]}), flush=True)

    classifier, seconds = _timed(lambda: AudioClassifier(mel=train.mel, classes=train.classes, seed=0,
                                                         epochs=args.classifier_epochs)
                                 .fit(train.patches, train.labels, valid=(valid.patches, valid.labels)))
    out["classifier"] = {"params": classifier.get_params(), "epochs_run": len(classifier.history_),
                         "best_epoch": classifier.best_epoch_, "fit_s": seconds,
                         "test_accuracy": classifier.accuracy(test.patches, test.labels),
                         "test_majority_share": float(np.bincount(test.labels.numpy()).max() / len(test.labels))}
    print("classifier", json.dumps(out["classifier"], default=str), flush=True)

    vae, seconds = _timed(lambda: AudioVAE(mel=train.mel, classes=train.classes, seed=0, epochs=args.vae_epochs,
                                           latent=args.latent)
                          .fit(train.patches, one_hot(train.labels, k),
                               valid=(valid.patches, one_hot(valid.labels, k))))
    out["vae"] = {"params": vae.get_params(), "epochs_run": len(vae.history_), "best_epoch": vae.best_epoch_,
                  "fit_s": seconds, "patches_per_s": round(len(train.patches) * len(vae.history_) / seconds, 1),
                  "history": vae.history_}
    print("vae", json.dumps({k: v for k, v in out["vae"].items() if k != "history"}, default=str), flush=True)

    report, seconds = _timed(lambda: audio_report(vae, test, classifier, clips_train=train_all, n=args.samples, seed=0,
                                                  n_iter=args.griffin_lim_iter, k=args.nll_k))
    out["report"] = report | {"report_s": seconds}
    out["total_s"] = round(time.perf_counter() - started, 1)
    out["load_average_at_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(out["report"], default=str))


if __name__ == "__main__":
    main()
