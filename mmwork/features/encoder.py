"""Embed new texts exactly as a data set's text feature column was embedded: MiniLM, or the TF-IDF/LSA
and skip-gram models fitted by ``mmwork extract`` and saved under ``data/models/DATASET``.

>>> from mmwork.features.encoder import encode_texts
>>> encode_texts("movielens-100k", "tfidf_lsa", ["a heist film"]).shape          # doctest: +SKIP
(1, 128)
"""
from __future__ import annotations

import numpy as np

from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root
from mmwork.store.tables import table_metadata


def fitted_text_model(dataset: str, column: str):
    """The saved text model that computed ``features/text`` column ``column`` as the table is now:
    chosen by the configuration recorded in the table and checked against the table's fingerprint,
    so a refit never goes unseen."""
    from mmwork.features.modalities import TextModality
    meta = table_metadata(dataset, "features/text").get("params", {})  # what the pipeline recorded
    modality = TextModality(meta.get("requested") or meta.get("params") or {})
    rerun = f"re-run `mmwork extract {dataset} --modalities text`"
    if not modality.load_fit(data_root() / "models" / dataset):
        raise MmworkError(f"the text model that computed {dataset}/features/text is not saved here; {rerun}")
    if modality.fingerprint() != meta.get("fingerprint") or column not in modality.models:
        raise MmworkError(f"the saved text models of {dataset} no longer match features/text (refitted since); "
                          f"{rerun}")
    return modality.models[column]


def encode_texts(dataset: str, column: str, texts: list[str]) -> np.ndarray:
    """``texts`` as rows of ``dataset``'s text feature ``column`` (``minilm`` needs no fit)."""
    if column == "minilm":
        from mmwork.features.text import SentenceEmbedder
        return SentenceEmbedder(device="cpu").fit().transform(texts)
    return fitted_text_model(dataset, column).transform(texts)
