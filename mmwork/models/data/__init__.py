"""The arrays models train on, read from the store: labelled images, labelled sound patches, tokenised
text corpora, several modalities of the same rows (``digits-av``), and the condition vectors built from labels or texts.

>>> from mmwork.models.data import one_hot
>>> one_hot([0, 2], 3).tolist()
[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
"""
from mmwork.models.data.audio import (LabelledPatches, MelParams, audio_clips, audio_to_patch, hold_out,
                                      patches_to_audio)
from mmwork.models.data.images import (LabelledImages, class_condition, describe_classes, fashion_mnist, one_hot,
                                       text_condition, train_valid_split)
from mmwork.models.data.multimodal import (ModalitySpec, MultimodalData, decode_text, digits_av, encode_text,
                                           mfcc_to_waveform)
from mmwork.models.data.text import (BOS, EOS, PAD, SPECIALS, UNK, TitleCorpus, Tokenizer, TokenizerConfig,
                                     austen_sentences, item_texts, title_conditions)

__all__ = ["LabelledImages", "class_condition", "describe_classes", "fashion_mnist", "one_hot", "text_condition",
           "train_valid_split", "LabelledPatches", "MelParams", "audio_clips", "audio_to_patch", "hold_out",
           "patches_to_audio", "BOS", "EOS", "PAD", "SPECIALS", "UNK", "TitleCorpus", "Tokenizer", "TokenizerConfig",
           "austen_sentences", "item_texts", "title_conditions", "ModalitySpec", "MultimodalData", "decode_text",
           "digits_av", "encode_text", "mfcc_to_waveform"]
