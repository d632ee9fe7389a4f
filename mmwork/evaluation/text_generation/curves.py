"""Quality against diversity over a temperature sweep, and the comparison of two such curves.

:func:`quality_diversity` and :func:`compare_curves`: the temperature sweep of "Language GANs Falling
Short" (Caccia et al., ICLR 2020), judged as whole curves, not single points, with a bootstrap
interval (samples resampled at each temperature) on the gap between them.

>>> a = pd.DataFrame({"self_bleu": [0.2, 0.5, 0.8], "bleu": [0.3, 0.5, 0.7]})
>>> compare_curves(a, a).winner
'tie'
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.evaluation.text_generation.bleu_metrics import bleu_scores, self_bleu_scores
from mmwork.evaluation.text_generation.diversity import distinct_n
from mmwork.evaluation.text_generation.tokens import token_lists


def quality_diversity(samples_by_temperature: dict[float, list[list[str]]], references: list[list[str]],
                      n: int = 4, max_references: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per sampling temperature, sorted by it: ``temperature``, ``bleu`` (quality: BLEU-n of
    the samples against ``references``, :func:`bleu`), ``self_bleu`` (diversity, lower is more
    diverse: leave-one-out BLEU-n among the samples against ``max_references`` others each,
    :func:`self_bleu` with ``seed``), ``distinct_1``, ``distinct_2`` (corpus-level, per generated
    token), ``n_samples``, ``n_references`` (BLEU's reference count) and ``self_bleu_references``.
    Keep the references, ``max_references`` and the sample counts fixed across models.

    The table's ``attrs["per_sample"]`` holds, per temperature, each sample's BLEU and self-BLEU
    (``{"bleu": tuple, "self_bleu": tuple}``): :func:`compare_curves` resamples them for its bootstrap
    interval.

    >>> samples = {1.0: [["a", "b"], ["c", "d"]], 0.5: [["a", "b"], ["a", "b"]]}
    >>> quality_diversity(samples, [["a", "b"]], n=2)[["temperature", "bleu", "self_bleu"]]
       temperature  bleu  self_bleu
    0          0.5   1.0        1.0
    1          1.0   0.5        0.0
    """
    if not isinstance(samples_by_temperature, dict) or not samples_by_temperature:
        raise MmworkError("samples_by_temperature must be a non-empty dict {temperature: token lists}")
    for temperature in samples_by_temperature:
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise MmworkError(f"temperatures must be positive numbers, got {temperature!r}")
    references = token_lists(references, "references")
    rows, per_sample = [], {}
    for temperature, samples in sorted(samples_by_temperature.items()):
        samples = token_lists(samples, f"the samples at temperature {temperature}")
        others = len(samples) - 1 if max_references is None else min(max_references, len(samples) - 1)
        scores = {"bleu": bleu_scores(samples, references, n), "self_bleu": self_bleu_scores(samples, n, max_references,
                                                                                             seed)}
        # tuples, not arrays: pandas compares attrs with == when it concatenates tables
        per_sample[float(temperature)] = {k: tuple(v.tolist()) for k, v in scores.items()}
        rows.append({"temperature": float(temperature), "bleu": float(scores["bleu"].mean()),
                     "self_bleu": float(scores["self_bleu"].mean()),
                     "distinct_1": distinct_n(samples, 1), "distinct_2": distinct_n(samples, 2),
                     "n_samples": len(samples), "n_references": len(references),
                     "self_bleu_references": others})
    table = pd.DataFrame(rows)
    table.attrs["per_sample"] = per_sample
    return table


class CurveComparison(NamedTuple):
    """How two quality-diversity curves compare over the self-BLEU range they share, with a bootstrap
    interval."""

    winner: str
    """"a" or "b" when that curve's BLEU is at least the other's over the whole shared range and
    above it somewhere (it dominates), "tie" when they coincide (within 1e-9), "neither" when they
    cross, "no overlap" when the ranges do not meet. A point estimate: read it with the interval."""
    a_better: float
    """Share of the shared self-BLEU range where curve a's BLEU is higher."""
    mean_gap: float
    """Mean of BLEU(a) - BLEU(b) over the shared range (the area between the curves over its width)."""
    low: float
    """Lower end of the shared self-BLEU range."""
    high: float
    """Upper end of the shared self-BLEU range."""
    gap_low: float = math.nan
    """Lower end of the bootstrap interval of ``mean_gap`` (NaN without per-sample scores)."""
    gap_high: float = math.nan
    """Upper end of the bootstrap interval of ``mean_gap``; an interval that covers 0 means the samples
    do not tell the curves apart."""
    a_better_low: float = math.nan
    """Lower end of the bootstrap interval of ``a_better``."""
    a_better_high: float = math.nan
    """Upper end of the bootstrap interval of ``a_better``."""
    draws: int = 0
    """Bootstrap draws that gave both figures (draws whose resampled curves do not overlap are left out)."""
    level: float = math.nan
    """Coverage of the intervals (e.g. 0.95)."""


def _curve_points(curve: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, list | None]:
    if not isinstance(curve, pd.DataFrame) or not {"bleu", "self_bleu"} <= set(curve.columns) or curve.empty:
        raise MmworkError(f"{name} must be a quality_diversity() table with bleu and self_bleu columns")
    per_sample = curve.attrs.get("per_sample")
    scores = None
    if per_sample and "temperature" in curve.columns and all(float(t) in per_sample for t in curve["temperature"]):
        scores = [per_sample[float(t)] for t in curve["temperature"]]
    return curve["self_bleu"].to_numpy(float), curve["bleu"].to_numpy(float), scores


