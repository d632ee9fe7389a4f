"""Start-up cost of ``mmwork`` commands as whole processes: a scheduled job pays the whole process.

Runs each command as ``python -m mmwork ...`` from this checkout and, with ``--before SRC`` (a checkout
of an earlier commit, e.g. made with ``git worktree add /tmp/before COMMIT``), from that source too,
alternating the two sides, with one BLAS/OpenMP thread; reports medians, the ratio, and which heavy
libraries each command imported. The commands read the data root as it is (``make demo`` fills it).

    .venv/bin/python benchmarks/bench_startup.py --before /tmp/before --repeats 7
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
HEAVY = ["torch", "dask", "sklearn", "scipy", "pandas"]
COMMANDS = {
    "help": ["--help"],
    "query": ["query", "movielens-100k", "items", "--where", "release_year >= 1995", "--limit", "5", "--json"],
    "similar": ["similar", "movielens-100k", "1", "--features", "text:tfidf_lsa", "--k", "10", "--json"],
}
PROBE = ("import runpy, sys\nsys.argv = ['mmwork'] + sys.argv[1:]\ntry:\n    runpy.run_module('mmwork', run_name='__main__')\n"
         "except SystemExit:\n    pass\nprint('LOADED', sorted({m.split('.')[0] for m in sys.modules} & set(%r)), file=sys.stderr)\n")


def _run(src: Path, args: list[str]) -> tuple[float, list[str]]:
    env = os.environ | {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *args], capture_output=True, text=True, env=env,
                         cwd="/")  # not the checkout: '' on sys.path would shadow PYTHONPATH
    seconds = time.perf_counter() - started
    loaded = [line for line in out.stderr.splitlines() if line.startswith("LOADED")]
    if not loaded:
        raise SystemExit(f"{' '.join(args)} failed from {src}:\n{out.stderr[-2000:]}")
    return seconds, json.loads(loaded[-1][len("LOADED "):].replace("'", '"'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an earlier checkout to compare with")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args()
    sides = {"after": HERE} | ({"before": args.before.resolve()} if args.before else {})
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_before": os.getloadavg()}, "repeats": args.repeats, "commands": {}}
    for name, command in COMMANDS.items():
        times: dict[str, list[float]] = {side: [] for side in sides}
        loaded: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            for side, src in sides.items():  # alternated, so drifting load hits both sides alike
                seconds, loaded[side] = _run(src, command)
                times[side].append(seconds)
        row = {side: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                      "imports": loaded[side]} for side, t in times.items()}
        if "before" in row:
            row["before_over_after"] = round(row["before"]["median_s"] / row["after"]["median_s"], 2)
        result["commands"][name] = {"argv": command, **row}
        print(name, json.dumps(row))
    result["machine"]["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
