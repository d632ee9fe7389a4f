"""Score a trained generator's samples: the image table (distances, neighbours, memorisation, classes,
likelihoods) or the sound report, next to the real-vs-real floor and a noise baseline.

>>> report = evaluate("fashion-mnist", "cvae", n=2000)                          # doctest: +SKIP
>>> report.metrics["conditional_accuracy"]                                      # doctest: +SKIP
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mmwork.apps.generate.data import request, training_condition
from mmwork.apps.generate.folders import load_with_info
from mmwork.apps.generate.registry import SCORER, ModelSpec, spec
from mmwork.apps.generate.training import classifier, progress_log
from mmwork.core.errors import MmworkError

LABEL_METRICS = ("conditional_accuracy", "classes_present", "min_class_share", "max_class_share")


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
    generator, recorded = load_with_info(dataset, model, device)
    with progress_log(progress):
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
    rows, names = request(found, model, n, None, recorded["classes"])
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
    x, c = test.images[:m], training_condition(found.condition, test.labels[:m], classes)
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


def audio_recognition(dataset: str, model: str = "audio-vae", n: int | None = None, *, requests: str = "balanced",
                      seed: int = 0, vocoder: bool = True, n_iter: int = 32, device: str = "auto") -> dict:
    """Whether a saved category-conditioned audio generator's samples sound like the category they
    were asked for, by the saved in-project audio classifier (a judge trained on real training
    patches, early-stopped on held-out training clips, never shown the generator's samples or the
    test clips). It trains nothing: train both first (``train(dataset, "audio-classifier")``,
    ``train(dataset, "audio-vae")``). The figures are :func:`recognition`'s on the test clips.

    >>> audio_recognition("instrument-samples")["recognised"]                  # doctest: +SKIP
    """
    from mmwork.apps.generate.folders import info, load
    from mmwork.apps.generate.registry import train_command
    from mmwork.models.data import audio_clips
    found = spec(dataset, model)
    if found.data != "audio" or found.condition != "class":
        raise MmworkError(f"audio_recognition scores a category-conditioned audio generator, not {model}")
    scorer_name = SCORER["audio"]
    if info(dataset, scorer_name) is None:
        raise MmworkError(f"no saved {scorer_name} for {dataset}; train it first: "
                          f"{train_command(dataset, scorer_name)}")
    generator, _ = load_with_info(dataset, model, device)
    scorer = load(dataset, scorer_name, device=device)
    test = audio_clips(dataset, "test", mel=generator.config.mel)
    return {"dataset": dataset, "model": model} | recognition(generator, scorer, test, n, requests=requests, seed=seed,
                                                               vocoder=vocoder, n_iter=n_iter)


def recognition(generator, scorer, real, n: int | None = None, *, requests: str = "balanced", seed: int = 0,
                vocoder: bool = True, n_iter: int = 32) -> dict:
    """The share of ``n`` conditioned samples of ``generator`` that ``scorer`` (an
    :class:`~mmwork.models.judges.AudioClassifier`) labels as the category asked for, next to the
    two figures that say what it means, on held-out ``real`` patches (``LabelledPatches``):

    - ``requests="balanced"`` (default ``n``: 4 per category): the categories in turn, so a generator
      that ignored its condition would score ``majority_share`` = 1/categories whatever the
      classifier's bias; ``real_recognised`` is the classifier's mean recall over the categories the
      real patches hold (balanced, like the requests);
    - ``"held-out"``: one sample per real patch (the first ``n``), for its category, so
      ``majority_share`` is the largest category's share of those patches (the score of a generator
      that always made that category's sound, heard by a classifier that always says it);
      ``real_recognised`` is the classifier's plain accuracy on them.

    ``real_recognised`` is the classifier's ceiling on real sound. With ``vocoder`` the samples and
    the real patches are heard first (Griffin-Lim, ``n_iter`` iterations, ``seed``; then analysed
    into patches again), as ``evaluate`` does; without it the classifier reads the patches.
    """
    import numpy as np

    from mmwork.models.data import one_hot
    from mmwork.models.data.audio import audio_to_patch, patches_to_audio
    if requests not in ("balanced", "held-out"):
        raise MmworkError(f"requests must be 'balanced' or 'held-out', got {requests!r}")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise MmworkError(f"n must be a positive integer or None, got {n!r}")
    classes, mel = list(generator.config.classes), generator.config.mel
    if list(scorer.config.classes) != classes or list(real.classes) != classes:
        raise MmworkError(f"the generator, the classifier and the real patches must share one category list; got "
                          f"{classes}, {list(scorer.config.classes)} and {list(real.classes)}")

    def heard(patches):
        if not vocoder:
            return patches
        sound = patches_to_audio(patches, mel, n_iter=n_iter, seed=seed)
        return torch.from_numpy(np.stack([audio_to_patch(y, mel.sr, mel) for y in sound]))

    k, labels = len(classes), real.labels
    if requests == "balanced":
        n = 4 * k if n is None else n
        wanted, kept = torch.arange(n) % k, labels
    else:
        n = len(labels) if n is None else min(n, len(labels))
        wanted = kept = labels[:n]
    real_hit = (scorer.predict(heard(real.patches[:len(kept)])).cpu() == kept).double()
    present = kept.unique()
    real_share = float(torch.stack([real_hit[kept == c].mean() for c in present]).mean()) \
        if requests == "balanced" else float(real_hit.mean())
    samples = generator.sample(n, one_hot(wanted, k), seed=seed).cpu()
    hit = (scorer.predict(heard(samples)).cpu() == wanted).double()
    counts = torch.bincount(wanted, minlength=k)
    return {"requests": requests, "samples": n, "seed": seed,
            "vocoder": f"Griffin-Lim, {n_iter} iterations" if vocoder else None,
            "recognised": float(hit.mean()), "majority_share": float(counts.max() / n),
            "real_recognised": real_share, "real_patches": len(kept), "real_categories": len(present),
            "real_majority_share": float(torch.bincount(kept).max() / len(kept)),
            "by_category": {c: float(hit[wanted == i].mean()) for i, c in enumerate(classes) if counts[i]}}
