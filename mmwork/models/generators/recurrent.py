"""The recurrent network of :class:`~mmwork.models.generators.rnn_lm.RNNLanguageModel` (and SeqGAN's
generator), and drawing tokens from it.

:class:`RecurrentNet` reads BOS + tokens through an embedding, one or more fused LSTM/GRU layers
(``nn.LSTM`` over whole sequences, never stepped in Python in training) and an output layer over
every id except PAD and BOS. Called with ``targets=`` it returns the per-token negative
log-likelihood only at the positions that have a target (no output is computed at PAD), which is
what training and scoring need; called without, it returns logits over the whole vocabulary for
sampling. The output layer is either a full softmax (optionally tied to the embedding) or an
adaptive softmax (Grave et al., 2017, ``nn.AdaptiveLogSoftmaxWithLoss``): frequent tokens in a
small head, rare ones in clusters of lower rank that are only computed for the tokens that fall in
them. The adaptive softmax is still an exactly normalised distribution, so perplexities stay exact.

>>> from mmwork.models.generators.rnn_lm import RNNLanguageModelConfig
>>> net = RecurrentNet(RNNLanguageModelConfig(vocab_size=12, embedding_dim=4, hidden_dim=8))
>>> tokens = torch.tensor([[1, 5, 6]])
>>> net(tokens)[0].shape, net(tokens, targets=torch.tensor([[5, 6, 2]])).shape
(torch.Size([1, 3, 12]), torch.Size([1, 3]))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmwork.models.data.text import BOS, EOS, PAD
from mmwork.models.layers import seeded_dropout

FIRST = EOS  # the first id the model writes: PAD (0) and BOS (1) never are


def adaptive_cutoffs(config, classes: int) -> list[int]:
    """The adaptive softmax's cluster bounds for ``classes`` outputs (ranked by training frequency):
    the config's ``cutoffs`` where they fit, else none beyond the vocabulary."""
    return [c for c in config.cutoffs if 0 < c < classes]


