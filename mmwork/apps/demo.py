"""The main job, end to end on the default data: ``mmwork demo`` (``make demo``).

Each step prints what it did; a step that fails stops the demo with a non-zero exit.
"""
from __future__ import annotations

import json
import os
import time

from mmwork import datasets
from mmwork.store.tables import list_tables

DEMO_IMAGES = 1000  # Fashion-MNIST images given CNN features (step 2) and explored by 01-features
DEMO_DATASETS = ["movielens-100k", "fashion-mnist", "speech-prompts", "instrument-samples", "austen", "digits-av"]
DEMO_MODELS = ["smollm2", "piper-voice", "whisper-tiny"]  # pretrained models, fetched like the data sets
# 03-generators trains image generators through mmwork.apps.generate (saved under data/models/generators,
# where step 5 samples from them) under wall-clock budgets rather than on toy slices: on a faster machine or
# a GPU the same demo trains further ("epochs" is only a cap). The judge classifier, the conditional VAE and the
# GAN train on all 60,000 training images (the classifier's one-cycle schedule spans 2 epochs); the unconditional
# and the text-conditioned VAE, which the demo's figures do not rest on, on the first 20,000 (one epoch each).
# 300 samples scored. Its sound section is off here (scoring sound runs Griffin-Lim on five sets of test
# patches, minutes on 2 cores): step 5 trains the audio VAE and its judge itself. Full-size figures:
# benchmarks/fashion_generators.py; quality against CPU-minutes: benchmarks/quality_vs_compute.py
# Issue 22/23 added two notebooks to the same 10 minutes, so every budget was cut (issue 21's were classifier 60s,
# cvae 40s, gan 55s, vae 20s, text-cvae 20s, audio VAE 30s + judge 20s; its figures at those budgets are in the README).
DEMO_BUDGETS = {"classifier": "35s", "cvae": "25s", "gan": "40s", "vae": "10s", "text-cvae": "10s"}
DEMO_GENERATORS = {"train_limit": None, "limits": {"vae": 20000, "text-cvae": 20000}, "epochs": 20,
                   "classifier_limit": None, "classifier_epochs": 2, "classifier_budget": DEMO_BUDGETS["classifier"],
                   "model_params": {name: {"time_budget": budget} for name, budget in DEMO_BUDGETS.items()
                                    if name != "classifier"},
                   "samples": 300, "effnet_samples": 0, "likelihood_examples": 100, "nll_k": 10, "audio_dataset": None}
DEMO_AUDIO = {"dataset": "instrument-samples", "time_budget": "20s", "judge_budget": "15s"}
# 05-personalised on all of MovieLens-100K with a small profile-conditioned language model (one epoch) over
# TF-IDF/LSA text vectors (a generated text embeds in microseconds; MiniLM took 80 s for the 1,000 evaluated
# candidates on 2 busy cores), judged over 50 users: its personalisation figures show the pipeline, not the
# models. Then the Austen LSTM on all 24,852 training sentences within a 30 s budget (BPE 2,000, an adaptive
# softmax: 6 epochs in 60 s reached 1.12x the fair Kneser-Ney 5-gram on 2 quiet cores, 2 epochs 1.45x) and
# SeqGAN from it for one adversarial epoch. Full size: benchmarks/personalised.py and benchmarks/text_generators.py
DEMO_PERSONALISED = {"n_users": 50, "show_users": 2, "n": 5, "candidates": 20, "swaps": 5, "vocab_size": 500,
                     "lm_embedding": 32, "lm_hidden": 64, "lm_epochs": 1,
                     "personalise_params": {"features": ["text:tfidf_lsa", "items:genres"], "judge": {"epochs": 10},
                                            "lm": {"batch_size": 256, "lr": 0.003}},
                     "austen_limit": None, "austen_vocab": 2000, "austen_embedding": 64, "austen_hidden": 128,
                     "austen_epochs": 20, "austen_budget": "30s", "austen_lr": 0.005, "max_len": 48,
                     "austen_lm_params": {"softmax": "adaptive", "cutoffs": [500], "dropout": 0.0}, "gan_epochs": 1,
                     "gan_params": {"d_pretrain_steps": 5, "d_steps": 1, "g_batch": 8, "rollouts": 2, "d_filters": 16,
                                    "d_embedding_dim": 16},
                     "temperatures": [0.7, 1.0, 1.3], "samples": 100, "references": 300, "self_references": 50}
