"""Loaders on the real sources, the user-catalogue import, and the bad inputs of the foundation."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile

from mmwork import MmworkError, datasets, read_table
from mmwork.core.paths import raw_dir


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """All built-in data sets fetched once into a private data root."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        for name in datasets.names():
            datasets.get(name)
        yield root


def test_movielens_counts_titles_genres_demographics(fetched):
    items = read_table("movielens-100k", "items")
    inter = read_table("movielens-100k", "interactions")
    users = read_table("movielens-100k", "users")
    assert (len(inter), inter["user_id"].nunique(), inter["item_id"].nunique()) == (100_000, 943, 1682)
    assert len(items) == 1682 and len(users) == 943
    toy_story = items.set_index("item_id").loc["1"]
    assert toy_story["title"] == "Toy Story" and toy_story["release_year"] == 1995
    assert list(toy_story["genres"]) == ["Animation", "Children's", "Comedy"]
    assert "Toy Story (1995)" in toy_story["text"]
    assert set(inter["weight"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert set(users.columns) >= {"user_id", "age", "gender", "occupation", "zip_code"}
    assert inter["timestamp"].between(870_000_000, 900_000_000).all()


def test_movielens_from_a_grouplens_zip_matches(fetched, tmp_path):
    """A standard ml-100k zip (u.data, u.item, u.user) gives the same tables as the recbole copy."""
    items = read_table("movielens-100k", "items").head(40)
    inter = read_table("movielens-100k", "interactions")
    inter = inter[inter["item_id"].isin(items["item_id"])]
    users = read_table("movielens-100k", "users")
    from mmwork.datasets.movielens import GENRES
    u_item = "\n".join("|".join([r.item_id, f"{r.title} ({r.release_year})", "01-Jan-1995", "", "http://x"]
                                + ["1" if g in list(r.genres) else "0" for g in GENRES])
                       for r in items.itertuples())
    u_data = "\n".join(f"{r.user_id}\t{r.item_id}\t{int(r.weight)}\t{r.timestamp}" for r in inter.itertuples())
    u_user = "\n".join(f"{r.user_id}|{r.age}|{r.gender}|{r.occupation}|{r.zip_code}" for r in users.itertuples())
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ml-100k/u.item", u_item.encode("latin-1"))
        z.writestr("ml-100k/u.data", u_data)
        z.writestr("ml-100k/u.user", u_user)
    from mmwork.datasets.movielens import build, fetch
    raw = tmp_path / "raw"
    raw.mkdir()
    fetch(archive, raw)
    tables = build(raw)
    got = tables["items"].set_index("item_id")
    want = items.set_index("item_id")
    assert got["title"].tolist() == want["title"].tolist()
    assert [list(g) for g in got["genres"]] == [list(g) for g in want["genres"]]
    assert len(tables["interactions"]) == len(inter)


def test_fashion_mnist_70000_labelled_images(fetched):
    items = read_table("fashion-mnist", "items")
    assert len(items) == 70_000
    assert items["split"].value_counts().to_dict() == {"train": 60_000, "test": 10_000}
    assert items["label"].value_counts().tolist() == [7000] * 10
    from PIL import Image
    import io
    first = np.asarray(Image.open(io.BytesIO(items["image"].iloc[0])))
    assert first.shape == (28, 28) and first.dtype == np.uint8 and first.max() > 0
    assert items["label"].iloc[0] == "Ankle boot"  # the first training image of Fashion-MNIST


def test_speech_prompts_568_clips_with_transcripts(fetched):
    items = read_table("speech-prompts", "items").set_index("item_id")
    assert len(items) == 568
    assert items["text"].notna().all() and (items["text"].str.len() > 0).all()
    assert items.loc["digits/7", "text"].lower().startswith("seven")
    assert items.loc["digits/7", "category"] == "digits"
    assert (items["sample_rate"] == 8000).all()
    path = items.loc["digits/7", "audio"]
    assert path.startswith(str(raw_dir("speech-prompts"))) and soundfile.info(path).frames > 0
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # raw inputs are made read-only


def test_instrument_samples_labelled_by_prefix(fetched):
    items = read_table("instrument-samples", "items")
    assert len(items) == 165 and items["label"].nunique() == 14
    assert items.set_index("item_id").loc["ambi_choir", "label"] == "ambi"


def test_get_reuses_tables_unless_forced(fetched):
    again = datasets.get("speech-prompts")
    assert again["cached"] and again["tables"] == {"items": 568}
    info = datasets.info("speech-prompts")
    assert info["provenance"]["input_hash"] and info["tables"] == {"items": 568}


def test_import_user_catalogue(data_root, tmp_path, speech_clip_path, fashion_images):
    from PIL import Image
    shop = tmp_path / "shop"
    (shop / "media").mkdir(parents=True)
    Image.fromarray(fashion_images[0][0]).save(shop / "media" / "a.png")
    (shop / "media" / "a.wav").write_bytes(speech_clip_path.read_bytes())
    pd.DataFrame({"item_id": ["a", "b"], "title": ["Shirt", "Boot"], "image": ["media/a.png", "media/missing.png"],
                  "audio": ["media/a.wav", None]}).to_csv(shop / "items.csv", index=False)
    pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"]}).to_csv(shop / "interactions.csv", index=False)
    result = datasets.import_catalogue("my-shop", shop)
    assert result["tables"] == {"interactions": 3, "items": 2}
    assert result["missing_files"] == {"image": 1, "audio": 0}
    items = read_table("my-shop", "items")
    assert items["image"].iloc[0] == str(shop / "media" / "a.png") and pd.isna(items["audio"].iloc[1])
    assert read_table("my-shop", "interactions")["weight"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("items, message", [
    (pd.DataFrame({"item_id": ["a", "a"]}), "duplicate item_id"),
    (pd.DataFrame({"name": ["a"]}), "missing required column"),
])
def test_import_rejects_bad_tables_and_writes_nothing(data_root, tmp_path, items, message):
    items.to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(MmworkError, match=message):
        datasets.import_catalogue("bad", tmp_path / "items.csv")
    assert not (data_root / "processed" / "bad").exists()


def test_bad_names_and_paths(data_root, tmp_path):
    with pytest.raises(MmworkError, match="unknown data set 'nope'.*mmwork data list"):
        datasets.get("nope")
    with pytest.raises(MmworkError, match="does not exist"):
        datasets.get("movielens-100k", source=tmp_path / "absent")
    with pytest.raises(MmworkError, match="neither u.data"):
        datasets.get("movielens-100k", source=tmp_path)
    with pytest.raises(MmworkError, match="does not exist"):
        datasets.import_catalogue("x", tmp_path / "absent.csv")
    with pytest.raises(MmworkError, match="built-in"):
        datasets.import_catalogue("fashion-mnist", tmp_path)
    assert not (data_root / "raw" / "movielens-100k").exists(), "a failed fetch leaves no raw folder"


def test_cli_errors_are_one_line_with_exit_2(data_root):
    result = subprocess.run([sys.executable, "-m", "mmwork", "data", "get", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown data set 'nope'" in result.stderr


def test_cli_lists_data_sets_and_tables(fetched):
    env = os.environ | {"MMWORK_DATA": str(fetched)}
    out = subprocess.run([sys.executable, "-m", "mmwork", "data", "list", "--json"], capture_output=True,
                         text=True, env=env, check=True).stdout
    import json
    listed = {row["name"]: row["fetched"] for row in json.loads(out)}
    assert listed == dict.fromkeys(datasets.names(), True)
    assert {"austen", "fashion-mnist", "instrument-samples", "movielens-100k", "speech-prompts", "wesnoth"} <= set(listed)
    out = subprocess.run([sys.executable, "-m", "mmwork", "tables"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert "interactions" in out and "100000" in out
