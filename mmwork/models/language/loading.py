"""Load the pretrained language model's tokenizer and float32 weights from its GGUF file.

transformers reads a GGUF in pure Python (its metadata is parsed three times: config, tokenizer,
weights) and dequantises it to float32, which takes about 30 s on one core. The first load therefore
writes what it read, once, into a *converted* folder keyed by the GGUF's sha256 and the transformers
version (``<cache>/converted/smollm2-<sha>-tf<version>/``: safetensors float32 weights, config,
tokenizer; about 540 MB); later loads read that folder in about half a second and give bit-identical
weights. Delete the folder (or pass ``converted=False``) to read the GGUF itself.

>>> tokenizer, model, source = load_weights("smollm2")          # doctest: +SKIP
>>> model.dtype, source                                           # doctest: +SKIP
(torch.float32, 'converted')
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from mmwork.core.errors import MmworkError
from mmwork.core.paths import cache_root
from mmwork.datasets import pretrained

log = logging.getLogger("mmwork.models.language")


def converted_dir(name: str) -> Path:
    """The folder the GGUF of ``name`` is converted into (it may not exist yet)."""
    import transformers
    sha = pretrained.spec(name).files[pretrained.spec(name).main]
    return cache_root() / "converted" / f"{name}-{sha[:16]}-tf{transformers.__version__}"


def load_weights(name: str = "smollm2", converted: bool = True):
    """``(tokenizer, model, source)``: the tokenizer and float32 causal LM of pretrained ``name`` in eval
    mode, on the CPU; ``source`` says whether they came from the GGUF ("gguf") or its converted copy
    ("converted"). A model not fetched, or a file whose hash differs, is a one-line MmworkError naming
    ``mmwork models get``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights only from the cache, never a hub
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = pretrained.path(name)  # checks every file's sha256 (cached by size and mtime)
    gguf = pretrained.spec(name).main
    cached = converted_dir(name)
    if converted and (cached / ".complete").exists():
        try:
            tokenizer = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
            return tokenizer, model.eval(), "converted"
        except (OSError, ValueError, RuntimeError) as exc:  # a damaged copy: read the GGUF again
            log.warning("converted copy %s unreadable (%s); reading the GGUF again", cached, exc)
            shutil.rmtree(cached, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise MmworkError(f"could not load {folder / gguf} ({str(exc).splitlines()[0][:200]}); run "
                          f"`mmwork models get {name} --force` to fetch it again") from exc
    model.eval()
    # the GGUF "quantizer" only marks where the weights came from: they are plain float32 now, and the
    # model should be the same object as one read from the converted copy (peft checks these marks)
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if converted:
        _write_converted(tokenizer, model, cached)
    return tokenizer, model, "gguf"


def _write_converted(tokenizer, model, target: Path) -> None:
    """Save the dequantised weights and the tokenizer beside the cache, atomically; a failure only warns."""
    staging = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError as exc:
        log.warning("could not keep a converted copy in %s (%s); the next load reads the GGUF again", target, exc)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
