"""Builds (once) and reads the slice datasets into host arrays.

Everything downstream works on :class:`SliceSet`, a frozen bundle of numpy
arrays in a deterministic order (patient, then slice), whatever order TFDS
stored the records in.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from jax_translate.errors import UsageError
from jax_translate.io_utils import writable_dir

DATA_DIR_ENV = "JAX_TRANSLATE_DATA_DIR"
SPLITS = ("train", "holdout")
# Both splits as plain numpy arrays, in the dataset's TFDS folder: what a machine
# without tensorflow-datasets (e.g. a GPU image) reads (`jax-translate data --export`).
EXPORT_NAME = "splits.npz"
BUILDER_VERSION = "1.0.0"  # builders.RealBrats.VERSION


def simulated_version(simulator_version: int) -> str:
    """The TFDS version of the simulated dataset made by this simulator version
    (builders.SIMULATED_BUILDERS: 2.0.0, the default, and 1.0.0, still buildable)."""
    return f"{simulator_version}.0.0"


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


def default_data_dir() -> Path:
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "jax_translate" / "tensorflow_datasets"


def check_size(size: str) -> str:
    from jax_translate.data.slices import SIZES

    if size not in SIZES:
        raise UsageError(f"unknown image size {size!r}; choose one of {', '.join(SIZES)}")
    return size


def simulated_config_name(size: str = "64", n_patients: int = 50, n_train_patients: int = 30,
                          seed: int = 0) -> str:
    """The TFDS config name of these simulator settings; the defaults are named after the size."""
    default = (n_patients, n_train_patients, seed) == (50, 30, 0)
    return size if default else f"{size}_p{n_patients}_t{n_train_patients}_s{seed}"


def dataset_dir(size: str = "64", data_dir: str | Path | None = None,
                brats_dir: str | Path | None = None, version: int | None = None,
                **sim_kwargs) -> Path:
    """The folder TFDS builds this dataset in (``builder.data_dir``), found without TFDS.

    It also holds the classifier cache and the split export.
    """
    root = (Path(data_dir) if data_dir else default_data_dir()).expanduser().resolve()
    if brats_dir is not None:
        return root / "real_brats" / check_size(size) / BUILDER_VERSION
    name = simulated_config_name(check_size(size), **sim_kwargs)
    return root / "simulated_brats" / name / simulated_version(_simulator_version(version))


def _simulator_version(version: int | None) -> int:
    from jax_translate.data import simulator  # numpy and scipy only

    version = simulator.LATEST_VERSION if version is None else version
    if version not in simulator.VERSIONS:
        raise UsageError(f"unknown simulator version {version!r}; choose one of "
                         f"{', '.join(map(str, sorted(simulator.VERSIONS)))}")
    return version


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
    builder = builders.SIMULATED_BUILDERS[_simulator_version(version)]
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
