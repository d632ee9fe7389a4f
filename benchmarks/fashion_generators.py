"""Fashion-MNIST generators against issue 11's targets, in one run, written to JSON.

Trains the in-project classifier (its test accuracy, and its 128-d penultimate layer as the feature
space), a conditional GAN and a conditional VAE on the 60,000 training images, then reports for each
generator, on ``--samples`` samples (an equal share per class): the share the classifier recognises as
their requested class, and the Fréchet distance to the test images in the classifier's feature space,
next to its real-vs-real floor (training vs test images, same counts) and a uniform-noise baseline.
This distance is "FD-classifier", never FID: it is not comparable with published Inception figures.

    python benchmarks/fashion_generators.py --classifier-epochs 8 --gan-epochs 6 --vae-epochs 3

Needs the store's fashion-mnist table (``mmwork data get fashion-mnist``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from mmwork.evaluation.generation import frechet_distance
from mmwork.generators import GAN, VAE, Classifier, fashion_mnist, one_hot

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_generators.json"


def _timed(fit):
    started = time.perf_counter()
    model = fit()
    return model, round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier-epochs", type=int, default=8)
    parser.add_argument("--gan-epochs", type=int, default=6)
    parser.add_argument("--gan-channels", type=int, default=32)
    parser.add_argument("--vae-epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--train-limit", type=int, help="only the first N training images (a smoke run)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = fashion_mnist("train", limit=args.train_limit), fashion_mnist("test")
    condition = one_hot(train.labels, 10)
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                       "load_average_at_start": os.getloadavg()},
           "protocol": __doc__.split("\n\n")[1].replace("\n", " "), "samples": args.samples,
           "train_images": len(train.images), "test_images": len(test.images)}

    classifier, seconds = _timed(lambda: Classifier(epochs=args.classifier_epochs, seed=0).fit(train.images, train.labels))
    out["classifier"] = {"epochs": args.classifier_epochs, "fit_s": seconds,
                         "test_accuracy": classifier.accuracy(test.images, test.labels)}
    wanted = torch.arange(args.samples) % 10
    real = classifier.features(test.images[:args.samples])
    floor = frechet_distance(classifier.features(train.images[:len(real)]), real)
    noise = torch.rand(len(real), 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out["fd_classifier"] = {"real_vs_real_floor": floor, "uniform_noise_baseline": frechet_distance(classifier.features(noise), real),
                            "counts": f"{len(real)} vs {len(real)}"}

    fits = {"gan": lambda: GAN(epochs=args.gan_epochs, channels=args.gan_channels, condition_dim=10, seed=0),
            "vae": lambda: VAE(epochs=args.vae_epochs, condition_dim=10, seed=0)}
    for name, make in fits.items():
        model, seconds = _timed(lambda: make().fit(train.images, condition))
        samples = model.sample(args.samples, one_hot(wanted, 10), seed=1)
        predicted = classifier.predict(samples)
        out[name] = {"params": model.get_params(), "fit_s": seconds,
                     "images_per_s": round(len(train.images) * len(model.history_) / seconds, 1),
                     "conditional_accuracy": float((predicted == wanted).double().mean()),
                     "per_class_accuracy": [round(float((predicted[wanted == k] == k).double().mean()), 3)
                                            for k in range(10)],
                     "fd_classifier_vs_test": frechet_distance(classifier.features(samples), real)}
        print(name, json.dumps(out[name]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1, default=str))


if __name__ == "__main__":
    main()
