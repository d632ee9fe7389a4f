"""Batched generation with a KV cache: prompts left-padded into one batch, decoded together, each row
dropped from the batch (and its cache) as soon as it ends its turn.

Left padding keeps every prompt's last token in the last column, so one forward step extends all rows;
the attention mask hides the padding and each row's positions count its own tokens only
(``cumsum(mask) - 1``, as transformers' ``generate`` does), so a padded prompt is computed like the same
prompt alone. Greedy output in a batch therefore equals greedy output one prompt at a time, up to the
rounding of differently shaped matrix products.

>>> texts = generate_texts(model, tokenizer, ["<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"],
...                        SamplingConfig.make(temperature=0))     # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time

import torch
from tqdm import tqdm

from mmwork.core.errors import MmworkError
from mmwork.models.language.sampling import SamplingConfig, next_tokens, row_generators

log = logging.getLogger("mmwork.models.language")


class Generations(list):
    """The generated texts (a list of str, in the prompts' order) and what happened making them.

    Attributes: ``done`` (prompts generated; fewer than asked when the time budget stopped the run, and the
    texts are then those of the first ``done`` prompts), ``asked``, ``stopped`` (None, or why the run
    stopped early), ``empty`` (indices of prompts whose generation was empty: the model ended its turn at
    once or produced only whitespace), ``new_tokens`` (tokens generated per prompt, the end token included),
    ``seconds``."""

    def __init__(self, texts=(), *, asked=0, stopped=None, empty=(), new_tokens=(), seconds=0.0):
        super().__init__(texts)
        self.done, self.asked, self.stopped = len(self), asked, stopped
        self.empty, self.new_tokens, self.seconds = list(empty), list(new_tokens), seconds

    @property
    def tokens_per_s(self) -> float:
        return sum(self.new_tokens) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line: how many were done, the empty ones, the stop reason."""
        text = f"{self.done}/{self.asked} prompts generated in {self.seconds:.1f}s ({self.tokens_per_s:.1f} tokens/s)"
        if self.empty:
            text += f"; {len(self.empty)} empty (prompts {self.empty[:10]})"
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        return text


def end_token_ids(model, tokenizer) -> list[int]:
    """The tokens that end a turn (the generation config's and the tokenizer's end-of-sequence)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def encode_prompts(tokenizer, prompts: list[str], max_new_tokens: int, context: int) -> list[list[int]]:
    """Token ids per prompt (no special tokens added: the chat template wrote them); a prompt that cannot fit
    ``max_new_tokens`` more in the context is an error before any compute."""
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise MmworkError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise MmworkError(f"prompts must be non-empty strings; prompt(s) {bad[:10]} are not")
    if not prompts:
        return []
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    for i, ids in enumerate(encoded):
        if len(ids) + max_new_tokens > context:
            raise MmworkError(
                f"prompt {i} has {len(ids)} tokens: with max_new_tokens={max_new_tokens} it passes the model's context "
                f"of {context} tokens; shorten the prompt (e.g. fewer profile items) to at most "
                f"{context - max_new_tokens} tokens, or lower max_new_tokens")
    return encoded


SHARED_PREFIX_MIN = 8
"""Shortest common prompt prefix (tokens) worth computing once for the whole batch."""


def shared_prefix(encoded: list[list[int]]) -> int:
    """Length of the token prefix all prompts share (chat prompts share the system turn and the instruction),
    leaving every prompt at least one token of its own."""
    if len(encoded) < 2:
        return 0
    first, n = encoded[0], min(len(ids) for ids in encoded) - 1
    for ids in encoded[1:]:
        n = next((i for i in range(n) if ids[i] != first[i]), n)
    return n if n >= SHARED_PREFIX_MIN else 0


def prefill(model, encoded: list[list[int]], pad_id: int, device: torch.device):
    """Run the prompts through the model: ``(output, attention mask, positions of the last column)``.

    The prefix all prompts share is computed once and its KV cache copied to every row; the rest of each
    prompt is left-padded after it (``[shared prefix][padding][own tokens]``), the mask hiding the padding
    and each row's positions counting its own tokens only."""
    shared = shared_prefix(encoded)
    rows, width = len(encoded), max(len(ids) for ids in encoded) - shared
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, ids in enumerate(encoded):
        own = ids[shared:]
        input_ids[row, width - len(own):] = torch.tensor(own, dtype=torch.long)
        mask[row, shared + width - len(own):] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = ((mask.cumsum(-1) - 1).clamp(min=0))[:, shared:]
    cache = None
    if shared:
        head = torch.tensor([encoded[0][:shared]], dtype=torch.long, device=device)
        cache = _cache(model(input_ids=head, use_cache=True, logits_to_keep=1))
        cache.batch_repeat_interleave(rows)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                logits_to_keep=1)
    return out, mask, positions[:, -1]


