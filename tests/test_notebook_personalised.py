"""The personalised-content notebook (05-personalised) runs end to end through Papermill with tiny
parameters on real MovieLens-100K and Jane Austen data in a private data root, records the judge's
lift with its interval and baselines and the Austen perplexities, explains each result, and stops at
its first code cell on a bad parameter."""
import json
import math
import zipfile
from pathlib import Path

import nbformat
import pytest

from mmwork import MmworkError
from mmwork.apps import reports
from mmwork.apps.demo import DEMO_PERSONALISED, PERSONALISED_CONDITIONS, _personalised
from mmwork.apps.reports import run_report

# TF-IDF/LSA text vectors instead of MiniLM: the same loop, without a transformer on 2 CPU cores
FEATURES = ["text:tfidf_lsa", "items:genres"]
TINY = {"n_users": 40, "show_users": 2, "n": 5, "candidates": 10, "swaps": 5, "vocab_size": 500, "lm_embedding": 32,
        "lm_hidden": 64, "lm_epochs": 1, "personalise_params": {"features": FEATURES, "judge": {"epochs": 2}},
        "austen_limit": 300, "austen_vocab": 500, "austen_embedding": 32, "austen_hidden": 64, "austen_epochs": 1,
        "max_len": 32, "gan_epochs": 1, "temperatures": [0.8, 1.2], "samples": 40, "references": 100,
        "self_references": 20, "gan_params": {"d_pretrain_steps": 2, "d_steps": 1, "g_batch": 8, "rollouts": 2,
                                              "d_filters": 8, "d_embedding_dim": 16},
        "seed": 0, "device": "cpu"}
USERS = 200  # MovieLens users kept (ids 1-200)
CONDITIONS = ("guided", "unguided", "random", "held_out", "guide_top_k")


@pytest.fixture(scope="module")
def movielens_slice(tmp_path_factory) -> Path:
    """RecBole's ml-100k atomic files (from the recbole wheel) with the ratings of users 1-200 only
    (19,747 of 100,000; every film kept): a source folder for ``mmwork.datasets.get``, so the
    generator's epoch over one pair per training rating takes seconds, not a minute."""
    from mmwork.datasets.sources import pypi_wheel
    from mmwork.datasets.movielens import _IN_WHEEL, RECBOLE_FILES, WHEEL
    source = tmp_path_factory.mktemp("ml-100k-slice")
    with zipfile.ZipFile(pypi_wheel(WHEEL)) as wheel:
        for name in RECBOLE_FILES:
            lines = wheel.read(_IN_WHEEL + name).decode().splitlines(keepends=True)
            if name.endswith(".inter"):
                lines = lines[:1] + [line for line in lines[1:] if int(line.split("\t")[0]) <= USERS]
            (source / name).write_text("".join(lines))
    return source


@pytest.fixture(scope="module")
def env(tmp_path_factory, movielens_slice):
    """A private data root with the MovieLens slice (its text features as TF-IDF/LSA only) and the
    Austen sentences, both built by ``mmwork.datasets.get``; and a private reports folder."""
    from mmwork import datasets
    from mmwork.features import extract
    root = tmp_path_factory.mktemp("personalised-notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root / "data"))
        mp.setenv("MMWORK_REPORTS", str(root / "reports"))
        mp.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread, the machine is shared
        datasets.get("movielens-100k", source=movielens_slice)
        datasets.get("austen")
        extract("movielens-100k", "text", scheduler="sync", progress=False,
                params={"text": {"minilm": False, "skipgram_epochs": 1, "max_features": 2000, "lsa_components": 16}})
        yield root


def _executed(run):
    return nbformat.read(reports.reports_dir() / run["folder"] / f"{run['notebook']}.ipynb", as_version=4)


def _unexplained(nb) -> list[int]:
    """Code cells that show a result with no note (a markdown cell of at least 20 words) after them."""
    cells = nb.cells + [nbformat.v4.new_markdown_cell("")]
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.outputs
            and not (cells[i + 1].cell_type == "markdown" and len(cells[i + 1].source.split()) >= 20)]


