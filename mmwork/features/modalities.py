"""How each modality turns an item's input into feature columns: the bridge between the pure
extractors (``audio.py``, ``image.py``, ``text.py``) and the Dask pipeline.

A modality validates its parameters into its typed config when built (so a wrong parameter fails
before any compute), names the items column it reads, declares its output schema, and extracts a
batch of raw inputs into rows or per-item errors. Text also ``prepare``s: its models are fitted
once over the whole corpus on the client, then shipped to the workers; the fit is saved as arrays in
safetensors and JSON (:mod:`mmwork.store.artifacts`), never pickled, so loading it runs no code.

>>> AudioModality(n_mfcc=13).columns()["mfcc_stats"]
FixedSizeListType(fixed_size_list<item: float>[78])
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.features.audio import AudioConfig
from mmwork.features.image import ImageConfig
from mmwork.features.text import TextConfig

ItemResult = tuple[dict | None, tuple[str, BaseException] | None]  # (features, (stage, error))


def _vector(size: int) -> pa.DataType:
    return pa.list_(pa.float32(), size)


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_bytes(value) -> bytes:
    """An input cell is inline bytes, inline text, or a path to a file."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise FileNotFoundError("no input: the cell is empty")
    return Path(str(value)).read_bytes()


class Modality:
    """Base class. Subclasses set ``name``, ``input_columns`` and ``config_class``, and implement
    ``columns`` and ``extract``."""

    name: ClassVar[str] = ""
    input_columns: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type[Config]] = Config
    runtime: ClassVar[frozenset[str]] = frozenset()  # config fields the features do not depend on
    column: str | None = None  # the items column chosen by the pipeline

    def __init__(self, config: Config | dict | None = None, /, **params):
        self.config = self.config_class.make(config, **params)

    def fingerprint(self) -> str:
        """Changes whenever the features an input gives would change (parameters, fitted models)."""
        return _hash([self.name, self.config.model_dump(exclude=self.runtime)])

    def effective_params(self) -> dict:
        """The parameters the features are computed with (the config, unless a fit capped a value)."""
        return self.config.model_dump()

    def input_column(self, columns: list[str]) -> str | None:
        return next((c for c in self.input_columns if c in columns), None)

    def prepare(self, items_path: Path, column: str, models_dir: Path, refit: bool = False) -> None:
        """Fit whatever must see the whole corpus (nothing, except for text)."""

    def read(self, value) -> bytes:
        return _read_bytes(value)

    def columns(self) -> dict[str, pa.DataType]:
        raise NotImplementedError

    def extract(self, raws: list[bytes]) -> list[ItemResult]:
        raise NotImplementedError


class AudioModality(Modality):
    name = "audio"
    input_columns = ("audio",)
    config_class = AudioConfig

    def columns(self):
        from mmwork.features.audio import feature_dims
        cols = {k: _vector(v) for k, v in feature_dims(self.config.n_mfcc, self.config.n_mels).items()}
        if self.config.keep_frames:
            cols["mfcc_frames"] = pa.list_(_vector(self.config.n_mfcc))
        return cols

    def extract(self, raws):
        from mmwork.features.audio import audio_features, load_audio
        settings = self.config.model_dump(exclude={"sr"})
        results: list[ItemResult] = []
        for raw in raws:
            try:
                y, sr = load_audio(raw, sr=self.config.sr)
            except Exception as exc:  # noqa: BLE001 - every failure becomes an errors row
                results.append((None, ("decode", exc)))
                continue
            try:
                features = audio_features(y, sr, **settings)
                if "mfcc_frames" in features:
                    features["mfcc_frames"] = list(features["mfcc_frames"].T)
                results.append((features, None))
            except Exception as exc:  # noqa: BLE001
                results.append((None, ("extract", exc)))
        return results


