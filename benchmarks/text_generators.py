"""Text generators against issue 12's targets, in one run, to JSON: perplexities next to a Kneser-Ney
5-gram baseline, and the quality-diversity curves of maximum likelihood against SeqGAN.

1. **Jane Austen** (``mmwork data get austen``; splits fixed by chapter): a BPE tokenizer fitted on the
   training sentences; an LSTM language model (early stopping on the valid sentences) and an interpolated
   Kneser-Ney 5-gram model over the SAME BPE tokens, both scored on the test sentences: perplexity per BPE
   token, end-of-sentence included.
2. **MovieLens titles** (``title_conditions``: genres multi-hot + scaled year; split by item): the same
   LSTM with and without the condition, and the 5-gram, on the held-out titles.
3. **Quality against diversity** (Caccia et al., ICLR 2020): SeqGAN started from the Austen LSTM (so both
   sides share the MLE pre-training), then both models sampled at each temperature of ``--temperatures``:
   BLEU-4 of ``--samples`` samples against ``--references`` fixed test sentences (Chen & Cherry smoothing
   method 1), self-BLEU-4 leave-one-out against ``--self-references`` other samples, distinct-1/2
   (corpus-level, per generated word), copy rate against the training sentences. Words, not BPE pieces:
   every metric reads ``Tokenizer.tokens``.

    python benchmarks/text_generators.py --lm-epochs 6 --gan-epochs 10
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.evaluation.text_generation import KneserNeyLM, compare_curves, copy_rate, quality_diversity
from mmwork.generators.rnn_lm import RNNLanguageModel
from mmwork.generators.text_data import Tokenizer, austen_sentences, title_conditions
from mmwork.generators.text_gan import SeqGAN

RESULTS = Path(__file__).resolve().parent / "results" / "text_generators.json"


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 1)


def austen(args) -> tuple[dict, RNNLanguageModel, Tokenizer, dict]:
    train, valid, test = (austen_sentences(s, limit=args.limit) for s in ("train", "valid", "test"))
    tokenizer = Tokenizer("bpe", vocab_size=args.vocab).fit(train)
    ids = {name: tokenizer.encode(texts) for name, texts in (("train", train), ("valid", valid), ("test", test))}
    lm = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, epochs=args.lm_epochs, max_len=args.max_len,
                          hidden_dim=args.hidden, embedding_dim=args.embedding, device=args.device, amp=True)
    _, lm_seconds = _timed(lambda: lm.fit(ids["train"], valid=ids["valid"]))
    # min_count=2: pieces seen once in training become <unk> for the 5-gram (which flatters it a little)
    kn = KneserNeyLM(order=5)
    _, kn_seconds = _timed(lambda: kn.fit([s[:args.max_len] for s in ids["train"]]))
    test_ids = [s[:args.max_len] for s in ids["test"]]
    table = {"sentences": {k: len(v) for k, v in ids.items()},
             "tokens": {k: int(sum(len(s) + 1 for s in v)) for k, v in ids.items()},
             "tokenizer": f"BPE, {tokenizer.vocab_size_} pieces incl. 4 specials, fitted on the training sentences",
             "lstm": {"test_perplexity": lm.perplexity(test_ids), "valid_perplexity": lm.perplexity(ids["valid"]),
                      "epochs": len(lm.history_), "best_epoch": lm.best_epoch_, "train_seconds": lm_seconds,
                      "params": lm.get_params()},
             "kneser_ney_5": {"test_perplexity": kn.perplexity(test_ids), "fit_seconds": kn_seconds}}
    table["lstm_vs_kn_ratio"] = table["lstm"]["test_perplexity"] / table["kneser_ney_5"]["test_perplexity"]
    return table, lm, tokenizer, {"train": train, "test": test, "ids": ids}


def titles(args) -> dict:
    corpus = title_conditions("movielens-100k")
    split = np.asarray(corpus.split)
    part = {s: [t for t, k in zip(corpus.titles, split) if k == s] for s in ("train", "valid", "test")}
    cond = {s: corpus.conditions[torch.as_tensor(split == s)] for s in part}
    tokenizer = Tokenizer("bpe", vocab_size=args.title_vocab).fit(part["train"])
    ids = {s: tokenizer.encode(v) for s, v in part.items()}
    out = {"titles": {s: len(v) for s, v in part.items()}, "condition": list(corpus.columns),
           "tokenizer": f"BPE, {tokenizer.vocab_size_} pieces, fitted on the training titles"}
    for name, dim in (("unconditioned", 0), ("conditioned", corpus.conditions.shape[1])):
        c = (lambda s: cond[s]) if dim else (lambda s: None)
        lm = RNNLanguageModel(vocab_size=tokenizer.vocab_size_, condition_dim=dim, epochs=args.title_epochs,
                              hidden_dim=256, embedding_dim=128, patience=5, device=args.device, amp=True)
        _, seconds = _timed(lambda: lm.fit(ids["train"], c("train"), valid=(ids["valid"], c("valid"))))
        out[name] = {"test_perplexity": lm.perplexity(ids["test"], c("test")), "epochs": len(lm.history_),
                     "best_epoch": lm.best_epoch_, "train_seconds": seconds}
    kn = KneserNeyLM(order=5).fit(ids["train"])
    out["kneser_ney_5"] = {"test_perplexity": kn.perplexity(ids["test"])}
    return out


def quality_vs_diversity(args, lm, tokenizer, data) -> dict:
    gan = SeqGAN(vocab_size=tokenizer.vocab_size_, epochs=args.gan_epochs, max_len=args.max_len,
                 hidden_dim=args.hidden, embedding_dim=args.embedding, device=args.device)
    _, gan_seconds = _timed(lambda: gan.fit(data["ids"]["train"], valid=data["ids"]["valid"], pretrained=lm))
    rng = np.random.default_rng(0)
    references = tokenizer.tokens([data["test"][i] for i in rng.choice(len(data["test"]), args.references,
                                                                       replace=False)])
    curves, copies = {}, {}
    for name, model in (("MLE (LSTM)", lm), ("SeqGAN", gan)):
        drawn = {}
        for t in args.temperatures:
            texts = tokenizer.decode(model.sample(args.samples, seed=1, temperature=t, max_len=args.max_len))
            drawn[t] = tokenizer.tokens(texts)
            copies[f"{name} @ {t}"] = copy_rate(texts, data["train"])
        curves[name] = quality_diversity(drawn, references, n=4, max_references=args.self_references)
    verdict = compare_curves(curves["MLE (LSTM)"], curves["SeqGAN"])._asdict()
    return {"seqgan": {"history": gan.history_, "train_seconds": gan_seconds,
                       "test_perplexity": gan.perplexity([s[:args.max_len] for s in data["ids"]["test"]]),
                       "params": gan.get_params()},
            "curves": {k: v.to_dict(orient="records") for k, v in curves.items()},
            "copy_rate": copies, "verdict": verdict, "samples_per_point": args.samples,
            "references": args.references, "self_references": args.self_references}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="sentences per Austen split (default all)")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--title-vocab", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--embedding", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=48, help="BPE tokens per sentence (longer ones are cut)")
    parser.add_argument("--lm-epochs", type=int, default=6)
    parser.add_argument("--title-epochs", type=int, default=30)
    parser.add_argument("--gan-epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--references", type=int, default=2000)
    parser.add_argument("--self-references", type=int, default=500)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0, 1.15, 1.3])
    parser.add_argument("--skip", nargs="*", default=[], choices=["titles", "gan"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads":
                          torch.get_num_threads(), "load_before": os.getloadavg(),
                          "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    result["austen"], lm, tokenizer, data = austen(args)
    print(json.dumps(result["austen"], indent=1, default=str), flush=True)
    if "titles" not in args.skip:
        result["titles"] = titles(args)
        print(json.dumps(result["titles"], indent=1), flush=True)
    if "gan" not in args.skip:
        result["quality_diversity"] = quality_vs_diversity(args, lm, tokenizer, data)
        print(json.dumps(result["quality_diversity"]["curves"], indent=1), result["quality_diversity"]["verdict"])
    result["machine"]["load_after"] = os.getloadavg()
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