# 06-cross-modal: the attention fusion alone within 45 s on all 8,000 paired training rows (the four fusions side by
# side and MultiVae: benchmarks/cross_modal.py), judges within 6 s each, 1,000 joint samples instead of the protocol's
# 10,000; the Wesnoth completion is off (its 146 MB package and three feature extractions take minutes on 2 cores).
DEMO_CROSS_MODAL = {"fusions": ["attention"], "time_budget": "45s", "classifier_budget": "6s", "n_joint": 1000,
                    "per_row": 6, "wesnoth": False}
# 07-language-model: two users, few-shot only, the pitches spoken and heard back; no LoRA fine-tune and no comparison
# with the LSTM (minutes each on 2 cores; their table: benchmarks/language_personalised.py, docs/language.md).
DEMO_LANGUAGE = {"users": ["196", "1"], "modes": ["few-shot"], "n_items": 1, "speech": True, "eval_users": 0}
DEMO_REPORTS = [("01-features", {"image_limit": DEMO_IMAGES}), ("02-recommenders", {}), ("03-generators", DEMO_GENERATORS),
                ("04-explore", {}), ("05-personalised", DEMO_PERSONALISED), ("06-cross-modal", DEMO_CROSS_MODAL),
                ("07-language-model", DEMO_LANGUAGE)]
PERSONALISED_CONDITIONS = {"guided": "generated (guided)", "unguided": "generated (unguided)",
                           "random": "random real items", "held_out": "held-out items",
                           "guide_top_k": "guide's top-k real items", "placebo": "placebo (another user's set)"}
PERSONALISED_JUDGES = {"": "hybrid (reads the guide's features)", "text_factors:": "text factors (TF-IDF/LSA)"}
"""The conditions and judges 05-personalised records (metric prefixes -> the rows' names in its table)."""
CONDITIONAL_IMAGE_MODELS = ("gan", "cvae")  # the demo draws a per-class grid of each
GENERATOR_METRICS = ("conditional_accuracy", "frechet_distance_classifier", "kid_classifier", "coverage_classifier",
                     "is_nll_nats", "is_nll_given_c_nats", "test_accuracy")
# (data set, modality, items limit): CNN features for all 70k images take ~2 h on 2 CPU cores,
# so the demo extracts the first 1,000 (2,000 took 155 CPU-seconds; the generators needed the time);
# `mmwork extract fashion-mnist` does them all.
DEMO_EXTRACTIONS = [("movielens-100k", "text", None), ("fashion-mnist", "image", DEMO_IMAGES),
                    ("speech-prompts", "audio", None), ("instrument-samples", "audio", None)]


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _generators(metrics: dict, out, audio: dict | None = DEMO_AUDIO) -> None:
    """The generators' recorded figures as a model x metric table, then a grid of conditional samples
    and a few generated sounds from the saved models (what `mmwork generate sample` writes)."""
    import pandas as pd

    from mmwork.apps import generate
    rows: dict[str, dict] = {}
    for key, value in metrics.items():
        name, _, metric = key.partition("/")
        if metric in GENERATOR_METRICS or (metric.startswith("frechet") and metric.endswith(("_floor", "_noise"))):
            rows.setdefault(name, {})[metric] = value
    if rows:
        print(pd.DataFrame(rows).T.round(4).to_string(na_rep="-"))
    for model in CONDITIONAL_IMAGE_MODELS:
        recorded = generate.info("fashion-mnist", model)
        if recorded:
            classes = recorded["classes"]
            wanted = [c for c in classes for _ in range(8)]
            grid = generate.save_grid(generate.sample("fashion-mnist", model, len(wanted), condition=wanted).data,
                                      out / f"{model}-by-class.png", ncols=8, scale=3)
            print(f"  {model} samples, one row per class ({', '.join(classes)}): {grid}")
    if audio is None:
        return
    dataset = audio["dataset"]
    generate.train(dataset, "audio-classifier", time_budget=audio["judge_budget"], progress=False)
    model = generate.train(dataset, "audio-vae", time_budget=audio["time_budget"], progress=False)
    heard = generate.audio_recognition(dataset)
    classes = model.config.classes[:3]
    sounds = generate.save_samples(generate.sample(dataset, "audio-vae", len(classes), condition=classes), out / dataset)
    print(f"  audio-vae on {dataset}: {len(model.history_)} epochs (best {model.best_epoch_}); of "
          f"{heard['samples']} samples (4 per category, heard through Griffin-Lim) the audio classifier recognised "
          f"{heard['recognised']:.3f} as their category; chance {heard['majority_share']:.3f}, real test clips "
          f"{heard['real_recognised']:.3f}; sounds ({', '.join(classes)}): {sounds[0].parent}")


