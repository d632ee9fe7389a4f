"""Splits (one function per protocol), masking rules, ranking metrics, full-ranking evaluation, experiments,
and generation metrics (Fréchet distance, KID, precision/recall/density/coverage; BLEU, self-BLEU,
distinct-n, copy rate and a Kneser-Ney baseline for text)."""
from mmwork.evaluation.audio_generation import (audio_frechet_distance, audio_report, audio_statistics,
                                                mel_cepstral_distortion)
from mmwork.evaluation.experiment import Experiment, ExperimentResult
from mmwork.evaluation.generation import (KID, Memorisation, ModeCoverage, active_units, class_histogram,
                                          classifier_space, effnet_features, frechet_distance,
                                          image_generation_table, image_spaces, kid, memorisation, mode_coverage,
                                          nearest_neighbours, prdc)
from mmwork.evaluation.masking import MASKS
from mmwork.evaluation.metrics import RANKING_METRICS, paired_test
from mmwork.evaluation.ranking import Validator, evaluate
from mmwork.evaluation.splits import (PROTOCOLS, Split, cold_start_split, leave_one_out, ratio_split, recbole_split,
                                      split_from_files, temporal_split)
from mmwork.evaluation.text_generation import (CurveComparison, KneserNeyLM, bleu, compare_curves, copy_rate,
                                               distinct_n, perplexity, quality_diversity, self_bleu)

__all__ = ["Experiment", "ExperimentResult", "KID", "MASKS", "PROTOCOLS", "RANKING_METRICS", "Split", "Validator",
           "cold_start_split", "evaluate", "leave_one_out", "paired_test", "ratio_split", "recbole_split",
           "split_from_files", "temporal_split", "active_units", "frechet_distance", "kid", "prdc",
           "Memorisation", "ModeCoverage", "class_histogram", "classifier_space", "effnet_features",
           "image_generation_table", "image_spaces", "memorisation", "mode_coverage", "nearest_neighbours"]
__all__ += ["audio_frechet_distance", "audio_report", "audio_statistics", "mel_cepstral_distortion"]
__all__ += ["CurveComparison", "KneserNeyLM", "bleu", "compare_curves", "copy_rate", "distinct_n", "perplexity",
            "quality_diversity", "self_bleu"]
