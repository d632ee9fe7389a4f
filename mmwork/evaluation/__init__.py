"""Splits (one function per protocol), masking rules, ranking metrics, full-ranking evaluation, experiments,
and generation metrics (Fréchet distance, KID, precision/recall/density/coverage)."""
from mmwork.evaluation.experiment import Experiment, ExperimentResult
from mmwork.evaluation.generation import KID, active_units, frechet_distance, kid, prdc
from mmwork.evaluation.masking import MASKS
from mmwork.evaluation.metrics import RANKING_METRICS, paired_test
from mmwork.evaluation.ranking import Validator, evaluate
from mmwork.evaluation.splits import (PROTOCOLS, Split, cold_start_split, leave_one_out, ratio_split, recbole_split,
                                      split_from_files, temporal_split)

__all__ = ["Experiment", "ExperimentResult", "KID", "MASKS", "PROTOCOLS", "RANKING_METRICS", "Split", "Validator",
           "cold_start_split", "evaluate", "leave_one_out", "paired_test", "ratio_split", "recbole_split",
           "split_from_files", "temporal_split", "active_units", "frechet_distance", "kid", "prdc"]
