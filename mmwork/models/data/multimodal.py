"""Several modalities of the same rows as a dict of tensors keyed by modality name (as in MultiVae), with
what each one is (:class:`ModalitySpec`), and the ``digits-av`` pairing that cross-modal models train on.

:func:`digits_av` pairs the pools of the ``digits-av`` store table (``mmwork data get digits-av``) by class:
each image of the split gets a random audio clip and a random word of the same class AND the same split
(seeded), so nothing of a test row was seen in training. Arrays:

- ``image`` (N, 1, 28, 28) float32 in [0, 1];
- ``audio`` (N, 16, 13) float32: the clip's first 16 MFCC frames (0.51 s; 57% of FSDD clips are longer
  and lose their tail), shorter clips padded with a quiet flat-spectrum frame (c0 at the training
  pool's 1st percentile, c1..c12 = 0), then standardised per coefficient with the TRAINING pool's mean
  and std, kept in the spec (``spec.mean``, ``spec.std``) so :func:`mfcc_to_waveform` can undo them;
- ``text`` (N, 12) int64 character ids: 0 pads, 1 is a character outside the TRAINING pool's alphabet.

>>> data = digits_av("train", n=64)                                   # doctest: +SKIP
>>> {k: tuple(v.shape) for k, v in data.arrays.items()}               # doctest: +SKIP
{'image': (64, 1, 28, 28), 'audio': (64, 16, 13), 'text': (64, 12)}
>>> decode_text(encode_text(["seven"], data.specs["text"]), data.specs["text"])   # doctest: +SKIP
['seven']
>>> wave = mfcc_to_waveform(data.arrays["audio"][0], data.specs["audio"])          # doctest: +SKIP
>>> wave.shape, data.specs["audio"].params["sr"]                                   # doctest: +SKIP
((3840,), 8000)
"""
from __future__ import annotations

import functools
import io
import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import model_validator

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.datasets.digits_av import MFCC_PARAMS, N_MFCC, NAME, SPLITS
from mmwork.models.data.audio import mel_to_power
from mmwork.store.tables import read_table, table_path

AUDIO_FRAMES = 16
"""Frames per audio row (0.51 s at hop 256 / 8 kHz): the contract's fixed length; median FSDD clip is 18."""
TEXT_LENGTH = 12
"""Characters per text row; the longest digit word is 9 ("четвертый", "quatrième"); longer input is cut."""
PAD, UNK = 0, 1
SPECIALS = ("<pad>", "<unk>")
UNKNOWN_CHAR = "\ufffd"
"""What :func:`decode_text` writes for the unknown id."""
_DIMS = {"image": 3, "sequence": 2, "tokens": 1, "vector": 1}


class ModalitySpec(Config):
    """What one modality's arrays are; stored as a plain dict (``model_dump()``) in model configs.

    >>> ModalitySpec(kind="tokens", shape=(12,), vocab=["<pad>", "<unk>", "a"]).shape
    (12,)
    """

    kind: Literal["image", "sequence", "tokens", "vector"]
    """image (C,H,W) in [0,1]; sequence (T,D) real frames; tokens (L,) ids into vocab; vector (D,)."""
    shape: tuple[int, ...]
    """One row's shape (without the batch dimension)."""
    vocab: list[str] | None = None
    """For tokens: the symbol of each id (0 = padding, 1 = unknown); else None."""
    mean: list[float] | None = None
    """Per-feature mean subtracted before scaling (training statistics), to undo it; None if not scaled."""
    std: list[float] | None = None
    """Per-feature scale divided by (training statistics), to undo it."""
    params: dict[str, float | int | str] | None = None
    """How the features were made (e.g. the MFCC settings), for inverting them."""

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.shape) != _DIMS[self.kind] or min(self.shape) < 1:
            raise ValueError(f"a {self.kind} modality has {_DIMS[self.kind]} positive dimensions, not {self.shape}")
        if (self.kind == "tokens") != (self.vocab is not None):
            raise ValueError("tokens need a vocab, and only tokens have one")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give mean and std together")
        return self


