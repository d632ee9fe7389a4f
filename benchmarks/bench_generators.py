"""mmwork's VAE against pythae 0.1.2, side by side in one run (issue 11), written to JSON.

Protocol: the last 5,000 of Fashion-MNIST's 60,000 training images are held out as the validation set
(``mmwork.models.data.images.train_valid_split``) and the first ``--train-limit`` of the other 55,000 (all
by default) are trained on; pythae's ``VAE`` with its ``Encoder_Conv_VAE_MNIST`` / ``Decoder_Conv_AE_MNIST`` (latent 16,
BCE, Adam 1e-3, batch 100, no KL warm-up) trained by pythae's own trainer in its own virtual
environment (benchmarks/pythae_env.sh), as a child process (benchmarks/pythae_runner.py); mmwork's
``VAE(architecture="pythae-mnist")`` with the same layers, objective, optimiser, batch and epochs; the
two sides alternate, ``--rounds`` times. Each model's importance-sampled NLL (nats, ``--k`` samples)
is computed image by image on two fixed subsets, the first ``--nll-images`` validation images and the
first ``--nll-images`` test images: pythae with its own ``get_nll`` (in eval mode), mmwork with
``VAE.importance_nll``. Then mmwork's default VAE (its default config) trains for up to
``--default-epochs`` epochs, its validation NLL measured after each one (the early-stopping measure);
the epoch it reports is the first whose validation NLL is at or below pythae's validation NLL, and the
training time to that epoch is compared with pythae's. Test NLLs are only reported, at the epoch the
validation images chose: no choice reads a test image. Images/s count training steps only (pythae: its ``train_step``; mmwork: the
epoch loop), never evaluation.

    bash benchmarks/pythae_env.sh            # once: benchmarks/.venvs/pythae
    python benchmarks/bench_generators.py --epochs 3 --nll-images 200 --k 1000 --rounds 2

Needs the store's fashion-mnist table (``mmwork data get fashion-mnist``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.models.generators import VAE
from mmwork.models.data import fashion_mnist
from mmwork.models.data.images import train_valid_split

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_generators.json"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_pythae(folder: Path, python: Path) -> dict:
    started = time.perf_counter()
    subprocess.run([str(python), str(HERE / "pythae_runner.py"), str(folder)], check=True,
                   stdout=subprocess.DEVNULL)  # pythae prints its training log; errors still reach stderr
    result = json.loads((folder / "result.json").read_text())
    result["process_s"] = time.perf_counter() - started
    (folder / "result.json").unlink()
    return result


def run_mmwork(train: torch.Tensor, valid: torch.Tensor, test: torch.Tensor, args) -> dict:
    model = VAE(architecture="pythae-mnist", latent=16, likelihood="bernoulli", epochs=args.epochs, batch_size=100,
                lr=1e-3, warmup_epochs=0, seed=args.seed, device="cpu")
    started = time.perf_counter()
    model.fit(train)
    wall = time.perf_counter() - started
    seconds = [h["seconds"] for h in model.history_]
    started = time.perf_counter()
    nll = model.importance_nll(test, k=args.k, seed=args.seed)
    valid_nll = model.importance_nll(valid, k=args.k, seed=args.seed)
    return {"library": "mmwork", "params": sum(p.numel() for p in model.net_.parameters()),
            "config": model.get_params(), "train_images": len(train), "epochs": len(seconds), "fit_wall_s": wall,
            "epoch_seconds": seconds, "images_per_s": len(train) * len(seconds) / sum(seconds),
            "nll_per_image": nll.tolist(), "valid_nll_per_image": valid_nll.tolist(),
            "nll_seconds": time.perf_counter() - started}


def run_default(train: torch.Tensor, valid: torch.Tensor, test: torch.Tensor, args) -> dict:
    """mmwork's default VAE, its NLL on the validation subset after every epoch (the early-stopping
    measure, not part of the timing); the test subset's NLL is recorded beside it, never read by a
    choice."""
    test_nll = []

    def nll(model):
        test_nll.append(float(model.importance_nll(test, k=args.k, seed=args.seed).mean()))
        return float(model.importance_nll(valid, k=args.k, seed=args.seed).mean())
    nll.name = "nll"
    model = VAE(epochs=args.default_epochs, patience=args.default_epochs, seed=args.seed, device="cpu")
    model.fit(train, valid=nll)
    elapsed = np.cumsum([h["seconds"] for h in model.history_])
    return {"config": model.get_params(), "params": sum(p.numel() for p in model.net_.parameters()),
            "per_epoch": [{"epoch": h["epoch"], "train_s_cumulative": float(t), "valid_nll": h["valid_nll"],
                           "test_nll": tn, "images_per_s": h["images_per_s"]}
                          for h, t, tn in zip(model.history_, elapsed, test_nll)]}


def _summary(runs: list[dict]) -> dict:
    nll = np.array([r["nll_per_image"] for r in runs])  # (rounds, images)
    valid = np.array([r["valid_nll_per_image"] for r in runs])
    return {"valid_nll_median_of_rounds": float(np.median(valid.mean(1))),"images_per_s_median": statistics.median(r["images_per_s"] for r in runs),
            "train_s_median": statistics.median(sum(r["epoch_seconds"]) for r in runs),
            "nll_mean_per_round": nll.mean(1).tolist(), "nll_median_of_rounds": float(np.median(nll.mean(1))),
            "params": runs[0]["params"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of both same-architecture fits")
    parser.add_argument("--default-epochs", type=int, default=10, help="most epochs for mmwork's default VAE")
    parser.add_argument("--train-limit", type=int, help="only the first N training images (of the 55,000 "
                        "left once the 5,000 validation images are held out)")
    parser.add_argument("--nll-images", type=int, default=200, help="the first N validation images (choices) and "
                        "the first N test images (reported) score the NLL")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--rounds", type=int, default=1, help="pythae/mmwork fits, alternating which goes first")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pythae-python", type=Path, default=HERE / ".venvs" / "pythae" / "bin" / "python")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.k > 100 and args.k % 100:
        parser.error("--k above 100 must be a multiple of 100 (pythae's get_nll draws in batches of 100)")
    if not args.pythae_python.exists():
        parser.error(f"{args.pythae_python} is missing: run `bash benchmarks/pythae_env.sh` first")
    torch.set_num_threads(args.threads)
    train, valid = (d.images for d in train_valid_split(fashion_mnist("train"), limit=args.train_limit))
    valid = valid[:args.nll_images]
    test = fashion_mnist("test", limit=args.nll_images).images
    out = {"protocol": " ".join(__doc__.split("\n\n")[1].split()),
           "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                       "cpu": platform.processor() or platform.machine(), "uptime_at_start": _uptime()},
           "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "train_images": len(train), "nll_images": len(test), "valid_nll_images": len(valid), "k": args.k}
    runs = {"pythae": [], "mmwork": []}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.save(folder / "train.npy", train.numpy())
        np.save(folder / "test.npy", test.numpy())
        np.save(folder / "valid.npy", valid.numpy())
        (folder / "args.json").write_text(json.dumps({"threads": args.threads, "seed": args.seed, "latent": 16,
                                                      "epochs": args.epochs, "lr": 1e-3, "batch_size": 100,
                                                      "k": args.k}))
        for round_ in range(args.rounds):
            order = ["pythae", "mmwork"] if round_ % 2 == 0 else ["mmwork", "pythae"]
            for side in order:
                load = os.getloadavg()
                result = (run_pythae(folder, args.pythae_python) if side == "pythae"
                          else run_mmwork(train, valid, test, args))
                result |= {"round": round_ + 1, "load_average_before": load, "load_average_after": os.getloadavg()}
                runs[side].append(result)
                print(side, f"round {round_ + 1}: {result['images_per_s']:.1f} images/s, "
                      f"NLL {np.mean(result['nll_per_image']):.2f} nats (k={args.k}, {len(test)} images), "
                      f"load {load[0]:.2f}", flush=True)
    out["runs"] = runs
    pythae, mmwork = _summary(runs["pythae"]), _summary(runs["mmwork"])
    paired = np.array(runs["mmwork"][0]["nll_per_image"]) - np.array(runs["pythae"][0]["nll_per_image"])
    out["same_architecture"] = {
        "pythae": pythae, "mmwork": mmwork,
        "speed_ratio_mmwork_over_pythae": mmwork["images_per_s_median"] / pythae["images_per_s_median"],
        "nll_mmwork_minus_pythae": mmwork["nll_median_of_rounds"] - pythae["nll_median_of_rounds"],
        "nll_paired_difference_round1": {"mean": float(paired.mean()),
                                         "std_error": float(paired.std(ddof=1) / np.sqrt(len(paired)))
                                         if len(paired) > 1 else None},
        "targets": "same or lower NLL at >= 1.5x pythae's images/s"}
    default = run_default(train, valid, test, args)
    target = pythae["valid_nll_median_of_rounds"]
    reached = next((e for e in default["per_epoch"] if e["valid_nll"] <= target), None)  # chosen on validation
    default |= {"pythae_valid_nll": target, "pythae_test_nll": pythae["nll_median_of_rounds"],
                "pythae_train_s": pythae["train_s_median"],
                "first_epoch_at_or_below_pythae_valid_nll": reached and reached["epoch"],
                "test_nll_at_that_epoch": reached and reached["test_nll"],
                "train_s_to_reach": reached and reached["train_s_cumulative"],
                "time_ratio_to_pythae": reached and reached["train_s_cumulative"] / pythae["train_s_median"],
                "target": "pythae's NLL in less than half pythae's training time (ratio < 0.5), the epoch chosen "
                          "on validation images, the test NLL reported at it"}
    out["default_vae"] = default
    out["machine"]["uptime_at_end"] = _uptime()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1))
    summary = {"same_architecture": {k: v for k, v in out["same_architecture"].items()},
               "default_vae": {k: v for k, v in default.items() if k != "config"}, "machine": out["machine"]}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
