"""Item content features for recommenders: read feature tables, align them to a model's items.

A feature *spec* names one column of one table, ``"MODALITY:COLUMN"``: ``"text:minilm"`` reads the
``minilm`` column of the ``features/text`` table that ``mmwork.features.extract`` wrote. The special
table ``items`` reads a column of the items table itself: a list-of-labels column such as
``items:genres`` becomes a multi-hot matrix (see :func:`genre_features`), a number column such as
``items:release_year`` one column.

>>> from mmwork.store.item_features import load_item_features
>>> feats = load_item_features("movielens-100k", ["text:minilm", "items:genres"],
...                            split.item_ids)                            # doctest: +SKIP
>>> feats["text:minilm"].shape, feats.coverage.all()                      # doctest: +SKIP
((1682, 384), True)

Items the table has no row (or an empty cell) for, e.g. because their extraction failed, get zeros: content models
then treat them as "no content" (cosine 0). ``ItemFeatures.coverage`` marks the items that have a
row in every table, and a warning says how many do not. A table that covers fewer than half of the
items is an error rather than a fallback: that is a wrong table, not a few failed items.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError

MIN_COVERAGE = 0.5  # below this share of items a table is refused rather than zero-filled


class ItemFeatures(dict):
    """``{spec: float32 array (n_items x d)}`` aligned to ``item_ids``, plus what was missing.

    It is a plain ``dict`` for everything that takes item features (``fit``, ``Experiment``), with
    three attributes: ``item_ids``; ``coverage``, a bool array, True where the item had a row in every
    table; ``missing``, the number of items each spec had to zero-fill.
    """

    def __init__(self, arrays: dict[str, np.ndarray], item_ids, coverage: np.ndarray, missing: dict[str, int]):
        super().__init__(arrays)
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.coverage = coverage
        self.missing = missing

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k!r}: {v.shape[1]}-d" for k, v in self.items())
        return (f"ItemFeatures({len(self.item_ids)} items, {{{shapes}}}, "
                f"coverage {int(self.coverage.sum())}/{len(self.coverage)})")


def _parse(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(p.strip() for p in spec.split(":")):
        raise MmworkError(f"feature spec {spec!r} must look like 'MODALITY:COLUMN', e.g. 'text:minilm' "
                          f"(the minilm column of the features/text table) or 'items:genres'")
    table, column = (p.strip() for p in spec.split(":"))
    return table, column


def _feature_tables(dataset: str) -> list[str]:
    from mmwork.store.tables import list_tables
    tables = list_tables()
    mine = tables[(tables["dataset"] == dataset) & tables["table"].str.startswith("features/")]
    return sorted(name.removeprefix("features/") for name in mine["table"] if not name.endswith("_errors"))


def _vector_columns(path) -> list[str]:
    """The columns of a feature table that hold vectors (lists of numbers)."""
    import pyarrow as pa
    from mmwork.store.tables import table_schema
    schema = table_schema(path)
    return [f.name for f in schema
            if (pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type) or pa.types.is_large_list(f.type))
            and (pa.types.is_floating(f.type.value_type) or pa.types.is_integer(f.type.value_type))]


def _read_spec(dataset: str, table: str, column: str) -> tuple[pd.Series, pd.Series]:
    """(item ids, values) of one spec's column, as read from its table."""
    from mmwork.store.tables import read_table, table_path, table_schema
    if table == "items":
        path = table_path(dataset, "items")
        names = table_schema(path).names
        if column not in names or column == "item_id":
            raise MmworkError(f"the {dataset} items table has no feature column {column!r}; it has "
                              f"{[n for n in names if n != 'item_id']}")
        frame = read_table(path, columns=["item_id", column])
        return frame["item_id"].astype(str), frame[column]
    path = table_path(dataset, f"features/{table}")
    if not path.exists():
        existing = _feature_tables(dataset)
        hint = (f"the feature tables of {dataset} are {existing}" if existing
                else f"{dataset} has no feature tables yet")
        raise MmworkError(f"no feature table features/{table} for {dataset}; {hint}; build it with "
                          f"`mmwork extract {dataset} {table}` (or mmwork.features.extract)")
    vectors = _vector_columns(path)
    if column not in vectors:
        raise MmworkError(f"features/{table} of {dataset} has no feature column {column!r}; its feature "
                          f"columns are {vectors}")
    frame = read_table(path, columns=["item_id", column])
    return frame["item_id"].astype(str), frame[column]


