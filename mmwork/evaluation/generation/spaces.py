"""The image feature spaces the distances are measured in: EfficientNet-Lite0 and the in-project
classifier's penultimate layer (never Inception: no figure here is an "FID").

>>> sorted(image_spaces(effnet=True))
['effnet-lite0']
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.inputs import image_batch


EFFNET, CLASSIFIER, PIXELS = "effnet-lite0", "classifier", "pixels"
"""Names of the feature spaces in tables and messages (never "FID": no Inception network is involved)."""


def effnet_features(images, batch_size: int = 64, device: str = "auto") -> np.ndarray:
    """EfficientNet-Lite0 (ImageNet weights, from the ``mmwork[cnn]`` packages) pooled last-layer
    features, float64 (N, 1280), of images (N, 1, H, W) or (N, 3, H, W) with pixels in [0, 1].

    The images take the feature pipeline's own path, :class:`mmwork.features.image.CnnEncoder` (what
    ``mmwork extract fashion-mnist --param image.cnn=true`` runs on the store's PNGs): pixels rounded
    to uint8 (the store's images come back exactly; a generated one moves by at most half a grey
    level), grey stacked to three channels, resized to 224 x 224 (bilinear, antialiased), ImageNet
    mean/std. So real and generated images meet one path. Slow on CPU (224 x 224 inputs: a few images
    per second per core); float16 autocast on CUDA.

    >>> import torch
    >>> effnet_features(torch.rand(2, 1, 28, 28)).shape            # doctest: +SKIP
    (2, 1280)
    """
    import torch

    from mmwork.features.image import get_cnn_encoder

    x = image_batch(images, "images")
    pixels = (x * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    return get_cnn_encoder(device, batch_size).encode(pixels).astype(np.float64)


effnet_features.dims, effnet_features.name = 1280, EFFNET  # read by image_generation_table, memorisation


def classifier_space(classifier) -> Callable:
    """A fitted :class:`mmwork.models.generators.Classifier`'s penultimate layer as a feature space: a function
    images (N, 1, 28, 28) in [0, 1] -> float64 (N, features) (128-d by default), named "classifier".

    >>> from mmwork.models.judges import Classifier
    >>> from mmwork.models.data import fashion_mnist
    >>> train = fashion_mnist("train", limit=2000)                                 # doctest: +SKIP
    >>> space = classifier_space(Classifier(epochs=2).fit(train.images, train.labels))  # doctest: +SKIP
    >>> space(train.images[:3]).shape, space.dims                                  # doctest: +SKIP
    ((3, 128), 128)
    >>> classifier_space(Classifier())                                             # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmwork.core.errors.MmworkError: classifier_space needs a fitted mmwork.models.generators.Classifier; call fit(...) first ...
    """
    if not callable(getattr(classifier, "features", None)) or "net_" not in getattr(classifier, "__dict__", {}):
        raise MmworkError("classifier_space needs a fitted mmwork.models.generators.Classifier; call fit(images, labels) "
                          "first or Classifier.load(path)")

    def classifier_features(images) -> np.ndarray:
        return classifier.features(images).double().cpu().numpy()

    classifier_features.dims, classifier_features.name = classifier.config.features, CLASSIFIER
    return classifier_features


def image_spaces(classifier=None, *, effnet: bool = True, device: str = "auto", batch_size: int = 64) -> dict:
    """The feature spaces for :func:`image_generation_table`: {"classifier": ..., "effnet-lite0": ...},
    each present when asked for (a fitted classifier given; ``effnet``)."""
    spaces = {} if classifier is None else {CLASSIFIER: classifier_space(classifier)}
    if effnet:
        def effnet_lite0(images) -> np.ndarray:
            return effnet_features(images, batch_size=batch_size, device=device)
        effnet_lite0.dims, effnet_lite0.name = effnet_features.dims, EFFNET
        spaces[EFFNET] = effnet_lite0
    return spaces
