"""Content features, the content-based recommender and the multimodal hybrid on real MovieLens-100K:
feature alignment and bad inputs, a hand-computed profile, cold-start ranking against popularity,
determinism, save/load."""

import numpy as np
import pandas as pd
import pytest
import torch

from mmwork import MmworkError, datasets, read_table, write_table
from mmwork.evaluation import Validator, cold_start_split, evaluate
from mmwork.features import extract
from mmwork.core.paths import processed_dir
from mmwork.models.recommenders.base import Recommender
from mmwork.models.recommenders.content import ContentBased
from mmwork.store.interactions import Interactions
from mmwork.store.item_features import ItemFeatures, genre_features, load_item_features
from mmwork.models.recommenders.hybrid import MultimodalHybrid

SPECS = ["text:tfidf_lsa", "text:skipgram"]
FAST = {"epochs": 12, "device": "cpu"}  # a short hybrid fit (~10 s); enough to beat popularity


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    """ML-100K with its text features (no MiniLM, 2 skip-gram epochs) in a private data root."""
    root = tmp_path_factory.mktemp("data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on a shared CPU
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("movielens-100k")
        extract("movielens-100k", "text", scheduler="sync", progress=False,
                params={"text": {"minilm": False, "skipgram_epochs": 2}})
        yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cold(movielens):
    items = read_table("movielens-100k", "items")
    inter = read_table("movielens-100k", "interactions")
    split = cold_start_split(inter, items["item_id"], 0.2, seed=2020)
    return split, load_item_features("movielens-100k", SPECS, split.item_ids)


@pytest.fixture(scope="module")
def hybrid(cold):
    split, feats = cold
    return MultimodalHybrid(**FAST).fit(split.train, item_features=feats, valid=Validator(split))


def _write_features(name, frame):
    """A feature table ``features/NAME`` written the way the pipeline writes vectors."""
    write_table(frame, processed_dir("movielens-100k") / "features" / f"{name}.parquet", producer="test")


# -- load_item_features ----------------------------------------------------------------------------
def test_features_are_aligned_to_the_given_item_ids(movielens):
    table = read_table("movielens-100k", "features/text").set_index("item_id")
    ids = np.array(["50", "1", "1682", "7", "100"], dtype=object)
    feats = load_item_features("movielens-100k", SPECS + ["items:genres"], ids)
    assert isinstance(feats, ItemFeatures) and isinstance(feats, dict)
    assert list(feats) == SPECS + ["items:genres"]
    assert feats["text:tfidf_lsa"].shape == (5, 128) and feats["text:skipgram"].shape == (5, 64)
    for spec in SPECS:
        assert feats[spec].dtype == np.float32
        expected = np.stack(table.loc[list(ids), spec.split(":")[1]].to_numpy())
        np.testing.assert_array_equal(feats[spec], expected)
    assert feats.coverage.all() and feats.missing == {s: 0 for s in feats}
    items = read_table("movielens-100k", "items")
    genres = genre_features(items, ids)
    np.testing.assert_array_equal(feats["items:genres"], genres)
    star_wars = items.set_index("item_id").loc["50", "genres"]  # Action, Adventure, Romance, Sci-Fi, War
    assert genres[0].sum() == len(star_wars) == 5


def test_unknown_tables_columns_and_specs_name_what_exists(movielens):
    with pytest.raises(MmworkError, match=r"no feature table features/image.*'text'"):
        load_item_features("movielens-100k", ["image:cnn"], ["1"])
    with pytest.raises(MmworkError, match=r"no feature column 'clip'.*tfidf_lsa.*skipgram"):
        load_item_features("movielens-100k", ["text:clip"], ["1"])
    with pytest.raises(MmworkError, match="no feature column 'plot'.*genres"):
        load_item_features("movielens-100k", ["items:plot"], ["1"])
    with pytest.raises(MmworkError, match="MODALITY:COLUMN"):
        load_item_features("movielens-100k", ["minilm"], ["1"])


def test_nan_rows_missing_items_and_low_coverage(movielens):
    table = read_table("movielens-100k", "features/text", columns=["item_id", "tfidf_lsa"])
    ids = table["item_id"].to_numpy()

    broken = table.copy()
    for row, value in [(3, np.nan), (9, np.nan), (20, np.inf)]:
        vector = broken.at[row, "tfidf_lsa"].copy()
        vector[row % 5] = value
        broken.at[row, "tfidf_lsa"] = vector
    _write_features("nan", broken)
    with pytest.raises(MmworkError, match=r"3 item\(s\) have NaN or infinite values.*re-extract"):
        load_item_features("movielens-100k", ["nan:tfidf_lsa"], ids)

    _write_features("part", table.iloc[100:])  # the first 100 items failed extraction
    with pytest.warns(UserWarning, match="100 of 1682 items have no features"):
        feats = load_item_features("movielens-100k", ["part:tfidf_lsa"], ids)
    assert (feats["part:tfidf_lsa"][:100] == 0).all() and not feats.coverage[:100].any()
    assert feats.coverage[100:].all() and feats.missing == {"part:tfidf_lsa": 100}
    np.testing.assert_array_equal(feats["part:tfidf_lsa"][100:], np.stack(table["tfidf_lsa"].iloc[100:]))

    _write_features("few", table.iloc[:800])  # under half the catalogue: the wrong table, not failed items
    with pytest.raises(MmworkError, match=r"covers only 800 of 1682 items"):
        load_item_features("movielens-100k", ["few:tfidf_lsa"], ids)


def test_models_refuse_misaligned_or_non_finite_features(cold):
    split, feats = cold
    with pytest.raises(MmworkError, match="needs item_features"):
        ContentBased().fit(split.train)
    with pytest.raises(MmworkError, match="expected one row per item"):
        ContentBased().fit(split.train, item_features=feats["text:tfidf_lsa"][:10])
    bad = feats["text:skipgram"].copy()
    bad[5, 0] = np.nan
    with pytest.raises(MmworkError, match=r"NaN or infinite values in 1 row"):
        MultimodalHybrid(**FAST).fit(split.train, item_features={"x": bad})


# -- content-based ---------------------------------------------------------------------------------
def test_content_profile_matches_a_hand_computation():
    frame = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "b"], "weight": [5.0, 1.0, 3.0]})
    train = Interactions.from_frame(frame, item_ids=["a", "b", "c", "d"])  # c, d: no interactions (cold)
    text = np.array([[3, 4], [1, 0], [0, 2], [0, 0]], np.float32)  # d has no content
    genre = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]], np.float32)
    model = ContentBased(weighting="rating", center=False, device="cpu").fit(
        train, item_features={"text": text, "genre": genre})

    def unit(x):
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.where(n == 0, 1, n)
    items = unit(np.hstack([unit(text), unit(genre)]))
    profile_u = unit((5 * items[0] + 1 * items[1]) / 6)
    profile_v = unit(items[1])
    expected = np.stack([profile_u, profile_v]) @ items.T
    np.testing.assert_allclose(model.score([0, 1]).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert expected[0, 2] > 0 and expected[0, 3] == 0  # a cold item with content scores, one without does not
    binary = ContentBased(weighting="binary", center=False, device="cpu").fit(train, item_features={"t": text})
    np.testing.assert_allclose(binary.score([0])[0].numpy(), unit(unit(text[0]) + unit(text[1])) @ unit(text).T,
                               rtol=1e-5, atol=1e-6)


# -- cold start ------------------------------------------------------------------------------------
def test_content_and_hybrid_beat_popularity_on_cold_items(cold, hybrid):
    from mmwork.models.recommenders.popularity import MostPopular
    split, feats = cold
    ndcg = {}
    for name, model in [("pop", MostPopular(device="cpu").fit(split.train)),
                        ("content", ContentBased(device="cpu").fit(split.train, item_features=feats)),
                        ("hybrid", hybrid)]:
        ndcg[name] = float(evaluate(model, split, "test", k=10, metrics=("ndcg",)).metrics["ndcg"].mean())
    # MostPopular gives every cold item 0, so its ranking is the catalogue order (itself a weak
    # popularity signal on ML-100K: low ids are older, more watched films).
    assert ndcg["content"] > ndcg["pop"] + 0.05, ndcg
    assert ndcg["hybrid"] > ndcg["pop"] + 0.05, ndcg


def test_hybrid_scores_cold_items_from_content_only(cold, hybrid):
    split, _ = cold
    assert not hybrid.warm_[split.candidates].any()
    assert [h["epoch"] for h in hybrid.history_] == list(range(1, len(hybrid.history_) + 1))
    assert all({"loss", "valid_ndcg@10", "seconds"} <= set(h) for h in hybrid.history_)
    before = hybrid.score(np.arange(20))
    saved = hybrid.item_emb_.clone()
    try:
        hybrid.item_emb_[torch.as_tensor(split.candidates)] = 100.0  # untrained rows must not matter
        after = hybrid.score(np.arange(20))
    finally:
        hybrid.item_emb_ = saved
    torch.testing.assert_close(before[:, split.candidates], after[:, split.candidates])
    assert before[:, split.candidates].std(1).min() > 0  # cold items are told apart, not tied


def test_hybrid_is_deterministic_for_a_seed(cold):
    split, feats = cold
    params = {"epochs": 2, "device": "cpu"}
    a = MultimodalHybrid(seed=3, **params).fit(split.train, item_features=feats, valid=Validator(split))
    b = MultimodalHybrid(seed=3, **params).fit(split.train, item_features=feats, valid=Validator(split))
    c = MultimodalHybrid(seed=4, **params).fit(split.train, item_features=feats, valid=Validator(split))
    users = np.arange(50)
    assert torch.equal(a.score(users), b.score(users))
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    assert not torch.equal(a.score(users), c.score(users))


