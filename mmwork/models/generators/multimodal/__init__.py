"""The cross-modal generator: :class:`MultimodalVAE`, one latent space over a data set's modalities
(image, sound as MFCC frames, text as characters, feature vectors), fused by attention or by the
published baselines (product of experts, mixture, mixture of products), generating any modality from
any subset of the others.

- ``networks``: the per-modality encoders, decoders and likelihoods (pure torch);
- ``fusion``: the four fusions;
- ``config``: :class:`MultimodalVAEConfig`;
- ``inputs``: the checks of its inputs;
- ``model``: :class:`MultimodalVAE`.

>>> from mmwork.models.generators.multimodal import MultimodalVAE
>>> MultimodalVAE(fusion="mopoe").config.fusion
'mopoe'
"""
from mmwork.models.generators.multimodal.config import MultimodalVAEConfig
from mmwork.models.generators.multimodal.model import MultimodalNet, MultimodalVAE

__all__ = ["MultimodalNet", "MultimodalVAE", "MultimodalVAEConfig"]