class RecurrentNet(nn.Module):
    """``forward(tokens, c, state)`` returns logits (B, T, vocab), with PAD and BOS at -inf, and the
    state after the last token; with ``state=None`` it starts from the condition. ``forward(tokens,
    c, targets=targets)`` returns -log p(target) per position (B, T), 0 where the target is PAD."""

    def __init__(self, config):
        super().__init__()
        k, vocab = config.condition_dim, config.vocab_size
        self.parts = 2 if config.cell == "lstm" else 1  # LSTM state: (h, c)
        self.hidden_dim, self.dropout, self.vocab = config.hidden_dim, config.dropout, vocab
        self.embedding = nn.Embedding(vocab, config.embedding_dim, padding_idx=PAD)
        cell = nn.LSTM if config.cell == "lstm" else nn.GRU
        # the condition enters the first layer either at every step (concatenated to the embedding)
        # or once per sequence, projected to the embedding size and added to it
        self.condition_input = config.condition_input if k else "concat"
        first = config.embedding_dim + (k if self.condition_input == "concat" else 0)
        self.project = nn.Linear(k, config.embedding_dim, bias=False) if k and self.condition_input == "add" else None
        # one module per layer, so the dropout between layers is drawn from the model's generator
        self.rnn = nn.ModuleList(cell(first if i == 0 else config.hidden_dim, config.hidden_dim, batch_first=True)
                                 for i in range(config.layers))
        self.init = nn.Linear(k, self.parts * config.layers * config.hidden_dim) if k else None
        self.adaptive = None
        if config.softmax == "adaptive":
            classes = vocab - FIRST
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(config.hidden_dim, classes, adaptive_cutoffs(config, classes),
                                                          div_value=config.div_value)
            # token id -> its class (ids ranked by training frequency, set by ``rank``); identity until then
            self.register_buffer("class_of", torch.cat([torch.zeros(FIRST, dtype=torch.int64),
                                                        torch.arange(classes)]))
        # tied: the embedding matrix is the output weight, so only a bias is added (and saved once)
        full = self.adaptive is None
        self.out = nn.Linear(config.hidden_dim, vocab) if full and not config.tie_weights else None
        self.out_bias = nn.Parameter(torch.zeros(vocab)) if full and config.tie_weights else None
        self.register_buffer("never", torch.tensor([PAD, BOS]), persistent=False)

    @torch.no_grad()
    def rank(self, counts: torch.Tensor) -> None:
        """Order the adaptive softmax's classes by ``counts`` (occurrences of each id as a target, ties
        by id), most frequent in the head."""
        if self.adaptive is not None:
            order = (-counts[FIRST:].double()).argsort(stable=True)
            self.class_of[FIRST:][order] = torch.arange(len(order), device=order.device)

    def start(self, c: torch.Tensor | None, n: int):
        """The initial state for ``n`` sequences: zeros (None) without a condition, else tanh(linear(c))."""
        if c is None:
            return None
        h = torch.tanh(self.init(c)).view(n, -1, self.hidden_dim).transpose(0, 1)
        parts = tuple(p.contiguous() for p in h.chunk(self.parts, 0))
        return parts if self.parts == 2 else parts[0]

    def forward(self, tokens: torch.Tensor, c: torch.Tensor | None = None, state=None,
                generator: torch.Generator | None = None, targets: torch.Tensor | None = None):
        if state is None:
            state = self.start(c, len(tokens))
        e = self.embedding(tokens)
        if c is not None and self.project is not None:
            e = e + self.project(c.to(e.dtype))[:, None, :]
        e = self._drop(e, generator)
        if c is not None and self.project is None:
            e = torch.cat([e, c[:, None, :].to(e.dtype).expand(-1, tokens.shape[1], -1)], 2)
        out, states = e, []
        for i, rnn in enumerate(self.rnn):
            if i:
                out = self._drop(out, generator)
            layer = None if state is None else tuple(s[i:i + 1] for s in state) if self.parts == 2 else state[i:i + 1]
            out, layer = rnn(out, layer)
            states.append(layer)
        if len(states) > 1:
            state = tuple(torch.cat(s) for s in zip(*states)) if self.parts == 2 else torch.cat(states)
        else:
            state = states[0]
        out = self._drop(out, generator)
        if targets is not None:
            return self._nll(out, targets)
        return self._logits(out), state

    def _nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """-log p(target) at the non-PAD targets, scattered back into (B, T) with 0 at PAD: the output
        layer only runs on real positions."""
        keep = targets != PAD
        h, wanted = h[keep], targets[keep]
        if self.adaptive is not None:
            nll = -self.adaptive(h.float(), self.class_of[wanted]).output
        else:
            weight, bias = (self.out.weight, self.out.bias) if self.out is not None else \
                (self.embedding.weight, self.out_bias)
            logits = F.linear(h, weight[FIRST:], bias[FIRST:])  # rows FIRST.. are a view: no copy
            nll = F.cross_entropy(logits.float(), wanted - FIRST, reduction="none")
        return torch.zeros(targets.shape, dtype=nll.dtype, device=nll.device).masked_scatter(keep, nll)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.adaptive is not None:
            log_p = self.adaptive.log_prob(h.flatten(0, 1).float())[:, self.class_of[FIRST:]]
            return F.pad(log_p, (FIRST, 0), value=float("-inf")).view(*h.shape[:2], self.vocab)
        logits = self.out(h) if self.out is not None else F.linear(h, self.embedding.weight, self.out_bias)
        return logits.index_fill(-1, self.never, float("-inf"))

    def _drop(self, h: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Dropout drawn from the model's generator (nn.Dropout would use torch's global one)."""
        return seeded_dropout(h, self.dropout, generator, active=self.training)


def continue_sequences(net: RecurrentNet, token: torch.Tensor, state, c: torch.Tensor | None,
                       generator: torch.Generator, steps: int, *, temperature: float = 1.0,
                       top_k: int | None = None, top_p: float | None = None, keep_states: bool = False,
                       limit: torch.Tensor | None = None):
    """Feed ``token`` (B,) with ``state`` and draw up to ``steps`` further tokens per row, each row
    stopping after its EOS (PAD after it) or after ``limit[row]`` tokens when ``limit`` (B,) is given.
    Returns the tokens (B, <= steps) and, with ``keep_states``, the state before each fed token
    (states[0] is the given one). Without ``keep_states`` finished rows leave the batch, so the
    network runs on the unfinished ones only."""
    n = len(token)
    out = torch.full((n, steps), PAD, dtype=torch.int64, device=token.device)
    rows = torch.arange(n, device=token.device)  # the rows still drawing
    done = torch.zeros(n, dtype=torch.bool, device=token.device)
    states = []
    for t in range(steps):
        if keep_states:
            states.append(state)
        logits, state = net(token[:, None], c, state)
        token = draw(logits[:, -1].float(), generator, temperature, top_k, top_p)
        if keep_states:  # every row stays in the batch, so the states line up with the rows
            token = token.masked_fill(done, PAD)
            out[:, t] = token
            done |= token == EOS
            if bool(done.all()):
                return out[:, :t + 1], states
            continue
        out[rows, t] = token
        going = token != EOS
        if limit is not None:
            going &= limit > t + 1
            limit = limit[going]
        if not bool(going.all()):
            if not bool(going.any()):
                return out[:, :t + 1], states
            rows, token = rows[going], token[going]
            c = None if c is None else c[going]
            state = tuple(s[:, going] for s in state) if isinstance(state, tuple) else state[:, going]
    return out, states


def draw(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0, top_k: int | None = None,
         top_p: float | None = None) -> torch.Tensor:
    """One token per row of ``logits`` (B, V), after temperature, top-k and nucleus filtering."""
    # shifting by the maximum first keeps a tiny temperature from producing inf - inf = NaN
    if temperature != 1:
        logits = (logits - logits.amax(-1, keepdim=True)) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, index = logits.sort(-1, descending=True)
        probs = ordered.softmax(-1)
        beyond = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        logits = logits.scatter(-1, index, ordered.masked_fill(beyond, float("-inf")))
    # inverse-CDF sampling: one uniform per row (torch.multinomial is several times slower on CPU at
    # thousands of tokens); a token of probability 0 is never drawn
    cdf = logits.softmax(-1).cumsum(-1)
    u = torch.rand(len(cdf), 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=cdf.shape[1] - 1)
