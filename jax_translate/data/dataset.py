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
    EXPORT_NAME, SPLITS, check_size, dataset_dir, default_data_dir, simulator_version)
from jax_translate.errors import UsageError
from jax_translate.io_utils import writable_dir



@dataclasses.dataclass(frozen=True)
class SliceSet:
    """Axial slices of one split. Images are float32 in [0, 1], (N, H, W)."""

    flair: np.ndarray
    t1: np.ndarray
    tumor_mask: np.ndarray   # uint8 (N, H, W), whole tumor
    brain_mask: np.ndarray   # uint8 (N, H, W)
    label: np.ndarray        # int32 (N,), 0 healthy / 1 tumor
    patient_id: np.ndarray   # int32 (N,)
    slice_index: np.ndarray  # int32 (N,)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, index: np.ndarray) -> "SliceSet":
        return SliceSet(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def summary(self) -> dict:
        return {
            "slices": len(self),
            "tumor_slices": int(self.label.sum()),
            "tumor_fraction": float(self.label.mean()) if len(self) else float("nan"),
            "patients": int(len(np.unique(self.patient_id))),
        }


def export_splits(splits: dict[str, SliceSet], path: Path) -> Path:
    """Writes both splits to one compressed .npz (atomically); returns its path."""
    arrays = {f"{split}/{f.name}": getattr(splits[split], f.name)
              for split in SPLITS for f in dataclasses.fields(SliceSet)}
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def read_export(path: Path) -> dict[str, SliceSet]:
    with np.load(path) as data:
        return {split: SliceSet(**{f.name: data[f"{split}/{f.name}"]
                                   for f in dataclasses.fields(SliceSet)}) for split in SPLITS}


def get_builder(size: str = "64", data_dir: str | Path | None = None,
                brats_dir: str | Path | None = None, version: int | None = None,
                **sim_kwargs):
    """The TFDS builder: real BraTS when ``brats_dir`` is given, else simulated."""
    from jax_translate.data import builders

    check_size(size)
    data_dir = writable_dir(Path(data_dir) if data_dir else default_data_dir(), "data dir")
    if brats_dir is not None:
        builders.patient_folders(Path(brats_dir))  # fails early with a clear message
        return builders.RealBrats(data_dir=str(data_dir), config=size,
                                  file_format="array_record")
    config = builders.simulated_config(size, **sim_kwargs)
    # TFDS refuses a custom config object that shares a name with a listed one.
    listed = {c.name for c in builders.SimulatedBrats.BUILDER_CONFIGS}
    builder = builders.SIMULATED_BUILDERS[simulator_version(version)]
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
    arrays = {
        name: np.stack([np.asarray(r[name]) for r in records])
        for name in ("flair", "t1", "tumor_mask", "brain_mask")
    }
    for name in ("label", "patient_id", "slice_index"):
        arrays[name] = np.asarray([r[name] for r in records], np.int32)
    order = np.lexsort((arrays["slice_index"], arrays["patient_id"]))
    return SliceSet(**{k: v[order] for k, v in arrays.items()})


def load(size: str = "64", data_dir: str | Path | None = None,
         brats_dir: str | Path | None = None, **sim_kwargs) -> dict[str, SliceSet]:
    """Both splits of the dataset: its export if there is one, else built (once) with TFDS."""
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
    return {split: read_split(builder, split) for split in SPLITS}


def folder_for(cfg) -> Path:
    """The folder of a sweep config's dataset: its records, export, ceiling and
    classifier cache (``cfg``: a :class:`~jax_translate.config.SweepConfig`)."""
    return dataset_dir(cfg.size, cfg.data_dir, cfg.brats_dir, **cfg.simulator_kwargs)


def load_for(cfg) -> dict[str, SliceSet]:
    """Both splits of the dataset a sweep config trains and evaluates on (built on first use)."""
    return load(cfg.size, cfg.data_dir, cfg.brats_dir, **cfg.simulator_kwargs)
