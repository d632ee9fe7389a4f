"""Text-generation metrics on hand-made cases worked out by hand and cross-checked against nltk
(``sentence_bleu`` with smoothing method 1, ``KneserNeyInterpolated``), and the Kneser-Ney baseline on
a source of known perplexity and on real Austen sentences (from a private store built by
``mmwork.datasets.get``, a few seconds)."""
import math
import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from nltk.lm import KneserNeyInterpolated
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from mmwork import MmworkError, datasets
from mmwork.evaluation.text_generation import (KneserNeyLM, bleu, bleu_scores, compare_curves, copy_rate, distinct_n,
                                               perplexity, quality_diversity, self_bleu, self_bleu_scores)

WORDS = "the a cat dog sat ran on in mat park home away and".split()
SMOOTH = SmoothingFunction().method1


def _nltk_bleu(hypothesis, references, n=4):
    return sentence_bleu(references, hypothesis, weights=(1 / n,) * n, smoothing_function=SMOOTH)


def _random_sentences(seed, count, vocabulary=WORDS, longest=12):
    rng = random.Random(seed)
    return [[rng.choice(vocabulary) for _ in range(rng.randint(0, longest))] for _ in range(count)]


# -- BLEU ------------------------------------------------------------------------------------------
def test_bleu_of_an_identical_hypothesis_is_one():
    sentence = "it is a truth universally acknowledged".split()
    assert bleu([sentence], [sentence, ["other", "words"]]) == 1.0
    assert bleu([sentence, sentence], [sentence]) == 1.0


def test_bleu_without_overlap_is_zero_and_smoothed_like_nltk():
    refs = [["a", "b", "c", "d"]]
    assert bleu([["x", "y", "z", "w"]], refs) == 0.0 == _nltk_bleu(["x", "y", "z", "w"], refs)
    assert bleu([[]], refs) == 0.0
    # every word matches, no bigram does: p = 1, 0.1/3, 0.1/2, 0.1/1; same length, so no penalty
    hypothesis = ["b", "a", "d", "c"]
    by_hand = (1 * (0.1 / 3) * (0.1 / 2) * 0.1) ** 0.25
    assert bleu([hypothesis], refs) == pytest.approx(by_hand, rel=1e-12)
    assert bleu([hypothesis], refs) == pytest.approx(_nltk_bleu(hypothesis, refs), rel=1e-12)


def test_bleu_clips_each_ngram_at_its_maximum_count_in_any_one_reference():
    hypothesis = ["the", "the", "the", "the"]
    refs = [["the", "cat"], ["the", "the", "dog"]]
    # "the" is clipped at 2 (the second reference), not 1 + 2 = 3; closest length 3 < 4: no penalty
    assert bleu([hypothesis], refs, n=1) == 0.5 == pytest.approx(_nltk_bleu(hypothesis, refs, n=1))
    assert bleu([hypothesis], refs[:1], n=1) == 0.25  # one reference: clipped at 1
    two = ["the", "cat", "the", "dog"]  # bigrams: the cat (ref 1), cat the (none), the dog (ref 2)
    assert bleu([two], refs, n=2) == pytest.approx(math.sqrt(1.0 * 2 / 3), rel=1e-12)
    assert bleu([two], refs, n=2) == pytest.approx(_nltk_bleu(two, refs, n=2), rel=1e-12)


def test_bleu_brevity_penalty_uses_the_closest_reference_length():
    refs = [["the", "cat", "sat"], ["the", "cat", "sat", "on", "a", "mat"]]
    assert bleu([["the", "cat"]], refs, n=1) == pytest.approx(math.exp(1 - 3 / 2), rel=1e-12)
    assert bleu([["the", "cat", "sat", "on", "a"]], refs, n=1) == pytest.approx(math.exp(1 - 6 / 5), rel=1e-12)
    # a tie (lengths 1 and 3 around 2) takes the shorter reference, so no penalty
    tie = [["the"], ["the", "cat", "sat"]]
    assert bleu([["the", "cat"]], tie, n=1) == 1.0 == pytest.approx(_nltk_bleu(["the", "cat"], tie, n=1))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_equals_the_mean_of_nltk_sentence_bleu(n):
    hypotheses, references = _random_sentences(1, 40), _random_sentences(2, 60)
    expected = np.mean([_nltk_bleu(h, references, n) for h in hypotheses])
    assert bleu(hypotheses, references, n) == pytest.approx(expected, rel=1e-12)


