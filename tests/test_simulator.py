"""The brain-MRI tumor simulator: determinism, anatomy, contrasts, mass effect."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from jax_translate.data import anatomy, simulator
from jax_translate.data.simulator import (CSF, EDEMA, ENHANCING, GEOMETRIES, GREY_MATTER,
                                          NECROTIC, WHITE_MATTER)

TUMOR_PARTS = (EDEMA, ENHANCING, NECROTIC)


@functools.lru_cache(maxsize=None)
def simulate(patient: int, seed: int = 0, size: str = "64", mass_effect: bool = True,
             version: int = simulator.LATEST_VERSION):
    return simulator.simulate_patient(patient, seed, GEOMETRIES[size], mass_effect=mass_effect,
                                      version=version)


def tissue_means(volume, modality: str) -> dict[int, float]:
    image = getattr(volume, modality)
    return {label: float(image[volume.tissue == label].mean())
            for label in (CSF, GREY_MATTER, WHITE_MATTER) + TUMOR_PARTS}


def test_anatomy_probabilities_partition_the_brain():
    template = anatomy.load_anatomy()
    assert anatomy.load_anatomy() is template  # cached
    assert template.shape == (197, 233, 189)
    for name in ("csf", "gm", "wm", "brain"):
        array = getattr(template, name)
        assert array.dtype == np.float32 and not array.flags.writeable
        assert array.min() >= 0 and array.max() <= 1
    total = template.csf + template.gm + template.wm
    np.testing.assert_allclose(total, template.brain, atol=1e-5)
    # Every tissue is really there: ~1.1-1.9 litres of brain, mostly GM and WM.
    litres = template.brain.sum() / 1e6
    assert 1.1 < litres < 1.9
    assert template.gm.sum() > template.csf.sum() and template.wm.sum() > template.csf.sum()
    # Anti-aliasing blur keeps the partition and spreads the brain a little.
    blurred = anatomy.blurred_anatomy(1.4)
    np.testing.assert_allclose(blurred.csf + blurred.gm + blurred.wm, blurred.brain, atol=1e-5)
    assert blurred.brain.sum() == pytest.approx(template.brain.sum(), rel=1e-3)
    assert np.all(blurred.voxel_box[0][:2] < template.voxel_box[0][:2])  # x, y only
    # Tumor sites: right hemisphere, deep inside the brain.
    sites = anatomy.tumor_sites_mm()
    assert len(sites) > 1000 and np.all(sites[:, 0] >= 15)
    voxels = np.round(template.mm_to_voxel(sites.T.astype(np.float32))).astype(int)
    assert np.all(template.brain[tuple(voxels)] == 1)


def test_same_seed_and_patient_give_identical_volumes():
    first = simulate(3, seed=7)
    again = simulator.simulate_patient(3, 7, GEOMETRIES["64"])
    for name in simulator.MODALITIES + ("tumor", "brain", "tissue"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.tumor_center == again.tumor_center


@pytest.mark.parametrize("other", [dict(patient=3, seed=8), dict(patient=4, seed=7)])
def test_other_seed_or_patient_differs(other):
    first = simulate(3, seed=7)
    second = simulate(other["patient"], seed=other["seed"])
    assert np.abs(first.flair - second.flair).mean() > 0.01
    assert not np.array_equal(first.tumor, second.tumor)
    assert np.linalg.norm(np.subtract(first.tumor_center, second.tumor_center)) > 2


@pytest.mark.parametrize("size", ["64", "128", "256x128"])
def test_shapes_dtypes_ranges_and_masks(size):
    geometry = GEOMETRIES[size]
    volume = simulate(1, size=size)
    n_slices = len(simulator.output_axes_mm(geometry)[0])
    assert 150 <= n_slices <= 190
    shape = (n_slices, geometry.height, geometry.width)
    for name in simulator.MODALITIES:
        image = getattr(volume, name)
        assert image.shape == shape and image.dtype == np.float32
        assert image.min() >= 0 and image.max() <= 1
        assert image.max() > 0.6  # scaled by a global constant, not squashed
        # Skull-stripped: the background is exactly 0 away from the brain.
        assert np.all(image[:, 0, :] == 0) and np.all(image[:, -1, :] == 0)
    for name in ("tumor", "brain", "tissue"):
        array = getattr(volume, name)
        assert array.shape == shape and array.dtype == np.uint8
    assert set(np.unique(volume.tissue)) == set(range(7))  # every label shows up
    np.testing.assert_array_equal(volume.brain, volume.tissue > 0)
    np.testing.assert_array_equal(volume.tumor, volume.tissue >= EDEMA)
    assert np.all(volume.brain[volume.tumor > 0] == 1)  # the tumor stays in the brain
    # The brain fits in the field of view, and in the slab of slices.
    brain_slices = np.flatnonzero(volume.brain.any(axis=(1, 2)))
    assert brain_slices[-1] < n_slices - 1
    assert not volume.brain[:, :, -1].any()
    if geometry.hemisphere:
        # The crop starts at the midline, so the brain is cut there.
        assert volume.brain[:, :, 0].sum() > 20 * geometry.height
    else:
        assert not volume.brain[:, :, 0].any()


def test_patient_is_the_same_in_every_geometry():
    small, crop = simulate(1, size="64"), simulate(1, size="256x128")
    assert small.tumor_center[0] == pytest.approx(crop.tumor_center[0])
    # Same tumor slices (up to the partial volumes of coarser pixels).
    small_slices = small.tumor.any(axis=(1, 2))
    crop_slices = crop.tumor.any(axis=(1, 2))
    assert np.mean(small_slices == crop_slices) > 0.95
    # The crop shows the right hemisphere, where the tumor is.
    row, column = crop.tumor_center[1:]
    assert 0 <= row < 256 and 0 <= column < 128


@pytest.mark.parametrize("patient, version", [(0, 2), (1, 2), (2, 2), (0, 1)])
def test_tissue_contrasts(patient, version):
    volume = simulate(patient, version=version)
    t1, flair = tissue_means(volume, "t1"), tissue_means(volume, "flair")
    t2, t1c = tissue_means(volume, "t2"), tissue_means(volume, "t1c")
    assert t1[WHITE_MATTER] > t1[GREY_MATTER] > t1[CSF]
    for part in TUMOR_PARTS:
        assert t1[part] < t1[GREY_MATTER]
        assert flair[part] > max(flair[GREY_MATTER], flair[WHITE_MATTER])
    assert t1[NECROTIC] < t1[ENHANCING]
    assert flair[CSF] < min(flair[GREY_MATTER], flair[WHITE_MATTER])
    assert flair[GREY_MATTER] > flair[WHITE_MATTER]
    assert t2[CSF] > t2[GREY_MATTER] > t2[WHITE_MATTER]
    assert t2[EDEMA] > t2[GREY_MATTER]
    # Contrast agent lights up the rim only (each modality has its own scale).
    assert t1c[ENHANCING] > t1c[WHITE_MATTER]
    assert t1c[ENHANCING] / t1c[WHITE_MATTER] > 1.5 * t1[ENHANCING] / t1[WHITE_MATTER]
    assert t1c[NECROTIC] / t1c[WHITE_MATTER] < 0.7


@pytest.mark.parametrize("patient", [0, 1, 2, 3])
def test_tumor_is_deep_large_enough_and_nested(patient):
    volume = simulate(patient)
    z, row, column = np.round(volume.tumor_center).astype(int)
    # Centred in the brain, not clipped to a sliver at its edge.
    assert volume.tumor[z, row, column] == 1 and volume.tissue[z, row, column] >= ENHANCING
    tumor_slices = np.flatnonzero(volume.tumor.any(axis=(1, 2)))
    assert 20 <= len(tumor_slices) <= 100
    np.testing.assert_array_equal(tumor_slices, np.arange(tumor_slices[0], tumor_slices[-1] + 1))
    # The core lies inside the whole tumor: its voxels mostly touch tumor only.
    core = volume.tissue >= ENHANCING
    assert core.sum() < volume.tumor.sum()
    assert volume.tumor[1:][core[:-1]].mean() > 0.9


def test_mass_effect_pushes_tissue_away_instead_of_erasing_it():
    for patient in (0, 2):
        pushed, erased = simulate(patient), simulate(patient, mass_effect=False)
        # Tissue from where the tumor grew moved out, so there is more brain.
        core_voxels = int((erased.tissue >= ENHANCING).sum())
        assert pushed.brain.sum() - erased.brain.sum() > 0.1 * core_voxels
        # The push decays with distance: near the tumor the anatomy changes,
        # far away it does not.
        z, row, column = np.indices(pushed.tissue.shape)
        center_z, center_row, center_column = pushed.tumor_center
        pixel = GEOMETRIES["64"].pixel_mm
        distance_mm = np.sqrt((z - center_z) ** 2 + ((row - center_row) * pixel) ** 2
                              + ((column - center_column) * pixel) ** 2)
        changed = pushed.tissue != erased.tissue
        assert changed[distance_mm < 40].mean() > 0.01
        assert changed[distance_mm > 100].mean() < 1e-3
        # Nothing else about the patient moves (noise and bias included), but for
        # the push's far field (~0.1 mm at 100 mm), which moves a crisp tissue
        # boundary across a few sub-pixel samples.
        far = distance_mm > 100
        assert np.mean(np.abs(pushed.flair[far] - erased.flair[far]) > 0.01) < 5e-3
        assert np.mean(np.abs(pushed.flair[far] - erased.flair[far]) > 0.05) < 1e-3


def test_push_is_radial_outward_volume_preserving_and_decays():
    center = np.array([1.0, -2.0, 3.0])
    directions = np.random.default_rng(0).standard_normal((3, 50))
    directions /= np.linalg.norm(directions, axis=0)
    push_radius, reach = 10.0, 1e6  # no taper: an incompressible medium
    radii = np.array([12.0, 20.0, 40.0])
    for radius in radii:
        points = (center[:, None] + radius * directions).astype(np.float32)
        source = simulator._push_from(points, center, push_radius, reach)
        offsets = source - center[:, None]
        source_radius = np.linalg.norm(offsets, axis=0)
        # Tissue at r came from cbrt(r^3 - V), straight towards the centre.
        np.testing.assert_allclose(source_radius, np.cbrt(radius ** 3 - push_radius ** 3), rtol=1e-4)
        np.testing.assert_allclose(offsets / source_radius, directions, atol=1e-4)
    # With a taper, the source radius still grows with r (no folding) and
    # far tissue stays put.
    radius = np.linspace(0.5, 200.0, 400)
    points = (center[:, None] + radius[None, :] * directions[:, :1]).astype(np.float32)
    source_radius = np.linalg.norm(
        simulator._push_from(points, center, push_radius, 40.0) - center[:, None], axis=0)
    assert np.all(np.diff(source_radius) > 0)
    assert np.all(source_radius <= radius + 1e-4)
    np.testing.assert_allclose(source_radius[radius > 150], radius[radius > 150], atol=1e-3)


def test_version_2_anatomy_is_crisp_and_each_patients_own():
    # Sampled per point, every brain point is one pure tissue ...
    rng = np.random.default_rng(0)
    low, high = anatomy.load_anatomy().brain_extent_mm()
    points = rng.uniform(low, high, (20000, 3)).T.astype(np.float32)
    fields = rng.standard_normal((3, points.shape[1])).astype(np.float32)
    crisp = simulator._crisp_tissue(points, fields)
    assert set(np.unique(crisp)) == {0.0, 1.0} and crisp.sum(axis=0).max() == 1.0
    inside = crisp.sum(axis=0) == 1
    assert 0.3 < inside.mean() < 0.9 and crisp[:, inside].mean(axis=1).min() > 0.05
    # ... and another patient's fields change some of the tissues, not most.
    other = simulator._crisp_tissue(points, rng.standard_normal(fields.shape).astype(np.float32))
    changed = np.any(crisp != other, axis=0)[inside].mean()
    assert 0.05 < changed < 0.5
    # Partial volume only at boundaries: without noise and bias, most brain pixels of a
    # 64x64 patient are one tissue's value (v1: the template's average mixture everywhere).
    quiet = dict(NOISE_SIGMA=0.0, BIAS_SD=0.0)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in quiet.items():
            patch.setattr(simulator, name, value)
        crisp_volume = simulator.simulate_patient(0, 0, GEOMETRIES["64"])
        mixed_volume = simulator.simulate_patient(0, 0, GEOMETRIES["64"], version=1)
    assert _pure_share(crisp_volume) > 0.5 and _pure_share(mixed_volume) < 0.1


def _pure_share(volume) -> float:
    """Share of healthy brain pixels whose T1 is their tissue's most common value."""
    pure = []
    for k in (CSF, GREY_MATTER, WHITE_MATTER):
        values = volume.t1[volume.tissue == k]
        levels, counts = np.unique(np.round(values, 4), return_counts=True)
        pure.append(np.abs(values - levels[np.argmax(counts)]) < 1e-4)
    return float(np.concatenate(pure).mean())


