"""Healthy brain anatomy for the simulator: the MNI152 2009 template.

nilearn ships the skull-stripped MNI152 (2009, symmetric) T1 template with its
grey- and white-matter probability maps, so the simulator's anatomy needs no
download. This module reads them once (nibabel, no network) and turns them
into per-voxel tissue probabilities that sum to one inside the brain.

Template facts the simulator relies on: 197 x 233 x 189 voxels of 1 mm, RAS
axes (x: left -> right, y: posterior -> anterior, z: inferior -> superior),
the brain spans about 145 x 181 x 155 mm.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from pathlib import Path

import nibabel
import numpy as np
from scipy import ndimage

# The files behind nilearn.datasets.{MNI152,GM_MNI152,WM_MNI152}_FILE_PATH.
_TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Anatomy:
    """Tissue probabilities on the template grid, each float32 (X, Y, Z).

    Inside the brain csf + gm + wm == brain; all are 0 outside it.
    """

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    # Voxel index -> mm (RAS) for all four maps.
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.brain.shape

    def mm_to_voxel(self, points_mm: np.ndarray) -> np.ndarray:
        """Maps points (3, ...) in mm to fractional voxel indices (3, ...)."""
        inverse = np.linalg.inv(self.affine)
        flat = points_mm.reshape(3, -1)
        voxels = inverse[:3, :3].astype(np.float32) @ flat
        voxels += inverse[:3, 3:].astype(np.float32)
        return voxels.reshape(points_mm.shape)

    @functools.cached_property
    def voxel_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest voxel indices (3,) with any brain (> 0)."""
        low, high = [], []
        for axis in range(3):
            others = tuple(a for a in range(3) if a != axis)
            indices = np.flatnonzero(self.brain.any(axis=others))
            low.append(indices[0])
            high.append(indices[-1])
        return np.array(low), np.array(high)

    def brain_extent_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest mm coordinates (x, y, z) of any brain voxel."""
        low, high = self.voxel_box
        return (self.affine[:3, :3] @ low + self.affine[:3, 3],
                self.affine[:3, :3] @ high + self.affine[:3, 3])


def template_paths() -> dict[str, Path]:
    """Paths of the T1, GM and WM template files that nilearn ships."""
    # Importing nilearn.datasets costs ~1.5 s (it imports sklearn) in every
    # worker process of the dataset build, so the files are found in the
    # package folder without importing it.
    spec = importlib.util.find_spec("nilearn")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
        paths = {name: folder / file for name, file in _TEMPLATE_FILES.items()}
        if all(path.is_file() for path in paths.values()):
            return paths
    from nilearn import datasets  # the documented names, if the layout moved

    return {"t1": Path(datasets.MNI152_FILE_PATH),
            "gm": Path(datasets.GM_MNI152_FILE_PATH),
            "wm": Path(datasets.WM_MNI152_FILE_PATH)}


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nibabel.load(path)
    return np.asarray(image.dataobj), np.asarray(image.affine, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """Reads the template once per process; the arrays are read-only."""
    paths = template_paths()
    t1, affine = _read(paths["t1"])
    gm, gm_affine = _read(paths["gm"])
    wm, wm_affine = _read(paths["wm"])
    if not (np.allclose(affine, gm_affine) and np.allclose(affine, wm_affine)):
        raise ValueError("MNI152 T1, GM and WM maps are not on the same grid.")

    # The T1 is skull-stripped, so its support is the brain (one component,
    # no holes, ventricles included).
    brain = (t1 > 0).astype(np.float32)
    # The probability maps leak a little outside the stripped brain; that
    # tissue would show up as a halo around it, so it is cut.
    gm = gm.astype(np.float32) / 255.0 * brain
    wm = wm.astype(np.float32) / 255.0 * brain
    # Whatever brain is neither grey nor white matter is CSF (ventricles and
    # sulci), which makes the three probabilities sum to the brain mask.
    csf = np.clip(brain - gm - wm, 0.0, 1.0)

    arrays = dict(csf=csf, gm=gm, wm=wm, brain=brain)
    for array in arrays.values():
        # The cache hands the same arrays to every caller.
        array.setflags(write=False)
    affine.setflags(write=False)
    return Anatomy(**arrays, affine=affine)


@functools.lru_cache(maxsize=1)
def brain_center_mm() -> np.ndarray:
    """Centre (x, y, z) of the template brain's bounding box, in mm."""
    low, high = load_anatomy().brain_extent_mm()
    return (low + high) / 2


@functools.lru_cache(maxsize=1)
def tumor_sites_mm() -> np.ndarray:
    """Template points (n, 3) in mm where the simulator may centre a tumor.

    Deep in the white or grey matter (not in CSF, at least 15 mm from the
    brain surface), in the right hemisphere (the paper's crop only shows
    that one) and above the cerebellum (BraTS gliomas are mostly cerebral).
    """
    anatomy = load_anatomy()
    step = 2  # a 2 mm grid is plenty for picking centres, and 8x cheaper
    brain = anatomy.brain[::step, ::step, ::step] > 0.5
    depth_mm = ndimage.distance_transform_edt(brain) * step
    parenchyma = (anatomy.gm + anatomy.wm)[::step, ::step, ::step]
    voxels = np.argwhere(brain & (depth_mm >= 15.0) & (parenchyma >= 0.9)) * step
    points = voxels @ anatomy.affine[:3, :3].T + anatomy.affine[:3, 3]
    keep = (points[:, 0] >= 15.0) & (points[:, 2] >= -10.0) & (points[:, 2] <= 55.0)
    return points[keep]


@functools.lru_cache(maxsize=4)
def blurred_anatomy(in_plane_sigma_mm: float) -> Anatomy:
    """The template blurred within axial planes (x, y) by a Gaussian.

    Sampling a 1 mm template at one point per coarse pixel aliases thin
    sulci into salt-and-pepper; blurring first mimics a scanner that
    averages over the whole pixel. Cached per blur (~0.3 s each).
    """
    anatomy = load_anatomy()
    if in_plane_sigma_mm <= 0:
        return anatomy
    voxel_mm = np.sqrt((anatomy.affine[:3, :3] ** 2).sum(axis=0))
    sigma = (in_plane_sigma_mm / voxel_mm[0], in_plane_sigma_mm / voxel_mm[1], 0.0)
    arrays = {name: ndimage.gaussian_filter(getattr(anatomy, name), sigma, truncate=3.0)
              for name in ("csf", "gm", "wm")}
    # Blurring is linear, so the three still sum to the (blurred) brain.
    arrays["brain"] = arrays["csf"] + arrays["gm"] + arrays["wm"]
    for array in arrays.values():
        array.setflags(write=False)
    return Anatomy(**arrays, affine=anatomy.affine)
