"""How the available modalities' encodings become one posterior q(z | given modalities).

Every fusion works on a per-example availability mask (N, M), so one batch can mix subsets:

- "attention": a small set transformer over the available modalities' encoder features (each
  projected to one token, plus a learned embedding of its modality): one masked self-attention layer,
  then a learned query attends over the tokens (pooling by multi-head attention, Lee et al., 2019)
  and a linear layer gives the Gaussian's mean and log variance. Missing modalities are masked out of
  every softmax, so any non-empty subset works and the order of the modalities does not matter.
- "poe": product of the available Gaussian experts and the prior expert N(0, I) (MVAE, Wu & Goodman
  2018), in closed form (precisions add).
- "moe": a uniform mixture of the available unimodal posteriors (MMVAE, Shi et al., 2019).
- "mopoe": a uniform mixture over every non-empty subset of the available modalities of the
  product of that subset's experts (MoPoE, Sutter et al., 2021).

A mixture is returned as its components (K, N, latent) with a validity mask (N, K); a single
Gaussian as one component.

>>> import torch
>>> mu, logvar = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)        # 2 experts, 3 examples, latent 4
>>> mask = torch.tensor([[True, True], [True, False], [False, True]])
>>> m, lv = poe(mu, logvar, mask)
>>> [round(float(v), 4) for v in lv[:, 0].exp()]                    # precisions 1 + 2, 1 + 1, 1 + 1
[0.3333, 0.5, 0.5]
>>> subset_masks(3).shape
torch.Size([7, 3])
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

FUSIONS = ("attention", "poe", "moe", "mopoe")
LOG_2PI = math.log(2 * math.pi)


def subset_masks(m: int) -> torch.Tensor:
    """Every non-empty subset of ``m`` modalities as a bool mask (2^m - 1, m), smallest first."""
    rows = [[i in chosen for i in range(m)] for size in range(1, m + 1)
            for chosen in itertools.combinations(range(m), size)]
    return torch.tensor(rows, dtype=torch.bool)


def poe(mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of the experts (M, N, L) available in ``mask`` (N, M) and the prior N(0, I)."""
    precision = torch.exp(-logvar) * mask.T[..., None].to(mu.dtype)        # a missing expert adds nothing
    total = 1 + precision.sum(0)                                           # the prior expert's precision 1
    return (mu * precision).sum(0) / total, -torch.log(total)


def components(fusion: str, mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor):
    """The mixture components of "moe" / "mopoe" from the unimodal experts (M, N, L) and the
    availability mask (N, M): means and log variances (K, N, L) and which are valid (N, K)."""
    if fusion == "moe":
        return mu, logvar, mask
    subsets = subset_masks(mu.shape[0]).to(mask.device)                   # (K, M)
    fused = [poe(mu, logvar, mask & s) for s in subsets]
    valid = (mask[:, None, :] | ~subsets[None]).all(-1)                    # subset inside the available ones
    return torch.stack([f[0] for f in fused]), torch.stack([f[1] for f in fused]), valid


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dimension."""
    return (-0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)).sum(-1)


def kl_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


def log_mixture(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log q(z) (N,) under the uniform mixture of the valid components (K, N, L) at each example."""
    log_q = log_normal(z[None], mu, logvar).masked_fill(~valid.T, -math.inf)   # (K, N)
    return torch.logsumexp(log_q, 0) - torch.log(valid.sum(1).to(z.dtype))


def pick(mu: torch.Tensor, logvar: torch.Tensor, valid: torch.Tensor, generator: torch.Generator):
    """One valid component per example drawn uniformly (the mixture's sample): (N, L) each."""
    index = torch.multinomial(valid.float(), 1, generator=generator)[:, 0]
    rows = torch.arange(len(index), device=mu.device)
    return mu[index, rows], logvar[index, rows]


def moments(mu: torch.Tensor, logvar: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixture's mean and the log of its variance per dimension (moment matching), (N, L) each."""
    w = (valid.T.to(mu.dtype) / valid.sum(1).to(mu.dtype))[..., None]       # (K, N, 1)
    mean = (w * mu).sum(0)
    second = (w * (logvar.exp() + mu.pow(2))).sum(0)
    return mean, torch.log((second - mean.pow(2)).clamp_min(1e-12))


class AttentionFusion(nn.Module):
    """The "attention" fusion (see the module docstring): tokens from each modality's features,
    one masked self-attention layer, pooling by a learned query, then (mu, logvar)."""

    def __init__(self, features: list[int], latent: int, dim: int = 64, heads: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention_dim {dim} must be a multiple of heads {heads}")
        self.heads = heads
        self.project = nn.ModuleList(nn.Linear(f, dim) for f in features)
        self.kind = nn.Parameter(torch.randn(len(features), dim) * 0.02)     # a learned modality embedding
        self.mix = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pool = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, 2 * latent)

    def forward(self, features: list[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features``: one (N, F_m) tensor per modality (rows of missing ones are ignored);
        ``mask`` (N, M): which are available."""
        tokens = torch.stack([p(f) for p, f in zip(self.project, features)], 1) + self.kind   # (N, M, dim)
        missing = ~mask
        mixed, _ = self.mix(tokens, tokens, tokens, key_padding_mask=missing, need_weights=False)
        tokens = self.norm1(tokens + mixed)
        tokens = self.norm2(tokens + self.ff(tokens))
        pooled, _ = self.pool(self.query.expand(len(tokens), -1, -1), tokens, tokens,
                              key_padding_mask=missing, need_weights=False)
        mu, logvar = self.head(pooled[:, 0]).chunk(2, dim=-1)
        return mu, logvar
