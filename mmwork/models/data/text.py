"""Text for the language models: a tokenizer with fixed special ids, and the corpora read from the store
(``mmwork data get austen`` / ``movielens-100k`` builds them), never from the raw files.

:class:`Tokenizer` turns sentences into the integer ids the models learn from and back; its
:meth:`~Tokenizer.tokens` gives the plain words every metric (BLEU, distinct-n) counts, the same words
whatever tokenizer a model used, so scores of a subword model and a word model compare.

>>> tok = Tokenizer("word", vocab_size=50, min_frequency=1).fit(["It is a truth.", "It is not a truth!"])
>>> ids = tok.encode(["It is a truth!", "A truth, universally acknowledged."])
>>> ids[0], [tok.token(i) for i in ids[0]]
([4, 6, 5, 7, 8], ['▁It', '▁is', '▁a', '▁truth', '!'])
>>> tok.decode([ids[0] + [EOS, 9]]), tok.decode(ids[1:])
(['It is a truth!'], ['<unk> truth <unk> <unk> <unk>.'])
>>> tok.tokens(["A truth, universally  acknowledged."])
[['A', 'truth', ',', 'universally', 'acknowledged', '.']]
>>> austen_sentences("valid", limit=1)[0][:43]            # doctest: +SKIP
'Mrs. John Dashwood now installed herself mi'
>>> corpus = title_conditions("movielens-100k")           # doctest: +SKIP
>>> corpus.titles[0], corpus.conditions.shape            # doctest: +SKIP
('Toy Story (1995)', torch.Size([1682, 20]))
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from pydantic import PositiveInt, model_validator

from mmwork.core.config import Config, Configurable
from mmwork.datasets.austen import split_of
from mmwork.core.errors import MmworkError
from mmwork.store.tables import read_table

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
"""The special tokens, in id order: every tokenizer reserves ids 0-3 for them."""
SPLITS = ("train", "valid", "test")
FORMAT = 1  # version of the saved JSON layout
_WORD = re.compile(r"\w+|[^\w\s]")
_BYTE_ALPHABET = 256  # a byte-level BPE starts from every byte


class TokenizerConfig(Config):
    """How text is cut into ids."""

    kind: Literal["bpe", "word"] = "bpe"
    """``bpe``: byte-level BPE subwords (lossless, never <unk>); ``word``: one id per word or
    punctuation mark, <unk> for words rarer than ``min_frequency``."""
    vocab_size: PositiveInt = 4000
    """Largest vocabulary, the 4 special tokens included (a BPE needs at least 260: 4 + 256 bytes)."""
    lowercase: bool = False
    """Lowercase the text before tokenising (and in :meth:`Tokenizer.tokens`)."""
    min_frequency: PositiveInt = 2
    """Fewest occurrences in the training texts for a word ("word") or a merge ("bpe") to be learned."""

    @model_validator(mode="after")
    def _room_for_the_alphabet(self):
        least = len(SPECIALS) + (_BYTE_ALPHABET if self.kind == "bpe" else 1)
        if self.vocab_size < least:
            raise ValueError(f"a {self.kind} tokenizer needs vocab_size >= {least}, got {self.vocab_size}")
        return self


class Tokenizer(Configurable):
    """A trained tokenizer from the ``tokenizers`` library, with PAD=0, BOS=1, EOS=2, UNK=3.

    Text is first normalised: Unicode NFC, every run of white space made one space, the ends stripped
    (and lowercased with ``lowercase``); :meth:`normalize` shows the result. For normalised text
    ``decode(encode([t])) == [t]``:

    - kind "bpe" uses a *byte-level* pre-tokenizer (GPT-2's), not Metaspace: every byte is in the base
      vocabulary, so accents, "£" or characters never seen in training still encode (as byte tokens)
      and decode exactly; no <unk> is ever produced. A space is kept as part of the next token
      ("Ġtruth"), a leading space added before encoding is removed on decoding.
    - kind "word" keeps a word's preceding space in the token ("▁truth" vs "truth" after a quote or
      dash) and splits every punctuation mark off, so decoding restores the spacing; words outside the
      vocabulary become <unk> (decoded as a separate word "<unk>").

    Literal "<eos>" etc. in a text are encoded as plain text, never as the special ids.
    """

    config_class = TokenizerConfig

    def __init__(self, kind: Literal["bpe", "word"] = "bpe", vocab_size: int = 4000, lowercase: bool = False, *,
                 min_frequency: int = 2):
        super().__init__(kind=kind, vocab_size=vocab_size, lowercase=lowercase, min_frequency=min_frequency)
        self._normalizer = _normalizer(self.config.lowercase)

    # -- training --------------------------------------------------------------------------------------
    def fit(self, texts: Iterable[str]) -> "Tokenizer":
        """Learn the vocabulary (and the BPE merges) from ``texts``."""
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models, pre_tokenizers, trainers

        texts = _check_texts(texts, "fit")
        if not any(self.normalize(t) for t in texts):
            raise MmworkError("every text given to Tokenizer.fit is blank; give it sentences")
        c = self.config
        if c.kind == "bpe":
            backend = Backend(models.BPE())
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
            backend.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=c.vocab_size, min_frequency=c.min_frequency,
                                          special_tokens=list(SPECIALS), show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        else:
            backend = Backend(models.WordLevel(unk_token=SPECIALS[UNK]))
            backend.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Metaspace(prepend_scheme="always"),
                # each punctuation mark alone (with the space before it, if any)
                pre_tokenizers.Split(_regex(r"▁?[^\w\s▁]"), behavior="isolated")])
            backend.decoder = decoders.Metaspace(prepend_scheme="always")
            trainer = trainers.WordLevelTrainer(vocab_size=c.vocab_size, min_frequency=c.min_frequency,
                                                special_tokens=list(SPECIALS), show_progress=False)
        backend.normalizer = self._normalizer
        backend.encode_special_tokens = True
        backend.train_from_iterator(texts, trainer)
        self._set(backend)
        return self

    def _set(self, backend) -> None:
        if [backend.token_to_id(s) for s in SPECIALS] != list(range(len(SPECIALS))):
            raise MmworkError("the trained tokenizer lost its special ids 0-3; this is a bug, please report it")
        self.tokenizer_ = backend
        self.vocab_size_ = backend.get_vocab_size()

    # -- use -------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """``text`` as the tokenizer sees it (NFC, white space collapsed and stripped, maybe lowercased)."""
        return self._normalizer.normalize_str(text)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text, without BOS or EOS."""
        backend = self._fitted()
        return [backend.encode(t, add_special_tokens=False).ids for t in _check_texts(texts, "encode")]

    def decode(self, ids: list[list[int]]) -> list[str]:
        """The text of each id sequence: cut at the first EOS, PAD and BOS dropped, UNK shown as <unk>."""
        self._fitted()
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise MmworkError(f"decode takes a list of id sequences, got {type(ids).__name__}")
        return [self._decode_one(sequence) for sequence in ids]

    def _decode_one(self, sequence) -> str:
        if isinstance(sequence, torch.Tensor | np.ndarray):
            sequence = sequence.tolist()
        if not isinstance(sequence, Iterable) or isinstance(sequence, (str, bytes)):
            raise MmworkError(f"decode takes a list of id sequences; one item is {type(sequence).__name__}")
        tokens = []
        for i in sequence:
            if not isinstance(i, (int, np.integer)) or not 0 <= i < self.vocab_size_:
                raise MmworkError(f"token id {i!r} is outside this tokenizer's vocabulary "
                                  f"(0..{self.vocab_size_ - 1})")
            if i == EOS:
                break
            if i == UNK and self.config.kind == "word":
                tokens.append("▁<unk>")  # its spacing is lost: shown as a word of its own
            elif i not in (PAD, BOS):
                tokens.append(self.tokenizer_.id_to_token(int(i)))
        text = self.tokenizer_.decoder.decode(tokens) if tokens else ""
        return text[1:] if self.config.kind == "bpe" and text.startswith(" ") else text

    def tokens(self, texts: list[str]) -> list[list[str]]:
        """The words and punctuation marks of each (normalised) text, for BLEU and distinct-n: the same
        for every kind of tokenizer, and needing no fit."""
        return [_WORD.findall(self.normalize(t)) for t in _check_texts(texts, "tokens")]

    def token(self, i: int) -> str:
        """The vocabulary entry of id ``i`` (e.g. "Ġtruth", "▁truth", "<eos>")."""
        return self._fitted().id_to_token(int(i))

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one JSON file: our settings and the ``tokenizers`` library's own JSON."""
        backend = self._fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT, "config": self.get_params(), "tokenizer": json.loads(backend.to_str())}
        path.write_text(json.dumps(payload, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        """A tokenizer written by :meth:`save`."""
        from tokenizers import Tokenizer as Backend

        path = Path(path)
        try:
            payload = json.loads(path.read_text())
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                raise ValueError(f"no mmwork tokenizer format {FORMAT} marker")
            config = payload["config"]
            backend = Backend.from_str(json.dumps(payload["tokenizer"]))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for a bad JSON
            raise MmworkError(f"{path} is not a tokenizer saved by mmwork ({exc}); "
                              "save one with Tokenizer.save") from None
        tokenizer = cls(**config)
        backend.encode_special_tokens = True
        tokenizer._set(backend)
        return tokenizer

    def _fitted(self):
        if not hasattr(self, "tokenizer_"):
            raise MmworkError("this Tokenizer is not fitted; call .fit(texts) or Tokenizer.load(path) first")
        return self.tokenizer_


def _normalizer(lowercase: bool):
    from tokenizers import normalizers
    steps = [normalizers.NFC(), normalizers.Replace(_regex(r"\s+"), " "), normalizers.Strip()]
    return normalizers.Sequence(steps + ([normalizers.Lowercase()] if lowercase else []))


def _regex(pattern: str):
    from tokenizers import Regex
    return Regex(pattern)


def _check_texts(texts, what: str) -> list[str]:
    if isinstance(texts, str):
        raise MmworkError(f"Tokenizer.{what} takes a list of strings, not one string; wrap it: [text]")
    if texts is None or not isinstance(texts, Iterable):
        raise MmworkError(f"Tokenizer.{what} takes a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise MmworkError(f"Tokenizer.{what} takes strings; one item is {type(bad).__name__} ({bad!r:.40})")
    if what == "fit" and not texts:
        raise MmworkError("Tokenizer.fit got no texts; give it the training sentences")
    return texts


# -- corpora from the store ----------------------------------------------------------------------------
def austen_sentences(split: Literal["train", "valid", "test"], limit: int | None = None) -> list[str]:
    """The ``austen`` data set's sentences of one split in reading order (the novels in publication
    order), the first ``limit`` of them if given."""
    if split not in SPLITS:
        raise MmworkError(f"austen has the splits {', '.join(map(repr, SPLITS))}, not {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise MmworkError(f"limit must be a positive integer or None, got {limit!r}")
    frame = read_table("austen", "items", columns=["text"], filters=[("split", "==", split)])
    return frame["text"].iloc[:limit].tolist()


def item_texts(dataset: str, column: str = "text") -> pd.DataFrame:
    """``item_id`` and ``column`` of a data set's items, rows whose text is missing or blank dropped."""
    frame = read_table(dataset, "items", columns=["item_id", column])
    if not (pd.api.types.is_string_dtype(frame[column]) or frame[column].dtype == object):
        raise MmworkError(f"column {column!r} of {dataset} items holds {frame[column].dtype}, not text; "
                          "choose a text column")
    keep = frame[column].notna() & frame[column].astype(str).str.strip().ne("")
    if not keep.any():
        raise MmworkError(f"column {column!r} of {dataset} items is empty; choose a text column")
    return frame[keep].reset_index(drop=True)


class TitleCorpus(NamedTuple):
    item_ids: list[str]
    """One item per title, in the items table's order."""
    titles: list[str]
    """Each title with its year, e.g. "Toy Story (1995)"."""
    conditions: torch.Tensor
    """(N, G + 1) float32: the item's genres multi-hot, then its release year scaled to [0, 1]."""
    columns: list[str]
    """The name of each condition column: the genres (sorted), then "release_year"."""
    split: np.ndarray
    """The split of each item, "train", "valid" or "test" (80/10/10, a stable hash of the item_id)."""


_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


def title_conditions(dataset: str = "movielens-100k") -> TitleCorpus:
    """The titles of a catalogue with a ``title``, a ``genres`` list and a ``release_year`` column, and
    the condition vector of each (genres multi-hot + year).

    The year comes from ``release_year``, else from a "(YYYY)" ending the title; it is scaled over the
    catalogue's range of years. An item with neither gets 0.5, the middle of the range (in
    MovieLens-100K one item, "unkonwn", id 267).
    """
    frame = read_table(dataset, "items", columns=["item_id", "title", "genres", "release_year"])
    frame = frame[frame["title"].notna() & frame["title"].astype(str).str.strip().ne("")]
    if frame.empty:
        raise MmworkError(f"{dataset} items have no titles; title_conditions needs a title column with text")
    titles = frame["title"].astype(str).str.strip()
    in_title = pd.to_numeric(titles.str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce")
    years = pd.to_numeric(frame["release_year"], errors="coerce").astype(float).fillna(in_title)
    titles = [t if pd.isna(y) or _YEAR_IN_TITLE.search(t) else f"{t} ({int(y)})" for t, y in zip(titles, years)]
    low, high = years.min(), years.max()
    scaled = ((years - low) / (high - low) if high > low else years * 0.0).fillna(0.5)
    genres = [list(g) if g is not None and not (isinstance(g, float) and np.isnan(g)) else [] for g in frame["genres"]]
    vocabulary = sorted({g for row in genres for g in row})
    if not vocabulary:
        raise MmworkError(f"{dataset} items have no genres; title_conditions needs a genres list column")
    index = {g: i for i, g in enumerate(vocabulary)}
    conditions = np.zeros((len(frame), len(vocabulary) + 1), dtype=np.float32)
    for row, names in enumerate(genres):
        conditions[row, [index[g] for g in names]] = 1.0
    conditions[:, -1] = scaled.to_numpy(dtype=np.float32)
    item_ids = frame["item_id"].astype(str).tolist()
    return TitleCorpus(item_ids, titles, torch.from_numpy(conditions), vocabulary + ["release_year"],
                       np.array([split_of(i) for i in item_ids]))
