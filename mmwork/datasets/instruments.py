"""Instrument samples: the FLAC clips shipped with Sonic Pi, labelled by their file prefix
(``ambi_``, ``bass_``, ``drum_``, ``tabla_`` …).

Default source: Debian's ``sonic-pi-samples`` (mostly CC0). ``--source`` accepts any folder of
``PREFIX_name.flac`` files.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import soundfile

from mmwork.datasets.sources import debian_package_root
from mmwork.datasets.spec import DatasetSpec
from mmwork.core.errors import MmworkError

PACKAGE = "sonic-pi-samples"
FOLDER = "usr/share/sonic-pi/samples"


def fetch(source: Path | None, raw: Path) -> None:
    folder = source or debian_package_root(PACKAGE, f"/{FOLDER}/ambi_choir.flac") / FOLDER
    clips = sorted(folder.glob("*.flac"))
    if not clips:
        raise MmworkError(f"{folder} holds no .flac files; point --source at a folder of PREFIX_name.flac clips")
    (raw / "audio").mkdir()
    for clip in clips:
        shutil.copyfile(clip, raw / "audio" / clip.name)


def build(raw: Path) -> dict[str, pd.DataFrame]:
    rows = []
    for path in sorted((raw / "audio").glob("*.flac")):
        info = soundfile.info(path)
        rows.append({"item_id": path.stem, "audio": str(path), "label": path.stem.split("_")[0],
                     "duration_s": float(info.duration), "sample_rate": int(info.samplerate)})
    return {"items": pd.DataFrame(rows)}


SPEC = DatasetSpec(
    name="instrument-samples",
    description="Sonic Pi's instrument and percussion clips (FLAC, 44.1 kHz), labelled by file prefix",
    source=f"Debian package {PACKAGE} (/{FOLDER}), or a folder of PREFIX_name.flac files via --source",
    license="mostly CC0 (see /usr/share/doc/sonic-pi-samples/copyright)",
    fetch=fetch, build=build,
)
