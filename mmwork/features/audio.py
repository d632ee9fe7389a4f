"""Audio features: decoding, and fixed-length MFCC / log-mel / spectral summary vectors.

Pure librosa-style functions over arrays. Every summary has a fixed length (see :func:`feature_dims`)
so it can be stored as a fixed-size ``list<float32>`` column; unreadable input raises
:class:`AudioDecodeError` and bad parameters raise ``ValueError`` (never swallowed).

>>> y = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
>>> {k: v.shape for k, v in audio_features(y, 8000).items()}
{'mfcc_stats': (120,), 'logmel_stats': (128,), 'spectral_stats': (10,)}
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from pydantic import ConfigDict, NonNegativeFloat, PositiveInt, ValidationInfo, field_validator

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError

#: Order of the 5 frame-wise descriptors in ``spectral_stats`` (their 5 means, then their 5 stds).
SPECTRAL_ORDER = ("centroid", "bandwidth", "rolloff", "zcr", "rms")


class AudioConfig(Config):
    """Parameters of the audio features.

    >>> AudioConfig(n_mfcc=13).n_mels
    64
    """

    model_config = ConfigDict(validate_default=True)  # so checks between fields see the defaults too

    sr: PositiveInt | None = None
    """Sample rate (Hz) every clip is resampled to, once; None keeps each clip's native rate."""
    n_mfcc: PositiveInt = 20
    """Number of MFCC coefficients."""
    n_mels: PositiveInt = 64
    """Number of mel bands (at least ``n_mfcc``)."""
    hop_length: PositiveInt = 256
    """Samples between the starts of successive frames."""
    n_fft: PositiveInt = 1024
    """FFT window length in samples (at least ``hop_length``)."""
    fmin: NonNegativeFloat = 0.0
    """Lowest mel-band frequency (Hz), below half the sample rate."""
    delta_width: PositiveInt = 9
    """Frames in the delta and delta-delta window (odd, >= 3); shrunk for clips with fewer frames."""
    keep_frames: bool = False
    """Also store the MFCC frame sequence (``mfcc_frames``, one row per frame)."""

    @field_validator("n_mels", "n_fft", "fmin", "delta_width")
    @classmethod
    def _consistent(cls, value, info: ValidationInfo):
        """Checks between fields; ``info.data`` holds the valid fields declared above this one."""
        field, seen = info.field_name, info.data
        if field == "n_mels" and value < seen.get("n_mfcc", 1):
            raise ValueError(f"must be >= n_mfcc={seen['n_mfcc']}")
        if field == "n_fft" and value < seen.get("hop_length", 1):
            raise ValueError(f"must be >= hop_length={seen['hop_length']}")
        if field == "fmin" and seen.get("sr") and value >= seen["sr"] / 2:
            raise ValueError(f"must be below sr/2={seen['sr'] / 2:g}")
        if field == "delta_width" and (value < 3 or value % 2 == 0):
            raise ValueError("must be odd and >= 3")
        return value


class AudioDecodeError(ValueError):
    """The input cannot be read as audio (missing, empty, zero-byte, corrupt, truncated, no samples)."""


