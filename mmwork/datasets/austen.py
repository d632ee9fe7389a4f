"""Jane Austen's six novels, one row per sentence, with train / valid / test splits fixed by chapter.

Default source: Debian's ``r-cran-janeaustenr`` (fetched with ``apt-get download`` + ``dpkg -x``; R is
never installed). Its R lazy-load database ``data/Rdata.{rdx,rdb}`` holds one character vector per
novel, one string per printed line; the PyPI ``rdata`` package reads it. ``--source`` accepts a folder
holding ``Rdata.rdx`` and ``Rdata.rdb`` (an installed janeaustenr's ``data/`` folder).

How the sentences are cut: the front matter before the first chapter (title, author, Northanger
Abbey's advertisement) and everything from the closing "THE END" / "FINIS" on (Northanger Abbey's
modern editor's note included) are dropped, as are "CHAPTER" and "VOLUME" headings. Wrapped lines are
joined into paragraphs (blank lines separate them), the ``_italics_`` underscores are removed, white
space is collapsed, and :func:`split_sentences` cuts each paragraph. Punctuation and case are kept.
Chapters are numbered 1, 2, … through each book (Emma restarts its printed numbers every volume).

>>> split_sentences('"My dear Mr. Bennet," said his lady. "Is it let?" Mr. Bennet replied that it was.')
['"My dear Mr. Bennet," said his lady.', '"Is it let?"', 'Mr. Bennet replied that it was.']
>>> split_of("emma-001"), split_of("emma-002")
('train', 'valid')
"""
from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import warnings
import zlib
from pathlib import Path

import pandas as pd

from mmwork.datasets.sources import debian_package_root
from mmwork.datasets.spec import DatasetSpec
from mmwork.core.errors import MmworkError

PACKAGE = "r-cran-janeaustenr"
FOLDER = "usr/lib/R/site-library/janeaustenr/data"
BOOKS = {"sensesensibility": "Sense and Sensibility", "prideprejudice": "Pride and Prejudice",
         "mansfieldpark": "Mansfield Park", "emma": "Emma", "northangerabbey": "Northanger Abbey",
         "persuasion": "Persuasion"}
"""The R object name of each novel (also the book's prefix in item ids) and its title."""
SHARES = (("train", 0.8), ("valid", 0.9), ("test", 1.0))

_HEADING = re.compile(r"(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\.?|VOLUME\s+[IVX]+")
_END = re.compile(r"THE END|FINIS|Finis|A NOTE ON THE TEXT")
# Words a full stop follows without ending the sentence; "No" and "Vol" only before a number.
_ABBREVIATIONS = {"mr", "mrs", "messrs", "dr", "st", "esq", "col", "capt", "rev", "gen", "adm", "lieut",
                  "sr", "jr", "edw", "wm", "thos", "jas", "chas", "geo", "viz"}
_BEFORE_NUMBER = {"no", "vol", "ch", "p"}
_CANDIDATE = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]*[A-Z0-9])")
_LAST_WORD = re.compile(r"([A-Za-z]+)$")


def split_of(key: str) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` (80/10/10), fixed by SHA-1 of ``key``: the same key
    lands in the same split on every machine and in every version."""
    fraction = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2 ** 64
    return next(name for name, upper in SHARES if fraction < upper)


def split_sentences(paragraph: str) -> list[str]:
    """Cut a paragraph after ``.``, ``!`` or ``?`` (and any closing quotes) where the next word starts
    with a capital or a digit, except after a title (Mr., Mrs., Dr., St., …) or an initial."""
    sentences, start = [], 0
    for match in _CANDIDATE.finditer(paragraph):
        word = _LAST_WORD.search(paragraph, max(start, match.start() - 12), match.start())
        if match.group().startswith(".") and word:
            w = word.group(1)
            after = paragraph[match.end():].lstrip()[:1]
            if (w.lower() in _ABBREVIATIONS or (len(w) == 1 and w.isupper())
                    or (w.lower() in _BEFORE_NUMBER and after.isdigit())):
                continue
        sentences.append(paragraph[start:match.end()].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def read_rdata(folder: Path) -> dict[str, list[str]]:
    """The novels' printed lines by R object name, read from ``Rdata.rdx`` (a gzip'd serialized index:
    name -> offset, length) and ``Rdata.rdb`` (each object a 4-byte length + a zlib blob)."""
    import rdata

    def unserialize(blob: bytes):
        with warnings.catch_warnings():  # rdata warns that the bare serialization has no file header
            warnings.simplefilter("ignore", UserWarning)
            return rdata.conversion.convert(rdata.parser.parse_data(blob))

    try:
        index = unserialize(gzip.decompress((folder / "Rdata.rdx").read_bytes()))["variables"]
        database = (folder / "Rdata.rdb").read_bytes()
        books = {}
        for name in BOOKS:
            offset, length = (int(v) for v in index[name])
            books[name] = [str(line) for line in unserialize(zlib.decompress(database[offset + 4:offset + length]))]
    except (OSError, KeyError, ValueError, zlib.error) as exc:
        raise MmworkError(f"could not read the janeaustenr novels from {folder} ({exc}); it should hold "
                          f"janeaustenr's Rdata.rdx and Rdata.rdb with the objects {', '.join(BOOKS)}") from exc
    return books


def chapters(lines: list[str]) -> list[list[str]]:
    """A novel's printed lines as chapters of paragraphs (see the module docstring for what is dropped)."""
    result: list[list[str]] = []
    paragraph: list[str] = []

    def close() -> None:
        if paragraph and result:
            text = re.sub(r"\s+", " ", " ".join(paragraph).replace("_", "")).strip()
            if text:
                result[-1].append(text)
        paragraph.clear()

    for line in lines:
        stripped = line.strip()
        if _END.fullmatch(stripped):
            break
        if _HEADING.fullmatch(stripped):
            close()
            if stripped.upper().startswith("CHAPTER"):
                result.append([])
        elif stripped:
            paragraph.append(stripped)
        else:
            close()
    close()
    return result


def fetch(source: Path | None, raw: Path) -> None:
    folder = source or debian_package_root(PACKAGE, f"/{FOLDER}/Rdata.rdb") / FOLDER
    for name in ("Rdata.rdx", "Rdata.rdb"):
        if not (folder / name).is_file():
            raise MmworkError(f"{folder} has no {name}; point --source at janeaustenr's data/ folder")
        shutil.copyfile(folder / name, raw / name)


def build(raw: Path) -> dict[str, pd.DataFrame]:
    rows = []
    for name, lines in read_rdata(raw).items():
        for number, paragraphs in enumerate(chapters(lines), start=1):
            document = f"{name}-{number:03d}"
            split = split_of(document)
            sentences = [s for p in paragraphs for s in split_sentences(p)]
            rows += [{"item_id": f"{document}-{i:04d}", "text": s, "book": BOOKS[name], "chapter": number,
                      "document": document, "split": split} for i, s in enumerate(sentences, start=1)]
    return {"items": pd.DataFrame(rows)}


SPEC = DatasetSpec(
    name="austen",
    description="Jane Austen's six novels split into sentences (book, chapter), with train/valid/test "
                "splits by chapter (80/10/10, a stable hash of the chapter)",
    source=f"Debian package {PACKAGE} (/{FOLDER}/Rdata.rdb), or a folder with janeaustenr's Rdata.rdx/.rdb "
           "via --source",
    license="the novels are public domain; the janeaustenr package (Julia Silge) is MIT",
    fetch=fetch, build=build,
    expected={"items": 31421},
)
