"""Recommenders with one interface: ``fit(train, item_features=None, valid=None)``, ``score(users)``,
``recommend(user_ids, k)``, ``save``/``load``."""
from mmwork.models.recommenders.base import Recommender
from mmwork.models.recommenders.bpr import BPR
from mmwork.models.recommenders.content import ContentBased
from mmwork.store.interactions import Interactions
from mmwork.models.recommenders.ease import EASE
from mmwork.models.recommenders.hybrid import MultimodalHybrid
from mmwork.models.recommenders.neighbourhood import ItemKNN, UserKNN
from mmwork.models.recommenders.multvae import MultVAE
from mmwork.models.recommenders.popularity import MostPopular

MODELS: dict[str, type[Recommender]] = {m.name: m for m in (MostPopular, ItemKNN, UserKNN, EASE, BPR, MultVAE,
                                                             ContentBased, MultimodalHybrid)}

__all__ = ["BPR", "ContentBased", "EASE", "Interactions", "ItemKNN", "MODELS", "MostPopular", "MultVAE",
           "MultimodalHybrid", "Recommender", "UserKNN"]
