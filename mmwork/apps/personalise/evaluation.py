"""Does generated content fit its user? Each judge's percentile ranks of each user's items under six
conditions, the swap test and the placebo, with bootstrap intervals (``mmwork.evaluation.personalisation``
holds the measures; this module runs them on the trained models).

>>> result = evaluate("movielens-100k", 200, seeds=3)                      # doctest: +SKIP
>>> evaluation_table(result, "text_factors")[["diff", "diff_low", "diff_high"]]   # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmwork.apps.personalise.personaliser import interaction_split, load, model_dir
from mmwork.apps.personalise.profiles import check_request, user_profiles
from mmwork.apps.personalise.profiles import for_user as generate_for_profile
from mmwork.core.errors import MmworkError
from mmwork.store.tables import write_json

log = logging.getLogger("mmwork.apps.personalise")


PROTOCOL = (
    "Split: per user, random 8:1:1 (train/valid/test), seed {split_seed}. Guide: content-based on the training "
    "split ({features}). Two judges, each of another family than the guide, on the same training split, so each "
    "user's test items are unseen by all three; the generator never sees a judge. Judge 1: multimodal hybrid "
    "(seed {judge_seed}, early-stopped on valid) reading the guide's features. Judge 2: text factors (PureSVD item "
    "factors predicted by ridge from {judge2}, rank and penalty chosen on valid), which reads none of the guide's "
    "features. One scorer per judge: every item, catalogue or generated, is scored from its content through the "
    "judge's content path (score_items; the hybrid's item embeddings and biases are never used), and a generated "
    "text equal to a catalogue text is that item (its score and rank). Generated items get their content as the "
    "catalogue's was (text re-embedded, labels parsed from the text); samples equal to one of the user's own "
    "training texts are dropped before choosing. For each of {users} users (drawn with seed {seed} among those "
    "with test items and a profile) and each of {seeds} generator seeds, each condition offers a set of items. "
    "Percentile rank (0-100, 50 = chance): the share of catalogue items, minus the user's training items and the "
    "set's own catalogue items, that the item outscores for the user (ties half). Swap test: the same set ranked "
    "for {swaps} other evaluated users drawn at random (seed {seed}; items a partner already has in training are "
    "left out for that partner); diff = mean rank for the target user - mean rank for the others (percentile "
    "points); lift = their ratio (bounded: at most 100 / swap rank). Placebo: each user is handed the guided set "
    "generated for a random other user (not among their swap partners) and scored as if it were theirs: its lift "
    "should cover 1 and its diff 0. 95% intervals: percentile bootstrap ({n_boot} draws, seed {seed}) that "
    "resamples generator seeds, users, and each drawn user's swap partners, with replacement. Rank correlation: "
    "per user, Spearman between two models' scores of the catalogue minus the user's training items, mean over "
    "users with a bootstrap interval over users. Diversity: mean pairwise cosine distance of the items' "
    "{diversity} vectors within a user's set; distinct-2: unique bigrams / tokens over all of a condition's texts "
    "(corpus-level); copy rate: share of generated texts equal to a catalogue text. guide_pr: the guide's own "
    "percentile rank of the set, shown for contrast only (it steered the guided set).")
CONDITIONS = ("generated (guided)", "generated (unguided)", "random real items", "held-out items",
              "guide's top-k real items", "placebo (another user's guided set)")
JUDGES = ("hybrid", "text_factors")
"""The two judges' names in an :func:`evaluate` result: the multimodal hybrid (reads the guide's features)
and the text-factor model (reads another text representation)."""



class Panel(NamedTuple):
    """What :func:`draw_panel` draws."""

    profiles: np.ndarray
    eligible: np.ndarray
    users: np.ndarray
    partners: np.ndarray
    donors: np.ndarray
    judges: dict
    guide: object
    scored: dict
    catalogue_scores: dict


def draw_panel(bundle, train, test, n_users: int, swaps: int, seed: int) -> Panel:
    """The users an evaluation judges and everything drawn for them, one way for every caller (so the LSTM's
    and the language model's evaluations share users, partners and donors): the training profiles, the
    eligible users (held-out items and a profile), up to ``n_users`` of them, their swap partners and
    placebo donors, the two judges and the guide, and each one's catalogue scores for those users (as
    arrays in ``scored``, by user in ``catalogue_scores``)."""
    from mmwork.evaluation import personalisation as pz
    profiles = user_profiles(train, bundle.catalogue)
    eligible = np.flatnonzero((np.diff(test.indptr) > 0) & (np.abs(profiles).sum(1) > 0))
    if len(eligible) < 2:
        raise MmworkError(f"{bundle.dataset} has {len(eligible)} user(s) with held-out items and a profile; "
                          f"need >= 2")
    users = np.sort(np.random.default_rng(seed).choice(eligible, min(n_users, len(eligible)), replace=False))
    partners = pz.swap_partners(users, swaps, seed)
    donors = pz.placebo_donors(users, partners, seed)
    judges = {"hybrid": pz.ContentJudge(bundle.judge, bundle.catalogue),
              "text_factors": pz.ContentJudge(bundle.judge2, bundle.judge2_catalogue)}
    guide = pz.ContentJudge(bundle.guide, bundle.catalogue)
    scored = {name: judge.catalogue_scores(users) for name, judge in (("guide", guide), *judges.items())}
    catalogue_scores = {name: dict(zip(users.tolist(), values)) for name, values in scored.items()}
    return Panel(profiles, eligible, users, partners, donors, judges, guide, scored, catalogue_scores)

def evaluate(dataset: str = "movielens-100k", n_users: int | None = None, *, n: int | None = None,
             candidates: int | None = None, swaps: int | None = None, seeds: int | None = None, seed: int = 0,
             temperature: float = 1.0, top_p: float | None = None, device: str = "auto", progress: bool = True,
             cache: bool = True) -> dict:
    """Each judge's percentile ranks of each user's items under six conditions (guided and unguided
    generated sets, random real items, the user's held-out items, the guide's top-k real items, and
    the placebo), for ``seeds`` generator seeds (``seed``, ``seed + 1``, ...): target and swap ranks,
    their difference and the lift with 95% bootstrap intervals over seeds, users and swap partners;
    the guide-judge rank correlations on real items; diversity, distinct-2 and copy rate. A
    JSON-serialisable dict (``table``: one record per judge and condition; ``protocol``: how, in words).

    The result is kept next to the models (``evaluations/``, removed when they are retrained) and,
    with ``cache``, returned from there when asked again with the same settings.

    >>> evaluate("movielens-100k", 200, seeds=3)["rank_correlation"]           # doctest: +SKIP
    """
    from mmwork.evaluation import personalisation as pz
    from mmwork.evaluation.text_generation import copy_rate, distinct_n
    bundle = load(dataset, device)
    config = bundle.config
    n_users = config.n_users if n_users is None else n_users
    n = config.n if n is None else n
    candidates = max(config.candidates, n) if candidates is None else candidates
    swaps = config.swaps if swaps is None else swaps
    seeds = config.seeds if seeds is None else seeds
    for name, value in (("n_users", n_users), ("n", n), ("candidates", candidates), ("swaps", swaps),
                        ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MmworkError(f"{name} must be a positive integer, got {value!r}")
    check_request(n, candidates, temperature, top_p)
    asked = {"n_users": n_users, "n": n, "candidates": candidates, "swaps": swaps, "seeds": seeds, "seed": seed,
             "temperature": temperature, "top_p": top_p}
    saved = model_dir(dataset) / "evaluations" / \
        f"{hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:12]}.json"
    if cache and saved.exists():
        log.info("personalise %s: evaluation with these settings read from %s", dataset, saved)
        return json.loads(saved.read_text())
    started = time.perf_counter()
    split = interaction_split(dataset, config)
    if split.data_hash() != bundle.record["split"]["data_hash"]:
        raise MmworkError(f"{dataset}'s interactions changed since the personalised models were trained (split "
                          f"fingerprint differs); retrain them (mmwork.apps.personalise.train({dataset!r}))")
    train, test = split.train.matrix.tocsr(), split.test.matrix.tocsr()
    profiles, eligible, users, partners, donors, judges, guide, scored, catalogue_scores = draw_panel(
        bundle, train, test, n_users, swaps, seed)
    item_text = bundle.item_texts
    diversity_spec = next((s for s in config.features if s.startswith("text:")), config.features[0])
    generator_seeds = [seed + k for k in range(seeds)]

    def content(texts: list[str]) -> dict:
        return bundle.content.of_texts(texts) | bundle.judge2_content.of_texts(texts)

    offered = {name: [[] for _ in generator_seeds] for name in CONDITIONS}  # per condition and seed, per user
    drawn = distinct = 0
    bar = tqdm(total=len(users) * seeds, desc="personalise: users x seeds", unit="set",
               disable=None if progress else True)
    for k, generator_seed in enumerate(generator_seeds):
        for row in users:
            row = int(row)
            pool = generate_for_profile(bundle.generator, bundle.tokenizer, profiles[row], candidates,
                                     candidates=candidates, seed=_user_seed(generator_seed, row),
                                     temperature=temperature, top_p=top_p, exclude=bundle.history(row))
            drawn, distinct = drawn + candidates, distinct + len(pool)
            pool_texts = list(pool["text"])
            guide_scores = bundle.guide_scores(row)(pool_texts)
            generated = {"generated (guided)": [pool_texts[i] for i in np.argsort(-guide_scores, kind="stable")[:n]],
                         "generated (unguided)": pool_texts[:n]}  # the same pool in sampling order: no rerank
            for name, chosen in generated.items():
                features = content(chosen)
                offered[name][k].append(_Offer(pz.ItemSet(row, features=features, twins=bundle.twins(chosen)),
                                               chosen, features[diversity_spec]))
            seen = train[row].indices
            unseen = np.setdiff1d(np.arange(train.shape[1]), seen)
            real = {"random real items": np.sort(np.random.default_rng([generator_seed, row]).choice(
                        unseen, min(n, len(unseen)), replace=False)),
                    "held-out items": test[row].indices,
                    "guide's top-k real items": _top_k(catalogue_scores["guide"][row], seen, n)}
            for name, items in real.items():
                offered[name][k].append(_Offer(pz.ItemSet(row, items=items), [item_text[i] for i in items
                                                                                 if item_text[i]],
                                               bundle.catalogue[diversity_spec][items]))
            bar.update()
        for position, donor in enumerate(donors):  # the placebo: another user's guided set, as if it were theirs
            given = offered["generated (guided)"][k][donor]
            offered[CONDITIONS[-1]][k].append(_Offer(
                pz.ItemSet(int(users[position]), features=given.items.features, twins=given.items.twins),
                given.texts, given.vectors))
    bar.close()

    tables = []
    for judge_name, judge in judges.items():
        judged = {name: [pz.judge_sets(judge, [o.items for o in per_seed], train, catalogue_scores[judge_name],
                                       partners) for per_seed in offered[name]] for name in CONDITIONS}
        tables.append(pz.lift_table(judged, seed=seed).assign(judge=judge_name))
    extra = []
    for name in CONDITIONS:
        offers = [o for per_seed in offered[name] for o in per_seed]
        texts = [t for o in offers for t in o.texts]
        diversity = np.array([pz.intra_list_diversity(o.vectors) for o in offers])
        guide_ranks = [pz.judge_sets(guide, [o.items for o in per_seed], train, catalogue_scores["guide"], partners)
                       for per_seed in offered[name]]
        extra.append({"condition": name,
                      "diversity": float(np.nanmean(diversity)) if np.isfinite(diversity).any() else None,
                      "distinct_2": distinct_n(bundle.tokenizer.tokens(texts), 2),
                      "copy_rate": copy_rate(texts, bundle.record["catalogue_texts"])
                      if name.startswith("generated") else None,
                      "guide_pr": float(np.mean([r.target.mean() for r in guide_ranks]))})
    table = pd.concat(tables, ignore_index=True).merge(pd.DataFrame(extra), on="condition", how="left")
    table = table[["judge"] + [c for c in table.columns if c != "judge"]]

    allowed = np.asarray(train[users].todense()) == 0
    correlation = {}
    for a, b in (("guide", "hybrid"), ("guide", "text_factors"), ("hybrid", "text_factors")):
        values = pz.rank_correlation(scored[a], scored[b], allowed)
        low, high = pz.bootstrap_ci(values, pz.LEVEL, pz.N_BOOT, seed)
        correlation[f"{a} vs {b}"] = {"spearman": float(values.mean()), "low": low, "high": high}
    settings = {"n_users": int(len(users)), "n": n, "candidates": candidates, "swaps": int(partners.shape[1]),
                "seeds": seeds, "generator_seeds": generator_seeds, "seed": seed, "temperature": temperature,
                "top_p": top_p, "n_boot": pz.N_BOOT, "level": pz.LEVEL, "diversity_features": diversity_spec}
    protocol = PROTOCOL.format(split_seed=config.split_seed, judge_seed=config.judge_seed, users=len(users),
                               seed=seed, seeds=seeds, swaps=partners.shape[1], n_boot=pz.N_BOOT,
                               diversity=diversity_spec, features=" + ".join(config.features),
                               judge2=" + ".join(bundle.record["judge2_features"]))
    record = bundle.record
    result = {"dataset": dataset, "protocol": protocol, "settings": settings,
              "table": json.loads(table.to_json(orient="records")),
              "rank_correlation": correlation,
              "samples": {"users": int(len(users)), "eligible_users": int(len(eligible)), "candidates_drawn": drawn,
                          "distinct_candidates": distinct},
              "split": record["split"], "guide": {"class": type(bundle.guide).__name__, "features": config.features},
              "judges": {"hybrid": {"class": type(bundle.judge).__name__, "seed": config.judge_seed,
                                    "features": config.features, "scored through": "content path (score_items)",
                                    "epochs": record["judge_epochs"], "best_epoch": record["judge_best_epoch"]},
                         "text_factors": {"class": type(bundle.judge2).__name__, "seed": config.judge_seed,
                                          "features": record["judge2_features"],
                                          "scored through": "content path (score_items)",
                                          "chosen on valid": record["judge2_choice"]}},
              "seconds": round(time.perf_counter() - started, 1)}
    write_json(saved, result)
    return result


def _user_seed(seed: int, row: int) -> int:
    """The sampling seed of one user under one generator seed (distinct across both)."""
    return int(np.random.SeedSequence([seed, row]).generate_state(1)[0])


@dataclass
class _Offer:
    """What one condition offers one user: the items, their texts, their diversity vectors."""

    items: object  # mmwork.evaluation.personalisation.ItemSet
    texts: list[str]
    vectors: np.ndarray


def _top_k(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[seen] = -np.inf
    return np.argsort(-scores, kind="stable")[:k]


def evaluation_table(result: dict, judge: str | None = None) -> pd.DataFrame:
    """The ``table`` of an :func:`evaluate` result as a frame, one row per condition, for one judge
    (one of :data:`JUDGES`; default the first, the hybrid)."""
    frame = pd.DataFrame(result["table"])
    if "judge" in frame.columns:
        judge = JUDGES[0] if judge is None else judge
        if judge not in set(frame["judge"]):
            raise MmworkError(f"no judge {judge!r} in this result; choose from {sorted(set(frame['judge']))}")
        frame = frame[frame["judge"] == judge]
    return frame.set_index("condition")
