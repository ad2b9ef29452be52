"""The paper's slice rules, shared by the simulated and the real-BraTS builders.

Cohen et al. keep an axial slice when it shows enough brain and call it a
*tumor* slice when the tumor covers more than 1% of its brain. Their code
(``prepare_data.ipynb`` of ieee8023/dist-bias) measures "enough brain" as the
ratio of brain pixels to *background* pixels, not to all pixels; we follow it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MIN_BRAIN_TO_BACKGROUND = 0.30
MIN_TUMOR_FRACTION = 0.01

HEALTHY, TUMOR = 0, 1
LABEL_NAMES = ("healthy", "tumor")

def brain_to_background(brain_mask: np.ndarray) -> float:
    """Brain pixels divided by background pixels of one slice."""
    brain = int(np.count_nonzero(brain_mask))
    return brain / max(brain_mask.size - brain, 1)


def tumor_fraction(tumor_mask: np.ndarray, brain_mask: np.ndarray) -> float:
    """Tumor pixels divided by brain pixels (0 for a slice without brain)."""
    brain = int(np.count_nonzero(brain_mask))
    return int(np.count_nonzero(tumor_mask)) / brain if brain else 0.0


def keep_slice(brain_mask: np.ndarray) -> bool:
    return brain_to_background(brain_mask) > MIN_BRAIN_TO_BACKGROUND


def tumor_label(tumor_mask: np.ndarray, brain_mask: np.ndarray) -> int:
    return TUMOR if tumor_fraction(tumor_mask, brain_mask) > MIN_TUMOR_FRACTION else HEALTHY


def volume_examples(
    patient_id: int,
    images: dict[str, np.ndarray],
    tumor: np.ndarray,
    brain: np.ndarray,
    tissue_shares: np.ndarray | None = None,
) -> Iterator[tuple[str, dict]]:
    """Yields ``(key, example)`` for every kept axial slice of one volume.

    ``images`` maps each stored modality ("flair", "t1", ...) to its volume.
    All arrays are (Z, H, W); images already scaled to [0, 1]. ``tissue_shares``
    (3, Z, H, W) in [0, 1], each pixel's share of healthy CSF, GM and WM, is stored
    as ``tissue`` (H, W, 3) uint8 in 255ths (:func:`encode_tissue`). The key is
    unique across the dataset so TFDS can shard and deduplicate.
    """
    for z in range(brain.shape[0]):
        if not keep_slice(brain[z]):
            continue
        tissue = {} if tissue_shares is None else {"tissue": encode_tissue(tissue_shares[:, z])}
        yield f"{patient_id:04d}_{z:04d}", {
            **{name: np.asarray(volume[z], np.float32) for name, volume in images.items()},
            "tumor_mask": np.asarray(tumor[z] > 0, np.uint8),
            "brain_mask": np.asarray(brain[z] > 0, np.uint8),
            **tissue,
            "label": tumor_label(tumor[z], brain[z]),
            "patient_id": patient_id,
            "slice_index": z,
        }


# The healthy tissues whose share of each pixel a dataset may store, in this order.
TISSUE_SHARES = ("csf", "gm", "wm")
# Tissue shares are stored in 255ths: 0.2% of a pixel is far below what a contrast
# check resolves (it reads pixels of one tissue at >= 0.9), at a quarter of float32's size.
TISSUE_SCALE = 255


def encode_tissue(shares: np.ndarray) -> np.ndarray:
    """(3, H, W) shares in [0, 1] -> (H, W, 3) uint8 in 255ths."""
    return np.round(np.clip(np.moveaxis(shares, 0, -1), 0.0, 1.0) * TISSUE_SCALE).astype(np.uint8)
