"""LoRA fine-tuning of the language model on (prompt, target) pairs, with early stopping on held-out pairs.

Low-rank adapters (``peft``) on the attention projections (q, k, v, o) of every layer; the loss is the
cross-entropy of the target's tokens (and the end-of-turn token after them) given the prompt, never of the
prompt. The held-out loss is measured every ``eval_every`` steps (and when the time budget ends the run);
the adapter of the best measurement is kept, and training stops after ``patience`` measurements without a
better one. The model given is not changed: the result is a new :class:`LanguageModel` with the adapter
merged, whose :meth:`~LanguageModel.save_adapter` writes it.

>>> tuned = fine_tune_lora(lm, [(prompt, "Title: ...")], [(prompt2, "Title: ...")], epochs=2)  # doctest: +SKIP
>>> tuned.adapter["history"][-1]                                                              # doctest: +SKIP
{'step': 12, 'epoch': 2, 'loss': 2.1, 'valid_loss': 2.3, 'seconds': 40.2}
"""
from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from mmwork.core.config import Config, Duration
from mmwork.core.errors import MmworkError
from mmwork.models.language.model import LanguageModel

log = logging.getLogger("mmwork.models.language")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
"""The attention projections the adapters sit on (Hu et al. 2021 adapt the attention weights)."""


class LoraConfig(Config):
    """Parameters of :func:`fine_tune_lora`."""

    rank: int = Field(8, ge=1, le=256)
    """Rank of each adapter. 8 is the LoRA paper's usual setting; it adds 0.9M trainable weights here."""
    alpha: float = Field(16.0, gt=0)
    """Scale of the adapters' update (alpha / rank); twice the rank, the common peft setting."""
    lr: float = Field(1e-3, gt=0, le=1.0)
    """AdamW learning rate. Adapters start at zero and take larger steps than full fine-tuning (2e-5)."""
    epochs: int = Field(3, ge=1)
    """Most passes over the training pairs (early stopping or the time budget can end sooner)."""
    batch_size: int = Field(8, ge=1)
    """Pairs per optimizer step (right-padded into one batch)."""
    eval_every: int | None = Field(None, ge=1)
    """Steps between held-out losses; None: once per epoch."""
    patience: int = Field(2, ge=1)
    """Held-out measurements without improvement before stopping."""
    time_budget: Duration | None = None
    """Wall-clock limit of the training (seconds, "90s", "2m"): the run stops after the step that passes it,
    measures the held-out loss and keeps the best adapter. None: no limit."""
    max_tokens: int = Field(512, ge=8)
    """Longest prompt + target kept (longer pairs are cut from the left of the prompt, with a warning)."""
    seed: int = Field(0, ge=0)
    """Seeds the adapters' initialisation and the order of the pairs."""
    progress: bool | None = True
    """Show a progress bar over steps (None: only on a terminal)."""


def _check_pairs(pairs, what: str) -> list[tuple[str, str]]:
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise MmworkError(f"{what} must be a non-empty list of (prompt, target) string pairs")
    for i, pair in enumerate(pairs):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(s, str) for s in pair)
                or not pair[1].strip()):
            raise MmworkError(f"{what}[{i}] is not a (prompt, target) pair of strings with a non-empty target")
    return [tuple(p) for p in pairs]


def encode_pairs(lm: LanguageModel, pairs, max_tokens: int) -> list[tuple[list[int], int]]:
    """Token ids of prompt + target + end-of-turn, and where the target starts, per pair."""
    tok = lm.tokenizer
    end = tok.eos_token_id
    encoded, cut = [], 0
    for prompt, target in pairs:
        head = tok(prompt, add_special_tokens=False)["input_ids"]
        body = tok(target, add_special_tokens=False)["input_ids"] + [end]
        body = body[:max_tokens - 1]
        if len(head) + len(body) > max_tokens:
            head, cut = head[len(head) + len(body) - max_tokens:], cut + 1
        encoded.append((head + body, len(head)))
    if cut:
        log.warning("LoRA: %d pair(s) longer than max_tokens=%d had their prompt cut from the left", cut, max_tokens)
    return encoded


