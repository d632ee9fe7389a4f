"""Feature extraction: pure extractors per modality (``text``, ``image``, ``audio``), each with its
typed config, and the Dask pipeline (``extract``) that writes them as Parquet feature tables.

The names below load their module on first use, so a module of this stage (the worker set-up, the
encoder) can be imported without the extractors' libraries.

>>> AudioConfig(n_mfcc=13).n_mfcc
13
"""
from mmwork.core.lazy import lazy_names

_SHORTCUTS = {"AudioConfig": "mmwork.features.audio", "ImageConfig": "mmwork.features.image",
              "TextConfig": "mmwork.features.text", "extract": "mmwork.features.pipeline"}
__all__ = sorted(_SHORTCUTS)
__getattr__, __dir__ = lazy_names(__name__, _SHORTCUTS)
