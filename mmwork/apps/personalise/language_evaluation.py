"""The language model's items judged like the LSTM's, in one run on one set of users: the personalisation
protocol of ``mmwork.apps.personalise.evaluation`` (one content scorer per judge, two judges, the swap
test, placebos, bootstrap intervals over generator seeds, users and swap partners), with the LSTM,
the language model's modes and the real-item baselines as conditions side by side.

The users, swap partners, placebo donors, LSTM samples and real-item sets are drawn exactly as
``personalise.evaluate`` draws them (same seeds), so the LSTM's and the baselines' rows equal that
function's at the same settings. Each language-model mode offers, per user and generator seed, the
first ``n`` distinct readable answers of its ``candidates`` samples ("unguided") and the ``n`` the
guide scores highest ("guided"), as the LSTM's pool does. A user for whom a mode has no readable
answer under some seed is left out of that mode's rows (counted in ``users`` and ``skips``).

Besides the ranks: copy rate (share of a condition's texts equal to a catalogue text), title copy
rate (title equal to a catalogue title, genres aside), distinct-2 (corpus-level, over the LSTM's BPE
tokens, as ``evaluate`` counts it) and fluency: the perplexity of a word Kneser-Ney 3-gram model fitted
on a seeded 90% of the catalogue's texts (a model that generated none of the texts, and reads the same
"Title (year). Genres: ..." format), over the condition's texts that copy no catalogue text (a copy
would be scored on text the n-gram model may have been fitted on); the unseen 10% of real texts give
the reference.

>>> result = evaluate_language(bundle, {"few-shot": lm, "fine-tuned": tuned}, n_users=30)   # doctest: +SKIP
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmwork.apps.personalise.evaluation import draw_panel
from mmwork.apps.personalise.language import LanguageItems, LanguageItemsConfig
from mmwork.apps.personalise.personaliser import Personaliser, interaction_split
from mmwork.apps.personalise.profiles import for_user as generate_for_profile
from mmwork.apps.personalise.prompts import MODES, item_title
from mmwork.core.errors import MmworkError

REAL = ("random real items", "held-out items", "guide's top-k real items")
FLUENCY = ("word Kneser-Ney 3-gram (discount 0.75, words seen once -> <unk>) fitted on a seeded 90% of the "
           "catalogue's texts; perplexity over a condition's texts that copy no catalogue text; reference: "
           "the other 10% of real texts")


@dataclass
class _Offer:
    items: object  # mmwork.evaluation.personalisation.ItemSet
    texts: list[str]
    vectors: np.ndarray


def user_seed(seed: int, row: int) -> int:
    """The LSTM's sampling seed of one user under one generator seed (as ``personalise.evaluate``)."""
    return int(np.random.SeedSequence([seed, row]).generate_state(1)[0])


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def fluency_model(texts: list[str], seed: int = 0):
    """(KN 3-gram fitted on a seeded 90% of ``texts``, the other 10%)."""
    from mmwork.evaluation.text_generation import KneserNeyLM
    order = np.random.default_rng([seed, 11]).permutation(len(texts))
    cut = int(0.9 * len(texts))
    fitted = [texts[i] for i in order[:cut]]
    return KneserNeyLM(order=3).fit([_words(t) for t in fitted]), [texts[i] for i in order[cut:]]


