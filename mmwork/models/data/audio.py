"""Sound as generator input: fixed-length log-mel patches of the speech-prompts and instrument-samples
clips read from the store (``mmwork data get NAME`` builds it), and the mel transform both ways.

Forward (:func:`audio_to_patch`): the waveform, resampled once to ``mel.sr``, becomes a mel power
spectrogram (``librosa.feature.melspectrogram``: Hann window, ``center=True`` with zero padding,
power 2), then dB re power 1, then ``(dB - (ref_db - top_db)) / top_db`` clipped to [0, 1]: 1 is
``ref_db``, 0 is ``top_db`` below it (or quieter). Inverse (:func:`patches_to_audio`): the same
scale undone and dB turned back into POWER, then Griffin-Lim with the same sr, n_fft, hop_length,
n_mels, fmin and fmax (the DESIGN.md pitfall; ``mel_to_audio``'s steps with a faster, closer NNLS).
A fixed reference level (not each clip's maximum) keeps the scale absolute, so generated sound comes
out as loud as the training clips.

Patches (:func:`audio_clips`): each clip is decoded from the store, peak-normalised to 1, stripped of
leading and trailing silence quieter than ``trim_db`` below its peak, and cut into consecutive
segments of ``frames * hop_length`` samples (the last one kept, zero-padded at its end, if it is at
least half full; a clip shorter than half a segment gives one padded segment; at most
``max_patches`` per clip, the first ones). Each segment becomes one patch of ``frames`` frames.

The test split is a fixed share of the clips chosen by a hash of the ``item_id`` (never by patch),
so every patch of a clip lies on one side and the split does not move when the store is rebuilt.

>>> import numpy as np
>>> mel = MelParams()
>>> y = 0.5 * np.sin(2 * np.pi * 440 * np.arange(mel.segment) / mel.sr).astype(np.float32)
>>> patch = audio_to_patch(y, mel.sr, mel)
>>> patch.shape, bool(0 <= patch.min() and patch.max() <= 1)
((1, 64, 64), True)
>>> [len(a) for a in patches_to_audio(patch[None], mel)] == [mel.segment]   # doctest: +SKIP
True
>>> clips = audio_clips("speech-prompts", "test")          # doctest: +SKIP
>>> clips.patches.shape, clips.classes[:3]                 # doctest: +SKIP
(torch.Size([247, 1, 64, 64]), ['dictate', 'digits', 'followme'])
"""
from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import numpy as np
import torch
from pydantic import ConfigDict, NonNegativeFloat, PositiveFloat, PositiveInt, ValidationInfo, field_validator

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.store.tables import read_table

TEST_SHARE = 0.2
"""Share of each data set's clips in the test split (chosen by a hash of the item_id)."""