def _cache(out):
    return out.cache if hasattr(out, "cache") else out.past_key_values


@torch.inference_mode()
def decode_batch(model, encoded: list[list[int]], config: SamplingConfig, generators: list[torch.Generator],
                 end_ids: list[int], pad_id: int, device: torch.device) -> list[list[int]]:
    """Generate for one batch of token-id prompts; returns the new ids per prompt (the end token included)."""
    out, mask, last = prefill(model, encoded, pad_id, device)
    cache = _cache(out)
    rows = list(range(len(encoded)))  # which prompt each row of the batch is, as rows finish and leave
    new: list[list[int]] = [[] for _ in encoded]
    ends = torch.tensor(end_ids, dtype=torch.long)
    for step in range(config.max_new_tokens):
        tokens = next_tokens(out.logits[:, -1, :], config, generators)
        for row, token in zip(rows, tokens.tolist()):
            new[row].append(token)
        if step + 1 == config.max_new_tokens:
            break
        going = ~torch.isin(tokens, ends)
        if not going.all():
            if not going.any():
                break
            keep = going.nonzero().squeeze(1)
            rows = [rows[i] for i in keep.tolist()]
            generators = [generators[i] for i in keep.tolist()]
            tokens, keep = tokens[keep], keep.to(device)
            cache.batch_select_indices(keep)
            mask, last = mask[keep], last[keep]
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        last = last + 1
        out = model(input_ids=tokens.to(device)[:, None], attention_mask=mask, position_ids=last[:, None],
                    cache=cache, use_cache=True)
    return new


def generate_texts(model, tokenizer, prompts: list[str], config: SamplingConfig, *, context: int,
                   device: torch.device, desc: str = "generating") -> Generations:
    """Generate for every prompt in batches of ``config.batch_size`` (see :class:`Generations` for the result)."""
    encoded = encode_prompts(tokenizer, prompts, config.max_new_tokens, context)
    end_ids = end_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    texts, counts, empty, stopped = [], [], [], None
    started = time.perf_counter()
    bar = tqdm(total=len(encoded), desc=desc, unit="prompt", leave=False,
               disable=None if config.progress is None else not config.progress)
    try:
        for start in range(0, len(encoded), config.batch_size):
            batch = list(range(start, min(start + config.batch_size, len(encoded))))
            new = decode_batch(model, [encoded[i] for i in batch], config, row_generators(config.seed, batch),
                               end_ids, pad_id, device)
            for i, ids in zip(batch, new):
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                texts.append(text)
                counts.append(len(ids))
                if not text:
                    empty.append(i)
            bar.update(len(batch))
            spent = time.perf_counter() - started
            if config.time_budget is not None and spent > config.time_budget and batch[-1] + 1 < len(encoded):
                stopped = (f"time budget of {config.time_budget:g}s reached after {batch[-1] + 1} of {len(encoded)} "
                           f"prompts ({spent:.0f}s)")
                break
    finally:
        bar.close()
    result = Generations(texts, asked=len(encoded), stopped=stopped, empty=empty, new_tokens=counts,
                         seconds=time.perf_counter() - started)
    if empty or stopped:
        log.warning("language model: %s", result.summary())
    return result
