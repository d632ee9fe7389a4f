"""Prompts for the pretrained language model from a user's profile as the recommender sees it, and the
parsing of its answer back into the catalogue's item-text format.

**The profile** (:func:`user_profile`) reads the *training* interactions only: the user's highest-rated
training items (ties in a seeded order), their texts, and the genres those items carry, counted.
A validation or test item of the user is refused in code (:func:`check_training_only`), so no prompt
can hold one.

**The item text** is what the catalogue holds for an item and what the judges score: on MovieLens
``"Title (year). Genres: A, B."``, the LSTM's format, embedded (MiniLM, TF-IDF/LSA) and parsed for
its labels by the same path (``ItemContent.of_texts``). The model is asked for exactly that one line;
:func:`parse_item` normalises its answer into it (genres outside the catalogue's vocabulary dropped,
spelling made the catalogue's), and an answer that cannot be read is a recorded skip with its reason.
A one-paragraph pitch is written separately from the item line (:func:`pitch_messages`); the judges
never read it (it would change the text vectors the catalogue items do not have), people and the
speech step do.

Three prompt modes: ``zero-shot`` (an instruction and the profile), ``few-shot`` (before it,
``shots`` worked examples from the user's *own* training items: a few of them listed, another of
them as the answer) and ``fine-tuned`` (the zero-shot prompt, for a LoRA-tuned model). A prompt
longer than its token budget loses its lowest-rated profile items (then its examples) until it fits,
and says so in :attr:`Prompt.note`.

>>> parse_item("**Night Tide (1961). Genres: horror, Romance, Space.**", ["Horror", "Romance"]).text
'Night Tide (1961). Genres: Horror, Romance.'
>>> parse_item("I cannot help with that.", ["Horror"]).reason
"no 'Genres:' part"
>>> profile = user_profile(train_row, texts, labels, forbidden=held_out)          # doctest: +SKIP
>>> build_prompt(lm, profile, "few-shot").text                                   # doctest: +SKIP
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError

MODES = ("zero-shot", "few-shot", "fine-tuned")
"""The prompt modes: instruction only; worked examples from the user's own training items first; the
zero-shot prompt for a model fine-tuned on (profile -> item text) pairs."""

SYSTEM = "You suggest films. You answer with one catalogue line and nothing else."
INSTRUCTION = ("Invent a new film this viewer would like, not one listed. Answer with one line in the same "
               "format: Title (year). Genres: Genre, Genre.")


class PromptConfig(Config):
    """How a profile becomes a prompt."""

    max_items: int = Field(8, ge=1, le=200)
    """Highest-rated training items listed. 8 lines (about 160 tokens) show a taste while keeping the
    prompt, which every sampled token attends to, short on a CPU."""
    genres: int = Field(5, ge=0, le=50)
    """Most frequent genres of the listed items named in the prompt (0: none)."""
    shots: int = Field(2, ge=1, le=10)
    """Worked examples in a few-shot prompt."""
    shot_items: int = Field(3, ge=1, le=50)
    """Items listed in each worked example."""
    max_prompt_tokens: int | None = Field(None, ge=32)
    """Token budget of a prompt; None: the model's context less the generation's tokens."""
    seed: int = Field(0, ge=0)
    """Orders a user's equally rated items (so ties do not favour low item ids)."""


@dataclass
class UserProfile:
    """A user as the prompt shows them: training items only, best first."""

    row: int
    """The user's row in the training matrix."""
    items: np.ndarray
    """Catalogue column indices of the listed training items, highest rating first."""
    ratings: np.ndarray
    texts: list[str]
    """The catalogue text of each listed item."""
    genres: list[tuple[str, int]]
    """The listed items' genres with how many of them carry each, most frequent first."""
    n_training: int
    """The user's training items with a text (listed or not)."""
    note: str | None = None
    """Why fewer items are listed than ``max_items`` allowed, if they are."""


@dataclass
class Prompt:
    """A prompt string ready for ``lm.generate`` and what it shows."""

    text: str
    mode: str
    items: np.ndarray
    """The profile items the prompt lists (after any truncation)."""
    shots: list[int] = field(default_factory=list)
    """Catalogue indices of the worked examples' answers (few-shot)."""
    tokens: int = 0
    note: str | None = None
    """A recorded note when the profile was truncated to fit the token budget."""


def check_training_only(items, forbidden, row: int | None = None) -> None:
    """A one-line error if any of ``items`` is among ``forbidden`` (the user's validation and test
    items): the prompt must never show a held-out item."""
    leaked = np.intersect1d(np.asarray(items, dtype=np.int64), np.asarray(forbidden, dtype=np.int64))
    if len(leaked):
        who = "" if row is None else f" of user row {row}"
        raise MmworkError(f"the prompt would show held-out item(s) {leaked[:5].tolist()}{who}; a prompt reads "
                          "training items only")


