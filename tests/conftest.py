"""Shared fixtures: small slices of the real data sets, fetched once per machine into the mmwork cache."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from mmwork.datasets.sources import debian_package_root

ASTERISK = "usr/share/asterisk/sounds/en_US_f_Allison"
SONIC_PI = "usr/share/sonic-pi/samples"
FASHION = "usr/share/datasets/fashion-mnist"


def pytest_collection_modifyitems(config, items):
    slow_ok = os.environ.get("MMWORK_SLOW") == "1"
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    for item in items:
        if "slow" in item.keywords and not slow_ok:
            item.add_marker(pytest.mark.skip(reason="slow test: set MMWORK_SLOW=1 to run it"))
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine"))


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """An empty, private data root for tests that write tables."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MMWORK_DATA", str(root))
    return root


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The folder of the 568 real 8 kHz speech prompts (Debian asterisk-core-sounds-en-wav)."""
    return debian_package_root("asterisk-core-sounds-en-wav", f"/{ASTERISK}/digits/7.wav") / ASTERISK


@pytest.fixture(scope="session")
def speech_clip_path(speech_dir) -> Path:
    """One real speech clip: 'digits/7.wav', the word 'seven' at 8 kHz."""
    return speech_dir / "digits" / "7.wav"


@pytest.fixture(scope="session")
def instrument_dir() -> Path:
    """The folder of the real sonic-pi FLAC samples."""
    return debian_package_root("sonic-pi-samples", f"/{SONIC_PI}/ambi_choir.flac") / SONIC_PI


@pytest.fixture(scope="session")
def instrument_clip_path(instrument_dir) -> Path:
    """One real instrument clip (a FLAC at 44.1 kHz)."""
    return instrument_dir / "ambi_choir.flac"


@pytest.fixture(scope="session")
def fashion_images() -> tuple[np.ndarray, np.ndarray]:
    """The first 256 Fashion-MNIST test images (uint8, 256x28x28) and their labels (0..9)."""
    root = debian_package_root("dataset-fashion-mnist", f"/{FASHION}/t10k-images-idx3-ubyte.gz") / FASHION
    with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:256].copy()
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:256].copy()
    return images, labels


@pytest.fixture(scope="session")
def speech_transcripts() -> dict[str, str]:
    """Transcripts of the speech prompts, keyed 'digits/7' -> 'seven'."""
    root = debian_package_root("asterisk-core-sounds-en",
                               "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
    text = gzip.open(root / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "rt").read()
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith(";"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="session")
def movielens(tmp_path_factory):
    """MovieLens-100K (interactions, items), fetched once per session into a private data root."""
    from mmwork import datasets, read_table
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("movielens")))
        datasets.get("movielens-100k")
        return read_table("movielens-100k", "interactions"), read_table("movielens-100k", "items")


@pytest.fixture(scope="session")
def recbole_split_2020(movielens):
    """RecBole's protocol split (seed 2020) of MovieLens-100K; read-only, shared by the model tests."""
    from mmwork.evaluation import recbole_split
    inter, items = movielens
    return recbole_split(inter, item_ids=items["item_id"], seed=2020)


@pytest.fixture(scope="session")
def fashion_idx_slice(tmp_path_factory) -> Path:
    """The real Fashion-MNIST idx files cut to their first 300 training and 200 test images: a source
    folder for ``mmwork.datasets.get("fashion-mnist", source=...)`` (the full 70,000 take about 15 s)."""
    package = debian_package_root("dataset-fashion-mnist", f"/{FASHION}/t10k-images-idx3-ubyte.gz") / FASHION
    source = tmp_path_factory.mktemp("fashion-idx")
    for prefix, n in [("train", 300), ("t10k", 200)]:
        with gzip.open(package / f"{prefix}-images-idx3-ubyte.gz") as f:
            pixels = f.read(16 + n * 784)[16:]
        with gzip.open(package / f"{prefix}-labels-idx1-ubyte.gz") as f:
            labels = f.read(8 + n)[8:]
        with gzip.open(source / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + pixels)
        with gzip.open(source / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels)
    return source
