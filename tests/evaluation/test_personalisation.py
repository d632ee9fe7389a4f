"""Judging personalised items: percentile ranks on hand-made scores, bootstrap intervals, the swap
partners, diversity, and the lift on real MovieLens-100K users (their own held-out items fit them;
the same items handed to shuffled users do not)."""
import json

import numpy as np
import pytest

from mmwork import MmworkError, datasets, read_table
from mmwork.evaluation import recbole_split
from mmwork.evaluation.personalisation import (ItemSet, bootstrap_ci, intra_list_diversity, judge_sets, lift_table,
                                               percentile_ranks, ratio_ci, set_ranks, swap_partners)
from mmwork.models.recommenders import ContentBased
from mmwork.store.item_features import load_item_features


def test_percentile_rank_counts_the_items_below_and_half_the_ties():
    catalogue = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    allowed = np.array([[True, True, True, True, False]])  # the last item is excluded
    ranks = percentile_ranks(np.array([[2.0, 10.0, -1.0, 3.5]]), catalogue, allowed)
    # 2.0: 2 below + 1 tie -> 2.5 of 4; 10: all 4; -1: none; 3.5: 4 below (4.0 is excluded)
    np.testing.assert_allclose(ranks, [[62.5, 100.0, 0.0, 100.0]])
    two_users = percentile_ranks([[1.0], [1.0]], [[0.0, 2.0], [0.0, 0.5]], np.ones((2, 2), bool))
    np.testing.assert_allclose(two_users, [[50.0], [100.0]])
    with pytest.raises(MmworkError, match="no comparison items left"):
        percentile_ranks([[1.0]], [[0.0]], [[False]])
    with pytest.raises(MmworkError, match="NaN or infinite"):
        percentile_ranks([[np.nan]], [[0.0]], [[True]])


def test_set_ranks_leave_out_the_users_training_items_and_the_sets_own_items():
    import scipy.sparse as sp
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], np.float32))  # the user trained on item 0
    scores = np.array([[9.0, 1.0, 2.0, 3.0, 4.0]])
    # item 3 among items 1, 2, 4 (0 is a training item, 3 itself is in the set): 2 below of 3
    np.testing.assert_allclose(set_ranks(None, [0], ItemSet(0, items=np.array([3])), scores, train),
                               [[100 * 2 / 3]])
    # a second user who trained on item 3: the item is no candidate for them (NaN), item 4 is
    two = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]], np.float32))
    ranks = set_ranks(None, [0, 1], ItemSet(0, items=np.array([3, 4])), np.vstack([scores, scores]), two)
    assert np.isnan(ranks[1, 0]) and ranks[1, 1] == pytest.approx(100 * 2 / 3)  # among items 0, 1, 2
    with pytest.raises(MmworkError, match="twins go with new items' features"):
        ItemSet(0, items=np.array([1]), twins=np.array([1]))
    with pytest.raises(MmworkError, match="either new items' features or catalogue item indices"):
        ItemSet(0)


def test_bootstrap_intervals_contain_the_estimate_and_repeat_for_a_seed():
    values = np.random.default_rng(0).normal(60, 10, 200)
    low, high = bootstrap_ci(values, seed=3)
    assert low < values.mean() < high and high - low < 4 * 10 / np.sqrt(200)
    assert bootstrap_ci(values, seed=3) == (low, high) and bootstrap_ci(values, seed=4) != (low, high)
    wide = bootstrap_ci(values[:20], seed=3)
    assert wide[1] - wide[0] > high - low
    lift_low, lift_high = ratio_ci(values, values / 1.2, seed=0)
    assert lift_low <= 1.2 <= lift_high and lift_high - lift_low < 1e-9  # a constant ratio has no spread
    with pytest.raises(MmworkError, match="must pair up"):
        ratio_ci([1.0, 2.0], [1.0])
    with pytest.raises(MmworkError, match="empty"):
        bootstrap_ci([])