def test_personalised_notebook_records_the_lift_with_baselines_and_perplexities(env, capsys):
    run = run_report("05-personalised", TINY, progress=False)
    metrics = json.loads(run["metrics"])
    assert run["status"] == "ok"
    for condition in CONDITIONS:
        pr, low, high = (metrics[f"{condition}/{k}"] for k in ("pr", "pr_low", "pr_high"))
        assert 0 <= low <= pr <= high <= 100, f"{condition}: pr {pr} outside its interval [{low}, {high}]"
        lift, lift_low, lift_high = (metrics[f"{condition}/{k}"] for k in ("lift", "lift_low", "lift_high"))
        assert 0 < lift_low <= lift <= lift_high, f"{condition}: lift {lift} outside [{lift_low}, {lift_high}]"
        assert 0 <= metrics[f"{condition}/swap_pr"] <= 100
    # the judge works: the users' own held-out items rank far above random unseen items, which sit near 50
    assert metrics["held_out/pr"] > metrics["random/pr"] + 10
    assert 35 < metrics["random/pr"] < 65
    for condition in ("guided", "unguided"):
        assert 0 <= metrics[f"{condition}/copy_rate"] <= 1 and 0 <= metrics[f"{condition}/diversity"] <= 2
    for model in ("lstm", "seqgan", "kn5"):
        assert 1 < metrics[f"austen/perplexity_{model}"] < TINY["austen_vocab"] * 2, model
    assert 0 <= metrics["austen/mle_better_share"] <= 1 and math.isfinite(metrics["austen/mle_minus_gan_bleu"])
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    assert set(json.loads(run["headline"])) <= set(metrics), "a declared headline metric was never recorded"
    assert len(run["figures"]) >= 3  # generator curve, lift figure, quality-diversity curves
    nb = _executed(run)
    outputs = "".join(o.get("text", "") + "".join(map(str, o.get("data", {}).values())) for c in nb.cells
                      if c.cell_type == "code" for o in c.outputs)
    assert "user " in outputs and "generated, guided" in outputs, "the users' panels are missing"
    verdicts = ("dominates", "cross", "coincide", "cannot be compared")
    assert any(word in outputs for word in verdicts), "no verdict on the quality-diversity curves in prose"
    assert not _unexplained(nb), "results without a note explaining them"
    # the demo's step 6 prints the lift table from these recorded metrics
    _personalised(metrics)
    printed = capsys.readouterr().out
    assert all(name in printed for name in PERSONALISED_CONDITIONS.values()) and "Kneser-Ney 5-gram" in printed


def test_the_demo_parameters_are_the_notebooks():
    """``make demo`` runs 05-personalised with parameters it has, of the right types, at a small size:
    few users, and the Austen LSTM on all sentences but within a wall-clock budget."""
    full = reports.check_parameters(reports.find_notebook("05-personalised"), DEMO_PERSONALISED)
    assert full["n_users"] <= 100 and full["lm_epochs"] <= 2 and full["austen_budget"]


@pytest.mark.parametrize("bad, message", [({"dataset": "no-such-data"}, "no-such-data"),
                                          ({"n_users": 0}, "n_users")])
def test_a_bad_parameter_stops_the_notebook_at_its_first_code_cell(env, bad, message):
    with pytest.raises(MmworkError, match=message):
        run_report("05-personalised", TINY | bad, progress=False)
    last = reports.ledger().iloc[-1]
    assert last["status"] == "failed" and "MmworkError" in last["error"] and message in last["error"]
    nb = nbformat.read(reports.reports_dir() / last["folder"] / "05-personalised.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"
            and not {"parameters", "injected-parameters", "headline"} & set(c.metadata.get("tags", []))]
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.outputs)]
    assert failed == [0], "the error must come from the first code cell, before any training"
