"""mmwork's recommenders against RecBole 1.2.1, side by side, on the very same split.

For each model (bpr, multvae, ease, itemknn), on MovieLens-100K with mmwork's ``recbole_split``
(seed 2020; every interaction positive, per-user random 8:1:1), written once with
``split.to_files`` and read by both sides:

  - mmwork: a fresh process of this script (``--worker``) reads the three CSV files with
    ``split_from_files`` (checking the data hash), builds the model from ``mmwork.models.recommenders.MODELS``
    and runs ``Experiment(split, [model], k=10)``: fit on train (valid for early stopping), full
    ranking of test with train + valid items excluded;
  - RecBole: ``benchmarks/recbole_runner.py`` in its own environment (``benchmarks/recbole_env.sh``)
    reads the same files as atomic benchmark files (``benchmark_filename: [train, valid, test]``,
    so RecBole neither filters nor re-splits: its part sizes are checked to equal mmwork's) and
    runs model construction + ``trainer.fit`` + ``trainer.evaluate`` with full ranking.

Both processes get the same thread count (torch and the BLAS/OpenMP pools) and run one after the
other (never at the same time), alternating which goes first on each repeat. Reported per side: the
time of training + test evaluation measured inside the process (``fit_eval_s``; for mmwork
``fit_s + eval_s`` of ``Experiment``) and the wall time of the whole process (imports, data loading
included); test Recall/MRR/NDCG/Hit/Precision@10; medians over ``--repeats``. Ratios are RecBole /
mmwork (above 1: mmwork is faster); metric differences are mmwork - RecBole.

Hyper-parameters: each mmwork model runs with its defaults (plus device=cpu and the shared seed);
where RecBole has the same knob it gets the same value (embedding size, epochs cap, batch size,
learning rate, validation interval and patience, EASE's L2, ItemKNN's k and shrink); the rest stay
RecBole's defaults. Every setting of both sides is written to the JSON.

    bash benchmarks/recbole_env.sh                      # once: benchmarks/.venvs/recbole
    PYTHONPATH=. python benchmarks/bench_recommenders.py [--models bpr,multvae,ease,itemknn]
        [--repeats 1] [--threads 2] [--out benchmarks/results/recommenders.json]

``--recbole-only`` / ``--mmwork-only`` run one side alone.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNNER = HERE / "recbole_runner.py"
DEFAULT_VENV = HERE / ".venvs" / "recbole"
SEED = 2020
K = 10
METRICS = ("recall", "mrr", "ndcg", "hit", "precision")

# RecBole class per mmwork model name.
RECBOLE_MODEL = {"bpr": "BPR", "multvae": "MultiVAE", "ease": "EASE", "itemknn": "ItemKNN", "pop": None}

# mmwork parameter -> (RecBole setting, conversion). Only knobs with the same meaning on both sides.
_same = lambda v: v  # noqa: E731
PARAM_MAP = {
    "bpr": {
        "factors": ("embedding_size", _same),
        "epochs": ("epochs", _same),
        "batch_size": ("train_batch_size", _same),
        "lr": ("learning_rate", _same),
        "eval_every": ("eval_step", _same),
        # mmwork stops after `patience` evaluations without improvement; RecBole after stopping_step + 1
        "patience": ("stopping_step", lambda p: max(int(p) - 1, 0)),
    },
    "multvae": {
        "epochs": ("epochs", _same),
        # RecBole's MultiVAE trains on a UserDataLoader: train_batch_size users per step, as mmwork's
        # batch_size; so KL annealing steps count the same batches on both sides
        "batch_size": ("train_batch_size", _same),
        "total_anneal_steps": ("total_anneal_steps", _same),
        "lr": ("learning_rate", _same),
        "weight_decay": ("weight_decay", _same),
        "eval_every": ("eval_step", _same),
        "patience": ("stopping_step", lambda p: max(int(p) - 1, 0)),
        "dropout": ("dropout_prob", _same),
        "anneal_cap": ("anneal_cap", _same),
        # RecBole's latent_dimension is the encoder output (mean and log-variance): twice the latent size
        "latent": ("latent_dimension", lambda d: 2 * int(d)),
        "hidden": ("mlp_hidden_size", lambda h: [int(x) for x in (h if isinstance(h, (list, tuple)) else [h])]),
    },
    "ease": {"l2": ("reg_weight", _same)},
    "itemknn": {"k_neighbors": ("k", _same), "shrink": ("shrink", _same)},
}

# What a reader needs to know about each RecBole counterpart.
RECBOLE_NOTES = {
    "bpr": "RecBole's BPR has no L2 term on the embeddings (mmwork's `reg`); Adam, one uniform negative per "
           "positive on both sides",
    "multvae": "RecBole 1.2.1 names it MultiVAE; trained without sampled negatives (train_neg_sample_args: None) "
               "on batches of train_batch_size users (its UserDataLoader), like mmwork; its latent_dimension counts "
               "mean + log-variance (2 x the latent size); its latent noise has a fixed standard deviation of 0.01 "
               "(mmwork's noise_std) and its rows hold the rating column's values (mmwork's binarize=False)",
    "ease": "closed form on both sides; RecBole computes it in the model constructor (counted in fit)",
    "itemknn": "shrunk cosine over binarised columns, top-k neighbours per item, R @ S on both sides; "
               "RecBole builds it in the model constructor (counted in fit)",
}

# Settings both sides share regardless of the model.
COMMON_RECBOLE = {"seed": SEED, "valid_metric": f"NDCG@{K}", "topk": [K], "use_gpu": False}


def recbole_settings(name: str, params: dict) -> tuple[dict, dict]:
    """The RecBole config for an mmwork model with ``params``, and the mmwork params with no counterpart."""
    config, unmapped = dict(COMMON_RECBOLE), {}
    mapping = PARAM_MAP.get(name, {})
    for key, value in params.items():
        if key in ("device", "seed", "amp", "verbose"):
            continue
        if key in mapping:
            target, convert = mapping[key]
            config[target] = convert(value)
        else:
            unmapped[key] = value
    if name == "multvae":
        config["train_neg_sample_args"] = None  # an auto-encoder over user rows needs no negative sampling
    return config, unmapped


# ---------------------------------------------------------------------------------------------------
# Worker: one mmwork fit + evaluation in a fresh process
# ---------------------------------------------------------------------------------------------------
def mmwork_worker(name: str, split_dir: Path, threads: int, expect_hash: str) -> dict:
    import torch
    torch.set_num_threads(threads)
    from mmwork import read_table
    from mmwork.evaluation import Experiment, split_from_files
    from mmwork.models.recommenders import MODELS

    items = read_table("movielens-100k", "items").item_id
    split = split_from_files(*(split_dir / f"{p}.csv" for p in ("train", "valid", "test")), item_ids=items)
    if split.data_hash() != expect_hash:
        raise SystemExit(f"the split read back has hash {split.data_hash()}, expected {expect_hash}")
    model = MODELS[name](device="cpu", seed=SEED)
    result = Experiment(split, [model], metrics=METRICS, k=K, verbose=False).run()
    row = result.table.iloc[0]
    history = result.histories.get(name, [])
    return {
        "test": {f"{m}@{K}": float(row[f"{m}@{K}"]) for m in METRICS},
        "times": {"fit_s": float(row["fit_s"]), "eval_s": float(row["eval_s"]),
                  "fit_eval_s": float(row["fit_s"] + row["eval_s"])},
        "best_epoch": getattr(model, "best_epoch_", None),
        "epochs_run": len(history) if history else None,
        "evaluated_users": result.setup["evaluated_users"],
        "params": {k: _plain(v) for k, v in model.get_params().items()},
        "torch_threads": torch.get_num_threads(),
    }


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


# ---------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------
def _thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_process(cmd: list[str], env: dict, marker: str, log: Path) -> tuple[dict, float, float]:
    """Run one side's process; its JSON result line, wall seconds and CPU seconds (user + sys)."""
    cpu = _children_cpu_s()
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu = _children_cpu_s() - cpu
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(cmd)}\n{out.stdout}\n{out.stderr}\n")
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed ({out.returncode}); see {log}:\n{out.stderr[-3000:]}")
    line = next(l for l in reversed(out.stdout.splitlines()) if l.startswith(marker))
    return json.loads(line[len(marker):]), wall, cpu


