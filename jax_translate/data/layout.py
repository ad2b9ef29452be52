"""Where each dataset lives (its TFDS name, version and folder, found without TFDS)
and what each version holds (:data:`DATASETS`).

The builders (:mod:`builders`, which import TFDS) and the readers
(:mod:`dataset`, which do not need it) both take names and folders from here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from jax_translate.errors import UsageError
from jax_translate.images import MODALITIES, SIZES

DATA_DIR_ENV = "JAX_TRANSLATE_DATA_DIR"
SPLITS = ("train", "holdout")  # every dataset's
# Where learning rates, step counts, the quality gate and the classifier's threshold
# are chosen, so that the holdout is read once, for the numbers reported.
VALIDATION = "validation"
# Every split a SliceSet export may hold, in order.
ALL_SPLITS = (*SPLITS, VALIDATION)
# Both splits as plain numpy arrays, in the dataset's TFDS folder: what a machine
# without tensorflow-datasets (e.g. a GPU image) reads (`jax-translate data --export`).
EXPORT_NAME = "splits.npz"


@dataclasses.dataclass(frozen=True)
class DatasetVersion:
    """What a dataset version holds (a config's ``simulator_version`` names one)."""

    simulator: int                 # data/simulator.py VERSIONS: how its patients are rendered
    modalities: tuple[str, ...]    # the images stored per slice
    splits: tuple[str, ...]
    real_brats: str                # the RealBrats builder version of the same layout
    # Each pixel's share of healthy CSF, GM and WM (SliceSet.tissue): what the contrast
    # check reads (evaluation/contrast.py). Simulated data only: BraTS has no such maps.
    tissue: bool = False


# The simulated dataset's TFDS version is f"{version}.0.0". Version 3 renders its
# patients as version 2 does (patients 0-29 train, 30-49 holdout: their Flair and
# T1 bit-identical to 2.0.0's) and keeps the T2 and T1c the simulator always made,
# plus a validation split of further patients (50-59 for 50 patients). Version 4 is
# version 3's slices (every image bit-identical) with each pixel's tissue shares.
DATASETS = {
    1: DatasetVersion(1, ("flair", "t1"), SPLITS, "1.0.0"),
    2: DatasetVersion(2, ("flair", "t1"), SPLITS, "1.0.0"),
    3: DatasetVersion(2, MODALITIES, ALL_SPLITS, "2.0.0"),
    4: DatasetVersion(2, MODALITIES, ALL_SPLITS, "2.0.0", tissue=True),
}
LATEST_VERSION = 4
# Validation patients per train-and-holdout patient (10 for 50); at least one.
VALIDATION_SHARE = 0.2


def validation_patients(n_patients: int) -> int:
    """How many patients a version-3 dataset of ``n_patients`` (train and holdout)
    adds as its validation split; their ids follow the holdout's."""
    return max(1, round(VALIDATION_SHARE * n_patients))


def simulated_version(version: int) -> str:
    """The TFDS version of the simulated dataset of this dataset version
    (builders.SIMULATED_BUILDERS: 4.0.0, the default; 3.0.0, 2.0.0 and 1.0.0, still
    buildable)."""
    return f"{version}.0.0"


def default_data_dir() -> Path:
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "jax_translate" / "tensorflow_datasets"


def check_size(size: str) -> str:
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
    info = DATASETS[dataset_version(version)]
    if brats_dir is not None:
        return root / "real_brats" / check_size(size) / info.real_brats
    name = simulated_config_name(check_size(size), **sim_kwargs)
    return root / "simulated_brats" / name / simulated_version(dataset_version(version))


def dataset_version(version: int | None) -> int:
    """``version``, or the latest if None; refused if there is no such dataset version."""
    version = LATEST_VERSION if version is None else version
    if version not in DATASETS:
        raise UsageError(f"unknown simulator version {version!r} (the dataset's version); "
                         f"choose one of {', '.join(map(str, sorted(DATASETS)))}")
    return version