def _is_null(cell) -> bool:
    return cell is None or (np.ndim(cell) == 0 and isinstance(cell, (float, np.floating)) and np.isnan(cell))


def _as_matrix(values: pd.Series, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack a column into float32 rows: vectors as they are, lists of labels as multi-hot, numbers as
    one column. Also says which cells were empty (null), which count as missing items."""
    cells = values.tolist()
    present = np.array([not _is_null(c) for c in cells], dtype=bool)
    filled = [c for c, ok in zip(cells, present) if ok]
    if not filled:
        raise MmworkError(f"{spec} has no values at all")
    if all(np.ndim(c) == 0 for c in filled):
        if not all(isinstance(c, (int, float, np.integer, np.floating, bool, np.bool_)) for c in filled):
            raise MmworkError(f"{spec} is neither numbers, vectors nor lists of labels (e.g. {filled[0]!r})")
        out = np.zeros((len(cells), 1), np.float32)
        out[present, 0] = np.asarray(filled, dtype=np.float32)
        return out, present
    labels = next((c for c in filled if len(c)), None)
    if labels is not None and isinstance(next(iter(labels)), str):
        return _multi_hot([c if ok else [] for c, ok in zip(cells, present)], None)[0], present
    widths = {len(c) for c in filled}
    if len(widths) != 1:
        raise MmworkError(f"{spec} has vectors of different lengths ({sorted(widths)[:5]}); re-extract the table")
    out = np.zeros((len(cells), widths.pop()), np.float32)
    out[present] = np.stack([np.asarray(c, dtype=np.float32) for c in filled])
    return out, present


def _multi_hot(lists: Iterable, vocabulary: list[str] | None) -> tuple[np.ndarray, list[str]]:
    lists = [list(x) if x is not None else [] for x in lists]
    vocab = sorted({str(g) for x in lists for g in x}) if vocabulary is None else list(vocabulary)
    position = {g: j for j, g in enumerate(vocab)}
    out = np.zeros((len(lists), len(vocab)), np.float32)
    for row, labels in enumerate(lists):
        for label in labels:
            j = position.get(str(label))
            if j is not None:
                out[row, j] = 1.0
    return out, vocab


def genre_features(items: pd.DataFrame, item_ids=None, column: str = "genres",
                   vocabulary: list[str] | None = None) -> np.ndarray:
    """Multi-hot matrix (n_items x n_genres, float32) of a list-of-labels column such as the
    MovieLens ``genres``; rows follow ``item_ids`` when given (items absent from ``items`` get zeros),
    else the items table order. Columns are the sorted genre names unless ``vocabulary`` fixes them.

    >>> import pandas as pd
    >>> items = pd.DataFrame({"item_id": ["a", "b"], "genres": [["Comedy"], ["Drama", "Comedy"]]})
    >>> genre_features(items, ["b", "a", "z"]).tolist()
    [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    """
    from mmwork.store.validate import require_columns
    require_columns(items, ["item_id", column], "items table")
    matrix, _ = _multi_hot(items[column].tolist(), vocabulary)
    if item_ids is None:
        return matrix
    positions = pd.Index(items["item_id"].astype(str)).get_indexer(np.asarray(item_ids, dtype=object).astype(str))
    out = np.zeros((len(positions), matrix.shape[1]), np.float32)
    out[positions >= 0] = matrix[positions[positions >= 0]]
    return out


def load_item_features(dataset: str, specs: list[str] | str, item_ids) -> ItemFeatures:
    """Read each ``"MODALITY:COLUMN"`` spec of ``dataset`` as a float32 matrix whose rows follow
    ``item_ids`` (e.g. ``split.item_ids``); returns an :class:`ItemFeatures` dict keyed by spec.

    Errors (MmworkError): a spec naming a table or column that does not exist (the message lists what
    does); NaN or infinite values (the message gives the count); a table with rows for fewer than half
    of ``item_ids``. Items a table has no row for get zeros, are False in ``coverage`` and are
    counted in a warning.
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    specs = [s.strip() for s in specs]
    if not specs:
        raise MmworkError("no feature specs given; name at least one, e.g. ['text:minilm']")
    if len(set(specs)) != len(specs):
        raise MmworkError(f"feature specs repeat: {specs}")
    item_ids = np.asarray([str(i) for i in item_ids], dtype=object)
    if len(item_ids) == 0:
        raise MmworkError("item_ids is empty: nothing to align the features to")
    arrays, missing = {}, {}
    coverage = np.ones(len(item_ids), bool)
    for spec in specs:
        table, column = _parse(spec)
        ids, values = _read_spec(dataset, table, column)
        if ids.duplicated().any():
            raise MmworkError(f"{spec}: the table has {int(ids.duplicated().sum())} duplicate item_id row(s); "
                              f"rebuild it (mmwork.features.extract with refit=True)")
        matrix, present = _as_matrix(values, spec)
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            examples = list(ids[bad][:3])
            raise MmworkError(f"{spec}: {int(bad.sum())} item(s) have NaN or infinite values (e.g. {examples}); "
                              f"re-extract them (mmwork.features.extract(..., refit=True)) or drop those rows "
                              f"from the table so they fall back to zero features")
        position = pd.Index(ids[present]).get_indexer(item_ids)
        found = position >= 0
        if found.mean() < MIN_COVERAGE:
            raise MmworkError(f"{spec} covers only {int(found.sum())} of {len(item_ids)} items (< "
                              f"{MIN_COVERAGE:.0%}); is it the feature table of another data set? Extract "
                              f"features for these items first")
        out = np.zeros((len(item_ids), matrix.shape[1]), np.float32)
        out[found] = matrix[present][position[found]]
        arrays[spec] = out
        missing[spec] = int((~found).sum())
        coverage &= found
        if missing[spec]:
            message = (f"{spec}: {missing[spec]} of {len(item_ids)} items have no features (e.g. "
                       f"{list(item_ids[~found][:3])}); they get zero vectors (see ItemFeatures.coverage)")
            warnings.warn(message, UserWarning, stacklevel=2)
    return ItemFeatures(arrays, item_ids, coverage, missing)


def as_modalities(item_features, n_items: int) -> dict[str, np.ndarray]:
    """Check model input: an array (one modality) or a dict of arrays, each n_items rows of finite
    numbers; returns ``{name: float32 array}``."""
    if isinstance(item_features, dict):
        found = dict(item_features)
    else:
        found = {"features": item_features}
    if not found:
        raise MmworkError("item_features is an empty dict; give at least one feature matrix")
    out = {}
    for name, array in found.items():
        try:
            array = np.asarray(array.cpu().numpy() if hasattr(array, "cpu") else array, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise MmworkError(f"item features {name!r} are not a numeric matrix ({exc})") from exc
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[0] != n_items:
            raise MmworkError(f"item features {name!r} have shape {array.shape}; expected one row per item "
                              f"({n_items} rows, aligned to train.item_ids; load_item_features does that)")
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise MmworkError(f"item features {name!r} have NaN or infinite values in {int(bad.sum())} row(s); "
                              f"replace them (e.g. zeros) or re-extract those items")
        out[str(name)] = array
    return out


def l2_normalise(array: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in the array's own dtype; all-zero rows stay zero. The one row
    normalisation of mmwork (numpy's norm, not sklearn's ``normalize``, whose squared-sum norm rounds
    differently in the last bit and would move every recorded figure; it also keeps sklearn out of the store).

    >>> l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms == 0, 1, norms)


def content_vector(parts, dtype=np.float32) -> np.ndarray:
    """The content vector of items: each modality's rows L2-normalised (in ``dtype``), then concatenated
    in the given order. This is the one definition that the personalisation profiles, the experiments'
    diversity and the content models share.

    >>> content_vector({"a": np.array([[2.0, 0.0]]), "b": np.array([[0.0, 5.0]])}).tolist()
    [[1.0, 0.0, 0.0, 1.0]]
    """
    arrays = list(parts.values()) if isinstance(parts, dict) else list(parts)
    return np.concatenate([l2_normalise(np.asarray(a, dtype=dtype)) for a in arrays], axis=1)
