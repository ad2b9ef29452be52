"""The gpu preset, the split export read without TFDS, the paper preflight and the study figures."""

import dataclasses
import sys

import numpy as np
import pytest

from jax_translate.config import METHODS, make_config
from jax_translate.data import dataset
from jax_translate.errors import UsageError
from jax_translate.presets import ELEVEN
from jax_translate.reproduce import default_preset


def test_gpu_preset_is_the_whole_study():
    for method in METHODS:
        cfg = make_config(method, "gpu")
        assert cfg.target_tumor_ratios == ELEVEN and cfg.seeds == 3 and len(cfg.members) == 33
        assert cfg.size == "64" and cfg.member_axis == "vmap" and cfg.autotune == "off"
        for cadence in (cfg.steps_per_call, cfg.log_every):
            assert cfg.steps % cadence == 0
    assert default_preset("gpu") == "gpu" and default_preset("tpu") == "gpu"
    assert default_preset("cpu") == "cpu"


def test_dataset_dir_is_the_builders_folder(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    for kwargs in ({}, dict(n_patients=8, n_train_patients=6, seed=1)):
        builder = dataset.get_builder("64", tmp_path, **kwargs)
        assert dataset.dataset_dir("64", tmp_path, **kwargs) == dataset.Path(builder.data_dir)


def _equal(a: dataset.SliceSet, b: dataset.SliceSet):
    for f in dataclasses.fields(dataset.SliceSet):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and np.array_equal(x, y), f.name


def test_export_is_read_without_tfds(tmp_path, tiny_splits, monkeypatch):
    folder = dataset.dataset_dir("64", tmp_path, n_patients=8)
    folder.mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    with pytest.raises(UsageError, match="tensorflow-datasets is not installed"):
        dataset.load("64", tmp_path, n_patients=8)
    dataset.export_splits(tiny_splits, folder / dataset.EXPORT_NAME)
    loaded = dataset.load("64", tmp_path, n_patients=8)
    for split in dataset.SPLITS:
        _equal(loaded[split], tiny_splits[split])
