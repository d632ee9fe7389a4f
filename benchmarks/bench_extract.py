"""Feature-extraction throughput, side by side in one run.

Audio, on a catalogue of >= 7,000 clips: the 733 real speech-prompts + instrument-samples clips, and
``--copies - 1`` perturbed copies of each (gain 1 - 0.002*k and seeded noise at -80 dBFS, written in
the clip's own format, so every copy is new content). Seconds and clips per second of
  - the plain serial loop a user would write (load each clip, compute the same librosa features, one
    BLAS thread), in a warm process;
  - `mmwork extract` as a fresh command with no cluster (local worker processes forked after one
    warm-up: imports, numba JIT), and the same command re-run with nothing changed;
  - the same command while `mmwork cluster start` keeps warm workers running;
  - the ideal: cores x the serial rate.
And on the 733 real clips alone: a fresh serial process (imports and JIT included) vs the cold command.
Variants alternate within each repeat; medians of ``--repeats``; the load average is recorded before
and after. Every mmwork table is checked against the serial loop's numbers (max abs difference).
Images (Fashion-MNIST): EfficientNet-Lite0 images per second, in-process batches vs the pipeline
(``--images 0`` skips them).

    python benchmarks/bench_extract.py [--copies 10] [--repeats 3] [--images 256]
                                       [--out benchmarks/results/extract.json]
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


def _run_cli(args: list[str], env: dict) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (its worker processes included) of one `mmwork`
    command run in a fresh process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run([sys.executable, '-m', 'mmwork'] + sys.argv[1:]); "
            "w = time.perf_counter() - t; c = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(w, max(c.ru_maxrss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024, "
            "c.ru_utime + c.ru_stime); sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    wall, rss, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(rss), float(cpu)


def _cluster_cpu(env: dict) -> float:
    """CPU seconds used so far by the running `mmwork cluster` (its server and worker processes)."""
    import psutil
    state = json.loads((Path(env["MMWORK_DATA"]) / "cluster.json").read_text())
    total = 0.0
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == state["pid"]:
                times = process.cpu_times()
                total += times.user + times.system
        except (psutil.Error, OSError):
            continue
    return total


def serial_audio(paths: list[str]) -> tuple[float, float, dict[str, dict]]:
    from mmwork.features.audio import audio_features, load_audio, warm_up
    from threadpoolctl import threadpool_limits
    warm_up()
    started, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        results = {p: audio_features(*load_audio(p)) for p in paths}
    return time.perf_counter() - started, time.process_time() - cpu, results


def make_catalogues(root: Path, copies: int) -> tuple[int, float]:
    """Import ``clips-real`` (the 733 real clips) and ``clips-many`` (them and their perturbed copies)."""
    import pandas as pd
    import soundfile as sf
    from mmwork import datasets, read_table
    real = pd.concat([read_table(d, "items")[["item_id", "audio"]].assign(item_id=lambda t, d=d: d + "/" + t.item_id)
                      for d in ("speech-prompts", "instrument-samples")])
    media = root / "clips" / "media"
    media.mkdir(parents=True)
    rows = []
    for index, (item_id, path) in enumerate(zip(real["item_id"], real["audio"])):
        info = sf.info(path)
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        for k in range(copies):
            target = media / f"{index:04d}-{k:02d}{Path(path).suffix}"
            if k == 0:
                shutil.copyfile(path, target)
            else:
                noise = np.random.default_rng(index * 100 + k).normal(0, 1e-4, y.shape).astype(np.float32)
                sf.write(target, np.clip(y * (1 - 0.002 * k) + noise, -1, 1), sr, subtype=info.subtype,
                         format=info.format)
            rows.append((f"{item_id}#{k}", f"media/{target.name}", k))
    table = pd.DataFrame(rows, columns=["item_id", "audio", "copy"])
    table[table["copy"] == 0].drop(columns="copy").to_csv(root / "clips" / "real.csv", index=False)
    table.drop(columns="copy").to_csv(root / "clips" / "many.csv", index=False)
    datasets.import_catalogue("clips-real", root / "clips" / "real.csv")
    datasets.import_catalogue("clips-many", root / "clips" / "many.csv")
    return len(real), float(sum(sf.info(p).duration for p in real["audio"]))


def _max_diff(dataset: str, serial: dict[str, dict]) -> float:
    from mmwork import read_table
    table = read_table(dataset, "features/audio")
    items = read_table(dataset, "items").set_index("item_id")
    worst = 0.0
    for row in table.itertuples(index=False):
        for column, vector in serial[items.loc[row.item_id, "audio"]].items():
            worst = max(worst, float(np.abs(np.asarray(getattr(row, column)) - vector).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10, help="copies of each of the 733 real clips (the first "
                                                              "is the clip itself): 10 gives 7,330 clips")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/extract.json")
    args = parser.parse_args()

    from mmwork import datasets, read_table
    root = Path(tempfile.mkdtemp(prefix="mmwork-bench-"))
    os.environ["MMWORK_DATA"] = str(root)
    env = os.environ | {"MMWORK_DATA": str(root)}
    for name in ("speech-prompts", "instrument-samples") + (("fashion-mnist",) if args.images else ()):
        datasets.get(name)
    cores = os.cpu_count()
    load_before = os.getloadavg()
    n_real, seconds_of_audio = make_catalogues(root, args.copies)
    paths = read_table("clips-many", "items")["audio"].tolist()
    real_paths = read_table("clips-real", "items")["audio"].tolist()
    n_clips = len(paths)
    command = ["extract", "clips-many", "--modalities", "audio", "--workers", str(cores), "--no-progress"]
    real_command = ["extract", "clips-real", "--modalities", "audio", "--workers", str(cores), "--no-progress"]
    # The serial loop run as a user would run a script: a fresh process, imports and numba JIT included.
    serial_script = ("import sys; from threadpoolctl import threadpool_limits; from mmwork import read_table; "
                     "from mmwork.features.audio import audio_features, load_audio; threadpool_limits(1); "
                     "[audio_features(*load_audio(p)) for p in read_table(sys.argv[1], 'items')['audio']]")

    def clear(dataset):
        shutil.rmtree(root / "processed" / dataset / "features", ignore_errors=True)

    times: dict[str, list[float]] = {k: [] for k in ("serial", "cold", "noop", "warm_cluster", "real_serial_cold",
                                                     "real_cold")}
    cpu: dict[str, list[float]] = {k: [] for k in ("serial", "cold", "warm_cluster")}
    rss, diffs, serial = [], {}, None
    for repeat in range(args.repeats):
        took, used, serial = serial_audio(paths)
        times["serial"].append(took)
        cpu["serial"].append(used)
        clear("clips-many")
        wall, peak, used = _run_cli(command, env)
        times["cold"].append(wall)
        cpu["cold"].append(used)
        rss.append(peak)
        if repeat == 0:
            diffs["cold"] = _max_diff("clips-many", serial)
        times["noop"].append(_run_cli(command, env)[0])
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", serial_script, "clips-real"], env=env, check=True)
        times["real_serial_cold"].append(time.perf_counter() - started)
        clear("clips-real")
        times["real_cold"].append(_run_cli(real_command, env)[0])
        if repeat == 0:
            diffs["real_cold"] = _max_diff("clips-real", serial)
        # Started (not timed) and stopped in each repeat: while it runs, the cold commands above would use it.
        subprocess.run([sys.executable, "-m", "mmwork", "cluster", "start", "--workers", str(cores)], env=env,
                       check=True, capture_output=True)
        try:
            clear("clips-many")
            before = _cluster_cpu(env)
            wall, _, used = _run_cli(command, env)
            times["warm_cluster"].append(wall)
            cpu["warm_cluster"].append(used + _cluster_cpu(env) - before)
            if repeat == 0:
                diffs["warm_cluster"] = _max_diff("clips-many", serial)
        finally:
            subprocess.run([sys.executable, "-m", "mmwork", "cluster", "stop"], env=env, check=True)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
              + "; cpu " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in cpu.items())
              + f"; load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    median = {k: statistics.median(v) for k, v in times.items()}

    result = {
        "benchmark": "feature extraction",
        "machine": {"cores": cores, "platform": platform.platform(), "python": platform.python_version()},
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in load_after]},
        "audio": {
            "clips": n_clips, "real_clips": n_real, "copies": args.copies, "repeats": args.repeats,
            "seconds_of_real_audio": round(seconds_of_audio, 1), "runs_s": {k: [round(x, 2) for x in v]
                                                                          for k, v in times.items()},
            "serial_loop": {"median_s": round(median["serial"], 2),
                            "clips_per_s": round(n_clips / median["serial"], 1)},
            "mmwork_extract_cold": {"median_s": round(median["cold"], 2),
                                    "clips_per_s": round(n_clips / median["cold"], 1),
                                    "peak_rss_mb": round(max(rss), 1)},
            "mmwork_extract_on_warm_cluster": {"median_s": round(median["warm_cluster"], 2),
                                               "clips_per_s": round(n_clips / median["warm_cluster"], 1)},
            "mmwork_extract_noop_rerun": {"median_s": round(median["noop"], 2),
                                          "fraction_of_cold_run": round(median["noop"] / median["cold"], 3)},
            "ideal_cores_x_serial": {"clips_per_s": round(cores * n_clips / median["serial"], 1)},
            "speedup_cold_vs_serial": round(median["serial"] / median["cold"], 2),
            "speedup_warm_cluster_vs_serial": round(median["serial"] / median["warm_cluster"], 2),
            "warm_cluster_fraction_of_ideal": round(median["serial"] / median["warm_cluster"] / cores, 2),
            "real_733": {"serial_fresh_process_s": round(median["real_serial_cold"], 2),
                         "mmwork_extract_cold_s": round(median["real_cold"], 2),
                         "speedup_cold_vs_fresh_serial": round(median["real_serial_cold"] / median["real_cold"], 2)},
            "max_abs_diff_vs_serial": diffs,
            # CPU seconds of all processes of a variant: unlike wall time, barely moved by other jobs'
            # load; serial CPU / variant CPU is the share of the variant's work that is extraction.
            "cpu_s_median": {k: round(statistics.median(v), 2) for k, v in cpu.items()},
            "cpu_efficiency_vs_serial": {k: round(statistics.median(cpu["serial"]) / statistics.median(v), 3)
                                         for k, v in cpu.items() if k != "serial"},
        },
    }
    if args.images:
        result["images"] = images(args.images, cores, env, root)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shutil.rmtree(root, ignore_errors=True)


def images(n: int, cores: int, env: dict, root: Path) -> dict:
    """EfficientNet-Lite0 (1280-d) on the first ``n`` Fashion-MNIST images: in-process batches vs the pipeline."""
    from mmwork import read_table
    from mmwork.features.image import CnnEncoder, decode_image
    fashion = read_table("fashion-mnist", "items").head(n)
    images = [decode_image(b) for b in fashion["image"]]
    encoder = CnnEncoder(device="cpu", batch_size=64)
    encoder.encode(images[:64])  # load + warm
    started = time.perf_counter()
    encoder.encode(images)
    inprocess_rate = len(images) / (time.perf_counter() - started)
    shutil.rmtree(root / "processed" / "fashion-mnist" / "features", ignore_errors=True)
    wall, image_rss, _ = _run_cli(["extract", "fashion-mnist", "--modalities", "image", "--limit", str(n),
                                "--workers", str(cores), "--no-progress"], env)
    return {
        "model": "EfficientNet-Lite0 (1280-d pooled), CPU", "images": n,
        "in_process_batches_per_s": round(inprocess_rate, 1),
        "mmwork_extract_cold_per_s": round(n / wall, 1),
        "mmwork_extract_note": "pipeline also computes the colour histogram and HOG per image",
        "peak_rss_mb": round(image_rss, 1),
    }


if __name__ == "__main__":
    main()
