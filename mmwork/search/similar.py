"""Nearest items of an item, of a vector or of a free text, with the items' titles: exact by default
(:mod:`mmwork.search.knn`), from a faiss index on request (:mod:`mmwork.search.index`), on a Dask
cluster by address. The answer is built in Arrow (:func:`mmwork.search.knn.nearest_table`) and
handed over as a pandas DataFrame.

>>> import mmwork
>>> mmwork.similar("speech-prompts", "digits/7", features="audio:mfcc_stats", k=5)   # doctest: +SKIP
>>> mmwork.similar_to_text("movielens-100k", "a heist film", features="text:minilm")  # doctest: +SKIP
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mmwork.core.errors import MmworkError
from mmwork.search.columns import default_standardize, feature_column, vectors_of
from mmwork.store.tables import table_path, table_schema

if TYPE_CHECKING:
    import pandas as pd

LABELS = ("title", "text", "label", "category")  # the items columns shown beside each neighbour (two at most)


def similar(dataset: str, item_id: str | list[str], features: str, k: int = 10, standardize: bool | None = None,
            scheduler: str | None = None, index: bool = False) -> pd.DataFrame:
    """Exact cosine nearest neighbours of one item (or of each of a list of items, in one pass:
    then a ``query`` column holds the item each row is a neighbour of), leaving the item itself
    out, with the items' titles. See :func:`similar_to_vector` for ``standardize``, ``scheduler``
    and ``index``. The item's vector is found from the ``item_id`` column alone.
    """
    ids = [str(item_id)] if isinstance(item_id, (str, int)) else [str(i) for i in item_id]
    found = _neighbours(dataset, vectors_of(dataset, features, ids), features, k, ids, standardize, scheduler, index)
    if isinstance(item_id, (str, int)):
        found = found.drop_columns(["query"])
    else:
        found = found.set_column(0, "query", pa.array(ids, pa.string()).take(found["query"]))
    return _with_titles(dataset, found).to_pandas()


def similar_to_vector(dataset: str, vector: np.ndarray, features: str, k: int = 10,
                      exclude: str | list[str] | None = None, standardize: bool | None = None,
                      scheduler: str | None = None, index: bool = False) -> pd.DataFrame:
    """The ``k`` items whose ``features`` vectors have the highest cosine similarity to ``vector``
    (a (d,) vector, or an (m, d) batch: then a ``query`` column says whose neighbour each row is).

    Exact by default (:func:`mmwork.search.knn.nearest`): one streamed pass over the column, here or, with
    ``scheduler`` (a dask.distributed address), one task per Parquet part on the cluster.
    index: look up the HNSW index instead (:mod:`mmwork.search.index`; built on first use, rebuilt when the
    table changed), re-scored exactly; ignored on a cluster, where the search stays exact.
    standardize: z-score every dimension (over the whole table) before the cosine, so that one
    large-valued dimension (MFCC 0, HOG bins) does not decide alone. Default: on for audio and
    image features, off for text embeddings, which are made for plain cosine.
    """
    found = _neighbours(dataset, vector, features, k, exclude, standardize, scheduler, index)
    return _with_titles(dataset, found if np.ndim(vector) == 2 else found.drop_columns(["query"])).to_pandas()


def similar_to_text(dataset: str, text: str, features: str = "text:minilm", k: int = 10,
                    scheduler: str | None = None, index: bool = False) -> pd.DataFrame:
    """Neighbours of a free-text query, embedded with the model that made the feature column
    (MiniLM, or the saved TF-IDF/LSA and skip-gram fits)."""
    if feature_column(dataset, features).table != "features/text":
        raise MmworkError("free-text queries need a text feature column, e.g. text:minilm")
    from mmwork.features.encoder import encode_texts
    vector = encode_texts(dataset, features.partition(":")[2], [text])[0]
    return similar_to_vector(dataset, vector, features, k, scheduler=scheduler, index=index)


def _neighbours(dataset, queries, features, k, exclude, standardize, scheduler, index) -> pa.Table:
    from mmwork.search import knn
    standardize = default_standardize(features, standardize)
    if index and scheduler is not None:
        logging.getLogger("mmwork.search.index").warning("index=True is not used on a Dask cluster: exact search there")
        index = False
    if index:
        from mmwork.search.index import search_table
        return search_table(dataset, features, queries, k, standardize=standardize, exclude=exclude)
    return knn.nearest_table(dataset, features, queries, k, standardize=standardize, exclude=exclude,
                             scheduler=scheduler)


def _with_titles(dataset: str, found: pa.Table) -> pa.Table:
    """``found`` with up to two label columns of the items table, row for row (null for an unknown id)."""
    if not table_path(dataset, "items").exists():  # a feature table without an items table: ids only
        return found
    label = [c for c in LABELS if c in table_schema(dataset, "items").names][:2]
    if not label:
        return found
    items = pq.read_table(table_path(dataset, "items"), columns=["item_id", *label],
                          filters=[("item_id", "in", found["item_id"].to_pylist())])
    at = pc.index_in(found["item_id"], value_set=pc.cast(items["item_id"], pa.string()))
    for name in label:
        found = found.append_column(name, items[name].take(at))
    return found
