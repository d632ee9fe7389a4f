"""Feature extraction: pure extractors per modality (``text``, ``image``, ``audio``) and the Dask
pipeline (``extract``) that writes them as Parquet feature tables."""
from mmwork.features.pipeline import extract

__all__ = ["extract"]