# -- self-BLEU -------------------------------------------------------------------------------------
def test_self_bleu_of_identical_samples_is_one_and_never_uses_the_sample_itself():
    assert self_bleu([["a", "b", "c", "d", "e"]] * 4) == 1.0
    assert self_bleu([["a", "b", "c", "d"], ["w", "x", "y", "z"]]) == 0.0   # 1.0 if it saw itself
    assert self_bleu([list("abcd"), list("efgh"), list("ijkl")], max_references=1, seed=3) == 0.0


def test_self_bleu_leaves_the_sample_out_of_the_closest_length_rule_too():
    short, long = ["a", "b", "c"], ["a", "b", "c", "d", "e", "f"]
    # short vs {long}: p1 = 1, penalty exp(1 - 6/3); long vs {short}: p1 = 3/6, no penalty
    assert self_bleu([short, long], n=1) == pytest.approx((math.exp(-1) + 0.5) / 2, rel=1e-12)


@pytest.mark.parametrize("n", [2, 4])
def test_self_bleu_equals_nltk_leave_one_out(n):
    samples = _random_sentences(3, 30, WORDS[:6]) + [["the", "cat", "sat"]] * 2  # a duplicate pair
    expected = np.mean([_nltk_bleu(s, samples[:i] + samples[i + 1:], n) for i, s in enumerate(samples)])
    assert self_bleu(samples, n) == pytest.approx(expected, rel=1e-12)
    assert self_bleu(samples, n, max_references=len(samples) - 1) == self_bleu(samples, n)


def test_self_bleu_with_a_fixed_number_of_references_follows_its_documented_draw():
    samples = _random_sentences(4, 25, WORDS[:7])
    m, seed = 6, 11
    pool = np.random.default_rng(seed).choice(len(samples), m + 1, replace=False).tolist()
    expected = []
    for i, sample in enumerate(samples):
        references = [samples[j] for j in pool if j != (i if i in pool else pool[-1])]
        assert len(references) == m
        expected.append(_nltk_bleu(sample, references))
    assert self_bleu(samples, max_references=m, seed=seed) == pytest.approx(np.mean(expected), rel=1e-12)
    assert self_bleu(samples, max_references=m, seed=seed) == self_bleu(samples, max_references=m, seed=seed)


# -- distinct-n and copies -------------------------------------------------------------------------
def test_distinct_n_hand_counts():
    samples = [["a", "b", "a", "c"], ["a", "b"], []]
    # 6 tokens; unigrams a b c; bigrams ab ba ac | ab -> 3 unique of 4
    assert distinct_n(samples, 1) == 3 / 6
    assert distinct_n(samples, 2) == 3 / 6
    assert distinct_n(samples, 2, per="ngram") == 3 / 4
    assert distinct_n(samples, 5) == 0.0
    random_samples = _random_sentences(5, 50)
    unique = {tuple(s[i:i + 2]) for s in random_samples for i in range(len(s) - 1)}
    assert distinct_n(random_samples, 2) == len(unique) / sum(map(len, random_samples))


