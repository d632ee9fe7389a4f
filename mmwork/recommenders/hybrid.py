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
training interactions), Adam, L2 on the embeddings in each batch, early stopping on the validation
NDCG@10. Item-embedding dropout (DropoutNet): in every batch a share ``item_dropout`` of the items
lose gamma_i and b_i, so the content path learns to rank on its own; at scoring time items without
training interactions are scored from content only (gamma_i = b_i = 0).

>>> model = MultimodalHybrid().fit(split.train, item_features=feats, valid=split.valid)  # doctest: +SKIP
>>> model.history_[-1]                                                                   # doctest: +SKIP
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from mmwork.errors import MmworkError
from mmwork.recommenders.base import Recommender, log
from mmwork.recommenders.features import as_modalities, l2_normalise


def prepare_content(modalities: dict[str, np.ndarray], center: bool = True) -> list[np.ndarray]:
    """Per modality: centred on the mean of the items that have content (optional) and L2-normalised;
    items without content stay all-zero."""
    out = []
    for array in modalities.values():
        array = array.astype(np.float64)
        has = np.abs(array).sum(1) > 0
        if center and has.any():
            array = np.where(has[:, None], array - array[has].mean(0), 0.0)
        out.append(l2_normalise(array).astype(np.float32))
    return out


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
        out, squares = [], p.pow(2).sum()
        for items in (pos, neg):
            k = keep[items]
            gamma = self.item(items)
            content = nn.functional.embedding(items, values).view(len(items), n_mod, -1)  # B x M x d
            per_modality = (content * p_row).sum(2)  # p_u . W_m f_i^m, B x M
            collaborative = (p * gamma).sum(1) + self.bias(items).squeeze(1)
            out.append(collaborative * k + (alpha * per_modality).sum(1)
                       + nn.functional.embedding(items, cbias).squeeze(1))
            squares = squares + gamma.pow(2).sum()
        return out[0], out[1], squares