def _personalised(metrics: dict) -> None:
    """The table 05-personalised recorded, per judge and condition: the judge's mean percentile rank for
    the target users and for the swap partners, their difference and the lift, with 95% intervals
    (resampling users, swap partners and generator seeds); then the Austen perplexities and the
    quality-diversity verdict."""
    import pandas as pd
    rows = {}
    for judge, judge_name in PERSONALISED_JUDGES.items():
        for prefix, name in PERSONALISED_CONDITIONS.items():
            if f"{judge}{prefix}/lift" not in metrics:
                continue
            m = {key: metrics.get(f"{judge}{prefix}/{key}", float("nan"))
                 for key in ("pr", "pr_low", "pr_high", "swap_pr", "diff", "diff_low", "diff_high", "lift", "lift_low",
                             "lift_high")}
            rows[(judge_name, name)] = {
                "rank [95%]": f"{m['pr']:.1f} [{m['pr_low']:.1f}, {m['pr_high']:.1f}]",
                "swap rank": f"{m['swap_pr']:.1f}",
                "difference [95%]": f"{m['diff']:+.1f} [{m['diff_low']:+.1f}, {m['diff_high']:+.1f}]",
                "lift [95%]": f"{m['lift']:.3f} [{m['lift_low']:.3f}, {m['lift_high']:.3f}]"}
    if rows:
        print(pd.DataFrame(rows).T.to_string())
    correlations = {k.partition("/")[2]: v for k, v in metrics.items() if k.startswith("spearman/")}
    if correlations:
        print("  guide-judge rank correlation on real items (Spearman): "
              + ", ".join(f"{pair.replace('_', ' ')} {value:.2f}" for pair, value in correlations.items()))
    perplexity = {model: metrics.get(f"austen/perplexity_{key}") for model, key in
                  (("LSTM", "lstm"), ("SeqGAN", "seqgan"), ("Kneser-Ney 5-gram", "kn5"))}
    if all(value is not None for value in perplexity.values()):
        print("  Austen test perplexity per BPE token: " + ", ".join(f"{k} {v:.1f}" for k, v in perplexity.items()))
    if "austen/mle_better_share" in metrics:
        interval = (f" [95%: {metrics['austen/mle_minus_gan_bleu_low']:+.4f}, "
                    f"{metrics['austen/mle_minus_gan_bleu_high']:+.4f}]" if "austen/mle_minus_gan_bleu_low" in metrics else "")
        print(f"  quality-diversity: the LSTM's BLEU-4 is above SeqGAN's over {metrics['austen/mle_better_share']:.0%} "
              f"of the shared self-BLEU range (mean gap {metrics['austen/mle_minus_gan_bleu']:+.4f}{interval})")


