"""The pretrained language model's personalised items against the LSTM's, judged by one protocol in one run:
LSTM, SmolLM2 zero-shot, few-shot (examples from the user's own training items) and LoRA fine-tuned on
(profile -> item text) pairs of the training split (early-stopped on validation pairs), each guided (the
guide keeps the best ``n`` of ``candidates`` samples) and unguided (the first ``n``), beside random real
items, the user's held-out items, the guide's top-k and two placebos. Both judges, the swap test, 95%
intervals over generator seeds, users and swap partners; copy rate, title copy rate, distinct-2 and a
Kneser-Ney fluency score (see ``mmwork.apps.personalise.language_evaluation``).

Needs the personalisation models of ``personalise.train`` (``benchmarks/personalised.py``) and the
language model (``mmwork models get smollm2``). The goal's size is ``--users 200``; the time of a
smaller run is extrapolated per user (the fine-tune and the loading are fixed costs).

    python benchmarks/language_personalised.py --users 200 --seeds 3 --threads 2          # the goal's size
    python benchmarks/language_personalised.py --users 30 --seeds 2 --n 3 --candidates 4 --swaps 4 \
        --adapter data/models/personal/movielens-100k/language/adapter   # what results/ holds (see its run_note)
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

import pandas as pd
import torch

from mmwork.core.config import seconds

RESULTS = Path(__file__).resolve().parent / "results" / "language_personalised.json"
COLUMNS = ["pr", "swap_pr", "diff", "diff_low", "diff_high", "lift", "lift_low", "lift_high", "copy_rate",
           "title_copy_rate", "distinct_2", "fluency_ppl", "users"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--n", type=int, default=5, help="items per user and seed")
    parser.add_argument("--candidates", type=int, default=10, help="samples per user and seed (the guide keeps n)")
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--modes", default="zero-shot,few-shot,fine-tuned")
    parser.add_argument("--ft-pairs", type=int, default=2000, help="LoRA training pairs (training interactions)")
    parser.add_argument("--ft-valid", type=int, default=48, help="LoRA validation pairs (early stopping)")
    parser.add_argument("--ft-budget", default="15m", help="LoRA wall-clock budget")
    parser.add_argument("--adapter", default=None, help="use this saved adapter instead of fine-tuning")
    parser.add_argument("--example-users", default="1,196", help="users whose items (with pitches) are shown")
    parser.add_argument("--pitch-tokens", type=int, default=96, help="most tokens of an example's pitch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    from mmwork.apps import personalise
    from mmwork.apps.personalise.language import LanguageItems, adapter_dir, fine_tune
    from mmwork.apps.personalise.language_evaluation import evaluate_language
    from mmwork.models.language import LanguageModel

    load_at_start, started, cpu_started = os.getloadavg(), time.perf_counter(), time.process_time()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bundle = personalise.load(args.dataset, device="cpu")
    base = LanguageModel.load(device="cpu")
    load_seconds, load_cpu = round(time.perf_counter() - started, 1), round(time.process_time() - cpu_started, 1)
    lms, fine = {m: base for m in modes if m != "fine-tuned"}, None
    if "fine-tuned" in modes:
        t0, c0 = time.perf_counter(), time.process_time()
        if args.adapter:
            lms["fine-tuned"] = LanguageModel.load(adapter=args.adapter, device="cpu")
            fine = json.loads((Path(args.adapter) / "run.json").read_text()) \
                if (Path(args.adapter) / "run.json").exists() else {"adapter": args.adapter}
            fine["reused_from"] = args.adapter
        else:
            writer = LanguageItems(bundle, base, progress=False)
            lms["fine-tuned"], fine = fine_tune(writer, n_train=args.ft_pairs, n_valid=args.ft_valid,
                                                time_budget=args.ft_budget, eval_every=25, patience=3, epochs=1)
            fine["adapter"] = str(adapter_dir(args.dataset))
        fine["wall_seconds_here"] = round(time.perf_counter() - t0, 1)
        fine["cpu_seconds_here"] = round(time.process_time() - c0, 1)
    t0, c0 = time.perf_counter(), time.process_time()
    result = evaluate_language(bundle, lms, n_users=args.users, n=args.n, candidates=args.candidates,
                               swaps=args.swaps, seeds=args.seeds, progress=False)
    evaluate_seconds, evaluate_cpu = round(time.perf_counter() - t0, 1), round(time.process_time() - c0, 1)

    # the same protocol: personalise.evaluate at these settings gives the LSTM's and the baselines' rows again
    t0 = time.perf_counter()
    reference = personalise.evaluate(args.dataset, args.users, n=args.n, candidates=args.candidates, swaps=args.swaps,
                                     seeds=args.seeds, device="cpu", progress=False, cache=False)
    same = {"generated (guided)": "LSTM (guided)", "generated (unguided)": "LSTM (unguided)",
            "random real items": "random real items", "held-out items": "held-out items",
            "guide's top-k real items": "guide's top-k real items"}
    ours = pd.DataFrame(result["table"]).set_index(["judge", "condition"])
    gaps = [abs(float(row[key]) - float(ours.loc[(row["judge"], same[row["condition"]]), key]))
            for row in reference["table"] if row["condition"] in same for key in ("pr", "swap_pr", "diff")]
    check = {"what": "largest |difference| of pr, swap_pr and diff between personalise.evaluate's LSTM and real-item "
                     "rows and this run's, same settings", "max_abs_difference": max(gaps),
             "seconds": round(time.perf_counter() - t0, 1)}

    examples = {}
    mode = "fine-tuned" if "fine-tuned" in lms else modes[0]
    writer, pitcher = LanguageItems(bundle, lms[mode], progress=False), LanguageItems(bundle, base, progress=False)
    for user in [u.strip() for u in args.example_users.split(",") if u.strip()]:
        items = writer.for_user(user, mode, n=2, candidates=6)
        items["pitch"] = pitcher.pitches(list(items["text"]), max_new_tokens=args.pitch_tokens)
        examples[user] = {"history (prompt's profile)": writer.profile(bundle.user_row(user)).texts,
                          "mode": mode, "items": items.to_dict(orient="records")}
    total, total_cpu = round(time.perf_counter() - started, 1), round(time.process_time() - cpu_started, 1)
    users = result["settings"]["n_users"]
    budget = seconds(args.ft_budget) if "fine-tuned" in modes else 0.0
    per_user = evaluate_cpu / users
    example_prompt = LanguageItems(bundle, base, progress=False).prompt(bundle.user_row("196"), "few-shot")
    payload = {
        "what": "SmolLM2-135M-Instruct (zero-shot, few-shot, LoRA fine-tuned) vs the profile-conditioned LSTM, "
                "personalised MovieLens-100K item lines judged by the personalisation protocol",
        "command": "python benchmarks/language_personalised.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "load_average_1_5_15_at_start": list(load_at_start),
                    "load_average_1_5_15_at_end": list(os.getloadavg())},
        "protocol": personalise.PROTOCOL.split(" For each of")[0] + " Same users, partners, donors and seeds for "
                    "every condition; LM answers parsed into the catalogue's item line (prompts.parse_item); an "
                    "unreadable answer, or one with the title of a training item of the user, is a recorded skip.",
        "item_text": "what the judges score: the catalogue's line 'Title (year). Genres: A, B.' (the LSTM's format, "
                     "embedded and label-parsed by ItemContent.of_texts); the pitch is written separately and "
                     "never scored",
        "seconds": {"wall": {"load": load_seconds, "fine_tune": (fine or {}).get("wall_seconds_here"),
                             "evaluate": evaluate_seconds, "total": total},
                    "cpu": {"load": load_cpu, "fine_tune": (fine or {}).get("cpu_seconds_here"),
                            "evaluate": evaluate_cpu, "total": total_cpu},
                    "evaluate_stages": result["seconds"]},
        "extrapolated_200_users_seconds": {
            "rule": "from CPU seconds of this 1-thread run (the machine was shared, so its wall seconds overstate the "
                    "work): load + evaluate CPU seconds per user x 200 is one core's time, on 2 free cores at best "
                    "half of it; the fine-tune is time-budgeted (--ft-budget), so it adds its budget",
            "load_and_evaluate_one_core": round(load_cpu + per_user * 200),
            "fine_tune_budget": budget,
            "total_two_cores_at_best": round((load_cpu + per_user * 200) / 2 + budget),
            "evaluate_cpu_seconds_per_user": round(per_user, 1)},
        "fine_tune": fine, "example_prompt": {"mode": "few-shot", "user": "196", "text": example_prompt.text,
                                              "tokens": example_prompt.tokens, "note": example_prompt.note},
        "same_protocol_check": check, "evaluation": result, "examples": examples,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(payload, indent=1, default=str))
    table = pd.DataFrame(result["table"])
    for judge, part in table.groupby("judge", sort=False):
        print(f"judge: {judge}")
        print(part.set_index("condition")[COLUMNS].round(3).to_string())
    print(json.dumps({m: {k: v for k, v in s.items() if k != "examples"} for m, s in result["skips"].items()}, indent=1))
    print(f"same-protocol check: {check}")
    print(f"total {total} s wall, {total_cpu} s CPU (evaluate {evaluate_seconds} s wall, {evaluate_cpu} s CPU); "
          f"200 users extrapolated: {payload['extrapolated_200_users_seconds']}; written to {args.output}")


if __name__ == "__main__":
    main()