class MultimodalHybrid(Recommender):
    """VBPR-style hybrid with attention over modalities and item-embedding dropout for cold items.

    Parameters: ``dim`` (embedding size), ``epochs`` (at most), ``batch_size``, ``lr`` (Adam),
    ``reg`` (L2 on the batch's user/item embeddings), ``weight_decay`` (on the content projections),
    ``item_dropout`` (share of items per batch trained without their collaborative embedding),
    ``patience`` (epochs without a better validation NDCG@10 before stopping), ``center`` (centre each
    modality before L2-normalising it).

    Early stopping needs ``valid``: ranking is over every item, except when no validation item has
    training interactions (a cold-item split), where it is over the items without training
    interactions. Without ``valid`` it trains for ``epochs``. ``history_`` holds, per epoch, the
    mean loss, the validation NDCG@10 and the elapsed seconds.

    Attributes after fit: ``user_emb``, ``item_emb``, ``item_bias``, ``content_values`` (M x n_items x
    d, the W_m f_i^m), ``content_bias``, ``keys``, ``query_w``, ``warm`` (items with training
    interactions).
    """

    name = "hybrid"
    uses_features = True
    _state = ("user_emb", "item_emb", "item_bias", "content_values", "content_bias", "keys", "query_w", "warm")

    def __init__(self, *, dim: int = 64, epochs: int = 100, batch_size: int = 4096, lr: float = 3e-3,
                 reg: float = 1e-3, weight_decay: float = 0.0, item_dropout: float = 0.1, patience: int = 10,
                 center: bool = True, device: str = "auto", seed: int = 0):
        super().__init__(device=device, seed=seed)
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.weight_decay = weight_decay
        self.item_dropout = item_dropout
        self.patience = patience
        self.center = center

    def _check_params(self):
        if int(self.dim) < 1 or int(self.epochs) < 1 or int(self.batch_size) < 1 or int(self.patience) < 1:
            raise MmworkError("dim, epochs, batch_size and patience must be >= 1")
        if not 0 <= float(self.item_dropout) < 1:
            raise MmworkError(f"item_dropout must be in [0, 1), got {self.item_dropout}")
        if float(self.lr) <= 0 or float(self.reg) < 0 or float(self.weight_decay) < 0:
            raise MmworkError("lr must be > 0 and reg, weight_decay >= 0")

    def _fit(self, train, item_features, valid):
        self._check_params()
        device = self.device_
        modalities = as_modalities(item_features, train.n_items)
        self.modalities_ = list(modalities)
        features = [torch.as_tensor(f, device=device) for f in prepare_content(modalities, self.center)]
        generator = torch.Generator(device="cpu").manual_seed(int(self.seed))
        torch.manual_seed(int(self.seed))
        net = _Net(train.n_users, train.n_items, [f.shape[1] for f in features], int(self.dim)).to(device)
        optimiser = torch.optim.Adam([
            {"params": [net.user.weight, net.item.weight, net.bias.weight, net.keys, *net.query.parameters()],
             "weight_decay": 0.0},
            {"params": [*net.values.parameters(), *net.content_bias.parameters()],
             "weight_decay": float(self.weight_decay)},
        ], lr=float(self.lr))

        coo = train.binary().tocoo()
        users_all = torch.as_tensor(coo.row.astype(np.int64))
        items_all = torch.as_tensor(coo.col.astype(np.int64))
        n_items = train.n_items
        positive_keys = torch.sort(users_all * n_items + items_all).values
        counts = np.diff(train.binary().tocsc().indptr)
        warm_np = counts > 0
        warm_items = torch.as_tensor(np.flatnonzero(warm_np))
        self.warm = torch.as_tensor(warm_np, device=device)
        eval_split = self._eval_split(train, valid, warm_np)

        self.history_, best, best_state, stale = [], -1.0, None, 0
        started = time.perf_counter()
        for epoch in range(int(self.epochs)):
            net.train()
            order = torch.randperm(len(users_all), generator=generator)
            total = 0.0
            for start in range(0, len(order), int(self.batch_size)):
                batch = order[start:start + int(self.batch_size)]
                u, i = users_all[batch], items_all[batch]
                j = self._negatives(u, warm_items, positive_keys, n_items, generator)
                keep = (torch.rand(n_items, generator=generator) >= float(self.item_dropout)).float()
                u, i, j, keep = u.to(device), i.to(device), j.to(device), keep.to(device)
                pos, neg, squares = net.bpr_scores(features, u, i, j, keep)
                loss = -torch.nn.functional.logsigmoid(pos - neg).mean() + float(self.reg) * squares / len(batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            self._export(net, features)
            entry = {"epoch": epoch + 1, "loss": total / len(order)}
            if eval_split is not None:
                from mmwork.evaluation.ranking import evaluate
                ndcg = float(evaluate(self, eval_split, "valid", k=10, metrics=("ndcg",)).metrics["ndcg"].mean())
                entry["valid_ndcg@10"] = ndcg
            entry["seconds"] = round(time.perf_counter() - started, 3)
            self.history_.append(entry)
            log.debug("hybrid epoch %s", entry)
            if eval_split is None:
                continue
            if entry["valid_ndcg@10"] > best:
                best, stale = entry["valid_ndcg@10"], 0
                best_state = {name: getattr(self, name).clone() for name in self._state}
            else:
                stale += 1
                if stale >= int(self.patience):
                    break
        if best_state is not None:
            for name, value in best_state.items():
                setattr(self, name, value)
        self.best_epoch_ = max(self.history_, key=lambda e: e.get("valid_ndcg@10", -1))["epoch"] \
            if eval_split is not None else len(self.history_)

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

    @staticmethod
    def _eval_split(train, valid, warm_np):
        if valid is None or valid.nnz == 0:
            return None
        from mmwork.evaluation.splits import Split
        valid_items = np.unique(valid.matrix.tocoo().col)
        candidates = None
        if not warm_np[valid_items].any():  # a cold-item split: rank among the items nobody had in train
            candidates = np.flatnonzero(~warm_np)
        return Split(train, valid, valid, "internal-valid", valid_candidates=candidates)

    @torch.no_grad()
    def _export(self, net, features):
        """Copy the learned state into plain tensors that scoring (and save/load) use."""
        net.eval()
        self.user_emb = net.user.weight.detach().clone()
        self.item_emb = net.item.weight.detach().clone()
        self.item_bias = net.bias.weight.detach().squeeze(1).clone()
        self.content_values = torch.stack([w(f) for w, f in zip(net.values, features)])
        self.content_bias = sum(c(f).squeeze(1) for c, f in zip(net.content_bias, features))
        self.keys = net.keys.detach().clone()
        self.query_w = net.query.weight.detach().clone()

    def _score(self, users: np.ndarray) -> torch.Tensor:
        idx = torch.as_tensor(users, device=self.user_emb.device)
        p = self.user_emb[idx]
        q = p @ self.query_w.T
        alpha = torch.softmax(q @ self.keys.T / math.sqrt(self.keys.shape[1]), dim=1)
        warm = self.warm.to(p.dtype)
        collaborative = p @ (self.item_emb * warm[:, None]).T + (self.item_bias * warm + self.content_bias)
        content = torch.einsum("bm,bmn->bn", alpha, torch.einsum("bd,mnd->bmn", p, self.content_values))
        return collaborative + content