def run_mmwork(name, split_dir, threads, data_hash, log) -> dict:
    env = _thread_env(threads) | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--split-dir", str(split_dir),
           "--threads", str(threads), "--expect-hash", data_hash]
    result, wall, cpu = _run_process(cmd, env, "MMWORK_RESULT ", log)
    result["times"] |= {"process_wall_s": wall, "process_cpu_s": cpu}
    return result


def run_recbole(name, split_dir, threads, config, python, log) -> dict:
    cmd = [str(python), str(RUNNER), "--split-dir", str(split_dir), "--model", RECBOLE_MODEL[name],
           "--config", json.dumps(config), "--threads", str(threads)]
    result, wall, cpu = _run_process(cmd, _thread_env(threads), "RECBOLE_RESULT ", log)
    result["times"] |= {"process_wall_s": wall, "process_cpu_s": cpu}
    return result


def _median_runs(runs: list[dict]) -> dict:
    """Median of each time and metric over repeats, plus the spread of the times."""
    out = {"test": {m: statistics.median(r["test"][m] for r in runs) for m in runs[0]["test"]},
           "times": {t: statistics.median(r["times"][t] for r in runs) for t in runs[0]["times"]}}
    if len(runs) > 1:
        out["times_all"] = {t: [round(r["times"][t], 3) for r in runs] for t in runs[0]["times"]}
        out["test_all"] = {m: [r["test"][m] for r in runs] for m in runs[0]["test"]}
    keep = ("best_epoch", "epochs_run", "evaluated_users", "users", "items", "sizes", "torch_threads",
            "trainable_parameters", "valid_history", "config", "params")
    out |= {k: runs[-1][k] for k in keep if k in runs[-1]}
    return out


