"""Ad-hoc queries at 1M+ rows, side by side in one run.

A feature table is grown to >= 1M rows by replicating the real audio features of the speech-prompts
and instrument-samples clips (each copy gets new item ids and a `replica` number), written as
Parquet parts. Then, each variant in a fresh process (so peak memory is its own):
  1. projection + filter: `mmwork.open(columns, filters)` (pushdown) vs pandas reading the whole
     table and filtering in memory;
  2. nearest neighbours of one item over all vectors: `mmwork.similar` (block-wise on Dask) vs a
     brute-force NumPy version that loads every vector.

    python benchmarks/bench_query.py [--rows 1000000] [--repeats 3] [--out benchmarks/results/query.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FILTER = [("replica", "<", 100), ("category", "==", "digits")]
COLUMNS = ["item_id", "category", "duration_s"]
FEATURES = "audio:mfcc_stats"
QUERY_ITEM = "digits/7#0"


def build(root: Path, rows: int) -> None:
    import pandas as pd
    import pyarrow as pa
    from mmwork import datasets, read_table
    from mmwork.features import extract
    from mmwork.store import write_table
    for name in ("speech-prompts", "instrument-samples"):
        datasets.get(name)
        extract(name, "audio", scheduler="processes", progress=False)
    blocks = []
    for name, label in (("speech-prompts", "category"), ("instrument-samples", "label")):
        feats = read_table(name, "features/audio")[["item_id", "mfcc_stats"]]
        meta = read_table(name, "items")[["item_id", label, "duration_s"]].rename(columns={label: "category"})
        blocks.append(feats.merge(meta, on="item_id"))
    base = pd.concat(blocks, ignore_index=True)
    vectors = np.stack(base["mfcc_stats"].to_numpy()).astype(np.float32)
    copies = -(-rows // len(base))
    schema = pa.schema([("item_id", pa.string()), ("replica", pa.int32()), ("category", pa.string()),
                        ("duration_s", pa.float64()), ("mfcc_stats", pa.list_(pa.float32(), vectors.shape[1]))])
    folder = root / "processed" / "bench" / "features" / "audio"
    per_part = max(1, 100_000 // len(base))
    rng = np.random.default_rng(0)
    for part, start in enumerate(range(0, copies, per_part)):
        reps = range(start, min(start + per_part, copies))
        # 5% of each dimension's spread: copies stay near their original but rank unambiguously
        noise = (rng.normal(0, 0.05, (len(reps) * len(base), vectors.shape[1])) * vectors.std(0)).astype(np.float32)
        table = pa.table({
            "item_id": [f"{i}#{r}" for r in reps for i in base["item_id"]],
            "replica": np.repeat(np.asarray(list(reps), np.int32), len(base)),
            "category": np.tile(base["category"].to_numpy(), len(reps)),
            "duration_s": np.tile(base["duration_s"].to_numpy(), len(reps)),
            "mfcc_stats": pa.FixedSizeListArray.from_arrays(
                (np.tile(vectors, (len(reps), 1)) + noise).ravel(), vectors.shape[1]),
        }, schema=schema)
        write_table(table, folder / f"part-{part:05d}.parquet", schema=schema, producer="bench_query")
    items = pa.table({"item_id": [f"{i}#{r}" for r in range(min(copies, 1)) for i in base["item_id"]]})
    write_table(items, root / "processed" / "bench" / "items.parquet")


def variant(name: str) -> dict:
    """Run one variant in this process; return its result summary."""
    import pandas as pd
    import pyarrow.parquet as pq
    import mmwork
    from mmwork.store import table_path
    folder = table_path("bench", "features/audio")
    started = time.perf_counter()
    if name == "mmwork_query":
        result = mmwork.open("bench", "features/audio", columns=COLUMNS, filters=FILTER).compute()
        answer = len(result)
    elif name == "pandas_query":
        frame = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))], ignore_index=True)
        result = frame[(frame["replica"] < 100) & (frame["category"] == "digits")][COLUMNS]
        answer = len(result)
    elif name == "mmwork_similar":
        result = mmwork.similar("bench", QUERY_ITEM, features=FEATURES, k=10, standardize=False)
        answer = result["item_id"].tolist()
    elif name == "numpy_similar":
        table = pq.read_table(folder, columns=["item_id", "mfcc_stats"])
        ids = table.column("item_id").to_numpy(zero_copy_only=False)
        column = table.column("mfcc_stats").combine_chunks()
        vectors = column.values.to_numpy().reshape(len(column), -1)
        query = vectors[np.flatnonzero(ids == QUERY_ITEM)[0]]
        sims = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        sims[ids == QUERY_ITEM] = -np.inf
        best = np.argpartition(-sims, 10)[:10]
        answer = ids[best[np.argsort(-sims[best], kind="stable")]].tolist()
    else:
        raise ValueError(name)
    return {"seconds": time.perf_counter() - started, "answer": answer,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--variant":
        print(json.dumps(variant(sys.argv[2]), default=str))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/query.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmwork-bench-query-"))
    env = os.environ | {"MMWORK_DATA": str(root)}
    os.environ["MMWORK_DATA"] = str(root)
    started = time.perf_counter()
    build(root, args.rows)
    import pyarrow.parquet as pq
    folder = root / "processed" / "bench" / "features" / "audio"
    total_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("part-*.parquet"))
    size_mb = sum(p.stat().st_size for p in folder.glob("part-*.parquet")) / 2**20
    print(f"built {total_rows:,} rows ({size_mb:.0f} MB Parquet) in {time.perf_counter() - started:.0f} s", flush=True)

    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for name in ("mmwork_query", "pandas_query", "mmwork_similar", "numpy_similar"):
            out = subprocess.run([sys.executable, __file__, "--variant", name], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            runs.setdefault(name, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {name: {"median_s": round(statistics.median(r["seconds"] for r in rs), 3),
                      "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs), 1), "answer": rs[0]["answer"]}
               for name, rs in runs.items()}
    result = {
        "benchmark": "ad-hoc queries", "rows": total_rows, "parquet_mb": round(size_mb, 1), "repeats": args.repeats,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "query": {"filter": str(FILTER), "columns": COLUMNS, "mmwork_pushdown": summary["mmwork_query"],
                  "pandas_full_read": summary["pandas_query"],
                  "speedup": round(summary["pandas_query"]["median_s"] / summary["mmwork_query"]["median_s"], 2),
                  "memory_ratio": round(summary["pandas_query"]["peak_rss_mb"] / summary["mmwork_query"]["peak_rss_mb"], 2),
                  "same_rows": summary["mmwork_query"]["answer"] == summary["pandas_query"]["answer"]},
        "similar": {"features": FEATURES, "k": 10, "mmwork_blockwise": summary["mmwork_similar"],
                    "numpy_brute_force": summary["numpy_similar"],
                    "speedup": round(summary["numpy_similar"]["median_s"] / summary["mmwork_similar"]["median_s"], 2),
                    "memory_ratio": round(summary["numpy_similar"]["peak_rss_mb"] / summary["mmwork_similar"]["peak_rss_mb"], 2),
                    "same_neighbours": summary["mmwork_similar"]["answer"] == summary["numpy_similar"]["answer"],
                    "top10_overlap": len(set(summary["mmwork_similar"]["answer"]) & set(summary["numpy_similar"]["answer"]))},
    }
    for part in ("query", "similar"):
        for key in list(result[part]):
            if isinstance(result[part][key], dict) and isinstance(result[part][key].get("answer"), list):
                result[part][key]["answer"] = result[part][key]["answer"][:3]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
