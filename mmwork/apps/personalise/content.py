"""f(i), the content of an item: read from the store for the catalogue, extracted the same way for a
new text (its text through the extractor that built the feature column, its labels parsed from it).

>>> content = ItemContent("movielens-100k", ["text:minilm", "items:genres"], "genres", "Genres:")  # doctest: +SKIP
>>> content.of_texts(["Heat (1995). Genres: Action, Crime."])["items:genres"]               # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

from mmwork.apps.personalise.profiles import parse_labels
from mmwork.core.errors import MmworkError


class ItemContent:
    """f(i) for the catalogue (read from the store) and for new texts (extracted the same way).

    >>> content = ItemContent("movielens-100k", ["text:minilm", "items:genres"], "genres", "Genres:")  # doctest: +SKIP
    >>> content.of_texts(["Heat (1995). Genres: Action, Crime."])["items:genres"]               # doctest: +SKIP
    """

    def __init__(self, dataset: str, specs: list[str], label_column: str | None, marker: str | None,
                 device: str = "auto"):
        self.dataset, self.specs, self.label_column, self.marker = dataset, list(specs), label_column, marker
        self.device = device
        self._extractors: dict = {}
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        wrong = [s for s in specs if s.startswith("items:") and s != f"items:{label_column}"]
        if wrong:
            raise MmworkError(f"{wrong}: a generated item has only a text, so its items-table features can only "
                              f"be its labels (items:{label_column}); use text:COLUMN features otherwise")
        self.vocabulary = self._labels() if label_column is not None else []

    def _labels(self) -> list[str]:
        """The label names in the column order of ``load_item_features`` (sorted)."""
        from mmwork.store.tables import read_table
        frame = read_table(self.dataset, "items", columns=["item_id", self.label_column])
        return sorted({str(g) for cell in frame[self.label_column] if cell is not None and np.ndim(cell)
                       for g in cell})

    def catalogue(self, item_ids):
        from mmwork.store.item_features import load_item_features
        return load_item_features(self.dataset, self.specs, item_ids)

    def of_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``{spec: float32 rows}`` for these texts, as the pipeline would extract them (cached per text)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            computed = {spec: self._extract(spec, todo) for spec in self.specs}
            for row, text in enumerate(todo):
                self._cache[text] = {spec: values[row] for spec, values in computed.items()}
        return {spec: np.stack([self._cache[t][spec] for t in texts]) for spec in self.specs}

    def labels(self, texts: list[str]) -> np.ndarray:
        """The label multi-hot of each text (columns: :attr:`vocabulary`)."""
        if self.label_column is None:
            return np.zeros((len(texts), 0), np.float32)
        return parse_labels(texts, self.vocabulary, self.marker)

    def _extract(self, spec: str, texts: list[str]) -> np.ndarray:
        table, column = spec.split(":")
        if table == "items":
            return self.labels(texts)
        if column not in self._extractors:
            if column == "minilm":
                from mmwork.features.text import SentenceEmbedder
                self._extractors[column] = SentenceEmbedder(device=self.device)
            else:  # the saved corpus fit that computed this column, checked against the table
                from mmwork.features.encoder import fitted_text_model
                self._extractors[column] = fitted_text_model(self.dataset, column)
        return np.asarray(self._extractors[column].transform(texts), dtype=np.float32)
