"""The personalisation loop on MovieLens-100K, measured: train time, then both judges' evaluation over
``--users`` users and ``--seeds`` generator seeds (each judge ranks every item, real or generated,
through its one content path; target rank, swap rank, their difference and the lift with 95%
intervals over seeds, users and swap partners; every baseline and the placebo; the guide-judge
rank correlations; diversity, distinct-2, copy rate), and a few users' generated items, to JSON.

Needs the store's ``movielens-100k`` with MiniLM text features (``mmwork data get movielens-100k``,
``mmwork extract movielens-100k --modalities text``). Trains into ``data/models/personal/movielens-100k``
(replacing what is there) on the CPU unless ``--device`` says otherwise.

    python benchmarks/personalised.py --epochs 3 --users 200 --seeds 3 --threads 1
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.apps import personalise
from mmwork.evaluation import evaluate as rank_evaluate
from mmwork.evaluation import recbole_split
from mmwork.models.data.text import item_texts

RESULTS = Path(__file__).resolve().parent / "results" / "personalised.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--epochs", type=int, default=3, help="most language-model epochs (early stopping on valid)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--embedding", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=2000, help="BPE vocabulary size")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="generator (sampling) seeds per user")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--skip-train", action="store_true", help="evaluate the models already saved")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    load_at_start = os.getloadavg()
    torch.set_num_threads(args.threads)

    if not args.skip_train:
        personalise.train(args.dataset, vocab_size=args.vocab, device=args.device,
                          lm={"epochs": args.epochs, "hidden_dim": args.hidden, "embedding_dim": args.embedding})
    started = time.perf_counter()
    bundle = personalise.load(args.dataset, device=args.device)
    load_seconds = round(time.perf_counter() - started, 2)

    # the guide and the judge as recommenders, on the split's test part (RecBole protocol, full ranking)
    from mmwork.store.tables import read_table
    items = read_table(args.dataset, "items", columns=["item_id"])
    split = recbole_split(read_table(args.dataset, "interactions"), seed=bundle.config.split_seed,
                          item_ids=items["item_id"])
    from mmwork.evaluation.personalisation import ContentJudge
    models = {"guide": bundle.guide,
              "judge hybrid, as evaluate uses it (content path for every item)": ContentJudge(bundle.judge,
                                                                                              bundle.catalogue),
              "judge hybrid, its own warm path (item embeddings and biases; not used by evaluate)": bundle.judge,
              "judge text_factors (one path)": ContentJudge(bundle.judge2, bundle.judge2_catalogue)}
    accuracy = {role: {k: float(np.mean(v)) for k, v in rank_evaluate(model, split, "test", k=10).metrics.items()}
                for role, model in models.items()}

    started = time.perf_counter()
    result = personalise.evaluate(args.dataset, args.users, n=args.n, candidates=args.candidates, swaps=args.swaps,
                                  seeds=args.seeds, device=args.device, cache=False)
    evaluate_seconds = round(time.perf_counter() - started, 1)
    examples = {}
    item_text = item_texts(args.dataset, bundle.config.text_column).set_index("item_id")[bundle.config.text_column]
    for user in ("1", "196", "405"):
        history = bundle.train.matrix[bundle.user_row(user)].indices
        texts = [item_text[i] for i in bundle.train.item_ids[history[:8]]]
        generated = bundle.for_user(user, 5, candidates=args.candidates)
        examples[user] = {"history (first 8 training items)": texts,
                          "generated": generated[["rank", "text", "labels", "in_catalogue"]].to_dict(orient="records")}

    record = bundle.record
    history = record["generator_history"]
    payload = {
        "what": "personalised generation on MovieLens-100K: guide = content-based; judges = multimodal hybrid "
                "(guide's features, content path) and text factors (TF-IDF/LSA, PureSVD + ridge map)",
        "command": "python benchmarks/personalised.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": args.device, "cpus": os.cpu_count(),
                    "load_average_1_5_15_at_start": list(load_at_start),
                    "load_average_1_5_15_at_end": list(os.getloadavg())},
        "settings": bundle.config.model_dump(),  # lm: LM_DEFAULTS over the class defaults, every field
        "train_seconds": record["seconds"]["total"], "train_stage_seconds": record["seconds"],
        "load_seconds": load_seconds,
        "evaluate_seconds": evaluate_seconds,
        "generator": {"train_pairs": record["train_pairs"], "valid_pairs": record["valid_pairs"],
                      "tokenizer_vocab": record["tokenizer_vocab"], "epochs_run": record["generator_epochs"],
                      "best_epoch": record["generator_best_epoch"],
                      "valid_perplexity_per_bpe_token": [float(np.exp(h["valid_loss"])) for h in history
                                                         if "valid_loss" in h],
                      "tokens_per_s": [round(h["tokens_per_s"]) for h in history]},
        "recommenders_on_test (RecBole protocol, @10)": accuracy,
        "evaluation": result,
        "examples": examples,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(payload, indent=1, default=str))
    for judge in personalise.JUDGES:
        table = personalise.evaluation_table(result, judge)
        print(f"judge: {judge}")
        print(table[["pr", "pr_low", "pr_high", "swap_pr", "diff", "diff_low", "diff_high", "lift", "lift_low",
                     "lift_high", "diversity", "distinct_2", "copy_rate", "guide_pr"]].round(3).to_string())
    print(json.dumps(result["rank_correlation"], indent=1))
    print(f"train {record['seconds']['total']} s, evaluate {evaluate_seconds} s; written to {args.output}")


if __name__ == "__main__":
    main()
