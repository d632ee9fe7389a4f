"""Ad-hoc queries at 1M+ rows against their peers, side by side in one run (issue 13).

A feature table is grown to >= 1M rows by replicating the real audio features of the speech-prompts
and instrument-samples clips with 5% noise per dimension (new item ids, a `replica` number), written
as Parquet parts. The parent process never loads the table (a child builds it, another computes the
float64 reference), so each variant's peak memory is its own: every variant runs in a fresh child
and its peak RSS is read from that child's rusage (os.wait4). Variants alternate; medians of
--repeats runs; the load average is recorded before and after.

  nearest neighbours of one item (top 10, the item left out), whole process and warm in-process:
    mmwork similar (command `python -m mmwork similar`), plain and z-scored (stored statistics);
    the careful NumPy stream (record batches, values buffer as a 2-D float32 view, one product and
    argpartition per batch), plain and z-scored (statistics computed once, like mmwork's);
    DuckDB list_cosine_similarity over the same Parquet; faiss IndexFlatIP after loading;
    mmwork's index (faiss IVF, the default kind): build time, per-query time (warm and as a command) and recall@10;
    a batch of 100 items in one call against one item.
  projection + filter (9,400 of 1M rows): mmwork query vs pandas (whole read) vs DuckDB, as a
    command writing Parquet and warm in-process.
Answers are compared with a float64 brute force (ties broken by item id). Peers run from
benchmarks/.venvs/queries (peer_env.sh: duckdb, faiss-cpu, pyarrow, numpy, pandas), never mmwork's venv.

    python benchmarks/bench_query.py [--rows 1000000] [--repeats 3] [--root DIR] [--out benchmarks/results/query.json]
    python benchmarks/bench_query.py --rows 10000000 --repeats 1 --only similar   # the 10M memory check
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILTER_WHERE = ["replica < 100", "category == digits"]
COLUMNS = ["item_id", "category", "duration_s"]
FEATURES = "audio:mfcc_stats"
QUERY_ITEM = "digits/7#0"
K = 10
BATCH = 100
PEER_CHECK = "import duckdb, faiss, pyarrow, numpy, pandas"  # pandas: DuckDB hands back a DataFrame too


# ----------------------------------------------------------------------------- children

def build(root: Path, rows: int) -> dict:
    """The >= ``rows``-row feature table (child process)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from mmwork import datasets, read_table
    from mmwork.features import extract
    from mmwork.store.tables import write_table
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
    items = pa.table({"item_id": [f"{i}#0" for i in base["item_id"]], "category": base["category"]})
    write_table(items, root / "processed" / "bench" / "items.parquet")
    batch = [f"{i}#{r % copies}" for r, i in zip(range(BATCH), base["item_id"].iloc[::max(1, len(base) // BATCH)])][:BATCH]
    info = {"rows": copies * len(base), "batch": batch}
    (root / "bench.json").write_text(json.dumps(info))
    return info


def _parts(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / "processed" / "bench" / "features" / "audio").glob("part-*.parquet"))


def _stream(root: Path, columns=("item_id", "mfcc_stats"), batch_size=65536):
    """(ids, float32 (n, d) view) record batches: the careful NumPy way to read the column."""
    import pyarrow.parquet as pq
    for path in _parts(root):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=list(columns)):
            vectors = batch.column(1)
            yield batch.column(0), vectors.values.to_numpy().reshape(len(vectors), vectors.type.list_size)


def reference(root: Path) -> dict:
    """float64 brute force: the query item's and the batch's top K, plain and z-scored, ties by id;
    and the column statistics (saved for the NumPy z-scored peer, as mmwork stores its own)."""
    import numpy as np
    info = json.loads((root / "bench.json").read_text())
    items = [QUERY_ITEM] + info["batch"]
    n, total = 0, 0
    found = {}
    for ids, v in _stream(root):
        x = v.astype(np.float64)
        n, total = n + len(x), total + x.sum(0)
        ids = ids.to_numpy(zero_copy_only=False)
        for item in items:
            hit = np.flatnonzero(ids == item)
            if len(hit):
                found[item] = x[hit[0]]
    mean = total / n
    m2 = sum(((v.astype(np.float64) - mean) ** 2).sum(0) for _, v in _stream(root))
    std = np.sqrt(m2 / n)
    np.savez(root / "numpy_stats.npz", mean=mean, std=std)
    out = {}
    for z in (False, True):
        q = np.stack([found[i] for i in items])
        q = (q - mean) / std if z else q
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        pool: list[list] = [[] for _ in items]
        for ids, v in _stream(root):
            x = v.astype(np.float64)
            x = (x - mean) / std if z else x
            sims = (x @ q.T) / np.linalg.norm(x, axis=1)[:, None]
            top = np.argpartition(-sims, 3 * K, axis=0)[:3 * K]
            ids = ids.to_numpy(zero_copy_only=False)
            for j in range(len(items)):
                pool[j] += [(-sims[r, j], ids[r]) for r in top[:, j]]
        out["z" if z else "plain"] = {item: [i for _, i in sorted(p) if i != item][:K] for item, p in zip(items, pool)}
    return out


def variant(name: str, root: Path, warm: int) -> dict:
    """Run one variant in this process (``warm`` > 0: once to warm up, then ``warm`` timed runs)."""
    import numpy as np
    timed = []
    answer = None
    for attempt in range(1 + warm if warm else 1):
        started = time.perf_counter()
        answer = _VARIANTS[name](root)
        if attempt or not warm:
            timed.append(time.perf_counter() - started)
    import resource
    return {"seconds": float(np.median(timed)), "answer": answer,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _numpy_similar(root: Path, z: bool):
    import numpy as np
    ids, vectors = next((i, v) for i, v in _stream(root) if QUERY_ITEM in i.to_pylist())  # as a user would
    query = vectors[ids.to_pylist().index(QUERY_ITEM)].astype(np.float32)
    center = None
    if z:
        stats = np.load(root / "numpy_stats.npz")
        center = stats["mean"].astype(np.float32), (1 / stats["std"]).astype(np.float32)
        query = (query - center[0]) * center[1]
    query /= np.linalg.norm(query)
    best_ids, best = [], []
    for ids, v in _stream(root):
        if center is not None:
            v = (v - center[0]) * center[1]
        sims = (v @ query) / np.linalg.norm(v, axis=1)
        top = np.argpartition(-sims, K)[:K + 1]
        best_ids += ids.take(top).to_pylist()
        best += sims[top].tolist()
    ranked = sorted(zip(best, best_ids), key=lambda p: (-p[0], p[1]))
    return [i for _, i in ranked if i != QUERY_ITEM][:K]


def _duckdb_similar(root: Path):
    import duckdb
    con = _duck()
    files = _parts(root)
    (vector,) = con.execute("SELECT mfcc_stats FROM read_parquet(?) WHERE item_id = ?", [files, QUERY_ITEM]).fetchone()
    rows = con.execute(f"SELECT item_id FROM read_parquet(?) WHERE item_id <> ? "
                       f"ORDER BY list_cosine_similarity(mfcc_stats, ?::FLOAT[]) DESC, item_id LIMIT {K}",
                       [files, QUERY_ITEM, vector]).fetchall()
    del duckdb
    return [r[0] for r in rows]


_DUCK = {}


def _duck():
    import duckdb
    if "con" not in _DUCK:
        _DUCK["con"] = duckdb.connect()
    return _DUCK["con"]


_FLAT = {}


def _faiss_flat(root: Path):
    """faiss IndexFlatIP over the unit vectors; warm runs time the search alone (the load is cached)."""
    import faiss
    import numpy as np
    if "index" not in _FLAT:
        ids, parts = [], []
        for i, v in _stream(root):
            ids += i.to_pylist()
            parts.append(v)
        x = np.concatenate(parts)
        del parts
        faiss.normalize_L2(x)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        _FLAT.update(index=index, ids=ids, x=x)
    ids, index = _FLAT["ids"], _FLAT["index"]
    q = _FLAT["x"][ids.index(QUERY_ITEM)][None, :].copy()
    _, found = index.search(q, K + 1)
    return [ids[r] for r in found[0] if ids[r] != QUERY_ITEM][:K]


def _mmwork_similar(root: Path, z: bool, index: bool = False):
    import mmwork
    got = mmwork.similar("bench", QUERY_ITEM, features=FEATURES, k=K, standardize=z, index=index)
    return got["item_id"].tolist()


def _mmwork_batch(root: Path):
    import mmwork
    batch = json.loads((root / "bench.json").read_text())["batch"]
    got = mmwork.similar("bench", batch, features=FEATURES, k=K, standardize=False)
    return {q: g["item_id"].tolist() for q, g in got.groupby("query", sort=False)}


def _mmwork_query(root: Path):
    import mmwork
    return len(mmwork.query("bench", "features/audio", columns=COLUMNS, where=FILTER_WHERE))


def _pandas_query(root: Path):
    import pandas as pd
    frame = pd.concat([pd.read_parquet(p) for p in _parts(root)], ignore_index=True)
    return len(frame[(frame["replica"] < 100) & (frame["category"] == "digits")][COLUMNS])


def _duckdb_query(root: Path):
    frame = _duck().execute(f"SELECT {', '.join(COLUMNS)} FROM read_parquet(?) WHERE replica < 100 AND "
                            "category = 'digits'", [_parts(root)]).df()
    return len(frame)


def _index_queries(root: Path):
    """Per-query time of the index (loaded) over the batch, and its recall against the exact answer."""
    import numpy as np
    from mmwork.search import columns, index
    batch = json.loads((root / "bench.json").read_text())["batch"]
    vectors = columns.vectors_of("bench", FEATURES, batch)
    index.load("bench", FEATURES, standardize=False)
    times, answers = [], {}
    for item, vector in zip(batch, vectors):
        started = time.perf_counter()
        got = index.search("bench", FEATURES, vector, k=K, standardize=False, exclude=item)
        times.append(time.perf_counter() - started)
        answers[item] = got["item_id"].tolist()
    return {"per_query_ms": round(float(np.median(times)) * 1000, 3), "answers": answers}


_VARIANTS = {
    "mmwork_similar": lambda r: _mmwork_similar(r, False),
    "mmwork_similar_z": lambda r: _mmwork_similar(r, True),
    "numpy_similar": lambda r: _numpy_similar(r, False),
    "numpy_similar_z": lambda r: _numpy_similar(r, True),
    "duckdb_similar": _duckdb_similar,
    "faiss_flat": _faiss_flat,
    "mmwork_batch": _mmwork_batch,
    "mmwork_index": lambda r: _mmwork_similar(r, False, index=True),
    "index_queries": _index_queries,
    "mmwork_query": _mmwork_query,
    "pandas_query": _pandas_query,
    "duckdb_query": _duckdb_query,
}
PEERS = {"duckdb_similar", "faiss_flat", "duckdb_query"}


# ----------------------------------------------------------------------------- the parent (small)

def run_child(argv: list[str], env: dict) -> dict:
    """Run a child, timing its whole process and reading its own peak RSS from os.wait4."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])}... failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return {"wall_s": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": out.read()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--variant", "--build", "--reference"):
        root = Path(sys.argv[3] if sys.argv[1] == "--variant" else sys.argv[2])
        if sys.argv[1] == "--build":
            out = build(root, int(sys.argv[3]))
        elif sys.argv[1] == "--reference":
            out = reference(root)
        else:
            out = variant(sys.argv[2], root, int(sys.argv[4]) if len(sys.argv) > 4 else 0)
        print(json.dumps(out, default=str))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", help="build here, or reuse a table already built here (default: a temporary folder)")
    parser.add_argument("--only", choices=["similar", "query", "index"], action="append",
                        help="run only these groups (repeatable; default: all)")
    parser.add_argument("--out", default=None, help="default benchmarks/results/query.json (query-10m.json for 10M)")
    args = parser.parse_args()
    groups = set(args.only or ["similar", "query", "index"])
    out_path = Path(args.out or HERE / "results" / ("query.json" if args.rows < 5_000_000 else "query-10m.json"))
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="mmwork-bench-query-"))
    env = os.environ | {"MMWORK_DATA": str(root)}
    me = [sys.executable, __file__]
    load_before = os.getloadavg()

    built = json.loads((root / "bench.json").read_text()) if (root / "bench.json").exists() else None
    if built is None or built["rows"] < args.rows:
        started = time.perf_counter()
        built = json.loads(run_child(me + ["--build", str(root), str(args.rows)], env)["stdout"].splitlines()[-1])
        print(f"built {built['rows']:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    size_mb = sum(os.path.getsize(p) for p in _parts(root)) / 2 ** 20
    peer = Path(os.environ.get("QUERIES_VENV", HERE / ".venvs" / "queries")) / "bin" / "python"
    subprocess.run(["bash", str(HERE / "peer_env.sh"), "queries", PEER_CHECK, "duckdb", "faiss-cpu", "pyarrow", "numpy",
                    "pandas"],
                   check=True, env=os.environ | {"VENV": str(peer.parent.parent)}, stdout=subprocess.DEVNULL)
    ref = json.loads(run_child(me + ["--reference", str(root)], env)["stdout"].splitlines()[-1])
    print("float64 reference ready", flush=True)

    mm = [sys.executable, "-m", "mmwork"]
    cli_similar = mm + ["similar", "bench", QUERY_ITEM, "--features", FEATURES, "--k", str(K), "--json"]
    warmup = run_child(cli_similar + ["--standardize"], env)  # computes and stores the column statistics once
    commands = {}
    if "similar" in groups:
        commands |= {
            "mmwork_similar": cli_similar + ["--no-standardize"],
            "mmwork_similar_z": cli_similar + ["--standardize"],
            "numpy_similar": me + ["--variant", "numpy_similar", str(root)],
            "numpy_similar_z": me + ["--variant", "numpy_similar_z", str(root)],
            "duckdb_similar": [str(peer), __file__, "--variant", "duckdb_similar", str(root)],
            "faiss_flat": [str(peer), __file__, "--variant", "faiss_flat", str(root)],
            "mmwork_batch": mm + ["similar", "bench", *built["batch"], "--features", FEATURES, "--k", str(K),
                                  "--no-standardize", "--json"],
        }
    index_build = None
    if "index" in groups:
        index_build = run_child(mm + ["index", "build", "bench", FEATURES, "--no-standardize", "--json"], env)
        print(f"index built in {index_build['wall_s']:.0f} s", flush=True)
        commands["mmwork_index"] = cli_similar + ["--no-standardize", "--index"]
    if "query" in groups:
        target = root / "query-out.parquet"
        commands |= {
            "mmwork_query": mm + ["query", "bench", "features/audio", "--columns", ",".join(COLUMNS),
                                  *[a for w in FILTER_WHERE for a in ("--where", w)], "--output", str(target)],
            "pandas_query": me + ["--variant", "pandas_query", str(root)],
            "duckdb_query": [str(peer), __file__, "--variant", "duckdb_query", str(root)],
        }
    warm_runs = {name: (str(peer) if name in PEERS else sys.executable) for name in commands if name != "mmwork_index"}
    if "index" in groups:
        warm_runs["mmwork_index"] = sys.executable

    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # alternate: every variant once per round, as a command then warm
        for name, argv in commands.items():
            runs.setdefault(name, []).append(run_child(argv, env))
        for name, python in warm_runs.items():
            res = run_child([python, __file__, "--variant", name, str(root), "3"], env)
            runs.setdefault(name + ":warm", []).append(json.loads(res["stdout"].splitlines()[-1]))
        print(f"round done, load {os.getloadavg()[0]:.1f}", flush=True)
    index_queries = None
    if "index" in groups:
        res = run_child([sys.executable, __file__, "--variant", "index_queries", str(root)], env)
        index_queries = json.loads(res["stdout"].splitlines()[-1])["answer"]

    def answer(name):
        out = runs[name][0]["stdout"]
        if name.endswith("_query"):
            return None
        payload = json.loads(out) if out.lstrip().startswith("[") else json.loads(out.splitlines()[-1])["answer"]
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            if "query" in payload[0]:
                grouped: dict[str, list] = {}
                for row in payload:
                    grouped.setdefault(row["query"], []).append(row["item_id"])
                return grouped
            return [row["item_id"] for row in payload]
        return payload

    summary = {}
    for name in commands:
        cmd, warm = runs[name], runs.get(name + ":warm", [])
        entry = {"command_s": round(statistics.median(r["wall_s"] for r in cmd), 3),
                 "command_peak_rss_mb": round(max(r["peak_rss_mb"] for r in cmd), 1)}
        if warm:
            entry |= {"warm_s": round(statistics.median(r["seconds"] for r in warm), 4),
                      "warm_peak_rss_mb": round(max(r["peak_rss_mb"] for r in warm), 1)}
        got = answer(name)
        if got is not None:
            want = ref["z" if name.endswith("_z") else "plain"]
            if isinstance(got, dict):
                entry["same_as_float64"] = sum(got.get(q) == want[q] for q in built["batch"]) / len(built["batch"])
            else:
                entry["same_as_float64"] = got == want[QUERY_ITEM]
                entry["top10_overlap"] = len(set(got) & set(want[QUERY_ITEM]))
                entry["answer"] = got[:3]
        summary[name] = entry

    def ratio(a, b, key="command_s"):
        return round(summary[a][key] / summary[b][key], 2) if a in summary and b in summary else None

    result = {
        "benchmark": "ad-hoc queries", "rows": built["rows"], "parquet_mb": round(size_mb, 1), "repeats": args.repeats,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "statistics_first_call_s": round(warmup["wall_s"], 3),
        "variants": summary,
        "ratios": {"similar_vs_numpy": ratio("mmwork_similar", "numpy_similar"),
                   "similar_vs_duckdb": ratio("mmwork_similar", "duckdb_similar"),
                   "similar_z_vs_numpy_z": ratio("mmwork_similar_z", "numpy_similar_z"),
                   "batch_of_100_vs_one": ratio("mmwork_batch", "mmwork_similar"),
                   "batch_of_100_vs_one_warm": ratio("mmwork_batch", "mmwork_similar", "warm_s"),
                   "query_vs_duckdb": ratio("mmwork_query", "duckdb_query"),
                   "query_vs_duckdb_warm": ratio("mmwork_query", "duckdb_query", "warm_s"),
                   "query_vs_pandas": ratio("mmwork_query", "pandas_query")},
    }
    if index_queries is not None:
        want = ref["plain"]
        recall = sum(len(set(index_queries["answers"][q]) & set(want[q])) for q in built["batch"]) / (K * len(built["batch"]))
        exact_ms = summary["mmwork_similar"]["warm_s"] * 1000
        result["index"] = {"build_s": round(index_build["wall_s"], 1), "build_peak_rss_mb": round(index_build["peak_rss_mb"], 1),
                           "per_query_ms": index_queries["per_query_ms"], "recall_at_10": recall,
                           "speedup_per_query_vs_exact_warm": round(exact_ms / index_queries["per_query_ms"], 1),
                           "params": json.loads(index_build["stdout"])["params"]}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
