"""The language model as the user meets it, on a real MovieLens-100K slice (users 1-200) with small
personalised models in a private data root and the real SmolLM2, Piper and Whisper weights:
`mmwork generate for-user --lm ... --with-speech --out DIR` writes text, WAV and a JSON manifest (and no
partial folder when it fails), bad requests fail in one line before any model loads, and the
07-language-model notebook runs through Papermill with tiny parameters."""
import json

import pandas as pd
import pytest

from mmwork import MmworkError
from mmwork.cli import main

from tests.test_notebook_personalised import FEATURES, movielens_slice  # noqa: F401  (a fixture)

DATASET = "movielens-100k"


@pytest.fixture(scope="module")
def env(tmp_path_factory, movielens_slice):  # noqa: F811
    from mmwork import datasets
    from mmwork.apps import personalise
    from mmwork.features import extract
    root = tmp_path_factory.mktemp("language-notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root / "data"))
        mp.setenv("MMWORK_REPORTS", str(root / "reports"))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        datasets.get(DATASET, source=movielens_slice)
        extract(DATASET, "text", scheduler="sync", progress=False,
                params={"text": {"minilm": False, "skipgram_epochs": 1, "max_features": 2000, "lsa_components": 16}})
        personalise.train(DATASET, features=FEATURES, vocab_size=500, lm={"epochs": 1, "embedding_dim": 32,
                                                                           "hidden_dim": 64},
                          judge={"epochs": 2}, progress=False)
        yield root


def test_for_user_with_speech_writes_text_wav_and_manifest(env, tmp_path):
    out = tmp_path / "user-1"
    assert main(["generate", "for-user", "1", "--dataset", DATASET, "--lm", "few-shot", "--n", "1", "--with-speech",
                 "--out", str(out), "--json"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["user_id"] == "1" and manifest["generator"].endswith("few-shot")
    (item,) = manifest["items"]
    assert "Genres:" in item["text"] and item["pitch"] and (out / item["wav"]).stat().st_size > 1000
    assert 0 <= item["wer"] <= 1 and item["transcript"]
    assert item["image"] is None and "no image" in item["image_note"]
    features = pd.read_parquet(out / "audio_features.parquet")
    assert len(features) == 1 and len(features["mfcc_stats"].iloc[0]) > 0
    assert 0 <= manifest["speech"]["round_trip_wer"] <= 1


@pytest.mark.parametrize("args, message", [
    (["--lm", "few-shot", "--with-speech"], "add --out"),
    (["--lm", "few-shot", "--temperature", "-1"], "temperature"),
    (["--lm", "few-shot", "--evaluate"], "--lm takes none of"),
])
def test_bad_requests_fail_in_one_line_before_loading(env, capsys, args, message):
    assert main(["generate", "for-user", "1", "--dataset", DATASET, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_failed_write_leaves_no_folder(env, tmp_path):
    from mmwork.apps.personalise.spoken import write_items
    frame = pd.DataFrame({"text": ["Harbour Lights (1998). Genres: Drama.", " "]})
    with pytest.raises(MmworkError, match="empty text"):
        write_items(frame, tmp_path / "out", manifest={}, with_speech=True)
    assert list(tmp_path.iterdir()) == []


def test_notebook_runs_with_tiny_parameters(env):
    from mmwork.apps.reports import run_report
    row = run_report("07-language-model", {"users": ["1", "13"], "modes": ["few-shot"], "n_items": 1, "eval_users": 6,
                                           "eval_candidates": 2}, progress=False)
    assert row["status"] == "ok"
    metrics = json.loads(row["metrics"])
    assert 0 <= metrics["speech/round_trip_wer"] <= 1
    assert -100 <= metrics["few-shot/diff"] <= 100 and -100 <= metrics["lstm/diff"] <= 100
    assert row["figures"], "the comparison figure is missing"


def test_notebook_stops_before_loading_on_an_unknown_mode(env):
    from mmwork.apps.reports import run_report
    with pytest.raises(MmworkError, match="modes must be"):
        run_report("07-language-model", {"modes": ["telepathy"]}, progress=False)


def test_the_demo_parameters_are_the_notebooks():
    """``make demo`` runs 07-language-model with parameters it has, at a small size."""
    from mmwork.apps import reports
    from mmwork.apps.demo import DEMO_LANGUAGE
    full = reports.check_parameters(reports.find_notebook("07-language-model"), DEMO_LANGUAGE)
    assert len(full["users"]) <= 3 and "fine-tuned" not in full["modes"] and full["eval_users"] <= 20
