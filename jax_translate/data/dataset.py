"""Builds (once) and reads the slice datasets into host arrays.

Everything downstream works on :class:`SliceSet`, a frozen bundle of numpy
arrays in a deterministic order (patient, then slice), whatever order TFDS
stored the records in.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from jax_translate.data.layout import (
    ALL_SPLITS, DATASETS, EXPORT_NAME, LATEST_VERSION, SPLITS, VALIDATION, check_size,
    dataset_dir, dataset_version, default_data_dir)
from jax_translate.data.slices import TISSUE_SCALE, TISSUE_SHARES
from jax_translate.errors import UsageError
from jax_translate.images import MODALITIES
from jax_translate.io_utils import writable_dir



@dataclasses.dataclass(frozen=True)
class SliceSet:
    """Axial slices of one split. Images are float32 in [0, 1], (N, H, W).

    A modality the dataset does not hold is None (T2 and T1c before dataset
    version 3): read images by name with :meth:`image`, which says so. So are
    the tissue shares before version 4 and in real BraTS data (:meth:`tissue_share`).
    """

    flair: np.ndarray
    t1: np.ndarray
    tumor_mask: np.ndarray   # uint8 (N, H, W), whole tumor
    brain_mask: np.ndarray   # uint8 (N, H, W)
    label: np.ndarray        # int32 (N,), 0 healthy / 1 tumor
    patient_id: np.ndarray   # int32 (N,)
    slice_index: np.ndarray  # int32 (N,)
    t2: np.ndarray | None = None
    t1c: np.ndarray | None = None
    # uint8 (N, H, W, 3): each pixel's share of healthy CSF, GM and WM in 255ths
    # (slices.encode_tissue, in slices.TISSUE_SHARES order)
    tissue: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.label)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this split holds, in ``images.MODALITIES`` order."""
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)

    def image(self, modality: str) -> np.ndarray:
        """The (N, H, W) images of ``modality``; a clear error if the dataset lacks it."""
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality {modality!r}; choose one of "
                             f"{', '.join(MODALITIES)}")
        images = getattr(self, modality)
        if images is None:
            raise UsageError(
                f"this dataset has no {modality} images, only {', '.join(self.modalities)}; "
                f"dataset version {LATEST_VERSION} (simulator_version {LATEST_VERSION}) holds "
                f"{', '.join(DATASETS[LATEST_VERSION].modalities)}")
        return images

    @property
    def has_tissue(self) -> bool:
        return self.tissue is not None

    def tissue_share(self, name: str) -> np.ndarray:
        """(N, H, W) float32 in [0, 1]: each pixel's share of healthy tissue ``name``
        (csf, gm or wm); a clear error if the dataset has no tissue maps."""
        if name not in TISSUE_SHARES:
            raise UsageError(f"unknown tissue {name!r}; choose one of {', '.join(TISSUE_SHARES)}")
        if self.tissue is None:
            raise UsageError(
                f"this dataset has no tissue maps: dataset version {LATEST_VERSION} of the "
                "simulator has them (simulator_version 4); real BraTS data has none")
        return self.tissue[..., TISSUE_SHARES.index(name)].astype(np.float32) / TISSUE_SCALE

    def take(self, index: np.ndarray) -> "SliceSet":
        return SliceSet(**{f.name: None if getattr(self, f.name) is None
                           else getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def summary(self) -> dict:
        return {
            "slices": len(self),
            "tumor_slices": int(self.label.sum()),
            "tumor_fraction": float(self.label.mean()) if len(self) else float("nan"),
            "patients": int(len(np.unique(self.patient_id))),
        }


def export_splits(splits: dict[str, SliceSet], path: Path) -> Path:
    """Writes every split (and every modality it holds) to one compressed .npz
    (atomically); returns its path."""
    arrays = {f"{split}/{f.name}": getattr(splits[split], f.name)
              for split in splits for f in dataclasses.fields(SliceSet)
              if getattr(splits[split], f.name) is not None}
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def read_export(path: Path) -> dict[str, SliceSet]:
    """Every split an export holds (older ones: train and holdout, Flair and T1)."""
    with np.load(path) as data:
        present = {name.split("/")[0] for name in data.files}
        return {split: SliceSet(**{f.name: data[f"{split}/{f.name}"]
                                   for f in dataclasses.fields(SliceSet)
                                   if f"{split}/{f.name}" in data.files})
                for split in ALL_SPLITS if split in present}


def get_builder(size: str = "64", data_dir: str | Path | None = None,
                brats_dir: str | Path | None = None, version: int | None = None,
                **sim_kwargs):
    """The TFDS builder: real BraTS when ``brats_dir`` is given, else simulated."""
    from jax_translate.data import builders

    check_size(size)
    data_dir = writable_dir(Path(data_dir) if data_dir else default_data_dir(), "data dir")
    if brats_dir is not None:
        builder = builders.REAL_BUILDERS[DATASETS[dataset_version(version)].real_brats]
        # fails early with a clear message
        builders.patient_folders(Path(brats_dir), builder.LAYOUT.modalities)
        return builder(data_dir=str(data_dir), config=size, file_format="array_record")
    config = builders.simulated_config(size, **sim_kwargs)
    # TFDS refuses a custom config object that shares a name with a listed one.
    listed = {c.name for c in builders.SimulatedBrats.BUILDER_CONFIGS}
    builder = builders.SIMULATED_BUILDERS[dataset_version(version)]
    return builder(data_dir=str(data_dir), config=config.name if config.name in listed else config,
                   file_format="array_record")


def prepare(builder, brats_dir: str | Path | None = None) -> bool:
    """Builds the dataset unless it is already there. Returns True if it built."""
    import tensorflow_datasets as tfds

    if builder.is_prepared():
        return False
    config = None
    if brats_dir is not None:
        config = tfds.download.DownloadConfig(manual_dir=str(Path(brats_dir).resolve()))
    # TFDS's bars would write their carriage-return updates into a log file: there,
    # one line before and one after (progress.py's rule for our own bars).
    from jax_translate import progress

    logged = not progress.on_terminal()
    tfds.display_progress_bar(not logged)
    t0 = time.monotonic()
    if logged:
        print(f"building dataset {builder.name}/{builder.builder_config.name} in "
              f"{builder.data_dir}", file=sys.stderr, flush=True)
    builder.download_and_prepare(download_config=config)
    if logged:
        print(f"dataset built in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    return True


def read_split(builder, split: str) -> SliceSet:
    source = builder.as_data_source(split=split)
    records = source.__getitems__(list(range(len(source))))
    if not records:
        raise UsageError(f"split {split!r} of {builder.name}/{builder.builder_config.name} is empty")
    images = [m for m in MODALITIES if m in records[0]]
    tissue = ["tissue"] if "tissue" in records[0] else []
    arrays = {
        name: np.stack([np.asarray(r[name]) for r in records])
        for name in (*images, "tumor_mask", "brain_mask", *tissue)
    }
    for name in ("label", "patient_id", "slice_index"):
        arrays[name] = np.asarray([r[name] for r in records], np.int32)
    order = np.lexsort((arrays["slice_index"], arrays["patient_id"]))
    return SliceSet(**{k: v[order] for k, v in arrays.items()})


def split_names(builder) -> list[str]:
    """The splits a built dataset holds, in ``layout.ALL_SPLITS`` order."""
    return [split for split in ALL_SPLITS if split in builder.info.splits]


def read_splits(builder) -> dict[str, SliceSet]:
    """Every split of a built dataset."""
    return {split: read_split(builder, split) for split in split_names(builder)}


def load(size: str = "64", data_dir: str | Path | None = None,
         brats_dir: str | Path | None = None, **sim_kwargs) -> dict[str, SliceSet]:
    """Every split of the dataset (train and holdout; validation from version 3 on):
    its export if there is one, else built (once) with TFDS."""
    export = dataset_dir(size, data_dir, brats_dir, **sim_kwargs) / EXPORT_NAME
    if export.is_file():
        return read_export(export)
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        raise UsageError(
            f"tensorflow-datasets is not installed and there is no {export}: build the data "
            f"where it is (jax-translate data --size {size} --data-dir DIR --export) and copy "
            f"DIR here") from None
    builder = get_builder(size, data_dir, brats_dir, **sim_kwargs)
    prepare(builder, brats_dir)
    return read_splits(builder)


def folder_for(cfg) -> Path:
    """The folder of a sweep config's dataset: its records, export, ceiling and
    classifier cache (``cfg``: a :class:`~jax_translate.config.SweepConfig`)."""
    return dataset_dir(cfg.size, cfg.data_dir, cfg.brats_dir, **cfg.simulator_kwargs)


def load_for(cfg) -> dict[str, SliceSet]:
    """Every split of the dataset a sweep config trains and evaluates on (built on first use)."""
    return load(cfg.size, cfg.data_dir, cfg.brats_dir, **cfg.simulator_kwargs)
