"""Personalised content: generate item texts for a user, and check with a recommender that they fit.

The loop, on any data set with interactions, an items text column and item features:

1. **Split** the interactions per user at random 8:1:1 (``mmwork.evaluation.recbole_split``).
2. **Content** f(i) of an item is the features the recommenders read (``load_item_features``,
   default MiniLM text vector + genre multi-hot). A *generated* text gets its content the same way:
   its text through the extractor that built the feature column (MiniLM for ``text:minilm``; the
   saved TF-IDF/LSA or skip-gram fit for the others) and its labels parsed from its "Genres: ..."
   part (``label_column``). A user's **profile** is the mean content of their training items.
3. **Generator**: an RNN language model over a tokenizer fitted on the catalogue's texts, conditioned
   on the profile; trained on (profile of u without i, text of i) over the training interactions,
   early-stopped on the validation interactions.
4. **Guide** (steers generation): a content-based recommender on the training split; ``for_user``
   samples many texts and keeps those it scores highest. **Judges** (evaluate), on the same training
   split, so the user's held-out items are unseen by all three; the generator never sees them: a
   multimodal hybrid (another model family, its own seed, the guide's features) and a text-factor
   model (``TextFactors``: PureSVD factors predicted from another text representation, by default
   TF-IDF/LSA, so it reads none of the guide's features).
5. **One scorer per judge.** The choice: every item, catalogue or generated, is scored from its
   content through the judge's content path (``score_items``, the path a brand-new item takes; the
   hybrid's item embeddings and biases are not used), and a generated text equal to a catalogue text
   is that item, with its score and rank.

``train`` fits and saves all of it under ``data/models/personal/<dataset>/``; ``for_user`` generates;
``evaluate`` measures, over many users and generator seeds, each judge's percentile rank of each
user's items for the user and in the swap test (difference and lift), against unguided samples,
random real items, the user's held-out items, the guide's own top-k and a placebo (see
``mmwork.evaluation.personalisation``).

>>> from mmwork.apps import personalise
>>> personalise.train("movielens-100k")                                   # doctest: +SKIP
>>> personalise.for_user("movielens-100k", "196", n=5)                    # doctest: +SKIP
>>> personalise.evaluate("movielens-100k", n_users=200)["table"]          # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import NonNegativeInt, PositiveInt, field_validator, model_validator
from tqdm import tqdm

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.apps.personalise import profiles as personal
from mmwork.models.generators.rnn_lm import RNNLanguageModel
from mmwork.core.paths import data_root
from mmwork.store.tables import swap_in_folder, write_json

log = logging.getLogger("mmwork.apps.personalise")

LM_DEFAULTS = {"embedding_dim": 128, "hidden_dim": 256, "layers": 1, "dropout": 0.1, "epochs": 8,
               "batch_size": 128, "patience": 2}
"""The language model's parameters unless ``PersonaliseConfig.lm`` overrides them."""
VALID_PAIRS = 5000  # validation pairs scored per epoch for early stopping (a seeded subsample)
SECOND_JUDGE_TEXT = ("text:tfidf_lsa", "text:skipgram", "text:minilm")
"""The second judge's default text features, in order of preference (the first not read by the guide)."""


