"""TFDS builders: the simulated dataset (default) and real BraTS volumes.

Both write array_record files and are read back with ``tfds.data_source``,
which needs no TensorFlow. They share the slice rules of
:mod:`jax_translate.data.slices` and the same features, so everything
downstream works on either. What a version stores (its modalities and splits)
is its ``LAYOUT``, a :data:`layout.DATASETS` entry; TFDS builds only a
builder's own VERSION, so every older version keeps a builder of its own.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from jax_translate.data import layout, slices
from jax_translate.images import MODALITIES, SIZES, image_shape

# Patients per worker process below which a split is simulated in this process.
PATIENTS_PER_WORKER = 16


def _features(size: str, version: layout.DatasetVersion) -> tfds.features.FeaturesDict:
    shape = image_shape(size)
    tissue = ({"tissue": tfds.features.Tensor(shape=(*shape, 3), dtype=np.uint8)}
              if version.tissue else {})
    return tfds.features.FeaturesDict({
        **{m: tfds.features.Tensor(shape=shape, dtype=np.float32) for m in version.modalities},
        "tumor_mask": tfds.features.Tensor(shape=shape, dtype=np.uint8),
        "brain_mask": tfds.features.Tensor(shape=shape, dtype=np.uint8),
        **tissue,
        "label": tfds.features.ClassLabel(names=list(slices.LABEL_NAMES)),
        "patient_id": np.int32,
        "slice_index": np.int32,
    })


def _info(builder) -> tfds.core.DatasetInfo:
    # Built here rather than from metadata files: neither builder ships any.
    return tfds.core.DatasetInfo(builder=builder, description=builder.__doc__,
                                 features=_features(builder.builder_config.size,
                                                    builder.LAYOUT))


# --------------------------------------------------------------------------
# Simulated data.


@dataclasses.dataclass(kw_only=True)
class SimulatedBratsConfig(tfds.core.BuilderConfig):
    size: str = "64"
    n_patients: int = 50
    n_train_patients: int = 30
    seed: int = 0


def simulated_config(size: str = "64", n_patients: int = 50,
                     n_train_patients: int = 30, seed: int = 0) -> SimulatedBratsConfig:
    """The config for these settings; the defaults are named after the size."""
    name = layout.simulated_config_name(size, n_patients, n_train_patients, seed)
    return SimulatedBratsConfig(
        name=name, size=size, n_patients=n_patients,
        n_train_patients=n_train_patients, seed=seed,
        description=f"{n_patients} simulated patients, {size} axial slices, seed {seed}.")


def _simulate_examples(args: tuple[int, int, str, layout.DatasetVersion]
                       ) -> list[tuple[str, dict]]:
    # Runs in a worker process: only numpy/scipy are imported there.
    from jax_translate.data import simulator

    patient, seed, size, version = args
    volume = simulator.simulate_patient(patient, seed, simulator.GEOMETRIES[size],
                                        version=version.simulator)
    return list(slices.volume_examples(
        patient, {m: getattr(volume, m) for m in version.modalities}, volume.tumor,
        volume.brain, volume.tissue_shares if version.tissue else None))


class SimulatedBrats(tfds.core.GeneratorBasedBuilder):
    """Flair, T1, T2 and T1c slices of patients simulated from the MNI152 2009 template,
    and each pixel's share of CSF, GM and WM, in train, holdout and validation splits."""

    # The major version is the dataset's (layout.DATASETS); its LAYOUT says which
    # simulator version renders it and what it stores.
    VERSION = tfds.core.Version("4.0.0")
    LAYOUT = layout.DATASETS[4]
    RELEASE_NOTES = {
        "1.0.0": "First simulator: the MNI152 population-average tissue mixture in every voxel.",
        "2.0.0": "Each patient's own crisp anatomy; partial volume only from pixel averaging.",
        "3.0.0": "2.0.0's patients with their T2 and T1c too, and a validation split of "
                 "further patients.",
        "4.0.0": "3.0.0's slices with each pixel's share of healthy CSF, GM and WM.",
    }
    BUILDER_CONFIGS = [simulated_config(size) for size in SIZES]

    def _info(self) -> tfds.core.DatasetInfo:
        return _info(self)

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        patients = np.arange(cfg.n_patients)
        splits = {"train": patients[: cfg.n_train_patients],
                  "holdout": patients[cfg.n_train_patients:]}
        if layout.VALIDATION in self.LAYOUT.splits:
            # New patients after the others: train and holdout stay 2.0.0's patients.
            splits[layout.VALIDATION] = cfg.n_patients + np.arange(
                layout.validation_patients(cfg.n_patients))
        return {name: self._generate_examples(ids) for name, ids in splits.items()}

    def _generate_examples(self, patients) -> Iterator[tuple[str, dict]]:
        cfg = self.builder_config
        jobs = [(int(p), cfg.seed, cfg.size, self.LAYOUT) for p in patients]
        # A spawned worker takes ~4 s to start (it imports the package) and a 64x64
        # patient ~0.5 s to simulate: on 2 cores, 30 patients ran in 18.0 s in this
        # process and 19.5 s with the pool, 8 patients in 5.3 s against 8.7 s.
        workers = min(len(jobs) // PATIENTS_PER_WORKER, os.cpu_count() or 1)
        if workers <= 1:
            for job in jobs:
                yield from _simulate_examples(job)
            return
        # "spawn": the parent may hold JAX's threads, which fork would copy.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for examples in pool.map(_simulate_examples, jobs):
                yield from examples


class SimulatedBratsV3(SimulatedBrats, skip_registration=True):
    """Dataset version 3 (no tissue shares), still buildable for the results made with
    it (simulated_brats/<config>/3.0.0)."""

    name = "simulated_brats"
    VERSION = tfds.core.Version("3.0.0")
    LAYOUT = layout.DATASETS[3]


class SimulatedBratsV2(SimulatedBrats, skip_registration=True):
    """Dataset version 2 (Flair and T1; train and holdout), still buildable for the
    results made with it: the same name and folders (simulated_brats/<config>/2.0.0)."""

    name = "simulated_brats"
    VERSION = tfds.core.Version("2.0.0")
    LAYOUT = layout.DATASETS[2]


class SimulatedBratsV1(SimulatedBrats, skip_registration=True):
    """Simulator version 1's data, still buildable for the results made with it
    (simulated_brats/<config>/1.0.0)."""

    name = "simulated_brats"
    VERSION = tfds.core.Version("1.0.0")
    LAYOUT = layout.DATASETS[1]


# By dataset version (a config's simulator_version).
SIMULATED_BUILDERS = {1: SimulatedBratsV1, 2: SimulatedBratsV2, 3: SimulatedBratsV3,
                      4: SimulatedBrats}


# --------------------------------------------------------------------------
# Real BraTS volumes from a manual folder.

# BraTS names T1c "t1ce".
MODALITY_SUFFIXES = {"flair": "_flair.nii.gz", "t1": "_t1.nii.gz", "t2": "_t2.nii.gz",
                     "t1c": "_t1ce.nii.gz", "seg": "_seg.nii.gz"}


@dataclasses.dataclass(kw_only=True)
class RealBratsConfig(tfds.core.BuilderConfig):
    size: str = "64"
    train_fraction: float = 0.6
    validation_fraction: float = 0.1  # versions with a validation split
    seed: int = 0


def patient_folders(manual_dir: Path, modalities: tuple[str, ...] = MODALITIES) -> list[Path]:
    """Patient folders holding the volumes of ``modalities`` and the segmentation;
    raises if there are none."""
    from jax_translate.errors import UsageError

    suffixes = [MODALITY_SUFFIXES[m] for m in (*modalities, "seg")]
    manual_dir = Path(manual_dir)
    if not manual_dir.is_dir():
        raise UsageError(f"BraTS folder {manual_dir} does not exist")
    found = [
        folder for folder in sorted(p for p in manual_dir.iterdir() if p.is_dir())
        if all(any(folder.glob("*" + s)) for s in suffixes)
    ]
    if not found:
        raise UsageError(f"BraTS folder {manual_dir} has no patient folder with "
                         + ", ".join("*" + s for s in suffixes))
    return found


def _to_slices(volume: np.ndarray, size: str, order: int) -> np.ndarray:
    """(X, Y, Z) RAS volume -> (Z, H, W) axial slices, anterior up, resized."""
    from scipy import ndimage

    height, width = image_shape(size)
    axial = np.flip(np.transpose(volume, (2, 1, 0)), axis=1)  # (Z, Y->rows, X)
    if height != width:  # the paper's hemisphere crop: keep one half in x
        axial = axial[:, :, axial.shape[2] // 2:]
    zoom = (1.0, height / axial.shape[1], width / axial.shape[2])
    out = ndimage.zoom(axial, zoom, order=order, grid_mode=True, mode="grid-constant")
    return out[:, :height, :width]


def _scale(volume: np.ndarray) -> np.ndarray:
    # Per-volume robust max: scanners differ, so one global max (the paper's
    # choice for synthetic data) would put patients on different scales.
    brain = volume[volume > 0]
    top = np.percentile(brain, 99.5) if brain.size else 1.0
    return np.clip(volume / max(top, 1e-6), 0.0, 1.0).astype(np.float32)


def read_patient(folder: Path, size: str, modalities: tuple[str, ...] = MODALITIES
                 ) -> dict[str, np.ndarray]:
    """{modality: slices, "tumor": mask, "brain": mask} of one patient folder."""
    import nibabel as nib

    def load(kind):
        path = next(folder.glob("*" + MODALITY_SUFFIXES[kind]))
        return np.asarray(nib.load(path).get_fdata(), np.float32)

    volumes = {m: load(m) for m in modalities}
    seg = load("seg")
    # From Flair and T1 in every version, so masks and labels stay 1.0.0's.
    brain = (volumes["flair"] > 0) | (volumes["t1"] > 0)
    return {
        **{m: _to_slices(_scale(v), size, order=1) for m, v in volumes.items()},
        "tumor": _to_slices((seg > 0).astype(np.float32), size, order=0) > 0.5,
        "brain": _to_slices(brain.astype(np.float32), size, order=0) > 0.5,
    }


def real_split_sizes(n: int, cfg: RealBratsConfig, validation: bool) -> tuple[int, int]:
    """(train, validation) patients of ``n``; the holdout gets the rest (>= 1).

    Train is 1.0.0's (``train_fraction``) where that leaves room; validation
    patients (with 3 or more) come out of 1.0.0's holdout.
    """
    n_val = max(1, round(cfg.validation_fraction * n)) if validation and n >= 3 else 0
    n_train = max(1, min(n - n_val - 1, round(cfg.train_fraction * n)))
    return n_train, n_val


class RealBrats(tfds.core.GeneratorBasedBuilder):
    """Flair, T1, T2 and T1c slices of real BraTS patients, from a manual folder, in
    train, holdout and (with 3 or more patients) validation splits."""

    VERSION = tfds.core.Version("2.0.0")
    LAYOUT = layout.DATASETS[3]
    RELEASE_NOTES = {"1.0.0": "First release.",
                     "2.0.0": "T2 and T1c too, and a validation split out of the holdout."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put one folder per patient in the manual dir, each holding *_flair.nii.gz, "
        "*_t1.nii.gz, *_t2.nii.gz, *_t1ce.nii.gz and *_seg.nii.gz (the BraTS layout).")
    BUILDER_CONFIGS = [RealBratsConfig(name=size, size=size) for size in SIZES]

    def _info(self) -> tfds.core.DatasetInfo:
        return _info(self)

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        folders = patient_folders(dl_manager.manual_dir, self.LAYOUT.modalities)
        if len(folders) < 2:
            from jax_translate.errors import UsageError
            raise UsageError(f"BraTS folder {dl_manager.manual_dir} has {len(folders)} "
                             "patient; at least 2 are needed (train and holdout)")
        order = np.random.default_rng(cfg.seed).permutation(len(folders))
        n_train, n_val = real_split_sizes(len(folders), cfg,
                                          layout.VALIDATION in self.LAYOUT.splits)
        ids = {folder: i for i, folder in enumerate(folders)}  # stable ids: sorted order
        pick = lambda idx: [folders[i] for i in sorted(idx)]  # noqa: E731
        splits = {"train": order[:n_train], "holdout": order[n_train:len(folders) - n_val]}
        if n_val:
            splits[layout.VALIDATION] = order[len(folders) - n_val:]
        return {name: self._generate_examples(pick(idx), ids) for name, idx in splits.items()}

    def _generate_examples(self, folders, ids) -> Iterator[tuple[str, dict]]:
        for folder in folders:
            modalities = self.LAYOUT.modalities
            v = read_patient(folder, self.builder_config.size, modalities)
            yield from slices.volume_examples(ids[folder], {m: v[m] for m in modalities},
                                              v["tumor"], v["brain"])


class RealBratsV1(RealBrats, skip_registration=True):
    """Version 1.0.0 (Flair and T1; train and holdout), still buildable for the results
    made with it (real_brats/<size>/1.0.0)."""

    name = "real_brats"
    VERSION = tfds.core.Version("1.0.0")
    LAYOUT = layout.DATASETS[2]


# By builder version (layout.DatasetVersion.real_brats).
REAL_BUILDERS = {"1.0.0": RealBratsV1, "2.0.0": RealBrats}
