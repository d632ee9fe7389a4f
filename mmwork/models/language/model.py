"""The pretrained language model (SmolLM2-135M-Instruct): chat prompts, batched generation, perplexity.

Loaded with transformers from the GGUF that ``mmwork models get smollm2`` fetches (dequantised to
float32, in eval mode), on CUDA when there is one. A LoRA adapter from :func:`fine_tune_lora` is merged
into the weights when loaded.

>>> lm = LanguageModel.load()                                       # doctest: +SKIP
>>> prompt = lm.chat([{"role": "user", "content": "Name a film about the sea."}])   # doctest: +SKIP
>>> lm.generate([prompt], max_new_tokens=20, seed=0)                # doctest: +SKIP
['"The Deep Blue Sea"']
>>> lm.perplexity(["The cat sat on the mat."])                      # doctest: +SKIP
array([38.2])
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from mmwork.core.device import resolve_device
from mmwork.core.errors import MmworkError
from mmwork.models.language.generation import Generations, generate_texts
from mmwork.models.language.loading import load_weights
from mmwork.models.language.sampling import SamplingConfig

log = logging.getLogger("mmwork.models.language")

ADAPTER_FILE = "adapter_model.safetensors"


class LanguageModel:
    """A causal language model and its tokenizer, ready to generate. Build it with :meth:`load`.

    Attributes: ``name`` (the pretrained model), ``model`` (the transformers module), ``tokenizer``,
    ``device``, ``adapter`` (None, or the LoRA adapter's config and state merged into the weights),
    ``load_seconds`` and ``source`` ("gguf" or its "converted" copy)."""

    def __init__(self, name: str, model, tokenizer, device: torch.device, adapter: dict | None = None,
                 load_seconds: float = 0.0, source: str = "gguf"):
        self.name, self.model, self.tokenizer, self.device = name, model, tokenizer, device
        self.adapter, self.load_seconds, self.source = adapter, load_seconds, source

    @classmethod
    def load(cls, name: str = "smollm2", *, adapter: str | Path | None = None,
             device: str | torch.device | None = None) -> "LanguageModel":
        """Load pretrained ``name`` (see ``mmwork models list``) in float32, eval mode, on ``device`` (None:
        CUDA when available, else CPU), with the LoRA ``adapter`` folder of :meth:`save_adapter` merged in."""
        device = resolve_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        adapter_state = _read_adapter(adapter) if adapter is not None else None  # a bad folder fails before loading
        started = time.perf_counter()
        tokenizer, model, source = load_weights(name)
        lm = cls(name, model.to(device), tokenizer, device, source=source)
        if adapter_state is not None:
            lm = lm.with_adapter(adapter_state, copy=False)
        lm.load_seconds = time.perf_counter() - started
        log.info("language model %s loaded from %s in %.1fs on %s", name, source, lm.load_seconds, device)
        return lm

    # -- prompts -------------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        """Most tokens a prompt plus its generation may hold."""
        return int(self.model.config.max_position_embeddings)

    def chat(self, messages: list[dict]) -> str:
        """The prompt string for ``messages`` (``[{"role": "system"|"user"|"assistant", "content": str}]``)
        through the model's chat template, ending where the assistant's answer begins."""
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise MmworkError("messages must be a non-empty list of {'role': str, 'content': str} dicts")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def n_tokens(self, text: str) -> int:
        """Tokens in ``text`` (as :meth:`generate` encodes a prompt: no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ----------------------------------------------------------------------------------
    def generate(self, prompts: list[str], *, max_new_tokens: int = 80, temperature: float = 0.7, top_p: float = 0.9,
                 seed: int = 0, batch_size: int = 16, time_budget=None, progress: bool | None = True) -> Generations:
        """Texts generated for ``prompts`` (strings from :meth:`chat`), in their order: batched with left
        padding and a KV cache, each prompt sampled from its own stream seeded by ``(seed, position)``
        (deterministic on CPU; ``temperature=0`` is greedy). Parameters are checked before any compute;
        a prompt too long for the context is an error that says how far to shorten it. The result is a
        list with ``done``, ``empty`` (prompts that generated nothing), ``stopped`` and ``new_tokens``
        (:class:`Generations`); empty generations and a stop on ``time_budget`` are also logged."""
        config = SamplingConfig.make(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                     seed=seed, batch_size=batch_size, time_budget=time_budget, progress=progress)
        self.model.eval()
        return generate_texts(self.model, self.tokenizer, prompts, config, context=self.context_length,
                              device=self.device, desc=f"{self.name} generating")

    # -- scoring -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def perplexity(self, texts: list[str], prefix: str | list[str] | None = None, *,
                   batch_size: int = 16) -> np.ndarray:
        """Perplexity of each text (exp of its mean negative log-likelihood per token, in nats), conditioned
        on ``prefix`` (one string for all, or one per text; its tokens are read, not scored). An empty text
        scores NaN."""
        if isinstance(texts, str):
            raise MmworkError("texts must be a list of strings, not one string")
        prefixes = [prefix] * len(texts) if prefix is None or isinstance(prefix, str) else list(prefix)
        if len(prefixes) != len(texts):
            raise MmworkError(f"{len(prefixes)} prefixes for {len(texts)} texts; give one prefix, or one per text")
        if batch_size < 1:
            raise MmworkError(f"batch_size must be at least 1, got {batch_size}")
        encode = lambda s: self.tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
        rows = []
        for i, (text, pre) in enumerate(zip(texts, prefixes)):
            head, body = encode(pre), encode(text)
            if len(head) + len(body) > self.context_length:
                raise MmworkError(f"text {i} with its prefix has {len(head) + len(body)} tokens, over the model's "
                                  f"context of {self.context_length}; shorten it")
            rows.append((head, body))
        nll = np.full(len(texts), np.nan)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        self.model.eval()
        for start in range(0, len(order), batch_size):
            batch = [i for i in order[start:start + batch_size] if rows[i][1]]
            if not batch:
                continue
            width = max(len(rows[i][0]) + len(rows[i][1]) for i in batch)
            ids = torch.full((len(batch), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros_like(ids)
            labels = torch.full_like(ids, -100)
            for r, i in enumerate(batch):
                head, body = rows[i]
                ids[r, :len(head) + len(body)] = torch.tensor(head + body)
                mask[r, :len(head) + len(body)] = 1
                labels[r, len(head):len(head) + len(body)] = torch.tensor(body)
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            # a text's first token is predicted from the prefix's last; with no prefix it cannot be scored
            logits, labels = logits[:, :-1], labels[:, 1:].to(self.device)
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100,
                                                       reduction="none")
            counts = (labels != -100).sum(1)
            for r, i in enumerate(batch):
                if counts[r] > 0:
                    nll[i] = float(losses[r].sum() / counts[r])
        return np.exp(nll)

    # -- adapters ------------------------------------------------------------------------------------
    def with_adapter(self, adapter: dict, copy: bool = True) -> "LanguageModel":
        """A new model whose weights are these plus the LoRA ``adapter`` (``{"config": dict, "state": tensors}``,
        as :func:`fine_tune_lora` makes it), merged; this model is left as it is (unless ``copy=False``, which
        merges into its weights and saves the memory of a copy)."""
        from copy import deepcopy

        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        base = deepcopy(self.model) if copy else self.model
        peft_model = get_peft_model(base, LoraConfig(**adapter["config"]))
        missing = set_peft_model_state_dict(peft_model, adapter["state"])
        if getattr(missing, "unexpected_keys", None):
            raise MmworkError(f"the adapter does not fit {self.name}: unexpected {missing.unexpected_keys[:3]}")
        merged = peft_model.merge_and_unload().eval()
        return LanguageModel(self.name, merged, self.tokenizer, self.device, adapter=adapter,
                             load_seconds=self.load_seconds, source=self.source)

    def save_adapter(self, folder: str | Path) -> Path:
        """Write the LoRA adapter (its config as JSON, its tensors as safetensors) to ``folder``;
        ``LanguageModel.load(adapter=folder)`` gives this model back."""
        from safetensors.torch import save_file
        if self.adapter is None:
            raise MmworkError("this language model has no adapter to save; fine-tune it first with fine_tune_lora")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.adapter["state"].items()}, folder / ADAPTER_FILE)
        meta = {"base": self.name, "config": self.adapter["config"], "history": self.adapter.get("history", [])}
        (folder / "adapter_config.json").write_text(json.dumps(meta, indent=2, default=str))
        return folder


def _read_adapter(folder: str | Path) -> dict:
    """The adapter a :meth:`LanguageModel.save_adapter` folder holds; a missing or broken one is a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    folder = Path(folder)
    config, weights = folder / "adapter_config.json", folder / ADAPTER_FILE
    if not config.is_file() or not weights.is_file():
        raise MmworkError(f"{folder} holds no LoRA adapter ({config.name} and {ADAPTER_FILE}); write one with "
                          f"lm.save_adapter(folder) after fine_tune_lora")
    try:
        meta = json.loads(config.read_text())
        state = load_file(weights)
    except (ValueError, OSError, SafetensorError) as exc:
        raise MmworkError(f"the LoRA adapter in {folder} is unreadable ({exc}); fine-tune and save it again") from exc
    return {"config": meta["config"], "state": state, "history": meta.get("history", [])}