class PersonaliseConfig(Config):
    """What ``train`` builds and what ``evaluate`` measures by default."""

    text_column: str = "text"
    """The items column the generator learns to write (and generated items are texts of)."""
    label_column: str | None = "genres"
    """A list-of-labels items column whose labels a generated text lists after ``label_marker``
    (parsed into the item's label vector); None when texts carry no labels."""
    label_marker: str | None = None
    """What precedes the labels in a text; default: the label column's name capitalised plus ":"
    ("Genres:")."""
    features: list[str] = ["text:minilm", "items:genres"]
    """Item features (``load_item_features`` specs) that make up content and profiles, read by the
    guide and the judge: ``text:COLUMN`` columns and ``items:<label_column>``."""
    tokenizer: Literal["bpe", "word"] = "bpe"
    """Byte-level BPE subwords or whole words (``mmwork.models.data.text.Tokenizer``)."""
    vocab_size: PositiveInt = 2000
    """Largest tokenizer vocabulary, special tokens included."""
    lm: dict = {}
    """``RNNLanguageModel`` parameters over :data:`LM_DEFAULTS` (e.g. ``{"hidden_dim": 128, "epochs": 2}``)."""
    guide: dict = {}
    """``ContentBased`` parameters of the guide."""
    judge: dict = {}
    """``MultimodalHybrid`` parameters of the first judge."""
    judge2: dict = {}
    """``TextFactors`` parameters of the second judge (another representation and model family)."""
    judge2_features: list[str] | None = None
    """Text features the second judge reads (``text:COLUMN``, none of ``features``); default: the first
    of text:tfidf_lsa, text:skipgram, text:minilm that is not among ``features``."""
    split_seed: NonNegativeInt = 2020
    """Seed of the per-user 8:1:1 split."""
    seed: NonNegativeInt = 0
    """Seed of the language model (and of the guide)."""
    judge_seed: NonNegativeInt = 1
    """The judge's own seed, different from the generator's."""
    n_users: PositiveInt = 200
    """Users ``evaluate`` draws (those with held-out items and a profile)."""
    n: PositiveInt = 10
    """Items per user."""
    candidates: PositiveInt = 50
    """Samples drawn per user before the guide keeps ``n``."""
    swaps: PositiveInt = 10
    """Other users each user's set is scored for in the swap test."""
    seeds: PositiveInt = 3
    """Generator (sampling) seeds ``evaluate`` draws each user's sets with; intervals resample them."""
    device: str = "auto"
    """Torch device for every model: "auto", "cpu", "cuda", ..."""

    @field_validator("features")
    @classmethod
    def _specs(cls, value):
        if not value:
            raise ValueError("name at least one feature spec, e.g. ['text:minilm']")
        for spec in value:
            table, sep, column = spec.partition(":")
            if not sep or not column or table not in ("text", "items"):
                raise ValueError(f"{spec!r}: personalisation reads 'text:COLUMN' or 'items:LABEL_COLUMN' "
                                 "features (a generated item has only a text)")
        return value

    @model_validator(mode="after")
    def _second_judge(self):
        specs = self.judge2_specs()
        wrong = [s for s in specs if not s.startswith("text:") or not s.partition(":")[2]]
        if not specs or wrong:
            raise ValueError(f"judge2_features {wrong or specs}: the second judge reads text:COLUMN features")
        shared = sorted(set(specs) & set(self.features))
        if shared:
            raise ValueError(f"judge2_features {shared} are also the guide's features; the second judge must read "
                             "another representation")
        return self

    def judge2_specs(self) -> list[str]:
        """The second judge's features (``judge2_features``, or the default)."""
        if self.judge2_features is not None:
            return list(self.judge2_features)
        return [next(s for s in SECOND_JUDGE_TEXT if s not in self.features)]

    def marker(self) -> str | None:
        if self.label_column is None:
            return None
        return self.label_marker or f"{self.label_column.replace('_', ' ').capitalize()}:"


# -- content of catalogue items and of new texts -------------------------------------------------------
class ItemContent:
    """f(i) for the catalogue (read from the store) and for new texts (extracted the same way).

    >>> content = ItemContent("movielens-100k", ["text:minilm", "items:genres"], "genres", "Genres:")  # doctest: +SKIP
    >>> content.of_texts(["Heat (1995). Genres: Action, Crime."])["items:genres"]               # doctest: +SKIP
    """

    def __init__(self, dataset: str, specs: list[str], label_column: str | None, marker: str | None,
                 device: str = "auto"):
        self.dataset, self.specs, self.label_column, self.marker = dataset, list(specs), label_column, marker
        self.device = device
        self._extractors: dict = {}
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        wrong = [s for s in specs if s.startswith("items:") and s != f"items:{label_column}"]
        if wrong:
            raise MmworkError(f"{wrong}: a generated item has only a text, so its items-table features can only "
                              f"be its labels (items:{label_column}); use text:COLUMN features otherwise")
        self.vocabulary = self._labels() if label_column is not None else []

    def _labels(self) -> list[str]:
        """The label names in the column order of ``load_item_features`` (sorted)."""
        from mmwork.store.tables import read_table
        frame = read_table(self.dataset, "items", columns=["item_id", self.label_column])
        return sorted({str(g) for cell in frame[self.label_column] if cell is not None and np.ndim(cell)
                       for g in cell})

    def catalogue(self, item_ids):
        from mmwork.store.item_features import load_item_features
        return load_item_features(self.dataset, self.specs, item_ids)

    def of_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``{spec: float32 rows}`` for these texts, as the pipeline would extract them (cached per text)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            computed = {spec: self._extract(spec, todo) for spec in self.specs}
            for row, text in enumerate(todo):
                self._cache[text] = {spec: values[row] for spec, values in computed.items()}
        return {spec: np.stack([self._cache[t][spec] for t in texts]) for spec in self.specs}

    def labels(self, texts: list[str]) -> np.ndarray:
        """The label multi-hot of each text (columns: :attr:`vocabulary`)."""
        if self.label_column is None:
            return np.zeros((len(texts), 0), np.float32)
        return personal.parse_labels(texts, self.vocabulary, self.marker)

    def _extract(self, spec: str, texts: list[str]) -> np.ndarray:
        table, column = spec.split(":")
        if table == "items":
            return self.labels(texts)
        if column not in self._extractors:
            if column == "minilm":
                from mmwork.features.text import SentenceEmbedder
                self._extractors[column] = SentenceEmbedder(device=self.device)
            else:  # the saved corpus fit that computed this column, checked against the table
                from mmwork.search.queries import _fitted_text_model
                self._extractors[column] = _fitted_text_model(self.dataset, column)
        return np.asarray(self._extractors[column].transform(texts), dtype=np.float32)


