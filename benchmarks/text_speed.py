"""Speed of the text generators against the code before issue 21, and the demo's Austen LSTM against the
fair Kneser-Ney 5-gram under its time budget, to JSON.

1. ``--parts tokens``: LSTM training tokens/s, the old code (``--baseline``, read from git) against the
   new, the same network (embedding 128, hidden 256, 4,000 BPE pieces: docs/generators.md's model) on
   the first ``--sentences`` Austen training sentences, one torch thread, one epoch per run, runs
   alternating old / new, ``--repeats`` times, medians. New: the full softmax (the old default, same
   maths) and the adaptive softmax. Each run's 1-epoch valid perplexity is recorded too.
2. ``--parts seqgan``: seconds per adversarial epoch (``g_steps`` 1 with ``rollouts`` 4 x ``g_batch``
   32, ``d_steps`` 3), old against new, both started from the same pre-trained language model
   (1 epoch), alternating, medians.
3. ``--parts demo``: the demo's Austen LSTM (``DEMO``; notebook 05's austen_* parameters) on ALL
   training sentences with ``time_budget``, on ``--demo-threads`` threads, and the fair 5-gram
   (docs/generators.md: same BPE pieces, training sentences cut at max_len for both, <unk> spread);
   test and valid perplexity of both and their ratio.

Absolute seconds depend on the load (other jobs on the same cores): every figure carries the load
average, and speed-ups are ratios measured in the same process, alternating.

    OMP_NUM_THREADS=1 python benchmarks/text_speed.py --parts tokens seqgan demo
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.evaluation.text_generation import KneserNeyLM
from mmwork.models.data.text import SPECIALS, Tokenizer, austen_sentences
from mmwork.models.generators.rnn_lm import RNNLanguageModel
from mmwork.models.generators.text_gan import SeqGAN

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "text_speed.json"
NETWORK = {"embedding_dim": 128, "hidden_dim": 256, "max_len": 256}
DEMO = {"vocab": 2000, "params": {"embedding_dim": 64, "hidden_dim": 128, "max_len": 48, "lr": 0.005,
                                  "softmax": "adaptive", "cutoffs": [500], "dropout": 0.0},
        "epochs": 20, "budget": 75}
"""The demo's Austen LSTM (notebook 05: austen_vocab, austen_params, austen_epochs, austen_budget)."""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def old_modules(revision: str):
    """rnn_lm and text_gan as they were at ``revision``, imported under private names."""
    folder = Path(tempfile.mkdtemp(prefix="mmwork-old-"))
    out = []
    for name in ("rnn_lm", "text_gan"):
        source = subprocess.run(["git", "show", f"{revision}:mmwork/models/generators/{name}.py"], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout
        source = source.replace("from mmwork.models.generators.rnn_lm import", "from old_rnn_lm import")
        (folder / f"old_{name}.py").write_text(source)
        spec = importlib.util.spec_from_file_location(f"old_{name}", folder / f"old_{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = module
        spec.loader.exec_module(module)
        out.append(module)
    return out


def austen(vocab: int, limit: int | None = None) -> dict:
    texts = {s: austen_sentences(s, limit=limit if s == "train" else None) for s in ("train", "valid", "test")}
    tokenizer = Tokenizer("bpe", vocab_size=vocab).fit(texts["train"])
    return {"vocab": tokenizer.vocab_size_, **{s: tokenizer.encode(t) for s, t in texts.items()}}


def perplexity(model, ids) -> float:
    return round(float(model.perplexity(ids)), 2)


def tokens(args, old_lm) -> dict:
    data = austen(4000)  # the tokenizer of the full-size runs, fitted on all training sentences
    train = data["train"][:args.sentences]
    runs = {"old": (old_lm.RNNLanguageModel, {}), "new, full softmax": (RNNLanguageModel, {}),
            "new, adaptive softmax": (RNNLanguageModel, {"softmax": "adaptive"})}
    speed, quality = {k: [] for k in runs}, {}
    for _ in range(args.repeats):
        for name, (klass, extra) in runs.items():
            model = klass(vocab_size=data["vocab"], epochs=1, device="cpu", **NETWORK, **extra).fit(train)
            speed[name].append(model.history_[0]["tokens_per_s"])
            quality[name] = perplexity(model, data["valid"])
    median = {k: float(np.median(v)) for k, v in speed.items()}
    return {"protocol": f"one epoch on the first {len(train):,} Austen training sentences, BPE 4,000, "
                        f"{NETWORK}, one torch thread, runs alternating, median of {args.repeats}",
            "tokens_per_s": {k: [round(x) for x in v] for k, v in speed.items()},
            "median_tokens_per_s": {k: round(v) for k, v in median.items()},
            "speedup_vs_old": {k: round(v / median["old"], 2) for k, v in median.items()},
            "valid_perplexity_after_the_epoch": quality, "load_at_end": load()}


def seqgan(args, old_lm, old_gan) -> dict:
    data = austen(4000, limit=2000)
    gan = {"max_len": 48, "epochs": args.gan_epochs, "d_pretrain_steps": 2, "device": "cpu", **NETWORK}
    runs = {"old": (old_lm.RNNLanguageModel, old_gan.SeqGAN, {}), "new": (RNNLanguageModel, SeqGAN, {}),
            "new, adaptive softmax": (RNNLanguageModel, SeqGAN, {"softmax": "adaptive"})}
    times, pretrained = {k: [] for k in runs}, {}
    for name, (lm_class, _, extra) in runs.items():
        pretrained[name] = lm_class(vocab_size=data["vocab"], epochs=1, **(NETWORK | {"max_len": 48}), **extra,
                                    device="cpu").fit(data["train"])
    for _ in range(args.repeats):
        for name, (_, klass, extra) in runs.items():
            model = klass(vocab_size=data["vocab"], **gan, **extra).fit(data["train"], pretrained=pretrained[name])
            times[name] += [row["seconds"] for row in model.history_]
    median = {k: float(np.median(v)) for k, v in times.items()}
    return {"protocol": f"Austen (2,000 sentences, BPE 4,000), {NETWORK | {'max_len': 48}}, SeqGAN defaults "
                        "(g_batch 32, rollouts 4, g_steps 1, d_steps 3), one torch thread, seconds per "
                        f"adversarial epoch, {args.gan_epochs} epochs per fit, fits alternating, median of all",
            "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
            "median_seconds": {k: round(v, 2) for k, v in median.items()},
            "speedup_vs_old": {k: round(median["old"] / v, 2) for k, v in median.items()}, "load_at_end": load()}


def demo(args) -> dict:
    torch.set_num_threads(args.demo_threads)
    data = austen(DEMO["vocab"])
    params = DEMO["params"]
    started = time.perf_counter()
    lm = RNNLanguageModel(vocab_size=data["vocab"], epochs=DEMO["epochs"], time_budget=DEMO["budget"], seed=0,
                          device="cpu", **params).fit(data["train"], valid=data["valid"])
    seconds = time.perf_counter() - started
    kn = KneserNeyLM(order=5, n_types=data["vocab"] - len(SPECIALS)).fit(data["train"], max_len=params["max_len"])
    out = {"lstm_test": perplexity(lm, data["test"]), "lstm_valid": perplexity(lm, data["valid"]),
           "kn5_test": round(kn.perplexity(data["test"]), 2), "kn5_valid": round(kn.perplexity(data["valid"]), 2)}
    torch.set_num_threads(1)
    return {"protocol": f"all {len(data['train']):,} Austen training sentences, BPE {DEMO['vocab']}, "
                        f"{args.demo_threads} torch threads, time_budget {DEMO['budget']} s; KN-5 fit on the same "
                        f"pieces cut at max_len {params['max_len']}, <unk> spread; whole test sentences",
            "params": DEMO, **out, "ratio_test": round(out["lstm_test"] / out["kn5_test"], 3),
            "ratio_valid": round(out["lstm_valid"] / out["kn5_valid"], 3), "epochs": len(lm.history_),
            "best_epoch": lm.best_epoch_, "fit_seconds": round(seconds, 1),
            "tokens_per_s": [round(h["tokens_per_s"]) for h in lm.history_], "load_at_end": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["tokens", "seqgan", "demo"], choices=["tokens", "seqgan", "demo"])
    parser.add_argument("--baseline", default="d8da0bc", help="git revision of the old code")
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gan-epochs", type=int, default=2)
    parser.add_argument("--demo-threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result |= {"machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}", "load_at_start": load()}
    old_lm, old_gan = old_modules(args.baseline)
    for part in args.parts:
        result[part] = (tokens(args, old_lm) if part == "tokens" else seqgan(args, old_lm, old_gan)
                        if part == "seqgan" else demo(args))
        print(part, json.dumps(result[part], default=str), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
