"""Feature extraction: pure extractors per modality (``text``, ``image``, ``audio``), each with its
typed config, and the Dask pipeline (``extract``) that writes them as Parquet feature tables.

>>> AudioConfig(n_mfcc=13).n_mfcc
13
"""
from mmwork.features.audio import AudioConfig
from mmwork.features.image import ImageConfig
from mmwork.features.pipeline import extract
from mmwork.features.text import TextConfig

__all__ = ["AudioConfig", "ImageConfig", "TextConfig", "extract"]
