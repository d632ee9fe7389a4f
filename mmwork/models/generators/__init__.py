"""Generators: one model per module, one interface in ``base`` (images, sound and text alike).

>>> from mmwork.models.generators import VAE
>>> VAE(latent=8).config.latent
8
"""
from mmwork.models.generators.audio_vae import AudioVAE, AudioVAEConfig
from mmwork.models.generators.base import Generator, GeneratorConfig
from mmwork.models.generators.gan import GAN, GANConfig
from mmwork.models.generators.multimodal import MultimodalVAE, MultimodalVAEConfig
from mmwork.models.generators.rnn_lm import RNNLanguageModel, RNNLanguageModelConfig
from mmwork.models.generators.text_gan import SeqGAN, SeqGANConfig
from mmwork.models.generators.vae import VAE, VAEConfig

__all__ = ["GAN", "VAE", "AudioVAE", "AudioVAEConfig", "GANConfig", "Generator", "GeneratorConfig",
           "MultimodalVAE", "MultimodalVAEConfig", "RNNLanguageModel", "RNNLanguageModelConfig", "SeqGAN", "SeqGANConfig", "VAEConfig"]
