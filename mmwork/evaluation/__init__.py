"""Splits (one function per protocol), masking rules, ranking metrics, full-ranking evaluation, experiments,
and generation metrics (Fréchet distance, KID, precision/recall/density/coverage; BLEU, self-BLEU,
distinct-n, copy rate and a Kneser-Ney baseline for text).

The names load their module on first use: an application that needs the ranking metrics does not
pay for the image-generation metrics.

>>> from mmwork.evaluation import PROTOCOLS
>>> "recbole" in PROTOCOLS
True
"""
from mmwork.core.lazy import lazy_names

_SHORTCUTS = {
    **dict.fromkeys([
        "audio_frechet_distance", "audio_report", "audio_statistics", "mel_cepstral_distortion"],
        "mmwork.evaluation.audio_generation"),
    **dict.fromkeys([
        "Experiment", "ExperimentResult"],
        "mmwork.evaluation.experiment"),
    **dict.fromkeys([
        "KID", "Memorisation", "ModeCoverage", "active_units", "class_histogram", "classifier_space",
        "effnet_features", "frechet_distance", "image_generation_table", "image_spaces", "kid",
        "memorisation", "mode_coverage", "nearest_neighbours", "prdc"],
        "mmwork.evaluation.generation"),
    **dict.fromkeys([
        "MASKS"],
        "mmwork.evaluation.masking"),
    **dict.fromkeys([
        "RANKING_METRICS", "paired_test"],
        "mmwork.evaluation.metrics"),
    **dict.fromkeys([
        "Validator", "evaluate"],
        "mmwork.evaluation.ranking"),
    **dict.fromkeys([
        "PROTOCOLS", "Split", "cold_start_split", "leave_one_out", "ratio_split", "recbole_split",
        "split_from_files", "temporal_split"],
        "mmwork.evaluation.splits"),
    **dict.fromkeys([
        "CurveComparison", "KneserNeyLM", "bleu", "compare_curves", "copy_rate", "distinct_n", "perplexity",
        "quality_diversity", "self_bleu"],
        "mmwork.evaluation.text_generation"),
}
__all__ = sorted(_SHORTCUTS)
__getattr__, __dir__ = lazy_names(__name__, _SHORTCUTS)
