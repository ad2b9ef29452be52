"""Image conventions every layer shares: slice sizes, the models' intensity range, resizing.

Part of the vocabulary (docs/architecture.md). Datasets hold (N, H, W)
float32 images in [0, 1]; models see (N, H, W, 1) images in the config's
``intensity_range`` (inside tanh's [-1, 1]), ``upscale`` times larger.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Slice sizes the builders make: "64" and "128" (square) and the paper's
# 256x128 hemisphere crop (height x width).
SIZES = ("64", "128", "256x128")
# The MRI modalities a dataset may hold, as a SliceSet's fields and the config's
# ``source`` / ``target`` spell them (data/layout.py DATASETS: which version holds which).
MODALITIES = ("flair", "t1", "t2", "t1c")
# How figures and logs name them.
MODALITY_NAMES = {"flair": "Flair", "t1": "T1", "t2": "T2", "t1c": "T1c"}


def image_shape(size: str) -> tuple[int, int]:
    height, _, width = size.partition("x")
    return int(height), int(width or height)


def to_model_range(images: np.ndarray, intensity_range=(-1.0, 1.0)) -> np.ndarray:
    """[0, 1] images (N, H, W) -> ``intensity_range`` (inside tanh's [-1, 1]), with a channel axis.

    The reference's (-1, -0.216) comes from storing 0..100 in uint8 and then
    normalising x/255 as if it spanned 0..255.
    """
    low, high = intensity_range
    return (low + (high - low) * np.asarray(images, np.float32))[..., None]


def from_model_range(images, intensity_range=(-1.0, 1.0)) -> np.ndarray:
    """The inverse of :func:`to_model_range`, clipped to [0, 1]."""
    low, high = intensity_range
    return np.clip((np.asarray(images)[..., 0] - low) / (high - low), 0.0, 1.0)


def upsample(images: jnp.ndarray, factor: int) -> jnp.ndarray:
    """(B, H, W, C) -> (B, factor*H, factor*W, C), bilinear as the reference's scale_width."""
    if factor == 1:
        return images
    b, h, w, c = images.shape
    return jax.image.resize(images, (b, factor * h, factor * w, c), "bilinear")


def downsample(images: jnp.ndarray, factor: int) -> jnp.ndarray:
    """(B, factor*H, factor*W, C) -> (B, H, W, C), each pixel the mean of its factor x factor block."""
    if factor == 1:
        return images
    b, h, w, c = images.shape
    return images.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def model_image_shape(cfg, dataset_shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of the images the models see: the dataset's (H, W) times ``cfg.upscale``."""
    height, width = dataset_shape[-2:]
    return cfg.upscale * height, cfg.upscale * width
