"""The main job, end to end on the default data: ``mmwork demo`` (``make demo``).

Each step prints what it did; a step that fails stops the demo with a non-zero exit.
"""
from __future__ import annotations

import json
import os
import time

from mmwork import datasets
from mmwork.store import list_tables

DEMO_IMAGES = 1000  # Fashion-MNIST images given CNN features (step 2) and explored by 01-features
DEMO_DATASETS = ["movielens-100k", "fashion-mnist", "speech-prompts", "instrument-samples"]
# 03-generators trains small image generators through mmwork.generate (saved under data/models/generators,
# where step 5 samples from them): 1,000 training images, 2 epochs, 300 samples scored. Its sound section
# is off here (scoring sound runs Griffin-Lim on five sets of test patches, minutes on 2 cores): step 5
# trains a small audio VAE itself and writes a few sounds. Full-size figures: benchmarks/fashion_generators.py
DEMO_GENERATORS = {"train_limit": 1000, "epochs": 2, "classifier_epochs": 3, "samples": 300, "effnet_samples": 0,
                   "likelihood_examples": 100, "nll_k": 10, "audio_dataset": None}
DEMO_AUDIO = {"dataset": "speech-prompts", "epochs": 3}
DEMO_REPORTS = [("01-features", {"image_limit": DEMO_IMAGES}), ("02-recommenders", {}), ("03-generators", DEMO_GENERATORS),
                ("04-explore", {})]
GENERATOR_METRICS = ("conditional_accuracy", "frechet_distance_classifier", "kid_classifier", "coverage_classifier",
                     "is_nll_nats", "test_accuracy")
# (data set, modality, items limit): CNN features for all 70k images take ~2 h on 2 CPU cores,
# so the demo extracts the first 1,000 (2,000 took 155 CPU-seconds; the generators needed the time);
# `mmwork extract fashion-mnist` does them all.
DEMO_EXTRACTIONS = [("movielens-100k", "text", None), ("fashion-mnist", "image", DEMO_IMAGES),
                    ("speech-prompts", "audio", None), ("instrument-samples", "audio", None)]


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _generators(metrics: dict, out, audio: dict | None = DEMO_AUDIO) -> None:
    """The generators' recorded figures as a model x metric table, then a grid of conditional samples
    and a few generated sounds from the saved models (what `mmwork generate sample` writes)."""
    import pandas as pd

    from mmwork import generate
    rows: dict[str, dict] = {}
    for key, value in metrics.items():
        name, _, metric = key.partition("/")
        if metric in GENERATOR_METRICS or (metric.startswith("frechet") and metric.endswith(("_floor", "_noise"))):
            rows.setdefault(name, {})[metric] = value
    if rows:
        print(pd.DataFrame(rows).T.round(4).to_string(na_rep="-"))
    if generate.info("fashion-mnist", "cvae"):
        wanted = [c for c in generate.info("fashion-mnist", "cvae")["classes"] for _ in range(8)]
        grid = generate.save_grid(generate.sample("fashion-mnist", "cvae", len(wanted), condition=wanted).data,
                                  out / "cvae-by-class.png", ncols=8)
        print(f"  cvae samples, one row per class: {grid}")
    if audio is None:
        return
    dataset = audio["dataset"]
    model = generate.train(dataset, "audio-vae", epochs=audio["epochs"], progress=False)
    classes = model.config.classes[:3]
    drawn = generate.sample(dataset, "audio-vae", len(classes), condition=classes)
    sounds = generate.save_samples(drawn, out / dataset)
    print(f"  audio-vae on {dataset}: {len(model.history_)} epochs, held-out -ELBO "
          f"{model.history_[-1].get('valid_loss', float('nan')):.1f} nats per patch; sounds "
          f"({', '.join(classes)}): {sounds[0].parent}")


def run_demo() -> None:
    from mmwork.features import extract
    started = time.perf_counter()
    _step("1. data sets: fetch and write canonical tables")
    for name in DEMO_DATASETS:
        result = datasets.get(name)
        counts = ", ".join(f"{table} {rows:,}" for table, rows in result["tables"].items())
        took = "cached" if result["cached"] else f"{result['seconds']} s"
        print(f"  {name:<20} {counts}  ({took})", flush=True)

    _step(f"2. features: Dask extraction into Parquet ({os.cpu_count()} local worker processes)")
    for name, modality, limit in DEMO_EXTRACTIONS:
        summary = extract(name, modality, limit=limit).iloc[0]
        print(f"  {name:<20} {modality:<6} rows {summary['rows']:>6,}  extracted {summary['extracted']:>6,}  "
              f"reused {summary['reused']:>6,}  errors {summary['errors']}  ({summary['seconds']} s)", flush=True)

    _step("3. reports: notebooks executed by Papermill (features, recommenders, generators, exploration)")
    from mmwork.reports import reports_dir, run_report
    runs = {}
    for notebook, params in DEMO_REPORTS:
        runs[notebook] = run_report(notebook, params, progress=False)
        row = runs[notebook]
        print(f"  {notebook:<16} {row['status']}  {row['duration_s']:>6.1f} s  {reports_dir() / row['html']}", flush=True)
    print(f"  index: {reports_dir() / 'index.html'}")

    _step("4. recommenders on movielens-100k (from 02-recommenders; RecBole protocol: every rating a positive, "
          "per-user random 8:1:1, full ranking, K=10)")
    metrics = json.loads(runs["02-recommenders"]["metrics"])
    for name, value in metrics.items():
        if name.endswith("ndcg@10"):
            print(f"  {name:<32} {value:.4f}")

    _step("5. generators (images trained and scored by 03-generators: "
          f"{DEMO_GENERATORS['train_limit']:,} training images, {DEMO_GENERATORS['samples']} samples vs as many "
          "test images, distances in the in-project classifier's feature space, never FID; a small audio VAE)")
    _generators(json.loads(runs["03-generators"]["metrics"]), reports_dir() / "generators")

    _step("summary: tables under data/processed")
    print(list_tables().drop(columns=["schema", "path"]).to_string(index=False))
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
