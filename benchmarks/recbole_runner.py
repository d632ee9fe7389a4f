"""Train and evaluate one RecBole 1.2.1 model on a split given as files; print one JSON result.

Runs INSIDE the RecBole environment (``bash benchmarks/recbole_env.sh``) and never imports mmwork,
so RecBole's pinned numpy/scipy/pandas stay out of the mmwork environment:

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 benchmarks/.venvs/recbole/bin/python benchmarks/recbole_runner.py \\
        --split-dir DIR --model BPR [--config '{"epochs": 200}'] [--threads 2] [--out result.json]

``DIR`` holds ``train.csv``, ``valid.csv``, ``test.csv`` (``user_id,item_id,weight``, as written by
mmwork's ``Split.to_files``). They are converted to RecBole atomic benchmark files
``ml100k-mm.{train,valid,test}.inter`` and loaded with ``benchmark_filename: [train, valid, test]``:
RecBole then skips its own filtering, shuffling and splitting and uses exactly these three parts
(``Dataset.build``), remapping ids over their union. Evaluation is RecBole's full ranking: train items
are masked for valid, train + valid items for test.

Times (seconds, ``time.perf_counter``):
  data_s  - create_dataset + data_preparation (reading the atomic files, remapping, dataloaders);
  fit_s   - model construction (EASE and ItemKNN do all their work there) + ``trainer.fit``
            (training and the periodic validation used for early stopping, checkpoint writes);
  eval_s  - ``trainer.evaluate`` on test (loading the best checkpoint first, as RecBole does);
  fit_eval_s = fit_s + eval_s, the number compared with mmwork's fit_s + eval_s.
The caller measures the process wall time (imports included) around this script.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole reloads its own checkpoints

DATASET = "ml100k-mm"
PARTS = ("train", "valid", "test")
HEADER = "user_id:token\titem_id:token\trating:float\n"

# Settings every run uses (the caller's --config is applied on top).
BASE_CONFIG = {
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "RATING_FIELD": "rating",
    "load_col": {"inter": ["user_id", "item_id", "rating"]},
    "benchmark_filename": list(PARTS),
    "eval_args": {"group_by": "user", "order": "RO", "split": {"RS": [0.8, 0.1, 0.1]}, "mode": "full"},
    "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "use_gpu": False,
    "seed": 2020,
    "reproducibility": True,
    "show_progress": False,
    "state": "WARNING",
    "worker": 0,
    "metric_decimal_place": 6,
}


def write_atomic(split_dir: Path, data_dir: Path) -> dict[str, int]:
    """CSV parts -> ``data_dir/ml100k-mm/ml100k-mm.<part>.inter``; returns rows per part."""
    import pandas as pd

    folder = data_dir / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for part in PARTS:
        frame = pd.read_csv(split_dir / f"{part}.csv", dtype={"user_id": str, "item_id": str})
        if "weight" not in frame:
            frame["weight"] = 1.0
        with open(folder / f"{DATASET}.{part}.inter", "w") as handle:
            handle.write(HEADER)
            frame[["user_id", "item_id", "weight"]].to_csv(handle, sep="\t", header=False, index=False)
        sizes[part] = len(frame)
    return sizes


def run(model_name: str, split_dir: Path, overrides: dict, threads: int | None) -> dict:
    import torch
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    if threads:
        torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="recbole-bench-"))
    file_sizes = write_atomic(split_dir, work / "data")
    os.chdir(work)  # RecBole writes ./log and ./log_tensorboard relative to the working directory
    config_dict = BASE_CONFIG | {"data_path": str(work / "data"), "checkpoint_dir": str(work / "saved")} | overrides
    sys.argv = sys.argv[:1]  # Config also parses "--key=value" command-line arguments: give it none
    config = Config(model=model_name, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    if threads:  # init_seed/init_logger leave it alone, but be explicit
        torch.set_num_threads(threads)

    started = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_s = time.perf_counter() - started

    sizes = {name: int(len(loader._dataset)) for name, loader in
             zip(PARTS, (train_data, valid_data, test_data))}
    if sizes != file_sizes:
        raise RuntimeError(f"RecBole's parts {sizes} differ from the files {file_sizes}")

    started = time.perf_counter()
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    history: list[dict] = []  # one entry per validation: epoch (1-based) and valid NDCG@10
    best_valid_score, best_valid = trainer.fit(
        train_data, valid_data, saved=True, show_progress=False,
        callback_fn=lambda epoch, score: history.append({"epoch": epoch + 1, "valid_score": float(score)}))
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    eval_s = time.perf_counter() - started

    epochs_run = len(trainer.train_loss_dict)
    best_epoch = epochs_run
    if history:  # RecBole keeps the last of equal best scores (early_stopping compares with >=)
        top = max(h["valid_score"] for h in history)
        best_epoch = [h["epoch"] for h in history if h["valid_score"] == top][-1]
    import numpy as np
    import pandas
    import scipy
    return {
        "model": model_name,
        "test": {k: float(v) for k, v in test.items()},
        "best_valid": {k: float(v) for k, v in (best_valid or {}).items()},
        "best_valid_score": float(best_valid_score),
        "best_epoch": best_epoch,
        "valid_history": history,
        "epochs_run": epochs_run,
        "times": {"data_s": data_s, "fit_s": fit_s, "eval_s": eval_s, "fit_eval_s": fit_s + eval_s},
        "sizes": sizes,
        "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),  # without RecBole's [PAD]
        "evaluated_users": {"valid": int(len(valid_data.uid_list)), "test": int(len(test_data.uid_list))},
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "config": {k: _plain(config[k]) for k in sorted(set(config_dict) | set(_MODEL_KEYS.get(model_name, ())) |
                                                         set(_TRAIN_KEYS)) if k in config.final_config_dict},
        "versions": {"recbole": recbole.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__, "pandas": pandas.__version__, "python": platform.python_version()},
        "torch_threads": torch.get_num_threads(),
    }


_TRAIN_KEYS = ("epochs", "train_batch_size", "learner", "learning_rate", "train_neg_sample_args", "eval_step",
               "stopping_step", "weight_decay", "eval_batch_size", "valid_metric", "shuffle", "MODEL_TYPE", "device")
_MODEL_KEYS = {"BPR": ("embedding_size",), "EASE": ("reg_weight",), "ItemKNN": ("k", "shrink", "knn_method"),
               "MultiVAE": ("mlp_hidden_size", "latent_dimension", "dropout_prob", "anneal_cap",
                            "total_anneal_steps")}


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split-dir", required=True, type=Path, help="folder with train/valid/test.csv")
    parser.add_argument("--model", required=True, help="RecBole model class name: BPR, MultiVAE, EASE, ItemKNN, ...")
    parser.add_argument("--config", default="{}", help="JSON object of RecBole settings over the defaults")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    here = os.getcwd()
    try:
        result = run(args.model, args.split_dir.resolve(), json.loads(args.config), args.threads)
    finally:
        work = os.getcwd()
        os.chdir(here)
        if Path(work).name.startswith("recbole-bench-"):  # the run's atomic files, logs and checkpoints
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print("RECBOLE_RESULT " + json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
