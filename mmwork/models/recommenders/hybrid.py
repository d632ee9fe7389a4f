"""Multimodal hybrid: VBPR-style matrix factorisation whose item vectors add the item's content,
with per-user attention over the modalities, trained so that it can also rank items nobody has
interacted with yet (cold start).

For user u (embedding p_u) and item i (collaborative embedding gamma_i, bias b_i, one content
vector f_i^m per modality m)::

    v_m(i)    = W_m f_i^m                                  (the modality's "value", d-dim)
    alpha_u   = softmax(q_u K^T / sqrt(d)),  q_u = p_u W_q  (one learned key K_m per modality)
    item(u,i) = gamma_i + sum_m alpha_{u,m} v_m(i)
    score     = p_u . item(u,i) + b_i + sum_m c_m . f_i^m    (c_m: content bias, as in VBPR)

Training: BPR loss with one uniformly drawn negative per positive (from the items that have
training interactions, so held-out cold items are never pushed down as negatives), Adam, L2 on the
batch's embeddings and projected content, learning-rate halving and early stopping on the validation
NDCG@10. Item-embedding dropout (DropoutNet): in every batch a share ``item_dropout`` of the items
lose gamma_i and b_i, so the content path learns to rank on its own; at scoring time items without
training interactions are scored from content only (gamma_i = b_i = 0).

>>> model = MultimodalHybrid().fit(split.train, item_features=feats, valid=Validator(split))  # doctest: +SKIP
>>> model.history_[-1]                                                                   # doctest: +SKIP
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from torch import nn

from mmwork.models.recommenders.base import Recommender, RecommenderConfig
from mmwork.models.training import BudgetedConfig, Training
from mmwork.models.recommenders.content import centre, centring_means
from mmwork.store.item_features import as_modalities, l2_normalise


def prepare_content(modalities: dict[str, np.ndarray], center: bool = True,
                    means: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """Per modality: centred on the mean of the items that have content (optional; or on the given
    ``means``, those of the catalogue the model was fitted on) and L2-normalised; items without
    content stay all-zero."""
    means = centring_means(modalities, center) if means is None else means
    return [l2_normalise(centre(array, means[name])).astype(np.float32) for name, array in modalities.items()]


class _Net(nn.Module):
    def __init__(self, n_users, n_items, dims, dim):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.bias = nn.Embedding(n_items, 1)
        self.values = nn.ModuleList(nn.Linear(d, dim, bias=False) for d in dims)
        self.content_bias = nn.ModuleList(nn.Linear(d, 1, bias=False) for d in dims)
        self.keys = nn.Parameter(torch.empty(len(dims), dim))
        self.query = nn.Linear(dim, dim, bias=False)
        nn.init.xavier_normal_(self.user.weight)
        nn.init.xavier_normal_(self.item.weight)
        nn.init.zeros_(self.bias.weight)
        nn.init.normal_(self.keys, std=1.0 / math.sqrt(dim))
        for layer in self.content_bias:
            nn.init.zeros_(layer.weight)

    def attention(self, users_emb):
        q = self.query(users_emb)
        return torch.softmax(q @ self.keys.T / math.sqrt(self.keys.shape[1]), dim=1)  # B x M

    def bpr_scores(self, features, users, pos, neg, keep):
        """Scores of (user, positive) and (user, negative) pairs; ``keep`` (n_items) is 0 where the
        item's collaborative embedding and bias are dropped in this batch."""
        p = self.user(users)
        alpha = self.attention(p)
        # Projecting every item once is cheaper than projecting the 2 x batch gathered rows; the
        # gathers go through embedding(), whose backward is much faster than indexing's on CPU.
        values = torch.cat([w(f) for w, f in zip(self.values, features)], dim=1)  # n_items x (M d)
        cbias = sum(c(f) for c, f in zip(self.content_bias, features))  # n_items x 1
        n_mod, p_row = alpha.shape[1], p.unsqueeze(1)
        out, squares, content_squares = [], p.pow(2).sum(), 0.0
        for items in (pos, neg):
            k = keep[items]
            gamma = self.item(items)
            content = nn.functional.embedding(items, values).view(len(items), n_mod, -1)  # B x M x d
            per_modality = (content * p_row).sum(2)  # p_u . W_m f_i^m, B x M
            bias = self.bias(items).squeeze(1)
            content_bias = nn.functional.embedding(items, cbias).squeeze(1)
            out.append(((p * gamma).sum(1) + bias) * k + (alpha * per_modality).sum(1) + content_bias)
            squares = squares + gamma.pow(2).sum() + bias.pow(2).sum()
            content_squares = content_squares + content.pow(2).sum() + content_bias.pow(2).sum()
        return out[0], out[1], squares, content_squares


