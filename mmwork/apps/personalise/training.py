"""Fit and save the personalisation models: split, tokenizer, profile-conditioned generator, guide and
both judges.

>>> bundle = train("movielens-100k", lm={"hidden_dim": 128, "epochs": 2})     # doctest: +SKIP
>>> bundle.for_user("196", 5)                                                # doctest: +SKIP
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmwork.apps.personalise.config import PersonaliseConfig, lm_params
from mmwork.apps.personalise.content import ItemContent
from mmwork.apps.personalise.personaliser import (Personaliser, catalogue_texts, features_hash, interaction_split,
                                                  model_dir)
from mmwork.apps.personalise.profiles import training_pairs, user_profiles
from mmwork.core.errors import MmworkError
from mmwork.models.generators.rnn_lm import RNNLanguageModel
from mmwork.store.tables import swap_in_folder, write_json

log = logging.getLogger("mmwork.apps.personalise")

VALID_PAIRS = 5000  # validation pairs scored per epoch for early stopping (a seeded subsample)


def train(dataset: str = "movielens-100k", config: PersonaliseConfig | dict | None = None, *,
          progress: bool = True, **params) -> Personaliser:
    """Split, fit the tokenizer, the profile-conditioned generator, the guide and the judge, and save
    them (with the split's fingerprint) under :func:`model_dir`; the old models stay until the new
    ones are complete. Returns the loaded :class:`Personaliser`."""
    from mmwork.evaluation.ranking import Validator
    from mmwork.models.data.text import Tokenizer, item_texts
    from mmwork.models.recommenders import ContentBased, MultimodalHybrid
    from mmwork.models.recommenders.text_factors import TextFactors
    config = PersonaliseConfig.make(config, **params)
    started, seconds, last = time.perf_counter(), {}, [time.perf_counter()]
    steps = tqdm(total=5, desc=f"personalise {dataset}", unit="step", disable=None if progress else True)

    def step(name: str) -> None:
        now = time.perf_counter()
        seconds[name], last[0] = round(now - last[0], 1), now
        steps.set_postfix_str(name, refresh=False)
        steps.update()
        log.info("personalise %s: %s done (%.1f s)", dataset, name, seconds[name])

    split = interaction_split(dataset, config)
    content = ItemContent(dataset, config.features, config.label_column, config.marker(), config.device)
    catalogue = dict(content.catalogue(split.item_ids))
    content2 = ItemContent(dataset, config.judge2_specs(), None, None, config.device)
    catalogue2 = dict(content2.catalogue(split.item_ids))
    texts = item_texts(dataset, config.text_column).set_index("item_id")[config.text_column]
    has_text = pd.Index(texts.index.astype(str)).get_indexer(split.item_ids)
    step("split and content")

    tokenizer = Tokenizer(config.tokenizer, vocab_size=config.vocab_size).fit(texts.tolist())
    encoded = [None] * len(split.item_ids)  # token ids of each catalogue column's text (None: no text)
    with_text = np.flatnonzero(has_text >= 0)
    for column, sequence in zip(with_text, tokenizer.encode(texts.iloc[has_text[with_text]].tolist())):
        encoded[column] = sequence
    pairs = training_pairs(split.train.matrix, catalogue)
    keep = np.array([encoded[i] is not None and len(encoded[i]) > 0 for i in pairs.items], dtype=bool)
    sequences = [encoded[i] for i in pairs.items[keep]]
    if not sequences:
        raise MmworkError(f"no training pairs: {dataset}'s training users need at least 2 items with text")
    valid = _valid_pairs(split, catalogue, encoded, config.seed)
    lm = RNNLanguageModel(lm_params(config) | {"vocab_size": tokenizer.vocab_size_, "condition_dim": sum(
        a.shape[1] for a in catalogue.values()), "max_len": max(len(s) for s in sequences) + 8})
    step("tokenizer")
    guide = ContentBased(config.guide.model_dump() | {"device": config.device, "seed": config.seed}).fit(
        split.train, item_features=catalogue)
    judge = MultimodalHybrid({"seed": config.judge_seed} | config.judge.model_dump() | {"device": config.device}).fit(
        split.train, item_features=catalogue, valid=Validator(split))
    judge2 = TextFactors({"seed": config.judge_seed} | config.judge2.model_dump() | {"device": config.device}).fit(
        split.train, item_features=catalogue2, valid=Validator(split))
    step("guide and judges")
    lm.fit(sequences, pairs.condition[keep], valid=valid)  # last: the longest step, after the judges' checks
    step("generator")

    from mmwork.core.version import version
    record = {"dataset": dataset, "config": config.model_dump(), "split": split.describe(),
              "features_hash": features_hash(catalogue), "label_vocabulary": content.vocabulary,
              "train_pairs": len(sequences), "valid_pairs": len(valid[0]) if valid else 0,
              "tokenizer_vocab": tokenizer.vocab_size_, "generator_epochs": len(lm.history_),
              "generator_best_epoch": lm.best_epoch_, "generator_history": lm.history_,
              "judge_epochs": len(judge.history_), "judge_best_epoch": judge.best_epoch_,
              "judge2_features": config.judge2_specs(), "judge2_features_hash": features_hash(catalogue2),
              "judge2_grid": judge2.history_, "judge2_choice": judge2.history_[judge2.best_epoch_ - 1],
              "catalogue_texts": sorted(set(texts.astype(str))), "seconds": seconds, "mmwork_version": version()}
    _save(model_dir(dataset), tokenizer, lm, guide, judge, judge2, record)
    step("saved")
    steps.close()
    record["seconds"]["total"] = round(time.perf_counter() - started, 1)
    write_json(model_dir(dataset) / "run.json", record)
    log.info("personalise %s: trained in %.1f s, saved to %s", dataset, record["seconds"]["total"], model_dir(dataset))
    return Personaliser(dataset, config, tokenizer, lm, guide, judge, content, catalogue, record,
                        catalogue_texts(dataset, config.text_column, split.item_ids), judge2, content2, catalogue2)


def _valid_pairs(split, catalogue: dict, encoded: list, seed: int):
    """(sequences, profiles) of a seeded sample of the validation interactions: the user's full
    training profile and the held-out item's text; None when there are none."""
    coo = split.valid.matrix.tocoo()
    keep = np.array([encoded[i] is not None and len(encoded[i]) > 0 for i in coo.col], dtype=bool)
    rows, cols = coo.row[keep], coo.col[keep]
    if len(rows) == 0:
        return None
    if len(rows) > VALID_PAIRS:
        chosen = np.sort(np.random.default_rng(seed).choice(len(rows), VALID_PAIRS, replace=False))
        rows, cols = rows[chosen], cols[chosen]
    profiles = user_profiles(split.train.matrix, catalogue)
    return [encoded[i] for i in cols], profiles[rows]


def _save(target: Path, tokenizer, lm, guide, judge, judge2, record: dict) -> None:
    """Write everything to a hidden sibling folder, then swap it into place."""
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer.save(staging / "tokenizer.json")
    lm.save(staging / "generator")
    guide.save(staging / "guide")
    judge.save(staging / "judge")
    judge2.save(staging / "judge2")
    write_json(staging / "run.json", record)
    swap_in_folder(staging, target)
