"""Wesnoth: the unit types of Battle for Wesnoth 1.16, each with three modalities: a description
(text), a 72x72 RGBA sprite (image; also a 400x400 portrait where the unit has one) and a death sound
(audio, .ogg/.wav), plus race, alignment, cost and level.

Default source: Debian's ``wesnoth-1.16-data`` (core units, and the tutorial's) and the sixteen
campaign packages ``wesnoth-1.16-{did,dm,...,utbs}`` (GPL-2+), fetched with ``apt-get download``.
``--source`` accepts a folder laid out like ``/usr/share/games/wesnoth/1.16`` (``data/core/units``, its
campaigns under ``data/campaigns/*/units``).

How a unit's fields are read (:mod:`mmwork.datasets.wml`): the top-level keys of each ``[unit_type]``,
after the preprocessor (no symbol defined) and with ``[base_unit]`` inheritance. ``image=`` loses its
image-path functions (``~RC(...)``, ``~CHAN(...)``): the plain sprite file. ``die_sound=`` macros such as
``{SOUND_LIST:HUMAN_DIE}`` (``data/core/macros/sound-utils.cfg``) expand to Wesnoth file lists
(``human-die-[1~3].ogg``); the game plays one of them at random, ``audio`` is the FIRST and
``audio_files`` lists them all. No ``[race]`` or movetype carries a die sound in 1.16: a unit without
``die_sound`` (and without a base unit that has one) dies silently; it is kept, with ``audio`` empty.

Skipped, with the reason, in the ``skipped`` table: units with an empty description or no sprite file,
and a unit id already defined earlier (core first, then campaigns in name order; the game would refuse
the second too). In 1.16.9: 279 core unit types, 277 kept (``Fog Clearer``: a hidden helper with no
description; ``Wyvern Rider``: ``description=""``); 4 core units (the boats) have no death sound.

>>> from mmwork import datasets
>>> datasets.get("wesnoth")["tables"]                         # doctest: +SKIP
{'items': ..., 'skipped': ...}
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.datasets import wml
from mmwork.datasets.sources import debian_package_root
from mmwork.datasets.spec import DatasetSpec

DATA_PACKAGE = "wesnoth-1.16-data"
CAMPAIGNS = ("did", "dm", "dw", "ei", "httt", "l", "low", "nr", "sof", "sota", "sotbe", "thot", "trow", "tsg",
             "ttb", "utbs")
ROOT = "usr/share/games/wesnoth/1.16"
CORE = "core"


def package_roots(campaigns: bool = True) -> list[Path]:
    """The wesnoth 1.16 folders of the data package and (``campaigns``) of each campaign package."""
    packages = [DATA_PACKAGE] + ([f"wesnoth-1.16-{c}" for c in CAMPAIGNS] if campaigns else [])
    return [debian_package_root(p, f"/{ROOT}/data/core/units/elves/Archer.cfg") / ROOT for p in packages]


def _sources(roots: list[Path]) -> list[tuple[str, Path, list[Path]]]:
    """(campaign, units folder, macro folders) for the core and every campaign that defines units."""
    found = []
    for root in roots:
        if (root / "data/core/units").is_dir():
            found.append((CORE, root / "data/core/units", [root / "data/core/macros"]))
        for folder in sorted((root / "data/campaigns").glob("*/units")):
            found.append((folder.parent.name, folder, [folder.parent / "utils"]))
    order = {CORE: ""}
    return sorted(found, key=lambda s: order.get(s[0], s[0]))


def _find(relative: str, folders: list[Path]) -> Path | None:
    return next((f / relative for f in folders if relative and (f / relative).is_file()), None)


def scan(roots: list[Path]) -> tuple[list[dict], list[dict], list[Path]]:
    """Read the unit types under ``roots`` (folders laid out like wesnoth's ``1.16``).

    Returns (units kept, units skipped with a ``reason``, every file read or referenced).
    """
    roots = [Path(r) for r in roots]
    sources = _sources(roots)
    if not any(c == CORE for c, _, _ in sources):
        raise MmworkError(f"no data/core/units folder under {[str(r) for r in roots]}; point --source at a "
                          "folder laid out like /usr/share/games/wesnoth/1.16")
    core_macros = [r / "data/core/macros" for r in roots if (r / "data/core/macros").is_dir()]
    files: list[Path] = []
    macros, calls = {}, {}
    for cfg in sorted(p for folder in core_macros for p in folder.glob("*.cfg")):
        text = cfg.read_text(encoding="utf-8", errors="replace")
        macros |= wml.read_defines(text)
        calls |= wml.read_calls(text)
        files.append(cfg)
    kept, skipped, seen, core = [], [], {}, {}
    for campaign, folder, macro_folders in sources:
        local, local_calls, units = dict(macros), dict(calls), {}
        cfgs = [p for m in macro_folders if campaign != CORE for p in sorted(m.rglob("*.cfg"))]
        for cfg in cfgs + sorted(folder.rglob("*.cfg")):  # a folder's defines last until its end, as in the game
            text = cfg.read_text(encoding="utf-8", errors="replace")
            local |= wml.read_defines(text)
            local_calls |= wml.read_calls(text)
            files.append(cfg)
            for unit in wml.parse_units(text, local, local_calls) if cfg.is_relative_to(folder) else []:
                unit["source_file"] = cfg
                if not unit.get("id"):
                    continue
                if unit["id"] in units or unit["id"] in seen:
                    first = units[unit["id"]]["campaign"] if unit["id"] in units else seen[unit["id"]]
                    skipped.append(_skip(unit, campaign, f"duplicate id (kept the one of {first})"))
                    continue
                units[unit["id"]] = unit | {"campaign": campaign}
        base = folder.parent if campaign != CORE else None
        images = ([base / "images"] if base else []) + [r / p for r in roots for p in ("data/core/images", "images")]
        sounds = ([base / "sounds"] if base else []) + [r / p for r in roots for p in ("data/core/sounds", "sounds")]
        if campaign == CORE:
            core = units
        resolved = wml.inherit(core | units)  # a campaign unit may take a core unit as its [base_unit]
        for unit in (resolved[uid] for uid in units):
            row, reason = _row(unit, images, sounds)
            if reason:
                skipped.append(_skip(unit, campaign, reason))
                continue
            seen[unit["id"]] = campaign  # a skipped unit leaves its id free for a later campaign's
            kept.append(row)
            files += [Path(p) for p in (row["image"], row["portrait"], *row.pop("audio_paths")) if p]
    return kept, skipped, files


def _skip(unit: dict, campaign: str, reason: str) -> dict:
    return {"item_id": unit.get("id"), "campaign": campaign, "source_file": str(unit.get("source_file")),
            "reason": reason}


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _row(unit: dict, images: list[Path], sounds: list[Path]) -> tuple[dict, str | None]:
    """A unit's items row, or the reason it is skipped."""
    description = (unit.get("description") or "").strip()
    if not description:
        return {}, "no description"
    sprite = _find(wml.strip_image_functions(unit.get("image") or ""), images)
    if sprite is None:
        return {}, f"no sprite file ({unit.get('image')!r})"
    portrait = _find(wml.strip_image_functions(unit.get("profile") or ""), images)
    names = wml.expand_file_list(unit.get("die_sound") or "")
    found = [_find(name, sounds) for name in names]
    advances = [a.strip() for a in (unit.get("advances_to") or "").split(",") if a.strip() and a.strip() != "null"]
    name = re.sub(r"^[A-Za-z_ ]+\^", "", unit.get("name") or unit["id"])  # a translation context: "female^Warrior"
    return {"item_id": unit["id"], "name": name, "race": unit.get("race"),
            "alignment": unit.get("alignment"), "cost": _int(unit.get("cost")), "level": _int(unit.get("level")),
            "advances_to": advances, "text": description, "image": str(sprite),
            "portrait": str(portrait) if portrait else None,
            "audio": str(found[0]) if found and found[0] else None,
            "audio_files": [name for name, path in zip(names, found) if path], "die_sound": unit.get("die_sound"),
            "campaign": unit["campaign"], "inherited": list(unit.get("inherited", [])),
            "audio_paths": [str(p) for p in found if p]}, None


def fetch(source: Path | None, raw: Path) -> None:
    """Copy the unit files, the macros and every sprite, portrait and death sound they name into ``raw``
    (laid out like wesnoth's ``1.16`` folder)."""
    roots = [Path(source)] if source is not None else package_roots()
    _, _, files = scan(roots)
    for path in dict.fromkeys(files):
        root = next(r for r in roots if path.is_relative_to(r))
        target = raw / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def build(raw: Path) -> dict[str, pd.DataFrame]:
    kept, skipped, _ = scan([raw])
    if not kept:
        raise MmworkError(f"no unit type with a description and a sprite under {raw}")
    items = pd.DataFrame(kept)
    items["cost"] = items["cost"].astype("Int64")
    items["level"] = items["level"].astype("Int64")
    columns = ["item_id", "campaign", "reason", "source_file"]
    return {"items": items, "skipped": pd.DataFrame(skipped, columns=columns).astype(str)}


SPEC = DatasetSpec(
    name="wesnoth",
    description="Battle for Wesnoth 1.16 unit types (core and the 16 mainline campaigns): description text, "
                "RGBA sprite (and portrait) PNG, death sound (.ogg/.wav), race, alignment, cost, level",
    source=f"Debian packages {DATA_PACKAGE} and wesnoth-1.16-{{{','.join(CAMPAIGNS)}}} (/{ROOT}/data), or a "
           "folder laid out like it via --source",
    license="GPL-2+ (the Battle for Wesnoth project; see /usr/share/doc/wesnoth-1.16-data/copyright)",
    fetch=fetch, build=build,
)