def _batch(encoded, indices, pad_id: int, device):
    width = max(len(encoded[i][0]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for r, i in enumerate(indices):
        tokens, start = encoded[i]
        ids[r, :len(tokens)] = torch.tensor(tokens)
        mask[r, :len(tokens)] = 1
        labels[r, start:len(tokens)] = torch.tensor(tokens[start:])
    return ids.to(device), mask.to(device), labels.to(device)


def _loss(model, ids, mask, labels) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens, and their count."""
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    targets = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100,
                                             reduction="sum")
    return loss, int((targets != -100).sum())


@torch.no_grad()
def _valid_loss(model, encoded, batch_size: int, pad_id: int, device) -> float:
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    for start in range(0, len(order), batch_size):
        loss, n = _loss(model, *_batch(encoded, order[start:start + batch_size], pad_id, device))
        total, count = total + float(loss), count + n
    model.train()
    return total / max(count, 1)


def fine_tune_lora(lm: LanguageModel, train_pairs, valid_pairs, **params) -> LanguageModel:
    """A copy of ``lm`` with LoRA adapters trained on ``train_pairs`` (``[(prompt, target), ...]``; the prompt as
    :meth:`LanguageModel.chat` writes it) and chosen on ``valid_pairs``; ``params`` are :class:`LoraConfig`'s.
    Its ``adapter["history"]`` holds one row per held-out measurement. Deterministic on CPU for a seed."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, get_peft_model_state_dict
    config = LoraConfig.make(**params)
    if lm.adapter is not None:
        raise MmworkError("this language model already has an adapter merged in; fine-tune the base model "
                          "(LanguageModel.load() without adapter)")
    train_pairs, valid_pairs = _check_pairs(train_pairs, "train_pairs"), _check_pairs(valid_pairs, "valid_pairs")
    train, valid = encode_pairs(lm, train_pairs, config.max_tokens), encode_pairs(lm, valid_pairs, config.max_tokens)
    pad_id = lm.tokenizer.pad_token_id or 0
    device = lm.device
    torch.manual_seed(config.seed)
    peft_config = {"r": config.rank, "lora_alpha": config.alpha, "lora_dropout": 0.0, "target_modules": TARGETS,
                   "bias": "none", "task_type": "CAUSAL_LM"}
    model = get_peft_model(copy.deepcopy(lm.model), PeftLoraConfig(**peft_config))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = -(-len(train) // config.batch_size)
    eval_every = config.eval_every or steps_per_epoch
    history: list[dict] = []
    best, best_state, since_best = np.inf, None, 0
    started, step, tokens, running, valid_spent = time.perf_counter(), 0, 0, [], 0.0
    stop = None
    bar = tqdm(total=config.epochs * steps_per_epoch, desc="LoRA steps", unit="step", leave=False,
               disable=None if config.progress is None else not config.progress)
    try:
        for epoch in range(1, config.epochs + 1):
            order = rng.permutation(len(train))
            for start in range(0, len(order), config.batch_size):
                ids, mask, labels = _batch(train, order[start:start + config.batch_size].tolist(), pad_id, device)
                loss, count = _loss(model, ids, mask, labels)
                optimizer.zero_grad(set_to_none=True)
                (loss / max(count, 1)).backward()
                optimizer.step()
                step, tokens = step + 1, tokens + int(mask.sum())
                running.append(float(loss.detach()) / max(count, 1))
                bar.update()
                over = config.time_budget is not None and time.perf_counter() - started > config.time_budget
                last = epoch == config.epochs and start + config.batch_size >= len(order)
                if step % eval_every and not over and not last:
                    continue
                began = time.perf_counter()
                score = _valid_loss(model, valid, config.batch_size, pad_id, device)
                valid_spent += time.perf_counter() - began
                row = {"step": step, "epoch": epoch, "loss": float(np.mean(running)), "valid_loss": score,
                       "seconds": round(time.perf_counter() - started, 3), "valid_seconds": round(valid_spent, 3),
                       "train_tokens": tokens}
                running = []
                history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", valid=f"{score:.3f}", refresh=False)
                if not np.isfinite(score):
                    stop = "non-finite held-out loss"
                elif score < best:
                    best, since_best = score, 0
                    best_state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
                else:
                    since_best += 1
                    stop = f"no better held-out loss in {config.patience} measurements" \
                        if since_best >= config.patience else None
                if over:
                    stop = f"time budget of {config.time_budget:g}s reached at step {step}"
                if stop:
                    row["stopped"] = stop
                    break
            if stop:
                break
    finally:
        bar.close()
    if best_state is None:
        raise MmworkError(f"LoRA fine-tuning produced no usable adapter ({stop}); lower lr or check the pairs")
    best_row = min((r for r in history if np.isfinite(r["valid_loss"])), key=lambda r: r["valid_loss"])
    log.info("LoRA: %d steps, %d training tokens in %.0fs; best held-out loss %.4f at step %d%s", step, tokens,
             time.perf_counter() - started, best, best_row["step"], f" ({stop})" if stop else "")
    adapter = {"config": peft_config, "state": best_state, "history": history, "best_step": best_row["step"]}
    return lm.with_adapter(adapter)
