"""Metrics for generated text, as pure functions over token lists, and a Kneser-Ney n-gram baseline.

Every figure here depends on its protocol, so each function states it in full:

- :func:`bleu`: quality. The mean over hypotheses of sentence BLEU-n against the whole reference set
  (multi-reference clipping, closest-length brevity penalty, uniform weights 1/n, Chen & Cherry's
  smoothing method 1 with epsilon 0.1): nltk's ``sentence_bleu`` with ``SmoothingFunction().method1``,
  to rounding, in a fraction of its time (one table of per-n-gram maximum reference counts, built
  once). BLEU grows with the number of references: compare figures only at the same reference set.
- :func:`self_bleu`: diversity (lower is more diverse). The same BLEU of each sample against the
  other samples, never itself (leave-one-out), optionally against a fixed number of them.
- :func:`distinct_n`: corpus-level distinct-n (Li et al., 2016): unique n-grams over all samples per
  generated token. Length-biased: longer samples repeat more, so compare at similar lengths.
- :func:`copy_rate`: the share of samples found verbatim in the training texts.
- :class:`KneserNeyLM`: an interpolated Kneser-Ney n-gram model, the perplexity baseline.
- :func:`quality_diversity` and :func:`compare_curves`: the temperature sweep of "Language GANs
  Falling Short" (Caccia et al., ICLR 2020), judged as whole curves, not single points, with a
  bootstrap interval (samples resampled at each temperature) on the gap between them.

>>> references = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "in", "the", "park"]]
>>> bleu([["the", "cat", "sat", "on", "the", "mat"]], references)
1.0
>>> distinct_n([["a", "b", "a"], ["a", "b"]], 1), distinct_n([["a", "b", "a"], ["a", "b"]], 2)
(0.4, 0.4)
"""
from __future__ import annotations

import bisect
import logging
import math
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError

log = logging.getLogger("mmwork.evaluation")

EPSILON = 0.1
"""Chen & Cherry's (2014) smoothing method 1: a zero n-gram match count becomes this, over the
hypothesis' n-gram count (nltk's ``SmoothingFunction().method1`` default)."""


# -- BLEU and self-BLEU ------------------------------------------------------------------------------
def _token_lists(samples, what: str) -> list[Sequence]:
    """``samples`` as a non-empty list of token lists; a plain string is refused (it would be read as
    a list of characters)."""
    if isinstance(samples, str) or not isinstance(samples, Iterable):
        raise MmworkError(f"{what} must be a list of token lists, got {type(samples).__name__}")
    samples = list(samples)
    if not samples:
        raise MmworkError(f"{what} is empty; pass at least one token list")
    for sample in samples:
        if isinstance(sample, str) or not isinstance(sample, (Sequence, np.ndarray)):
            raise MmworkError(f"{what} must hold token lists (e.g. text.split()), not "
                              f"{type(sample).__name__} values such as {sample!r:.40}")
    return samples