def test_version_2_samples_every_pixel_that_holds_brain():
    # Skipping the fine points of pixels far from the brain changes nothing.
    fast = simulate(1)
    every = simulator.simulate_patient(1, 0, GEOMETRIES["64"], _every_pixel=True)
    for name in simulator.MODALITIES:
        np.testing.assert_allclose(getattr(fast, name), getattr(every, name), atol=1e-6)
    for name in ("tumor", "brain", "tissue"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(every, name))


def test_unknown_simulator_version():
    with pytest.raises(ValueError, match="unknown simulator version 3"):
        simulator.simulate_patient(0, 0, GEOMETRIES["64"], version=3)


# Published 3T relaxation times (ms) and proton densities: GM and WM from Wansapura et al.,
# JMRI 9:531 (1999); CSF T1 from Lu et al., MRM 54:1403 (2005); PD as water content.
RELAXATION_3T = {"csf": (4300.0, 2000.0, 1.00), "gm": (1331.0, 110.0, 0.80),
                 "wm": (832.0, 80.0, 0.69)}


def _inversion_recovery(tissue, ti, tr, te):
    t1, t2, pd = RELAXATION_3T[tissue]
    return abs(pd * (1 - 2 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2))


def test_tissue_means_follow_the_signal_equations_of_published_relaxation_times():
    means = lambda m: dict(zip(("csf", "gm", "wm"), simulator.TISSUE_MEANS[m][:3]))  # noqa: E731
    # FLAIR, TR 9000 / TE 120 ms, TI nulling CSF: GM/WM 1.34, CSF ~0.
    tr, te = 9000.0, 120.0
    ti = 4300.0 * np.log(2 / (1 + np.exp(-tr / 4300.0)))
    flair = {k: _inversion_recovery(k, ti, tr, te) for k in RELAXATION_3T}
    ours = means("flair")
    assert ours["gm"] / ours["wm"] == pytest.approx(flair["gm"] / flair["wm"], abs=0.1)
    assert ours["csf"] / ours["wm"] < 0.3  # suppressed (imperfect nulling leaves a little)
    # T1-weighted: between a spin echo (TR 500 / TE 10: GM/WM 0.83, CSF/WM 0.40) and an
    # MPRAGE-like inversion recovery (TI 900 / TR 2300: GM/WM 0.48, CSF/WM 0.14).
    t1, te = means("t1"), 10.0
    spin_echo = {k: RELAXATION_3T[k][2] * (1 - np.exp(-500.0 / RELAXATION_3T[k][0]))
                 * np.exp(-te / RELAXATION_3T[k][1]) for k in RELAXATION_3T}
    mprage = {k: _inversion_recovery(k, 900.0, 2300.0, 3.0) for k in RELAXATION_3T}
    for tissue in ("csf", "gm"):
        low, high = sorted((mprage[tissue] / mprage["wm"], spin_echo[tissue] / spin_echo["wm"]))
        assert low <= t1[tissue] / t1["wm"] <= high, tissue
