"""Synthetic slices for tests, benchmarks and a GPU's dry run: no simulator, no download.

Ellipse "brains" of varied shape and texture; every other slice of a patient has a
blob that is bright in Flair and dark in T1 (its tumor), so a translator has a map to
learn and a classifier has a class to find, in milliseconds.
"""

from __future__ import annotations

import numpy as np

from jax_translate.data.dataset import SliceSet


def ellipse_slices(n_patients: int = 8, per_patient: int = 12, size: int | tuple[int, int] = 16,
                   seed: int = 0, first_patient: int = 0) -> SliceSet:
    """``n_patients`` x ``per_patient`` slices of ``size`` (an int, or (height, width)),
    patients numbered from ``first_patient``; the same ``seed`` gives the same slices."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    yy, xx = yy / (h - 1) * 2 - 1, xx / (w - 1) * 2 - 1
    radii = rng.uniform(0.7, 0.95, (n, 2))
    brain = ((xx / radii[:, :1, None]) ** 2 + (yy / radii[:, 1:, None]) ** 2 < 1).astype(np.uint8)
    label = np.tile(np.arange(per_patient) % 2, n_patients).astype(np.int32)
    tumor = np.zeros((n, h, w), np.uint8)
    for i in np.flatnonzero(label):
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        tumor[i] = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.08) & (brain[i] > 0)
    texture = rng.uniform(0.0, 0.2, (n, 1, 1)) * np.sin(
        rng.uniform(2, 6, (n, 1, 1)) * xx + rng.uniform(0, 6, (n, 1, 1)))
    noise = rng.normal(0, 0.02, (2, n, h, w)).astype(np.float32)
    flair = np.clip(brain * (0.5 + texture) + tumor * 0.4 + noise[0], 0, 1).astype(np.float32)
    t1 = np.clip(brain * (0.75 - texture) - tumor * 0.5 + noise[1], 0, 1).astype(np.float32)
    patients = np.arange(first_patient, first_patient + n_patients)
    return SliceSet(flair=flair, t1=t1, tumor_mask=tumor, brain_mask=brain, label=label,
                    patient_id=np.repeat(patients, per_patient).astype(np.int32),
                    slice_index=np.tile(np.arange(per_patient), n_patients).astype(np.int32))