def test_copy_rate_counts_whole_texts_after_white_space_normalisation():
    training = ["It is a truth universally acknowledged.", "  Emma   Woodhouse,\nhandsome.  "]
    samples = ["It is a  truth universally acknowledged.",     # a copy (spacing only)
               "Emma Woodhouse, handsome.",                     # a copy (newline and padding)
               "it is a truth universally acknowledged.",     # case differs: not a copy
               "It is a truth",                                # a part only: not a copy
               "A new sentence."]
    assert copy_rate(samples, iter(training)) == 2 / 5
    assert copy_rate(samples[:2], training) == 1.0


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: bleu([], [["a"]]), "hypotheses is empty"),
    (lambda: bleu(["a b"], [["a"]]), "token lists"),
    (lambda: bleu([["a"]], [["a"]], n=0), "positive integer"),
    (lambda: self_bleu([["a"]]), "at least 2 samples"),
    (lambda: self_bleu([["a"], ["b"]], max_references=0), "max_references"),
    (lambda: distinct_n([[], []], 1), "no tokens"),
    (lambda: distinct_n([["a"]], 1, per="word"), "per must be"),
    (lambda: copy_rate([], ["a"]), "samples is empty"),
    (lambda: copy_rate(["a"], "a"), "not one string"),
    (lambda: perplexity(1.0, 0), "at least one token"),
    (lambda: KneserNeyLM(order=1), "order must be"),
    (lambda: KneserNeyLM(discount=0), "discount"),
    (lambda: KneserNeyLM().perplexity([["a"]]), "not fitted"),
    (lambda: KneserNeyLM(n_types=0), "n_types must be"),
    (lambda: KneserNeyLM(n_types=1, min_count=1).fit([["a", "b"]]), "n_types=1 is below the 2 distinct tokens"),
    (lambda: KneserNeyLM().fit([["a"]], max_len=0), "max_len must be"),
    (lambda: KneserNeyLM(min_count=1).fit([["a"]]).oov_rate([[]]), "no tokens"),
    (lambda: compare_curves(pd.DataFrame({"bleu": [1.0], "self_bleu": [0.1]}),
                            pd.DataFrame({"bleu": [1.0], "self_bleu": [0.1]}), draws=-1), "draws must be"),
    (lambda: quality_diversity({0.0: [["a"], ["b"]]}, [["a"]]), "temperatures must be positive"),
    (lambda: compare_curves(pd.DataFrame({"bleu": [1.0]}), pd.DataFrame()), "curve_a"),
])
def test_bad_input_fails_with_one_line(call, message):
    with pytest.raises(MmworkError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


# -- Kneser-Ney ------------------------------------------------------------------------------------
def _nltk_perplexity(model: KneserNeyLM, train, test):
    """nltk's KneserNeyInterpolated fitted on the same n-grams (those ending at each predicted token,
    after order - 1 begin markers, with one end marker) and the same <unk> mapping."""
    order, unk = model.order, lambda s: [t if t in model.vocabulary_ else "<unk>" for t in s]

    def padded(sentence):
        return ["<s>"] * (order - 1) + unk(sentence) + ["</s>"]

    def grams(sentence):
        p = padded(sentence)
        return [tuple(p[i - k + 1:i + 1]) for i in range(order - 1, len(p)) for k in range(1, order + 1)]

    reference = KneserNeyInterpolated(order, discount=model.discount)
    reference.fit([grams(s) for s in train], [t for s in train for t in padded(s)])
    nll = tokens = 0
    for sentence in test:
        p = padded(sentence)
        for i in range(order - 1, len(p)):
            nll -= math.log(reference.unmasked_score(p[i], tuple(p[i - order + 1:i])))
            tokens += 1
    return math.exp(nll / tokens)


@pytest.mark.parametrize("order, min_count", [(2, 1), (3, 2), (5, 1), (5, 2)])
def test_kneser_ney_equals_nltk_on_the_same_ngrams(order, min_count):
    train = _random_sentences(6, 300, longest=10)
    train += [["the", "rare", "cat"], ["a", "once", "dog"]]  # two singletons: <unk> mass at min_count 2
    test = _random_sentences(7, 40) + [["the", "cat", "on", "the", "mat"], []]
    if min_count == 2:
        test.append(["a", "never", "seen", "word"])  # unseen words: <unk> (nltk would give inf unmapped)
    model = KneserNeyLM(order=order, discount=0.75, min_count=min_count).fit(train)
    assert model.perplexity(test) == pytest.approx(_nltk_perplexity(model, train, test), rel=1e-6)


def test_kneser_ney_probabilities_sum_to_one_over_the_vocabulary():
    train = _random_sentences(8, 200, longest=8) + [["only", "once"]]
    model = KneserNeyLM(order=4).fit(train)
    assert set(model.distribution()) == set(model.vocabulary_) | {"<unk>", "</s>"}
    for context in ([], ["the"], ["the", "cat"], ["a", "cat", "sat", "on"], ["zzz", "the"], ["mat"] * 6):
        probabilities = model.distribution(context)
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-12)
        assert min(probabilities.values()) > 0
    # one step of log_likelihood agrees with the distribution: P(</s> | "the cat")
    nll, tokens = model.log_likelihood([["the", "cat"]])
    first = model.distribution([])["the"] * model.distribution(["the"])["cat"]
    assert nll[0] == pytest.approx(-math.log(first * model.distribution(["the", "cat"])["</s>"]), rel=1e-12)
    assert tokens.tolist() == [3]


