"""Speech out and in: the Piper voice (:mod:`~mmwork.models.speech.tts`) and Whisper tiny.en
(:mod:`~mmwork.models.speech.asr`), both loaded from ``mmwork models get piper-voice|whisper-tiny``.

>>> from mmwork.models.speech import Transcriber, Voice, write_wav
>>> waveform, sr = Voice.load().speak("Hello there.")          # doctest: +SKIP
>>> Transcriber.load().transcribe(waveform, sr)                 # doctest: +SKIP
'Hello there.'
"""
from mmwork.models.speech.asr import Transcriber, TranscriberConfig
from mmwork.models.speech.tts import Voice, VoiceConfig, write_wav

__all__ = ["Transcriber", "TranscriberConfig", "Voice", "VoiceConfig", "write_wav"]
