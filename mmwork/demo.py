"""The main job, end to end on the default data: ``mmwork demo`` (``make demo``).

Each step prints what it did; a step that fails stops the demo with a non-zero exit.
"""
from __future__ import annotations

import json
import os
import time

from mmwork import datasets
from mmwork.store import list_tables

DEMO_DATASETS = ["movielens-100k", "fashion-mnist", "speech-prompts", "instrument-samples"]
DEMO_REPORTS = [("01-features", {"image_limit": 2000}), ("02-recommenders", {}), ("04-explore", {})]
# (data set, modality, items limit): CNN features for all 70k images take ~2 h on 2 CPU cores,
# so the demo extracts the first 2,000; `mmwork extract fashion-mnist` does them all.
DEMO_EXTRACTIONS = [("movielens-100k", "text", None), ("fashion-mnist", "image", 2000),
                    ("speech-prompts", "audio", None), ("instrument-samples", "audio", None)]


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


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

    _step("3. reports: notebooks executed by Papermill (features, recommenders, exploration)")
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

    _step("summary: tables under data/processed")
    print(list_tables().drop(columns=["schema", "path"]).to_string(index=False))
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
