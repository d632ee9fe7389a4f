"""Item texts for users from the pretrained language model (SmolLM2): zero-shot, few-shot from the
user's own training items, or LoRA fine-tuned on (profile -> item text) pairs of the training split.

Generation shares each prompt across its samples: a user's prompt is read once (one forward pass
fills the KV cache), the cache is repeated for the user's ``seeds x candidates`` sample rows, and
those rows are decoded together, each from its own random stream seeded by (generator seed, user
row, sample), so a user's samples do not depend on the batch they were drawn in. A row stops at
the end of its turn, or at the end of the line that holds its "Genres:" part, or after
``max_new_tokens``; rows that stop leave the batch. Answers are parsed into the catalogue's item
format (``prompts.parse_item``); an empty or unreadable one is a recorded skip with its reason.

The fine-tuned model is the base model with a LoRA adapter (``mmwork.models.language.fine_tune_lora``)
trained on pairs (the zero-shot prompt of user u's profile *without* item i, the catalogue text of i)
over a seeded sample of the training interactions, early-stopped on pairs (u's training profile, the
text of a validation item of u); it is saved under ``data/models/personal/<dataset>/language/``.

>>> lm = LanguageModel.load()                                                      # doctest: +SKIP
>>> writer = LanguageItems(personalise.load("movielens-100k"), lm)                 # doctest: +SKIP
>>> writer.for_user("196", "few-shot", n=3, pitch=True)                            # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from tqdm import tqdm

from mmwork.apps.personalise.personaliser import Personaliser, interaction_split, model_dir
from mmwork.apps.personalise.prompts import (MODES, Prompt, PromptConfig, build_prompt, item_title, parse_item,
                                             pitch_messages, user_profile)
from mmwork.core.config import Config, Duration
from mmwork.core.errors import MmworkError

log = logging.getLogger("mmwork.apps.personalise")


class LanguageItemsConfig(Config):
    """How the language model writes items for a user."""

    prompt: PromptConfig = PromptConfig()
    max_new_tokens: int = Field(48, ge=4, le=512)
    """Most tokens of one answer. The catalogue's longest item line is under 40 SmolLM2 tokens."""
    temperature: float = Field(0.8, gt=0.0, le=5.0)
    """Sampling temperature (0.8: varied titles without the incoherent tail of 1.0 in a 135M model)."""
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    rows_per_batch: int = Field(32, ge=1, le=1024)
    """Sample rows decoded together (whole users' prompts are batched up to this many rows). 32: on one
    CPU thread larger batches got slower per token (the repeated KV cache is copied every step)."""
    time_budget: Duration | None = None
    """Wall-clock limit of one :meth:`LanguageItems.sample` call; users not reached are recorded skips."""
    progress: bool | None = True


@dataclass
class Samples:
    """What :meth:`LanguageItems.sample` returns for each prompt, in order."""

    raw: list[list[str]]
    """Per prompt, the decoded answer of each stream."""
    texts: list[list[str | None]]
    """Per prompt and stream, the parsed item text (None: skipped)."""
    skips: list[dict] = field(default_factory=list)
    """One record per skipped answer or prompt: prompt index, stream, reason, the raw answer."""
    new_tokens: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    """Why sampling stopped before the last prompt (time budget), if it did."""


