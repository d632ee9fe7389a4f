"""Metrics for generated text, as pure functions over token lists, and a Kneser-Ney n-gram baseline.

Every figure here depends on its protocol, so each function states it in full. One job per module:
``bleu_metrics`` (:func:`bleu`, :func:`self_bleu`: quality and diversity against references),
``diversity`` (:func:`distinct_n`, :func:`copy_rate`), ``kneser_ney`` (:class:`KneserNeyLM`, the
perplexity baseline, and :func:`perplexity`), ``curves`` (:func:`quality_diversity` and
:func:`compare_curves`: the temperature sweep of "Language GANs Falling Short", Caccia et al., ICLR
2020, judged as whole curves with a bootstrap interval on the gap) and ``tokens`` (input checks).
Every name is importable from here.

BLEU and Kneser-Ney are our own, equal to nltk's to 1e-12 and 1e-6 (the tests check both against
nltk, which is only a test dependency): nltk's are minutes to hours slower on Austen and cannot
follow the neural models' protocol (see ``bleu_metrics`` and ``kneser_ney``).

>>> references = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "in", "the", "park"]]
>>> bleu([["the", "cat", "sat", "on", "the", "mat"]], references)
1.0
>>> distinct_n([["a", "b", "a"], ["a", "b"]], 1), distinct_n([["a", "b", "a"], ["a", "b"]], 2)
(0.4, 0.4)
"""
from mmwork.evaluation.text_generation.bleu_metrics import EPSILON, bleu, bleu_scores, self_bleu, self_bleu_scores
from mmwork.evaluation.text_generation.curves import CurveComparison, compare_curves, quality_diversity
from mmwork.evaluation.text_generation.diversity import copy_rate, distinct_n
from mmwork.evaluation.text_generation.kneser_ney import BOS_ID, EOS_ID, UNK_ID, KneserNeyLM, perplexity

__all__ = ["BOS_ID", "EOS_ID", "EPSILON", "UNK_ID", "CurveComparison", "KneserNeyLM", "bleu", "bleu_scores",
           "compare_curves", "copy_rate", "distinct_n", "perplexity", "quality_diversity", "self_bleu",
           "self_bleu_scores"]
