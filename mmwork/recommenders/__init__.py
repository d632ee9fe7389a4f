"""Recommenders with one interface: ``fit(train, item_features=None, valid=None)``, ``score(users)``,
``recommend(user_ids, k)``, ``save``/``load``."""
from mmwork.recommenders.base import Recommender
from mmwork.recommenders.data import Interactions
from mmwork.recommenders.ease import EASE
from mmwork.recommenders.knn import ItemKNN, UserKNN
from mmwork.recommenders.popularity import MostPopular

MODELS: dict[str, type[Recommender]] = {m.name: m for m in (MostPopular, ItemKNN, UserKNN, EASE)}

__all__ = ["EASE", "Interactions", "ItemKNN", "MODELS", "MostPopular", "Recommender", "UserKNN"]