class ImageModality(Modality):
    name = "image"
    input_columns = ("image",)
    config_class = ImageConfig
    runtime = frozenset({"device", "batch_size"})

    def _cheap(self) -> dict:
        return self.config.model_dump(exclude={"cnn", "device", "batch_size"})

    def columns(self):
        from mmwork.features.image import CNN_DIM, feature_dims
        cols = {k: _vector(v) for k, v in feature_dims(**self._cheap()).items()}
        if self.config.cnn:
            cols["cnn_effnet_lite0"] = _vector(CNN_DIM)
        return cols

    def extract(self, raws):
        from mmwork.features.image import cheap_image_features, decode_image, get_cnn_encoder
        cheap = self._cheap()
        results: list[ItemResult] = []
        decoded = []
        for raw in raws:
            try:
                img = decode_image(raw)
            except Exception as exc:  # noqa: BLE001
                results.append((None, ("decode", exc)))
                continue
            try:
                results.append((cheap_image_features(img, **cheap), None))
                decoded.append((len(results) - 1, img))
            except Exception as exc:  # noqa: BLE001
                results.append((None, ("extract", exc)))
        if self.config.cnn and decoded:
            encoder = get_cnn_encoder(self.config.device, self.config.batch_size)
            try:
                vectors = encoder.encode([img for _, img in decoded])
                for (position, _), vector in zip(decoded, vectors):
                    results[position][0]["cnn_effnet_lite0"] = vector
            except Exception as exc:  # noqa: BLE001 - a failed batch marks each of its items
                for position, _ in decoded:
                    results[position] = (None, ("extract", exc))
        return results


class TextModality(Modality):
    name = "text"
    input_columns = ("text", "text_path", "title")
    config_class = TextConfig
    runtime = frozenset({"device"})

    def __init__(self, config: TextConfig | dict | None = None, /, **params):
        super().__init__(config, **params)
        self.models: dict = {}
        self.corpus_hash = ""

    def fingerprint(self):
        return _hash([self.name, self.config.model_dump(exclude=self.runtime), self.corpus_hash])

    def effective_params(self):
        lsa = self.models.get("tfidf_lsa")
        return self.config.model_dump() | ({"lsa_components": lsa.n_components_} if lsa else {})

    def read(self, value) -> bytes:
        if isinstance(value, str) and self.column != "text_path":
            return value.encode("utf-8")
        return _read_bytes(value)

    def saved_fit(self, models_dir: Path) -> Path:
        """The folder where the corpus fit (TF-IDF/LSA, skip-gram) of this configuration is saved."""
        keep = self.config.model_dump(exclude={"device", "minilm"})
        return models_dir / f"text-{hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]}"

    def load_fit(self, models_dir: Path) -> bool:
        """Load the saved corpus fit of this configuration; False when there is none."""
        from mmwork.store.artifacts import read_artifact
        saved = self.saved_fit(models_dir)
        if not (saved / "model.json").exists():
            return False
        meta, arrays = read_artifact(saved)
        self.models = {"tfidf_lsa": _tfidf_lsa_from(meta["tfidf_lsa"], arrays),
                       "skipgram": _skipgram_from(meta["skipgram"], arrays)}
        self.corpus_hash = meta["corpus_hash"]
        return True

    def save_fit(self, models_dir: Path) -> Path:
        """Save the corpus fit as arrays + JSON (atomic, hashed; no pickle)."""
        from mmwork.store.artifacts import write_artifact
        lsa_meta, lsa_arrays = _tfidf_lsa_state(self.models["tfidf_lsa"])
        sg_meta, sg_arrays = _skipgram_state(self.models["skipgram"])
        meta = {"kind": "text-fit", "corpus_hash": self.corpus_hash, "tfidf_lsa": lsa_meta, "skipgram": sg_meta}
        return write_artifact(self.saved_fit(models_dir), lsa_arrays | sg_arrays, meta)

    def prepare(self, items_path, column, models_dir, refit=False):
        """Fit TF-IDF/LSA and skip-gram once over the corpus; reuse a saved fit so that re-runs and new
        items are transformed by the same models (``refit=True`` fits anew)."""
        import pyarrow.parquet as pq
        from mmwork.features.text import SentenceEmbedder, SkipGramEmbedder, TfidfLsa, decode_text
        if refit or not self.load_fit(models_dir):
            texts = []
            for value in pq.read_table(items_path, columns=[column]).column(0).to_pylist():
                try:
                    texts.append(decode_text(self.read(value)))
                except Exception:  # noqa: BLE001 - undecodable texts are reported per item later
                    continue
            c = self.config
            self.models = {
                "tfidf_lsa": TfidfLsa(max_features=c.max_features, n_components=c.lsa_components,
                                      seed=c.seed).fit(texts),
                "skipgram": SkipGramEmbedder(dim=c.skipgram_dim, epochs=c.skipgram_epochs, seed=c.seed,
                                             device="cpu").fit(texts),
            }
            self.corpus_hash = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
            self.save_fit(models_dir)
        if self.config.minilm:
            self.models["minilm"] = SentenceEmbedder(device=self.config.device)

    def columns(self):
        from mmwork.features.text import SENTENCE_DIM
        if not self.models:
            raise MmworkError("text features need prepare() first: the models are fitted over the corpus")
        cols = {"tfidf_lsa": _vector(self.models["tfidf_lsa"].n_components_),
                "skipgram": _vector(self.config.skipgram_dim)}
        if "minilm" in self.models:
            cols["minilm"] = _vector(SENTENCE_DIM)
        return cols

    def extract(self, raws):
        from mmwork.features.text import decode_text
        results: list[ItemResult] = []
        texts, positions = [], []
        for raw in raws:
            try:
                texts.append(decode_text(raw))
                positions.append(len(results))
                results.append(({}, None))
            except Exception as exc:  # noqa: BLE001
                results.append((None, ("decode", exc)))
        if texts:
            try:
                for column, model in self.models.items():
                    for position, vector in zip(positions, model.transform(texts)):
                        results[position][0][column] = vector
            except Exception as exc:  # noqa: BLE001
                for position in positions:
                    results[position] = (None, ("extract", exc))
        return results