def _gap(xa, ya, xb, yb, points: int):
    """(share where a is higher, mean gap, gap on the grid, low, high) over the shared self-BLEU range,
    or None when the ranges do not meet."""
    oa, ob = np.argsort(xa, kind="stable"), np.argsort(xb, kind="stable")
    xa, ya, xb, yb = xa[oa], ya[oa], xb[ob], yb[ob]
    low, high = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if low > high:
        return None
    grid = np.linspace(low, high, points)
    gap = np.interp(grid, xa, ya) - np.interp(grid, xb, yb)
    return float((gap > 0).mean()), float(gap.mean()), gap, float(low), float(high)


def compare_curves(curve_a: pd.DataFrame, curve_b: pd.DataFrame, points: int = 101, *, draws: int = 1000,
                   seed: int = 0, level: float = 0.95) -> CurveComparison:
    """Compare two :func:`quality_diversity` curves at matched diversity: each curve's BLEU is
    interpolated linearly as a function of its self-BLEU (points sorted by self-BLEU) on ``points``
    evenly spaced self-BLEU values over the range both curves cover, and compared point by point.
    Higher BLEU at the same self-BLEU is better; a curve dominates when it is never below the other.

    The interval (``level``, percentile bootstrap with ``draws`` draws and ``seed``): at every
    temperature of each curve the samples are drawn again with replacement, and that point's BLEU and
    self-BLEU become the means of the drawn samples' own scores (the per-sample scores that
    :func:`quality_diversity` keeps in ``attrs["per_sample"]``, paired, so a sample brings both); the
    shared range, ``mean_gap`` and ``a_better`` are then computed again. It holds the BLEU references
    and each sample's self-BLEU references fixed, and says nothing of the spread between training
    seeds. Tables without per-sample scores (built by hand) get no interval (NaN, ``draws`` 0).

    The bootstrap is written here, not ``scipy.stats.bootstrap``: one draw resamples every temperature
    of both curves and yields two figures (``mean_gap`` and ``a_better``) from the same resampled
    curves, and a draw whose curves no longer overlap is left out (``draws`` counts the rest), which a
    statistic for scipy could only return as NaN, making its percentile interval NaN.

    >>> a = pd.DataFrame({"self_bleu": [0.2, 0.5, 0.8], "bleu": [0.3, 0.5, 0.7]})
    >>> b = pd.DataFrame({"self_bleu": [0.3, 0.6, 0.9], "bleu": [0.2, 0.4, 0.6]})
    >>> compare_curves(a, b).winner, round(compare_curves(a, b).mean_gap, 3)
    ('a', 0.167)
    """
    if not isinstance(points, (int, np.integer)) or isinstance(points, bool) or points < 2:
        raise MmworkError(f"points must be an integer of at least 2, got {points!r}")
    if not isinstance(draws, (int, np.integer)) or isinstance(draws, bool) or draws < 0:
        raise MmworkError(f"draws must be a non-negative integer (0: no interval), got {draws!r}")
    if not isinstance(level, float) or not 0 < level < 1:
        raise MmworkError(f"level must be a float in (0, 1), e.g. 0.95, got {level!r}")
    xa, ya, scores_a = _curve_points(curve_a, "curve_a")
    xb, yb, scores_b = _curve_points(curve_b, "curve_b")
    point = _gap(xa, ya, xb, yb, points)
    if point is None:
        low, high = max(xa.min(), xb.min()), min(xa.max(), xb.max())
        return CurveComparison("no overlap", math.nan, math.nan, float(low), float(high))
    a_better, mean_gap, gap, low, high = point
    if np.allclose(gap, 0, rtol=0, atol=1e-9):
        winner = "tie"
    else:
        winner = "a" if (gap >= 0).all() else "b" if (gap <= 0).all() else "neither"
    result = CurveComparison(winner, a_better, mean_gap, low, high)
    if scores_a is None or scores_b is None or draws == 0:
        return result
    rng = np.random.default_rng(seed)

    def resampled(scores):  # (draws, temperatures) arrays of resampled mean self-BLEU and BLEU
        xs, ys = [], []
        for s in scores:
            index = rng.integers(0, len(s["bleu"]), size=(draws, len(s["bleu"])))
            xs.append(np.asarray(s["self_bleu"])[index].mean(1))
            ys.append(np.asarray(s["bleu"])[index].mean(1))
        return np.stack(xs, 1), np.stack(ys, 1)

    (bxa, bya), (bxb, byb) = resampled(scores_a), resampled(scores_b)
    figures = [f[:2] for f in (_gap(bxa[d], bya[d], bxb[d], byb[d], points) for d in range(draws)) if f is not None]
    if not figures:
        return result._replace(level=level)
    shares, gaps = np.array(figures).T
    tail = 100 * (1 - level) / 2
    return result._replace(gap_low=float(np.percentile(gaps, tail)), gap_high=float(np.percentile(gaps, 100 - tail)),
                           a_better_low=float(np.percentile(shares, tail)),
                           a_better_high=float(np.percentile(shares, 100 - tail)), draws=len(figures), level=level)