def _cross_modal(metrics: dict) -> None:
    """The judges' test accuracy (the ceilings), then the attention fusion's coherence."""
    ceilings = {k.split("/")[1].replace("_test_accuracy", ""): v for k, v in metrics.items() if k.startswith("classifier/")}
    print("  judges' test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in ceilings.items()))
    for key, value in metrics.items():
        if key.startswith(("attention/", "poe/", "moe/", "mopoe/")):
            print(f"  {key:<32} {value:.3f}")


def _language(metrics: dict) -> None:
    """The personalisation differences (percentile points, own user minus swapped users) and the speech round trip."""
    for key, value in metrics.items():
        print(f"  {key:<32} {value:.3f}")


def run_demo() -> None:
    from mmwork.features import extract
    started = time.perf_counter()
    _step("1. data sets and pretrained models: fetch and write canonical tables")
    for name in DEMO_DATASETS:
        result = datasets.get(name)
        counts = ", ".join(f"{table} {rows:,}" for table, rows in result["tables"].items())
        took = "cached" if result["cached"] else f"{result['seconds']} s"
        print(f"  {name:<20} {counts}  ({took})", flush=True)

    from mmwork.datasets import pretrained
    for name in DEMO_MODELS:
        folder = pretrained.get(name)
        print(f"  {name:<20} {pretrained.spec(name).what} ({folder})", flush=True)

    _step(f"2. features: Dask extraction into Parquet ({os.cpu_count()} local worker processes)")
    for name, modality, limit in DEMO_EXTRACTIONS:
        summary = extract(name, modality, limit=limit).iloc[0]
        print(f"  {name:<20} {modality:<6} rows {summary['rows']:>6,}  extracted {summary['extracted']:>6,}  "
              f"reused {summary['reused']:>6,}  errors {summary['errors']}  ({summary['seconds']} s)", flush=True)

    _step("3. reports: notebooks executed by Papermill (features, recommenders, generators, exploration, "
          "personalised content)")
    from mmwork.apps.reports import reports_dir, run_report
    runs = {}
    for notebook, params in DEMO_REPORTS:
        runs[notebook] = run_report(notebook, params, progress=False)
        row = runs[notebook]
        print(f"  {notebook:<16} {row['status']}  {row['duration_s']:>6.1f} s  {reports_dir() / row['html']}", flush=True)
    print(f"  index: {reports_dir() / 'index.html'}")

    _step("4. recommenders on movielens-100k (from 02-recommenders; RecBole protocol: every rating a positive, "
          "per-user random 8:1:1, full ranking, K=10)")
    metrics = json.loads(runs["02-recommenders"]["metrics"])
    for name, value in metrics.items():
        if name.endswith("ndcg@10"):
            print(f"  {name:<32} {value:.4f}")

    _step("5. generators (images trained and scored by 03-generators, each on all 60,000 training images within "
          f"a wall-clock budget ({', '.join(f'{k} {v}' for k, v in DEMO_BUDGETS.items())}); "
          f"{DEMO_GENERATORS['samples']} samples vs as many test images, distances in the in-project classifier's "
          "feature space, never FID; then an audio VAE within its budget, heard by an audio classifier)")
    _generators(json.loads(runs["03-generators"]["metrics"]), reports_dir() / "generators")

    _step("6. personalised content (05-personalised: texts generated for "
          f"{DEMO_PERSONALISED['n_users']} movielens-100k users, ranked with every real item by two judge "
          "recommenders that did not guide generation, each through one scoring path; percentile rank 0-100, "
          "50 = chance; difference = rank for the own user - for swapped users, lift = their ratio; placebo = a "
          "set made for another user; 95% bootstrap intervals over generator seeds, users and swap partners)")
    _personalised(json.loads(runs["05-personalised"]["metrics"]))

    _step("7. cross-modal generation (06-cross-modal: one multimodal VAE over image, sound and text of digits-av, "
          "attention fusion; coherence = share of generated targets the target modality's judge classifies as the "
          "given class, chance 0.10, on the test split)")
    _cross_modal(json.loads(runs["06-cross-modal"]["metrics"]))

    _step("8. the language model (07-language-model: SmolLM2 writes an item and a pitch from a user's training "
          "profile; Piper speaks it and Whisper hears it back: the round trip's word error rate)")
    _language(json.loads(runs["07-language-model"]["metrics"]))

    _step("summary: tables under data/processed")
    print(list_tables().drop(columns=["schema", "path"]).to_string(index=False))
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
