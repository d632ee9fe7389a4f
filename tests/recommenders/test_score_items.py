"""score_items: content-capable recommenders score items outside their catalogue from content alone,
preprocessed exactly as at fit (real MovieLens-100K genres and text features)."""
import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mmwork import MmworkError, datasets, read_table
from mmwork.evaluation import Validator, cold_start_split
from mmwork.features import extract
from mmwork.models.recommenders import EASE, ContentBased, MostPopular, MultimodalHybrid, Recommender
from mmwork.store.item_features import load_item_features

SPECS = ["items:genres", "text:tfidf_lsa"]  # two modalities of different widths (19 and 16)


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A cold-item split of ML-100K and its genre + TF-IDF/LSA features, in a private data root."""
    root = tmp_path_factory.mktemp("data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root))
        datasets.get("movielens-100k")
        extract("movielens-100k", "text", scheduler="sync", progress=False,
                params={"text": {"minilm": False, "skipgram_epochs": 1, "max_features": 2000, "lsa_components": 16}})
        items = read_table("movielens-100k", "items")
        split = cold_start_split(read_table("movielens-100k", "interactions"), items["item_id"], 0.2, seed=7)
        yield split, load_item_features("movielens-100k", SPECS, split.item_ids)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hybrid(cold):
    split, feats = cold
    return MultimodalHybrid(epochs=3, device="cpu").fit(split.train, item_features=feats, valid=Validator(split))


def _rows(feats, rows):
    return {k: v[rows] for k, v in feats.items()}


def test_content_scores_its_own_catalogue_as_score_does(cold):
    split, feats = cold
    users = np.arange(0, 943, 37)
    for params in ({}, {"center": False}, {"modality_weights": {"items:genres": 3.0}}):
        model = ContentBased(device="cpu", **params).fit(split.train, item_features=feats)
        np.testing.assert_allclose(model.score_items(users, feats).numpy(), model.score(users).numpy(), atol=1e-6)
    # any subset, in any order: the centring is the catalogue's, not the batch's
    picked = np.array([1500, 3, 700, 3])
    new = model.score_items(users, _rows(feats, picked))
    np.testing.assert_allclose(new.numpy(), model.score(users)[:, picked].numpy(), atol=1e-6)
    one = model.score_items(users, _rows(feats, picked[:1]))
    np.testing.assert_allclose(one.numpy(), new[:, :1].numpy(), atol=1e-6)


def test_hybrid_scores_new_items_as_it_scores_cold_items(cold, hybrid):
    split, feats = cold
    users = np.arange(0, 943, 41)
    cold_items = split.candidates
    assert not hybrid.warm_[cold_items].any()
    new = hybrid.score_items(users, _rows(feats, cold_items))
    assert new.shape == (len(users), len(cold_items))
    torch.testing.assert_close(new, hybrid.score(users)[:, cold_items], atol=1e-5, rtol=1e-5)
    assert new.std(1).min() > 0
    # a warm item scored as new loses its collaborative part: not its warm score
    warm = np.flatnonzero(hybrid.warm_.numpy())[:50]
    assert not torch.allclose(hybrid.score_items(users, _rows(feats, warm)), hybrid.score(users)[:, warm], atol=1e-3)
    single = hybrid.score_items(users, _rows(feats, cold_items[:1]))
    torch.testing.assert_close(single, new[:, :1], atol=1e-6, rtol=1e-6)


def test_save_load_keeps_the_preprocessing_and_an_older_save_asks_for_a_retrain(cold, hybrid, tmp_path):
    split, feats = cold
    users = np.arange(10)
    content = ContentBased(device="cpu").fit(split.train, item_features=feats)
    for model in (content, hybrid):
        path = model.save(tmp_path / model.name)
        loaded = Recommender.load(path, device="cpu")
        assert loaded.modalities_ == SPECS
        torch.testing.assert_close(loaded.score_items(users, feats), model.score_items(users, feats))
        # a save from before score_items: no centring means, no modality names
        tensors = {k: v for k, v in load_file(path / "model.safetensors").items() if k not in model._content_state}
        save_file(tensors, str(path / "model.safetensors"))
        meta = json.loads((path / "model.json").read_text())
        meta.pop("modalities")
        meta["tensors_sha256"] = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
        (path / "model.json").write_text(json.dumps(meta))
        old = Recommender.load(path, device="cpu")
        torch.testing.assert_close(old.score(users), model.score(users))  # still scores its catalogue
        with pytest.raises(MmworkError, match=f"this {model.name} model was saved by an older mmwork.*retrain it"):
            old.score_items(users, feats)


def test_bad_requests_fail_with_one_line(cold):
    split, feats = cold
    model = ContentBased(device="cpu").fit(split.train, item_features=feats)
    for other in (MostPopular(device="cpu").fit(split.train), EASE(device="cpu").fit(split.train)):
        with pytest.raises(MmworkError, match=f"{other.name} ranks only the items it was trained on; use content or "
                                              "hybrid"):
            other.score_items([0], feats)
    with pytest.raises(MmworkError, match=r"features are \['items:genres'\].*fitted with"):
        model.score_items([0], {"items:genres": feats["items:genres"][:2]})
    with pytest.raises(MmworkError, match=r"wrong widths: text:tfidf_lsa 5 \(fitted with 16\)"):
        model.score_items([0], {"items:genres": feats["items:genres"][:2], "text:tfidf_lsa": np.ones((2, 5))})
    with pytest.raises(MmworkError, match="same, non-zero number of rows"):
        model.score_items([0], {"items:genres": feats["items:genres"][:2], "text:tfidf_lsa": np.ones((3, 16))})
    bad = _rows(feats, [0, 1])
    bad["text:tfidf_lsa"][1, 0] = np.nan
    with pytest.raises(MmworkError, match="NaN or infinite"):
        model.score_items([0], bad)
    with pytest.raises(MmworkError, match=r"user rows must lie in 0..942"):
        model.score_items([943], feats)
    with pytest.raises(MmworkError, match="not fitted"):
        ContentBased().score_items([0], feats)
