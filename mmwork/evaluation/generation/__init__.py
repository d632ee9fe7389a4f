"""Metrics for generated samples, on any (N, D) feature arrays or tensors, computed in float64.

Every figure depends on the feature space and the sample counts: name the extractor ("FD-effnet-lite0",
"FD-classifier") and state both counts, compare figures only at equal counts, and report the
real-vs-real floor next to them. A Fréchet distance here is never an "FID": that name means Inception
features and published protocols we do not reproduce.

One job per module: ``inputs`` (checks), ``distances`` (Fréchet distance, KID, MMD²), ``neighbours``
(precision/recall/density/coverage, nearest training image, memorisation), ``collapse`` (class
histogram, mode coverage, active latent units), ``spaces`` (EfficientNet-Lite0 and classifier
features) and ``table`` (:func:`image_generation_table`: every figure for several sources at once,
with the real-vs-real floor and a noise baseline). Every name is importable from here.

Library or own code: torch-fidelity 0.4.0 requires torchvision, which has no CPU wheel here, and the
``prdc`` package (0.2, its only release, 2020) prints to stdout and holds four full N x M float32
distance matrices. So these are small float64 functions of our own, each tested against a closed
form or a brute-force computation (see each module).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(size=(2000, 2))
>>> round(frechet_distance(a, a + [3.0, 0.0]), 6)       # a shift only: |mean difference|^2
9.0
>>> round(prdc(a, a)["coverage"], 2)
1.0
"""
from mmwork.evaluation.generation.collapse import ModeCoverage, active_units, class_histogram, mode_coverage
from mmwork.evaluation.generation.distances import KID, format_kid, frechet_distance, kid, kid_subset, mmd2
from mmwork.evaluation.generation.neighbours import Memorisation, memorisation, nearest_neighbours, prdc
from mmwork.evaluation.generation.spaces import (CLASSIFIER, EFFNET, PIXELS, classifier_space, effnet_features,
                                                 image_spaces)
from mmwork.evaluation.generation.table import FLOOR, METRICS, NOISE, TABLE_COLUMNS, TEST, image_generation_table

__all__ = ["CLASSIFIER", "EFFNET", "FLOOR", "KID", "METRICS", "NOISE", "PIXELS", "TABLE_COLUMNS", "TEST",
           "Memorisation", "ModeCoverage", "active_units", "class_histogram", "classifier_space", "effnet_features",
           "format_kid", "frechet_distance", "image_generation_table", "image_spaces", "kid", "kid_subset",
           "memorisation", "mmd2", "mode_coverage", "nearest_neighbours", "prdc"]
