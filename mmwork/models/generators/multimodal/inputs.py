"""The checks a :class:`~mmwork.models.generators.MultimodalVAE` runs on its inputs before any compute,
and the modalities of training data that come without their specs.

>>> import torch
>>> from mmwork.models.data.multimodal import ModalitySpec
>>> check_array("audio", ModalitySpec(kind="sequence", shape=(16, 13)), torch.zeros(2, 15, 13), "inputs")
Traceback (most recent call last):
...
mmwork.core.errors.MmworkError: inputs: audio (sequence) must have shape (N, 16, 13), got (2, 15, 13)
>>> specs_of({"image": torch.rand(2, 1, 28, 28)})["image"]["kind"]
'image'
"""
from __future__ import annotations

import numpy as np
import torch

from mmwork.core.errors import MmworkError
from mmwork.models.data.multimodal import ModalitySpec, encode_text
from mmwork.models.generators.multimodal.config import vocab_size

def check_array(name: str, spec: ModalitySpec, x, what: str) -> torch.Tensor:
    """One modality's array as a CPU tensor of its kind's type, or an error naming what is wrong."""
    if spec.kind == "tokens" and (isinstance(x, str) or (isinstance(x, (list, tuple)) and x
                                                         and all(isinstance(t, str) for t in x))):
        x = encode_text(x, spec)  # texts as strings: the model's own vocabulary
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise MmworkError(f"{what}: {name} must be a tensor or numpy array"
                          + (" (or a list of strings)" if spec.kind == "tokens" else "") + f", got {type(x).__name__}")
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 1 + len(spec.shape) or tuple(x.shape[1:]) != tuple(spec.shape):
        raise MmworkError(f"{what}: {name} ({spec.kind}) must have shape (N, {', '.join(map(str, spec.shape))}), "
                          f"got {tuple(x.shape)}")
    if spec.kind == "tokens":
        if x.is_floating_point() or x.dtype == torch.bool:
            raise MmworkError(f"{what}: {name} must hold integer token ids, got {x.dtype}")
        if len(x) and (x.min() < 0 or x.max() >= vocab_size(spec)):
            raise MmworkError(f"{what}: {name} holds ids outside 0..{vocab_size(spec) - 1} (the vocabulary)")
        return x.long()
    if not x.is_floating_point():
        raise MmworkError(f"{what}: {name} must hold floats, got {x.dtype}"
                          + ("; images go in as floats in [0, 1]" if spec.kind == "image" else ""))
    x = x.float()
    if not torch.isfinite(x).all():
        raise MmworkError(f"{what}: {name} holds NaN or infinite values")
    if spec.kind == "image" and len(x) and (x.min() < 0 or x.max() > 1):
        raise MmworkError(f"{what}: {name} pixels must lie in [0, 1], got {float(x.min()):.4g} to {float(x.max()):.4g}")
    return x



def specs_of(data) -> dict[str, dict]:
    """The modalities of ``data``: a ``MultimodalData``'s specs, or guessed from a dict's arrays
    (floats (N, C, H, W): image; (N, T, D): sequence; (N, D): vector; integers (N, L): tokens, with
    the ids themselves as the vocabulary)."""
    specs = getattr(data, "specs", None)
    if specs:
        return {m: s.model_dump() if hasattr(s, "model_dump") else dict(s) for m, s in specs.items()}
    arrays = getattr(data, "arrays", data)
    if not isinstance(arrays, dict) or not arrays:
        raise MmworkError(f"data must be a non-empty dict modality name -> tensor (or a MultimodalData), "
                          f"got {type(data).__name__}")
    out = {}
    for m, x in arrays.items():
        x = torch.as_tensor(x)
        if not x.is_floating_point() and x.ndim == 2:
            ids = [str(i) for i in range(2, int(x.max()) + 1)]
            out[m] = {"kind": "tokens", "shape": [x.shape[1]], "vocab": ["<pad>", "<unk>"] + ids}
        elif x.is_floating_point() and x.ndim in (2, 3, 4):
            out[m] = {"kind": {4: "image", 3: "sequence", 2: "vector"}[x.ndim], "shape": list(x.shape[1:])}
        else:
            raise MmworkError(f"data: cannot tell what kind of modality {m} is from shape {tuple(x.shape)} "
                              f"and {x.dtype}; give modalities=... or a MultimodalData")
    return out
