"""Word error rate (WER) of transcripts against references, with jiwer, after one stated normalisation.

Normalisation (:func:`normalise`), the same on both sides: Unicode NFKC; lower case; apostrophes
deleted (``don't`` -> ``dont``, so both spellings meet); every other punctuation or symbol character
replaced by a space (``inter-asterisk`` -> ``inter asterisk``, ``pound.`` -> ``pound``); whitespace
collapsed. Numbers stay as written: ``2`` and ``two`` are different words, so a recogniser that writes
digits where the reference spells them out (or the reverse) pays for it.

WER = (substitutions + deletions + insertions) / reference words. The corpus WER
(:func:`word_error_rate`) pools the edits and the words of all utterances (jiwer's convention); it is not
the mean of the per-utterance rates (:func:`utterance_errors`), which weights short utterances more.

>>> word_error_rate(["The cat sat on the mat."], ["the cat sit on mat"])   # 1 substitution + 1 deletion
0.3333333333333333
>>> normalise("Press 2, then the pound-key!  Don't wait.")
'press 2 then the pound key dont wait'
"""
from __future__ import annotations

import re
import unicodedata

import pandas as pd

from mmwork.core.errors import MmworkError

_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")


def normalise(text: str) -> str:
    """``text`` normalised for WER as the module docstring states.

    >>> normalise("  Agent Logged-off... ")
    'agent logged off'
    """
    if not isinstance(text, str):
        raise MmworkError(f"a transcript must be a str, got {type(text).__name__}")
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    kept = (" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join("".join(kept).split())


def _pairs(references, hypotheses) -> tuple[list[str], list[str]]:
    if isinstance(references, str) or isinstance(hypotheses, str):
        references = [references] if isinstance(references, str) else references
        hypotheses = [hypotheses] if isinstance(hypotheses, str) else hypotheses
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise MmworkError(f"{len(references)} references but {len(hypotheses)} hypotheses: they must pair up")
    if not references:
        raise MmworkError("no references to score")
    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:
        raise MmworkError(f"reference {empty[0]} has no words after normalisation ({references[empty[0]]!r}); "
                          f"WER is undefined for it: drop it")
    return refs, hyps


def word_error_rate(references, hypotheses) -> float:
    """Corpus WER of ``hypotheses`` against ``references`` (lists of strings, or two strings), normalised
    as :func:`normalise` says. A reference with no words is a one-line error (WER is undefined)."""
    table = utterance_errors(references, hypotheses)
    return float((table.substitutions + table.deletions + table.insertions).sum() / table.words.sum())


def utterance_errors(references, hypotheses) -> pd.DataFrame:
    """One row per pair: the normalised ``reference`` and ``hypothesis``, reference ``words``,
    ``substitutions``, ``deletions``, ``insertions`` and the utterance's ``wer``.

    >>> utterance_errors(["press two", "seven"], ["press 2", ""])[["words", "substitutions", "deletions", "wer"]]
       words  substitutions  deletions  wer
    0      2              1          0  0.5
    1      1              0          1  1.0
    """
    import jiwer

    refs, hyps = _pairs(references, hypotheses)
    rows = []
    for ref, hyp in zip(refs, hyps):
        words = len(ref.split())
        if hyp:
            out = jiwer.process_words(ref, hyp)
            s, d, i = out.substitutions, out.deletions, out.insertions
        else:  # jiwer refuses an empty hypothesis; it is every reference word deleted
            s, d, i = 0, words, 0
        rows.append({"reference": ref, "hypothesis": hyp, "words": words, "substitutions": s, "deletions": d,
                     "insertions": i, "wer": (s + d + i) / words})
    return pd.DataFrame(rows)