@dataclass
class MultimodalData:
    """N rows of several modalities; row i of every array belongs together (and has ``labels[i]``)."""

    arrays: dict[str, torch.Tensor]
    """Modality name -> (N, *spec.shape) tensor."""
    labels: torch.Tensor | None
    """(N,) int64 class of each row, or None."""
    specs: dict[str, ModalitySpec]
    ids: dict[str, list[str]]
    """Modality name -> the pool item_id each row came from."""
    classes: list[str]
    dataset: str

    def __post_init__(self):
        if not self.arrays:
            raise MmworkError("a MultimodalData needs at least one modality")
        if set(self.arrays) != set(self.specs):
            raise MmworkError(f"arrays {sorted(self.arrays)} and specs {sorted(self.specs)} name other modalities")
        sizes = {name: len(array) for name, array in self.arrays.items()}
        if len(set(sizes.values())) > 1 or (self.labels is not None and len(self.labels) != len(self)):
            raise MmworkError(f"modalities have different row counts {sizes}"
                              + ("" if self.labels is None else f" (labels {len(self.labels)})"))
        for name, array in self.arrays.items():
            if tuple(array.shape[1:]) != tuple(self.specs[name].shape):
                raise MmworkError(f"{name}: rows of shape {tuple(array.shape[1:])}, its spec says "
                                  f"{tuple(self.specs[name].shape)}")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def subset(self, names) -> "MultimodalData":
        """The same rows with only the modalities ``names`` (a name or a list of them)."""
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise MmworkError(f"an empty subset of modalities; choose from {sorted(self.arrays)}")
        unknown = [n for n in names if n not in self.arrays]
        if unknown:
            raise MmworkError(f"unknown modality {unknown[0]!r}; this data has {sorted(self.arrays)}")
        return replace(self, arrays={n: self.arrays[n] for n in names}, specs={n: self.specs[n] for n in names},
                       ids={n: self.ids[n] for n in names if n in self.ids})

    def take(self, n: int) -> "MultimodalData":
        """The first ``n`` rows (all if fewer)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise MmworkError(f"take(n) needs a positive whole number of rows, not {n!r}")
        return replace(self, arrays={k: v[:n] for k, v in self.arrays.items()},
                       labels=None if self.labels is None else self.labels[:n],
                       ids={k: v[:n] for k, v in self.ids.items()})


@functools.lru_cache(maxsize=2)
def _items(path: str, mtime_ns: int):
    return read_table(path)


def _pools():
    path = table_path(NAME, "items")
    if not path.exists():
        raise MmworkError(f"the {NAME} data set has not been fetched here; run `mmwork data get {NAME}`")
    return _items(str(path), path.stat().st_mtime_ns)


def digits_av(split: str, *, seed: int = 0, n: int | None = None, frames: int = AUDIO_FRAMES) -> MultimodalData:
    """The ``split`` images of ``digits-av`` in a seeded order (the first ``n`` if given), each paired with
    a random audio clip and word of its class from the same split; specs carry training statistics."""
    if split not in SPLITS:
        raise MmworkError(f"digits-av has the splits {', '.join(SPLITS)}, not {split!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise MmworkError(f"n must be a positive whole number of rows or None, not {n!r}")
    if not isinstance(frames, (int, np.integer)) or frames < 1:
        raise MmworkError(f"frames must be a positive whole number, not {frames!r}")
    items = _pools()
    pool = {m: items[items["modality"] == m] for m in ("image", "audio", "text")}
    specs = {"image": ModalitySpec(kind="image", shape=(1, 28, 28)),
             "audio": audio_spec(pool["audio"], frames), "text": text_spec(pool["text"])}
    rng = np.random.default_rng(seed)
    images = pool["image"][pool["image"]["split"] == split]
    images = images.iloc[rng.permutation(len(images))[:n]]
    labels = images["label"].to_numpy().astype(np.int64)
    chosen = {m: _same_class(pool[m][pool[m]["split"] == split], labels, rng) for m in ("audio", "text")}
    arrays = {"image": torch.from_numpy(np.stack([_pixels(png) for png in images["image"]])[:, None]),
              "audio": torch.from_numpy(_audio_rows(chosen["audio"], specs["audio"])),
              "text": encode_text(chosen["text"]["text"].tolist(), specs["text"])}
    ids = {"image": images["item_id"].tolist()} | {m: chosen[m]["item_id"].tolist() for m in chosen}
    return MultimodalData(arrays=arrays, labels=torch.from_numpy(labels), specs=specs, ids=ids,
                          classes=[str(d) for d in range(10)], dataset=NAME)


def _same_class(pool, labels: np.ndarray, rng: np.random.Generator):
    rows = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(pool["label"].to_numpy() == label)
        if not len(where):
            raise MmworkError(f"the pool has no sample of class {label} in this split; rebuild digits-av")
        mask = labels == label
        rows[mask] = where[rng.integers(len(where), size=int(mask.sum()))]
    return pool.iloc[rows]


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def audio_spec(audio, frames: int = AUDIO_FRAMES) -> ModalitySpec:
    """The audio spec: mean/std per coefficient over every frame of the TRAINING clips, the pad frame."""
    train = np.concatenate([np.asarray(m, np.float32).reshape(-1, N_MFCC)
                            for m in audio.loc[audio["split"] == "train", "mfcc"]]).astype(np.float64)
    pad = [float(np.percentile(train[:, 0], 1))] + [0.0] * (N_MFCC - 1)
    return ModalitySpec(kind="sequence", shape=(frames, N_MFCC), mean=train.mean(0).tolist(),
                        std=train.std(0).tolist(), params=MFCC_PARAMS | {"frames": frames, "pad_c0": pad[0]})


def _audio_rows(chosen, spec: ModalitySpec) -> np.ndarray:
    frames = spec.shape[0]
    out = np.zeros((len(chosen), frames, N_MFCC), dtype=np.float32)
    out[:, :, 0] = spec.params["pad_c0"]
    for i, flat in enumerate(chosen["mfcc"]):
        clip = np.asarray(flat, np.float32).reshape(-1, N_MFCC)[:frames]
        out[i, : len(clip)] = clip
    return standardise(out, spec)


def standardise(frames, spec: ModalitySpec) -> np.ndarray:
    """Raw features -> the model's scale (``(x - mean) / std``)."""
    return ((np.asarray(frames, np.float64) - spec.mean) / spec.std).astype(np.float32)