# -- the trained bundle ----------------------------------------------------------------------------------
def model_dir(dataset: str) -> Path:
    """Where ``train`` saves: ``<data root>/models/personal/<dataset>``."""
    return data_root() / "models" / "personal" / dataset


@dataclass
class Personaliser:
    """Everything ``train`` fits, loaded: use :meth:`for_user` to generate for a user id."""

    dataset: str
    config: PersonaliseConfig
    tokenizer: object
    generator: object
    guide: object
    judge: object
    content: ItemContent
    catalogue: dict
    """The catalogue's item features, aligned to the guide's item ids."""
    record: dict
    """What ``train`` recorded (run.json)."""
    item_texts: list
    """The text of each catalogue item (None where it has none), aligned to the guide's item ids."""
    judge2: object = None
    """The second judge (``TextFactors`` on ``config.judge2_specs()``)."""
    judge2_content: ItemContent | None = None
    """f(i) as the second judge reads it, for the catalogue and for new texts."""
    judge2_catalogue: dict | None = None
    """The catalogue's features as the second judge reads them, aligned to the guide's item ids."""

    def history(self, row: int) -> list[str]:
        """The texts of the user's training items."""
        return [t for t in (self.item_texts[i] for i in self.train.matrix[row].indices) if t is not None]

    def twins(self, texts: list[str]) -> np.ndarray:
        """For each text the index of the catalogue item with that very text, -1 for none."""
        if not hasattr(self, "_text_index"):
            self._text_index = {t: i for i, t in enumerate(self.item_texts) if t is not None}
        return np.array([self._text_index.get(t, -1) for t in texts], dtype=np.int64)

    @property
    def train(self):
        """The training interactions (the guide's)."""
        return self.guide.train_

    def user_row(self, user_id) -> int:
        """The training-matrix row of ``user_id``; a one-line error for an absent or cold user."""
        user_id = str(user_id)
        found = np.flatnonzero(self.train.user_ids == user_id)
        if len(found) == 0:
            check_user(self.dataset, user_id)
            raise MmworkError(f"user {user_id!r} is not among the {len(self.train.user_ids)} users the personalised "
                              f"models of {self.dataset} were trained on; retrain them")
        row = int(found[0])
        if self.train.matrix[row].nnz == 0:
            raise MmworkError(f"user {user_id!r} of {self.dataset} is a cold user: no training interactions in "
                              "the split, so there is no profile to generate for")
        return row

    def profile(self, row: int) -> np.ndarray:
        """p(u): the mean content of the user's training items."""
        return personal.user_profiles(self.train.matrix[row], self.catalogue)[0]

    def guide_scores(self, row: int):
        """The guide as ``for_user`` takes it: texts -> the guide's score of each for this user."""
        return lambda texts: self.guide.score_items([row], self.content.of_texts(texts)).cpu().numpy()[0]

    def for_user(self, user_id, n: int | None = None, *, candidates: int | None = None, guided: bool = True,
                 seed: int = 0, temperature: float = 1.0, top_p: float | None = None) -> pd.DataFrame:
        """``n`` generated items for ``user_id``: rank, text, the guide's score, the parsed labels and
        label vector, and whether the text copies a catalogue item's. Texts equal to one of the user's
        own training items are never returned (they are not new to the user)."""
        n = self.config.n if n is None else n
        candidates = max(self.config.candidates, n) if candidates is None else candidates
        row = self.user_row(user_id)
        profile = self.profile(row)
        if not np.abs(profile).sum() > 0:
            raise MmworkError(f"user {user_id!r} has an empty profile: none of their training items has content "
                              f"features ({', '.join(self.config.features)})")
        items = personal.for_user(self.generator, self.tokenizer, profile, n, candidates=candidates,
                                  guide=self.guide_scores(row) if guided else None, seed=seed,
                                  temperature=temperature, top_p=top_p, exclude=self.history(row))
        return self.describe(items)

    def describe(self, items: pd.DataFrame) -> pd.DataFrame:
        """Add the labels, label vector and copy flag of each generated text."""
        vectors = self.content.labels(list(items["text"]))
        names = self.content.vocabulary
        catalogue_texts = set(self.record["catalogue_texts"])
        return items.assign(
            labels=[[names[j] for j in np.flatnonzero(v)] for v in vectors],
            label_vector=[v.astype(int).tolist() for v in vectors],
            in_catalogue=[t in catalogue_texts for t in items["text"]])


