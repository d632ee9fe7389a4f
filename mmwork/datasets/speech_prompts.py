"""Speech prompts: 568 real 8 kHz recordings of one speaker (Allison Smith) reading the Asterisk
voice prompts, each with its transcript and its category (the folder, e.g. ``digits``).

Default source: Debian's ``asterisk-core-sounds-en-wav`` (audio) and ``asterisk-core-sounds-en``
(transcripts, ``core-sounds-en.txt.gz``), CC-BY-SA-3.0. ``--source`` accepts a folder laid out like
``en_US_f_Allison/`` with a ``core-sounds-en.txt[.gz]`` transcript file inside it.
"""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import soundfile

from mmwork.datasets.sources import debian_package_root
from mmwork.datasets.spec import DatasetSpec
from mmwork.core.errors import MmworkError

AUDIO_PACKAGE, TEXT_PACKAGE = "asterisk-core-sounds-en-wav", "asterisk-core-sounds-en"
AUDIO_FOLDER = "usr/share/asterisk/sounds/en_US_f_Allison"
TRANSCRIPTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"


def fetch(source: Path | None, raw: Path) -> None:
    if source is None:
        audio = debian_package_root(AUDIO_PACKAGE, f"/{AUDIO_FOLDER}/digits/7.wav") / AUDIO_FOLDER
        transcripts = debian_package_root(TEXT_PACKAGE, f"/{TRANSCRIPTS}") / TRANSCRIPTS
    else:
        audio = source
        found = sorted(source.glob("core-sounds-en.txt*"))
        if not found:
            raise MmworkError(f"{source} has no core-sounds-en.txt[.gz] transcript file")
        transcripts = found[0]
    shutil.copytree(audio, raw / "audio", ignore=shutil.ignore_patterns("core-sounds-en.txt*"))
    shutil.copyfile(transcripts, raw / transcripts.name)


def read_transcripts(path: Path) -> dict[str, str]:
    """Parse lines like ``digits/7: seven`` (``;`` starts a comment)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        pairs = (line.split(":", 1) for line in handle if ":" in line and not line.startswith(";"))
        return {key.strip(): text.strip() for key, text in pairs}


def build(raw: Path) -> dict[str, pd.DataFrame]:
    transcripts = read_transcripts(next(raw.glob("core-sounds-en.txt*")))
    rows = []
    for path in sorted((raw / "audio").rglob("*.wav")):
        key = path.relative_to(raw / "audio").with_suffix("").as_posix()
        info = soundfile.info(path)
        rows.append({"item_id": key, "audio": str(path), "text": transcripts.get(key),
                     "category": key.split("/")[0] if "/" in key else "general",
                     "duration_s": float(info.duration), "sample_rate": int(info.samplerate)})
    if not rows:
        raise MmworkError(f"no .wav files under {raw / 'audio'}")
    return {"items": pd.DataFrame(rows)}


SPEC = DatasetSpec(
    name="speech-prompts",
    description="568 real 8 kHz speech recordings (one speaker) of the Asterisk voice prompts, with transcripts "
                "and category",
    source=f"Debian packages {AUDIO_PACKAGE} (/{AUDIO_FOLDER}) and {TEXT_PACKAGE} (/{TRANSCRIPTS})",
    license="CC-BY-SA-3.0 (Digium, Inc.; voice of Allison Smith)",
    fetch=fetch, build=build,
    expected={"items": 568},
)
