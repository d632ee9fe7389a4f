"""Text to speech with the Piper voice ``en_US-joe-medium`` (``mmwork models get piper-voice``), run by
``piper-tts`` 1.8 on onnxruntime (CPU).

Piper phonemises the text with espeak-ng, splits it into sentences and runs the VITS network once
per sentence; each sentence is peak-normalised and the sentences are joined, as Piper's own
``synthesize_wav`` does. The network samples noise (``noise_scale``, ``noise_w``); onnxruntime seeds its
random operators when the session is built, so a voice loaded with a seed speaks the same audio for the
same sequence of calls, and ``speak(text, seed=s)`` rebuilds the session for audio that does not depend
on what was spoken before (it costs a session build, about 0.3 s).

>>> voice = Voice.load()                                         # doctest: +SKIP
>>> waveform, sr = voice.speak("Please leave a message after the tone.")   # doctest: +SKIP
>>> sr, waveform.dtype                                           # doctest: +SKIP
(22050, dtype('float32'))
>>> write_wav("pitch.wav", waveform, sr)                         # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path

import numpy as np
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.datasets import pretrained
from mmwork.store.disk import disk_errors

MAX_CHARS = 20_000
"""Longest text :meth:`Voice.speak` accepts (about 25 minutes of speech): a longer one is almost
certainly a mistake (a whole document passed by accident)."""


class VoiceConfig(Config):
    """How the Piper voice runs.

    >>> VoiceConfig().threads
    1
    """

    seed: NonNegativeInt = 0
    """Seed of onnxruntime's random operators, set when the session is built."""
    threads: PositiveInt = 1
    """onnxruntime intra-op threads. One: a sentence takes ~0.35 s on one core (real-time factor 0.07 at
    load 1, 0.27 at load 7 on 2 cores: benchmarks/results/speech_speed.json), and one thread keeps the
    timing steady next to other jobs on a shared machine."""
    length_scale: PositiveFloat | None = None
    """Phoneme duration multiplier (> 1 speaks slower); None keeps the voice's own (1.0)."""
    noise_scale: NonNegativeFloat | None = None
    """Generator noise (>= 0); None keeps the voice's own (0.667); 0 makes the output noise-free."""
    noise_w: NonNegativeFloat | None = None
    """Phoneme-duration noise (>= 0); None keeps the voice's own (0.8)."""


class Voice:
    """A loaded Piper voice; build it with :meth:`load`."""

    def __init__(self, folder: Path, config: VoiceConfig):
        self.folder, self.config = folder, config
        self.model_path = folder / pretrained.spec("piper-voice").main
        config_path = self.model_path.with_name(self.model_path.name + ".json")
        try:
            self._settings = json.loads(config_path.read_text(encoding="utf-8"))
            self.sample_rate = int(self._settings["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MmworkError(f"the Piper voice config {config_path} cannot be read ({exc}); run "
                              f"`mmwork models get piper-voice --force`") from None
        self._voice = self._build(config.seed)

    @classmethod
    def load(cls, config: VoiceConfig | dict | None = None, /, **params) -> "Voice":
        """The Piper voice from ``mmwork models get piper-voice``, checked by sha256; parameters as in
        :class:`VoiceConfig`. A voice not fetched, or a missing or corrupt file, is a one-line error."""
        config = VoiceConfig.make(config, **params)
        return cls(pretrained.path("piper-voice"), config)

    def _build(self, seed: int):
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.config.threads, 1
        onnxruntime.set_seed(seed)  # read by the random operators' kernels as the session builds them
        try:
            session = onnxruntime.InferenceSession(str(self.model_path), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            return PiperVoice(session=session, config=PiperConfig.from_dict(self._settings))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise MmworkError(f"the Piper voice {self.model_path} cannot be loaded ({first}); run "
                              f"`mmwork models get piper-voice --force`") from None

    def speak(self, text: str, *, seed: int | None = None) -> tuple[np.ndarray, int]:
        """``text`` spoken: a 1-D float32 waveform in [-1, 1] and its sample rate (22,050 Hz).

        With ``seed`` the session is rebuilt with that seed first, so the audio depends only on the
        text and the seed. Empty text, or text that yields no phonemes, is a one-line error.
        """
        from piper.config import SynthesisConfig

        if not isinstance(text, str):
            raise MmworkError(f"speak needs text (a str), got {type(text).__name__}")
        if not text.strip():
            raise MmworkError("speak got empty text: nothing to say")
        if len(text) > MAX_CHARS:
            raise MmworkError(f"speak got {len(text):,} characters (at most {MAX_CHARS:,}): split the text")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise MmworkError(f"seed must be an integer >= 0, got {seed!r}")
            self._voice = self._build(int(seed))
        c = self.config
        settings = SynthesisConfig(length_scale=c.length_scale, noise_scale=c.noise_scale, noise_w_scale=c.noise_w)
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, syn_config=settings)]
        if not chunks or sum(len(chunk) for chunk in chunks) == 0:
            raise MmworkError(f"the voice found nothing to say in {text[:60]!r} (no phonemes)")
        return np.concatenate(chunks).astype(np.float32, copy=False), self.sample_rate

    def __repr__(self) -> str:
        return f"Voice({self.model_path.name}, {self.sample_rate} Hz, seed={self.config.seed})"


def check_waveform(waveform, sample_rate, what: str = "waveform") -> np.ndarray:
    """``waveform`` as a contiguous 1-D float32 array, after one-line errors for anything that is not a
    non-empty, finite mono clip with a positive integer sample rate.

    >>> check_waveform([0.0, 0.5], 8000).dtype
    dtype('float32')
    >>> check_waveform(np.zeros((2, 8)), 8000)
    Traceback (most recent call last):
    mmwork.core.errors.MmworkError: waveform must be a 1-D (mono) array of samples, got shape (2, 8)
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise MmworkError(f"sample rate must be a positive integer (Hz), got {sample_rate!r}")
    try:
        array = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError):
        raise MmworkError(f"{what} must be an array of samples, got {type(waveform).__name__}") from None
    if array.ndim != 1:
        raise MmworkError(f"{what} must be a 1-D (mono) array of samples, got shape {array.shape}")
    if array.size == 0:
        raise MmworkError(f"{what} is empty (0 samples)")
    if not np.isfinite(array).all():
        raise MmworkError(f"{what} contains NaN or infinite samples")
    return np.ascontiguousarray(array)


def write_wav(path: str | Path, waveform, sample_rate: int) -> Path:
    """Write a mono float waveform as a 16-bit PCM WAV, atomically (a temporary sibling, then a rename):
    a reader sees the old file or the complete new one. Samples beyond [-1, 1] are clipped.

    >>> import tempfile; out = Path(tempfile.mkdtemp()) / "tone.wav"
    >>> write_wav(out, np.zeros(800, np.float32), 8000).stat().st_size > 1600
    True
    """
    import soundfile

    array = np.clip(check_waveform(waveform, sample_rate), -1.0, 1.0)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with disk_errors(path, 2 * array.size + 44, then="nothing partial was written"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(tmp, array, int(sample_rate), subtype="PCM_16", format="WAV")
            os.replace(tmp, path)
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
    return path
