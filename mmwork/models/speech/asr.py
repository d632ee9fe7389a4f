"""Speech to text with Whisper tiny.en in CTranslate2 format (``mmwork models get whisper-tiny``).

A clip is resampled once to 16 kHz (``librosa.resample``, soxr high quality), cut into consecutive
30-second windows (Whisper's input; a word that straddles a cut may be lost or doubled), turned into
80 log-mel bands by transformers' ``WhisperFeatureExtractor`` and decoded by ``ctranslate2`` without
timestamps: beam search (``beam_size=5`` by default; ``beam_size=1`` is greedy). The windows of many
clips are decoded together in batches (:meth:`Transcriber.transcribe_many`). Decoding is deterministic.

>>> asr = Transcriber.load()                                     # doctest: +SKIP
>>> asr.transcribe(waveform, 8000)                               # doctest: +SKIP
'Seven.'
>>> asr.transcribe_many([(waveform, 8000), (other, 22050)])      # doctest: +SKIP
['Seven.', 'Please leave a message after the tone.']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import PositiveInt

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.datasets import pretrained
from mmwork.models.speech.tts import check_waveform

SAMPLE_RATE = 16_000
"""Whisper's input rate (Hz)."""
WINDOW_S = 30
"""Whisper's input window (seconds)."""
RATES = (1_000, 384_000)
"""Sample rates accepted (Hz): anything outside is almost certainly a mistake (kHz passed for Hz)."""


class TranscriberConfig(Config):
    """How Whisper decodes.

    >>> TranscriberConfig(beam_size=5).beam_size
    5
    """

    beam_size: PositiveInt = 5
    """1 = greedy. 5: the default of Whisper's command line and of faster-whisper; on CPU it costs about
    what greedy does (x1.02 time on 30 Asterisk prompts: the encoder's 30-second pass dominates);
    benchmarks/results/speech_speed.json gives both WERs."""
    max_new_tokens: PositiveInt = 224
    """Longest transcript of one 30-second window, in tokens (Whisper's own limit is 224)."""
    batch_size: PositiveInt = 8
    """Windows decoded together by :meth:`Transcriber.transcribe_many`."""
    threads: PositiveInt = 1
    """CTranslate2 intra-op threads. One, so timings stay steady next to other jobs on a shared machine."""
    compute_type: str = "float32"
    """CTranslate2 compute type: "float32" (the weights as shipped, in float16, widened) or "int8"
    (quantised on load: faster, slightly different words)."""


class Transcriber:
    """A loaded Whisper model; build it with :meth:`load`."""

    def __init__(self, folder: Path, config: TranscriberConfig):
        import ctranslate2
        from tokenizers import Tokenizer
        from transformers import WhisperFeatureExtractor

        self.folder, self.config = folder, config
        try:
            self._model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type=config.compute_type,
                                                     intra_threads=config.threads, inter_threads=1)
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except ValueError as exc:  # ctranslate2: an unknown compute type
            raise MmworkError(f"bad parameter for Transcriber: {str(exc).splitlines()[0][:200]}") from None
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise MmworkError(f"the Whisper model in {folder} cannot be loaded ({first}); run "
                              f"`mmwork models get whisper-tiny --force`") from None
        self._features = WhisperFeatureExtractor(feature_size=self._model.n_mels, sampling_rate=SAMPLE_RATE,
                                                 chunk_length=WINDOW_S)
        special = ["<|startoftranscript|>"]
        if self._model.is_multilingual:
            special += ["<|en|>", "<|transcribe|>"]
        self._prompt = [self._tokenizer.token_to_id(token) for token in special + ["<|notimestamps|>"]]
        if None in self._prompt:
            raise MmworkError(f"the Whisper tokenizer in {folder} lacks the special tokens; run "
                              f"`mmwork models get whisper-tiny --force`")

    @classmethod
    def load(cls, config: TranscriberConfig | dict | None = None, /, **params) -> "Transcriber":
        """Whisper tiny.en from ``mmwork models get whisper-tiny``, checked by sha256; parameters as in
        :class:`TranscriberConfig`. A model not fetched, or a missing or corrupt file, is a one-line error."""
        config = TranscriberConfig.make(config, **params)
        return cls(pretrained.path("whisper-tiny"), config)

    def transcribe(self, waveform, sample_rate: int) -> str:
        """The text spoken in one mono clip (any length; any rate, resampled to 16 kHz)."""
        return self.transcribe_many([(waveform, sample_rate)])[0]

    def transcribe_many(self, clips, sample_rate: int | None = None, *, progress: bool = False) -> list[str]:
        """Transcripts of many clips: ``clips`` is a list of ``(waveform, sample_rate)`` pairs, or of
        waveforms that share ``sample_rate``. Every clip is checked before any is decoded."""
        clips = list(clips)
        if not clips:
            raise MmworkError("transcribe_many got no clips")
        windows, owner = [], []
        for i, clip in enumerate(clips):
            if sample_rate is None:
                if not (isinstance(clip, tuple) and len(clip) == 2):
                    raise MmworkError(f"clip {i} must be a (waveform, sample_rate) pair, or pass sample_rate=")
                waveform, rate = clip
            else:
                waveform, rate = clip, sample_rate
            for window in self._windows(waveform, rate, f"clip {i}"):
                windows.append(window)
                owner.append(i)
        texts: list[list[str]] = [[] for _ in clips]
        size = self.config.batch_size
        batches = range(0, len(windows), size)
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc="whisper", unit="batch")
        for start in batches:
            for i, text in zip(owner[start:start + size], self._decode(windows[start:start + size])):
                texts[i].append(text)
        return [" ".join(t for t in parts if t) for parts in texts]

    def _windows(self, waveform, rate, what: str) -> list[np.ndarray]:
        array = check_waveform(waveform, rate, what)
        if not RATES[0] <= rate <= RATES[1]:
            raise MmworkError(f"{what}: sample rate {rate} Hz is outside {RATES[0]:,}-{RATES[1]:,} Hz; pass the "
                              f"rate in Hz")
        if rate != SAMPLE_RATE:
            import librosa

            array = librosa.resample(array, orig_sr=int(rate), target_sr=SAMPLE_RATE, res_type="soxr_hq")
        step = WINDOW_S * SAMPLE_RATE
        return [array[start:start + step] for start in range(0, len(array), step)]

    def _decode(self, windows: list[np.ndarray]) -> list[str]:
        import ctranslate2

        features = self._features(windows, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        results = self._model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(features, np.float32)),
                                       [self._prompt] * len(windows), beam_size=self.config.beam_size,
                                       max_length=self.config.max_new_tokens)
        return [self._tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]

    def __repr__(self) -> str:
        c = self.config
        return f"Transcriber(whisper-tiny, beam_size={c.beam_size}, {c.compute_type})"
