"""The hallucination metrics of StegoGAN's BraTS benchmark (Wu et al., CVPR 2024).

A tumor segmenter (ours: the evaluation classifier's, `classifier.py`) is run
on translations of *healthy* sources, where every pixel it calls tumor is a
false positive:

- ``pfpr``: false-positive pixels / brain pixels, pooled over the images;
- ``ifpr``: the share of images with at least ``ifpr_min_pixels`` false
  positives. StegoGAN counts 50 pixels at 256x256; we scale that count with the
  image area (3 pixels at 64x64, rounded up to the segmenter's 2x2 cells: 4), so
  the threshold means the same share of the image at every size.
"""

from __future__ import annotations

import math

import numpy as np

STEGOGAN_MIN_PIXELS, STEGOGAN_AREA = 50, 256 * 256
SEGMENTER_CELL = 4  # the segmenter predicts on 2x2-pixel cells


def ifpr_min_pixels(height: int, width: int) -> int:
    """StegoGAN's 50 pixels at 256x256, scaled to an H x W image (>= one 2x2 cell)."""
    pixels = STEGOGAN_MIN_PIXELS * height * width / STEGOGAN_AREA
    return max(SEGMENTER_CELL, SEGMENTER_CELL * math.ceil(pixels / SEGMENTER_CELL))


def false_positive_rates(false_positive_pixels, brain_pixels, image_shape) -> tuple[float, float]:
    """(pFPR, iFPR) of healthy-source translations; NaN for no images."""
    fp = np.asarray(false_positive_pixels, np.float64)
    brain = np.asarray(brain_pixels, np.float64)
    if fp.shape != brain.shape:
        raise ValueError(f"shapes differ: {fp.shape} vs {brain.shape}")
    if fp.size == 0:
        return math.nan, math.nan
    pfpr = float(fp.sum() / max(brain.sum(), 1.0))
    ifpr = float(np.mean(fp >= ifpr_min_pixels(*image_shape)))
    return pfpr, ifpr
