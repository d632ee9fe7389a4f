"""Generators (one model per module, one interface in ``base``), and the data adapters that feed them."""
from mmwork.generators.base import Generator, GeneratorConfig
from mmwork.generators.data import LabelledImages, class_condition, fashion_mnist, one_hot
from mmwork.generators.vae import VAE, VAEConfig

__all__ = ["Generator", "GeneratorConfig", "LabelledImages", "VAE", "VAEConfig", "class_condition",
           "fashion_mnist", "one_hot"]
