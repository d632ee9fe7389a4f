"""Just enough of Wesnoth's WML to read ``[unit_type]`` blocks: the preprocessor's ``#define`` /
``#ifdef`` and no-argument ``{MACRO}`` substitution, translatable multi-line strings, and the top-level
keys of each unit (plus its ``[base_unit]``), with ``[base_unit]`` inheritance and Wesnoth's file-list
expansion (``human-die-[1~3].ogg`` -> three files).

Not a full WML implementation: macros with arguments are left unexpanded (where they stand alone on a
line they are skipped, as are nested tags), and no preprocessor symbol is defined, so ``#ifdef X`` takes
its ``#else`` branch (which also hides the ``__UNUSED__`` blocks and takes the plain sprite that
``__WMLUNITS__`` documents).

>>> macros = read_defines("#define SOUND_LIST:ORC_DIE\\norc-die-[1~3].ogg #enddef\\n")
>>> units = parse_units('[unit_type]\\n id=Grunt\\n description= _ "A ""big""\\n orc."\\n'
...                     ' die_sound={SOUND_LIST:ORC_DIE}\\n [attack]\\n  name=x\\n [/attack]\\n[/unit_type]\\n', macros)
>>> units[0]["description"], expand_file_list(units[0]["die_sound"])
('A "big"\\n orc.', ['orc-die-1.ogg', 'orc-die-2.ogg', 'orc-die-3.ogg'])
"""
from __future__ import annotations

import re

_DEFINE = re.compile(r"#define\s+(\S+)([^\n]*)\n(.*?)#enddef", re.S)
_MACRO = re.compile(r"\{([A-Za-z0-9_:]+)\}")  # no-argument macro calls only
_KEY = re.compile(r"^\s*([A-Za-z0-9_,]+)\s*=(.*)$", re.S)
_STRING = re.compile(r'_?\s*"((?:[^"]|"")*)"')
_RANGE = re.compile(r"\[([^\]]*)\]")
UNIT_KEYS = ("id", "name", "race", "alignment", "cost", "level", "advances_to", "description", "image",
             "profile", "die_sound", "hide_help", "do_not_list")


def read_defines(text: str) -> dict[str, str]:
    """``#define NAME`` bodies that take no arguments, by name (the body stripped)."""
    return {m.group(1): m.group(3).strip() for m in _DEFINE.finditer(text) if not m.group(2).strip()}


def read_calls(text: str) -> dict[str, tuple[list[str], str]]:
    """``#define NAME PARAM...`` macros that take arguments: name -> (parameters, body)."""
    return {m.group(1): (m.group(2).split(), m.group(3)) for m in _DEFINE.finditer(text) if m.group(2).strip()}


def split_call(call: str) -> list[str]:
    """``{NAME a "b c" {X}}`` -> ``["NAME", "a", "b c", "{X}"]`` (quotes dropped, braces and brackets kept).

    >>> split_call('{UNIT_BODY soulless "a b" (x y) {SOUND_LIST:MISS}}')
    ['UNIT_BODY', 'soulless', 'a b', 'x y', '{SOUND_LIST:MISS}']
    """
    body, words, word, depth, quoted = call.strip()[1:-1], [], "", 0, False
    for ch in body:
        if ch == '"' and depth == 0:
            quoted = not quoted
            continue
        if not quoted:
            depth += ch in "{("
            depth -= ch in "})"
        if ch.isspace() and depth == 0 and not quoted:
            if word:
                words.append(word)
            word = ""
            continue
        word += ch
    words.append(word) if word else None
    return [w[1:-1] if w.startswith("(") and w.endswith(")") else w for w in words]


def expand(value: str, macros: dict[str, str], depth: int = 0) -> str:
    """Substitute no-argument ``{MACRO}`` calls (recursively); unknown ones stay as written."""
    if depth > 10 or "{" not in value:
        return value
    replaced = _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), value)
    return replaced if replaced == value else expand(replaced, macros, depth + 1)


def preprocess(text: str) -> list[str]:
    """The lines the game would see with no symbol defined: ``#define`` bodies, comments and the
    false branches of ``#ifdef``/``#ifndef``/``#ifhave``/``#ifver`` removed (each of those is taken as
    false, ``#ifndef``/``#ifnhave`` as true); lines inside a quoted string are kept as they are."""
    out, stack, in_define, in_string = [], [], False, False
    for line in text.splitlines():
        word = line.strip().split(maxsplit=1)[0] if line.strip() else ""
        if in_string:  # a line inside a quoted string is text, even one starting with "#"
            out.append(line)
            in_string = line.count('"') % 2 == 0
            continue
        if in_define:
            in_define = "#enddef" not in line
            continue
        if word == "#define":
            in_define = "#enddef" not in line
            continue
        if word in ("#ifdef", "#ifhave", "#ifver", "#ifndef", "#ifnhave", "#ifnver"):
            stack.append(word in ("#ifndef", "#ifnhave", "#ifnver"))
        elif word == "#else" and stack:
            stack[-1] = not stack[-1]
        elif word == "#endif" and stack:
            stack.pop()
        elif all(stack) and not word.startswith("#"):
            out.append(line)
            in_string = line.count('"') % 2 == 1
    return out