MODALITIES = {m.name: m for m in (TextModality, ImageModality, AudioModality)}

# -- the text models' fitted state as arrays + JSON (what transform needs, bit for bit) ----------------
_SVD_ARRAYS = ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_")


def _tfidf_lsa_state(model) -> tuple[dict, dict]:
    vectorizer, svd = model.vectorizer_, model.svd_
    params = vectorizer.get_params() | {"dtype": np.dtype(vectorizer.dtype).name}
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    meta = {"params": {"max_features": model.max_features, "n_components": model.n_components,
                       "min_df": model.min_df, "ngram_range": list(model.ngram_range), "seed": model.seed},
            "vectorizer": params, "vocabulary": vocabulary, "n_components_": int(model.n_components_),
            "n_features_in_": int(svd.n_features_in_)}
    arrays = {"tfidf_lsa.idf_": vectorizer.idf_} | {f"tfidf_lsa.{k}": getattr(svd, k) for k in _SVD_ARRAYS}
    return meta, arrays


def _tfidf_lsa_from(meta: dict, arrays: dict):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from mmwork.features.text import TfidfLsa
    params = meta["vectorizer"] | {"dtype": np.dtype(meta["vectorizer"]["dtype"]).type,
                                   "ngram_range": tuple(meta["vectorizer"]["ngram_range"])}
    model = TfidfLsa(**meta["params"] | {"ngram_range": tuple(meta["params"]["ngram_range"])})
    vectorizer = TfidfVectorizer(**params)
    vectorizer.vocabulary_ = {term: i for i, term in enumerate(meta["vocabulary"])}
    vectorizer.fixed_vocabulary_ = False
    vectorizer.idf_ = arrays["tfidf_lsa.idf_"]
    svd = TruncatedSVD(meta["n_components_"], random_state=meta["params"]["seed"])
    for name in _SVD_ARRAYS:
        setattr(svd, name, arrays[f"tfidf_lsa.{name}"])
    svd.n_features_in_ = meta["n_features_in_"]
    model.vectorizer_, model.svd_ = vectorizer, svd
    model.n_components_ = model.n_features_ = meta["n_components_"]
    return model


_SKIPGRAM_PARAMS = ("dim", "window", "negatives", "epochs", "min_count", "lr", "batch_size", "seed", "device",
                    "subsample")


def _skipgram_state(model) -> tuple[dict, dict]:
    meta = {"params": {k: getattr(model, k) for k in _SKIPGRAM_PARAMS},
            "vocabulary": sorted(model.vocabulary_, key=model.vocabulary_.get), "losses": list(model.losses_)}
    return meta, {"skipgram.vectors_": model.vectors_, "skipgram.counts_": model.counts_}


def _skipgram_from(meta: dict, arrays: dict):
    from mmwork.features.text import SkipGramEmbedder
    model = SkipGramEmbedder(**meta["params"])
    model.vocabulary_ = {word: i for i, word in enumerate(meta["vocabulary"])}
    model.counts_, model.vectors_ = arrays["skipgram.counts_"], arrays["skipgram.vectors_"]
    model.losses_, model.n_features_ = meta["losses"], model.vectors_.shape[1]
    return model