class MultimodalHybridConfig(RecommenderConfig, BudgetedConfig):
    """Parameters of :class:`MultimodalHybrid`; defaults tuned on the validation parts of ML-100K's
    RecBole and cold-item splits."""

    dim: PositiveInt = 64
    """Embedding size (user, item, and each modality's projection)."""
    epochs: PositiveInt = 100
    """At most this many passes over the training interactions."""
    batch_size: PositiveInt = 4096
    """Positive pairs per Adam step, each with one negative."""
    lr: PositiveFloat = 5e-3
    """Adam learning rate."""
    reg: NonNegativeFloat = 1e-2
    """L2 weight (per example) on the batch's user embeddings, item embeddings and item biases."""
    content_reg: NonNegativeFloat = 3e-3
    """L2 weight (per example) on the batch items' projected content W_m f_i^m and content bias;
    weaker than ``reg`` so the content path stays useful for cold items."""
    item_dropout: float = Field(0.1, ge=0, lt=1)
    """Share of items per batch trained without gamma_i and b_i (DropoutNet)."""
    patience: PositiveInt = 10
    """Epochs without a better validation score before stopping; the best epoch's state is kept."""
    lr_decay: float = Field(0.5, gt=0, le=1)
    """Factor on the learning rate when validation stalls for ``lr_patience`` epochs (1: never decay)."""
    lr_patience: NonNegativeInt = 3
    """Epochs without a better validation score before the learning rate decays."""
    center: bool = True
    """Centre each modality on its mean item before L2-normalising it."""