def _uniform_source(rng, symbols, tokens):
    """An i.i.d. stream over ``symbols`` words and the end marker, all equally likely, cut at the end
    markers: any model's perplexity on it is at least symbols + 1, the true model's exactly that."""
    draws = rng.integers(0, symbols + 1, size=tokens)
    cuts = np.flatnonzero(draws == symbols)
    return [draws[start + 1:stop].tolist() for start, stop in zip(np.r_[-1, cuts[:-1]], cuts)]


def test_kneser_ney_perplexity_of_a_known_distribution():
    rng = np.random.default_rng(0)
    train, test = _uniform_source(rng, 20, 50_000), _uniform_source(rng, 20, 5_000)
    bigram = KneserNeyLM(order=2).fit(train)
    assert bigram.perplexity(test) == pytest.approx(21, rel=0.01)   # measured 21.09
    # higher orders only add noise on an i.i.d. source: they fit the training set better, test worse
    five = KneserNeyLM(order=5).fit(train)
    assert five.perplexity(train) < bigram.perplexity(train) and five.perplexity(test) > bigram.perplexity(test)


def test_kneser_ney_takes_ids_and_reports_unknown_tokens():
    model = KneserNeyLM(order=3, min_count=1).fit([[5, 6, 7], [5, 7], [np.int64(6), 5]])
    assert math.isfinite(model.perplexity([[5, 6], [7]]))
    with pytest.raises(MmworkError, match="token 99 was never seen in training .* min_count=2"):
        model.log_likelihood([[5, 99]])


def test_kneser_ney_cut_gives_no_end_marker_like_the_lstm():
    """fit(max_len=m): a sequence of m tokens or more keeps its first m and gets no end marker, so the
    model learns no stop where a cut was (RNNLanguageModel's rule: m positions, the end included)."""
    train = [["a", "b", "c"]] * 5 + [["a"]] * 5
    cut = KneserNeyLM(order=2, min_count=1).fit(train, max_len=2)
    assert cut.n_tokens_ == sum(min(len(s) + 1, 2) for s in train) == 20
    assert "c" not in cut.vocabulary_  # never reached: it lies beyond every cut
    # "b" is only ever seen at a cut: nothing follows it, so P(</s> | b) is the unigram's, not learned:
    # the bigram types <s> a, a b and a </s> end in three different tokens, 1/3 each
    assert cut.distribution(["a", "b"]) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "</s>": 1 / 3})
    # the old way (cut, then an end marker) learns that sentences stop after "b"
    artificial = KneserNeyLM(order=2, min_count=1).fit([s[:2] for s in train])
    assert artificial.distribution(["a", "b"])["</s>"] > 0.8 > 0.5 > cut.distribution(["a", "b"])["</s>"]
    # shorter sequences are untouched: max_len above every length changes nothing
    whole = KneserNeyLM(order=3).fit(_random_sentences(3, 100))
    same = KneserNeyLM(order=3).fit(_random_sentences(3, 100), max_len=13)
    assert same.perplexity(_random_sentences(4, 20)) == whole.perplexity(_random_sentences(4, 20))


def test_kneser_ney_unk_mass_is_split_over_the_tokens_it_stands_for():
    train = _random_sentences(12, 200, longest=8) + [["rare", "once"], ["seldom"]]
    test = _random_sentences(13, 30) + [["the", "never", "seen", "cat"], ["once"]]
    one = KneserNeyLM(order=3).fit(train)
    split = KneserNeyLM(order=3, n_types=len(one.vocabulary_) + 50).fit(train)
    assert (one.unk_types_, split.unk_types_) == (1, 50)
    unknown = [sum(t not in one.vocabulary_ for t in s) for s in test]
    assert sum(unknown) == 3 and split.oov_rate(test) == pytest.approx(3 / sum(len(s) for s in test))
    nll_one, tokens = one.log_likelihood(test)
    nll_split, tokens_split = split.log_likelihood(test)
    np.testing.assert_allclose(nll_split - nll_one, np.array(unknown) * math.log(50), rtol=1e-12)
    assert tokens.tolist() == tokens_split.tolist()
    # the named tokens, the 50 behind <unk> (each its share) and </s> still make one distribution
    probabilities = split.distribution(["the"])
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-12)


