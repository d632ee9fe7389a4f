"""Recommenders with one interface: ``fit(train, item_features=None, valid=None)``, ``score(users)``,
``recommend(user_ids, k)``, ``save``/``load``."""
from mmwork.recommenders.base import Recommender
from mmwork.recommenders.bpr import BPR
from mmwork.recommenders.content import ContentBased
from mmwork.interactions import Interactions
from mmwork.recommenders.ease import EASE
from mmwork.recommenders.hybrid import MultimodalHybrid
from mmwork.recommenders.knn import ItemKNN, UserKNN
from mmwork.recommenders.multvae import MultVAE
from mmwork.recommenders.popularity import MostPopular

MODELS: dict[str, type[Recommender]] = {m.name: m for m in (MostPopular, ItemKNN, UserKNN, EASE, BPR, MultVAE,
                                                             ContentBased, MultimodalHybrid)}

__all__ = ["BPR", "ContentBased", "EASE", "Interactions", "ItemKNN", "MODELS", "MostPopular", "MultVAE",
           "MultimodalHybrid", "Recommender", "UserKNN"]
