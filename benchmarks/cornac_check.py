"""Cornac 3.0.1's README experiment on MovieLens-100K, and mmwork evaluating the same models on
Cornac's exact split under Cornac's rule: do the numbers agree?

Protocol (Cornac's README): the 100,000 rows of ``ml-100k.inter`` (RecBole wheel; mmwork's
``movielens-100k`` interactions, in file order) as (user, item, rating) triples;
``RatioSplit(test_size=0.2, rating_threshold=4.0, exclude_unknowns=True, seed=123)``: a global
random 80/20 split, test rows of users or items unseen in training dropped; relevant = test rating
>= 4; per user, every item seen in training is ranked except the user's training items rated >= 4
(``ranking_eval`` in cornac/eval_methods/base_method.py); NDCG, Recall, Precision @10, averaged over
users with a relevant test item.

  - Cornac (its own venv, ``benchmarks/cornac_env.sh``) runs the README's MF, PMF and BPR (to check
    the README's table reproduces) and, as the check, MostPop, MostPop with ties broken by item id
    (count + 1 - id/2000; both libraries break ties in their own way otherwise), and EASE (lambda
    500, fitted on the 0/1 training matrix with negative weights kept, as mmwork's EASE; Cornac's
    stock EASE reads the ratings and zeroes negative weights), then exports its train/test split;
  - mmwork reads the files as ``mmwork recommend evaluate --split-dir DIR --threshold 4 --mask
    cornac`` does (``make_split``), runs the same three models in one ``Experiment``, and once more
    with ``mask="recbole"`` to show what the rule changes. Per-user values are compared user by user.

    bash benchmarks/cornac_env.sh
    PYTHONPATH=. .venv/bin/python benchmarks/cornac_check.py [--out benchmarks/results/cornac_check.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
METRICS = {"ndcg": "NDCG@10", "recall": "Recall@10", "precision": "Precision@10"}
README = {  # Cornac 3.0.1 README, "Getting started" table (also in the wheel's METADATA)
    "MF": {"NDCG@10": 0.0761, "Precision@10": 0.0675, "Recall@10": 0.0463, "AUC": 0.7445, "MAP": 0.0548},
    "PMF": {"NDCG@10": 0.0969, "Precision@10": 0.0813, "Recall@10": 0.0639, "AUC": 0.7744, "MAP": 0.0671},
    "BPR": {"NDCG@10": 0.1500, "Precision@10": 0.1110, "Recall@10": 0.1195, "AUC": 0.8695, "MAP": 0.1042},
}

NOTE = ("Plain most-popular has many equal counts: Cornac orders ties by numpy's argpartition/argsort, mmwork by "
        "torch.topk, so a few users' lists differ; with ties broken by item id on both sides (pop-by-id) and for "
        "EASE (no ties) every user's value agrees to float rounding. mmwork_recbole_mask: the same split and model "
        "under RecBole's rule (every training item removed), to show what the rule alone changes.")


def cornac_side(folder: Path) -> None:
    """Runs inside Cornac's venv: README experiment, check models, split export."""
    import csv

    import numpy as np
    import cornac
    from cornac.eval_methods import RatioSplit
    from cornac.metrics import AUC, MAE, MAP, NDCG, RMSE, Precision, Recall
    from cornac.models import BPR, EASE, MF, PMF, MostPop, Recommender

    class PopByID(MostPop):
        """MostPop, ties broken toward the smaller item id."""

        def fit(self, train_set, val_set=None):
            super().fit(train_set, val_set)
            ids = {v: int(k) for k, v in train_set.iid_map.items()}
            self.item_pop = self.item_pop + 1 - np.array([ids[j] for j in range(len(self.item_pop))]) / 2000
            return self

    class BinaryEASE(EASE):
        """Cornac's EASE on the 0/1 training matrix, negative weights kept (mmwork's EASE)."""

        def fit(self, train_set, val_set=None):
            Recommender.fit(self, train_set, val_set)
            self.U = train_set.matrix.copy()
            self.U.data[:] = 1.0
            gram = (self.U.T @ self.U).toarray() + self.lamb * np.eye(self.U.shape[1])
            precision = np.linalg.inv(gram)
            self.B = precision / -np.diag(precision)
            np.fill_diagonal(self.B, 0.0)
            return self

    with open(folder / "triples.csv") as f:
        data = [(u, i, float(r)) for u, i, r in list(csv.reader(f))[1:]]
    rs = RatioSplit(data=data, test_size=0.2, rating_threshold=4.0, exclude_unknowns=True, seed=123)
    for name, part in (("train", rs.train_set), ("test", rs.test_set)):
        users, items = {v: k for k, v in part.uid_map.items()}, {v: k for k, v in part.iid_map.items()}
        with open(folder / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "item_id", "weight"])
            writer.writerows((users[u], items[i], r) for u, i, r in zip(*part.uir_tuple))
    readme = [MF(k=10, max_iter=25, learning_rate=0.01, lambda_reg=0.02, use_bias=True, seed=123),
              PMF(k=10, max_iter=100, learning_rate=0.001, lambda_reg=0.001, seed=123),
              BPR(k=10, max_iter=200, learning_rate=0.001, lambda_reg=0.01, seed=123)]
    readme_metrics = [MAE(), RMSE(), Precision(k=10), Recall(k=10), NDCG(k=10), AUC(), MAP()]
    check = [MostPop(), PopByID(name="PopByID"), BinaryEASE(name="EASE", lamb=500, posB=False, verbose=False)]
    user_ids = {v: k for k, v in rs.train_set.uid_map.items()}
    out = {"cornac": cornac.__version__, "numpy": np.__version__, "train": len(rs.train_set.uir_tuple[0]),
           "test": len(rs.test_set.uir_tuple[0]), "users": rs.train_set.num_users, "items": rs.train_set.num_items,
           "models": {}}
    for models, metrics in ((readme, readme_metrics), (check, [NDCG(k=10), Recall(k=10), Precision(k=10)])):
        experiment = cornac.Experiment(eval_method=rs, models=models, metrics=metrics, user_based=True)
        experiment.run()
        for result in experiment.result:
            per_user = {m: {user_ids[u]: v for u, v in result.metric_user_results[m].items()}
                        for m in METRICS.values() if m in result.metric_user_results}
            out["models"][result.model_name] = {"mean": dict(result.metric_avg_results), "per_user": per_user}
    (folder / "cornac.json").write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "cornac_check.json"))
    parser.add_argument("--venv", default=os.environ.get("CORNAC_VENV", str(HERE / ".venvs" / "cornac")))
    parser.add_argument("--cornac-side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cornac_side:
        return cornac_side(Path(args.cornac_side))

    import numpy as np
    import torch
    from mmwork import datasets, read_table
    from mmwork.evaluation import Experiment
    from mmwork.apps.experiments import make_split
    from mmwork.models.recommenders import EASE, MostPopular

    class PopByID(MostPopular):
        """MostPopular, ties broken toward the smaller item id (as Cornac's side)."""
        name = "pop-by-id"

        def _fit(self, train, item_features, valid):
            super()._fit(train, item_features, valid)
            self.counts_ += torch.as_tensor(1 - train.item_ids.astype(int) / 2000, dtype=torch.float32)

    datasets.get("movielens-100k")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inter = read_table("movielens-100k", "interactions")[["user_id", "item_id", "weight"]]
        inter.assign(weight=inter["weight"].astype(int)).to_csv(folder / "triples.csv", index=False)
        subprocess.run([str(Path(args.venv) / "bin" / "python"), str(Path(__file__).resolve()), "--cornac-side", tmp],
                       check=True, stdout=sys.stderr, cwd=tmp)  # cwd: Cornac writes a CornacExp-*.log there
        cornac = json.loads((folder / "cornac.json").read_text())
        splits = {mask: make_split("movielens-100k", split_dir=folder, threshold=4, mask=mask)
                  for mask in ("cornac", "recbole")}
    runs = {mask: Experiment(split, [MostPopular(device="cpu"), PopByID(device="cpu"), EASE(device="cpu")],
                             metrics=tuple(METRICS), verbose=False).run() for mask, split in splits.items()}
    mine, user_ids = runs["cornac"], splits["cornac"].user_ids
    report = {"protocol": " ".join(__doc__.split("\n\n")[1].split()),
              "cornac_side": {k: v for k, v in cornac.items() if k != "models"},
              "mmwork_setup": {k: mine.setup[k] for k in ("protocol", "mask", "mask_rule", "threshold", "users",
                                                          "items", "train", "valid", "test", "evaluated_users",
                                                          "data_hash")},
              "note": NOTE, "readme": {}, "check": {}}
    for name, expected in README.items():
        got = cornac["models"][name]["mean"]
        report["readme"][name] = {m: {"readme": v, "cornac_here": round(got[m], 4)} for m, v in expected.items()}
    for ours, theirs in (("pop", "MostPop"), ("pop-by-id", "PopByID"), ("ease", "EASE")):
        ranking, row = mine.rankings[ours], {}
        for metric, label in METRICS.items():
            per_user = cornac["models"][theirs]["per_user"][label]
            diff = np.array([per_user[u] for u in user_ids[ranking.users]]) - ranking.metrics[metric]
            row[label] = {"cornac": cornac["models"][theirs]["mean"][label],
                          "mmwork": float(ranking.metrics[metric].mean()),
                          "max_user_abs_diff": float(np.abs(diff).max()),
                          "users_differing": int((np.abs(diff) > 1e-9).sum()),
                          "mmwork_recbole_mask": float(runs["recbole"].rankings[ours].metrics[metric].mean())}
        row["users"] = {"cornac": len(cornac["models"][theirs]["per_user"]["NDCG@10"]), "mmwork": len(ranking.users)}
        report["check"][f"{ours} vs {theirs}"] = row
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report["check"], indent=2))


if __name__ == "__main__":
    main()
