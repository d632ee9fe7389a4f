"""Recurrent language model over token ids (an LSTM or a GRU), optionally conditioned on a vector.

Data are lists of token ids from a tokenizer (``mmwork.models.data.text.Tokenizer``, BPE or
word-level), without BOS/EOS: the model reads BOS + tokens and learns to predict tokens + EOS
(teacher forcing, the loss masked at PAD). Its output distribution covers every id except PAD and
BOS, which it never writes, so a model with a zero output layer is uniform over ``vocab_size - 2``
tokens (EOS, UNK and the ordinary ones) and has exactly that perplexity. A condition vector (genres,
a content embedding, a user's profile) sets the initial hidden (and cell) state through a linear map
and tanh, and is concatenated to the embedding at every step (or, with ``condition_input="add"``,
projected once to the embedding size and added to it), so it can steer both the first and the later
tokens. The network, its full or adaptive softmax and the sampling loop are
:mod:`~mmwork.models.generators.recurrent`.

Training cuts sequences to their first ``max_len`` positions, EOS included: a longer sequence keeps
``max_len`` tokens and no EOS target, so the model does not learn to stop where the cut was.
Batches hold sequences of similar length (sorted within shuffled chunks of 32 batches), so little
time goes into padding. ``log_likelihood`` and ``perplexity`` score whole sequences, uncut, in full
precision, with EOS counted as a token (``nats`` per sequence, perplexity per token).

>>> from mmwork.models.generators.rnn_lm import RNNLanguageModel
>>> corpus = [[4, 5, 6], [4, 6], [5, 5, 6, 7]]            # real ones: Tokenizer(...).encode(texts)
>>> model = RNNLanguageModel(vocab_size=8, embedding_dim=8, hidden_dim=16, epochs=2, device="cpu").fit(corpus)
>>> len(model.sample(3, seed=1, temperature=0.7, top_p=0.9))
3
>>> model.log_likelihood([[4, 5, 6]])[1]                  # tokens scored: three and EOS
array([4])
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.data.text import BOS, EOS, PAD, UNK
from mmwork.models.generators.base import Generator, GeneratorConfig, Training
from mmwork.models.generators.recurrent import RecurrentNet, continue_sequences, draw

__all__ = ["RNNLanguageModel", "RNNLanguageModelConfig", "RecurrentNet", "check_sampling", "clipped_step",
           "continue_sequences", "draw", "length_batches"]

SORT_CHUNK = 32  # batches per chunk whose sequences are sorted by length
SAMPLE_CHUNK = 1024  # sequences drawn per batch by ``sample``


class RNNLanguageModelConfig(GeneratorConfig):
    """Parameters of :class:`RNNLanguageModel`. The default network (embedding 256, hidden 512, one
    LSTM layer: 7.7M parameters at 8,000 tokens, more than half of them in the output layer) trained
    at about 1,450 tokens per second on one CPU thread (Austen, 8,000 BPE pieces, 1,000 sentences, one
    epoch; 2-core machine at load 1.5), the README's smaller one (embedding 128, hidden 256, 4,000
    pieces: 1.9M parameters) at about 6,200. Since issue 21 the output layer runs only at real targets
    and ``softmax="adaptive"`` cuts its cost: the 128/256 network then trains about 2.7x faster per
    token and reaches a lower perplexity per epoch (Austen, all training sentences, lr 2e-3: test 146.7
    after one epoch, 107.0 after two, against 201.7 and 138.6 with the full softmax at lr 1e-3;
    benchmarks/results/text_speed.json). Two threads were slower on cores shared with other jobs, so
    pin one thread there (``torch.set_num_threads(1)``); halve both sizes for a quick look."""

    vocab_size: int = Field(gt=4)
    """Token ids the model reads and writes, the four specials (PAD 0, BOS 1, EOS 2, UNK 3) included:
    the tokenizer's ``vocab_size_``. No default: it must match the tokenizer."""
    cell: Literal["lstm", "gru"] = "lstm"
    """Recurrent cell: "lstm" or "gru" (a GRU has 3/4 of the LSTM's recurrent weights)."""
    embedding_dim: PositiveInt = 256
    """Size of the token embeddings."""
    hidden_dim: PositiveInt = 512
    """Size of the recurrent state (per layer)."""
    layers: PositiveInt = 1
    """Stacked recurrent layers."""
    dropout: float = Field(0.2, ge=0, lt=1)
    """Dropout on the embeddings, between stacked layers and on the last layer's output (training only)."""
    tie_weights: bool = False
    """Use the embedding matrix as the output layer's weights (Press & Wolf, 2017): fewer parameters and
    often a lower perplexity; needs embedding_dim == hidden_dim."""
    condition_dim: NonNegativeInt = 0
    """Width of the condition vector (e.g. genres multi-hot + scaled year); 0 = unconditional."""
    condition_input: Literal["concat", "add"] = "concat"
    """How the condition enters the first layer besides the initial state: "concat": appended to
    the embedding at every step; "add": projected once per sequence to the embedding size and added to
    every embedding (the recurrent layer's input stays embedding_dim wide)."""
    softmax: Literal["full", "adaptive"] = "full"
    """Output layer: "full" (one linear layer over the vocabulary) or "adaptive" (Grave et al., 2017:
    tokens ranked by training frequency, the ``cutoffs[0]`` most frequent in the head, the rest in
    clusters of ``hidden_dim / div_value**i`` dimensions that run only for their own tokens). Both give
    exact, normalised probabilities."""
    cutoffs: list[PositiveInt] = [500, 2000]
    """Adaptive softmax only: the frequency ranks where the head and each cluster end (those at or
    beyond the vocabulary are dropped)."""
    div_value: PositiveFloat = 4.0
    """Adaptive softmax only: each cluster's width is the previous one's divided by this."""
    max_len: PositiveInt = 64
    """Token positions per sequence, EOS included: training cuts longer sequences to their first
    max_len tokens (without an EOS target), and ``sample`` draws at most max_len tokens by default."""
    batch_size: PositiveInt = 64
    """Sequences per gradient step (and per forward pass when scoring)."""
    clip_norm: PositiveFloat = 1.0
    """Largest global norm of the gradients; larger ones are scaled down (exploding gradients are the
    recurrent network's known failure)."""

    @model_validator(mode="after")
    def _tying_needs_equal_sizes(self):
        if self.tie_weights and self.softmax == "adaptive":
            raise ValueError("tie_weights needs softmax='full' (the adaptive softmax has its own output layers)")
        if list(self.cutoffs) != sorted(set(self.cutoffs)):
            raise ValueError(f"cutoffs must increase strictly, got {self.cutoffs}")
        if self.tie_weights and self.embedding_dim != self.hidden_dim:
            raise ValueError(f"tie_weights needs embedding_dim == hidden_dim (got {self.embedding_dim} and "
                             f"{self.hidden_dim}); set them equal or tie_weights=False")
        return self


