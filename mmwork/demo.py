"""The main job, end to end on the default data: ``mmwork demo`` (``make demo``).

Each step prints what it did; a step that fails stops the demo with a non-zero exit.
"""
from __future__ import annotations

import time

from mmwork import datasets
from mmwork.store import list_tables

DEMO_DATASETS = ["movielens-100k", "fashion-mnist", "speech-prompts", "instrument-samples"]


def run_demo() -> None:
    started = time.perf_counter()
    print("== 1. data sets: fetch and write canonical tables ==")
    for name in DEMO_DATASETS:
        result = datasets.get(name)
        counts = ", ".join(f"{table} {rows:,}" for table, rows in result["tables"].items())
        took = "cached" if result["cached"] else f"{result['seconds']} s"
        print(f"  {name:<20} {counts}  ({took})")
    print("\n== summary: tables under data/processed ==")
    print(list_tables().drop(columns=["schema", "path"]).to_string(index=False))
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
