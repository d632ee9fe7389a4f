"""Each extractor's typed config, and the parameters a feature table records."""
import shutil

import pyarrow.parquet as pq
import pytest

from mmwork import MmworkError, read_table
from mmwork.core.config import Config
from mmwork.features import AudioConfig, ImageConfig, TextConfig, extract
from mmwork.features.modalities import AudioModality, ImageModality
from mmwork.store.tables import table_metadata


@pytest.mark.parametrize("config", [AudioConfig, ImageConfig, TextConfig])
def test_every_parameter_is_typed_and_documented(config):
    assert issubclass(config, Config)
    assert all(config.describe().values()), f"{config.__name__} has a field without a docstring"


def test_equal_configs_give_equal_fingerprints():
    assert AudioModality(n_mfcc="13").fingerprint() == AudioModality({"n_mfcc": 13}).fingerprint() \
        == AudioModality(AudioConfig(n_mfcc=13)).fingerprint()
    assert AudioModality(n_mfcc=13).fingerprint() != AudioModality().fingerprint()
    # the device and batch size do not change the features, so they do not change the fingerprint
    assert ImageModality(cnn=False, batch_size=8).fingerprint() == ImageModality(cnn=False).fingerprint()


@pytest.mark.parametrize("params, message", [
    ({"audio": {"mfcc": 3}}, "unknown parameter 'mfcc'"),
    ({"audio": {"n_mfcc": 0}}, "n_mfcc: Input should be greater than 0"),
    ({"audio": {"n_mels": 10}}, "n_mels: .*must be >= n_mfcc=20"),
    ({"audio": {"n_mfcc": 100}}, "n_mels: .*must be >= n_mfcc=100"),
    ({"audio": {"keep_frames": "maybe"}}, "keep_frames"),
    ({"text": {"lsa_components": "many"}}, "lsa_components"),
    ({"image": {"hog_size": 8}}, "hog_size"),  # a parameter of a modality not extracted is checked too
])
def test_a_bad_parameter_fails_before_any_compute(speech_root, params, message):
    features = speech_root / "processed" / "speech-prompts" / "features"
    shutil.rmtree(features, ignore_errors=True)
    with pytest.raises(MmworkError, match=message):
        extract("speech-prompts", "audio", params=params, scheduler="sync", limit=4, progress=False)
    assert not features.exists()


def test_the_table_records_the_parameters_it_was_computed_with(speech_root):
    """speech-prompts has 568 transcripts: LSA keeps fewer components than the 128 asked for when the
    corpus has fewer terms; the recorded parameters must say what was computed."""
    extract("speech-prompts", "text", params={"text": {"minilm": False, "skipgram_epochs": 1,
                                                       "max_features": 40}}, scheduler="sync", limit=4,
            progress=False)
    part = speech_root / "processed" / "speech-prompts" / "features" / "text" / "part-00000.parquet"
    width = pq.read_schema(part).field("tfidf_lsa").type.list_size
    meta = table_metadata("speech-prompts", "features/text")["params"]
    assert width < 128
    assert meta["params"]["lsa_components"] == width and meta["requested"]["lsa_components"] == 128
    assert meta["params"]["minilm"] is False and meta["params"]["max_features"] == 40
    assert len(read_table("speech-prompts", "features/text")) == 4
    audio = extract("speech-prompts", "audio", scheduler="sync", limit=4, progress=False)
    assert audio["rows"].item() == 4
    assert table_metadata("speech-prompts", "features/audio")["params"]["params"] == AudioConfig().model_dump()


def test_auto_parameters_are_recorded_resolved():
    image = ImageModality()
    assert image.config.cnn in (True, False)
    assert ImageModality(cnn="auto").config == ImageModality(cnn=image.config.cnn).config


def test_the_text_fit_is_saved_without_pickle_and_round_trips_bitwise(tmp_path):
    """The corpus fit (TF-IDF/LSA, skip-gram) is arrays in safetensors + JSON: loading runs no code,
    gives the same vectors bit for bit, and a tampered file is refused."""
    import json

    import numpy as np

    from mmwork.features.modalities import TextModality
    from mmwork.features.text import SkipGramEmbedder, TfidfLsa
    texts = ["press one to play the message", "press two to stop", "the mailbox is full",
             "please leave a message after the tone", "goodbye", "your call is important to us"]
    modality = TextModality(minilm=False, lsa_components=4)
    modality.models = {"tfidf_lsa": TfidfLsa(n_components=4, seed=0).fit(texts),
                       "skipgram": SkipGramEmbedder(dim=8, epochs=2, device="cpu").fit(texts)}
    modality.corpus_hash = "abc"
    folder = modality.save_fit(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    blob = (folder / "model.safetensors").read_bytes()
    assert b"\x80\x04" not in blob[:8 + int.from_bytes(blob[:8], "little")]  # header: no pickle protocol mark
    json.loads((folder / "model.json").read_text())  # plain JSON
    again = TextModality(minilm=False, lsa_components=4)
    assert again.load_fit(tmp_path) and again.corpus_hash == "abc"
    queries = texts + ["press the tone", "unknown words entirely"]
    for name, model in modality.models.items():
        mine, theirs = model.transform(queries), again.models[name].transform(queries)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), name
    assert again.effective_params() == modality.effective_params()
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(MmworkError, match="does not match"):
        TextModality(minilm=False, lsa_components=4).load_fit(tmp_path)