def user_profile(train_row, item_texts: Sequence[str | None], item_labels: Sequence[Sequence[str]], *,
                 forbidden=(), config: PromptConfig | None = None, row: int = 0) -> UserProfile:
    """The profile of one user from their row of the *training* matrix (values: ratings; a 1 x items
    sparse row), the catalogue's texts and label lists (aligned to the matrix's columns).
    ``forbidden``: the user's validation and test items, checked never to be listed."""
    import scipy.sparse as sp
    config = config or PromptConfig()
    train_row = sp.csr_matrix(train_row)
    items, ratings = train_row.indices.astype(np.int64), train_row.data.astype(np.float64)
    with_text = np.array([item_texts[i] is not None and str(item_texts[i]).strip() != "" for i in items], bool)
    items, ratings = items[with_text], ratings[with_text]
    if len(items) == 0:
        raise MmworkError(f"user row {row} has no training items with a text; there is no profile to prompt with")
    shuffle = np.random.default_rng([config.seed, row]).permutation(len(items))
    order = shuffle[np.argsort(-ratings[shuffle], kind="stable")]
    chosen = order[:config.max_items]
    listed = items[chosen]
    check_training_only(listed, forbidden, row)
    counts = Counter(str(g) for i in listed for g in (item_labels[i] if item_labels[i] is not None else ()))
    genres = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:config.genres]
    return UserProfile(row, listed, ratings[chosen], [str(item_texts[i]) for i in listed], genres, len(items))


def _listing(texts: Sequence[str]) -> str:
    return "\n".join(f"- {t}" for t in texts)


def _ask(texts: Sequence[str], genres: Sequence[tuple[str, int]], shown: int) -> str:
    lines = [f"A viewer rated these films highest (best first):\n{_listing(texts)}"]
    if genres:
        lines.append("Genres among them: " + ", ".join(f"{g} ({c} of {shown})" for g, c in genres) + ".")
    lines.append(INSTRUCTION)
    return "\n".join(lines)


def zero_shot_messages(profile: UserProfile, n_items: int | None = None) -> list[dict]:
    """The instruction and the profile (its first ``n_items`` items)."""
    texts = profile.texts[:n_items]
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": _ask(texts, _genres_of(profile, len(texts)), len(texts))}]


def _genres_of(profile: UserProfile, n: int) -> list[tuple[str, int]]:
    """The genre counts of the first ``n`` listed items (recounted when the list was cut)."""
    if n >= len(profile.texts):
        return profile.genres
    wanted = len(profile.genres)
    counts = Counter(g.strip() for t in profile.texts[:n] for g in _label_part(t).split(",") if g.strip())
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:wanted]


def few_shot_messages(profile: UserProfile, config: PromptConfig | None = None, n_items: int | None = None,
                      shots: int | None = None) -> tuple[list[dict], list[int]]:
    """Worked examples from the user's own training items, then the zero-shot question. Example k
    answers with the profile's item k and lists ``shot_items`` of the profile's *other* items;
    returns the messages and the examples' answer items."""
    config = config or PromptConfig()
    shots = min(config.shots if shots is None else shots, max(len(profile.texts) - 1, 0))
    messages = [{"role": "system", "content": SYSTEM}]
    answers = []
    for k in range(shots):
        others = [t for j, t in enumerate(profile.texts) if j != k][k:k + config.shot_items] or \
            [t for j, t in enumerate(profile.texts) if j != k][:config.shot_items]
        counts = Counter(g.strip() for t in others for g in _label_part(t).split(",") if g.strip())
        genres = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:config.genres]
        messages += [{"role": "user", "content": _ask(others, genres, len(others))},
                     {"role": "assistant", "content": profile.texts[k]}]
        answers.append(int(profile.items[k]))
    messages += zero_shot_messages(profile, n_items)[1:]
    return messages, answers