def _check_order(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise MmworkError(f"the n-gram order n must be a positive integer, got {n!r}")
    return int(n)


def _ngram_counts(tokens: Sequence, n: int) -> Counter:
    """Counts of every 1..n-gram of ``tokens`` in one Counter (tuples of different lengths never
    collide)."""
    tokens = tuple(tokens)
    counts = Counter()
    for k in range(1, n + 1):
        counts.update(zip(*(tokens[i:] for i in range(k))))
    return counts


def _sentence_bleu(hypothesis: Sequence, n: int, clip, closest_length: int) -> float:
    """BLEU-n of one hypothesis; ``clip(ngram)`` is the maximum count of that n-gram in any reference."""
    length = len(hypothesis)
    counts = _ngram_counts(hypothesis, n)
    matches = [0] * (n + 1)
    for gram, count in counts.items():
        matches[len(gram)] += min(count, clip(gram))
    if matches[1] == 0:  # nltk returns 0 outright when not one word matches (smoothing or not)
        return 0.0
    weight, logs = 1 / n, []
    for k in range(1, n + 1):
        total = max(1, length - k + 1)
        logs.append(weight * math.log(matches[k] / total if matches[k] else EPSILON / total))
    penalty = 1.0 if length > closest_length else math.exp(1 - closest_length / length)
    return penalty * math.exp(math.fsum(logs))


def _closest(lengths: list[int], length: int, available) -> int:
    """The reference length closest to ``length`` (the shorter one on a tie, as nltk), among the
    sorted distinct ``lengths`` for which ``available(l)`` holds."""
    i = bisect.bisect_left(lengths, length)
    left, right = i - 1, i
    while left >= 0 and not available(lengths[left]):
        left -= 1
    while right < len(lengths) and not available(lengths[right]):
        right += 1
    candidates = [lengths[j] for j in (left, right) if 0 <= j < len(lengths)]
    return min(candidates, key=lambda r: (abs(r - length), r))


def bleu(hypotheses: list[list[str]], references: list[list[str]], n: int = 4) -> float:
    """Mean sentence BLEU-n of the hypotheses, each against the whole reference set (the mean of
    :func:`bleu_scores`).

    Protocol, per hypothesis (nltk's ``sentence_bleu(references, hypothesis, weights=(1/n,)*n,
    smoothing_function=SmoothingFunction().method1)``, to rounding): modified k-gram precision for
    k = 1..n, each hypothesis k-gram count clipped at its maximum count in any one reference, over the
    number of hypothesis k-grams (at least 1); a zero match count becomes epsilon = 0.1 (Chen & Cherry's
    method 1); geometric mean with uniform weights 1/n; brevity penalty exp(1 - r/c) when the hypothesis
    length c is not above r, the length of the reference closest to it (the shorter on a tie). A
    hypothesis with no word in any reference (or empty) scores 0. The result is the plain mean over
    hypotheses (not corpus BLEU). BLEU grows with the reference set: keep it fixed between figures.

    The per-n-gram maximum over the references is one table built once: 1,000 Austen sentences
    against 2,000 others (29 words on average) take 0.2 s, where nltk, re-counting every reference
    for every hypothesis, takes 0.14 s per hypothesis (2.4 minutes); the figures agree to 1e-12.

    >>> refs = [["the", "cat", "sat"], ["the", "cat", "ran", "away", "home"]]
    >>> bleu([["the", "cat", "sat"]], refs, n=2), bleu([["a", "dog"]], refs, n=2)
    (1.0, 0.0)
    >>> round(bleu([["the", "cat"]], refs, n=2), 4)   # precisions 1, 1; penalty exp(1 - 3/2)
    0.6065
    >>> round(bleu([["the", "cat", "sat"]], refs), 4)  # n=4: no 4-gram, so p4 = 0.1 / 1
    0.5623
    """
    return float(np.mean(bleu_scores(hypotheses, references, n)))


def bleu_scores(hypotheses: list[list[str]], references: list[list[str]], n: int = 4) -> np.ndarray:
    """The sentence BLEU-n of each hypothesis against the whole reference set, as :func:`bleu`
    describes (which is their mean): the per-sample scores a bootstrap resamples."""
    hypotheses, references = _token_lists(hypotheses, "hypotheses"), _token_lists(references, "references")
    n = _check_order(n)
    clip: dict[tuple, int] = {}
    for reference in references:
        for gram, count in _ngram_counts(reference, n).items():
            if count > clip.get(gram, 0):
                clip[gram] = count
    lengths = sorted({len(r) for r in references})
    return np.array([_sentence_bleu(h, n, lambda g: clip.get(g, 0), _closest(lengths, len(h), lambda _: True))
                     for h in hypotheses])


def self_bleu(samples: list[list[str]], n: int = 4, max_references: int | None = None, seed: int = 0) -> float:
    """Mean BLEU-n (as :func:`bleu`) of each sample against the other samples, never itself (the mean
    of :func:`self_bleu_scores`).

    Leave-one-out: sample i's references are the other samples (a duplicate of sample i at another
    index counts: that is a real lack of diversity); the closest-length rule excludes sample i too.
    Higher means less diverse. With ``max_references`` = m (fewer than the other samples), every
    sample is scored against exactly m others: one pool of m + 1 samples is drawn at random (with
    ``seed``, shared by all samples); a sample in the pool uses the rest of the pool, any other sample
    uses the pool less its last-drawn member. Self-BLEU grows with the number of references, so fix m
    to compare figures from different sample counts.

    The per-n-gram top-two counts over the references, with the owner of the top one, are built once,
    so leaving one sample out is a lookup.

    >>> same = [["a", "b", "c", "d"]] * 3
    >>> self_bleu(same)
    1.0
    >>> self_bleu([["a", "b", "c", "d"], ["w", "x", "y", "z"]])   # each against the other only
    0.0
    """
    return float(np.mean(self_bleu_scores(samples, n, max_references, seed)))


def self_bleu_scores(samples: list[list[str]], n: int = 4, max_references: int | None = None,
                     seed: int = 0) -> np.ndarray:
    """The BLEU-n of each sample against its references among the other samples, as :func:`self_bleu`
    describes (which is their mean)."""
    samples = _token_lists(samples, "samples")
    n = _check_order(n)
    if len(samples) < 2:
        raise MmworkError(f"self-BLEU needs at least 2 samples (each is scored against the others), got "
                          f"{len(samples)}")
    others = len(samples) - 1
    if max_references is not None and (not isinstance(max_references, (int, np.integer)) or max_references < 1):
        raise MmworkError(f"max_references must be a positive integer or None, got {max_references!r}")
    if max_references is None or max_references >= others:
        pool, spare = np.arange(len(samples)), None
    else:
        pool = np.random.default_rng(seed).choice(len(samples), int(max_references) + 1, replace=False)
        spare = int(pool[-1])
    top: dict[tuple, list] = {}  # n-gram -> [top count, its owner, second count]
    length_counts: Counter = Counter()
    for owner in pool.tolist():
        length_counts[len(samples[owner])] += 1
        for gram, count in _ngram_counts(samples[owner], n).items():
            entry = top.get(gram)
            if entry is None:
                top[gram] = [count, owner, 0]
            elif count > entry[0]:
                entry[2], entry[0], entry[1] = entry[0], count, owner
            elif count > entry[2]:
                entry[2] = count
    lengths = sorted(length_counts)
    in_pool = set(pool.tolist())
    scores = []
    for i, hypothesis in enumerate(samples):
        left_out = i if spare is None or i in in_pool else spare

        def clip(gram, left_out=left_out):
            entry = top.get(gram)
            return 0 if entry is None else entry[2] if entry[1] == left_out else entry[0]

        own = len(samples[left_out])
        closest = _closest(lengths, len(hypothesis), lambda r, own=own: length_counts[r] > (r == own))
        scores.append(_sentence_bleu(hypothesis, n, clip, closest))
    return np.array(scores)


# -- diversity and copying ---------------------------------------------------------------------------
def distinct_n(samples: list[list[str]], n: int, per: str = "token") -> float:
    """Corpus-level distinct-n: the number of unique n-grams over all samples, divided by the total
    number of generated tokens (``per="token"``, Li et al. 2016) or of generated n-grams
    (``per="ngram"``, bounded by 1). Pooled over the corpus, not averaged per sentence. Length-biased:
    long samples repeat words more, so compare models at similar sample lengths.

    >>> samples = [["a", "b", "a"], ["a", "b"]]                  # 5 tokens; bigrams ab, ba, ab
    >>> distinct_n(samples, 1), distinct_n(samples, 2), distinct_n(samples, 2, per="ngram")
    (0.4, 0.4, 0.6666666666666666)
    """
    samples = _token_lists(samples, "samples")
    n = _check_order(n)
    if per not in ("token", "ngram"):
        raise MmworkError(f"per must be 'token' or 'ngram', got {per!r}")
    unique: set[tuple] = set()
    for sample in samples:
        unique.update(zip(*(tuple(sample)[i:] for i in range(n))))
    tokens = sum(len(s) for s in samples)
    total = tokens if per == "token" else sum(max(0, len(s) - n + 1) for s in samples)
    if total == 0:
        raise MmworkError(f"the samples hold no {'tokens' if per == 'token' else f'{n}-grams'}; "
                          f"distinct-{n} is undefined")
    return len(unique) / total


def _normalise(text: str) -> str:
    return " ".join(text.split())


def copy_rate(samples: list[str], training: Iterable[str]) -> float:
    """The share of samples that equal one whole training text after white-space normalisation
    (leading and trailing white space dropped, inner runs of white space, newlines included, made
    one space; case and punctuation kept). A sample that is only part of a training text is not a
    copy.

    >>> copy_rate(["It is a truth.", "it is a truth.", "A new  line"], ["It  is a truth.\\n", "Other."])
    0.3333333333333333
    """
    if isinstance(samples, str) or not isinstance(samples, Iterable):
        raise MmworkError(f"samples must be a list of strings, got {type(samples).__name__}")
    samples = list(samples)
    if not samples:
        raise MmworkError("samples is empty; pass at least one generated text")
    if not all(isinstance(s, str) for s in samples):
        raise MmworkError("samples must be strings (decode token ids first)")
    if isinstance(training, str):
        raise MmworkError("training must be an iterable of texts, not one string")
    seen = {_normalise(t) for t in training}
    return sum(_normalise(s) in seen for s in samples) / len(samples)


def perplexity(nll_total: float, n_tokens: int) -> float:
    """exp(summed negative log-likelihood in nats / number of predicted tokens, end-of-sequence
    tokens included).

    >>> perplexity(10 * math.log(4), 10)      # ten tokens, each with probability 1/4
    4.0
    """
    if n_tokens <= 0:
        raise MmworkError(f"perplexity needs at least one token, got {n_tokens}")
    if not math.isfinite(nll_total) or nll_total < 0:
        raise MmworkError(f"the summed negative log-likelihood must be finite and >= 0, got {nll_total}")
    return float(math.exp(nll_total / n_tokens))


# -- Kneser-Ney baseline -----------------------------------------------------------------------------
BOS_ID, EOS_ID, UNK_ID = 0, 1, 2  # the model's own ids; token values are never compared with these


class KneserNeyLM:
    """Interpolated Kneser-Ney n-gram language model over token sequences (ids or strings).

    Each sequence is padded with ``order - 1`` begin-of-sequence markers and ends with one
    end-of-sequence marker, which is predicted (and counted as a token); ``fit(..., max_len=m)`` cuts a
    training sequence of m tokens or more to its first m and gives it *no* end marker (the rule of
    :class:`~mmwork.models.generators.rnn_lm.RNNLanguageModel`, so both learn from the same tokens and
    neither learns to stop where a cut was). Training tokens seen fewer than ``min_count`` times
    (default 2: the words seen once) become the ``<unk>`` class, and so does any token unseen in
    training when scoring. Only the n-grams ending at a predicted position are counted, every order up
    to ``order``; with one discount D:

    - top order: P(w | h) = max(c(h w) - D, 0) / c(h .) + D N1+(h .) / c(h .) P(w | h'),
      where h' drops the first token of h;
    - lower orders, continuation counts: max(N1+(. h w) - D, 0) / N1+(. h .) + D N1+(h .) /
      N1+(. h .) P(w | h');
    - unigrams: N1+(. w) / N1+(. .), the share of distinct bigram types that end in w;
    - a context never seen in training passes its whole mass to the next lower order.

    These are ``nltk.lm.KneserNeyInterpolated``'s formulas, and the tests check that both give the
    same perplexity (to 1e-6) when nltk is fitted on the same n-grams; the probabilities over the
    vocabulary sum to 1 for every context. Why not nltk itself, measured on Austen's word tokens
    (order 5, the 695k-token train split, 2,000 test sentences, 2 CPU cores): nltk fits in 31 s but
    its lower-order continuation counts scan every n-gram type of the next order for every word
    scored, 0.19 s per token, about 3.5 hours for the test sentences; and it gives probability 0
    (perplexity inf) to any unseen word, having no ``<unk>`` mass. This one counts with numpy
    (n-grams as integer keys, one sorted key table per order): 2-3 s to fit, 0.06 s to score
    (perplexity 84.8 with ``min_count=2``).

    ``<unk>`` and a closed vocabulary: by default ``<unk>`` is one outcome, and its probability is that
    of "some rare token". A neural model over a fixed set of ids (a BPE tokenizer's pieces) must name
    the exact piece, so next to it that default flatters the n-gram model. ``n_types`` (the number of
    distinct tokens the data can hold, e.g. ``tokenizer.vocab_size_ - 4`` ordinary pieces) splits the
    ``<unk>`` probability evenly over the ``n_types - len(vocabulary_)`` tokens it stands for
    (``unk_types_``), so each unknown token is scored as one named outcome. :meth:`oov_rate` tells how
    many tokens go through ``<unk>``. Compare perplexities only over the same tokens, the same cut and
    the same closed vocabulary: fit it on the neural model's token ids, with its ``max_len`` and
    ``n_types``, and score the same whole sequences.

    Learned state (set by :meth:`fit`): ``vocabulary_`` (token -> the model's id; 0, 1 and 2 are the
    begin, end and ``<unk>`` markers), ``size_`` (ids in all), ``unk_types_`` (the tokens ``<unk>``
    stands for: ``n_types - len(vocabulary_)``, or 1 without ``n_types``), ``n_tokens_`` (predicted
    training tokens), and per order k: ``keys_[k]`` (the sorted k-gram keys, (id of the first k-1 tokens) *
    ``size_`` + last token; a k-gram's id is its position here), ``numerator_[k]`` (count or
    continuation count of each k-gram), ``denominator_[k]`` and ``backoff_[k]`` (per context).

    >>> lm = KneserNeyLM(order=2).fit([["a", "b"], ["a", "c"], ["b", "a"], ["a", "b"]])   # "c": <unk>
    >>> nll, tokens = lm.log_likelihood([["a", "b"], ["zzz"]])   # "zzz" is unseen: <unk> too
    >>> nll.round(4).tolist(), tokens.tolist()
    ([1.7167, 3.6928], [3, 2])
    >>> KneserNeyLM(order=2, min_count=1).fit([["a", "b"], ["b", "a"]]).perplexity([["zzz"]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmwork.core.errors.MmworkError: token 'zzz' was never seen in training and the model has no <unk> mass ...

    With ``n_types``, ``<unk>``'s probability is shared by the tokens it stands for; here 10 possible
    tokens, "a" and "b" known, so "zzz" gets 1/8 of the mass "c" and "zzz" got together above:

    >>> lm = KneserNeyLM(order=2, n_types=10).fit([["a", "b"], ["a", "c"], ["b", "a"], ["a", "b"]])
    >>> lm.unk_types_, lm.log_likelihood([["zzz"]])[0].round(4).tolist()   # 3.6928 + log 8
    (8, [5.7722])
    >>> lm.oov_rate([["a", "zzz"], ["c"]])       # 2 of 3 tokens go through <unk>
    0.6666666666666666
    """

    def __init__(self, order: int = 5, discount: float = 0.75, min_count: int = 2, n_types: int | None = None):
        if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order < 2:
            raise MmworkError(f"order must be an integer of at least 2, got {order!r}")
        if not isinstance(discount, (int, float)) or not 0 < discount <= 1:
            raise MmworkError(f"discount must lie in (0, 1], got {discount!r}")
        if not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise MmworkError(f"min_count must be a positive integer, got {min_count!r}")
        if n_types is not None and (not isinstance(n_types, (int, np.integer)) or isinstance(n_types, bool)
                                    or n_types < 1):
            raise MmworkError(f"n_types must be a positive integer (the distinct tokens the data can hold, e.g. a "
                              f"tokenizer's vocab_size_ - 4) or None, got {n_types!r}")
        self.order, self.discount, self.min_count = int(order), float(discount), int(min_count)
        self.n_types = None if n_types is None else int(n_types)

    def __repr__(self) -> str:
        types = "" if self.n_types is None else f", n_types={self.n_types}"
        return f"KneserNeyLM(order={self.order}, discount={self.discount}, min_count={self.min_count}{types})"

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(self, sequences: list[list[Hashable]], max_len: int | None = None) -> "KneserNeyLM":
        """Count the n-grams of ``sequences`` (lists of hashable tokens, without begin/end markers).
        With ``max_len`` = m, a sequence of m tokens or more is cut to its first m and gets no end
        marker (as :class:`~mmwork.models.generators.rnn_lm.RNNLanguageModel` trains with ``max_len=m``: m
        positions, the end included). Sets ``vocabulary_`` (token -> id, the special markers
        excluded), ``unk_types_``, ``n_tokens_`` (predicted training tokens) and the count tables.
        Returns self."""
        sequences = _token_lists(sequences, "sequences")
        if max_len is not None and (not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool)
                                    or max_len < 1):
            raise MmworkError(f"max_len must be a positive integer or None, got {max_len!r}")
        started = time.perf_counter()
        ends = None
        if max_len is not None:
            ends = [len(s) < max_len for s in sequences]
            sequences = [s if end else s[:max_len] for s, end in zip(sequences, ends)]
        counts = Counter(token for sequence in sequences for token in sequence)
        kept = sorted((t for t, c in counts.items() if c >= self.min_count), key=lambda t: (-counts[t], repr(t)))
        if self.n_types is not None and self.n_types < len(kept):
            raise MmworkError(f"n_types={self.n_types} is below the {len(kept)} distinct tokens kept from the "
                              "training sequences; it must count every token the data can hold")
        self.vocabulary_ = {token: i + 3 for i, token in enumerate(kept)}
        self.size_ = len(kept) + 3
        self.unk_types_ = 1 if self.n_types is None else max(1, self.n_types - len(kept))
        stream, predicted = self._stream(sequences, ends)
        self.n_tokens_ = int(predicted.sum())
        ids, self.keys_ = self._ids(stream)
        D = self.discount
        # ids[k][i]: the k-gram ending at i; its context is ids[k - 1][i - 1], its word stream[i].
        self.numerator_, self.denominator_, self.backoff_ = {}, {}, {}
        where = np.flatnonzero(predicted)
        for k in range(1, self.order + 1):
            grams = ids[k][where]
            n_grams, n_contexts = len(self.keys_[k]), len(self.keys_[k - 1])
            if k == self.order:  # raw counts
                numerator = np.bincount(grams, minlength=n_grams).astype(np.float64)
            else:  # continuation counts: distinct (k+1)-gram types ending in each k-gram
                higher = np.unique(ids[k + 1][where])
                suffix = self._suffix(k + 1, higher)
                numerator = np.bincount(suffix, minlength=n_grams).astype(np.float64)
            context_of = self.keys_[k] // self.size_  # each k-gram's context id, in order k - 1
            denominator = np.bincount(context_of, weights=numerator, minlength=n_contexts)
            types = np.bincount(context_of, weights=(numerator > 0).astype(np.float64), minlength=n_contexts)
            self.numerator_[k], self.denominator_[k] = numerator, denominator
            with np.errstate(invalid="ignore", divide="ignore"):
                self.backoff_[k] = np.where(denominator > 0, D * types / denominator, 1.0)
            if k == 1:  # no discount on the unigram level (as nltk), and nothing below it
                self.backoff_[k] = np.zeros(n_contexts)
        log.info("Kneser-Ney %d-gram model: %d sequences, %d predicted tokens, %d types, %d n-grams of order %d, "
                 "fitted in %.1f s", self.order, len(sequences), self.n_tokens_, len(kept), len(self.keys_[-1]),
                 self.order, time.perf_counter() - started)
        return self

    def _stream(self, sequences, ends: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All sequences as one id stream, each after ``order - 1`` begin markers and followed by an
        end marker (unless ``ends`` says it has none: a cut sequence), and which positions are
        predicted (the tokens and the end markers)."""
        lookup = self.vocabulary_
        pieces = []
        pad = [BOS_ID] * (self.order - 1)
        for i, sequence in enumerate(sequences):
            pieces.extend(pad)
            pieces.extend(lookup.get(token, UNK_ID) for token in sequence)
            if ends is None or ends[i]:
                pieces.append(EOS_ID)
        stream = np.asarray(pieces, dtype=np.int64)
        return stream, stream != BOS_ID

    def _ids(self, stream: np.ndarray, keys: list[np.ndarray] | None = None):
        """``ids[k][i]``: the id of the k-gram ending at position i, for k = 0..order (k = 0: the
        empty sequence, id 0), a position in ``keys[k]``, the sorted keys ``(id of the (k-1)-gram
        before the word) * size_ + word``. Without ``keys`` (fitting) they are built from ``stream``
        and returned too, ``(ids, keys)``; with them, a k-gram they lack gets id -1."""
        fit, ids = keys is None, [np.zeros(len(stream), dtype=np.int64)]
        keys = [np.zeros(1, dtype=np.int64)] if fit else keys
        for k in range(1, self.order + 1):
            before = np.zeros(len(stream), dtype=np.int64)  # the empty sequence before every word
            if k > 1:
                before[0], before[1:] = -1, ids[k - 1][:-1]
            key = np.where(before >= 0, before * self.size_ + stream, -1)
            if fit:
                table, inverse = np.unique(key[key >= 0], return_inverse=True)
                keys.append(table)
                current = np.full(len(stream), -1, dtype=np.int64)
                current[key >= 0] = inverse
            else:
                at = np.minimum(np.searchsorted(keys[k], key), len(keys[k]) - 1)
                current = np.where((key >= 0) & (keys[k][at] == key), at, -1)
            ids.append(current)
        return (ids, keys) if fit else ids

    def _suffix(self, k: int, grams: np.ndarray) -> np.ndarray:
        """The id of the last k-1 tokens of each k-gram id in ``grams`` (all known to the model)."""
        words = self.keys_[k][grams] % self.size_
        context = self.keys_[k][grams] // self.size_  # the first k-1 tokens, in order k - 1
        if k == 2:
            return np.searchsorted(self.keys_[1], words)
        shorter = self._suffix(k - 1, context)  # tokens 2..k-1, in order k - 2
        return np.searchsorted(self.keys_[k - 1], shorter * self.size_ + words)

    # -- scoring ---------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if "vocabulary_" not in self.__dict__:
            raise MmworkError("KneserNeyLM is not fitted; call fit(sequences) first")

    def _probabilities(self, stream: np.ndarray, where: np.ndarray) -> np.ndarray:
        """P(stream[i] | the order - 1 tokens before it) for each position i in ``where``."""
        ids = self._ids(stream, self.keys_)
        p = np.zeros(len(where))
        for k in range(1, self.order + 1):
            gram, context = ids[k][where], ids[k - 1][where - 1] if k > 1 else np.zeros(len(where), np.int64)
            seen = context >= 0
            seen[seen] = self.denominator_[k][context[seen]] > 0
            numerator = np.zeros(len(where))
            known = seen & (gram >= 0)
            numerator[known] = self.numerator_[k][gram[known]]
            discount = 0.0 if k == 1 else self.discount
            c = context[seen]
            p[seen] = (np.maximum(numerator[seen] - discount, 0) / self.denominator_[k][c]
                       + self.backoff_[k][c] * p[seen])
        return p

    def log_likelihood(self, sequences: list[list[Hashable]]) -> tuple[np.ndarray, np.ndarray]:
        """Per sequence: the summed negative log-likelihood in nats and the number of predicted
        tokens (its tokens plus the end marker), as two arrays (the generators' convention). A token
        outside the vocabulary gets ``<unk>``'s probability divided by ``unk_types_``. Whole
        sequences, never cut."""
        self._check_fitted()
        sequences = _token_lists(sequences, "sequences")
        stream, predicted = self._stream(sequences)
        where = np.flatnonzero(predicted)
        p = self._probabilities(stream, where)
        if self.unk_types_ > 1:
            p = np.where(stream[where] == UNK_ID, p / self.unk_types_, p)
        if (p <= 0).any():
            bad = next((t for s in sequences for t in s if t not in self.vocabulary_), "<unk>")
            raise MmworkError(f"token {bad!r} was never seen in training and the model has no <unk> mass (no "
                              f"training token was seen fewer than min_count={self.min_count} times); fit with "
                              f"min_count={max(2, self.min_count + 1)} or more")
        lengths = np.array([len(s) + 1 for s in sequences])
        owner = np.repeat(np.arange(len(sequences)), lengths)
        return np.bincount(owner, weights=-np.log(p), minlength=len(sequences)), lengths

    def perplexity(self, sequences: list[list[Hashable]]) -> float:
        """exp(total negative log-likelihood / total predicted tokens, end markers included)."""
        nll, tokens = self.log_likelihood(sequences)
        return perplexity(float(nll.sum()), int(tokens.sum()))

    def oov_rate(self, sequences: list[list[Hashable]]) -> float:
        """The share of the tokens of ``sequences`` (end markers not counted) outside the vocabulary,
        i.e. scored through ``<unk>``."""
        self._check_fitted()
        sequences = _token_lists(sequences, "sequences")
        total = sum(len(s) for s in sequences)
        if total == 0:
            raise MmworkError("the sequences hold no tokens; the OOV rate is undefined")
        return sum(t not in self.vocabulary_ for s in sequences for t in s) / total

    def distribution(self, context: Sequence[Hashable] = ()) -> dict:
        """P(next token | ``context``) for every token the model can predict: the vocabulary, ``"<unk>"``
        (when it has mass: the total over the ``unk_types_`` tokens it stands for, each of which gets an
        equal share) and ``"</s>"`` (the end marker); the values sum to 1. The context is the sequence
        so far (begin markers are added in front).

        >>> lm = KneserNeyLM(order=2, min_count=1).fit([["a", "b"], ["a", "c"]])
        >>> {w: round(p, 3) for w, p in lm.distribution(["a"]).items()}
        {'a': 0.15, 'b': 0.275, 'c': 0.275, '</s>': 0.3}
        """
        self._check_fitted()
        if isinstance(context, str) or not isinstance(context, (Sequence, np.ndarray)):
            raise MmworkError(f"context must be a list of tokens, got {type(context).__name__}")
        history = [BOS_ID] * (self.order - 1) + [self.vocabulary_.get(t, UNK_ID) for t in context]
        history = history[len(history) - (self.order - 1):]
        candidates = np.arange(1, self.size_)
        rows = np.array([history + [w] for w in candidates], dtype=np.int64)
        probs = self._probabilities(rows.ravel(), np.arange(1, len(candidates) + 1) * self.order - 1)
        names = {i: t for t, i in self.vocabulary_.items()} | {UNK_ID: "<unk>", EOS_ID: "</s>"}
        probs = dict(zip(candidates.tolist(), probs.tolist()))
        return {names[w]: probs[w] for w in names if w != UNK_ID or probs[w] > 0}


# -- quality against diversity -----------------------------------------------------------------------
def quality_diversity(samples_by_temperature: dict[float, list[list[str]]], references: list[list[str]],
                      n: int = 4, max_references: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per sampling temperature, sorted by it: ``temperature``, ``bleu`` (quality: BLEU-n of
    the samples against ``references``, :func:`bleu`), ``self_bleu`` (diversity, lower is more
    diverse: leave-one-out BLEU-n among the samples against ``max_references`` others each,
    :func:`self_bleu` with ``seed``), ``distinct_1``, ``distinct_2`` (corpus-level, per generated
    token), ``n_samples``, ``n_references`` (BLEU's reference count) and ``self_bleu_references``.
    Keep the references, ``max_references`` and the sample counts fixed across models.

    The table's ``attrs["per_sample"]`` holds, per temperature, each sample's BLEU and self-BLEU
    (``{"bleu": tuple, "self_bleu": tuple}``): :func:`compare_curves` resamples them for its bootstrap
    interval.

    >>> samples = {1.0: [["a", "b"], ["c", "d"]], 0.5: [["a", "b"], ["a", "b"]]}
    >>> quality_diversity(samples, [["a", "b"]], n=2)[["temperature", "bleu", "self_bleu"]]
       temperature  bleu  self_bleu
    0          0.5   1.0        1.0
    1          1.0   0.5        0.0
    """
    if not isinstance(samples_by_temperature, dict) or not samples_by_temperature:
        raise MmworkError("samples_by_temperature must be a non-empty dict {temperature: token lists}")
    for temperature in samples_by_temperature:
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise MmworkError(f"temperatures must be positive numbers, got {temperature!r}")
    references = _token_lists(references, "references")
    rows, per_sample = [], {}
    for temperature, samples in sorted(samples_by_temperature.items()):
        samples = _token_lists(samples, f"the samples at temperature {temperature}")
        others = len(samples) - 1 if max_references is None else min(max_references, len(samples) - 1)
        scores = {"bleu": bleu_scores(samples, references, n), "self_bleu": self_bleu_scores(samples, n, max_references,
                                                                                             seed)}
        # tuples, not arrays: pandas compares attrs with == when it concatenates tables
        per_sample[float(temperature)] = {k: tuple(v.tolist()) for k, v in scores.items()}
        rows.append({"temperature": float(temperature), "bleu": float(scores["bleu"].mean()),
                     "self_bleu": float(scores["self_bleu"].mean()),
                     "distinct_1": distinct_n(samples, 1), "distinct_2": distinct_n(samples, 2),
                     "n_samples": len(samples), "n_references": len(references),
                     "self_bleu_references": others})
    table = pd.DataFrame(rows)
    table.attrs["per_sample"] = per_sample
    return table


class CurveComparison(NamedTuple):
    """How two quality-diversity curves compare over the self-BLEU range they share, with a bootstrap
    interval."""

    winner: str
    """"a" or "b" when that curve's BLEU is at least the other's over the whole shared range and
    above it somewhere (it dominates), "tie" when they coincide (within 1e-9), "neither" when they
    cross, "no overlap" when the ranges do not meet. A point estimate: read it with the interval."""
    a_better: float
    """Share of the shared self-BLEU range where curve a's BLEU is higher."""
    mean_gap: float
    """Mean of BLEU(a) - BLEU(b) over the shared range (the area between the curves over its width)."""
    low: float
    """Lower end of the shared self-BLEU range."""
    high: float
    """Upper end of the shared self-BLEU range."""
    gap_low: float = math.nan
    """Lower end of the bootstrap interval of ``mean_gap`` (NaN without per-sample scores)."""
    gap_high: float = math.nan
    """Upper end of the bootstrap interval of ``mean_gap``; an interval that covers 0 means the samples
    do not tell the curves apart."""
    a_better_low: float = math.nan
    """Lower end of the bootstrap interval of ``a_better``."""
    a_better_high: float = math.nan
    """Upper end of the bootstrap interval of ``a_better``."""
    draws: int = 0
    """Bootstrap draws that gave both figures (draws whose resampled curves do not overlap are left out)."""
    level: float = math.nan
    """Coverage of the intervals (e.g. 0.95)."""


def _curve_points(curve: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, list | None]:
    if not isinstance(curve, pd.DataFrame) or not {"bleu", "self_bleu"} <= set(curve.columns) or curve.empty:
        raise MmworkError(f"{name} must be a quality_diversity() table with bleu and self_bleu columns")
    per_sample = curve.attrs.get("per_sample")
    scores = None
    if per_sample and "temperature" in curve.columns and all(float(t) in per_sample for t in curve["temperature"]):
        scores = [per_sample[float(t)] for t in curve["temperature"]]
    return curve["self_bleu"].to_numpy(float), curve["bleu"].to_numpy(float), scores


def _gap(xa, ya, xb, yb, points: int):
    """(share where a is higher, mean gap, gap on the grid, low, high) over the shared self-BLEU range,
    or None when the ranges do not meet."""
    oa, ob = np.argsort(xa, kind="stable"), np.argsort(xb, kind="stable")
    xa, ya, xb, yb = xa[oa], ya[oa], xb[ob], yb[ob]
    low, high = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if low > high:
        return None
    grid = np.linspace(low, high, points)
    gap = np.interp(grid, xa, ya) - np.interp(grid, xb, yb)
    return float((gap > 0).mean()), float(gap.mean()), gap, float(low), float(high)


def compare_curves(curve_a: pd.DataFrame, curve_b: pd.DataFrame, points: int = 101, *, draws: int = 1000,
                   seed: int = 0, level: float = 0.95) -> CurveComparison:
    """Compare two :func:`quality_diversity` curves at matched diversity: each curve's BLEU is
    interpolated linearly as a function of its self-BLEU (points sorted by self-BLEU) on ``points``
    evenly spaced self-BLEU values over the range both curves cover, and compared point by point.
    Higher BLEU at the same self-BLEU is better; a curve dominates when it is never below the other.

    The interval (``level``, percentile bootstrap with ``draws`` draws and ``seed``): at every
    temperature of each curve the samples are drawn again with replacement, and that point's BLEU and
    self-BLEU become the means of the drawn samples' own scores (the per-sample scores that
    :func:`quality_diversity` keeps in ``attrs["per_sample"]``, paired, so a sample brings both); the
    shared range, ``mean_gap`` and ``a_better`` are then computed again. It holds the BLEU references
    and each sample's self-BLEU references fixed, and says nothing of the spread between training
    seeds. Tables without per-sample scores (built by hand) get no interval (NaN, ``draws`` 0).

    >>> a = pd.DataFrame({"self_bleu": [0.2, 0.5, 0.8], "bleu": [0.3, 0.5, 0.7]})
    >>> b = pd.DataFrame({"self_bleu": [0.3, 0.6, 0.9], "bleu": [0.2, 0.4, 0.6]})
    >>> compare_curves(a, b).winner, round(compare_curves(a, b).mean_gap, 3)
    ('a', 0.167)
    """
    if not isinstance(points, (int, np.integer)) or isinstance(points, bool) or points < 2:
        raise MmworkError(f"points must be an integer of at least 2, got {points!r}")
    if not isinstance(draws, (int, np.integer)) or isinstance(draws, bool) or draws < 0:
        raise MmworkError(f"draws must be a non-negative integer (0: no interval), got {draws!r}")
    if not isinstance(level, float) or not 0 < level < 1:
        raise MmworkError(f"level must be a float in (0, 1), e.g. 0.95, got {level!r}")
    xa, ya, scores_a = _curve_points(curve_a, "curve_a")
    xb, yb, scores_b = _curve_points(curve_b, "curve_b")
    point = _gap(xa, ya, xb, yb, points)
    if point is None:
        low, high = max(xa.min(), xb.min()), min(xa.max(), xb.max())
        return CurveComparison("no overlap", math.nan, math.nan, float(low), float(high))
    a_better, mean_gap, gap, low, high = point
    if np.allclose(gap, 0, rtol=0, atol=1e-9):
        winner = "tie"
    else:
        winner = "a" if (gap >= 0).all() else "b" if (gap <= 0).all() else "neither"
    result = CurveComparison(winner, a_better, mean_gap, low, high)
    if scores_a is None or scores_b is None or draws == 0:
        return result
    rng = np.random.default_rng(seed)

    def resampled(scores):  # (draws, temperatures) arrays of resampled mean self-BLEU and BLEU
        xs, ys = [], []
        for s in scores:
            index = rng.integers(0, len(s["bleu"]), size=(draws, len(s["bleu"])))
            xs.append(np.asarray(s["self_bleu"])[index].mean(1))
            ys.append(np.asarray(s["bleu"])[index].mean(1))
        return np.stack(xs, 1), np.stack(ys, 1)

    (bxa, bya), (bxb, byb) = resampled(scores_a), resampled(scores_b)
    figures = [f[:2] for f in (_gap(bxa[d], bya[d], bxb[d], byb[d], points) for d in range(draws)) if f is not None]
    if not figures:
        return result._replace(level=level)
    shares, gaps = np.array(figures).T
    tail = 100 * (1 - level) / 2
    return result._replace(gap_low=float(np.percentile(gaps, tail)), gap_high=float(np.percentile(gaps, 100 - tail)),
                           a_better_low=float(np.percentile(shares, tail)),
                           a_better_high=float(np.percentile(shares, 100 - tail)), draws=len(figures), level=level)