def test_swap_partners_are_other_users_drawn_with_the_seed():
    users = np.array([5, 9, 11, 40, 41])
    partners = swap_partners(users, 3, seed=1)
    assert partners.shape == (5, 3)
    for user, row in zip(users, partners):
        assert user not in row and len(set(row)) == 3 and set(row) <= set(users)
    assert np.array_equal(partners, swap_partners(users, 3, seed=1))
    assert swap_partners(users, 10, seed=1).shape == (5, 4)  # at most every other user
    with pytest.raises(MmworkError, match="at least 2 users"):
        swap_partners(users[:1], 3)


def test_intra_list_diversity_is_the_mean_pairwise_cosine_distance():
    assert intra_list_diversity([[1.0, 0.0], [2.0, 0.0]]) == pytest.approx(0.0)
    assert intra_list_diversity([[1.0, 0.0], [0.0, 3.0]]) == pytest.approx(1.0)
    assert intra_list_diversity([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]) == pytest.approx((2 + 1 + 1) / 3)
    assert np.isnan(intra_list_diversity([[1.0, 0.0]]))


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    """ML-100K split 8:1:1 and a content-based judge on the genres (no extraction needed)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(tmp_path_factory.mktemp("data")))
        datasets.get("movielens-100k")
        items = read_table("movielens-100k", "items")
        split = recbole_split(read_table("movielens-100k", "interactions"), item_ids=items["item_id"])
        feats = load_item_features("movielens-100k", ["items:genres"], split.item_ids)
        yield split, feats, ContentBased(device="cpu").fit(split.train, item_features=feats)


def test_lift_is_above_one_for_items_that_fit_their_user_and_near_one_when_shuffled(movielens):
    split, feats, judge = movielens
    test = split.test.matrix.tocsr()
    users = np.arange(0, 943, 4)  # 236 users
    scores = dict(zip(users.tolist(), judge.score(users).numpy()))
    partners = swap_partners(users, 10, seed=0)
    own = [ItemSet(int(u), items=test[u].indices) for u in users]
    train = split.train.matrix.tocsr()
    owners = np.random.default_rng(0).permutation(users)  # each user gets another user's held-out items
    shuffled = []
    for u, v in zip(users, owners):  # (those the user has not trained on: a recommender would never show them)
        items = np.setdiff1d(test[v].indices, train[u].indices)
        shuffled.append(ItemSet(int(u), items=items if len(items) else test[(v + 1) % 943].indices))
    # the same items, entering through their content as new items would
    as_new = [ItemSet(int(u), features={"items:genres": feats["items:genres"][test[u].indices]}) for u in users]
    # ... and as new items known to be identical to those catalogue items (a generated copy of a title)
    twins = [ItemSet(int(u), features={"items:genres": feats["items:genres"][test[u].indices]},
                     twins=test[u].indices) for u in users]
    ranks = {name: judge_sets(judge, sets, split.train.matrix, scores, partners)
             for name, sets in (("own", own), ("shuffled", shuffled), ("own, as new items", as_new), ("twins", twins))}
    np.testing.assert_allclose(ranks["twins"].target, ranks["own"].target, atol=1e-9)
    np.testing.assert_allclose(ranks["twins"].swap, ranks["own"].swap, atol=1e-9)
    table = lift_table(ranks)
    table = table.set_index("condition")
    assert table.loc["own", "lift"] > 1.05 and table.loc["own", "lift_low"] > 1, table
    assert table.loc["shuffled", "lift_low"] < 1 < table.loc["shuffled", "lift_high"], table
    assert abs(table.loc["shuffled", "lift"] - 1) < 0.05, table
    assert abs(table.loc["own, as new items", "pr"] - table.loc["own", "pr"]) < 1.0, table
    own = table.loc["own"]
    assert own["pr_low"] < own["pr"] < own["pr_high"] and own["users"] == len(users)
    assert own["items"] == sum(len(test[u].indices) for u in users)
    json.dumps(table.reset_index().to_dict(orient="records"))  # plain numbers, JSON-ready
    with pytest.raises(MmworkError, match="2 item sets but 3 rows"):
        judge_sets(judge, own[:2], split.train.matrix, scores, partners[:3])