def stream_seed(seed: int, row: int, sample: int) -> int:
    """The random stream of one sample: (generator seed, user row, sample index)."""
    state = np.random.SeedSequence([int(seed), int(row), int(sample)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


class _LineStop:
    """Which tokens end an answer: the end of the turn, or a newline once the text holds "Genres:"."""

    def __init__(self, lm):
        from mmwork.models.language.generation import end_token_ids
        self.tokenizer = lm.tokenizer
        self.ends = torch.tensor(end_token_ids(lm.model, lm.tokenizer), dtype=torch.long)
        pieces = lm.tokenizer.convert_ids_to_tokens(list(range(len(lm.tokenizer))))
        self.newline = torch.tensor(["\u010a" in (p or "") or "\n" in (p or "") for p in pieces], dtype=torch.bool)

    def done(self, token: int, ids: list[int]) -> bool:
        if token in self.ends.tolist():
            return True
        if token < len(self.newline) and self.newline[token]:
            text = self.tokenizer.decode(ids, skip_special_tokens=True).lower()
            return "genre" in text or len([s for s in text.split("\n") if s.strip()]) >= 3
        return False


@torch.inference_mode()
def sample_streams(lm, prompts: list[str], streams: list[list[int]], *, max_new_tokens: int, temperature: float,
                   top_p: float, rows_per_batch: int = 32, time_budget: float | None = None,
                   progress: bool | None = True) -> tuple[list[list[list[int]]], int, str | None]:
    """Token ids sampled for each prompt, one answer per stream seed in ``streams[i]``: each prompt read
    once, its KV cache repeated for its streams. Returns (ids per prompt and stream, new tokens, why
    it stopped early or None); prompts not reached before ``time_budget`` get no answers ([])."""
    from mmwork.models.language.sampling import SamplingConfig, next_tokens
    config = SamplingConfig.make(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    if len(prompts) != len(streams):
        raise MmworkError(f"{len(prompts)} prompts but {len(streams)} stream lists")
    stop = _LineStop(lm)
    tok, device = lm.tokenizer, lm.device
    pad = tok.pad_token_id if tok.pad_token_id is not None else int(stop.ends[0])
    encoded = tok(list(prompts), add_special_tokens=False)["input_ids"]
    for i, ids in enumerate(encoded):
        if len(ids) + max_new_tokens > lm.context_length:
            raise MmworkError(f"prompt {i} has {len(ids)} tokens; with {max_new_tokens} new ones it passes the "
                              f"context of {lm.context_length}; build it with build_prompt (it truncates)")
    out: list[list[list[int]]] = [[] for _ in prompts]
    started, total, stopped = time.perf_counter(), 0, None
    bar = tqdm(total=len(prompts), desc="language model: prompts", unit="prompt", leave=False,
               disable=None if progress is None else not progress)
    lm.model.eval()
    start = 0
    while start < len(prompts):
        batch, rows = [start], len(streams[start])
        while batch[-1] + 1 < len(prompts) and rows + len(streams[batch[-1] + 1]) <= rows_per_batch:
            batch.append(batch[-1] + 1)
            rows += len(streams[batch[-1]])
        start = batch[-1] + 1
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(batch):
            ids[r, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[r, width - len(encoded[i]):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        first = lm.model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                         use_cache=True, logits_to_keep=1)
        cache = first.cache if getattr(first, "cache", None) is not None else first.past_key_values
        repeats = torch.tensor([len(streams[i]) for i in batch])
        index = torch.repeat_interleave(torch.arange(len(batch)), repeats)
        cache.batch_select_indices(index.to(device))  # each prompt's cache, once per stream
        logits, mask, last = first.logits[index.to(device), -1], mask[index].to(device), positions[index, -1].to(device)
        owners = [(i, s) for i in batch for s in range(len(streams[i]))]
        generators = [torch.Generator().manual_seed(streams[i][s]) for i, s in owners]
        new = [[] for _ in owners]
        alive = list(range(len(owners)))
        for step in range(max_new_tokens):
            tokens = next_tokens(logits, config, [generators[a] for a in alive])
            keep = []
            for position, (a, token) in enumerate(zip(alive, tokens.tolist())):
                if stop.done(token, new[a]):
                    continue
                new[a].append(token)
                keep.append(position)
            total += len(alive)
            if not keep or step + 1 == max_new_tokens:
                break
            if len(keep) < len(alive):
                chosen = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(chosen.to(device))
                mask, last, tokens = mask[chosen.to(device)], last[chosen.to(device)], tokens[chosen]
                alive = [alive[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            last = last + 1
            step_out = lm.model(input_ids=tokens.to(device)[:, None], attention_mask=mask, position_ids=last[:, None],
                                cache=cache, use_cache=True)
            logits = step_out.logits[:, -1]
        for a, (i, s) in enumerate(owners):
            out[i].append(new[a])
        bar.update(len(batch))
        spent = time.perf_counter() - started
        if time_budget is not None and spent > time_budget and start < len(prompts):
            stopped = f"time budget of {time_budget:g}s reached after {start} of {len(prompts)} prompts ({spent:.0f}s)"
            break
    bar.close()
    return out, total, stopped


class LanguageItems:
    """The language model writing item texts for the users of a trained :class:`Personaliser` (its
    split, catalogue texts and label vocabulary; the guide and judges are not used here)."""

    def __init__(self, bundle: Personaliser, lm, config: LanguageItemsConfig | dict | None = None, **params):
        self.bundle, self.lm = bundle, lm
        self.config = LanguageItemsConfig.make(config, **params)
        self.vocabulary = list(bundle.content.vocabulary)
        split = interaction_split(bundle.dataset, bundle.config)
        self.train = split.train.matrix.tocsr()
        self.held_out = (split.valid.matrix + split.test.matrix).tocsr()
        self.valid = split.valid.matrix.tocsr()
        if self.train.shape[1] != len(bundle.item_texts):
            raise MmworkError("the split and the trained models disagree on the catalogue; retrain them")
        self.labels = [self._labels(t) for t in bundle.item_texts]

    def _labels(self, text):
        if text is None:
            return ()
        vector = self.bundle.content.labels([text])[0]
        return [self.vocabulary[j] for j in np.flatnonzero(vector)]

    def profile(self, row: int, without: int | None = None):
        """The profile of training-matrix ``row`` (optionally without training item ``without``)."""
        train_row = self.train[row].copy()
        if without is not None:
            train_row.data[train_row.indices == without] = 0
            train_row.eliminate_zeros()
        return user_profile(train_row, self.bundle.item_texts, self.labels, forbidden=self.held_out[row].indices,
                            config=self.config.prompt, row=row)

    def prompt(self, row: int, mode: str, without: int | None = None) -> Prompt:
        """The prompt of ``mode`` for training-matrix ``row`` (training items only; see ``prompts``)."""
        return build_prompt(self.lm, self.profile(row, without), mode, self.config.prompt, self.config.max_new_tokens)

    def sample(self, prompts: list[Prompt], rows: list[int], seeds: list[int], candidates: int,
               exclude: bool = True) -> Samples:
        """``candidates`` answers per generator seed for each prompt (user ``rows[i]``), parsed; with
        ``exclude``, an answer with the title of one of the user's own training items is a skip (the
        LSTM's samples equal to a training text are dropped; the language model, which reads those
        titles in its prompt, also repeats them with other genres, so titles are compared)."""
        c = self.config
        streams = [[stream_seed(s, row, j) for s in seeds for j in range(candidates)] for row in rows]
        started = time.perf_counter()
        ids, total, stopped = sample_streams(self.lm, [p.text for p in prompts], streams,
                                             max_new_tokens=c.max_new_tokens, temperature=c.temperature,
                                             top_p=c.top_p, rows_per_batch=c.rows_per_batch,
                                             time_budget=c.time_budget, progress=c.progress)
        raw, texts, skips = [], [], []
        for i, (row, answers) in enumerate(zip(rows, ids)):
            own = {item_title(t) for t in self.bundle.history(row)} if exclude else set()
            decoded = [self.lm.tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers]
            parsed = []
            for stream, text in enumerate(decoded):
                item = parse_item(text, self.vocabulary)
                reason = item.reason or ("the title of one of the user's training items"
                                         if item_title(item.text) in own else None)
                parsed.append(None if reason else item.text)
                if reason:
                    skips.append({"prompt": i, "row": int(row), "stream": stream, "reason": reason, "raw": text[:200]})
            if not answers:
                skips.append({"prompt": i, "row": int(row), "stream": None, "reason": stopped, "raw": ""})
            raw.append(decoded)
            texts.append(parsed)
        return Samples(raw, texts, skips, total, time.perf_counter() - started, stopped)

    def pitches(self, item_texts: list[str], *, seed: int = 0, max_new_tokens: int = 96) -> list[str]:
        """A one-paragraph pitch per item line (``lm.generate``: batched, seeded); not read by the judges."""
        if not item_texts:
            return []
        prompts = [self.lm.chat(pitch_messages(t)) for t in item_texts]
        written = self.lm.generate(prompts, max_new_tokens=max_new_tokens, temperature=self.config.temperature,
                                   top_p=self.config.top_p, seed=seed, progress=self.config.progress)
        return [whole_sentences(text) for text in written]

    def for_user(self, user_id, mode: str = "few-shot", n: int = 5, *, candidates: int | None = None, seed: int = 0,
                 pitch: bool = False) -> pd.DataFrame:
        """``n`` items the language model writes for ``user_id`` (the first ``n`` distinct readable
        answers of ``candidates`` samples): text, title, genres, whether it copies a catalogue text,
        and with ``pitch`` a one-paragraph pitch. ``frame.attrs``: the prompt, its note and the skips."""
        if mode not in MODES:
            raise MmworkError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise MmworkError(f"n must be a positive integer, got {n!r}")
        if mode == "fine-tuned" and getattr(self.lm, "adapter", None) is None:
            raise MmworkError("the fine-tuned mode needs a language model with a LoRA adapter "
                              "(LanguageModel.load(adapter=...), see fine_tune)")
        row = self.bundle.user_row(user_id)
        prompt = self.prompt(row, mode)
        drawn = self.sample([prompt], [row], [seed], candidates or 2 * n)
        kept = list(dict.fromkeys(t for t in drawn.texts[0] if t is not None))[:n]
        catalogue = set(self.bundle.record["catalogue_texts"])
        frame = pd.DataFrame({"rank": np.arange(1, len(kept) + 1), "text": kept,
                              "genres": [parse_item(t, self.vocabulary).genres for t in kept],
                              "in_catalogue": [t in catalogue for t in kept]})
        if pitch:
            frame["pitch"] = self.pitches(kept, seed=seed)
        frame.attrs.update({"prompt": prompt.text, "note": prompt.note, "skips": drawn.skips, "mode": mode})
        return frame


def whole_sentences(text: str) -> str:
    """``text`` up to its last full sentence (a pitch cut by ``max_new_tokens`` ends mid-sentence), on one line.

    >>> whole_sentences("A ferry captain finds a letter. It changes his last")
    'A ferry captain finds a letter.'
    """
    text = " ".join(str(text).split())
    ends = [m.end() for m in re.finditer(r"[.!?][\"')]?(?=\s|$)", text)]
    return text[:ends[-1]] if ends else text


def fine_tune_pairs(items: LanguageItems, n_train: int = 2000, n_valid: int = 200,
                    seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(prompt, target) pairs: ``n_train`` training interactions (u, i) drawn at random (users with at
    least two training items), the prompt of u's profile without i and the text of i; and ``n_valid``
    validation interactions (u, v), the prompt of u's training profile and the text of v."""
    rng = np.random.default_rng(seed)
    coo = items.train.tocoo()
    counts = np.diff(items.train.indptr)
    texts = items.bundle.item_texts
    ok = np.array([counts[u] > 1 and texts[i] is not None for u, i in zip(coo.row, coo.col)], bool)
    chosen = rng.choice(np.flatnonzero(ok), min(n_train, int(ok.sum())), replace=False)
    train = [(items.prompt(int(coo.row[k]), "fine-tuned", without=int(coo.col[k])).text, texts[coo.col[k]])
             for k in chosen]
    valid_coo = items.valid.tocoo()
    ok = np.array([texts[i] is not None for i in valid_coo.col], bool)
    chosen = rng.choice(np.flatnonzero(ok), min(n_valid, int(ok.sum())), replace=False)
    valid = [(items.prompt(int(valid_coo.row[k]), "fine-tuned").text, texts[valid_coo.col[k]]) for k in chosen]
    return train, valid


def adapter_dir(dataset: str):
    """Where :func:`fine_tune` saves the adapter: ``data/models/personal/<dataset>/language/adapter``."""
    return model_dir(dataset) / "language" / "adapter"


def fine_tune(items: LanguageItems, *, n_train: int = 2000, n_valid: int = 200, seed: int = 0, save: bool = True,
              **lora) -> tuple[object, dict]:
    """The base model of ``items`` LoRA-tuned on :func:`fine_tune_pairs` (``lora``: ``LoraConfig``
    fields, e.g. ``time_budget="15m"``), saved under :func:`adapter_dir` with a record; returns the
    tuned model and the record."""
    from mmwork.models.language import fine_tune_lora
    started = time.perf_counter()
    train, valid = fine_tune_pairs(items, n_train, n_valid, seed)
    pairs_seconds = time.perf_counter() - started
    tuned = fine_tune_lora(items.lm, train, valid, seed=seed, progress=items.config.progress, **lora)
    history = tuned.adapter["history"]
    record = {"train_pairs": len(train), "valid_pairs": len(valid), "seed": seed, "lora": lora,
              "pairs_seconds": round(pairs_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
              "best_step": tuned.adapter.get("best_step"), "history": history,
              "example_pair": {"prompt": train[0][0], "target": train[0][1]}}
    if save:
        folder = tuned.save_adapter(adapter_dir(items.bundle.dataset))
        (folder / "run.json").write_text(json.dumps(record, indent=1, default=str))
    log.info("personalise: LoRA on %d pairs in %.0f s (best step %s)", len(train), record["seconds"],
             record["best_step"])
    return tuned, record



def language_items(dataset: str = "movielens-100k", mode: str = "few-shot", *, device: str = "auto",
                   fine_tune_budget: str | float = "10m", **config) -> LanguageItems:
    """The language model writing items for the users of the personalised models saved for ``dataset``
    (:func:`mmwork.apps.personalise.train` first). ``mode="fine-tuned"`` loads the LoRA adapter
    :func:`fine_tune` saved, fine-tuning it first within ``fine_tune_budget`` when there is none.
    ``config``: :class:`LanguageItemsConfig` fields.

    >>> language_items("movielens-100k", "few-shot").for_user("196", n=3, pitch=True)   # doctest: +SKIP
    """
    from mmwork.apps.personalise.personaliser import load
    from mmwork.models.language import LanguageModel
    if mode not in MODES:
        raise MmworkError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    config = LanguageItemsConfig.make(config)  # bad sampling parameters fail before anything loads
    device = None if device == "auto" else device
    bundle = load(dataset, device or "auto")
    adapter = adapter_dir(dataset)
    if mode != "fine-tuned" or (adapter / "run.json").exists():
        lm = LanguageModel.load(adapter=adapter if mode == "fine-tuned" else None, device=device)
        return LanguageItems(bundle, lm, config)
    log.warning("no LoRA adapter for %s yet: fine-tuning one within %s into %s", dataset, fine_tune_budget, adapter)
    items = LanguageItems(bundle, LanguageModel.load(device=device), config)
    tuned, _ = fine_tune(items, time_budget=fine_tune_budget)
    return LanguageItems(bundle, tuned, config)
