"""Feature-extraction throughput, side by side in one run.

Audio (the real speech-prompts + instrument-samples clips): clips per second of
  - the plain serial loop a user would write (load each clip, compute the same librosa features),
    in a warm process and as a fresh process (imports and numba JIT included),
  - `mmwork extract` with local worker processes, cold (the command as a user runs it, process
    start-up and numba warm-up included), and the same command re-run with nothing changed,
  - the same graph on an already running local `distributed` cluster (warm workers),
  - the ideal: cores x the serial rate.
The pipeline's outputs are checked against the serial loop's (max abs difference reported).
Images (Fashion-MNIST): EfficientNet-Lite0 images per second, in-process batches vs the pipeline.
Peak memory: the largest resident set of any process of each variant.

    python benchmarks/bench_extract.py [--images 2048] [--repeats 3] [--out benchmarks/results/extract.json]
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


def _peak_rss_mb_children() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _run_cli(args: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `mmwork` command run in a fresh process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run([sys.executable, '-m', 'mmwork'] + sys.argv[1:]); "
            "w = time.perf_counter() - t; "
            "print(w, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024); sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    wall, rss = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(rss)


def serial_audio(paths: list[str]) -> tuple[float, dict[str, dict]]:
    from mmwork.features.audio import audio_features, load_audio, warm_up
    from threadpoolctl import threadpool_limits
    warm_up()
    started = time.perf_counter()
    with threadpool_limits(1):
        results = {p: audio_features(*load_audio(p)) for p in paths}
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/extract.json")
    args = parser.parse_args()

    from mmwork import datasets, read_table
    root = Path(tempfile.mkdtemp(prefix="mmwork-bench-"))
    os.environ["MMWORK_DATA"] = str(root)
    env = os.environ | {"MMWORK_DATA": str(root)}
    for name in ("speech-prompts", "instrument-samples", "fashion-mnist"):
        datasets.get(name)
    cores = os.cpu_count()
    audio_sets = ["speech-prompts", "instrument-samples"]
    items = {d: read_table(d, "items") for d in audio_sets}
    paths = [p for d in audio_sets for p in items[d]["audio"]]
    n_clips = len(paths)
    seconds_of_audio = float(sum(items[d]["duration_s"].sum() for d in audio_sets))

    serial_times, serial = [], None
    for _ in range(args.repeats):
        took, serial = serial_audio(paths)
        serial_times.append(took)
    serial_rate = n_clips / statistics.median(serial_times)

    # The serial loop run as a user would run a script: a fresh process per data set, imports and
    # numba warm-up included — the fair peer of the cold `mmwork extract` command below.
    serial_script = ("import sys, pandas as pd; from mmwork import read_table; "
                     "from mmwork.features.audio import audio_features, load_audio; "
                     "[audio_features(*load_audio(p)) for p in read_table(sys.argv[1], 'items')['audio']]")
    serial_cold_times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for d in audio_sets:
            subprocess.run([sys.executable, "-c", serial_script, d], env=env | {"OPENBLAS_NUM_THREADS": "1"}, check=True)
        serial_cold_times.append(time.perf_counter() - started)

    def clear():
        for d in audio_sets + ["fashion-mnist"]:
            shutil.rmtree(root / "processed" / d / "features", ignore_errors=True)

    cold_times, cold_rss = [], []
    for _ in range(args.repeats):
        clear()
        total, peak = 0.0, 0.0
        for d in audio_sets:
            wall, rss = _run_cli(["extract", d, "--modalities", "audio", "--workers", str(cores), "--no-progress"], env)
            total, peak = total + wall, max(peak, rss)
        cold_times.append(total)
        cold_rss.append(peak)
    # The same command again, nothing changed: every part is up to date, so nothing is extracted or written.
    noop_times = [sum(_run_cli(["extract", d, "--modalities", "audio", "--workers", str(cores), "--no-progress"],
                               env)[0] for d in audio_sets) for _ in range(args.repeats)]

    from distributed import Client, LocalCluster
    from mmwork.features import extract
    with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        clear()
        for d in audio_sets:  # first pass warms the workers (imports, numba JIT)
            extract(d, "audio", scheduler=cluster.scheduler_address, progress=False)
        warm_times = []
        for _ in range(args.repeats):
            clear()
            started = time.perf_counter()
            for d in audio_sets:
                extract(d, "audio", scheduler=cluster.scheduler_address, progress=False)
            warm_times.append(time.perf_counter() - started)
        worker_rss = max(client.run(lambda: __import__("psutil").Process().memory_info().rss).values()) / 2**20

    max_diff = 0.0
    for d in audio_sets:
        table = read_table(d, "features/audio").set_index("item_id")
        for item_id, path in zip(items[d]["item_id"], items[d]["audio"]):
            for column, vector in serial[path].items():
                max_diff = max(max_diff, float(np.abs(np.asarray(table.loc[item_id, column]) - vector).max()))

    # Images: EfficientNet-Lite0 (1280-d) on the first N Fashion-MNIST images.
    from mmwork.features.image import CnnEncoder, decode_image
    fashion = read_table("fashion-mnist", "items").head(args.images)
    images = [decode_image(b) for b in fashion["image"]]
    encoder = CnnEncoder(device="cpu", batch_size=64)
    encoder.encode(images[:64])  # load + warm
    started = time.perf_counter()
    encoder.encode(images)
    inprocess_rate = len(images) / (time.perf_counter() - started)
    clear()
    wall, image_rss = _run_cli(["extract", "fashion-mnist", "--modalities", "image", "--limit", str(args.images),
                                "--workers", str(cores), "--no-progress"], env)
    pipeline_image_rate = args.images / wall

    median = statistics.median
    result = {
        "benchmark": "feature extraction",
        "machine": {"cores": cores, "platform": platform.platform(), "python": platform.python_version()},
        "audio": {
            "clips": n_clips, "seconds_of_audio": round(seconds_of_audio, 1), "repeats": args.repeats,
            "serial_loop": {"median_s": round(median(serial_times), 2), "clips_per_s": round(serial_rate, 1)},
            "serial_loop_cold_process": {"median_s": round(median(serial_cold_times), 2),
                                         "clips_per_s": round(n_clips / median(serial_cold_times), 1)},
            "mmwork_extract_cold": {"median_s": round(median(cold_times), 2),
                                    "clips_per_s": round(n_clips / median(cold_times), 1),
                                    "peak_rss_mb": round(max(cold_rss), 1)},
            "mmwork_extract_noop_rerun": {"median_s": round(median(noop_times), 2)},
            "mmwork_extract_warm_cluster": {"median_s": round(median(warm_times), 2),
                                            "clips_per_s": round(n_clips / median(warm_times), 1),
                                            "worker_peak_rss_mb": round(worker_rss, 1)},
            "ideal_cores_x_serial": {"clips_per_s": round(cores * serial_rate, 1)},
            "speedup_cold_vs_serial_cold": round(median(serial_cold_times) / median(cold_times), 2),
            "speedup_warm_vs_serial": round(median(serial_times) / median(warm_times), 2),
            "warm_fraction_of_ideal": round(median(serial_times) / median(warm_times) / cores, 2),
            "max_abs_diff_vs_serial": max_diff,
        },
        "images": {
            "model": "EfficientNet-Lite0 (1280-d pooled), CPU", "images": args.images,
            "in_process_batches_per_s": round(inprocess_rate, 1),
            "mmwork_extract_cold_per_s": round(pipeline_image_rate, 1),
            "mmwork_extract_note": "pipeline also computes the colour histogram and HOG per image",
            "peak_rss_mb": round(image_rss, 1),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
