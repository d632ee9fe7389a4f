"""Text generators against issue 12's targets, to JSON: Austen perplexities of an LSTM next to a fair
Kneser-Ney 5-gram baseline, epoch by epoch; conditioned against unconditioned title models; and the
quality-diversity curves of maximum likelihood against SeqGAN, with bootstrap intervals.

1. **Jane Austen** (``mmwork data get austen``; splits fixed by chapter), ``--parts austen``: a BPE
   tokenizer fitted on the training sentences; an LSTM language model and an interpolated Kneser-Ney
   5-gram over the SAME BPE ids, scored on the same whole test sentences (uncut, end-of-sentence
   included, perplexity per BPE piece). The protocol is the same for both models (issue 19):

   - training sequences longer than ``--max-len`` pieces are cut the same way for both, to their first
     ``--max-len`` pieces and *without* an end token (the LSTM's rule; ``KneserNeyLM.fit(max_len=)``);
     the default 256 cuts 11 of the 24,852 training sentences and no test sentence;
   - the 5-gram's ``<unk>`` (pieces seen once in training) is split evenly over the ids it stands for
     (``n_types`` = the tokenizer's ordinary pieces), as the LSTM must name the exact piece; its OOV
     rate on the test pieces is reported;
   - the LSTM trains for ``--lm-epochs`` epochs with no early stopping, on one torch thread
     (``--threads``); after every epoch its valid and test perplexity, tokens/s and the machine's load
     average are recorded and the JSON is rewritten, so an interrupted run keeps its curve so far.
     ``--parts kn`` recomputes only the 5-gram figures into an existing JSON.
2. **MovieLens titles** (``title_conditions``: genres multi-hot + scaled year; split by item),
   ``--parts titles``: the same LSTM with and without the condition, and the 5-gram, on the held-out
   titles.
3. **Quality against diversity** (Caccia et al., ICLR 2020), ``--parts qd``: SeqGAN started from an
   Austen LSTM (so both sides share the MLE pre-training), then both models sampled at each temperature
   of ``--temperatures``: BLEU-4 of ``--samples`` samples against ``--references`` fixed test sentences
   (Chen & Cherry smoothing method 1), self-BLEU-4 leave-one-out against ``--self-references`` other
   samples, distinct-1/2 (corpus-level, per generated word), copy rate against the training sentences.
   Words, not BPE pieces: every metric reads ``Tokenizer.tokens``. ``compare_curves`` gives the mean BLEU
   gap at matched self-BLEU with a 95% bootstrap interval (samples resampled per temperature).

    OMP_NUM_THREADS=1 python benchmarks/text_generators.py --parts austen --lm-epochs 10
    python benchmarks/text_generators.py --parts qd --limit 8000 --lm-epochs 2 --gan-epochs 4 --max-len 40 \\
        --samples 300 --references 1000 --self-references 200 --temperatures 0.6 0.8 1.0 1.2 1.4 \\
        --out benchmarks/results/text_generators_qd.json --figure benchmarks/results/text_quality_diversity.png
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
from mmwork.models.generators.rnn_lm import RNNLanguageModel
from mmwork.models.data.text import SPECIALS, Tokenizer, austen_sentences, title_conditions
from mmwork.models.generators.text_gan import SeqGAN

RESULTS = Path(__file__).resolve().parent / "results" / "text_generators.json"


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _write(args, result: dict) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))


def austen_data(args) -> dict:
    train, valid, test = (austen_sentences(s, limit=args.limit) for s in ("train", "valid", "test"))
    tokenizer = Tokenizer("bpe", vocab_size=args.vocab).fit(train)
    ids = {name: tokenizer.encode(texts) for name, texts in (("train", train), ("valid", valid), ("test", test))}
    return {"train": train, "test": test, "ids": ids, "tokenizer": tokenizer}


def _counts(args, data) -> dict:
    ids = data["ids"]
    cut = {k: sum(len(s) >= args.max_len for s in v) for k, v in ids.items()}
    return {"sentences": {k: len(v) for k, v in ids.items()},
            "pieces_scored": {k: int(sum(len(s) + 1 for s in v)) for k, v in ids.items()},
            "train_pieces_per_epoch": int(sum(min(len(s) + 1, args.max_len) for s in ids["train"])),
            "sentences_cut_at_max_len": cut,
            "tokenizer": f"BPE, {data['tokenizer'].vocab_size_} pieces incl. 4 specials, fitted on the training "
                         "sentences"}


def kneser_ney(args, data) -> dict:
    """The fair 5-gram (same cut as the LSTM, no end token at a cut, <unk> split over the ids it stands
    for) and, for the record, the old protocol's figure (cut at 40 with an end token, test cut at 40,
    <unk> one outcome)."""
    ids, vocab = data["ids"], data["tokenizer"].vocab_size_
    n_types = vocab - len(SPECIALS)  # the ordinary BPE pieces: the LSTM names one of these (or EOS / UNK)
    kn = KneserNeyLM(order=5, n_types=n_types)
    _, seconds = _timed(lambda: kn.fit(ids["train"], max_len=args.max_len))
    out = {"protocol": f"fit on the training pieces cut like the LSTM's (first {args.max_len}, no end token "
                       "at a cut); min_count 2, <unk> split evenly over the ids it stands for; test and valid "
                       "whole sentences, end token included",
           "test_perplexity": kn.perplexity(ids["test"]), "valid_perplexity": kn.perplexity(ids["valid"]),
           "test_oov_rate": kn.oov_rate(ids["test"]), "valid_oov_rate": kn.oov_rate(ids["valid"]),
           "types_in_vocabulary": len(kn.vocabulary_), "types_behind_unk": n_types - len(kn.vocabulary_),
           "fit_seconds": seconds}
    one = KneserNeyLM(order=5).fit(ids["train"], max_len=args.max_len)
    out["test_perplexity_unk_as_one_outcome"] = one.perplexity(ids["test"])
    old = KneserNeyLM(order=5).fit([s[:40] for s in ids["train"]])
    out["old_protocol_test_perplexity"] = old.perplexity([s[:40] for s in ids["test"]])
    out["old_protocol"] = ("train and test cut at 40 pieces, each cut given an end token; <unk> one outcome "
                           "(README before issue 19: 75.8)")
    return out


def titles_kneser_ney(args) -> dict:
    """The titles' 5-gram (same BPE and split as ``titles``), <unk> as one outcome (as first measured)
    and split over the pieces it stands for, with its OOV rate."""
    corpus = title_conditions("movielens-100k")
    part = {s: [t for t, k in zip(corpus.titles, corpus.split) if k == s] for s in ("train", "test")}
    tokenizer = Tokenizer("bpe", vocab_size=args.title_vocab).fit(part["train"])
    ids = {s: tokenizer.encode(v) for s, v in part.items()}
    # cut like the title LSTMs (max_len 64, the default); no title is that long
    fair = KneserNeyLM(order=5, n_types=tokenizer.vocab_size_ - len(SPECIALS)).fit(ids["train"], max_len=64)
    return {"test_perplexity": fair.perplexity(ids["test"]), "test_oov_rate": fair.oov_rate(ids["test"]),
            "types_behind_unk": fair.unk_types_,
            "test_perplexity_unk_as_one_outcome": KneserNeyLM(order=5).fit(ids["train"]).perplexity(ids["test"])}


def austen_lstm(args, data, result: dict) -> None:
    """Train the LSTM epoch by epoch (no early stopping); record valid/test perplexity, speed and load
    after each epoch into ``result["austen"]["lstm"]``, rewriting the JSON every time."""
    ids = data["ids"]
    lm = RNNLanguageModel(vocab_size=data["tokenizer"].vocab_size_, epochs=args.lm_epochs, max_len=args.max_len,
                          hidden_dim=args.hidden, embedding_dim=args.embedding, patience=args.lm_epochs,
                          device=args.device, amp=True)
    curve = []
    table = result["austen"]["lstm"] = {"params": lm.get_params(), "curve": curve, "complete": False}
    last = [time.perf_counter(), os.getloadavg()[0]]

    def after_epoch(model: RNNLanguageModel) -> float:
        # called by fit after each epoch: the valid loss it returns is only logged (patience = epochs)
        trained = time.perf_counter() - last[0]
        scored = time.perf_counter()
        valid_nll, valid_n = model.log_likelihood(ids["valid"])
        test_nll, test_n = model.log_likelihood(ids["test"])
        curve.append({"epoch": len(curve) + 1, "valid_perplexity": float(np.exp(valid_nll.sum() / valid_n.sum())),
                      "test_perplexity": float(np.exp(test_nll.sum() / test_n.sum())),
                      "train_seconds": round(trained, 1),
                      "train_tokens_per_s": round(table["train_pieces_per_epoch"] / trained, 1),
                      "score_seconds": round(time.perf_counter() - scored, 1),
                      "load_1min_at_start": round(last[1], 2), "load_at_end": _load()})
        kn = result["austen"].get("kneser_ney_5", {}).get("test_perplexity")
        if kn:
            curve[-1]["lstm_over_kn"] = curve[-1]["test_perplexity"] / kn
        logging.info("epoch %s", curve[-1])
        _write(args, result)
        last[:] = [time.perf_counter(), os.getloadavg()[0]]
        return float(valid_nll.sum() / valid_n.sum())

    table["train_pieces_per_epoch"] = result["austen"]["train_pieces_per_epoch"]
    lm.fit(ids["train"], valid=after_epoch)
    table["history"] = lm.history_
    table["complete"] = len(curve) == args.lm_epochs
    _write(args, result)


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
    kn = KneserNeyLM(order=5, n_types=tokenizer.vocab_size_ - len(SPECIALS))
    kn.fit(ids["train"], max_len=lm.config.max_len)
    out["kneser_ney_5"] = {"test_perplexity": kn.perplexity(ids["test"]), "test_oov_rate": kn.oov_rate(ids["test"])}
    return out


def quality_vs_diversity(args, data) -> dict:
    ids = data["ids"]
    lm = RNNLanguageModel(vocab_size=data["tokenizer"].vocab_size_, epochs=args.lm_epochs, max_len=args.max_len,
                          hidden_dim=args.hidden, embedding_dim=args.embedding, device=args.device, amp=True)
    _, lm_seconds = _timed(lambda: lm.fit(ids["train"], valid=ids["valid"]))
    gan = SeqGAN(vocab_size=data["tokenizer"].vocab_size_, epochs=args.gan_epochs, max_len=args.max_len,
                 hidden_dim=args.hidden, embedding_dim=args.embedding, device=args.device)
    _, gan_seconds = _timed(lambda: gan.fit(ids["train"], valid=ids["valid"], pretrained=lm))
    tokenizer = data["tokenizer"]
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
    verdict = compare_curves(curves["MLE (LSTM)"], curves["SeqGAN"], draws=args.draws, seed=0)._asdict()
    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        from mmwork.apps import plots
        ax = plots.quality_diversity_curves(curves, title=(
            f"Austen: {args.samples} samples per point, BLEU-4 against {args.references} test sentences; MLE - GAN "
            f"{verdict['mean_gap']:+.4f} [{verdict['gap_low']:+.4f}, {verdict['gap_high']:+.4f}]"))
        ax.figure.savefig(args.figure, dpi=120, bbox_inches="tight")
    shown = ["temperature", "bleu", "self_bleu", "distinct_1", "distinct_2", "n_samples", "n_references",
             "self_bleu_references"]
    return {"lstm": {"test_perplexity": lm.perplexity(ids["test"]), "epochs": len(lm.history_),
                     "best_epoch": lm.best_epoch_, "train_seconds": lm_seconds},
            "seqgan": {"history": gan.history_, "train_seconds": gan_seconds,
                       "test_perplexity": gan.perplexity(ids["test"]), "params": gan.get_params()},
            "curves": {k: v[shown].to_dict(orient="records") for k, v in curves.items()},
            "copy_rate": copies, "verdict": verdict, "samples_per_point": args.samples,
            "references": args.references, "self_references": args.self_references}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["austen", "titles", "qd"],
                        choices=["austen", "kn", "titles", "qd"])
    parser.add_argument("--limit", type=int, default=None, help="sentences per Austen split (default all)")
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--title-vocab", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--embedding", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=256,
                        help="BPE pieces per training sentence (longer ones are cut, without an end token)")
    parser.add_argument("--lm-epochs", type=int, default=10)
    parser.add_argument("--title-epochs", type=int, default=30)
    parser.add_argument("--gan-epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--references", type=int, default=2000)
    parser.add_argument("--self-references", type=int, default=500)
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap draws for compare_curves")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0, 1.15, 1.3])
    parser.add_argument("--figure", type=Path, default=None, help="write the quality-diversity curves here (PNG)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pinned; 1 on shared cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    if "kn" in args.parts and "austen" not in args.parts and args.out.exists():  # add it to an existing run's JSON
        result = json.loads(args.out.read_text())
    else:
        result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                              "torch_threads": torch.get_num_threads(),
                              "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "load_before": _load(),
                              "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
                  "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    data = austen_data(args) if {"austen", "kn", "qd"} & set(args.parts) else None
    if "austen" in args.parts or "kn" in args.parts:
        result.setdefault("austen", {}).update(_counts(args, data))
    if "kn" in args.parts:
        result["austen"]["kneser_ney_5"] = kneser_ney(args, data)
        result["titles_kneser_ney_5"] = titles_kneser_ney(args)
        for row in result["austen"].get("lstm", {}).get("curve", []):
            row["lstm_over_kn"] = row["test_perplexity"] / result["austen"]["kneser_ney_5"]["test_perplexity"]
        _write(args, result)
    if "austen" in args.parts:
        austen_lstm(args, data, result)
    if "titles" in args.parts:
        result["titles"] = titles(args)
        _write(args, result)
    if "qd" in args.parts:
        result["quality_diversity"] = quality_vs_diversity(args, data)
        print(json.dumps(result["quality_diversity"]["curves"], indent=1), result["quality_diversity"]["verdict"])
    key = "kn_seconds" if args.parts == ["kn"] else "seconds"
    result["machine"]["load_after" if key == "seconds" else "load_after_kn"] = _load()
    result[key] = round(time.perf_counter() - started, 1)
    _write(args, result)
    print(f"wrote {args.out} in {result[key]} s")


if __name__ == "__main__":
    main()