def test_kneser_ney_against_bpe_ids_on_real_austen(austen_bpe):
    """The fair protocol on real BPE ids: <unk> split over the pieces it stands for raises the
    perplexity by exactly exp(OOV share x log(unk types)) over the <unk>-as-one-outcome figure."""
    train, test, vocab = austen_bpe
    types = vocab - 4
    fair = KneserNeyLM(order=5, n_types=types).fit(train, max_len=64)
    one = KneserNeyLM(order=5).fit(train, max_len=64)
    oov = fair.oov_rate(test)
    unk_tokens = oov * sum(len(s) for s in test)
    scored = sum(len(s) + 1 for s in test)
    assert 0 < oov < 0.05 and fair.unk_types_ == types - len(fair.vocabulary_) > 1
    assert fair.perplexity(test) == pytest.approx(
        one.perplexity(test) * math.exp(unk_tokens * math.log(fair.unk_types_) / scored), rel=1e-9)
    assert 20 < one.perplexity(test) < fair.perplexity(test) < 400


# -- the quality-diversity sweep ---------------------------------------------------------------------
def test_quality_diversity_rows_are_the_metrics_at_each_temperature():
    references = _random_sentences(9, 30)
    sweep = {1.0: _random_sentences(10, 20), 0.7: _random_sentences(11, 20, WORDS[:4])}
    table = quality_diversity(sweep, references, max_references=10)
    assert table["temperature"].tolist() == [0.7, 1.0]
    row = table.iloc[0]
    assert row["bleu"] == bleu(sweep[0.7], references)
    assert row["self_bleu"] == self_bleu(sweep[0.7], max_references=10)
    assert row["distinct_2"] == distinct_n(sweep[0.7], 2)
    assert (row["n_samples"], row["n_references"], row["self_bleu_references"]) == (20, 30, 10)


def test_per_sample_scores_average_to_bleu_and_self_bleu():
    references, samples = _random_sentences(20, 40), _random_sentences(21, 25)
    assert bleu_scores(samples, references).mean() == pytest.approx(bleu(samples, references), rel=1e-12)
    scores = self_bleu_scores(samples, max_references=10, seed=3)
    assert scores.shape == (25,) and scores.mean() == pytest.approx(self_bleu(samples, max_references=10, seed=3))
    table = quality_diversity({1.0: samples}, references, max_references=10, seed=3)
    np.testing.assert_array_equal(table.attrs["per_sample"][1.0]["self_bleu"], scores)
    # tables with per-sample scores still concatenate (pandas compares their attrs)
    other = quality_diversity({1.0: samples[:10]}, references, max_references=5)
    assert len(pd.concat({"a": table, "b": other}, names=["model"])) == 2


def _sweep(seed, count=60, shift=0):
    """Samples at three 'temperatures': narrower vocabularies are less diverse; ``shift`` swaps some
    words for ones no reference holds, lowering BLEU at the same diversity."""
    out = {}
    for t, size in ((0.5, 4), (1.0, 8), (1.5, 13)):
        words = WORDS[:size]
        out[t] = [[w if random.Random(seed + i).random() >= shift else w.upper() for i, w in enumerate(s)]
                  for s in _random_sentences(seed + int(10 * t), count, words, longest=10)]
    return out


