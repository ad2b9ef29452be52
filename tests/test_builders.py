"""TFDS builders: real BraTS from tiny NIfTI volumes, and the simulated round trip."""

import functools
import json

import nibabel as nib
import numpy as np
import pytest

from jax_translate.data import dataset, slices
from jax_translate.errors import UsageError


def write_patient(folder, name, shape=(24, 24, 12), tumor=True, value=100.0,
                  kinds=("flair", "t1", "t2", "t1ce", "seg")):
    """A cube 'brain' with a tumor in some slices: bright in Flair and T2, dark in T1
    and T1ce (BraTS's name for T1c)."""
    folder.mkdir(parents=True)
    brain = np.zeros(shape, np.float32)
    brain[3:-3, 3:-3, :] = 1
    seg = np.zeros(shape, np.float32)
    if tumor:
        seg[8:14, 8:14, 4:8] = 2
    volumes = {"flair": brain * value + seg * value, "t1": brain * 2 * value - seg * 0.4 * value,
               "t2": brain * value + seg * 0.8 * value,
               "t1ce": brain * 1.5 * value - seg * 0.3 * value, "seg": seg}
    for kind in kinds:
        nib.save(nib.Nifti1Image(volumes[kind], np.eye(4)), folder / f"{name}_{kind}.nii.gz")


def test_real_brats_builder_on_tiny_nifti(tmp_path):
    brats = tmp_path / "brats"
    for i in range(4):
        write_patient(brats / f"BraTS_{i:03d}", f"BraTS_{i:03d}", tumor=i % 2 == 0)
    (brats / "notes_without_volumes").mkdir()
    splits = dataset.load("64", tmp_path / "tfds", brats_dir=brats)
    train, holdout, validation = splits["train"], splits["holdout"], splits["validation"]
    assert len(train) > 0 and len(holdout) > 0 and len(validation) > 0
    ids = [set(s.patient_id) for s in (train, holdout, validation)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == {0, 1, 2, 3} and len(ids[2]) == 1
    assert train.modalities == ("flair", "t1", "t2", "t1c")
    both = [train, holdout, validation]
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
    assert s.t2[i][tumor].mean() > s.t2[i][brain].mean()  # *_t2.nii.gz, not another file
    assert s.t1c[i][tumor].mean() < s.t1c[i][brain].mean()  # *_t1ce.nii.gz
    assert 0.0 <= s.flair.min() and s.flair.max() <= 1.0
    # version 1.0.0 (a config's simulator_version 1 or 2) is still built from Flair and T1
    # alone: its train patients are 2.0.0's, its holdout 2.0.0's holdout and validation
    old = dataset.load("64", tmp_path / "tfds", brats_dir=brats, version=2)
    assert set(old) == {"train", "holdout"} and old["train"].t2 is None
    assert set(old["train"].patient_id) == ids[0]
    assert set(old["holdout"].patient_id) == ids[1] | ids[2]
    assert dataset.dataset_dir("64", tmp_path / "tfds", brats, version=2).name == "1.0.0"


def test_real_brats_version_1_needs_only_flair_and_t1(tmp_path):
    brats = tmp_path / "brats"
    for i in range(2):
        write_patient(brats / f"P{i}", f"P{i}", kinds=("flair", "t1", "seg"))
    old = dataset.load("64", tmp_path / "tfds", brats_dir=brats, version=1)
    assert old["train"].modalities == ("flair", "t1")
    with pytest.raises(UsageError, match=r"no patient folder with .*\*_t2.nii.gz"):
        dataset.load("64", tmp_path / "tfds", brats_dir=brats)


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
    assert f"r {record['local_map_r']:.3f}" in line and record["source_r"] < record["local_map_r"]


def test_tiny_dataset_is_the_default_simulator(tiny_data_dir):
    """The shared tiny dataset (5 patients, seed 0) is dataset version 4: simulator
    version 2's slices in four modalities with their tissue shares, and a validation
    patient after the others."""
    from jax_translate.data import simulator

    splits = dataset.load("64", tiny_data_dir, n_patients=5, n_train_patients=3)
    folder = dataset.dataset_dir("64", tiny_data_dir, n_patients=5, n_train_patients=3)
    assert folder.name == "4.0.0"
    assert set(splits["validation"].patient_id) == {5}
    for split, patient in (("holdout", 4), ("validation", 5)):
        got = splits[split].take(np.flatnonzero(splits[split].patient_id == patient))
        volume = simulator.simulate_patient(patient, 0, simulator.GEOMETRIES["64"], version=2)
        for i in (0, len(got) // 2):
            for modality in simulator.MODALITIES:
                np.testing.assert_array_equal(got.image(modality)[i],
                                              getattr(volume, modality)[got.slice_index[i]])
            # the tissue maps are the shares the images were rendered from, in 255ths
            shares = volume.tissue_shares[:, got.slice_index[i]]
            np.testing.assert_allclose(np.moveaxis(got.tissue[i], -1, 0) / 255, shares,
                                       atol=0.5 / 255 + 1e-6)
            brain = got.brain_mask[i] > 0
            healthy = brain & (got.tumor_mask[i] == 0)  # the shares are of healthy tissue
            assert (shares.sum(0)[~brain] < 0.5).all() and shares.sum(0)[healthy].mean() > 0.9


def test_version_4_keeps_version_2s_patients_and_adds_validation_and_tissue_maps(
        tmp_path, monkeypatch, capfd):
    """Built through `jax-translate data --export`: every split, validation's row printed;
    train and holdout bit-identical to 2.0.0's, which still loads (without T2); the
    tissue maps travel in the export, and 3.0.0 (without them) is the same slices."""
    from jax_translate import cli

    kwargs = dict(n_patients=2, n_train_patients=1, seed=3)
    monkeypatch.setattr(dataset, "get_builder", functools.partial(dataset.get_builder, **kwargs))
    assert cli.main(["data", "--data-dir", str(tmp_path), "--export"]) == 0
    out = capfd.readouterr().out
    assert "simulated_brats/64_p2_t1_s3 4.0.0" in out and "train, holdout, validation" in out
    assert out.count("\nvalidation ") == 1 and "modalities: flair, t1, t2, t1c" in out
    export = dataset.dataset_dir("64", tmp_path, **kwargs) / dataset.EXPORT_NAME
    new = dataset.read_export(export)
    assert list(new) == ["train", "holdout", "validation"]
    assert set(new["validation"].patient_id) == {2} and new["validation"].t1c is not None
    assert all(s.has_tissue for s in new.values())
    monkeypatch.undo()
    three = dataset.load("64", tmp_path, version=3, **kwargs)
    assert not three["train"].has_tissue
    for split in new:
        for name in ("flair", "t1", "t2", "t1c", "tumor_mask", "brain_mask", "label"):
            np.testing.assert_array_equal(getattr(new[split], name), getattr(three[split], name))
    with pytest.raises(UsageError, match="this dataset has no tissue maps"):
        three["train"].tissue_share("gm")
    old = dataset.load("64", tmp_path, version=2, **kwargs)
    assert list(old) == ["train", "holdout"] and old["holdout"].modalities == ("flair", "t1")
    for split in old:
        for name in ("flair", "t1", "tumor_mask", "brain_mask", "label", "patient_id",
                     "slice_index"):
            np.testing.assert_array_equal(getattr(new[split], name), getattr(old[split], name))
    with pytest.raises(UsageError, match="this dataset has no t2 images, only flair, t1"):
        old["holdout"].image("t2")
    with pytest.raises(UsageError, match="unknown modality 'pd'"):
        old["holdout"].image("pd")
