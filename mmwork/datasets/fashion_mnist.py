"""Fashion-MNIST: 70,000 greyscale 28x28 Zalando article images in 10 classes (MIT licence).

Default source: Debian's ``dataset-fashion-mnist`` (used in place when installed, else fetched with
``apt-get download`` and unpacked with ``dpkg -x``). ``--source`` accepts a folder of the four idx
files (``train-images-idx3-ubyte.gz`` …, gzipped or not). Images are stored as PNG bytes in the
``image`` column, so the image extractors read them like any user's images.
"""
from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mmwork.datasets.sources import debian_package_root
from mmwork.datasets.spec import DatasetSpec
from mmwork.core.errors import MmworkError

PACKAGE = "dataset-fashion-mnist"
FOLDER = "usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {split: (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
         for split, prefix in [("train", "train"), ("test", "t10k")]}


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    return None


def fetch(source: Path | None, raw: Path) -> None:
    folder = source or debian_package_root(PACKAGE, f"/{FOLDER}/t10k-images-idx3-ubyte.gz") / FOLDER
    for images, labels in FILES.values():
        for stem in (images, labels):
            found = _find(folder, stem)
            if found is None:
                raise MmworkError(f"{folder} has no {stem}[.gz]; point --source at the folder of Fashion-MNIST idx files")
            shutil.copyfile(found, raw / found.name)


def read_idx(path: Path, offset: int) -> np.ndarray:
    """Read an idx file (gzipped or not); ``offset`` is 16 for images, 8 for labels."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def build(raw: Path) -> dict[str, pd.DataFrame]:
    frames = []
    for split, (images_stem, labels_stem) in FILES.items():
        images = read_idx(_find(raw, images_stem), 16).reshape(-1, 28, 28)
        labels = read_idx(_find(raw, labels_stem), 8)
        if len(images) != len(labels):
            raise MmworkError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels; the idx files do not match")
        frames.append(pd.DataFrame({
            "item_id": [f"{split}-{i:05d}" for i in range(len(images))],
            "image": [png_bytes(img) for img in images],
            "label": [CLASSES[l] for l in labels],
            "label_id": labels.astype("int8"),
            "split": split,
        }))
    return {"items": pd.concat(frames, ignore_index=True)}


SPEC = DatasetSpec(
    name="fashion-mnist",
    description="Fashion-MNIST: 70,000 28x28 greyscale article images (60k train, 10k test), 10 labelled classes",
    source=f"Debian package {PACKAGE} (/{FOLDER}), or a folder of idx files via --source",
    license="MIT (Zalando Research)",
    fetch=fetch, build=build,
    expected={"items": 70000},
)
