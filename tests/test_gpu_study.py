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


def test_paper_preflight_refuses_before_writing(tmp_path):
    from jax_translate.config import Experiment
    from jax_translate.reproduce import reproduce

    lines = []
    experiment = Experiment("tiny", ("l1",), {"preflight": True})
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=r"l1's step needs .* GiB, more than 90% of this device"):
        reproduce(experiment, out, data_dir=str(tmp_path / "data"), log=lines.append,
                  memory_limit=1000)
    assert not out.exists() and not (tmp_path / "data").exists()
    assert lines[0].startswith("preflight: 1 sweeps, about ")
    assert "need" in lines[1] and "of a 0.0 GiB pool" in lines[1]


def test_preflight_eta_and_fit():
    from jax_translate import preflight
    from jax_translate.flops import member_step_flops

    cfg = make_config("l1", "tiny", steps=10)
    report = preflight.check([cfg], log=lambda line: None, memory_limit=2**40, flops_per_s=1e9)
    assert report["memory_bytes"]["l1"] > 0
    flops = member_step_flops(cfg, (64, 64))
    assert report["projected_training_seconds"] == pytest.approx(10 * 2 * flops / 1e9)
    paper = [make_config(m, "paper") for m in METHODS]
    hours = preflight.projected_seconds(paper) / 3600
    assert 50 < hours < 200  # 4 x 11 x 140k steps of ~3.7 TFLOP (cyclegan) at 50 TFLOP/s
