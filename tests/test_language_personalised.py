"""Prompts from a user's training profile and the language model's item lines, on real MovieLens-100K users
(RecBole split, seed 2020) and the real SmolLM2 weights (one model per module): no held-out item ever in a
prompt, truncation with a note, parsing into the catalogue's line, empty answers as recorded skips, and one
seeded end-to-end generation for a user."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mmwork.apps.personalise.prompts import (MODES, PromptConfig, build_prompt, check_training_only, parse_item,
                                             user_profile)
from mmwork.core.errors import MmworkError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


@pytest.fixture(scope="module")
def catalogue(movielens, recbole_split_2020):
    """(split, item texts, item genre lists) aligned to the split's item columns."""
    _, items = movielens
    frame = items.set_index(items["item_id"].astype(str))
    ids = recbole_split_2020.train.item_ids
    texts = [frame["text"].get(str(i)) for i in ids]
    labels = [list(frame["genres"].get(str(i))) if frame["genres"].get(str(i)) is not None else [] for i in ids]
    return recbole_split_2020, texts, labels


@pytest.fixture(scope="module")
def lm():
    from mmwork.datasets import pretrained
    from mmwork.models.language import LanguageModel
    pretrained.get("smollm2")
    torch.set_num_threads(1)
    return LanguageModel.load(device="cpu")


def _held_out(split, row):
    return np.union1d(split.valid.matrix[row].indices, split.test.matrix[row].indices)


def test_the_profile_lists_training_items_only_best_rated_first(catalogue):
    split, texts, labels = catalogue
    train = split.train.matrix.tocsr()
    for row in range(0, 900, 45):
        profile = user_profile(train[row], texts, labels, forbidden=_held_out(split, row), row=row)
        assert set(profile.items) <= set(train[row].indices)
        assert not set(profile.items) & set(_held_out(split, row))
        assert list(profile.ratings) == sorted(profile.ratings, reverse=True)
        assert len(profile.items) == min(8, profile.n_training)
        assert all(c >= 1 for _, c in profile.genres)


def test_a_held_out_item_in_the_profile_is_refused(catalogue):
    split, texts, labels = catalogue
    row = 3
    test_item = split.test.matrix[row].indices[0]
    leaky = split.train.matrix[row].tolil()
    leaky[0, test_item] = 6.0  # as if a test item had leaked into training, rated above all
    leaky = leaky.tocsr()
    with pytest.raises(MmworkError, match="held-out item"):
        user_profile(leaky, texts, labels, forbidden=_held_out(split, row), row=row)
    with pytest.raises(MmworkError, match="held-out item"):
        check_training_only([1, test_item], [test_item])


def test_a_user_with_no_training_items_is_a_one_line_error(catalogue):
    _, texts, labels = catalogue
    import scipy.sparse as sp
    with pytest.raises(MmworkError, match="no training items"):
        user_profile(sp.csr_matrix((1, len(texts))), texts, labels)


def test_no_prompt_shows_a_valid_or_test_title(catalogue, lm):
    split, texts, labels = catalogue
    train = split.train.matrix.tocsr()
    for row in (0, 100, 500):
        profile = user_profile(train[row], texts, labels, forbidden=_held_out(split, row), row=row)
        training = {texts[i] for i in train[row].indices}
        for mode in MODES:
            prompt = build_prompt(lm, profile, mode)
            for item in _held_out(split, row):
                if texts[item] not in training:  # a held-out item with the text of a training item cannot leak
                    assert texts[item] not in prompt.text
            assert prompt.note is None and prompt.tokens == lm.n_tokens(prompt.text)
            assert set(prompt.shots) <= set(train[row].indices)


def test_a_prompt_over_its_budget_is_truncated_and_says_so(catalogue, lm):
    split, texts, labels = catalogue
    row = 0
    profile = user_profile(split.train.matrix[row], texts, labels, forbidden=_held_out(split, row), row=row)
    full = build_prompt(lm, profile, "zero-shot")
    cut = build_prompt(lm, profile, "zero-shot", PromptConfig(max_prompt_tokens=full.tokens - 30))
    assert cut.tokens <= full.tokens - 30 and len(cut.items) < len(full.items)
    assert cut.note == f"profile truncated to {len(cut.items)} of {len(full.items)} items to fit {full.tokens - 30} tokens"
    assert texts[profile.items[-1]] not in cut.text  # the lowest-rated item went first
    with pytest.raises(MmworkError, match="over the budget"):
        build_prompt(lm, profile, "zero-shot", PromptConfig(max_prompt_tokens=32))


@pytest.mark.parametrize("answer, expected", [
    ("Night Tide (1961). Genres: Horror, Romance.", "Night Tide (1961). Genres: Horror, Romance."),
    ("**1. Title: Night Tide (1961)**\nGenres: romance, horror, Space", "Night Tide (1961). Genres: Horror, Romance."),
    ("12 Angry Jurors (1999). Genre: Drama and Crime.", "12 Angry Jurors (1999). Genres: Crime, Drama."),
    ("Night Tide. Genres: Drama.", "Night Tide. Genres: Drama."),
])
def test_answers_are_parsed_into_the_catalogue_line(answer, expected):
    assert parse_item(answer, GENRES).text == expected


@pytest.mark.parametrize("answer, reason", [
    ("", "empty generation"), (None, "empty generation"), ("   \n ", "empty generation"),
    ("I'd suggest a comedy.", "no 'Genres:' part"), ("Genres: Drama.", "no title before 'Genres:'"),
    ("Night Tide (1961). Genres: Space, Cooking.", "no genre from the catalogue's vocabulary"),
])
def test_an_empty_or_unreadable_answer_is_a_skip_with_its_reason(answer, reason):
    item = parse_item(answer, GENRES)
    assert item.text is None and item.reason == reason


def test_one_seeded_generation_for_a_user_end_to_end(catalogue, lm):
    from mmwork.apps.personalise.language import sample_streams, stream_seed
    split, texts, labels = catalogue
    row = 0
    profile = user_profile(split.train.matrix[row], texts, labels, forbidden=_held_out(split, row), row=row)
    prompt = build_prompt(lm, profile, "few-shot", PromptConfig(max_items=3, shots=1, shot_items=2))
    streams = [[stream_seed(0, row, j) for j in range(3)]]
    kwargs = {"max_new_tokens": 20, "temperature": 0.8, "top_p": 0.95, "progress": False}
    ids, new_tokens, stopped = sample_streams(lm, [prompt.text], streams, **kwargs)
    again, _, _ = sample_streams(lm, [prompt.text], streams, **kwargs)
    assert ids == again and stopped is None and 0 < new_tokens <= 3 * 20
    answers = [lm.tokenizer.decode(a, skip_special_tokens=True) for a in ids[0]]
    parsed = [parse_item(a, GENRES) for a in answers]
    assert all((p.text is None) == (p.reason is not None) for p in parsed)
    assert all(p.text.endswith(".") and "Genres: " in p.text for p in parsed if p.text)
