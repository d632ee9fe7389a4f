"""The typed configuration of :class:`~mmwork.models.generators.MultimodalVAE`: the modalities (name ->
kind, shape, vocabulary), the fusion, the networks' sizes and the objective.

>>> from mmwork.models.generators.multimodal import MultimodalVAEConfig
>>> config = MultimodalVAEConfig(modalities={"image": {"kind": "image", "shape": [1, 28, 28]},
...                                          "text": {"kind": "tokens", "shape": [8], "vocab": list("_?abc")}})
>>> from mmwork.models.generators.multimodal.config import vocab_size
>>> vocab_size(config.modalities["text"]), config.fusion
(5, 'attention')
"""
from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from mmwork.models.data.multimodal import ModalitySpec
from mmwork.models.generators.base import GeneratorConfig
from mmwork.models.generators.multimodal.networks import IMAGE_SIZES


def vocab_size(spec: ModalitySpec) -> int | None:
    """The number of token ids of a tokens modality (its vocab, padding and unknown included)."""
    return len(spec.vocab) if spec.vocab else None


class MultimodalVAEConfig(GeneratorConfig):
    """Parameters of :class:`~mmwork.models.generators.MultimodalVAE`. The defaults were chosen on
    digits-av's valid split (1,000 rows; never test) for a fit of about 2.5 CPU-minutes on 1 thread:
    with them (attention, 25 epochs, seed 0; 155 CPU-s, 6.2 CPU-s an epoch with validation, at load
    6-9 on 2 shared cores) the mean conditional coherence was 0.844 (0.811 from one modality, 0.876
    from two) and the joint coherence 0.488 (1,000 prior samples), scored by small CNN classifiers
    trained on the train split (valid accuracy: image 0.977, audio 0.998, text 0.604 on the held-out
    French words). At 12 epochs the fusions gave: attention 0.820 / joint 0.389, moe 0.765 / 0.389,
    mopoe 0.750 / 0.293, poe 0.608 / 0.166 (poe's image expert had not become informative: image -> x
    0.09). ``latent``, ``width``, ``hidden``, ``beta``, ``lr`` and ``batch_size`` were not tuned."""

    modalities: dict[str, ModalitySpec] = {}
    """Modality name -> its ``ModalitySpec`` (kind, shape, vocab, the data's scaling), as the training
    data's specs say; filled from the training data when left empty."""
    dataset: str = ""
    """The data set the model is (to be) trained on; a model refuses another data set's inputs."""
    classes: list[str] = []
    """Class names by label, when the data has them (for the applications' listings)."""
    fusion: Literal["attention", "poe", "moe", "mopoe"] = "attention"
    """How the given modalities' encodings become one posterior (see ``fusion.py``)."""
    subsets: list[list[str]] | None = None
    """The subsets of modalities training draws from (one per example per step, uniformly); None =
    every non-empty subset, so every fusion learns to infer from any subset."""
    latent: PositiveInt = 16
    """Size of the latent vector z."""
    width: PositiveInt = 32
    """Channels of each network's first convolution (the next have twice as many)."""
    hidden: PositiveInt = 128
    """Width of each encoder's features and of each decoder's first linear layer."""
    attention_dim: PositiveInt = 64
    """Width of the attention fusion's tokens."""
    heads: PositiveInt = 4
    """Attention heads of the attention fusion."""
    beta: NonNegativeFloat = 1.0
    """Weight of the KL term."""
    warmup_epochs: NonNegativeFloat = 0.0
    """Epochs over which the KL weight rises linearly from 0 to ``beta`` (0 = none)."""
    rescale: Literal["dimension", "none"] = "none"
    """Per-modality likelihood weights. "none": each modality's log-likelihood counts as it is (a
    784-pixel Bernoulli image, 16x13 unit-variance Gaussian frames, 12 categorical characters);
    "dimension": each is multiplied by the largest modality's number of values over its own
    (MultiVae's likelihood rescaling; here text x65, audio x3.8). "none" because on digits-av's valid
    split (attention, 12 epochs, seed 0) "dimension" made the text term so confident that the held-out
    language's words (French) dominated every posterior they were in: mean conditional coherence 0.69
    against 0.82, joint 0.14 against 0.39, and its validation loss rose from epoch 2, so early stopping
    kept epoch 1. ``elbo`` always reports the unweighted ELBO."""
    epochs: PositiveInt = 25
    """Maximum passes over the training data: 25 fit about 2.5 CPU-minutes on digits-av's 8,000 rows
    (1 thread) and the validation loss was still falling slowly (best epoch 24 of 25; coherence 0.820
    after 12 epochs, 0.844 after 25); ``time_budget`` and early stopping can stop it sooner."""
    patience: PositiveInt = 5
    """Epochs without a lower validation loss before training stops."""
    batch_size: PositiveInt = 64
    """Examples per gradient step."""
    lr: PositiveFloat = 1e-3
    """Adam learning rate."""

    @model_validator(mode="after")
    def _subsets_known(self):
        for name, spec in self.modalities.items():
            if spec.kind == "image" and (spec.shape[1] != spec.shape[2] or spec.shape[1] not in IMAGE_SIZES):
                raise ValueError(f"{name}: image shape must be (C, S, S) with S in {sorted(IMAGE_SIZES)}, "
                                 f"got {spec.shape}")
        if self.attention_dim % self.heads:
            raise ValueError(f"attention_dim ({self.attention_dim}) must be a multiple of heads ({self.heads})")
        for subset in self.subsets or []:
            if not subset:
                raise ValueError("subsets must not hold an empty subset")
            unknown = sorted(set(subset) - set(self.modalities)) if self.modalities else []
            if unknown:
                raise ValueError(f"subsets name {unknown}, which are not among the modalities "
                                 f"{sorted(self.modalities)}")
        return self
