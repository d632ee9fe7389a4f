"""SeqGAN (Yu et al., AAAI 2017): a recurrent generator pre-trained by maximum likelihood, then trained
as a policy whose reward is a discriminator's belief that a whole sequence is real.

The generator is :class:`~mmwork.models.generators.rnn_lm.RNNLanguageModel`'s network (SeqGAN is that model
with a discriminator and another training loop, so ``sample``, ``log_likelihood`` and ``perplexity``
are the language model's). ``fit`` first trains it by maximum likelihood for ``pretrain_epochs``
(early stopping on ``valid``), or copies the weights of a fitted language model passed as
``pretrained=`` (same network sizes), then trains the discriminator on real sequences against
generated ones for ``d_pretrain_steps`` batches. Each adversarial epoch then makes ``g_steps``
generator updates and ``d_steps`` discriminator updates:

- generator: draw ``g_batch`` sequences; the reward of token t is the discriminator's mean
  probability of "real" over ``rollouts`` completions of the prefix up to t drawn from the current
  generator (Monte-Carlo search), and of the final token that of the sequence itself; the loss is
  REINFORCE, -sum_t log G(y_t | y_<t) (Q_t - b_t) per token, with b_t the mean reward of the other
  sequences at the same step (a leave-one-out baseline, so it does not bias the gradient). log G is
  the policy that drew the sequences: the network in the same mode, dropout off, as when sampling
  (with dropout on it would be another, randomly thinned policy, and the gradient would not be
  REINFORCE's); dropout acts in the maximum-likelihood pre-training only. The paper rolls out with a
  delayed copy of the generator; here it is the current one.
  All prefixes x rollouts are completed together, as one batch continuing from the generator's
  stored states, not one call per prefix.
- discriminator: ``batch_size`` real sequences against as many generated ones, binary cross-entropy.

The discriminator is Yu et al.'s: a CNN over token embeddings with several filter widths and max
pooling over time (Kim, 2014), a highway layer and dropout. A CNN rather than a GRU because it reads
all positions at once: each generator update scores ``g_batch x rollouts`` sequences per prefix
length, and a recurrent discriminator would add a sequential pass to every one of them.

The validation loss stays the generator's held-out NLL per token, so ``history_`` shows what the
adversarial updates do to likelihood. Judge the samples with quality-diversity curves over sampling
temperatures (``mmwork.evaluation.text_generation``): Caccia et al. (ICLR 2020) found that adversarial
training trades diversity for quality no better than lowering a maximum-likelihood model's temperature.

>>> from mmwork.models.generators.text_gan import SeqGAN
>>> corpus = [[4, 5, 6], [4, 6], [5, 5, 6, 7]] * 8        # real ones: Tokenizer(...).encode(texts)
>>> model = SeqGAN(vocab_size=8, embedding_dim=8, hidden_dim=16, pretrain_epochs=2, epochs=1, g_batch=8,
...                d_pretrain_steps=2, d_steps=1, d_embedding_dim=8, d_filters=4, device="cpu").fit(corpus)
>>> sorted(model.history_[0])
['d_accuracy', 'd_loss', 'epoch', 'g_loss', 'loss', 'reward', 'seconds']
>>> len(model.sample(2, seed=1)), model.discriminate([[4, 5, 6]]).shape
(2, (1,))
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.generators.base import Training
from mmwork.models.layers import seeded_dropout
from mmwork.models.generators.rnn_lm import (BOS, PAD, RNNLanguageModel, RNNLanguageModelConfig, clipped_step,
                                      continue_sequences)

NETWORK = ("vocab_size", "cell", "embedding_dim", "hidden_dim", "layers", "condition_dim", "tie_weights",
           "condition_input", "softmax", "cutoffs", "div_value")


class SeqGANConfig(RNNLanguageModelConfig):
    """Parameters of :class:`SeqGAN`: the generator's (as :class:`RNNLanguageModelConfig`; ``lr``,
    ``batch_size`` and ``dropout`` apply to its maximum-likelihood pre-training) and the adversarial
    ones."""

    epochs: PositiveInt = 10
    """Adversarial epochs (``g_steps`` generator and ``d_steps`` discriminator updates each). At the
    defaults with 8,000 BPE tokens and Austen-length sentences one took 1-1.5 minutes on 2 otherwise
    idle CPU cores, most of it drawing the rollouts; since issue 21 the rollouts run as one batch
    (benchmarks/text_speed.py gives the speed-up)."""
    pretrain_epochs: PositiveInt = 10
    """Maximum-likelihood epochs of the generator before the adversarial ones (early stopping on
    ``valid`` with ``patience``); unused when ``fit`` gets ``pretrained=``."""
    g_lr: PositiveFloat = 1e-4
    """Adam learning rate of the generator's policy-gradient updates (small: they start from a
    pre-trained model)."""
    d_lr: PositiveFloat = 1e-4
    """Adam learning rate of the discriminator."""
    g_steps: NonNegativeInt = 1
    """Generator updates per adversarial epoch (0 trains the discriminator alone)."""
    d_steps: NonNegativeInt = 3
    """Discriminator updates per adversarial epoch, each on a fresh real and a fresh generated batch."""
    d_pretrain_steps: NonNegativeInt = 50
    """Discriminator updates after the generator's pre-training, before the first adversarial epoch
    (drawing each generated batch is most of their cost)."""
    g_batch: PositiveInt = 32
    """Sequences drawn per generator update; each prefix of each is completed ``rollouts`` times."""
    rollouts: PositiveInt = 4
    """Monte-Carlo completions per prefix that estimate a token's reward (Yu et al. use 16)."""
    d_embedding_dim: PositiveInt = 64
    """Size of the discriminator's token embeddings."""
    d_widths: tuple[PositiveInt, ...] = Field((2, 3, 4, 5), min_length=1)
    """Widths (in tokens) of the discriminator's convolution filters."""
    d_filters: PositiveInt = 64
    """Filters per width."""
    d_dropout: float = Field(0.25, ge=0, lt=1)
    """Dropout before the discriminator's output layer (Yu et al.: 0.25)."""

    @model_validator(mode="after")
    def _filters_fit(self):
        if max(self.d_widths) > self.max_len:
            raise ValueError(f"the widest discriminator filter ({max(self.d_widths)} tokens) is longer than max_len "
                             f"({self.max_len}); lower d_widths or raise max_len")
        return self


