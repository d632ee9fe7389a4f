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
