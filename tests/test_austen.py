"""The ``austen`` data set: Jane Austen's six novels from Debian's r-cran-janeaustenr, cut into sentences,
with splits by chapter. Built by ``mmwork.datasets.get`` into a private data root (about 3 s)."""
import re

import pytest

from mmwork import MmworkError, datasets, read_table
from mmwork.datasets.austen import BOOKS, fetch, read_rdata, split_of, split_sentences

CHAPTERS = {"Sense and Sensibility": 50, "Pride and Prejudice": 61, "Mansfield Park": 48, "Emma": 55,
            "Northanger Abbey": 31, "Persuasion": 24}  # the printed novels' chapter counts


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("austen-data")))
        try:
            datasets.get("austen")
        except MmworkError as exc:  # no apt-get, or no network to fetch the .deb
            pytest.skip(f"cannot build the austen data set here: {exc}")
        yield read_table("austen", "items")


def test_six_novels_with_their_chapters(items):
    assert len(items) == datasets.spec("austen").expected["items"]
    assert items.groupby("book")["chapter"].nunique().to_dict() == CHAPTERS
    assert items.groupby("book")["chapter"].max().to_dict() == CHAPTERS  # numbered 1..n through each book
    words = items["text"].str.split().str.len()
    assert 690_000 < words.sum() < 740_000  # the novels run to about 720,000 words
    assert 15 < words.mean() < 35 and (items.groupby("book").size() > 3000).all()


def test_ids_documents_and_splits_by_chapter(items):
    assert items["item_id"].is_unique
    assert (items["document"] == items["book"].map({v: k for k, v in BOOKS.items()})
            + "-" + items["chapter"].map("{:03d}".format)).all()
    assert (items["item_id"].str.rsplit("-", n=1).str[0] == items["document"]).all()
    per_document = items.groupby("document")["split"].agg(["nunique", "first"])
    assert (per_document["nunique"] == 1).all()  # no chapter straddles two splits
    assert (per_document["first"] == per_document.index.map(split_of)).all()
    shares = per_document["first"].value_counts(normalize=True)
    assert 0.7 < shares["train"] < 0.9 and 0.05 < shares["valid"] < 0.15 and 0.05 < shares["test"] < 0.15
    texts = {s: set(items.loc[items["split"] == s, "document"]) for s in ("train", "valid", "test")}
    assert not (texts["train"] & texts["valid"] or texts["train"] & texts["test"] or texts["valid"] & texts["test"])


def test_sentences_are_clean_text_without_headings(items):
    text = items["text"]
    assert (text.str.strip() == text).all() and (text.str.len() > 0).all()
    assert not text.str.contains(r"\s{2,}|_|\n").any()
    assert not text.str.fullmatch(r"(?i)(chapter|volume)\s+\w+\.?|the end|finis").any()
    assert not text.str.contains("Signet Classic|By Jane Austen|MANSFIELD PARK").any()  # notes, front matter
    assert not text.str.contains(r"\b(?:Mr|Mrs|Dr|St)\.$").any()  # never cut after a title
    first = items[items["book"] == "Pride and Prejudice"].iloc[0]
    assert first["item_id"] == "prideprejudice-001-0001"
    assert first["text"] == ("It is a truth universally acknowledged, that a single man in possession of a good "
                             "fortune, must be in want of a wife.")
    assert items[items["book"] == "Persuasion"].iloc[-1]["text"].endswith("than in its national importance.")


def test_sentence_splitter_keeps_titles_initials_and_lowercase_continuations():
    assert split_sentences('"My dear Mr. Bennet," said his lady. "Have you heard?" Mr. Bennet had not.') == [
        '"My dear Mr. Bennet," said his lady.', '"Have you heard?"', "Mr. Bennet had not."]
    assert split_sentences("Oh! you are very kind. Dr. and Mrs. Grant came to St. James's.") == [
        "Oh! you are very kind.", "Dr. and Mrs. Grant came to St. James's."]
    assert split_sentences("F. C. Weston Churchill wrote, No. 97. It ended.") == [
        "F. C. Weston Churchill wrote, No. 97.", "It ended."]
    assert split_sentences("Well!--I am glad. 1810 was a year.") == ["Well!--I am glad.", "1810 was a year."]
    assert split_sentences("") == []


def test_split_of_is_stable_and_roughly_80_10_10():
    assert [split_of(k) for k in ("emma-001", "emma-002")] == ["train", "valid"]
    drawn = [split_of(f"key-{i}") for i in range(4000)]
    assert abs(drawn.count("train") / 4000 - 0.8) < 0.03 and abs(drawn.count("test") / 4000 - 0.1) < 0.03


def test_info_states_the_licence_and_how_to_fetch():
    info = datasets.info("austen")
    assert "public domain" in info["license"] and "MIT" in info["license"]
    assert "r-cran-janeaustenr" in info["source"] and "austen" in datasets.names()


def test_bad_sources_fail_with_one_line(tmp_path):
    with pytest.raises(MmworkError, match="has no Rdata.rdx"):
        fetch(tmp_path, tmp_path)
    (tmp_path / "Rdata.rdx").write_bytes(b"not gzip")
    (tmp_path / "Rdata.rdb").write_bytes(b"")
    with pytest.raises(MmworkError, match="could not read the janeaustenr novels"):
        read_rdata(tmp_path)
