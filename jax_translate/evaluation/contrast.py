"""Does a translation render the target's tissue contrast? The contrast check.

Flair orders the healthy tissues CSF < WM < GM; T1 orders them CSF < GM < WM. A
translator that keeps its source's order, or paints a texture with the target's
histogram but not its map, can still reach a middling pixel r; its tissue means
give it away. Per member, over a set of translations (a row's healthy sources):

    ratio_t(img) = mean of img over the pure pixels of tissue t
                   / mean of img over the pure WM pixels,        t in {GM, CSF}

pooled over every image of the set (a pixel is *pure* when its share of one
healthy tissue is at least ``PURE_SHARE``: the dataset's tissue maps,
``SliceSet.tissue``), next to the same ratios of the real target over the same
pixels. A tissue's contrast against WM is 1 - ratio; the *contrast error* is the
larger, over GM and CSF, of the translation's deviation from the real ratio as a
share of the real contrast:

    error = max_t |ratio_t - real ratio_t| / (1 - real ratio_t)

0 for the right map whatever its texture and noise (they average out over
thousands of pixels); 1 for a translation that flattens a tissue into WM; 2.3
for Flair used as T1 on the validation split (its GM/WM is 1.42, T1's 0.67).

Pure numpy on host arrays, as `metrics`; images (N, H, W) in [0, 1], tissue
maps (N, H, W, 3) in `slices.TISSUE_SHARES` order, as uint8 255ths (a
SliceSet's) or float shares.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jax_translate.data.slices import TISSUE_SCALE, TISSUE_SHARES
from jax_translate.evaluation.metrics import _as_batch

# A pixel is pure when one healthy tissue fills this share of it. At 64x64 (3.5 mm
# pixels) a validation patient of dataset 4.0.0 has ~2,500 pure CSF, ~45,000 GM and
# ~26,000 WM pixels over its ~90 slices (simulator seed 0, patient 50): the ratios of
# a few hundred images rest on thousands of pixels each.
PURE_SHARE = 0.9
# The ratios reported, each a tissue's mean over WM's.
RATIOS = ("gm_wm", "csf_wm")
# Fewer pure pixels of a tissue than this in the whole set and its ratio is NaN.
MIN_PURE_PIXELS = 20


@dataclasses.dataclass(frozen=True)
class Contrast:
    """Tissue means over WM's of a set of images, pooled over its pure pixels."""

    gm_wm: float
    csf_wm: float
    pure_pixels: tuple[int, int, int]  # CSF, GM, WM pixels the means are over

    def error(self, real: "Contrast") -> float:
        """The contrast error against ``real`` (the module docstring; NaN if a ratio is)."""
        deviations = [abs(getattr(self, name) - getattr(real, name)) / (1 - getattr(real, name))
                      for name in RATIOS]
        return math.nan if any(math.isnan(d) for d in deviations) else max(deviations)


def shares(tissue) -> np.ndarray:
    """(N, H, W, 3) float shares in [0, 1] from a SliceSet's uint8 255ths (or floats)."""
    tissue = np.asarray(tissue)
    if tissue.ndim != 4 or tissue.shape[-1] != len(TISSUE_SHARES):
        raise ValueError(f"tissue maps are (N, H, W, {len(TISSUE_SHARES)}), got {tissue.shape}")
    return tissue.astype(np.float32) / TISSUE_SCALE if tissue.dtype == np.uint8 else tissue


def contrast(images, tissue, mask=None) -> Contrast:
    """`Contrast` of (N, H, W) ``images`` over the pure pixels of ``tissue`` (within
    ``mask`` if given: e.g. the brain outside a lesion)."""
    x = _as_batch(images).astype(np.float64)
    pure = shares(tissue) >= PURE_SHARE  # (N, H, W, 3)
    if pure.shape[:3] != x.shape:
        raise ValueError(f"tissue maps {pure.shape[:3]} and images {x.shape} differ")
    if mask is not None:
        pure &= (_as_batch(mask) > 0)[..., None]
    counts = pure.sum(axis=(0, 1, 2))
    sums = np.einsum("nhw,nhwt->t", x, pure.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts >= MIN_PURE_PIXELS, sums / np.maximum(counts, 1), np.nan)
    csf, gm, wm = (means[TISSUE_SHARES.index(t)] for t in ("csf", "gm", "wm"))
    ratio = (lambda a: float(a / wm) if wm > 0 else math.nan)  # noqa: E731
    return Contrast(gm_wm=ratio(gm), csf_wm=ratio(csf),
                    pure_pixels=tuple(int(counts[TISSUE_SHARES.index(t)])
                                      for t in ("csf", "gm", "wm")))
