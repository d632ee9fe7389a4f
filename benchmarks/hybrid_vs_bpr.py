"""Is the multimodal hybrid at least as good as BPR on the warm split? Several model seeds, one split.

Protocol: MovieLens-100K, RecBole's split (seed 2020: every interaction positive, per-user random
8:1:1), full ranking of the test items with train + valid items excluded, K = 10. BPR and the hybrid
(with the data set's default text features) run with their defaults and each model seed; early
stopping on the valid part. Per seed: test metrics and a paired t-test / Wilcoxon over users on
NDCG@10; then the means over seeds. Writes ``benchmarks/results/hybrid_vs_bpr.json``.

    PYTHONPATH=. python benchmarks/hybrid_vs_bpr.py [--seeds 0,1,2] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from mmwork.evaluation import Experiment
from mmwork.apps.experiments import default_feature_specs, make_split
from mmwork.models.recommenders import BPR, MultimodalHybrid
from mmwork.store.item_features import load_item_features

DATASET, SPLIT_SEED, K = "movielens-100k", 2020, 10
METRICS = ("ndcg", "recall", "hit", "mrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "hybrid_vs_bpr.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    split = make_split(DATASET, "recbole", seed=SPLIT_SEED)
    specs = default_feature_specs(DATASET)
    features = load_item_features(DATASET, specs, split.item_ids)
    runs = []
    for seed in seeds:
        result = Experiment(split, [BPR(seed=seed), MultimodalHybrid(seed=seed)], metrics=METRICS, k=K,
                            item_features=features, verbose=False).run()
        table = result.table
        run = {"seed": seed,
               "test": {m: {c: float(table.loc[m, c]) for c in table.columns if c.endswith(f"@{K}")}
                        for m in ("bpr", "hybrid")},
               "fit_s": {m: float(table.loc[m, "fit_s"]) for m in ("bpr", "hybrid")},
               "hybrid_vs_bpr": result.significance("hybrid", "bpr", "ndcg")}
        runs.append(run)
        print(f"seed {seed}: NDCG@{K} bpr {run['test']['bpr'][f'ndcg@{K}']:.4f}, "
              f"hybrid {run['test']['hybrid'][f'ndcg@{K}']:.4f} (paired t-test p = "
              f"{run['hybrid_vs_bpr'].get('t_pvalue', float('nan')):.3g})", flush=True)
    mean = {m: {metric: statistics.mean(r["test"][m][metric] for r in runs) for metric in runs[0]["test"][m]}
            for m in ("bpr", "hybrid")}
    print(f"mean over seeds {seeds}: NDCG@{K} bpr {mean['bpr'][f'ndcg@{K}']:.4f}, "
          f"hybrid {mean['hybrid'][f'ndcg@{K}']:.4f}")
    report = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "protocol": {"dataset": DATASET, "split": split.describe(), "k": K, "features": specs,
                           "description": " ".join(__doc__.split("\n\n")[1].split())},
              "seeds": seeds, "runs": runs, "mean": mean}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