class RNNLanguageModel(Generator):
    """Embedding (-> dropout) [+ condition] -> ``layers`` LSTM/GRU layers -> dropout -> linear to the
    vocabulary (tied to the embedding with ``tie_weights``); with a condition, the initial state is
    tanh(linear(condition)). Trained with Adam on the per-token cross-entropy, gradients clipped to
    ``clip_norm``, in mixed precision on CUDA with ``amp``. The seed drives initialisation, shuffling
    and dropout, so fits on CPU repeat exactly.

    Learned state: ``net_``; ``history_`` (one dict per epoch: loss (training NLL per token, nats),
    seconds, tokens_per_s and, with ``valid``, valid_loss: the held-out NLL per token, whose exp is
    the perplexity), ``best_epoch_``.
    """

    name = "rnn-lm"
    config_class = RNNLanguageModelConfig
    _state = ("net_",)
    data_kind = "text"
    conditions = ("none", "class", "text")

    def _build(self) -> None:
        self.net_ = RecurrentNet(self.config)
        self.net_.eval()

    def __repr__(self) -> str:
        # vocab_size has no default, so the base class's comparison with a default config cannot run
        fields = self.config_class.model_fields
        shown = {k: v for k, v in self.get_params().items() if fields[k].is_required() or fields[k].default != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    # -- input checks --------------------------------------------------------------------------------
    def _check_data(self, data, what: str = "data") -> torch.Tensor:
        """A list of token-id lists as an int64 CPU tensor (N, longest + 1): each row the ids, then
        EOS, then PAD."""
        if isinstance(data, (str, bytes)) or not isinstance(data, (list, tuple)):
            raise MmworkError(f"{what} must be a list of token-id lists (Tokenizer.encode(texts)), got "
                              f"{type(data).__name__}")
        if len(data) == 0:
            raise MmworkError(f"{what} is empty")
        try:
            lengths = np.array([len(s) for s in data], dtype=np.int64)
        except TypeError:
            raise MmworkError(f"{what} must be a list of token-id lists; "
                              f"{type(next(s for s in data if not hasattr(s, '__len__'))).__name__} "
                              "found among them") from None
        if (lengths == 0).any():
            raise MmworkError(f"{what} holds {int((lengths == 0).sum())} empty sequence(s) (the first at index "
                              f"{int(np.argmax(lengths == 0))}); drop them")
        try:
            flat = np.asarray(list(itertools.chain.from_iterable(data)))
        except ValueError:  # nested deeper than a list of lists
            flat = np.array([], dtype=object)
        if flat.ndim != 1 or flat.dtype.kind not in "iu":
            raise MmworkError(f"{what} must hold integer token ids (one flat list per sequence), got "
                              f"{'nested lists' if flat.ndim != 1 or flat.dtype == object else flat.dtype}")
        low, high, vocab = int(flat.min()), int(flat.max()), self.config.vocab_size
        if low < UNK or high >= vocab:
            raise MmworkError(f"{what} holds token ids from {low} to {high}, outside [{UNK}, {vocab - 1}]: ids "
                              f"{PAD}-{EOS} are PAD/BOS/EOS (fit adds BOS/EOS itself) and vocab_size={vocab} "
                              "must cover the tokenizer's ids (its vocab_size_)")
        out = torch.full((len(data), int(lengths.max()) + 1), PAD, dtype=torch.int64)
        rows = np.repeat(np.arange(len(data)), lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[torch.from_numpy(rows), torch.from_numpy(cols)] = torch.from_numpy(flat.astype(np.int64))
        out[torch.arange(len(data)), torch.from_numpy(lengths)] = EOS
        return out

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, c: torch.Tensor | None, training: Training) -> None:
        config, device = self.config, self.device_
        x = x[:, :config.max_len]
        lengths = (x != PAD).sum(1).cpu()
        tokens = int(lengths.sum())
        if training.resumed is None:  # a resumed fit has the ranking in its checkpoint
            self.net_.rank(torch.bincount(x[x != PAD].cpu(), minlength=config.vocab_size).to(device))
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=config.lr)
        for _ in training.epochs(optimizer, generator):
            started = time.perf_counter()
            self.net_.train()
            total = torch.zeros((), dtype=torch.float64, device=device)
            for batch in length_batches(lengths, config.batch_size, generator):
                width, count = int(lengths[batch[0]]), int(lengths[batch].sum())
                batch = batch.to(device)
                with training.autocast():
                    nll = self._token_nll(x[batch, :width], None if c is None else c[batch], generator)
                loss_sum = nll.sum()
                clipped_step(training, loss_sum / count, self.net_.parameters(), config.clip_norm)
                total += loss_sum.detach()
            self.net_.eval()
            seconds = time.perf_counter() - started
            training.end_epoch({"loss": float(total) / tokens, "seconds": seconds, "tokens_per_s": tokens / seconds})

    def _token_nll(self, target: torch.Tensor, c: torch.Tensor | None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """-log p(target_t | BOS, target_<t) per position (B, T), float32, 0 at PAD."""
        bos = torch.full_like(target[:, :1], BOS)
        return self.net_(torch.cat([bos, target[:, :-1]], 1), c, generator=generator, targets=target).float()

    @torch.no_grad()
    def _valid_loss(self, x: torch.Tensor, c: torch.Tensor | None) -> float:
        nll, counts = self._scores(x, c)
        return float(nll.sum() / counts.sum())

    # -- scoring -------------------------------------------------------------------------------------
    @torch.no_grad()
    def _scores(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed NLL (float64) and token count (EOS included) of each row of a padded batch."""
        self.net_.eval()
        lengths = (x != PAD).sum(1)
        order = lengths.argsort(descending=True)
        nll = torch.empty(len(x), dtype=torch.float64, device=x.device)
        for start in range(0, len(x), self.config.batch_size):
            batch = order[start:start + self.config.batch_size]
            width = int(lengths[batch[0]])
            nll[batch] = self._token_nll(x[batch, :width], None if c is None else c[batch]).double().sum(1)
        return nll, lengths

    def log_likelihood(self, sequences, condition=None) -> tuple[np.ndarray, np.ndarray]:
        """The negative log-likelihood of each sequence (token-id lists without BOS/EOS) in nats, summed
        over its tokens and EOS, and the number of tokens scored (length + 1). ``condition``: one vector
        for all or one row per sequence."""
        self._check_fitted()
        x = self._check_data(sequences, "sequences")
        c = self._check_condition(condition, len(x), broadcast=True)
        nll, counts = self._scores(x.to(self.device_), None if c is None else c.to(self.device_))
        return nll.cpu().numpy(), counts.cpu().numpy()

    def perplexity(self, sequences, condition=None) -> float:
        """exp(total NLL / total tokens), EOS counted as a token (per token of the tokenizer: BPE
        pieces for a BPE tokenizer, so compare models only on the same tokenisation)."""
        nll, counts = self.log_likelihood(sequences, condition)
        return float(np.exp(nll.sum() / counts.sum()))

    # -- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, condition=None, seed: int = 0, *, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, max_len: int | None = None) -> list[list[int]]:
        """``n`` token-id lists (without BOS/EOS) drawn with ``seed``, each ended by EOS or after
        ``max_len`` tokens (default: the config's). Logits are divided by ``temperature``, then cut to
        the ``top_k`` most likely tokens and/or the smallest set whose probability reaches ``top_p``
        (nucleus sampling, Holtzman et al., 2020). ``condition``: one vector for all or one row each."""
        self._check_fitted()
        check_sampling(n, temperature, top_k, top_p, max_len)
        c = self._check_condition(condition, n, broadcast=True)
        c = None if c is None else c.to(self.device_)
        generator = torch.Generator(self.device_).manual_seed(seed)
        steps = max_len or self.config.max_len
        self.net_.eval()
        out = []
        for start in range(0, n, SAMPLE_CHUNK):
            rows = min(SAMPLE_CHUNK, n - start)
            cb = None if c is None else c[start:start + rows]
            bos = torch.full((rows,), BOS, dtype=torch.int64, device=self.device_)
            tokens, _ = continue_sequences(self.net_, bos, self.net_.start(cb, rows), cb, generator, steps,
                                           temperature=temperature, top_k=top_k, top_p=top_p)
            out += [[t for t in row if t > EOS] for row in tokens.tolist()]
        return out


def check_sampling(n, temperature, top_k, top_p, max_len) -> None:
    """One-line errors for sampling parameters, before any compute."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise MmworkError(f"n must be a positive integer, got {n!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise MmworkError(f"temperature must be a finite number > 0, got {temperature!r} (near 0 is greedy; "
                          "1 samples the model's own distribution)")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise MmworkError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise MmworkError(f"top_p must lie in (0, 1] (the probability mass kept) or be None, got {top_p!r}")
    if max_len is not None and (not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1):
        raise MmworkError(f"max_len must be a positive integer or None, got {max_len!r}")


def length_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches (CPU) of similar-length sequences: shuffle, sort by length (longest first) within
    chunks of ``SORT_CHUNK`` batches, cut into batches, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator, device=generator.device).cpu()
    chunk, batches = batch_size * SORT_CHUNK, []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[lengths[part].argsort(descending=True, stable=True)]
        batches += list(part.split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator, device=generator.device).tolist()
    return [batches[i] for i in shuffle]


def clipped_step(training: Training, loss: torch.Tensor, parameters, max_norm: float) -> None:
    """``training.step(loss)`` with the gradients' global norm clipped to ``max_norm`` (unscaled first
    under float16 loss scaling, so the norm is the true one)."""
    optimizer, scaler = training.optimizer, training.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], max_norm)
    scaler.step(optimizer)
    scaler.update()
