"""The trained personalisation models as one object: where they live, how they load, and how they
generate for a user.

:class:`Personaliser` holds the tokenizer, the profile-conditioned generator, the guide, both judges
and the catalogue's content; :func:`load` reads what ``train`` saved under
``data/models/personal/<dataset>/`` and :func:`for_user` generates with it.

>>> for_user("movielens-100k", "196", n=5)                                 # doctest: +SKIP
>>> load("movielens-100k").for_user("196", 5, guided=False)                # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmwork.apps.personalise.config import PersonaliseConfig
from mmwork.apps.personalise.content import ItemContent
from mmwork.apps.personalise.profiles import check_request, user_profiles
from mmwork.apps.personalise.profiles import for_user as generate_for_profile
from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root
from mmwork.models.generators.rnn_lm import RNNLanguageModel


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
        return user_profiles(self.train.matrix[row], self.catalogue)[0]

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
        items = generate_for_profile(self.generator, self.tokenizer, profile, n, candidates=candidates,
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


def features_hash(features: dict) -> str:
    """A fingerprint of item feature arrays (a changed table makes saved models stale)."""
    digest = hashlib.sha256()
    for spec, array in features.items():
        digest.update(spec.encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def interaction_split(dataset: str, config: PersonaliseConfig):
    """The per-user 8:1:1 split of ``dataset``'s interactions at ``config.split_seed``."""
    from mmwork.evaluation.splits import recbole_split
    from mmwork.store.tables import read_table, table_path
    if not table_path(dataset, "interactions").exists():
        raise MmworkError(f"{dataset} has no interactions table; personalisation needs who interacted with what")
    items = read_table(dataset, "items", columns=["item_id"])
    return recbole_split(read_table(dataset, "interactions"), seed=config.split_seed, item_ids=items["item_id"])


def catalogue_texts(dataset: str, column: str, item_ids) -> list[str | None]:
    """The ``column`` text of each item of ``item_ids`` (None where it has none)."""
    from mmwork.models.data.text import item_texts
    frame = item_texts(dataset, column).set_index("item_id")[column]
    return [frame.get(str(i)) for i in item_ids]


def trained(dataset: str) -> bool:
    """Whether ``train`` saved models for ``dataset`` under this data root."""
    return (model_dir(dataset) / "run.json").exists()


_LOADED: dict[tuple, Personaliser] = {}


def unload() -> None:
    """Forget the models :func:`load` keeps in memory (the next ``load`` reads them again)."""
    _LOADED.clear()


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
    if features_hash(catalogue) != record["features_hash"] or \
            features_hash(catalogue2) != record["judge2_features_hash"]:
        raise MmworkError(f"the item features of {dataset} changed since the personalised models were trained; "
                          f"retrain them (mmwork.apps.personalise.train({dataset!r}))")
    bundle = Personaliser(dataset, config, Tokenizer.load(folder / "tokenizer.json"),
                          RNNLanguageModel.load(folder / "generator", device=device), guide,
                          Recommender.load(folder / "judge", device=device), content, catalogue, record,
                          catalogue_texts(dataset, config.text_column, guide.item_ids_),
                          Recommender.load(folder / "judge2", device=device), content2, catalogue2)
    _LOADED.clear()
    _LOADED[key] = bundle
    return bundle


def for_user(dataset: str, user_id, n: int = 10, *, candidates: int | None = None, guided: bool = True,
             seed: int = 0, temperature: float = 1.0, top_p: float | None = None,
             device: str = "auto") -> pd.DataFrame:
    """``n`` items generated for ``user_id`` by the saved models of ``dataset`` (see
    :meth:`Personaliser.for_user`)."""
    check_request(n, n if candidates is None else candidates, temperature, top_p)
    return load(dataset, device).for_user(user_id, n, candidates=candidates, guided=guided, seed=seed,
                                          temperature=temperature, top_p=top_p)