def evaluate_language(bundle: Personaliser, lms: dict, *, n_users: int = 200, n: int = 5, candidates: int = 10,
                      swaps: int = 10, seeds: int = 3, seed: int = 0, lstm: bool = True,
                      config: LanguageItemsConfig | dict | None = None, progress: bool = True) -> dict:
    """Judge the items of each language model in ``lms`` (mode -> model; modes from ``prompts.MODES``)
    beside the LSTM's (``lstm``) and the real-item baselines, for ``n_users`` users drawn as
    ``personalise.evaluate`` draws them. Returns a JSON-ready dict: ``table`` (one record per judge and
    condition), ``skips`` (per mode, the reasons answers were not used), ``seconds`` per stage."""
    from mmwork.evaluation import personalisation as pz
    from mmwork.evaluation.text_generation import copy_rate, distinct_n
    unknown = [m for m in lms if m not in MODES]
    if unknown:
        raise MmworkError(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    for name, value in (("n_users", n_users), ("n", n), ("candidates", candidates), ("swaps", swaps), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MmworkError(f"{name} must be a positive integer, got {value!r}")
    if candidates < n:
        raise MmworkError(f"candidates must be >= n ({n}), got {candidates}")
    seconds, clock = {}, [time.perf_counter(), time.process_time()]

    def lap(name):  # wall and CPU seconds (the CPU's share of a loaded machine shows in their ratio)
        now, cpu = time.perf_counter(), time.process_time()
        seconds[name] = {"wall": round(now - clock[0], 1), "cpu": round(cpu - clock[1], 1)}
        clock[:] = [now, cpu]

    split = interaction_split(bundle.dataset, bundle.config)
    train, test = split.train.matrix.tocsr(), split.test.matrix.tocsr()
    profiles, eligible, users, partners, donors, judges, guide, scored, catalogue_scores = draw_panel(
        bundle, train, test, n_users, swaps, seed)
    spec = next((s for s in bundle.config.features if s.startswith("text:")), bundle.config.features[0])
    generator_seeds = [seed + k for k in range(seeds)]
    offered: dict[str, list[dict[int, _Offer]]] = {}  # condition -> per seed -> user position -> offer

    def offer_texts(name, k, position, texts):
        features = bundle.content.of_texts(texts) | bundle.judge2_content.of_texts(texts)
        offered.setdefault(name, [{} for _ in generator_seeds])[k][position] = _Offer(
            pz.ItemSet(int(users[position]), features=features, twins=bundle.twins(texts)), texts, features[spec])

    def offer_pool(label, k, position, row, pool):
        if not pool:
            return
        scores = bundle.guide_scores(row)(pool)
        offer_texts(f"{label} (guided)", k, position, [pool[i] for i in np.argsort(-scores, kind="stable")[:n]])
        offer_texts(f"{label} (unguided)", k, position, pool[:n])

    for k, generator_seed in enumerate(generator_seeds):
        for position, row in enumerate(users.tolist()):
            if lstm:
                pool = generate_for_profile(bundle.generator, bundle.tokenizer, profiles[row], candidates,
                                            candidates=candidates, seed=user_seed(generator_seed, row),
                                            exclude=bundle.history(row))
                offer_pool("LSTM", k, position, row, list(pool["text"]))
            seen = train[row].indices
            unseen = np.setdiff1d(np.arange(train.shape[1]), seen)
            top = scored["guide"][position].astype(np.float64).copy()
            top[seen] = -np.inf
            real = {REAL[0]: np.sort(np.random.default_rng([generator_seed, row]).choice(
                        unseen, min(n, len(unseen)), replace=False)),
                    REAL[1]: test[row].indices, REAL[2]: np.argsort(-top, kind="stable")[:n]}
            for name, items in real.items():
                offered.setdefault(name, [{} for _ in generator_seeds])[k][position] = _Offer(
                    pz.ItemSet(row, items=items), [bundle.item_texts[i] for i in items if bundle.item_texts[i]],
                    bundle.catalogue[spec][items])
    lap("LSTM and real items")

    skips, prompt_notes = {}, {}
    for mode, lm in lms.items():
        writer = LanguageItems(bundle, lm, config, progress=progress)
        prompts = [writer.prompt(int(row), mode) for row in users]
        prompt_notes[mode] = {"truncated": sum(p.note is not None for p in prompts),
                              "mean_tokens": float(np.mean([p.tokens for p in prompts]))}
        drawn = writer.sample(prompts, users.tolist(), generator_seeds, candidates)
        label = f"LM {mode}"
        for position, row in enumerate(users.tolist()):
            texts = drawn.texts[position]
            for k in range(seeds):
                pool = list(dict.fromkeys(t for t in texts[k * candidates:(k + 1) * candidates] if t is not None))
                offer_pool(label, k, position, row, pool)
        reasons = pd.Series([s["reason"] for s in drawn.skips], dtype=object).value_counts()
        skips[mode] = {"samples": len(users) * seeds * candidates, "skipped": len(drawn.skips),
                       "reasons": {str(r): int(c) for r, c in reasons.items()}, "new_tokens": drawn.new_tokens,
                       "seconds": round(drawn.seconds, 1), "stopped": drawn.stopped,
                       "tokens_per_s": round(drawn.new_tokens / max(drawn.seconds, 1e-9), 1),
                       "examples": [s for s in drawn.skips[:5]]}
        lap(f"LM {mode}")

    placebo_of = ["LSTM (guided)"] if lstm else []
    placebo_of += [f"LM {m} (guided)" for m in ("fine-tuned", "few-shot", "zero-shot") if m in lms][:1]
    for source in placebo_of:
        name = f"placebo ({source}: another user's set)"
        for k in range(seeds):
            for position, donor in enumerate(donors):
                given = offered.get(source, [{}] * seeds)[k].get(int(donor))
                if given is not None:
                    offered.setdefault(name, [{} for _ in generator_seeds])[k][position] = _Offer(
                        pz.ItemSet(int(users[position]), features=given.items.features, twins=given.items.twins),
                        given.texts, given.vectors)

    catalogue_texts = bundle.record["catalogue_texts"]
    catalogue_titles = {item_title(t) for t in catalogue_texts}
    kn, reference = fluency_model(catalogue_texts, seed)
    tables, extra, missing = [], [], {}
    for name, per_seed in offered.items():
        kept = [p for p in range(len(users)) if all(p in s for s in per_seed)]
        missing[name] = len(users) - len(kept)
        if len(kept) < 2:
            continue
        sets = [[s[p] for p in kept] for s in per_seed]
        for judge_name, judge in judges.items():
            judged = [pz.judge_sets(judge, [o.items for o in offers], train, catalogue_scores[judge_name],
                                    partners[kept]) for offers in sets]
            tables.append(pz.lift_table({name: judged}, seed=seed).assign(judge=judge_name))
        texts = [t for offers in sets for o in offers for t in o.texts]
        generated = name not in REAL
        new = [t for t in texts if t not in set(catalogue_texts)]
        diversity = np.array([pz.intra_list_diversity(o.vectors) for offers in sets for o in offers])
        extra.append({"condition": name, "users_left_out": missing[name], "texts": len(texts),
                      "copy_rate": copy_rate(texts, catalogue_texts) if generated else None,
                      "title_copy_rate": float(np.mean([item_title(t) in catalogue_titles for t in texts]))
                      if generated else None,
                      "distinct_2": distinct_n(bundle.tokenizer.tokens(texts), 2),
                      "fluency_ppl": kn.perplexity([_words(t) for t in new]) if generated and new else None,
                      "diversity": float(np.nanmean(diversity)) if np.isfinite(diversity).any() else None})
    table = pd.concat(tables, ignore_index=True).merge(pd.DataFrame(extra), on="condition", how="left")
    table = table[["judge"] + [c for c in table.columns if c != "judge"]]
    lap("judged")
    return {"table": json.loads(table.to_json(orient="records")), "skips": skips, "prompts": prompt_notes,
            "fluency": {"model": FLUENCY, "reference_ppl": kn.perplexity([_words(t) for t in reference]),
                        "reference_texts": len(reference)},
            "settings": {"n_users": int(len(users)), "n": n, "candidates": candidates, "swaps": int(partners.shape[1]),
                         "seeds": seeds, "generator_seeds": generator_seeds, "seed": seed, "lstm_temperature": 1.0,
                         "language": LanguageItemsConfig.make(config).model_dump(), "n_boot": pz.N_BOOT,
                         "level": pz.LEVEL, "diversity_features": spec},
             "users": users.tolist(), "seconds": seconds}
