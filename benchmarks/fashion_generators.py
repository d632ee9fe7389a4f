"""Fashion-MNIST generators against issue 11's targets: the whole measured image table, in one run, to JSON.

Trains the in-project classifier (its test accuracy; its penultimate layer is the "classifier" feature
space) and four generators on the training images with their classes' defaults (only the epochs are set
here): a conditional GAN, a conditional VAE, an unconditional VAE and an unconditional GAN. Conditional
models draw ``--samples`` samples, an equal share per class, and report the share the classifier
recognises as the requested class; unconditional ones draw as many and report the classifier's class
histogram with the mode-coverage verdict (all classes present, none below 5% nor above 15%). For every
model, against the 10,000 test images: Fréchet distance, KID (unbiased, mean +- std over 100 subsets of
1000) and precision/recall/density/coverage (k=5) in the classifier space on ``--samples`` vs as many test
images, and in the EfficientNet-Lite0 space on ``--effnet-samples``, each next to the real-vs-real floor
(training vs test images, same counts) and a uniform-noise baseline; memorisation: each sample's L2 pixel
distance to its nearest training image against the same for the test images. For the VAEs: test ELBO,
importance-sampled NLL (``--nll-k`` draws on the first ``--nll-images`` test images), reconstruction error
of the test images from their posterior means, active units; a conditional VAE's ELBO and NLL are of
log p(x|c), c the image's class (named ``_given_c``), and its ``is_nll_nats`` sums the class out. These Fréchet distances are "FD-classifier"
and "FD-effnet-lite0", never FID: they are not comparable with published Inception figures.

    python benchmarks/fashion_generators.py --classifier-epochs 8 --gan-epochs 10 --vae-epochs 20

Needs the store's fashion-mnist table (``mmwork data get fashion-mnist``) and, for the EfficientNet-Lite0
space, ``mmwork[cnn]`` (``--effnet-samples 0`` leaves it out).
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
import pandas as pd
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from mmwork.evaluation.generation import (CLASSIFIER, EFFNET, active_units, class_histogram, effnet_features,
                                          image_generation_table, image_spaces, mode_coverage)
from mmwork.models.generators import GAN, VAE
from mmwork.models.judges import Classifier
from mmwork.models.data import fashion_mnist, one_hot

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_generators.json"
MODELS = {  # name -> (class, conditional)
    "conditional GAN": (GAN, True), "conditional VAE": (VAE, True), "VAE": (VAE, False), "GAN": (GAN, False)}


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 1)


def _epochs(flag):
    return {} if flag is None else {"epochs": flag}


def _vae_metrics(model: VAE, test, condition, nll_images: int, k: int) -> dict:
    """Likelihood figures of a VAE on the test images, in nats per image, named for what they are: for
    a conditional VAE the ELBO and IS-NLL are of log p(x|c) (``_given_c``), c the image's own class, and
    ``is_nll_nats`` is -log p(x) with the class summed out (equal p(c)), the figure an unconditional
    VAE's ``is_nll_nats`` compares with."""
    part = None if condition is None else condition[:nll_images]
    (elbo, nll), seconds = _timed(lambda: (model.elbo(test.images, condition, seed=0),
                                           model.importance_nll(test.images[:nll_images], part, k=k, seed=0)))
    mu, _ = model.encode(test.images, condition)
    recon = model.decode(mu, condition).cpu()
    bce = F.binary_cross_entropy(recon.double().clamp(1e-6, 1 - 1e-6), test.images.double(), reduction="sum")
    given = "" if condition is None else "_given_c"
    out = {"likelihood": model.config.likelihood,
           "likelihood_of": "log p(x)" if condition is None else "log p(x|c), c the image's class (conditional)",
           f"test_elbo{given}_nats": float(elbo.mean()), "test_images_elbo": len(test.images),
           f"is_nll{given}_nats": float(nll.mean()), f"elbo{given}_on_nll_images_nats": float(elbo[:nll_images].mean()),
           "is_nll_k": k, "is_nll_images": nll_images,
           "reconstruction_mse_per_pixel": float(F.mse_loss(recon, test.images)),
           "reconstruction_bce_nats_per_image": float(bce) / len(test.images),
           "active_units": active_units(mu), "latent": model.config.latent, "likelihood_s": seconds}
    if condition is not None:
        marginal, seconds = _timed(lambda: model.marginal_nll(test.images[:nll_images], one_hot(torch.arange(10), 10),
                                                              k=k, seed=0))
        out |= {"is_nll_nats": float(marginal.mean()), "is_nll_marginal_s": seconds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier-epochs", type=int, help="default: the Classifier's own")
    parser.add_argument("--gan-epochs", type=int, help="both GANs; default: the GAN's own")
    parser.add_argument("--gan-channels", type=int, help="both GANs; default: the GAN's own")
    parser.add_argument("--vae-epochs", type=int, help="both VAEs; default: the VAE's own")
    parser.add_argument("--samples", type=int, default=10_000, help="per model, and test images they are scored on")
    parser.add_argument("--effnet-samples", type=int, default=2_000, help="per set in the EfficientNet-Lite0 "
                        "space (10,000 on a GPU); 0 leaves the space out")
    parser.add_argument("--nll-images", type=int, default=500, help="test images for the importance-sampled NLL")
    parser.add_argument("--nll-k", type=int, default=1_000, help="importance samples per image")
    parser.add_argument("--models", default=",".join(MODELS), help=f"a subset of: {', '.join(MODELS)}")
    parser.add_argument("--effnet-models", help="the models scored in the EfficientNet-Lite0 space (default: all "
                        "of --models; the floor and noise baseline always are)")
    parser.add_argument("--classifier", type=Path, help="a saved Classifier to load, or where to save the one "
                        "trained here (so parallel runs share one judge)")
    parser.add_argument("--train-limit", type=int, help="only the first N training images (a smoke run)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy's BLAS too: the metrics' matrix products
    models = [m.strip() for m in args.models.split(",")]
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown model {sorted(unknown)[0]!r}; choose from {', '.join(MODELS)}")
    effnet_models = models if args.effnet_models is None else [m.strip() for m in args.effnet_models.split(",")]
    if set(effnet_models) - set(models):
        parser.error(f"--effnet-models must name models of --models ({', '.join(models)})")

    train, test = fashion_mnist("train", limit=args.train_limit), fashion_mnist("test")
    condition = one_hot(train.labels, 10)
    out = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                       "cpus": os.cpu_count(), "cuda": torch.cuda.is_available(),
                       "load_average_at_start": os.getloadavg()},
           "protocol": " ".join(__doc__.split("\n\n")[1].split()), "samples": args.samples,
           "effnet_samples": args.effnet_samples, "train_images": len(train.images), "test_images": len(test.images)}

    if args.classifier and (args.classifier / "model.json").exists():
        classifier, seconds = Classifier.load(args.classifier), None
    else:
        classifier, seconds = _timed(lambda: Classifier(seed=0, **_epochs(args.classifier_epochs))
                                     .fit(train.images, train.labels))
        if args.classifier:
            classifier.save(args.classifier)
    predicted = classifier.predict(test.images).cpu()
    out["classifier"] = {"params": classifier.get_params(), "epochs_run": len(classifier.history_), "fit_s": seconds,
                         "test_accuracy": float((predicted == test.labels).double().mean()),
                         "per_class_test_accuracy": [round(float((predicted[test.labels == k] == k).double().mean()), 4)
                                                     for k in range(10)]}
    print("classifier", json.dumps(out["classifier"]), flush=True)

    wanted = torch.arange(args.samples) % 10
    samples = {}
    for name in models:
        cls, conditional = MODELS[name]
        params = dict(seed=0, condition_dim=10 if conditional else 0,
                      **_epochs(args.gan_epochs if cls is GAN else args.vae_epochs))
        if cls is GAN and args.gan_channels:
            params["channels"] = args.gan_channels
        model, seconds = _timed(lambda: cls(**params).fit(train.images, condition if conditional else None))
        drawn = model.sample(args.samples, one_hot(wanted, 10) if conditional else None, seed=1).cpu()
        predicted = classifier.predict(drawn).cpu()
        row = {"params": model.get_params(), "epochs_run": len(model.history_), "fit_s": seconds,
               "images_per_s": round(len(train.images) * len(model.history_) / seconds, 1),
               "history": model.history_}
        histogram = class_histogram(predicted, 10)
        if conditional:
            row["conditional_accuracy"] = float((predicted == wanted).double().mean())
            row["per_class_accuracy"] = [round(float((predicted[wanted == k] == k).double().mean()), 4)
                                         for k in range(10)]
        else:
            verdict = mode_coverage(histogram)
            row["class_histogram"] = [round(float(h), 4) for h in histogram]
            row["mode_coverage"] = {"covered": verdict.covered, "missing": verdict.missing, "below_5%": verdict.below,
                                    "above_15%": verdict.above}
        if cls is VAE:
            c_test = one_hot(test.labels, 10) if conditional else None
            row |= _vae_metrics(model, test, c_test, min(args.nll_images, len(test.images)), args.nll_k)
        out[name] = row
        samples[name] = drawn
        print(name, json.dumps({k: v for k, v in row.items() if k != "history"}, default=str), flush=True)
        del model

    spaces = image_spaces(classifier, effnet=args.effnet_samples > 0)
    common = dict(test=test.images, train=train.images, seed=0)
    tables, out["table_s"] = [], {}
    table, out["table_s"][CLASSIFIER] = _timed(lambda: image_generation_table(
        samples, spaces={CLASSIFIER: spaces[CLASSIFIER]}, n=args.samples, memorise=True, **common))
    tables.append(table)
    if args.effnet_samples:
        probe = test.images[:64]
        effnet_features(probe[:4])  # loads the model
        _, seconds = _timed(lambda: effnet_features(probe))
        out["effnet_images_per_s"] = {"device": "cuda" if torch.cuda.is_available() else "cpu",
                                      "threads": args.threads, "images_per_s": round(len(probe) / seconds, 2)}
        # a smoke run's few samples cannot carry a Fréchet distance in 1280 dimensions: KID and PRDC only
        metrics = ("FD", "KID", "prdc") if args.effnet_samples > effnet_features.dims else ("KID", "prdc")
        out["effnet_metrics"] = metrics
        table, out["table_s"][EFFNET] = _timed(lambda: image_generation_table(
            {k: v for k, v in samples.items() if k in effnet_models}, spaces={EFFNET: spaces[EFFNET]},
            n=args.effnet_samples, metrics=metrics, memorise=False,
            **common))
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    out["table_columns"] = list(table.columns)
    out["table"] = table.replace({np.nan: None}).to_dict(orient="records")
    out["machine"]["load_average_at_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1, default=str))
    wide = table.pivot_table(index=["feature_space", "source"], columns="metric", values="value", sort=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(wide.round(4).to_string())
    headline = {"classifier_test_accuracy": out["classifier"]["test_accuracy"]} | {
        name: {k: v for k, v in out[name].items() if k not in ("params", "history", "per_class_accuracy")}
        for name in models}
    print(json.dumps(headline, default=str))
    print("load average at the end:", out["machine"]["load_average_at_end"], "written to", args.output)


if __name__ == "__main__":
    main()
