"""TFDS builders: real BraTS from tiny NIfTI volumes, and the simulated round trip."""

import functools
import json

import nibabel as nib
import numpy as np
import pytest

from jax_translate.data import dataset, slices
from jax_translate.errors import UsageError


def write_patient(folder, name, shape=(24, 24, 12), tumor=True, value=100.0):
    """A cube 'brain' with a bright-Flair / dark-T1 tumor in some slices."""
    folder.mkdir(parents=True)
    brain = np.zeros(shape, np.float32)
    brain[3:-3, 3:-3, :] = 1
    seg = np.zeros(shape, np.float32)
    if tumor:
        seg[8:14, 8:14, 4:8] = 2
    flair = brain * value + seg * value
    t1 = brain * 2 * value - seg * 0.4 * value
    for kind, vol in (("flair", flair), ("t1", t1), ("seg", seg)):
        nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"{name}_{kind}.nii.gz")


def test_real_brats_builder_on_tiny_nifti(tmp_path):
    brats = tmp_path / "brats"
    for i in range(4):
        write_patient(brats / f"BraTS_{i:03d}", f"BraTS_{i:03d}", tumor=i % 2 == 0)
    (brats / "notes_without_volumes").mkdir()
    splits = dataset.load("64", tmp_path / "tfds", brats_dir=brats)
    train, holdout = splits["train"], splits["holdout"]
    assert len(train) > 0 and len(holdout) > 0
    assert not set(train.patient_id) & set(holdout.patient_id)
    assert set(train.patient_id) | set(holdout.patient_id) == {0, 1, 2, 3}
    both = [train, holdout]
    assert all(s.flair.shape[1:] == (64, 64) and s.flair.dtype == np.float32 for s in both)
    everything = np.concatenate([s.label for s in both])
    assert everything.sum() > 0 and (everything == 0).sum() > 0
    # the stored label follows the slice rule applied to the stored masks
    for s in both:
        for i in range(len(s)):
            assert s.label[i] == slices.tumor_label(s.tumor_mask[i], s.brain_mask[i])
            assert slices.keep_slice(s.brain_mask[i])
    # tumor bright in Flair, dark in T1, relative to the rest of the brain
    s = train if train.label.sum() else holdout
    i = int(np.argmax(s.label))
    tumor, brain = s.tumor_mask[i] > 0, (s.brain_mask[i] > 0) & (s.tumor_mask[i] == 0)
    assert s.flair[i][tumor].mean() > s.flair[i][brain].mean()
    assert s.t1[i][tumor].mean() < s.t1[i][brain].mean()
    assert 0.0 <= s.flair.min() and s.flair.max() <= 1.0


def test_real_brats_hemisphere_geometry(tmp_path):
    brats = tmp_path / "brats"
    for i in range(2):
        write_patient(brats / f"P{i}", f"P{i}")
    splits = dataset.load("256x128", tmp_path / "tfds", brats_dir=brats)
    assert splits["train"].t1.shape[1:] == (256, 128)


def test_brats_folder_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        dataset.get_builder("64", tmp_path / "tfds", brats_dir=tmp_path / "missing")
    (tmp_path / "empty" / "P0").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"no patient folder with \*_flair.nii.gz"):
        dataset.get_builder("64", tmp_path / "tfds", brats_dir=tmp_path / "empty")


def test_unknown_size_and_bad_data_dir(tmp_path):
    with pytest.raises(UsageError, match="unknown image size '65'"):
        dataset.get_builder("65", tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        dataset.get_builder("64", tmp_path / "afile")


def test_simulated_tfds_round_trip(tmp_path, monkeypatch, capfd):
    from jax_translate.data import builders, simulator

    # the 2 train patients are simulated by 2 worker processes, the holdout one here;
    # simulator version 1 (its own builder) is 3x faster than 2, which
    # test_tiny_dataset_is_the_default_simulator checks
    monkeypatch.setattr(builders, "PATIENTS_PER_WORKER", 1)
    kwargs = dict(n_patients=3, n_train_patients=2, seed=5, version=1)
    splits = dataset.load("64", tmp_path, **kwargs)
    # stderr is not a terminal here: TFDS's bars stay out of the log, ours is 2 lines
    err = capfd.readouterr().err
    assert "\r" not in err and "building dataset simulated_brats/" in err and "dataset built in" in err
    assert set(np.unique(splits["train"].patient_id)) == {0, 1}
    assert set(np.unique(splits["holdout"].patient_id)) == {2}
    # what was read back is exactly what the simulator made
    for split, patient in (("holdout", 2), ("train", 1)):
        volume = simulator.simulate_patient(patient, 5, simulator.GEOMETRIES["64"], version=1)
        got = splits[split]
        got = got.take(np.flatnonzero(got.patient_id == patient))
        for i in (0, len(got) // 2, len(got) - 1):
            z = got.slice_index[i]
            np.testing.assert_array_equal(got.flair[i], volume.flair[z])
            np.testing.assert_array_equal(got.t1[i], volume.t1[z])
            np.testing.assert_array_equal(got.tumor_mask[i], volume.tumor[z] > 0)
        kept = [z for z in range(volume.brain.shape[0]) if slices.keep_slice(volume.brain[z])]
        np.testing.assert_array_equal(got.slice_index, kept)
    holdout = splits["holdout"]
    # a second load reuses the cache and gives identical arrays
    again = dataset.load("64", tmp_path, **kwargs)["holdout"]
    np.testing.assert_array_equal(again.flair, holdout.flair)
    # `jax-translate data` prints the dataset's information ceiling and records it
    from jax_translate import cli
    from jax_translate.evaluation import ceiling

    sim_kwargs = {k: v for k, v in kwargs.items() if k != "version"}
    monkeypatch.setattr(dataset, "get_builder",
                        functools.partial(dataset.get_builder, **sim_kwargs))
    capfd.readouterr()
    for recorded in (False, True):
        assert cli.main(["data", "--data-dir", str(tmp_path), "--simulator-version", "1"]) == 0
        out = capfd.readouterr().out
        assert "reusing simulated_brats/64_p3_t2_s5 1.0.0" in out
        line = next(line for line in out.splitlines() if line.startswith("information ceiling"))
        assert "3x3 Flair patch" in line and ("recorded in ceiling.json" in line) == recorded
    record = json.loads((dataset.dataset_dir("64", tmp_path, **kwargs)
                         / ceiling.CEILING_FILE).read_text())
    assert f"r {record['local_map_r']:.3f}" in line and record["flair_r"] < record["local_map_r"]


def test_tiny_dataset_is_the_default_simulator(tiny_data_dir):
    """The shared tiny dataset (5 patients, seed 0) holds simulator version 2's slices."""
    from jax_translate.data import simulator

    splits = dataset.load("64", tiny_data_dir, n_patients=5, n_train_patients=3)
    assert dataset.dataset_dir("64", tiny_data_dir, n_patients=5, n_train_patients=3).name == "2.0.0"
    got = splits["holdout"].take(np.flatnonzero(splits["holdout"].patient_id == 4))
    volume = simulator.simulate_patient(4, 0, simulator.GEOMETRIES["64"])
    for i in (0, len(got) // 2):
        np.testing.assert_array_equal(got.t1[i], volume.t1[got.slice_index[i]])
        np.testing.assert_array_equal(got.flair[i], volume.flair[got.slice_index[i]])
