"""The item speaks: what was generated for a user is synthesised with the Piper voice into a WAV file,
transcribed back with Whisper (the round trip's word error rate says how intelligible it is), and run
through the catalogue's audio extractor, so a generated item carries text and sound features like a
catalogue item with both. Everything lands in one folder with a JSON manifest, whole or not at all.

What is spoken is the item's title followed by its pitch when there is one (the language model's
items), else the item text with its "Genres:" part read as words.

>>> from mmwork.apps.personalise.spoken import write_items
>>> frame = pd.DataFrame({"text": ["Harbour Lights (1998). Genres: Drama."],
...                       "pitch": ["A ferry captain finds a letter."]})               # doctest: +SKIP
>>> write_items(frame, "out/196", manifest={"user_id": "196"}, with_speech=True)    # doctest: +SKIP
PosixPath('out/196')
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.features.audio import audio_features
from mmwork.store.tables import swap_in_folder, write_json

NO_IMAGE = ("no image: this catalogue has no image column, and the cross-modal model generates images only "
            "for a multimodal catalogue (digits-av)")
"""Recorded in the manifest in place of an image (the issue's "where the catalogue has images")."""


def spoken_text(row) -> str:
    """What the voice reads for one item: its title, then its pitch if it has one.

    >>> spoken_text({"text": "Harbour Lights (1998) Genres: Drama|Romance", "pitch": "A ferry captain."})
    'Harbour Lights (1998). A ferry captain.'
    >>> spoken_text({"text": "Harbour Lights (1998). Genres: Drama, Romance."})
    'Harbour Lights (1998). Genres: Drama, Romance.'
    """
    text = str(row["text"]).strip()
    title, _, genres = text.partition(" Genres:")
    title = title.strip().rstrip(".")
    pitch = str(row.get("pitch") or "").strip()
    if pitch:
        return f"{title}. {pitch}"
    return f"{title}. Genres: {', '.join(g.strip(' .') for g in re.split('[|,]', genres) if g.strip(' .'))}." \
        if genres else text


def speak_items(frame: pd.DataFrame, *, voice=None, transcriber=None, seed: int = 0) -> pd.DataFrame:
    """Per item: the spoken text, the waveform and its rate, Whisper's transcript, the round trip's WER and
    the audio extractor's columns (``mfcc_stats``, ``logmel_stats``, ``spectral_stats``, as for catalogue
    sounds). ``voice``/``transcriber`` default to
    the fetched Piper voice and Whisper tiny.en."""
    from mmwork.evaluation.wer import word_error_rate
    from mmwork.models.speech import Transcriber, Voice
    if frame.empty:
        raise MmworkError("no items to speak (the generation produced none; see its skips)")
    voice = voice or Voice.load()
    transcriber = transcriber or Transcriber.load()
    rows = []
    for i, item in enumerate(frame.to_dict("records")):
        said = spoken_text(item)
        started = time.perf_counter()
        wave, sr = voice.speak(said, seed=seed + i)
        speak_s = time.perf_counter() - started
        started = time.perf_counter()
        heard = transcriber.transcribe(wave, sr)
        rows.append({"spoken": said, "waveform": wave, "sample_rate": sr, "seconds": len(wave) / sr,
                     "synthesis_rtf": speak_s / (len(wave) / sr),
                     "transcript": heard, "asr_rtf": (time.perf_counter() - started) / (len(wave) / sr),
                     "wer": word_error_rate(said, heard),
                     **audio_features(wave, sr)})
    return pd.DataFrame(rows, index=frame.index)


def _file_name(i: int, text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "item"
    return f"{i:02d}-{slug}"


def _plain(value):
    """A JSON-ready copy of a frame cell (numpy scalars and arrays, tuples)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def write_items(frame: pd.DataFrame, out: str | Path, *, manifest: dict, with_speech: bool = False,
                seed: int = 0, voice=None, transcriber=None) -> Path:
    """Write the items of ``frame`` (``text``, optional ``pitch`` and ``genres``) into the folder ``out``:
    ``NN-title.txt`` per item, with ``with_speech`` also ``NN-title.wav``, its transcript and WER, and
    ``audio_features.parquet`` (the extractor's columns per item), and ``manifest.json`` (``manifest`` plus
    one entry per item, the corpus WER and the
    image note). Built in a hidden sibling folder and swapped in: a failure leaves no partial folder."""
    from mmwork.evaluation.wer import word_error_rate
    from mmwork.models.speech.tts import write_wav
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        spoken = speak_items(frame, voice=voice, transcriber=transcriber, seed=seed) if with_speech else None
        entries = []
        for i, (index, item) in enumerate(frame.iterrows()):
            name = _file_name(i, item["text"])
            body = str(item["text"]) + (f"\n\n{item['pitch']}" if isinstance(item.get("pitch"), str) else "")
            (staging / f"{name}.txt").write_text(body + "\n")
            entry = {"text": item["text"], "file": f"{name}.txt", "image": None, "image_note": NO_IMAGE}
            entry |= {key: _plain(item[key]) for key in ("pitch", "genres", "in_catalogue") if key in item}
            if spoken is not None:
                said = spoken.loc[index]
                write_wav(staging / f"{name}.wav", said["waveform"], int(said["sample_rate"]))
                entry |= {"wav": f"{name}.wav", "spoken": said["spoken"], "seconds": round(float(said["seconds"]), 2),
                          "transcript": said["transcript"], "wer": round(float(said["wer"]), 4)}
            entries.append(entry)
        record = manifest | {"items": entries, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if spoken is not None:
            features = spoken[["mfcc_stats", "logmel_stats", "spectral_stats"]].assign(
                file=[e["wav"] for e in entries], text=list(frame["text"]))
            features.to_parquet(staging / "audio_features.parquet", index=False)
            record["speech"] = {"audio_features": "audio_features.parquet (mmwork.features.audio, as catalogue sounds)",
                                "voice": "Piper en_US-joe-medium", "recogniser": "Whisper tiny.en (CTranslate2)",
                                "round_trip_wer": word_error_rate(list(spoken["spoken"]), list(spoken["transcript"])),
                                "wer_normalisation": "lower case, punctuation removed (mmwork.evaluation.wer)"}
        write_json(staging / "manifest.json", record)
        swap_in_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
