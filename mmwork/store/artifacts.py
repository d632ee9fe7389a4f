"""Saved artifacts (trained models, fitted text extractors): named arrays in ``model.safetensors`` and
everything else in ``model.json``, written atomically, versioned and hashed, so that loading never
unpickles code and a half-written or altered save is refused.

The JSON records the format version, the mmwork version and the SHA-256 of the tensor file; each file
is written to a temporary sibling and renamed into place, the JSON last, so a save cut in the middle
is detected when reading.

>>> import numpy as np, tempfile
>>> folder = write_artifact(tempfile.mkdtemp(), {"w": np.arange(3.0)}, {"kind": "demo"})
>>> meta, arrays = read_artifact(folder)
>>> meta["kind"], arrays["w"].tolist()
('demo', [0.0, 1.0, 2.0])
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mmwork.core.errors import MmworkError

FORMAT = 3  # version of the model.json / model.safetensors layout; bump when it changes
TENSORS, META = "model.safetensors", "model.json"


def write_artifact(path, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` (numpy arrays, or torch tensors: one kind per call) and the JSON-able ``meta``
    to folder ``path``; the JSON gains ``format``, ``mmwork_version`` and ``tensors_sha256``."""
    from mmwork.core.version import version
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if any(type(v).__module__.startswith("torch") for v in arrays.values()):
        from safetensors.torch import save
        blob = save({k: v.detach().cpu().contiguous() for k, v in arrays.items()})
    else:
        import numpy as np
        from safetensors.numpy import save
        blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    meta = meta | {"format": FORMAT, "mmwork_version": version(), "tensors_sha256": hashlib.sha256(blob).hexdigest()}
    _replace(path / TENSORS, blob)
    _replace(path / META, json.dumps(meta, indent=1, default=str).encode())
    return path


def read_meta(path) -> dict:
    """The JSON part of the artifact in folder ``path``, its format checked."""
    path = Path(path)
    if not (path / META).exists() or not (path / TENSORS).exists():
        raise MmworkError(f"{path} holds no saved mmwork artifact ({META} and {TENSORS} expected)")
    meta = json.loads((path / META).read_text())
    if meta.get("format") != FORMAT:
        raise MmworkError(f"{path} was written in format {meta.get('format')} (mmwork {meta.get('mmwork_version')}); "
                          f"this mmwork reads format {FORMAT}: save it again with this mmwork")
    return meta


def read_artifact(path, framework: str = "numpy") -> tuple[dict, dict]:
    """The JSON part and the arrays (``framework`` "numpy" or "torch") of the artifact in ``path``;
    refused when the tensor file does not match the hash the JSON recorded."""
    path = Path(path)
    meta = read_meta(path)
    blob = (path / TENSORS).read_bytes()
    if meta.get("tensors_sha256") != hashlib.sha256(blob).hexdigest():
        raise MmworkError(f"{path}/{TENSORS} does not match {META} (its SHA-256 differs: an interrupted save, or "
                          "the file was altered); save it again")
    if framework == "torch":
        from safetensors.torch import load
    else:
        from safetensors.numpy import load
    return meta, load(blob)


def _replace(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