def load_audio(source, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode a path (str/Path) or raw ``bytes`` into a float32 waveform and its sample rate.

    Decodes with soundfile (WAV/FLAC/OGG) at the native rate (``sr=None``); with ``sr`` given it
    resamples once with ``librosa.resample``. ``mono=True`` averages channels to shape ``(n,)``;
    ``mono=False`` returns ``(channels, n)``. Paths soundfile cannot read are retried with
    ``librosa.load`` (audioread); every failure raises :class:`AudioDecodeError`.

    >>> load_audio(b"")
    Traceback (most recent call last):
    mmwork.features.audio.AudioDecodeError: empty file: 0 bytes
    """
    import soundfile as sf

    if sr is not None and sr <= 0:
        raise ValueError(f"sr must be a positive sample rate or None, got {sr}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "<bytes>"
        if not data:
            raise AudioDecodeError("empty file: 0 bytes")
        fobj = io.BytesIO(data)
    else:
        fobj = where = Path(source)
        if not fobj.is_file():
            raise AudioDecodeError(f"no such file: {where}")
        if fobj.stat().st_size == 0:
            raise AudioDecodeError(f"empty file: {where} has 0 bytes")
    try:
        y, native_sr = sf.read(fobj, dtype="float32", always_2d=True)
        y = y.T  # (channels, n)
    except Exception as e:  # soundfile raises LibsndfileError (a RuntimeError), sometimes others
        reason = getattr(e, "error_string", None) or str(e)
        y, native_sr = _fallback_load(fobj, reason)
    if y.shape[-1] == 0:
        raise AudioDecodeError(f"not a valid audio file: {where} decodes to 0 samples")
    if not np.isfinite(y).all():
        raise AudioDecodeError(f"not a valid audio file: {where} contains NaN or infinite samples")
    import librosa

    if mono:
        y = librosa.to_mono(y)
    if sr is not None and sr != native_sr:
        y, native_sr = librosa.resample(y, orig_sr=native_sr, target_sr=sr), sr
    return np.ascontiguousarray(y, dtype=np.float32), int(native_sr)


def _fallback_load(fobj, reason: str) -> tuple[np.ndarray, int]:
    """Retry a path soundfile could not decode with librosa.load/audioread (bytes are not retried)."""
    if isinstance(fobj, Path):
        import librosa

        try:
            with warnings.catch_warnings():  # librosa warns "PySoundFile failed. Trying audioread instead."
                warnings.simplefilter("ignore")
                y, native_sr = librosa.load(fobj, sr=None, mono=False, dtype=np.float32)
            return np.atleast_2d(y), int(native_sr)
        except Exception:
            pass  # report soundfile's reason: it is the more informative one
    raise AudioDecodeError(f"not a valid audio file: {reason}") from None


def feature_dims(n_mfcc: int = 20, n_mels: int = 64) -> dict[str, int]:
    """Length of each summary vector returned by :func:`audio_features`.

    - ``mfcc_stats`` (6*n_mfcc): [mfcc_mean, d1_mean, d2_mean, mfcc_std, d1_std, d2_std], each n_mfcc long
      (d1/d2 = delta and delta-delta of the MFCCs).
    - ``logmel_stats`` (2*n_mels): [mean, std] over frames of the log-mel spectrogram in dB.
    - ``spectral_stats`` (10): means then stds of centroid, bandwidth, rolloff (Hz), zcr, rms (see SPECTRAL_ORDER).

    >>> feature_dims()
    {'mfcc_stats': 120, 'logmel_stats': 128, 'spectral_stats': 10}
    """
    return {"mfcc_stats": 6 * n_mfcc, "logmel_stats": 2 * n_mels, "spectral_stats": 2 * len(SPECTRAL_ORDER)}


def _deltas(mfcc: np.ndarray, delta_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Delta and delta-delta, with the window shrunk to the largest odd width that fits; zeros if < 3 frames."""
    import librosa

    n_frames = mfcc.shape[1]
    width = min(delta_width, n_frames if n_frames % 2 else n_frames - 1)
    if width < 3:
        return np.zeros_like(mfcc), np.zeros_like(mfcc)
    return librosa.feature.delta(mfcc, width=width, order=1), librosa.feature.delta(mfcc, width=width, order=2)


def audio_features(y: np.ndarray, sr: int, *, n_mfcc: int = 20, n_mels: int = 64, n_fft: int = 1024,
                   hop_length: int = 256, fmin: float = 0.0, delta_width: int = 9,
                   keep_frames: bool = False) -> dict[str, np.ndarray]:
    """Fixed-length float32 summaries of a mono waveform: ``mfcc_stats``, ``logmel_stats``, ``spectral_stats``.

    Sizes and orders are those of :func:`feature_dims`. Frames follow librosa's ``center=True``
    (zero padding of n_fft//2 at each end), so any clip of >= 1 sample has >= 1 frame; the delta window
    shrinks for clips shorter than ``delta_width`` frames. The MFCCs equal
    ``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=..., n_fft=..., hop_length=..., n_mels=..., fmin=...)``.
    With ``keep_frames=True`` the (n_mfcc, n_frames) MFCC matrix is added as ``mfcc_frames``.

    >>> out = audio_features(np.zeros(300, np.float32), 8000, keep_frames=True)
    >>> out["mfcc_frames"].shape, bool(np.isfinite(out["mfcc_stats"]).all())
    ((20, 2), True)
    """
    try:
        AudioConfig.make(sr=sr, n_mfcc=n_mfcc, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, fmin=fmin,
                         delta_width=delta_width)
    except MmworkError as exc:  # a pure function raises ValueError, like librosa's
        raise ValueError(str(exc)) from None
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be a non-empty 1-D (mono) waveform, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinite samples")
    import librosa
    import librosa.feature as lf

    # Same frames as stft(center=True, pad_mode="constant"), without its warning for clips shorter than n_fft.
    mag = np.abs(librosa.stft(np.pad(y, n_fft // 2), n_fft=n_fft, hop_length=hop_length, center=False))
    logmel = librosa.power_to_db(lf.melspectrogram(S=mag ** 2, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin))
    mfcc = lf.mfcc(S=logmel, n_mfcc=n_mfcc)
    d1, d2 = _deltas(mfcc, delta_width)
    frame = {"frame_length": n_fft, "hop_length": hop_length}
    spectral = np.vstack([
        lf.spectral_centroid(S=mag, sr=sr, n_fft=n_fft), lf.spectral_bandwidth(S=mag, sr=sr, n_fft=n_fft),
        lf.spectral_rolloff(S=mag, sr=sr, n_fft=n_fft), lf.zero_crossing_rate(y, **frame),
        lf.rms(y=y, **frame),  # time-domain RMS: a sine of amplitude A gives A/sqrt(2)
    ])
    out = {name: np.concatenate([m.mean(axis=1) for m in mats] + [m.std(axis=1) for m in mats]).astype(np.float32)
           for name, mats in [("mfcc_stats", (mfcc, d1, d2)), ("logmel_stats", (logmel,)),
                              ("spectral_stats", (spectral,))]}
    if keep_frames:
        out["mfcc_frames"] = mfcc.astype(np.float32)
    for name, vec in out.items():
        if not np.isfinite(vec).all():  # cannot happen for finite input of sane amplitude; never hide it
            raise ValueError(f"{name} has non-finite values (input amplitude too large for float32?)")
    return out


def warm_up() -> None:
    """Run :func:`audio_features` once on a short synthetic tone, so imports, filter banks and numba JIT
    are paid for before timing (and once in each Dask worker).

    >>> warm_up()
    """
    t = np.arange(4096, dtype=np.float32) / 8000
    audio_features(0.5 * np.sin(2 * np.pi * 440 * t), 8000, keep_frames=True)
