"""Generators (one model per module, one interface in ``base``), and the data adapters that feed them."""
from mmwork.generators.audio_classifier import AudioClassifier, AudioClassifierConfig
from mmwork.generators.audio_data import (LabelledPatches, MelParams, audio_clips, audio_to_patch, hold_out,
                                          patches_to_audio)
from mmwork.generators.audio_vae import AudioVAE, AudioVAEConfig
from mmwork.generators.base import Generator, GeneratorConfig
from mmwork.generators.classifier import Classifier, ClassifierConfig
from mmwork.generators.data import (LabelledImages, class_condition, describe_classes, fashion_mnist, one_hot,
                                    text_condition, train_valid_split)
from mmwork.generators.gan import GAN, GANConfig
from mmwork.generators.personal import for_user
from mmwork.generators.rnn_lm import RNNLanguageModel, RNNLanguageModelConfig
from mmwork.generators.text_gan import SeqGAN, SeqGANConfig
from mmwork.generators.text_data import (BOS, EOS, PAD, SPECIALS, UNK, TitleCorpus, Tokenizer, TokenizerConfig,
                                         austen_sentences, item_texts, title_conditions)
from mmwork.generators.vae import VAE, VAEConfig

__all__ = ["GAN", "VAE", "Classifier", "ClassifierConfig", "GANConfig", "Generator", "GeneratorConfig",
           "LabelledImages", "VAEConfig", "class_condition", "describe_classes", "fashion_mnist", "one_hot",
           "text_condition", "train_valid_split"]
__all__ += ["AudioClassifier", "AudioClassifierConfig", "AudioVAE", "AudioVAEConfig", "LabelledPatches", "MelParams",
            "audio_clips", "audio_to_patch", "hold_out", "patches_to_audio"]
__all__ += ["BOS", "EOS", "PAD", "SPECIALS", "UNK", "TitleCorpus", "Tokenizer", "TokenizerConfig", "austen_sentences",
            "item_texts", "title_conditions"]
__all__ += ["RNNLanguageModel", "RNNLanguageModelConfig", "SeqGAN", "SeqGANConfig", "for_user"]
