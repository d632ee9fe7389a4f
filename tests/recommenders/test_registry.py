"""What every registered recommender shares, parametrised over ``mmwork.models.recommenders.MODELS``: typed
configuration (bad parameters fail at construction, every field documented), fitted state checked
before scoring, no reseeding of the caller's random generators, and safetensors save/load."""
import numpy as np
import pandas as pd
import pytest
import torch

from mmwork import MmworkError
from mmwork.evaluation import Validator
from mmwork.store.interactions import Interactions
from mmwork.models.recommenders import MODELS, Recommender
from mmwork.store.item_features import genre_features

# Short, cheap settings for the trained models (the accuracy tests live beside each model)
QUICK = {"bpr": {"epochs": 3, "eval_every": 1}, "multvae": {"epochs": 2, "eval_every": 1},
         "hybrid": {"epochs": 2}}
# One invalid value per model (and what the message must name); a new model must add its own
BAD = {"pop": {"seed": -1}, "itemknn": {"k_neighbors": 0}, "userknn": {"k_neighbors": 2.5},
       "ease": {"l2": 0}, "bpr": {"lr": -1.0}, "multvae": {"dropout": 1.0}, "content": {"weighting": "loud"},
       "hybrid": {"item_dropout": 1.0}}


@pytest.fixture(scope="module")
def data(movielens, recbole_split_2020):
    items = movielens[1]
    return recbole_split_2020, genre_features(items, recbole_split_2020.item_ids)


def _fit(name, data, **params):
    split, genres = data
    model = MODELS[name](device="cpu", **QUICK.get(name, {}) | params)
    features = genres if model.uses_features else None
    return model.fit(split.train, item_features=features, valid=Validator(split))


def test_every_model_has_a_bad_value_case():
    assert set(BAD) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bad_parameters_fail_at_construction_naming_them(name):
    (field, value), = BAD[name].items()
    with pytest.raises(MmworkError, match=f"bad parameter for .*{field}"):
        MODELS[name](**{field: value})
    with pytest.raises(MmworkError, match="unknown parameter 'no_such_knob'"):
        MODELS[name](no_such_knob=1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_fields_are_documented_and_strings_are_converted(name):
    config = MODELS[name].config_class
    assert {"device", "seed"} <= set(config.model_fields)
    undocumented = [field for field, text in config.describe().items() if not text]
    assert not undocumented, f"{name}: fields without a docstring: {undocumented}"
    assert MODELS[name](seed="7").config.seed == 7  # values from the CLI or YAML arrive as text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unfitted_model_refuses_to_score(name):
    with pytest.raises(MmworkError, match="not fitted"):
        MODELS[name]().score([0])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_leaves_the_global_random_generators_alone(name, data):
    np.random.seed(123)
    torch.manual_seed(123)
    expected_np, expected_torch = np.random.random(), torch.rand(1)
    np.random.seed(123)
    torch.manual_seed(123)
    _fit(name, data, seed=5)
    assert np.random.random() == expected_np
    assert torch.equal(torch.rand(1), expected_torch)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip_gives_identical_scores(name, data, tmp_path):
    model = _fit(name, data)
    users = np.arange(0, model.train_.n_users, 7)
    loaded = Recommender.load(model.save(tmp_path / name), device="cpu")
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    torch.testing.assert_close(loaded.score(users), model.score(users), rtol=0, atol=0)
    mine, theirs = model.recommend(["196", "1"], k=5), loaded.recommend(["196", "1"], k=5)
    assert mine["item_id"].tolist() == theirs["item_id"].tolist()  # a single row may differ in the last bit
    np.testing.assert_allclose(mine["score"], theirs["score"], rtol=1e-6)


@pytest.mark.parametrize("name", ["bpr", "multvae", "hybrid"])
def test_trained_models_record_their_best_epoch(name, data):
    model = _fit(name, data)
    evaluated = [h for h in model.history_ if "valid_ndcg@10" in h]
    assert evaluated and model.best_epoch_ in [h["epoch"] for h in evaluated]
    best = max(evaluated, key=lambda h: h["valid_ndcg@10"])
    assert best["epoch"] == model.best_epoch_


def test_a_failed_refit_leaves_no_stale_state(data):
    model = MODELS["itemknn"](device="cpu").fit(data[0].train)
    one_item = Interactions.from_frame(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "x"]}))
    with pytest.raises(MmworkError, match="at least 2 items"):
        model.fit(one_item)
    with pytest.raises(MmworkError, match="not fitted"):
        model.score([0])


def test_valid_must_be_a_callback(data):
    with pytest.raises(MmworkError, match="Validator"):
        MODELS["bpr"](epochs=1).fit(data[0].train, valid=data[0].valid)


def test_named_parameters_override_the_experiment_seed_and_device():
    from mmwork.apps.experiments import build_models
    model, = build_models(["bpr"], {"bpr": {"seed": "3", "epochs": "7"}}, device="cpu", seed=2020)
    assert (model.config.seed, model.config.epochs, model.config.device) == (3, 7, "cpu")
    with pytest.raises(MmworkError, match="unknown model"):
        build_models(["bpr", "nope"])