def _complete(value: str) -> bool:
    """A value is complete when its quotes are balanced (``""`` is an escaped quote) and it does not
    end in ``+`` (string concatenation continued on the next line)."""
    return value.count('"') % 2 == 0 and not value.rstrip().endswith("+")


def parse_value(raw: str) -> str:
    """A WML value: quoted pieces (``_`` marks a translatable one) joined by ``+``, or plain text."""
    raw = raw.strip()
    if '"' not in raw:
        return re.split(r"\s#", raw, maxsplit=1)[0].strip()  # a trailing comment
    return "".join(m.group(1).replace('""', '"') for m in _STRING.finditer(raw))


def parse_units(text: str, macros: dict[str, str], calls: dict | None = None) -> list[dict]:
    """Each ``[unit_type]`` of a file: its top-level :data:`UNIT_KEYS` (macros expanded) and, under
    ``base_unit``, the id of its ``[base_unit]``. A macro call with arguments standing alone on a line
    at a unit's top level is expanded when ``calls`` (or the file) defines it: the undead corpses take
    their sprite that way."""
    macros, calls = macros | read_defines(text), (calls or {}) | read_calls(text)
    units, tags, unit, pending, braces, top = [], [], None, None, 0, 0
    lines = preprocess(text)
    while lines:
        line = lines.pop(0)
        if pending is not None:  # a value continued from the lines above
            pending[1] += "\n" + line
            if _complete(pending[1]):
                _store(unit, tags[top - 1:], *pending, macros)
                pending = None
            continue
        stripped = line.strip()
        if braces:  # inside a multi-line macro call
            braces += stripped.count("{") - stripped.count("}")
            continue
        if stripped.startswith("{"):
            braces = max(stripped.count("{") - stripped.count("}"), 0)
            words = split_call(stripped) if not braces and stripped.endswith("}") else []
            if words and unit is not None and tags[top - 1:] == ["unit_type"] and words[0] in calls:
                params, body = calls[words[0]]
                if len(params) == len(words) - 1:
                    for name, arg in zip(params, words[1:]):
                        body = body.replace("{" + name + "}", arg)
                    lines[:0] = preprocess(body)
            continue
        tag = re.match(r"^\[(/?)\+?([A-Za-z0-9_]+)\]", stripped)
        if tag:
            if tag.group(1):
                if tags:
                    tags.pop()
                if unit is not None and len(tags) < top:
                    units.append(unit)
                    unit = None
            else:
                tags.append(tag.group(2))
                if tag.group(2) == "unit_type" and unit is None:
                    unit, top = {}, len(tags)
            continue
        key = _KEY.match(line)
        if key:  # values of other tags are read too, so that their multi-line strings are skipped whole
            if _complete(key.group(2)):
                _store(unit, tags[top - 1:], key.group(1), key.group(2), macros)
            else:
                pending = [key.group(1), key.group(2)]
    return units


def _store(unit: dict | None, tags: list[str], key: str, raw: str, macros: dict[str, str]) -> None:
    if unit is None:
        return
    if tags == ["unit_type"] and key in UNIT_KEYS:
        unit[key] = parse_value(expand(raw, macros))
    elif tags == ["unit_type", "base_unit"] and key == "id":
        unit["base_unit"] = parse_value(raw)


def inherit(units: dict[str, dict]) -> dict[str, dict]:
    """Fill each unit's missing keys from its ``[base_unit]`` chain, as the game does (the child's keys
    win); ``inherited`` lists the keys that came from a base."""
    def resolved(uid: str, seen: tuple = ()) -> dict:
        unit = units[uid]
        base = unit.get("base_unit")
        if not base or base not in units or base in seen:
            return unit
        parent = resolved(base, seen + (uid,))
        taken = [k for k in parent if k in UNIT_KEYS and k not in unit and k not in ("id", "hide_help")]
        return {k: parent[k] for k in taken} | unit | {"inherited": taken}
    return {uid: resolved(uid) for uid in units}


def strip_image_functions(path: str) -> str:
    """``"units/x.png~RC(magenta>red)~FL()"`` -> ``"units/x.png"``, also dropping a ``:duration`` and an
    unresolved ``{MACRO}``."""
    return re.split(r"[~:{]", path.strip(), maxsplit=1)[0].strip()


def expand_file_list(value: str) -> list[str]:
    """Wesnoth's sound/image lists: comma-separated, each with ``[1~3]`` ranges or ``[a,b]`` choices.

    >>> expand_file_list("human-hit-[1~2].ogg,elf-hit-[1,3].ogg")
    ['human-hit-1.ogg', 'human-hit-2.ogg', 'elf-hit-1.ogg', 'elf-hit-3.ogg']
    """
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(value):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    out = []
    for part in (p.strip() for p in parts if p.strip()):
        match = _RANGE.search(part)
        if not match:
            out.append(part)
            continue
        choices = []
        for choice in match.group(1).split(","):
            ends = choice.split("~")
            if len(ends) == 2 and ends[0].isdigit() and ends[1].isdigit():
                step = 1 if int(ends[1]) >= int(ends[0]) else -1
                width = len(ends[0]) if ends[0].startswith("0") else 0
                choices += [str(n).zfill(width) for n in range(int(ends[0]), int(ends[1]) + step, step)]
            else:
                choices.append(choice)
        for choice in choices:
            out += expand_file_list(part[:match.start()] + choice + part[match.end():])
    return out
