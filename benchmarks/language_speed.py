"""Speed of the language model (SmolLM2-135M-Instruct, float32): batched generation against one prompt at a
time with transformers' default ``generate``, and LoRA fine-tuning, to JSON.

1. Generation: the same ``--prompts`` chat prompts (film pitches for 16 viewer profiles) and the same
   ``--max-new-tokens``, greedy on every side (so every side writes the same tokens and tokens/s compare the
   same work; the texts are checked equal). Sides: ``hf_one_at_a_time`` (``model.generate(**ids,
   do_sample=False)`` per prompt, transformers' defaults: KV cache, stop at the end-of-turn token),
   ``hf_batched`` (transformers' ``generate`` on the left-padded batch of 16, its documented batched use),
   ``ours_batch16`` (``LanguageModel.generate(batch_size=16)``: left padding, KV cache, finished rows leave
   the batch) and ``ours_sampled`` (the same at temperature 0.7, top-p 0.9, seed 0: tokens/s of the
   default sampling; its lengths differ, so it is not in the ratio). Tokens counted: generated tokens up
   to and including each prompt's end-of-turn token. Runs alternate sides (the order flips every
   repeat), ``--repeats`` times, at ``torch.set_num_threads`` 2 and 1; medians.
2. LoRA fine-tuning: ``fine_tune_lora`` (rank 8 on q/k/v/o, batch 8, one epoch over ``--lora-pairs``
   (prompt, pitch) pairs, held-out loss once at the end) -- training tokens (prompt + target, padding
   excluded) per second of the training steps, medians over repeats, at 2 and 1 threads.

Absolute seconds depend on the load (other jobs share these cores): every figure carries the load
average (``os.getloadavg``, as ``uptime`` prints it) before and after; the speed-up is a ratio of runs
made in the same process, alternating.

    HF_HUB_OFFLINE=1 python benchmarks/language_speed.py
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmwork.datasets import pretrained  # noqa: E402
from mmwork.models.language import LanguageModel, fine_tune_lora  # noqa: E402
from mmwork.store.tables import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "language_speed.json"
PROFILES = [
    ("Toy Story; Aladdin; The Lion King", "Animation, Children's, Comedy"),
    ("Star Wars; The Empire Strikes Back; Alien", "Sci-Fi, Action, Adventure"),
    ("Fargo; Pulp Fiction; Reservoir Dogs", "Crime, Thriller, Drama"),
    ("Casablanca; Roman Holiday", "Romance, Drama"),
    ("The Shining; Psycho; Scream", "Horror, Thriller"),
    ("Schindler's List; Gandhi; Braveheart", "Drama, War, History"),
    ("When Harry Met Sally; Sleepless in Seattle; Notting Hill; Four Weddings and a Funeral", "Romance, Comedy"),
    ("Heat; The Godfather", "Crime, Drama"),
    ("Jurassic Park; Twister; Independence Day", "Action, Adventure, Sci-Fi, Thriller"),
    ("Fantasia", "Animation, Musical"),
    ("The Usual Suspects; Seven; The Silence of the Lambs", "Crime, Mystery, Thriller"),
    ("Apollo 13; The Right Stuff", "Drama, History"),
    ("Monty Python and the Holy Grail; Airplane!; Naked Gun", "Comedy"),
    ("Blade Runner; 2001: A Space Odyssey; Brazil", "Sci-Fi, Drama"),
    ("The Sound of Music; Mary Poppins; Singin' in the Rain", "Musical, Family"),
    ("Good Will Hunting; Dead Poets Society", "Drama"),
]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def prompts(lm: LanguageModel, n: int) -> list[str]:
    out = []
    for i in range(n):
        liked, genres = PROFILES[i % len(PROFILES)]
        out.append(lm.chat([{"role": "user", "content": (
            f"A viewer loved these films: {liked}. Their favourite genres: {genres}. Invent a new film for them: "
            "give its title on the first line, then a one-paragraph pitch.")}]))
    return out


def hf_one_at_a_time(lm: LanguageModel, texts: list[str], max_new_tokens: int) -> tuple[list[str], list[int]]:
    out, counts = [], []
    for text in texts:
        ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            generated = lm.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        new = generated[0, ids.input_ids.shape[1]:].tolist()
        out.append(lm.tokenizer.decode(new, skip_special_tokens=True).strip())
        counts.append(len(new))
    return out, counts


def hf_batched(lm: LanguageModel, texts: list[str], max_new_tokens: int) -> tuple[list[str], list[int]]:
    tok = lm.tokenizer
    side, tok.padding_side = tok.padding_side, "left"
    try:
        ids = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    with torch.inference_mode():
        generated = lm.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    new = generated[:, ids.input_ids.shape[1]:]
    end = lm.model.generation_config.eos_token_id
    out, counts = [], []
    for row in new.tolist():
        n = row.index(end) + 1 if end in row else len(row)  # rows that ended early are padded after their end
        out.append(tok.decode(row[:n], skip_special_tokens=True).strip())
        counts.append(n)
    return out, counts


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def generation(lm: LanguageModel, texts: list[str], args) -> dict:
    sides = {
        "hf_one_at_a_time": lambda: hf_one_at_a_time(lm, texts, args.max_new_tokens),
        "hf_batched": lambda: hf_batched(lm, texts, args.max_new_tokens),
        "ours_batch16": lambda: (lambda g: (list(g), g.new_tokens))(
            lm.generate(texts, max_new_tokens=args.max_new_tokens, temperature=0, batch_size=16, progress=False)),
        "ours_sampled": lambda: (lambda g: (list(g), g.new_tokens))(
            lm.generate(texts, max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.9, seed=0,
                        batch_size=16, progress=False)),
    }
    result = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs = {name: [] for name in sides}
        before, outputs = load(), {}
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in order:
                seconds, (out, counts) = timed(sides[name])
                outputs[name] = out
                runs[name].append({"seconds": round(seconds, 3), "tokens": int(sum(counts)),
                                   "tokens_per_s": round(sum(counts) / seconds, 2), "load": load()})
                print(threads, name, runs[name][-1], flush=True)
        medians = {name: float(np.median([r["tokens_per_s"] for r in rs])) for name, rs in runs.items()}
        reference = outputs["hf_one_at_a_time"]
        ratios = [o["tokens_per_s"] / h["tokens_per_s"] for o, h in zip(runs["ours_batch16"], runs["hf_one_at_a_time"])]
        result[f"threads_{threads}"] = {
            "runs": runs, "tokens_per_s_median": {k: round(v, 2) for k, v in medians.items()},
            "speedup_ours_batch16_over_hf_one_at_a_time": round(medians["ours_batch16"] / medians["hf_one_at_a_time"],
                                                                2),
            "speedup_per_repeat": [round(r, 2) for r in ratios],
            "speedup_hf_batched_over_one_at_a_time": round(medians["hf_batched"] / medians["hf_one_at_a_time"], 2),
            "same_texts_as_hf_one_at_a_time": {k: sum(a == b for a, b in zip(outputs[k], reference))
                                               for k in ("hf_batched", "ours_batch16")},
            "load_before": before, "load_after": load()}
        result["examples"] = [{"prompt_profile": PROFILES[i % len(PROFILES)][0], "greedy": outputs["ours_batch16"][i],
                               "sampled": outputs["ours_sampled"][i]} for i in range(3)]
    return result


def lora(lm: LanguageModel, texts: list[str], args) -> dict:
    pitches = lm.generate(texts, max_new_tokens=args.max_new_tokens, temperature=0.7, seed=1, progress=False)
    pairs = [(texts[i % len(texts)], pitches[i % len(texts)] or "A film.") for i in range(args.lora_pairs + 4)]
    result = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        before, runs = load(), []
        for repeat in range(args.repeats):
            tuned = fine_tune_lora(lm, pairs[:args.lora_pairs], pairs[args.lora_pairs:], rank=8, epochs=1,
                                   batch_size=8, seed=repeat, progress=False)
            row = tuned.adapter["history"][-1]
            steps_s = row["seconds"] - row.get("valid_seconds", 0.0)
            runs.append({"train_tokens": row["train_tokens"], "seconds_incl_valid": row["seconds"],
                         "train_seconds": round(steps_s, 3), "tokens_per_s": round(row["train_tokens"] / steps_s, 1),
                         "valid_loss": round(row["valid_loss"], 4), "load": load()})
            print(threads, "lora", runs[-1], flush=True)
        result[f"threads_{threads}"] = {
            "runs": runs, "tokens_per_s_median": float(np.median([r["tokens_per_s"] for r in runs])),
            "load_before": before, "load_after": load()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--lora-pairs", type=int, default=32)
    parser.add_argument("--parts", nargs="+", default=["generation", "lora"], choices=["generation", "lora"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    pretrained.get("smollm2")
    lm = LanguageModel.load(device="cpu")
    texts = prompts(lm, args.prompts)
    result = {"protocol": __doc__.split("\n\n")[0].strip(), "model": "smollm2 (SmolLM2-135M-Instruct, float32)",
              "device": "cpu", "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "torch": torch.__version__, "load_seconds": round(lm.load_seconds, 2), "load_source": lm.source,
              "prompts": args.prompts, "prompt_tokens": [lm.n_tokens(t) for t in texts],
              "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "threads": args.threads}
    lm.generate(texts[:2], max_new_tokens=4, progress=False)  # warm-up
    if "generation" in args.parts:
        result["generation"] = generation(lm, texts, args)
        write_json(args.out, result)
    if "lora" in args.parts:
        result["lora"] = lora(lm, texts, args)
        write_json(args.out, result)
    print(args.out)


if __name__ == "__main__":
    main()