class MelParams(Config):
    """The log-mel patch format, the same both ways (analysis and Griffin-Lim resynthesis).

    >>> MelParams().segment, MelParams.for_dataset("instrument-samples").sr
    (8192, 22050)
    """

    model_config = ConfigDict(validate_default=True)

    sr: PositiveInt = 8000
    """Sample rate (Hz) every clip is resampled to."""
    n_fft: PositiveInt = 512
    """FFT window length in samples."""
    hop_length: PositiveInt = 128
    """Samples between successive frames (at most n_fft)."""
    n_mels: PositiveInt = 64
    """Mel bands: the patch's height."""
    fmin: NonNegativeFloat = 0.0
    """Lowest mel-band frequency (Hz)."""
    fmax: PositiveFloat | None = None
    """Highest mel-band frequency (Hz, at most sr/2); None = sr/2."""
    frames: PositiveInt = 64
    """Frames per patch: its width (a patch covers frames * hop_length samples)."""
    top_db: PositiveFloat = 80.0
    """Dynamic range kept: levels more than top_db below ref_db map to 0."""
    ref_db: float = 35.0
    """Level (dB re power 1, of peak-normalised audio) that maps to 1; louder bins are clipped."""
    trim_db: PositiveFloat = 60.0
    """Leading and trailing audio quieter than this many dB below a clip's peak is cut off."""

    @field_validator("hop_length", "fmax")
    @classmethod
    def _consistent(cls, value, info: ValidationInfo):
        seen = info.data
        if info.field_name == "hop_length" and "n_fft" in seen and value > seen["n_fft"]:
            raise ValueError(f"must be at most n_fft={seen['n_fft']}")
        if info.field_name == "fmax" and value is not None:
            if "sr" in seen and value > seen["sr"] / 2:
                raise ValueError(f"must be at most sr/2={seen['sr'] / 2:g}")
            if value <= seen.get("fmin", 0):
                raise ValueError(f"must be above fmin={seen['fmin']:g}")
        return value

    @property
    def segment(self) -> int:
        """Samples per patch: frames * hop_length."""
        return self.frames * self.hop_length

    @property
    def mel_kwargs(self) -> dict:
        """The mel filter bank's parameters, for librosa, identical in both directions."""
        return {"sr": self.sr, "n_fft": self.n_fft, "n_mels": self.n_mels, "fmin": self.fmin,
                "fmax": self.fmax if self.fmax is not None else self.sr / 2}

    @classmethod
    def for_dataset(cls, dataset: str) -> "MelParams":
        """The default patch format of a data set: speech at 8 kHz (its native rate; a patch is 1.02 s),
        instruments resampled from 44.1 to 22.05 kHz (n_fft 1024, hop 256; a patch is 0.74 s)."""
        if dataset not in DATASETS:
            raise MmworkError(f"no audio patches for data set {dataset!r}; choose one of {', '.join(DATASETS)}")
        return cls(**DATASETS[dataset][1])


# data set -> (its category column, its default MelParams fields)
DATASETS = {"speech-prompts": ("category", {}),
            "instrument-samples": ("label", {"sr": 22050, "n_fft": 1024, "hop_length": 256})}


class LabelledPatches(NamedTuple):
    patches: torch.Tensor
    """(N, 1, n_mels, frames) float32 in [0, 1] (see :func:`audio_to_patch`)."""
    labels: torch.Tensor
    """(N,) int64 category index of each patch."""
    classes: list[str]
    """Category names by index (sorted; the same for every split of a data set)."""
    mel: MelParams
    """The patch format."""
    item_ids: list[str]
    """The clip each patch was cut from (a clip may give several patches)."""
    audio: list[np.ndarray]
    """Each patch's real segment: float32 mono at ``mel.sr``, ``mel.segment`` samples (the reference
    for metrics)."""


