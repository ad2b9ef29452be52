"""Where each dataset lives: its TFDS name, version and folder, found without TFDS.

The builders (:mod:`builders`, which import TFDS) and the readers
(:mod:`dataset`, which do not need it) both take names and folders from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from jax_translate.errors import UsageError
from jax_translate.images import SIZES

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
    if brats_dir is not None:
        return root / "real_brats" / check_size(size) / BUILDER_VERSION
    name = simulated_config_name(check_size(size), **sim_kwargs)
    return root / "simulated_brats" / name / simulated_version(simulator_version(version))


def simulator_version(version: int | None) -> int:
    """``version``, or the latest if None; refused if the simulator has no such version."""
    from jax_translate.data import simulator  # numpy and scipy only

    version = simulator.LATEST_VERSION if version is None else version
    if version not in simulator.VERSIONS:
        raise UsageError(f"unknown simulator version {version!r}; choose one of "
                         f"{', '.join(map(str, sorted(simulator.VERSIONS)))}")
    return version