def compare(mm: dict, rb: dict) -> dict:
    """Time ratios (RecBole / mmwork) and metric differences (mmwork - RecBole) of two sides' medians.
    For iterative models the fit time per epoch run is compared too, since the two sides' early
    stopping may end after different numbers of epochs."""
    mt, rt = mm["times"], rb["times"]
    out = {
        "fit_eval_ratio_recbole_over_mmwork": rt["fit_eval_s"] / mt["fit_eval_s"],
        "process_wall_ratio_recbole_over_mmwork": rt["process_wall_s"] / mt["process_wall_s"],
        "process_cpu_ratio_recbole_over_mmwork": rt["process_cpu_s"] / mt["process_cpu_s"],
    }
    if (mm.get("epochs_run") or 0) > 1 and (rb.get("epochs_run") or 0) > 1:
        per_mm, per_rb = mt["fit_s"] / mm["epochs_run"], rt["fit_s"] / rb["epochs_run"]
        out |= {"fit_s_per_epoch_mmwork": per_mm, "fit_s_per_epoch_recbole": per_rb,
                "fit_per_epoch_ratio_recbole_over_mmwork": per_rb / per_mm}
    out |= {f"{m}_diff_mmwork_minus_recbole": mm["test"][m] - rb["test"][m] for m in mm["test"] if m in rb["test"]}
    return out