class SeqGAN(RNNLanguageModel):
    """Generator: :class:`RNNLanguageModel`'s network. Discriminator: embedding -> for each width w,
    ``d_filters`` convolutions over w tokens, ReLU, max over time -> concatenated -> highway -> dropout
    [+ condition] -> linear (the logit of "real"). Sequences reach the discriminator as ids + EOS,
    padded to ``max_len``. Generated sequences take their condition from randomly drawn training rows.

    Learned state: ``net_`` (the generator), ``discriminator_``; ``history_`` (one dict per adversarial
    epoch: g_loss (the REINFORCE loss per token), reward (mean reward per generated token), d_loss,
    d_accuracy (on each batch before its update, dropout on), loss (g_loss + d_loss, watched for
    NaN), seconds and, with ``valid``, valid_loss: the generator's held-out NLL per token);
    ``pretrain_history_`` (not saved: the maximum-likelihood epochs, from ``pretrained``'s history when
    given, then one row for the discriminator's pre-training), ``best_epoch_``.
    """

    name = "seqgan"
    config_class = SeqGANConfig
    _state = ("net_", "discriminator_")

    def _build(self) -> None:
        super()._build()
        self.discriminator_ = Discriminator(self.config)
        self.discriminator_.eval()

    def fit(self, data, condition=None, valid=None, pretrained: RNNLanguageModel | None = None, *,
            checkpoint=None, resume_from=None) -> "SeqGAN":
        """As :meth:`Generator.fit`; ``pretrained``: a fitted language model with the same network
        sizes whose weights start the generator (its maximum-likelihood training is then skipped)."""
        if pretrained is not None:
            self._check_pretrained(pretrained)
        self._pretrained = pretrained  # read by _fit, which the base class's fit calls
        try:
            return super().fit(data, condition, valid, checkpoint=checkpoint, resume_from=resume_from)
        finally:
            del self._pretrained

    def _check_pretrained(self, model) -> None:
        if not isinstance(model, RNNLanguageModel):
            raise MmworkError(f"pretrained must be a fitted RNNLanguageModel, got {type(model).__name__}")
        model._check_fitted()
        differ = {k: (getattr(model.config, k), getattr(self.config, k)) for k in NETWORK
                  if getattr(model.config, k) != getattr(self.config, k)}
        if differ:
            raise MmworkError("pretrained has another network: " + ", ".join(
                f"{k}={old!r} there, {new!r} here" for k, (old, new) in differ.items()) +
                "; make the SeqGAN with the language model's sizes")

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, c: torch.Tensor | None, training: Training) -> None:
        config, device = self.config, self.device_
        x = x[:, :config.max_len]
        self.pretrain_history_ = []
        if training.resumed is None:  # a resumed fit takes the pre-trained weights from its checkpoint
            self._pretrain(x, c, training)
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam([{"params": self.net_.parameters(), "lr": config.g_lr},
                                      {"params": self.discriminator_.parameters(), "lr": config.d_lr}])
        for epoch in training.epochs(optimizer, generator):
            if epoch == 1:
                started = time.perf_counter()
                row = self._discriminator_steps(x, c, generator, training, config.d_pretrain_steps)
                self.pretrain_history_.append({"phase": "discriminator", "steps": config.d_pretrain_steps} | row |
                                              {"seconds": time.perf_counter() - started})
            started = time.perf_counter()
            g = [self._policy_step(x, c, generator, training) for _ in range(config.g_steps)]
            d = self._discriminator_steps(x, c, generator, training, config.d_steps)
            g_loss = float(np.mean([r["g_loss"] for r in g])) if g else 0.0
            row = {"loss": g_loss + d["d_loss"], "g_loss": g_loss,
                   "reward": float(np.mean([r["reward"] for r in g])) if g else None, **d,
                   "seconds": time.perf_counter() - started}
            training.end_epoch(row)

    def _pretrain(self, x, c, training: Training) -> None:
        """Maximum likelihood, by an RNNLanguageModel with this generator's parameters (or the weights
        of ``pretrained``), copied into ``net_``."""
        pretrained = self._pretrained
        if pretrained is None:
            fields = RNNLanguageModelConfig.model_fields
            lm = RNNLanguageModel({k: v for k, v in self.get_params().items() if k in fields},
                                  epochs=self.config.pretrain_epochs)
            lm.device_ = self.device_
            lm._init_state()
            lm._fit(x, c, Training(lm, training.valid, None, None))
            pretrained = lm
        self.net_.load_state_dict(pretrained.net_.state_dict())
        self.pretrain_history_ += [{"phase": "mle"} | row for row in getattr(pretrained, "history_", [])]

    def _policy_step(self, x, c, generator: torch.Generator, training: Training) -> dict:
        config, net = self.config, self.net_
        cond = self._conditions(c, config.g_batch, generator)
        net.eval()
        with torch.no_grad(), training.autocast():
            bos = torch.full((config.g_batch,), BOS, dtype=torch.int64, device=self.device_)
            y, states = continue_sequences(net, bos, net.start(cond, config.g_batch), cond, generator,
                                           config.max_len, keep_states=True)
            rewards = self._rewards(y, states, cond, generator)
        mask = (y != PAD).float()
        count = mask.sum(0, keepdim=True)
        total = (rewards * mask).sum(0, keepdim=True)
        baseline = torch.where(count > 1, (total - rewards) / (count - 1).clamp(min=1), torch.zeros_like(rewards))
        advantage = (rewards - baseline) * mask
        with training.autocast():
            log_p = self._policy_log_probs(y, cond)
        loss = -(log_p * advantage).sum() / mask.sum()
        clipped_step(training, loss, net.parameters(), config.clip_norm)
        return {"g_loss": float(loss.detach()), "reward": float((rewards * mask).sum() / mask.sum())}

    def _policy_log_probs(self, y: torch.Tensor, cond) -> torch.Tensor:
        """log G(y_t | y_<t) per drawn token (B, T), 0 at PAD, with gradients, under the policy that
        drew ``y``: the network in eval mode (no dropout), as ``continue_sequences`` ran it."""
        self.net_.eval()
        return -self._token_nll(y, cond)

    @torch.no_grad()
    def _rewards(self, y: torch.Tensor, states: list, cond, generator: torch.Generator) -> torch.Tensor:
        """Q(t) for each drawn token (B, T), 0 after EOS: the discriminator's mean probability of "real"
        over ``rollouts`` completions of the prefix ending at t; for the last token, that of the
        sequence itself. Every prefix's completions run as one batch: all prefixes x rollouts stacked,
        each continuing from its stored state, each stopping at EOS or at ``max_len`` tokens in all."""
        config, D = self.config, self.discriminator_
        D.eval()
        n, width = y.shape
        lengths = (y != PAD).sum(1)
        rewards = torch.zeros(n, width, device=y.device)
        rewards[torch.arange(n, device=y.device), lengths - 1] = self._real(y, cond)
        # prefix lengths t = 1 .. width - 1 of the sequences that go on after their first t tokens
        t = torch.arange(1, width, device=y.device).expand(n, -1)
        row, t = (t < lengths[:, None]).nonzero(as_tuple=True)
        if len(row) == 0:
            return rewards
        t = t + 1
        row, t = row.repeat(config.rollouts), t.repeat(config.rollouts)
        # states[t] is the state before the t-th drawn token y[:, t - 1] was fed back in
        net = self.net_
        zeros = torch.zeros(net.parts, len(net.rnn), n, net.hidden_dim, device=y.device)  # a None state
        stacked = torch.stack([zeros if s is None else torch.stack(s) if isinstance(s, tuple) else s[None]
                               for s in states])  # (T, parts, layers, n, hidden)
        state = stacked[t, :, :, row].permute(1, 2, 0, 3).contiguous()  # (parts, layers, rows, hidden)
        state = tuple(state) if net.parts == 2 else state[0]
        c_rows = None if cond is None else cond[row]
        rest, _ = continue_sequences(net, y[row, t - 1], state, c_rows, generator, config.max_len - 1,
                                     limit=config.max_len - t)
        rest = F.pad(rest, (0, config.max_len - rest.shape[1]), value=PAD)
        at = torch.arange(config.max_len, device=y.device)
        prefix = self._pad(y)[row]
        after = rest.gather(1, (at[None] - t[:, None]).clamp(min=0))
        sequences = torch.where(at[None] < t[:, None], prefix, after)
        size = 4 * config.batch_size * config.rollouts
        scores = torch.cat([self._real(sequences[s:s + size], None if c_rows is None else c_rows[s:s + size])
                            for s in range(0, len(row), size)])
        rewards.index_put_((row, t - 1), scores / config.rollouts, accumulate=True)
        return rewards

    def _real(self, tokens: torch.Tensor, cond) -> torch.Tensor:
        return torch.sigmoid(self.discriminator_(self._pad(tokens), cond).float())

    def _pad(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.pad(tokens, (0, self.config.max_len - tokens.shape[1]), value=PAD)

    def _discriminator_steps(self, x, c, generator: torch.Generator, training: Training, steps: int) -> dict:
        config, D, device = self.config, self.discriminator_, self.device_
        sums = np.zeros(2)
        for _ in range(steps):
            index = torch.randint(len(x), (config.batch_size,), generator=generator, device=device)
            cond = None if c is None else c[index]
            self.net_.eval()
            with torch.no_grad(), training.autocast():
                bos = torch.full((config.batch_size,), BOS, dtype=torch.int64, device=device)
                fake, _ = continue_sequences(self.net_, bos, self.net_.start(cond, config.batch_size), cond,
                                             generator, config.max_len)
            D.train()
            logits = D(torch.cat([self._pad(x[index]), self._pad(fake)]),
                       None if cond is None else torch.cat([cond, cond]), generator)
            labels = (torch.arange(2 * config.batch_size, device=device) < config.batch_size).float()  # real first
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            sums += [float(loss.detach()), float(((logits.detach() > 0).float() == labels).float().mean())]
            clipped_step(training, loss, D.parameters(), config.clip_norm)
        D.eval()
        if not steps:  # None, not NaN: the NaN stop reads every float in the row
            return {"d_loss": 0.0, "d_accuracy": None}
        return {"d_loss": float(sums[0] / steps), "d_accuracy": float(sums[1] / steps)}

    def _conditions(self, c, n: int, generator: torch.Generator):
        """Conditions of ``n`` randomly drawn training rows (None for unconditional models)."""
        if c is None:
            return None
        return c[torch.randint(len(c), (n,), generator=generator, device=c.device)]

    # -- scoring -------------------------------------------------------------------------------------
    @torch.no_grad()
    def discriminate(self, sequences, condition=None) -> np.ndarray:
        """The discriminator's probability that each sequence (token ids without BOS/EOS; cut to
        ``max_len`` positions as in training) is real."""
        self._check_fitted()
        x = self._check_data(sequences, "sequences")[:, :self.config.max_len].to(self.device_)
        c = self._check_condition(condition, len(x), broadcast=True)
        c = None if c is None else c.to(self.device_)
        self.discriminator_.eval()
        size = self.config.batch_size
        return torch.cat([self._real(x[s:s + size], None if c is None else c[s:s + size])
                          for s in range(0, len(x), size)]).cpu().numpy()


class Discriminator(nn.Module):
    """Yu et al.'s CNN discriminator: ``forward(tokens (B, max_len), c)`` -> the logit of "real" (B,)."""

    def __init__(self, config: SeqGANConfig):
        super().__init__()
        width = config.d_filters * len(config.d_widths)
        self.dropout = config.d_dropout
        self.embedding = nn.Embedding(config.vocab_size, config.d_embedding_dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(config.d_embedding_dim, config.d_filters, w) for w in config.d_widths)
        self.highway = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width + config.condition_dim, 1)

    def forward(self, tokens: torch.Tensor, c: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        e = self.embedding(tokens).transpose(1, 2)
        h = torch.cat([F.relu(conv(e)).amax(2) for conv in self.convs], 1)
        transform, gate = self.highway(h).chunk(2, 1)
        gate = torch.sigmoid(gate)
        h = gate * F.relu(transform) + (1 - gate) * h
        h = seeded_dropout(h, self.dropout, generator, active=self.training)
        if c is not None:
            h = torch.cat([h, c.to(h.dtype)], 1)
        return self.out(h).squeeze(1)
