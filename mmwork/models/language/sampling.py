"""How the language model picks each next token: greedy, or sampled with a temperature and nucleus (top-p),
from one random stream per prompt.

Each prompt ``i`` draws from its own generator seeded by ``(seed, i)``, so what it gets depends on the
seed and its place in the list only: not on the batch size, the other prompts in its batch, or a time
budget that stopped the run early (on CPU, where the arithmetic is deterministic, the same call gives
the same texts). Draws are made on the CPU, so a CUDA run uses the same random numbers.

>>> config = SamplingConfig.make(temperature=0.7, top_p=0.9, seed=3)
>>> config.greedy
False
>>> SamplingConfig.make(top_p=1.5)
Traceback (most recent call last):
...
mmwork.core.errors.MmworkError: bad parameter for Sampling: top_p: Input should be less than or equal to 1 (got 1.5)
"""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from mmwork.core.config import Config, Duration


class SamplingConfig(Config):
    """The generation parameters of :meth:`LanguageModel.generate`, validated before any compute."""

    max_new_tokens: int = Field(80, ge=1, le=4096)
    """Most tokens generated per prompt (a prompt stops earlier at the end-of-turn token). 80 tokens hold
    a title and a one-paragraph pitch."""
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    """Divides the logits before sampling; 0 means greedy (the likeliest token every step). 0.7 is a
    common setting for small chat models: fewer incoherent tokens than 1.0, less repetition than greedy."""
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    """Nucleus sampling: draw from the smallest set of likeliest tokens whose probability reaches this
    (1 keeps them all). 0.9 cuts the long tail of unlikely tokens that makes small models ramble."""
    seed: int = Field(0, ge=0)
    """Seeds each prompt's random stream (with the prompt's position)."""
    batch_size: int = Field(16, ge=1, le=1024)
    """Prompts decoded together (left-padded, one KV cache). 16 keeps a 2-core CPU busy with matrix
    products rather than Python overhead (benchmarks/language_speed.py)."""
    time_budget: Duration | None = None
    """Stop after the batch that passes this wall-clock time (seconds, or "90s", "2m"); the result says how
    many prompts were done. None: no budget."""
    progress: bool | None = True
    """Show a progress bar over prompts (None: only on a terminal)."""

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def row_generators(seed: int, indices) -> list[torch.Generator]:
    """One CPU random generator per prompt, seeded by ``(seed, prompt index)``."""
    generators = []
    for index in indices:
        state = np.random.SeedSequence([seed, int(index)]).generate_state(2, dtype=np.uint32)
        generators.append(torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1])))
    return generators


CANDIDATES = 64
"""Likeliest tokens sorted first when looking for the nucleus; a row whose 64 likeliest tokens fall short of
``top_p`` sorts its whole vocabulary instead (same result, slower)."""


def next_tokens(logits: torch.Tensor, config: SamplingConfig, generators: list[torch.Generator]) -> torch.Tensor:
    """The next token of every row of ``logits`` (rows x vocabulary) under ``config``; a CPU long tensor.

    A sampled token is found by inverting the cumulative distribution of the kept tokens (the nucleus, in
    decreasing probability) at one uniform draw from the row's generator, so one draw per token whatever
    the vocabulary size or how the nucleus was found."""
    logits = logits.float()
    if config.greedy:
        return logits.argmax(-1).cpu()
    probs = torch.softmax(logits / config.temperature, dim=-1).cpu()
    chosen = []
    if config.top_p >= 1.0:
        for row, g in zip(probs, generators):
            cdf = row.cumsum(0)
            u = torch.rand(1, generator=g, dtype=torch.float64).item() * float(cdf[-1])
            chosen.append(min(int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype), right=True)),
                              row.numel() - 1))
        return torch.tensor(chosen, dtype=torch.long)
    values, indices = probs.topk(min(CANDIDATES, probs.shape[-1]), dim=-1)
    for row, g, vals, idx in zip(probs, generators, values, indices):
        if float(vals.sum()) < config.top_p:
            vals, idx = row.sort(descending=True)
        before = vals.cumsum(0) - vals  # probability of the likelier tokens
        kept = vals[before < config.top_p]  # the smallest set that reaches top_p (the likeliest always)
        cdf = kept.double().cumsum(0)
        u = torch.rand(1, generator=g, dtype=torch.float64).item() * float(cdf[-1])
        pick = min(int(torch.searchsorted(cdf, torch.tensor([u], dtype=torch.float64), right=True)), kept.numel() - 1)
        chosen.append(int(idx[pick]))
    return torch.tensor(chosen, dtype=torch.long)