def machine_info(threads: int) -> dict:
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_gb": mem_gb, "threads_per_process": threads, "gpu": "none used (both sides on CPU)",
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def _versions() -> dict:
    import numpy
    import pandas
    import scipy
    import torch
    import mmwork
    commit = None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        pass
    return {"mmwork": mmwork.__version__, "mmwork_commit": commit, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "pandas": pandas.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description="mmwork vs RecBole 1.2.1 on the same ML-100K split")
    parser.add_argument("--models", default="bpr,multvae,ease,itemknn", help="comma-separated mmwork model names")
    parser.add_argument("--repeats", type=int, default=1, help="runs per model and side; medians are reported")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4),
                        help="torch / BLAS threads for each process (the same on both sides)")
    parser.add_argument("--out", default=str(HERE / "results" / "recommenders.json"))
    parser.add_argument("--recbole-venv", default=os.environ.get("RECBOLE_VENV", str(DEFAULT_VENV)))
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--recbole-only", action="store_true", help="run only the RecBole side")
    side.add_argument("--mmwork-only", action="store_true", help="run only the mmwork side")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--split-dir", help=argparse.SUPPRESS)
    parser.add_argument("--expect-hash", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = mmwork_worker(args.worker, Path(args.split_dir), args.threads, args.expect_hash)
        print("MMWORK_RESULT " + json.dumps(result))
        return

    import torch
    torch.set_num_threads(args.threads)
    from mmwork import read_table
    from mmwork.evaluation import recbole_split
    from mmwork.models.recommenders import MODELS

    recbole_python = Path(args.recbole_venv) / "bin" / "python"
    if not args.mmwork_only and not recbole_python.exists():
        raise SystemExit(f"no RecBole environment at {args.recbole_venv}: run `bash benchmarks/recbole_env.sh` "
                         "first (or pass --recbole-venv / --mmwork-only)")

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    split = recbole_split(read_table("movielens-100k", "interactions"),
                          item_ids=read_table("movielens-100k", "items").item_id, seed=SEED)
    data = split.describe()
    work = Path(tempfile.mkdtemp(prefix="mmwork-vs-recbole-"))
    split_dir = split.to_files(work / "split")
    log = work / "processes.log"
    print(f"split: {data['train']:,} / {data['valid']:,} / {data['test']:,} interactions, "
          f"{data['users']} users x {data['items']} items, hash {data['data_hash']}; logs in {log}", flush=True)

    machine = machine_info(args.threads)
    results, notes = {}, []
    for name in models:
        if not RECBOLE_MODEL.get(name):
            notes.append(f"{name}: " + ("no RecBole counterpart in this benchmark" if name in MODELS else
                                        f"unknown (benchmarked: {sorted(k for k, v in RECBOLE_MODEL.items() if v)})")
                         + "; skipped")
            print(notes[-1], flush=True)
            continue
        params = {k: _plain(v) for k, v in MODELS[name](device="cpu", seed=SEED).get_params().items()}
        config, unmapped = recbole_settings(name, params)
        entry = {"recbole_model": RECBOLE_MODEL[name], "note": RECBOLE_NOTES.get(name, ""),
                 "settings": {"mmwork": params, "mmwork_params_source": "mmwork defaults (device=cpu, seed=2020)",
                              "recbole_overrides": config, "mmwork_params_without_recbole_counterpart": unmapped}}
        mm_runs, rb_runs = [], []
        for repeat in range(args.repeats):
            order = ["mmwork", "recbole"] if repeat % 2 == 0 else ["recbole", "mmwork"]
            for which in order:
                if which == "mmwork" and not args.recbole_only:
                    print(f"  {name}: mmwork run {repeat + 1}/{args.repeats} ...", flush=True)
                    mm_runs.append(run_mmwork(name, split_dir, args.threads, data["data_hash"], log))
                elif which == "recbole" and not args.mmwork_only:
                    print(f"  {name}: RecBole {RECBOLE_MODEL[name]} run {repeat + 1}/{args.repeats} ...", flush=True)
                    rb = run_recbole(name, split_dir, args.threads, config, recbole_python, log)
                    expected = {p: data[p] for p in ("train", "valid", "test")}
                    if rb["sizes"] != expected:
                        raise SystemExit(f"RecBole's parts {rb['sizes']} differ from mmwork's {expected}")
                    rb_runs.append(rb)
        if mm_runs:
            entry["mmwork"] = _median_runs(mm_runs)
        else:
            entry["mmwork"] = {"skipped": "--recbole-only"}
        if rb_runs:
            entry["recbole"] = _median_runs(rb_runs)
            entry["recbole_versions"] = rb_runs[-1]["versions"]
        else:
            entry["recbole"] = {"skipped": "--mmwork-only"}
        if mm_runs and rb_runs:
            entry["comparison"] = compare(entry["mmwork"], entry["recbole"])
        results[name] = entry

    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    recbole_versions = next((e["recbole_versions"] for e in results.values() if "recbole_versions" in e), None)
    report = {
        "benchmark": "mmwork recommenders vs RecBole 1.2.1, same split, same machine, one after the other",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "protocol": {
            "description": " ".join(" ".join(__doc__.split("\n\n")[1:3]).split()),
            "split": data,
            "split_exchange": "mmwork writes train/valid/test.csv (Split.to_files); the mmwork worker reads "
                              "them with split_from_files (data hash checked); RecBole reads them as atomic "
                              "files ml100k-mm.{train,valid,test}.inter with benchmark_filename",
            "evaluation": f"full ranking over all {data['items']} items at k={K}; valid masks train items, "
                          "test masks train + valid items; users with at least one test item are averaged",
            "metrics": [f"{m}@{K}" for m in METRICS],
            "early_stopping": "both sides validate every eval_every/eval_step epochs on valid NDCG@10 and keep "
                              "the best state (RecBole: stopping_step = mmwork patience - 1, since RecBole stops "
                              "after stopping_step + 1 evaluations without improvement)",
            "timing": "fit_eval_s: training (incl. periodic validation) + test evaluation, measured inside "
                      "each process; for RecBole it includes model construction (EASE and ItemKNN compute "
                      "everything there) and checkpoint save/load, but not reading the files "
                      "(reported as data_s); process_wall_s: the whole subprocess, imports included; process_cpu_s: its user + sys CPU seconds "
                      "(steadier than wall time when other work shares the machine: see load_average)",
            "repeats": args.repeats, "aggregation": "median over repeats", "seed": SEED,
            "ratios": "recbole / mmwork for times (above 1: mmwork faster); mmwork - recbole for metrics; "
                      "fit_per_epoch compares fit_s / epochs run, as the sides may stop after different epochs",
        },
        "machine": machine,
        "versions": {"mmwork_env": _versions(), "recbole_env": recbole_versions},
        "notes": notes,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_plain))
    print_table(results)
    print(f"wrote {out}")