def check_user(dataset: str, user_id) -> None:
    """A one-line error unless ``user_id`` has interactions in ``dataset``: an unknown user, or a cold
    one (in the users table, without interactions). Reads only the id columns, so the CLI can check
    before training."""
    from mmwork.store.tables import read_table, table_path
    user_id = str(user_id)
    if not table_path(dataset, "interactions").exists():
        raise MmworkError(f"{dataset} has no interactions table; personalisation needs who interacted with what")
    known = read_table(dataset, "interactions", columns=["user_id"])["user_id"].astype(str)
    if (known == user_id).any():
        return
    if table_path(dataset, "users").exists() and \
            (read_table(dataset, "users", columns=["user_id"])["user_id"].astype(str) == user_id).any():
        raise MmworkError(f"user {user_id!r} of {dataset} is a cold user: listed in the users table but with no "
                          "interactions, so there is no profile to generate for")
    examples = list(pd.unique(known)[:3])
    raise MmworkError(f"unknown user {user_id!r}: not among the {known.nunique()} users of {dataset}'s interactions "
                      f"(e.g. {examples})")


def _features_hash(features: dict) -> str:
    digest = hashlib.sha256()
    for spec, array in features.items():
        digest.update(spec.encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def _split(dataset: str, config: PersonaliseConfig):
    from mmwork.evaluation.splits import recbole_split
    from mmwork.store.tables import read_table, table_path
    if not table_path(dataset, "interactions").exists():
        raise MmworkError(f"{dataset} has no interactions table; personalisation needs who interacted with what")
    items = read_table(dataset, "items", columns=["item_id"])
    return recbole_split(read_table(dataset, "interactions"), seed=config.split_seed, item_ids=items["item_id"])


def _lm_params(config: PersonaliseConfig) -> dict:
    return LM_DEFAULTS | dict(config.lm) | {"seed": config.seed, "device": config.device}


def _check(config: PersonaliseConfig) -> None:
    """Every component's parameters, validated before any data is read."""
    from mmwork.models.recommenders import ContentBased, MultimodalHybrid
    from mmwork.models.recommenders.text_factors import TextFactors
    fixed = sorted({"vocab_size", "condition_dim", "seed", "device"} & set(config.lm))
    if fixed:
        raise MmworkError(f"lm: {', '.join(fixed)} come(s) from the data or the config; leave them out of lm")
    RNNLanguageModel.config_class.make(_lm_params(config) | {"vocab_size": config.vocab_size, "condition_dim": 1})
    ContentBased(dict(config.guide) | {"device": config.device})
    MultimodalHybrid({"seed": config.judge_seed} | dict(config.judge) | {"device": config.device})
    TextFactors({"seed": config.judge_seed} | dict(config.judge2) | {"device": config.device})


# -- training --------------------------------------------------------------------------------------------
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
    _check(config)
    started, seconds, last = time.perf_counter(), {}, [time.perf_counter()]
    steps = tqdm(total=5, desc=f"personalise {dataset}", unit="step", disable=None if progress else True)

    def step(name: str) -> None:
        now = time.perf_counter()
        seconds[name], last[0] = round(now - last[0], 1), now
        steps.set_postfix_str(name, refresh=False)
        steps.update()
        log.info("personalise %s: %s done (%.1f s)", dataset, name, seconds[name])

    split = _split(dataset, config)
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
    pairs = personal.training_pairs(split.train.matrix, catalogue)
    keep = np.array([encoded[i] is not None and len(encoded[i]) > 0 for i in pairs.items], dtype=bool)
    sequences = [encoded[i] for i in pairs.items[keep]]
    if not sequences:
        raise MmworkError(f"no training pairs: {dataset}'s training users need at least 2 items with text")
    valid = _valid_pairs(split, catalogue, encoded, config.seed)
    lm = RNNLanguageModel(_lm_params(config) | {"vocab_size": tokenizer.vocab_size_, "condition_dim": sum(
        a.shape[1] for a in catalogue.values()), "max_len": max(len(s) for s in sequences) + 8})
    step("tokenizer")
    guide = ContentBased(dict(config.guide) | {"device": config.device, "seed": config.seed}).fit(
        split.train, item_features=catalogue)
    judge = MultimodalHybrid({"seed": config.judge_seed} | dict(config.judge) | {"device": config.device}).fit(
        split.train, item_features=catalogue, valid=Validator(split))
    judge2 = TextFactors({"seed": config.judge_seed} | dict(config.judge2) | {"device": config.device}).fit(
        split.train, item_features=catalogue2, valid=Validator(split))
    step("guide and judges")
    lm.fit(sequences, pairs.condition[keep], valid=valid)  # last: the longest step, after the judges' checks
    step("generator")

    from mmwork.core.version import version
    record = {"dataset": dataset, "config": config.model_dump(), "split": split.describe(),
              "features_hash": _features_hash(catalogue), "label_vocabulary": content.vocabulary,
              "train_pairs": len(sequences), "valid_pairs": len(valid[0]) if valid else 0,
              "tokenizer_vocab": tokenizer.vocab_size_, "generator_epochs": len(lm.history_),
              "generator_best_epoch": lm.best_epoch_, "generator_history": lm.history_,
              "judge_epochs": len(judge.history_), "judge_best_epoch": judge.best_epoch_,
              "judge2_features": config.judge2_specs(), "judge2_features_hash": _features_hash(catalogue2),
              "judge2_grid": judge2.history_, "judge2_choice": judge2.history_[judge2.best_epoch_ - 1],
              "catalogue_texts": sorted(set(texts.astype(str))), "seconds": seconds, "mmwork_version": version()}
    _save(model_dir(dataset), tokenizer, lm, guide, judge, judge2, record)
    step("saved")
    steps.close()
    record["seconds"]["total"] = round(time.perf_counter() - started, 1)
    write_json(model_dir(dataset) / "run.json", record)
    log.info("personalise %s: trained in %.1f s, saved to %s", dataset, record["seconds"]["total"], model_dir(dataset))
    return Personaliser(dataset, config, tokenizer, lm, guide, judge, content, catalogue, record,
                        _item_texts(dataset, config.text_column, split.item_ids), judge2, content2, catalogue2)


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
    profiles = personal.user_profiles(split.train.matrix, catalogue)
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


# -- loading and generating ------------------------------------------------------------------------------
def trained(dataset: str) -> bool:
    """Whether ``train`` saved models for ``dataset`` under this data root."""
    return (model_dir(dataset) / "run.json").exists()


_LOADED: dict[tuple, Personaliser] = {}


def load(dataset: str = "movielens-100k", device: str = "auto") -> Personaliser:
    """The models ``train`` saved for ``dataset`` (kept in memory while their files are unchanged);
    an error when the item features changed since."""
    from mmwork.models.data.text import Tokenizer
    from mmwork.models.recommenders import Recommender
    from mmwork.models.recommenders.text_factors import TextFactors  # noqa: F401 - makes the second judge loadable
    folder = model_dir(dataset)
    if not trained(dataset):
        raise MmworkError(f"no personalised models for {dataset} under {folder}; train them: "
                          f"mmwork.apps.personalise.train({dataset!r}) or `mmwork generate for-user USER_ID --dataset "
                          f"{dataset}` (trains first)")
    key = (str(folder), (folder / "run.json").stat().st_mtime_ns, device)
    if key in _LOADED:
        return _LOADED[key]
    record = json.loads((folder / "run.json").read_text())
    config = PersonaliseConfig.make(record["config"] | {"device": device})
    guide = Recommender.load(folder / "guide", device=device)
    content = ItemContent(dataset, config.features, config.label_column, config.marker(), device)
    catalogue = dict(content.catalogue(guide.item_ids_))
    if "judge2_features" not in record or not (folder / "judge2").exists():
        raise MmworkError(f"the personalised models of {dataset} were trained by an older mmwork without the second "
                          f"judge; retrain them (mmwork.apps.personalise.train({dataset!r}))")
    content2 = ItemContent(dataset, record["judge2_features"], None, None, device)
    catalogue2 = dict(content2.catalogue(guide.item_ids_))
    if _features_hash(catalogue) != record["features_hash"] or \
            _features_hash(catalogue2) != record["judge2_features_hash"]:
        raise MmworkError(f"the item features of {dataset} changed since the personalised models were trained; "
                          f"retrain them (mmwork.apps.personalise.train({dataset!r}))")
    bundle = Personaliser(dataset, config, Tokenizer.load(folder / "tokenizer.json"),
                          RNNLanguageModel.load(folder / "generator", device=device), guide,
                          Recommender.load(folder / "judge", device=device), content, catalogue, record,
                          _item_texts(dataset, config.text_column, guide.item_ids_),
                          Recommender.load(folder / "judge2", device=device), content2, catalogue2)
    _LOADED.clear()
    _LOADED[key] = bundle
    return bundle


def for_user(dataset: str, user_id, n: int = 10, *, candidates: int | None = None, guided: bool = True,
             seed: int = 0, temperature: float = 1.0, top_p: float | None = None,
             device: str = "auto") -> pd.DataFrame:
    """``n`` items generated for ``user_id`` by the saved models of ``dataset`` (see
    :meth:`Personaliser.for_user`)."""
    personal.check_request(n, n if candidates is None else candidates, temperature, top_p)
    return load(dataset, device).for_user(user_id, n, candidates=candidates, guided=guided, seed=seed,
                                          temperature=temperature, top_p=top_p)


# -- evaluation ------------------------------------------------------------------------------------------
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
    personal.check_request(n, candidates, temperature, top_p)
    asked = {"n_users": n_users, "n": n, "candidates": candidates, "swaps": swaps, "seeds": seeds, "seed": seed,
             "temperature": temperature, "top_p": top_p}
    saved = model_dir(dataset) / "evaluations" / \
        f"{hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:12]}.json"
    if cache and saved.exists():
        log.info("personalise %s: evaluation with these settings read from %s", dataset, saved)
        return json.loads(saved.read_text())
    started = time.perf_counter()
    split = _split(dataset, config)
    if split.data_hash() != bundle.record["split"]["data_hash"]:
        raise MmworkError(f"{dataset}'s interactions changed since the personalised models were trained (split "
                          f"fingerprint differs); retrain them (mmwork.apps.personalise.train({dataset!r}))")
    train, test = split.train.matrix.tocsr(), split.test.matrix.tocsr()
    profiles = personal.user_profiles(train, bundle.catalogue)
    eligible = np.flatnonzero((np.diff(test.indptr) > 0) & (np.abs(profiles).sum(1) > 0))
    if len(eligible) < 2:
        raise MmworkError(f"{dataset} has {len(eligible)} user(s) with held-out items and a profile; need >= 2")
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(eligible, min(n_users, len(eligible)), replace=False))
    partners = pz.swap_partners(users, swaps, seed)
    donors = pz.placebo_donors(users, partners, seed)
    judges = {"hybrid": pz.ContentJudge(bundle.judge, bundle.catalogue),
              "text_factors": pz.ContentJudge(bundle.judge2, bundle.judge2_catalogue)}
    guide = pz.ContentJudge(bundle.guide, bundle.catalogue)
    scored = {name: judge.catalogue_scores(users) for name, judge in (("guide", guide), *judges.items())}
    catalogue_scores = {name: dict(zip(users.tolist(), values)) for name, values in scored.items()}
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
            pool = personal.for_user(bundle.generator, bundle.tokenizer, profiles[row], candidates,
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


def _item_texts(dataset: str, column: str, item_ids) -> list[str | None]:
    from mmwork.models.data.text import item_texts
    frame = item_texts(dataset, column).set_index("item_id")[column]
    return [frame.get(str(i)) for i in item_ids]


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