def test_compare_curves_bootstrap_interval_separates_only_what_differs():
    references = _random_sentences(30, 80)
    same_a = quality_diversity(_sweep(100), references, max_references=20)
    same_b = quality_diversity(_sweep(200), references, max_references=20)   # same source, other draws
    worse = quality_diversity(_sweep(300, shift=0.3), references, max_references=20)
    alike = compare_curves(same_a, same_b, draws=300, seed=1)
    assert alike.draws == 300 and alike.level == 0.95
    assert alike.gap_low < 0 < alike.gap_high  # two samples of one source: the interval covers 0
    assert alike.gap_low <= alike.mean_gap <= alike.gap_high and 0 <= alike.a_better_low <= alike.a_better_high <= 1
    better = compare_curves(same_a, worse, draws=300, seed=1)
    assert better.mean_gap > 0 and better.gap_low > 0  # a real gap: the interval excludes 0
    assert compare_curves(same_a, worse, draws=300, seed=1) == better  # seeded: the same interval
    # a wider interval at a higher level; none for tables without per-sample scores
    assert compare_curves(same_a, same_b, draws=300, seed=1, level=0.99).gap_low < alike.gap_low
    plain = compare_curves(same_a[["bleu", "self_bleu"]].copy().assign(), same_b.drop(columns="temperature"))
    assert plain.draws == 0 and math.isnan(plain.gap_low) and plain.mean_gap == pytest.approx(alike.mean_gap)


def test_compare_curves_at_matched_self_bleu():
    a = pd.DataFrame({"self_bleu": [0.2, 0.5, 0.8], "bleu": [0.3, 0.5, 0.7]})
    higher = a.assign(bleu=a["bleu"] + 0.1)
    result = compare_curves(higher, a)
    assert (result.winner, result.a_better, result.low, result.high) == ("a", 1.0, 0.2, 0.8)
    assert result.mean_gap == pytest.approx(0.1)
    assert compare_curves(a, higher).winner == "b"
    assert compare_curves(a, a.copy()).winner == "tie"
    crossing = pd.DataFrame({"self_bleu": [0.2, 0.8], "bleu": [0.6, 0.4]})
    assert compare_curves(a, crossing).winner == "neither"
    assert compare_curves(a, pd.DataFrame({"self_bleu": [0.9, 1.0], "bleu": [0.1, 0.2]})).winner == "no overlap"


# -- real text -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def austen_texts(tmp_path_factory):
    """4,000 train and 300 test sentences of the real austen data set (built once per module)."""
    from mmwork.models.data.text import austen_sentences
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("austen")))
        try:
            datasets.get("austen")
        except MmworkError as exc:  # no apt-get download here
            pytest.skip(f"cannot build the austen data set here: {exc}")
        return austen_sentences("train", limit=4000), austen_sentences("test", limit=300)


@pytest.fixture(scope="module")
def austen_words(austen_texts):
    """Word tokens of the 4,000 train and 300 test sentences."""
    from mmwork.models.data.text import Tokenizer
    tokens = Tokenizer(kind="word").tokens
    return tokens(austen_texts[0]), tokens(austen_texts[1])


@pytest.fixture(scope="module")
def austen_bpe(austen_texts):
    """BPE ids (1,000 pieces, fitted on the first 3,000 train sentences) of those 3,000 and the 300 test
    sentences, and the tokenizer's vocabulary size."""
    from mmwork.models.data.text import Tokenizer
    train, test = austen_texts[0][:3000], austen_texts[1]
    tokenizer = Tokenizer("bpe", vocab_size=1000).fit(train)
    return tokenizer.encode(train), tokenizer.encode(test), tokenizer.vocab_size_


def test_metrics_on_real_austen_sentences(austen_words):
    train, test = austen_words
    model = KneserNeyLM(order=3).fit(train)
    real = model.perplexity(test)
    shuffled = [random.Random(i).sample(s, len(s)) for i, s in enumerate(test)]
    assert 20 < real < len(model.vocabulary_) / 10 and model.perplexity(shuffled) > 5 * real  # 90 and 1027
    # BLEU-4 of held-out sentences against training sentences: low but not zero; each against itself: 1
    quality = bleu(test[:100], train[:1000])
    assert 0.1 < quality < 0.4 and bleu(test[:50], test[:50]) == 1.0  # 0.21
    assert self_bleu(test[:100]) == pytest.approx(
        np.mean([_nltk_bleu(s, test[:i] + test[i + 1:100]) for i, s in enumerate(test[:100])]), rel=1e-12)
    # per generated token, distinct-1 falls as the corpus grows (0.24 at 100 sentences, 0.16 at 300)
    assert distinct_n(test[:100], 1) > distinct_n(test, 1) and distinct_n(test, 2) > 3 * distinct_n(test, 1)