def print_table(results: dict) -> None:
    head = (f"{'model':<9} {'side':<8} {'ndcg@10':>8} {'recall@10':>9} {'mrr@10':>7} {'hit@10':>7} "
            f"{'fit+eval s':>10} {'process s':>9} {'cpu s':>7} {'best/ran':>8}")
    print("\n" + head + "\n" + "-" * len(head))
    for name, entry in results.items():
        for side in ("mmwork", "recbole"):
            r = entry[side]
            if "skipped" in r:
                print(f"{name:<9} {side:<8} skipped: {r['skipped']}")
                continue
            t, m = r["times"], r["test"]
            epochs = "" if r.get("epochs_run") is None else f"{r.get('best_epoch')}/{r['epochs_run']}"
            print(f"{name:<9} {side:<8} {m['ndcg@10']:>8.4f} {m['recall@10']:>9.4f} {m['mrr@10']:>7.4f} "
                  f"{m['hit@10']:>7.4f} {t['fit_eval_s']:>10.2f} {t['process_wall_s']:>9.2f} {t['process_cpu_s']:>7.1f} "
                  f"{epochs:>8}")
        if "comparison" in entry:
            c = entry["comparison"]
            print(f"{'':<9} {'ratio':<8} ndcg diff {c['ndcg@10_diff_mmwork_minus_recbole']:+.4f}; RecBole/mmwork "
                  f"time x{c['fit_eval_ratio_recbole_over_mmwork']:.2f} (fit+eval), "
                  f"x{c['process_wall_ratio_recbole_over_mmwork']:.2f} (process wall), "
                  f"x{c['process_cpu_ratio_recbole_over_mmwork']:.2f} (process CPU)"
                  + (f", x{c['fit_per_epoch_ratio_recbole_over_mmwork']:.2f} (fit per epoch)"
                     if "fit_per_epoch_ratio_recbole_over_mmwork" in c else ""))


if __name__ == "__main__":
    main()
