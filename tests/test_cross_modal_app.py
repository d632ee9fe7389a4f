"""Cross-modal generation as the user meets it: `mmwork generate train|sample|evaluate --dataset digits-av`
on a slice of the real data set in a private data root, the clear one-line errors for bad input, and
the 06-cross-modal notebook run by Papermill with tiny parameters."""
import json

import numpy as np
import pytest

from mmwork import MmworkError
from mmwork.apps.generate import cross_modal as cm
from mmwork.cli import main

DATASET = "digits-av"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A private data root with digits-av, a poe model trained on 300 rows for one epoch, and the judges
    (each within a few seconds)."""
    from mmwork import datasets
    root = tmp_path_factory.mktemp("cross-modal")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root / "data"))
        mp.setenv("MMWORK_REPORTS", str(root / "reports"))
        mp.setenv("OMP_NUM_THREADS", "1")
        datasets.get(DATASET)
        main(["generate", "train", "--dataset", DATASET, "--model", "multimodal-vae", "--limit", "300", "--epochs", "1",
              "--param", "fusion=poe", "--json"])
        cm.classifiers(DATASET, progress=False, time_budget="4s")
        yield root


def test_train_records_the_run(root, capsys):
    recorded = json.loads((root / "data/models/generators/digits-av/multimodal-vae/run.json").read_text())
    assert recorded["fusion"] == "poe" and recorded["train_examples"] == 300 and recorded["epochs_run"] == 1
    assert recorded["modalities"] == ["image", "audio", "text"]


def test_sample_from_text_writes_images_sounds_and_manifest(root, capsys, tmp_path):
    out = tmp_path / "seven"
    main(["generate", "sample", "--dataset", DATASET, "--model", "multimodal-vae", "--from", "text=seven",
          "--to", "image,audio", "--n", "3", "--out", str(out), "--json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["given"] == {"text": "seven"} and manifest["targets"] == ["image", "audio"]
    assert (out / "image.png").stat().st_size > 0
    assert len(list((out / "audio").glob("*.wav"))) == 3
    assert not list(tmp_path.glob(".*partial"))


def test_generate_from_every_given_subset(root):
    for given in ({"text": "seven"}, {"audio": "test:7"}, {"image": "test:7"}, {"text": "sette", "audio": "test:7"}):
        targets = [m for m in ("image", "audio", "text") if m not in given]
        out = cm.generate_from(DATASET, given, targets, n=2)
        assert sorted(out) == sorted(targets) and all(len(v) == 2 for v in out.values())


def test_evaluate_reports_the_protocol(root, capsys):
    main(["generate", "evaluate", "--dataset", DATASET, "--model", "multimodal-vae", "--n-joint", "50", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert set(report["coherence"]["by_size"]) == {"1", "2"}
    assert len(report["coherence"]["table"]) == 9  # 3 single modalities x 2 targets + 3 pairs x 1 target
    assert 0 <= report["joint_coherence"] <= 1 and report["joint_samples"] == 50
    assert set(report["fd"]) == {"FD-clf-image", "FD-clf-audio", "FD-clf-text"}
    assert all(fd["floor"] < fd["noise"] for fd in report["fd"].values())
    assert set(report["classifier_test_accuracy"]) == {"image", "audio", "text"}
    assert "MoPoE/MultiVae protocol" in report["protocol"]


@pytest.mark.parametrize("args, message", [
    (["--from", "smell=roses"], "trained on image, audio, text, not smell"),
    ([], "add --from"),
    (["--from", "text=жжжж", "--to", "image"], "no known characters"),
    (["--from", "text=seven", "--to", "smell"], "smell"),
    (["--from", "audio=test:eleven"], "unknown class"),
    (["--from", "text"], "MODALITY=VALUE"),
])
def test_bad_requests_fail_in_one_line(root, capsys, args, message):
    assert main(["generate", "sample", "--dataset", DATASET, "--model", "multimodal-vae", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_audio_of_the_wrong_shape_is_refused(root, tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((16, 7), dtype=np.float32))
    with pytest.raises(MmworkError, match=r"MFCC frames must be a finite \(T, 13\) array"):
        cm.parse_given(DATASET, {"audio": str(clip)})


def test_a_checkpoint_of_another_data_set_is_refused(root):
    from mmwork.models.generators import MultimodalVAE
    with pytest.raises(MmworkError, match="trained on data set 'digits-av', not 'wesnoth'"):
        MultimodalVAE.load(root / "data/models/generators/digits-av/multimodal-vae", dataset="wesnoth")


def test_notebook_runs_with_tiny_parameters(root):
    from mmwork.apps.reports import run_report
    row = run_report("06-cross-modal", {"fusions": ["attention", "mopoe"], "epochs": 1, "limit": 200, "n_joint": 100,
                                        "per_row": 2, "wesnoth": False}, progress=False)
    assert row["status"] == "ok"
    metrics = json.loads(row["metrics"])
    for name in ("attention/coherence_mean", "mopoe/joint_coherence", "best/coherence_mean",
                 "classifier/text_test_accuracy"):
        assert 0 <= metrics[name] <= 1
    assert len(row["figures"]) >= 3  # the heatmaps and the image grids


def test_notebook_stops_before_compute_on_an_unknown_fusion(root):
    from mmwork.apps.reports import run_report
    with pytest.raises(MmworkError, match="fusions must be"):
        run_report("06-cross-modal", {"fusions": ["magic"], "wesnoth": False}, progress=False)


def test_the_demo_parameters_are_the_notebooks():
    """``make demo`` runs 06-cross-modal with parameters it has, at a small size (one fusion, a budget)."""
    from mmwork.apps import reports
    from mmwork.apps.demo import DEMO_CROSS_MODAL
    full = reports.check_parameters(reports.find_notebook("06-cross-modal"), DEMO_CROSS_MODAL)
    assert full["fusions"] == ["attention"] and full["time_budget"] and not full["wesnoth"]