def is_test_item(item_id: str, share: float = TEST_SHARE, salt: str = "") -> bool:
    """Whether a clip belongs to the test split: the first 8 bytes of SHA-1(salt + item_id) as a
    fraction in [0, 1), below ``share`` (another ``salt`` draws an independent split).

    >>> is_test_item("digits/1"), is_test_item("digits/7")
    (True, False)
    """
    digest = hashlib.sha1((salt + item_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def hold_out(clips: LabelledPatches, share: float = 0.15) -> tuple[LabelledPatches, LabelledPatches]:
    """``clips`` split by clip (never by patch) into (kept, held out), the held-out share chosen by
    another hash of the item_id than the test split's: validation data for early stopping.

    >>> kept, valid = hold_out(audio_clips("speech-prompts", "train"))    # doctest: +SKIP
    """
    if not 0 < share < 1:
        raise MmworkError(f"share must lie strictly between 0 and 1, got {share!r}")
    held = np.array([is_test_item(i, share, salt="valid:") for i in clips.item_ids], dtype=bool)
    if held.all() or not held.any():
        raise MmworkError(f"holding out {share:g} of {len(set(clips.item_ids))} clips leaves one side empty; "
                          "use more clips or another share")
    return _select(clips, ~held), _select(clips, held)


def _select(clips: LabelledPatches, mask: np.ndarray) -> LabelledPatches:
    index = np.flatnonzero(mask)
    return LabelledPatches(clips.patches[torch.from_numpy(index)], clips.labels[torch.from_numpy(index)],
                           clips.classes, clips.mel, [clips.item_ids[i] for i in index],
                           [clips.audio[i] for i in index])


def audio_clips(dataset: str, split: str = "train", limit: int | None = None, mel: MelParams | None = None,
                max_patches: int = 8) -> LabelledPatches:
    """Patches of the ``"train"``, ``"test"`` or ``"all"`` clips of ``"speech-prompts"`` or
    ``"instrument-samples"`` (the first ``limit`` clips of the split, in store order, if given),
    decoded from the store's items table; ``mel`` defaults to :meth:`MelParams.for_dataset`."""
    if dataset not in DATASETS:
        raise MmworkError(f"no audio patches for data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test", "all"):
        raise MmworkError(f"split must be 'train', 'test' or 'all', not {split!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise MmworkError(f"limit must be a positive integer or None, got {limit!r}")
    if not isinstance(max_patches, int) or max_patches < 1:
        raise MmworkError(f"max_patches must be a positive integer, got {max_patches!r}")
    mel = mel if mel is not None else MelParams.for_dataset(dataset)
    column = DATASETS[dataset][0]
    frame = read_table(dataset, "items", columns=["item_id", "audio", column])
    classes = sorted(frame[column].dropna().unique().tolist())
    if split != "all":
        frame = frame[frame["item_id"].map(is_test_item) == (split == "test")]
    frame = frame.iloc[:limit]
    if frame.empty:
        raise MmworkError(f"the {dataset} {split} split holds no clips; rebuild it with "
                          f"`mmwork data get {dataset} --force`")
    from mmwork.features.audio import load_audio
    patches, labels, item_ids, audio = [], [], [], []
    for item_id, source, category in frame.itertuples(index=False):
        if source is None or category is None:
            raise MmworkError(f"{dataset} item {item_id!r} has no audio or no {column}; rebuild the store with "
                              f"`mmwork data get {dataset} --force`")
        y, _ = load_audio(source if isinstance(source, bytes) else str(source), sr=mel.sr)
        for segment in clip_segments(y, mel, max_patches):
            patches.append(audio_to_patch(segment, mel.sr, mel))
            labels.append(classes.index(category))
            item_ids.append(item_id)
            audio.append(segment)
    return LabelledPatches(torch.from_numpy(np.stack(patches)), torch.tensor(labels, dtype=torch.int64), classes,
                           mel, item_ids, audio)


def clip_segments(y: np.ndarray, mel: MelParams, max_patches: int = 8) -> list[np.ndarray]:
    """A clip (mono, at ``mel.sr``) peak-normalised, trimmed and cut into ``mel.segment``-sample
    segments as the module docstring says.

    >>> mel = MelParams()
    >>> [len(s) for s in clip_segments(np.ones(20000, np.float32), mel)]   # 2.44 segments long
    [8192, 8192]
    """
    import librosa
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > 0:
        y, _ = librosa.effects.trim(y / peak, top_db=mel.trim_db, frame_length=mel.n_fft, hop_length=mel.hop_length)
    length = mel.segment
    count = min(max_patches, max(1, math.floor(len(y) / length + 0.5)))
    y = np.pad(y, (0, max(0, count * length - len(y))))
    return [np.ascontiguousarray(y[i * length:(i + 1) * length]) for i in range(count)]


def audio_to_patch(y: np.ndarray, sr: int, mel: MelParams) -> np.ndarray:
    """One waveform as a (1, n_mels, frames) float32 patch in [0, 1]: resampled to ``mel.sr``, its
    first ``frames`` frames (zero-padded at the end if shorter). Not normalised: pass peak-normalised
    audio (as :func:`clip_segments` gives) for the scale the models learn."""
    import librosa
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0 or not np.isfinite(y).all():
        raise MmworkError(f"audio must be a non-empty, finite 1-D (mono) waveform, got shape {y.shape}")
    if sr != mel.sr:
        y = librosa.resample(y, orig_sr=sr, target_sr=mel.sr)
    y = np.pad(y, (0, max(0, mel.segment - len(y))))[:mel.segment]
    power = librosa.feature.melspectrogram(y=y, hop_length=mel.hop_length, center=True, pad_mode="constant",
                                           power=2.0, **mel.mel_kwargs)[:, :mel.frames]
    db = 10 * np.log10(np.maximum(power, 1e-10))
    return np.clip((db - mel.ref_db + mel.top_db) / mel.top_db, 0, 1).astype(np.float32)[None]


def patch_to_power(patches, mel: MelParams) -> np.ndarray:
    """The mel POWER spectrograms (N, n_mels, frames), float64, that patches in [0, 1] stand for."""
    x = _patches(patches, mel)[:, 0].astype(np.float64)
    return 10.0 ** ((np.clip(x, 0, 1) * mel.top_db + mel.ref_db - mel.top_db) / 10)


def mel_to_power(bank: np.ndarray, mel: np.ndarray, steps: int) -> np.ndarray:
    """The non-negative linear-frequency power x with ``bank @ x`` ~ ``mel`` for mel power (N, n_mels, T):
    ``steps`` multiplicative updates (Lee & Seung, 2001) from librosa's clipped pseudo-inverse start; each
    step keeps x >= 0 and does not raise the residual. Returns (N, 1 + n_fft // 2, T).

    >>> bank = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])
    >>> x = mel_to_power(bank, (bank @ np.array([[1.0], [2.0], [3.0]]))[None], 200)
    >>> bool(np.allclose(bank @ x[0], [[2.0], [4.0]], rtol=1e-3) and (x >= 0).all())
    True
    """
    m = np.moveaxis(mel, 1, 0).reshape(bank.shape[0], -1)  # every frame of every clip as one column
    x = np.maximum(np.linalg.pinv(bank) @ m, 1e-12 * m.max(initial=0.0))
    target = bank.T @ m
    for _ in range(steps):
        x *= target / (bank.T @ (bank @ x) + 1e-30)
    return np.moveaxis(x.reshape(bank.shape[1], mel.shape[0], mel.shape[2]), 0, 1)


def patches_to_audio(patches, mel: MelParams, n_iter: int = 32, seed: int = 0,
                     nnls_iter: int = 100) -> list[np.ndarray]:
    """Waveforms (float32 at ``mel.sr``, ``mel.segment`` samples each) for patches (N, 1, n_mels,
    frames): dB back to power, the linear-frequency power spectrum under it by non-negative least
    squares, its square root as magnitude, then ``librosa.griffinlim`` (``n_iter`` iterations, the
    random initial phase from ``seed`` rather than numpy's global generator).

    These are ``librosa.feature.inverse.mel_to_audio``'s two steps with the same filter bank, except
    for the NNLS solver: librosa's (L-BFGS-B over a whole block) stopped at its clipped pseudo-inverse
    start on these patches (relative mel residual 0.12, Griffin-Lim round-trip MCD 45 dB on speech)
    and took 0.5 to 7 s per patch on one core; ``nnls_iter`` multiplicative updates (Lee & Seung,
    2001) from the same start reach a residual of 0.008 (MCD 25 dB) in about 0.05 s.
    """
    import librosa
    for name, value in (("n_iter", n_iter), ("nnls_iter", nnls_iter)):
        if not isinstance(value, int) or value < 0 or (name == "n_iter" and value == 0):
            raise MmworkError(f"{name} must be a positive integer, got {value!r}")
    power = patch_to_power(patches, mel)
    bank = librosa.filters.mel(**mel.mel_kwargs).astype(np.float64)  # (n_mels, 1 + n_fft // 2), non-negative
    out = []
    for spectrum in mel_to_power(bank, power, nnls_iter):
        magnitude = np.sqrt(spectrum)
        # a segment has frames + 1 centred frames, the patch keeps the first frames: repeat the last one
        magnitude = np.concatenate([magnitude, magnitude[:, -1:]], axis=1)
        y = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=mel.hop_length, n_fft=mel.n_fft, center=True,
                               pad_mode="constant", length=mel.segment, random_state=seed)
        out.append(y.astype(np.float32))
    return out


def _patches(patches, mel: MelParams) -> np.ndarray:
    if hasattr(patches, "detach"):
        patches = patches.detach().cpu().numpy()
    x = np.asarray(patches)
    shape = (1, mel.n_mels, mel.frames)
    if x.ndim != 4 or x.shape[1:] != shape:
        raise MmworkError(f"patches must have shape (N, {', '.join(map(str, shape))}) for these mel parameters, "
                          f"got {x.shape}")
    if not np.isfinite(x).all():
        raise MmworkError("patches hold NaN or infinite values")
    return x
