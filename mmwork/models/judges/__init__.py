"""Judges: classifiers that label generated samples (and score real ones) for the generation metrics.

>>> from mmwork.models.judges import Classifier
>>> Classifier(epochs=1).config.epochs
1
"""
from mmwork.models.judges.audio_classifier import AudioClassifier, AudioClassifierConfig
from mmwork.models.judges.classifier import Classifier, ClassifierConfig
from mmwork.models.judges.modality_classifier import ModalityClassifier, ModalityClassifierConfig

__all__ = ["AudioClassifier", "AudioClassifierConfig", "Classifier", "ClassifierConfig", "ModalityClassifier",
           "ModalityClassifierConfig"]