class MultimodalHybrid(Recommender):
    """VBPR-style hybrid with attention over modalities and item-embedding dropout for cold items.

    Early stopping and learning-rate decay need ``valid`` (validated every epoch); without it the
    model trains for ``epochs``. ``history_`` holds, per epoch, the mean loss, the validation score,
    the elapsed seconds and the learning rate; ``best_epoch_`` the epoch whose state was kept. Fits
    on CPU are exactly repeatable for a seed (same machine and thread count). On a busy CPU,
    ``torch.set_num_threads(1)`` is much faster for this small model.

    Learned state: ``user_emb_``, ``item_emb_``, ``item_bias_``, ``content_values_`` (M x n_items x
    d, the W_m f_i^m), ``content_bias_``, ``keys_``, ``query_w_``, ``warm_`` (items with training
    interactions); for :meth:`score_items` (new items, scored like cold ones from content only),
    ``modalities_``, ``modality_dims_``, ``content_means_`` (the centring means, float64) and
    ``value_w_`` / ``content_bias_w_`` (every W_m and c_m, concatenated along the input features).
    """

    name = "hybrid"
    config_class = MultimodalHybridConfig
    uses_features = True
    iterative = True
    _state = ("user_emb_", "item_emb_", "item_bias_", "content_values_", "content_bias_", "keys_", "query_w_",
              "warm_")
    _content_state = ("content_means_", "modality_dims_", "value_w_", "content_bias_w_")

    def _fit(self, train, item_features, training: Training):
        config, device = self.config, self.device_
        modalities = as_modalities(item_features, train.n_items)
        self._set_content_means(centring_means(modalities, config.center))
        features = [torch.as_tensor(f, device=device)
                    for f in prepare_content(modalities, config.center, self._content_means())]
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
        with torch.random.fork_rng(devices=[]):  # seeds the layers' initialisation, not the caller's state
            torch.manual_seed(config.seed)
            net = _Net(train.n_users, train.n_items, [f.shape[1] for f in features], config.dim).to(device)
        optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)

        coo = train.binary().tocoo()
        users_all = torch.as_tensor(coo.row.astype(np.int64))
        items_all = torch.as_tensor(coo.col.astype(np.int64))
        n_items = train.n_items
        positive_keys = torch.sort(users_all * n_items + items_all).values
        warm_np = np.diff(train.binary().tocsc().indptr) > 0
        warm_items = torch.as_tensor(np.flatnonzero(warm_np))
        self.warm_ = torch.as_tensor(warm_np, device=device)

        # Halve the learning rate when the validation score stalls: the curve is noisy and climbs slowly
        # once the L2 terms balance the loss, so smaller steps there find a better model sooner.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="max", factor=config.lr_decay, patience=config.lr_patience) \
            if training.valid is not None and config.lr_decay < 1 else None

        def after(entry: dict) -> None:  # the elapsed time and learning rate, then the decay on the score
            entry["seconds"] = round(time.perf_counter() - started, 3)
            entry["lr"] = optimiser.param_groups[0]["lr"]
            if scheduler is not None and training.key in entry:
                scheduler.step(entry[training.key])

        def load_extra(extra: dict) -> None:  # the network from the resumed state, and the decay's counters
            self._import(net)
            if scheduler is not None:
                scheduler.load_state_dict(extra["scheduler"])
        save_extra = lambda: {"scheduler": scheduler.state_dict() if scheduler is not None else None}  # noqa: E731
        started = time.perf_counter()
        for _ in training.epochs(optimiser, generator, save_extra=save_extra, load_extra=load_extra):
            net.train()
            order = torch.randperm(len(users_all), generator=generator)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                batch = order[start:start + config.batch_size]
                u, i = users_all[batch], items_all[batch]
                j = self._negatives(u, warm_items, positive_keys, n_items, generator)
                keep = (torch.rand(n_items, generator=generator) >= config.item_dropout).float()
                u, i, j, keep = u.to(device), i.to(device), j.to(device), keep.to(device)
                pos, neg, squares, content_squares = net.bpr_scores(features, u, i, j, keep)
                loss = -torch.nn.functional.logsigmoid(pos - neg).mean() \
                    + (config.reg * squares + config.content_reg * content_squares) / len(batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            self._export(net, features)
            training.end_epoch({"loss": total / len(order)}, after=after)

    @staticmethod
    def _negatives(users, candidates, positive_keys, n_items, generator, rounds=3):
        """One uniformly drawn item per user from ``candidates``, redrawn (up to ``rounds`` times)
        where it is one of the user's training positives."""
        draw = candidates[torch.randint(len(candidates), (len(users),), generator=generator)]
        for _ in range(rounds):
            keys = users * n_items + draw
            found = torch.searchsorted(positive_keys, keys).clamp(max=len(positive_keys) - 1)
            clash = positive_keys[found] == keys
            if not clash.any():
                break
            redraw = candidates[torch.randint(len(candidates), (int(clash.sum()),), generator=generator)]
            draw = draw.clone()
            draw[clash] = redraw
        return draw

    @torch.no_grad()
    def _import(self, net):
        """Copy the learned state back into the network (the inverse of ``_export``), to resume."""
        net.user.weight.copy_(self.user_emb_)
        net.item.weight.copy_(self.item_emb_)
        net.bias.weight.copy_(self.item_bias_[:, None])
        net.keys.copy_(self.keys_)
        net.query.weight.copy_(self.query_w_)
        bounds = np.cumsum([0] + [w.weight.shape[1] for w in net.values])
        for w, c, a, b in zip(net.values, net.content_bias, bounds[:-1], bounds[1:]):
            w.weight.copy_(self.value_w_[:, a:b])
            c.weight.copy_(self.content_bias_w_[a:b][None])

    @torch.no_grad()
    def _export(self, net, features):
        """Copy the learned state into plain tensors that scoring (and save/load) use."""
        net.eval()
        self.user_emb_ = net.user.weight.detach().clone()
        self.item_emb_ = net.item.weight.detach().clone()
        self.item_bias_ = net.bias.weight.detach().squeeze(1).clone()
        self.content_values_ = torch.stack([w(f) for w, f in zip(net.values, features)])
        self.content_bias_ = sum(c(f).squeeze(1) for c, f in zip(net.content_bias, features))
        self.keys_ = net.keys.detach().clone()
        self.query_w_ = net.query.weight.detach().clone()
        self.value_w_ = torch.cat([w.weight.detach() for w in net.values], dim=1).clone()  # d x sum(d_m)
        self.content_bias_w_ = torch.cat([c.weight.detach().squeeze(0) for c in net.content_bias]).clone()

    def _score(self, users: np.ndarray) -> torch.Tensor:
        idx = torch.as_tensor(users, device=self.user_emb_.device)
        p = self.user_emb_[idx]
        q = p @ self.query_w_.T
        alpha = torch.softmax(q @ self.keys_.T / math.sqrt(self.keys_.shape[1]), dim=1)
        warm = self.warm_.to(p.dtype)
        collaborative = p @ (self.item_emb_ * warm[:, None]).T + (self.item_bias_ * warm + self.content_bias_)
        content = torch.einsum("bm,bmn->bn", alpha, torch.einsum("bd,mnd->bmn", p, self.content_values_))
        return collaborative + content

    def _score_items(self, users: np.ndarray, modalities: dict[str, np.ndarray]) -> torch.Tensor:
        # exactly the cold-item path of _score: gamma_i = b_i = 0, the content path and content bias only
        device = self.user_emb_.device
        features = [torch.as_tensor(f, device=device)
                    for f in prepare_content(modalities, self.config.center, self._content_means())]
        bounds = np.cumsum([0] + self.modality_dims_.tolist())
        values = torch.stack([f @ self.value_w_[:, a:b].T for f, a, b in zip(features, bounds[:-1], bounds[1:])])
        content_bias = sum(f @ self.content_bias_w_[a:b] for f, a, b in zip(features, bounds[:-1], bounds[1:]))
        p = self.user_emb_[torch.as_tensor(users, device=device)]
        alpha = torch.softmax((p @ self.query_w_.T) @ self.keys_.T / math.sqrt(self.keys_.shape[1]), dim=1)
        return content_bias + torch.einsum("bm,bmn->bn", alpha, torch.einsum("bd,mnd->bmn", p, values))
