"""Diversity and copying of generated texts: corpus-level distinct-n and the copy rate.

- :func:`distinct_n`: corpus-level distinct-n (Li et al., 2016): unique n-grams over all samples per
  generated token. Length-biased: longer samples repeat more, so compare at similar lengths.
- :func:`copy_rate`: the share of samples found verbatim in the training texts.

>>> distinct_n([["a", "b", "a"], ["a", "b"]], 1), distinct_n([["a", "b", "a"], ["a", "b"]], 2)
(0.4, 0.4)
"""
from __future__ import annotations

from collections.abc import Iterable

from mmwork.core.errors import MmworkError
from mmwork.evaluation.text_generation.tokens import check_order, token_lists


def distinct_n(samples: list[list[str]], n: int, per: str = "token") -> float:
    """Corpus-level distinct-n: the number of unique n-grams over all samples, divided by the total
    number of generated tokens (``per="token"``, Li et al. 2016) or of generated n-grams
    (``per="ngram"``, bounded by 1). Pooled over the corpus, not averaged per sentence. Length-biased:
    long samples repeat words more, so compare models at similar sample lengths.

    >>> samples = [["a", "b", "a"], ["a", "b"]]                  # 5 tokens; bigrams ab, ba, ab
    >>> distinct_n(samples, 1), distinct_n(samples, 2), distinct_n(samples, 2, per="ngram")
    (0.4, 0.4, 0.6666666666666666)
    """
    samples = token_lists(samples, "samples")
    n = check_order(n)
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