def build_prompt(lm, profile: UserProfile, mode: str, config: PromptConfig | None = None,
                 max_new_tokens: int = 48) -> Prompt:
    """The prompt of ``mode`` for ``profile`` through ``lm.chat``, within the token budget
    (``config.max_prompt_tokens``, else the context less ``max_new_tokens``): the lowest-rated items go
    first, then the few-shot examples; what was cut is in the prompt's ``note``."""
    if mode not in MODES:
        raise MmworkError(f"unknown prompt mode {mode!r}; choose from {', '.join(MODES)}")
    config = config or PromptConfig()
    budget = config.max_prompt_tokens or lm.context_length - max_new_tokens
    n_items, shots = len(profile.texts), config.shots if mode == "few-shot" else 0
    while True:
        if mode == "few-shot" and shots:
            messages, answers = few_shot_messages(profile, config, n_items, shots)
        else:
            messages, answers = zero_shot_messages(profile, n_items), []
        text = lm.chat(messages)
        tokens = lm.n_tokens(text)
        if tokens <= budget:
            break
        if n_items > 1:
            n_items -= 1
        elif shots:
            shots -= 1
        else:
            raise MmworkError(f"even a one-item prompt has {tokens} tokens, over the budget of {budget}; raise "
                              "max_prompt_tokens or lower max_new_tokens")
    notes = [profile.note] if profile.note else []
    if n_items < len(profile.texts):
        notes.append(f"profile truncated to {n_items} of {len(profile.texts)} items to fit {budget} tokens")
    if mode == "few-shot" and shots < min(config.shots, max(len(profile.texts) - 1, 0)):
        notes.append(f"few-shot examples cut to {shots} to fit {budget} tokens")
    return Prompt(text, mode, profile.items[:n_items], answers, tokens, "; ".join(notes) or None)


def pitch_messages(item_text: str) -> list[dict]:
    """Messages asking for a one-paragraph pitch of an item line (not read by the judges)."""
    return [{"role": "system", "content": "You write short, vivid film pitches."},
            {"role": "user", "content": f"Write a one-paragraph pitch (three sentences) for this film:\n{item_text}"}]


# -- parsing ------------------------------------------------------------------------------------------

@dataclass
class ParsedItem:
    """What :func:`parse_item` read: the item text in the catalogue's format, or None and why not."""

    text: str | None
    title: str | None = None
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Genre names outside the catalogue's vocabulary (left out of the text)."""
    reason: str | None = None
    """Why there is no text (a recorded skip)."""


_MARKER = re.compile(r"\bgenres?\s*:", re.IGNORECASE)
_YEAR = re.compile(r"\((\d{4})\)")
_LEAD = re.compile(r"^(?:\s*(?:[-*•]|\d+[.)])\s+|\s*(?:title|film|movie)\s*:\s*)+", re.IGNORECASE)


def _label_part(text: str) -> str:
    found = list(_MARKER.finditer(text))
    return text[found[-1].end():].strip().rstrip(".") if found else ""


def format_item(title: str, year: int | None, genres: Sequence[str]) -> str:
    """The catalogue's item text: ``"Title (year). Genres: A, B."`` (no year: ``"Title. Genres: A."``)."""
    head = f"{title} ({year})" if year is not None else title
    return f"{head}. Genres: {', '.join(genres)}."


def parse_item(generated: str | None, vocabulary: Sequence[str]) -> ParsedItem:
    """The item text in the catalogue's format from a generation: the title (markdown, list marks and
    a leading "Title:" removed), its "(year)" if any, and the genres after the first "Genres:" (the
    rest of that line; names matched to ``vocabulary`` case-insensitively, unknown ones dropped,
    repeats once). No text, no "Genres:" part, no title or no known genre: ``text`` None and the
    ``reason``."""
    if generated is None or not str(generated).strip():
        return ParsedItem(None, reason="empty generation")
    text = str(generated).replace("**", "").replace("__", "").strip().strip('"').strip()
    found = _MARKER.search(text)
    if found is None:
        return ParsedItem(None, reason="no 'Genres:' part")
    head = " ".join(text[:found.start()].split())
    tail = text[found.end():].split("\n", 1)[0]
    year_match = None
    for year_match in _YEAR.finditer(head):
        pass
    year = int(year_match[1]) if year_match else None
    title = head[:year_match.start()] if year_match else head
    title = _LEAD.sub("", title).strip().strip("\"'").strip(" .,;:-|").strip()
    if not title:
        return ParsedItem(None, year=year, reason="no title before 'Genres:'")
    canonical = {str(v).strip().lower(): str(v) for v in vocabulary}
    genres, dropped = [], []
    for name in re.split(r"[,/;|]| and ", tail):
        name = name.strip().strip(".*\"'").strip()
        if not name:
            continue
        known = canonical.get(name.lower())
        if known is None:
            dropped.append(name)
        elif known not in genres:
            genres.append(known)
    if not genres:
        return ParsedItem(None, title, year, [], dropped, "no genre from the catalogue's vocabulary")
    position = {str(v): j for j, v in enumerate(vocabulary)}
    genres = sorted(genres, key=position.__getitem__)  # the catalogue's order
    return ParsedItem(format_item(title, year, genres), title, year, genres, dropped)


def item_title(text: str) -> str:
    """The title of an item text (before "(year)" or "Genres:"), lower-cased and white-space normalised,
    for the title copy rate."""
    found = _MARKER.search(text)
    head = text[:found.start()] if found else text
    head = _YEAR.sub("", head)
    return " ".join(head.strip().strip(" .").lower().split())
