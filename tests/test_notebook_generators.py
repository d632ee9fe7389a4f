"""The generators notebook (03-generators) runs end to end through Papermill with tiny parameters on
small real slices of Fashion-MNIST and speech-prompts, records finite metrics in the ledger and
explains each result."""
import json
import math

import nbformat
import pytest

from mmwork.apps import reports
from mmwork.apps.reports import run_report

TINY = {"train_limit": 300, "epochs": 1, "classifier_epochs": 1, "classifier_limit": 300, "samples": 150,
        "effnet_samples": 0, "likelihood_examples": 40, "nll_k": 10, "audio_dataset": "speech-prompts", "audio_epochs": 1,
        "audio_samples": 0, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, fashion_idx_slice):
    """A private data root whose fashion-mnist table holds the first 300 train and 200 test images (the
    real idx files cut short) and the whole speech-prompts table (568 clips: the audio Fréchet distance
    on 78-d MFCC statistics needs more than 78 test clips), both built by ``mmwork.datasets.get``; and
    a private reports folder."""
    from mmwork import datasets
    root = tmp_path_factory.mktemp("generators-notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root / "data"))
        mp.setenv("MMWORK_REPORTS", str(root / "reports"))
        mp.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread, the machine is shared
        datasets.get("fashion-mnist", source=fashion_idx_slice)
        datasets.get("speech-prompts")
        yield root


def _unexplained(run) -> list[int]:
    """Code cells that show a result with no note (a markdown cell of at least 20 words) after them."""
    nb = nbformat.read(reports.reports_dir() / run["folder"] / f"{run['notebook']}.ipynb", as_version=4)
    cells = nb.cells + [nbformat.v4.new_markdown_cell("")]
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.outputs
            and not (cells[i + 1].cell_type == "markdown" and len(cells[i + 1].source.split()) >= 20)]


def test_generators_notebook_records_finite_metrics(env):
    run = run_report("03-generators", TINY, progress=False)
    metrics = json.loads(run["metrics"])
    assert run["status"] == "ok"
    for model in ("cvae", "gan", "text-cvae"):
        for key in ("frechet_distance_classifier", "kid_classifier", "precision_classifier", "coverage_classifier",
                    "conditional_accuracy", "nn_train_median_pixels"):
            assert math.isfinite(metrics[f"{model}/{key}"]), f"{model}/{key} = {metrics.get(f'{model}/{key}')}"
    # the k-sample bound is tighter than the one-sample ELBO (up to sampling noise), each of its own quantity
    assert 0 < metrics["vae/is_nll_nats"] <= -metrics["vae/elbo_nats"] + 5
    assert 0 < metrics["cvae/is_nll_given_c_nats"] <= -metrics["cvae/elbo_given_c_nats"] + 5
    assert metrics["cvae/is_nll_nats"] <= metrics["cvae/is_nll_given_c_nats"] + math.log(10) + 1e-9
    assert "cvae/elbo_nats" not in metrics and "text-cvae/is_nll_nats" not in metrics
    assert 1 <= metrics["vae/classes_present"] <= 10
    floor, noise = metrics["floor/frechet_distance_classifier"], metrics["noise/frechet_distance_classifier"]
    assert 0 <= floor < noise, "real training images must be nearer the test images than noise is"
    assert 0 < metrics["classifier/test_accuracy"] <= 1
    assert 0 <= metrics["gan/share_below_test_p1"] <= 1 and metrics["test/nn_train_median_pixels"] > 0
    assert metrics["audio-vae/valid_loss"] > 0  # negative ELBO of held-out speech patches, nats
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    # every declared headline metric is recorded, but the sound scores (audio_samples=0 here)
    assert set(json.loads(run["headline"])) - set(metrics) == {"audio-vae/conditional_accuracy"}
    # curves, two class grids beside their nearest training images, interpolations, text grid, class shares,
    # distance histogram, spectrograms
    assert len(run["figures"]) >= 8
    html = (reports.reports_dir() / run["html"]).read_text()
    assert html.count("<audio") >= 1, "generated sound comes with players"
    assert not _unexplained(run), "results without a note explaining them"


@pytest.mark.slow
def test_generators_notebook_scores_generated_sound(env):
    """The sound metrics (Griffin-Lim on every scored clip: minutes on 2 cores) with their floors."""
    run = run_report("03-generators", TINY | {"audio_samples": 100}, progress=False)
    metrics = json.loads(run["metrics"])
    for key in ("frechet_distance_mfcc_stats", "conditional_accuracy", "is_nll_given_c_nats"):
        assert math.isfinite(metrics[f"audio-vae/{key}"]), f"audio-vae/{key} = {metrics.get(f'audio-vae/{key}')}"
    assert not _unexplained(run), "results without a note explaining them"
