"""mmwork.apps.generate and `mmwork generate`: train -> sample -> evaluate on a small real slice of the
fashion-mnist store (300 train / 200 test images), errors before compute, JSON output, grids, resume."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mmwork.apps import generate
from mmwork.cli import main
from mmwork.core.errors import MmworkError

TINY = {"epochs": 1, "progress": False}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    from threadpoolctl import threadpool_limits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def slice_root(tmp_path_factory, fashion_idx_slice):
    """A data root whose fashion-mnist table holds the first 300 train and 200 test images (the real idx
    files cut short, through the data set's own builder), and a classifier trained on them once."""
    from mmwork import datasets
    root = tmp_path_factory.mktemp("fashion-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("fashion-mnist", source=fashion_idx_slice)
        generate.train("fashion-mnist", "classifier", epochs=3, params={"channels": 8, "features": 32}, progress=False)
    return root


@pytest.fixture
def store(slice_root, tmp_path, monkeypatch):
    """A private data root on the slice's tables, holding a copy of the trained classifier."""
    root = tmp_path / "data"
    (root / "models" / "generators" / "fashion-mnist").mkdir(parents=True)
    (root / "processed").symlink_to(slice_root / "processed")
    shutil.copytree(slice_root / "models" / "generators" / "fashion-mnist" / "classifier",
                    root / "models" / "generators" / "fashion-mnist" / "classifier")
    monkeypatch.setenv("MMWORK_DATA", str(root))
    return root


def test_train_sample_evaluate(store, tmp_path):
    model = generate.train("fashion-mnist", "cvae", limit=200, params={"channels": 8, "hidden": 32}, **TINY)
    folder = generate.model_dir("fashion-mnist", "cvae")
    assert folder == store / "models" / "generators" / "fashion-mnist" / "cvae"
    run = json.loads((folder / "run.json").read_text())
    assert (run["train_examples"], run["valid_examples"], run["classes"][9]) == (200, 22, "Ankle boot")
    assert "valid_loss" in model.history_[0]  # early stopping watched the held-out images
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())  # no staging folder left

    drawn = generate.sample("fashion-mnist", "cvae", 12, condition="ankle boot", seed=3)
    assert drawn.data.shape == (12, 1, 28, 28) and drawn.conditions == ["ankle boot"] * 12
    assert torch.equal(drawn.data, generate.sample("fashion-mnist", "cvae", 12, condition="Ankle boot", seed=3).data)
    turns = generate.sample("fashion-mnist", "cvae", 20)
    assert turns.conditions[:3] == ["T-shirt/top", "Trouser", "Pullover"]
    rows, names = generate.conditions("fashion-mnist", "cvae", 20)
    assert names == turns.conditions and rows.argmax(1).tolist() == [i % 10 for i in range(20)]
    png = generate.save_grid(drawn.data, tmp_path / "grid.png", ncols=4)
    assert Image.open(png).size == (2 * (4 * 30 + 2), 2 * (3 * 30 + 2))

    report = generate.evaluate("fashion-mnist", "cvae", n=150, k=5, likelihood_examples=20, progress=False)
    m = report.metrics
    assert m["frechet_distance_classifier_floor"] < m["frechet_distance_classifier_noise"]
    assert 0 <= m["conditional_accuracy"] <= 1 and m["is_nll_given_c_nats"] <= -m["elbo_given_c_nats"] + 1e-6
    # the conditional -log p(x|c) is named apart from -log p(x), the class summed out (issue 19)
    likelihood = report.table[report.table["feature_space"] == "likelihood"].set_index("metric")
    assert set(likelihood.index) == {"elbo_given_c_nats", "is_nll_given_c_nats", "is_nll_nats"}
    assert "not -log p(x)" in likelihood.loc["is_nll_given_c_nats", "detail"]
    assert "sum_c p(c) p(x|c)" in likelihood.loc["is_nll_nats", "detail"]
    assert m["is_nll_nats"] <= m["is_nll_given_c_nats"] + np.log(10) + 1e-9  # p(x) >= p(x|c) / 10
    assert "elbo_nats" not in m
    assert {"frechet_distance_classifier", "kid_classifier", "coverage_classifier", "nn_train_median_pixels",
            "classes_present", "scorer_test_accuracy"} <= set(m)
    rows = report.table
    assert set(rows["source"]) >= {"cvae", "train images", "uniform noise"}
    assert (rows.loc[rows["metric"] == "FD", "n_samples"] == 150).all()
    assert report.setup["scorer_test_accuracy"] == m["scorer_test_accuracy"] and "FD" in repr(report)


def test_a_time_budget_ends_training_early_and_says_so(store, capsys):
    """Any epoch outlasts a millisecond: the budget stops after the first, which is validated and kept."""
    assert main(["generate", "train", "--model", "vae", "--epochs", "20", "--limit", "60", "--time-budget", "0.001s",
                 "--param", "vae.channels=4", "--param", "vae.hidden=16", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["epochs_run"] == 1 and trained["stopped"] == "time budget" and trained["best_epoch"] == 1
    assert "valid_loss" in trained


def test_cli_train_sample_evaluate_json(store, tmp_path, capsys):
    assert main(["generate", "train", "--model", "gan", "--epochs", "1", "--limit", "150", "--param", "gan.channels=8",
                 "--param", "gan.noise_dim=16", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["epochs_run"] == 1 and "valid_kid_classifier" in trained  # GAN early stopping: KID, few images
    out = tmp_path / "boots.png"
    assert main(["generate", "sample", "--model", "gan", "--condition", "ankle boot", "--n", "16",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == str(out) and Image.open(out).format == "PNG"
    assert main(["generate", "evaluate", "--model", "gan", "--n", "150", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["setup"]["samples"] == 150 and "conditional_accuracy" in result["metrics"]
    assert {row["source"] for row in result["table"]} >= {"gan", "train images", "uniform noise"}
    assert main(["generate", "list", "--json"]) == 0
    listed = {(r["dataset"], r["model"]): r["trained"] for r in json.loads(capsys.readouterr().out)}
    assert listed[("fashion-mnist", "gan")] and not listed[("fashion-mnist", "vae")]


def test_evaluate_before_train_names_the_train_command(store, capsys):
    with pytest.raises(MmworkError, match="mmwork generate train --dataset fashion-mnist --model vae"):
        generate.evaluate("fashion-mnist", "vae")
    assert main(["generate", "evaluate", "--model", "vae"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trained vae" in err and "mmwork generate train" in err


@pytest.mark.parametrize("argv, message", [
    (["generate", "train", "--model", "diffusion"], "unknown generator model 'diffusion'; choose from vae, cvae"),
    (["generate", "train", "--dataset", "mnist", "--model", "vae"], "unknown data set 'mnist'"),
    (["generate", "train", "--dataset", "speech-prompts", "--model", "gan"],
     "for speech-prompts choose from audio-vae"),
    (["generate", "train", "--model", "vae", "--param", "vae.latnt=4"], "unknown parameter 'latnt'"),
    (["generate", "train", "--model", "vae", "--param", "vae.latent=-1"], "latent: Input should be greater than 0"),
    (["generate", "train", "--model", "cvae", "--param", "cvae.condition_dim=3"], "come(s) from the data set"),
    (["generate", "train", "--model", "vae", "--param", "latent"], "must look like MODEL.NAME=VALUE"),
    (["generate", "train", "--model", "vae", "--limit", "0"], "limit must be a positive number"),
    (["generate", "train", "--model", "vae", "--time-budget", "2x"], "time_budget: '2x' is no duration"),
    (["generate", "train", "--model", "vae", "--resume"], "nothing to resume"),
    (["generate", "sample", "--model", "vae", "--n", "0"], "n must be a positive number"),
])
def test_bad_input_is_one_line_before_compute(store, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in (store / "models" / "generators" / "fashion-mnist").iterdir()) == ["classifier"]


def test_unknown_class_lists_the_classes_and_unconditional_refuses_one(store):
    generate.train("fashion-mnist", "vae", limit=50, params={"channels": 4, "hidden": 16}, **TINY)
    with pytest.raises(MmworkError, match="vae is unconditional and takes no condition; use cvae"):
        generate.sample("fashion-mnist", "vae", 4, condition="Bag")
    generate.train("fashion-mnist", "cvae", limit=50, params={"channels": 4, "hidden": 16}, **TINY)
    with pytest.raises(MmworkError, match=r"unknown class 'ankle boots'; the classes are T-shirt/top, .*Ankle boot"):
        generate.sample("fashion-mnist", "cvae", 4, condition="ankle boots")
    for n in (32, 201):  # 32 features need more samples; the slice has 200 test images
        with pytest.raises(MmworkError, match=f"n={n}: a Fréchet distance in the classifier's 32-d space"):
            generate.evaluate("fashion-mnist", "cvae", n=n)


def test_resume_equals_an_uninterrupted_run(store):
    tiny = {"limit": 100, "params": {"channels": 4, "hidden": 16}, "progress": False}
    generate.train("fashion-mnist", "vae", epochs=1, **tiny)
    assert (generate.checkpoint_dir("fashion-mnist", "vae") / "model.json").exists()
    resumed = generate.train("fashion-mnist", "vae", epochs=2, resume=True, **tiny)
    assert [row["epoch"] for row in resumed.history_] == [1, 2]
    with pytest.raises(MmworkError, match="trained with limit=100; resume with that limit"):
        generate.train("fashion-mnist", "vae", epochs=3, resume=True, **tiny | {"limit": 99})
    straight = generate.train("fashion-mnist", "vae", epochs=2, **tiny)
    assert all(torch.equal(a, b) for a, b in zip(resumed._tensors().values(), straight._tensors().values()))
    loaded = generate.load("fashion-mnist", "vae", device="cpu")
    assert torch.equal(loaded.sample(4, seed=1), straight.sample(4, seed=1))


def test_demo_step_prints_the_table_and_writes_samples(store, tmp_path, capsys):
    from mmwork.apps.demo import DEMO_REPORTS, _generators
    demo = dict(DEMO_REPORTS)["03-generators"]
    assert demo["classifier_budget"] and all(params["time_budget"] for params in demo["model_params"].values())
    assert {"cvae", "gan", "vae", "text-cvae"} <= set(demo["model_params"])  # every generator has a budget
    generate.train("fashion-mnist", "cvae", limit=50, params={"channels": 4, "hidden": 16}, **TINY)
    _generators({"cvae/conditional_accuracy": 0.5, "cvae/frechet_distance_classifier": 9.0,
                 "floor/frechet_distance_classifier_floor": 0.1, "cvae/seconds": 3.0}, tmp_path, audio=None)
    out = capsys.readouterr().out
    assert "conditional_accuracy" in out and "seconds" not in out and "audio-vae" not in out
    assert Image.open(tmp_path / "cvae-by-class.png").size == (3 * (8 * 30 + 2), 3 * (10 * 30 + 2))


def test_text_cvae_takes_text_that_was_never_a_label(store, tmp_path, capsys):
    generate.train("fashion-mnist", "text-cvae", limit=60, params={"channels": 4, "hidden": 16}, **TINY)
    assert generate.load("fashion-mnist", "text-cvae").config.condition_dim == 384  # a MiniLM embedding
    drawn = generate.sample("fashion-mnist", "text-cvae", 6, condition="a pair of ankle boots")
    assert drawn.data.shape == (6, 1, 28, 28) and drawn.conditions == ["a pair of ankle boots"] * 6
    out = tmp_path / "boots.png"
    assert main(["generate", "sample", "--model", "text-cvae", "--condition", "a pair of ankle boots",
                 "--n", "8", "--out", str(out)]) == 0
    assert out.exists() and "a pair of ankle boots" in capsys.readouterr().out


@pytest.mark.slow
def test_audio_vae_train_sample_evaluate_through_the_cli(tmp_path, monkeypatch, capsys):
    """Speech prompts end to end: about 4 minutes on 2 cores (Griffin-Lim on five sets of 80 patches)."""
    from mmwork import datasets
    monkeypatch.setenv("MMWORK_DATA", str(tmp_path / "data"))
    datasets.get("speech-prompts")
    for model in ("audio-classifier", "audio-vae"):
        assert main(["generate", "train", "--dataset", "speech-prompts", "--model", model, "--epochs", "2",
                     "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["epochs_run"] == 2
    assert main(["generate", "sample", "--dataset", "speech-prompts", "--model", "audio-vae", "--condition", "digits",
                 "--n", "2", "--out", str(tmp_path / "wavs")]) == 0
    wavs = sorted((tmp_path / "wavs").glob("*.wav"))
    import soundfile
    assert [p.name for p in wavs] == ["000-digits.wav", "001-digits.wav"] and soundfile.info(wavs[0]).samplerate == 8000
    capsys.readouterr()
    assert main(["generate", "evaluate", "--dataset", "speech-prompts", "--model", "audio-vae", "--n", "80",
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["frechet_distance_mfcc_stats_floor"] < metrics["frechet_distance_mfcc_stats_noise"]
    assert {"conditional_accuracy", "mcd_db", "mcd_db_vocoder", "is_nll_given_c_nats"} <= set(metrics)
    assert "is_nll_nats" not in metrics  # the audio VAE is conditional on the category: -log p(x|c) only


@pytest.mark.gpu
def test_train_and_sample_on_cuda_with_autocast(store):
    model = generate.train("fashion-mnist", "gan", limit=150, device="cuda", params={"channels": 8, "amp": True},
                           **TINY)
    assert model.device_.type == "cuda" and generate.load("fashion-mnist", "gan", device="cuda").device_.type == "cuda"
    drawn = generate.sample("fashion-mnist", "gan", 8, condition="Bag", device="cuda")
    assert drawn.data.device.type == "cpu" and drawn.data.shape == (8, 1, 28, 28)
