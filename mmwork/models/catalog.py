"""The named presets of the generators and judges, gathered from the classes that declare them
(``presets`` on each class; see :mod:`mmwork.models.network`), for the applications that build
models by name.

>>> from mmwork.models.catalog import presets
>>> klass, preset = presets()["cvae"]
>>> klass.__name__, preset.condition, preset.defaults
('VAE', 'class', {'epochs': 20})
"""
from __future__ import annotations


def model_classes() -> tuple[type, ...]:
    """Every generator and judge class that declares presets, in their listing order."""
    from mmwork.models.generators import GAN, VAE, AudioVAE, MultimodalVAE
    from mmwork.models.judges import AudioClassifier, Classifier
    return VAE, GAN, Classifier, AudioVAE, AudioClassifier, MultimodalVAE


def presets() -> dict:
    """``{preset name: (class, Preset)}`` over :func:`model_classes`."""
    return {p.name: (klass, p) for klass in model_classes() for p in klass.presets}