def unstandardise(frames, spec: ModalitySpec) -> np.ndarray:
    """The model's scale -> raw features (``x * std + mean``)."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    return (np.asarray(frames, np.float64) * spec.std + spec.mean).astype(np.float32)


def normalise_text(text: str) -> str:
    """How every string is compared: NFC, stripped, lower-case (as the data set stores its words)."""
    return unicodedata.normalize("NFC", str(text)).strip().lower()


def text_spec(text, length: int = TEXT_LENGTH) -> ModalitySpec:
    """Character vocabulary of the TRAINING words (after the two specials), in code-point order."""
    chars = sorted({c for word in text.loc[text["split"] == "train", "text"] for c in normalise_text(word)})
    return ModalitySpec(kind="tokens", shape=(length,), vocab=list(SPECIALS) + chars)


def encode_text(strings, spec: ModalitySpec) -> torch.Tensor:
    """(N, L) int64 character ids of ``strings`` (one string or a list): normalised, characters outside the
    vocabulary as the unknown id, cut to L, padded with 0. A string without one known character is an error.

    >>> spec = ModalitySpec(kind="tokens", shape=(6,), vocab=["<pad>", "<unk>", "e", "n", "s", "v"])
    >>> encode_text("Seven", spec).tolist()
    [[4, 2, 5, 2, 3, 0]]
    """
    if spec.kind != "tokens":
        raise MmworkError(f"encode_text needs a tokens spec, not a {spec.kind} one")
    strings = [strings] if isinstance(strings, str) else list(strings)
    index = {c: i for i, c in enumerate(spec.vocab) if i >= len(SPECIALS)}
    out = torch.zeros((len(strings), spec.shape[0]), dtype=torch.long)
    for row, text in enumerate(strings):
        ids = [index.get(c, UNK) for c in normalise_text(text)][: spec.shape[0]]
        if not any(i != UNK for i in ids):
            known = "".join(spec.vocab[len(SPECIALS):])
            raise MmworkError(f"the text {text!r} has no known characters; this model knows {known!r}")
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def decode_text(ids, spec: ModalitySpec) -> list[str]:
    """Strings of (N, L) (or (L,)) character ids, each up to its first padding id; unknown ids as U+FFFD."""
    if spec.kind != "tokens":
        raise MmworkError(f"decode_text needs a tokens spec, not a {spec.kind} one")
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.is_floating_point():
        raise MmworkError(f"decode_text takes (N, L) integer ids, not a {tuple(ids.shape)} {ids.dtype} tensor")
    if len(ids) and (ids.min() < 0 or ids.max() >= len(spec.vocab)):
        raise MmworkError(f"ids outside the vocabulary 0..{len(spec.vocab) - 1}")
    symbols = [""] + [UNKNOWN_CHAR] + spec.vocab[len(SPECIALS):]
    words = []
    for row in ids.tolist():
        row = row[: row.index(PAD)] if PAD in row else row
        words.append("".join(symbols[i] for i in row))
    return words


def mfcc_to_waveform(frames, spec: ModalitySpec, n_iter: int = 32, seed: int = 0,
                     nnls_iter: int = 100) -> np.ndarray:
    """A playable 8 kHz waveform of standardised MFCC frames (T, 13), or (N, T, 13) -> (N, samples).

    The steps of ``librosa.feature.inverse.mfcc_to_audio`` with the forward settings (spec.params: sr 8000,
    n_fft 1024, hop 256, 128 mels, power 2, dB re 1): inverse DCT to a 128-band log-mel envelope, dB to power,
    non-negative least squares to an STFT power (``nnls_iter`` multiplicative updates, as
    :func:`mmwork.models.data.audio.patches_to_audio` does, since librosa's L-BFGS-B solver is slow and stops
    early), then Griffin-Lim (``n_iter``, seeded initial phase, so the result is deterministic).
    Length: (T - 1) * 256 samples (0.48 s for 16 frames). Cost: about 0.05 s a clip on one core (64 in
    3.4 s at load 7), plus a one-off ~5 s the first time librosa's Griffin-Lim runs in a process.

    Round trip, measured: librosa.feature.mfcc of the waveform against the frames it came from differs by
    3.0 (c1..c12) and 9.7 (c0) on average over 64 test clips (on 8 of them 2.7 and 6.1, where librosa's own
    mfcc_to_audio gives 2.8 and 6.2): the envelope survives, up to the limits below.

    Limits: 13 of 128 cepstral coefficients keep only the smooth spectral envelope (formants, loudness):
    the harmonic fine structure, hence pitch and voicing, is gone, and the phase is guessed, so the result
    is a whispery, noisy rendering of the word, intelligible at best, never the speaker's voice. The
    forward 80 dB floor, the 4 kHz band of 8 kHz audio and the 16-frame crop are lost as well. FSDD's
    waveforms are not in the wheel, so the round trip of a real clip cannot be heard against the original.
    """
    import librosa

    if spec.kind != "sequence" or not spec.params or spec.params.get("n_mfcc") != N_MFCC or spec.mean is None:
        raise MmworkError("mfcc_to_waveform needs the audio spec of digits_av (MFCC settings and statistics)")
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim not in (2, 3) or frames.shape[-1] != N_MFCC or frames.shape[-2] < 2:
        raise MmworkError(f"mfcc_to_waveform takes (T, {N_MFCC}) or (N, T, {N_MFCC}) frames with T >= 2, "
                          f"not {frames.shape}")
    if not np.isfinite(frames).all():
        raise MmworkError("mfcc_to_waveform got non-finite MFCC values")
    raw = unstandardise(frames, spec)
    p = spec.params
    mfcc = np.swapaxes(raw, -1, -2).astype(np.float64)  # librosa wants (..., n_mfcc, frames)
    mel = librosa.feature.inverse.mfcc_to_mel(mfcc, n_mels=int(p["n_mels"]), dct_type=2, norm="ortho", ref=1.0)
    bank = librosa.filters.mel(sr=int(p["sr"]), n_fft=int(p["n_fft"]), n_mels=int(p["n_mels"])).astype(np.float64)
    power = mel_to_power(bank, mel.reshape(-1, *mel.shape[-2:]), nnls_iter).reshape(*mel.shape[:-2], -1, mel.shape[-1])
    wave = librosa.griffinlim(power ** (1.0 / float(p["power"])), n_iter=n_iter,
                              hop_length=int(p["hop_length"]), n_fft=int(p["n_fft"]), random_state=seed)
    return np.nan_to_num(wave).astype(np.float32)
