"""Tests of jax_translate.evaluation.quality: fidelity in the brain and the gate."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats

from jax_translate.evaluation import metrics, quality

H, W = 48, 40


def brain_mask():
    rows, cols = np.mgrid[0:H, 0:W]
    return ((rows - H / 2) / (0.3 * H)) ** 2 + ((cols - W / 2) / (0.3 * W)) ** 2 <= 1


def target_t1(seed=0):
    """A textured brain on a black background."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:H, 0:W]
    texture = 0.1 * np.sin(rows / 2.5) * np.cos(cols / 3.5) + rng.normal(0, 0.03, (H, W))
    return np.where(brain_mask(), 0.6 + texture, 0.0)


def far_outside_brain():
    """Pixels whose 11 x 11 SSIM window does not reach the brain."""
    return ~ndi.binary_dilation(brain_mask(), np.ones((11, 11), bool))


# ------------------------------------------------------------------ pearson


def test_pearson_ignores_everything_outside_the_brain():
    rng = np.random.default_rng(0)
    y, brain = target_t1(), brain_mask()
    outside = rng.random((H, W))  # garbage where there is no brain
    affine = np.where(brain, 2.5 * y - 0.3, outside)
    negated = np.where(brain, 1 - y, outside)
    r = quality.pearson_in_brain(np.stack([affine, negated, y]), np.stack([y] * 3),
                                 np.stack([brain] * 3))
    np.testing.assert_allclose(r, [1.0, -1.0, 1.0], atol=1e-12)
    # the same garbage counted over the whole image would have mattered
    assert np.corrcoef(affine.ravel(), y.ravel())[0, 1] < 0.9


def test_pearson_matches_scipy_over_brain_pixels():
    rng = np.random.default_rng(1)
    y, brain = target_t1(), brain_mask()
    x = y + rng.normal(0, 0.1, y.shape)
    expected = scipy.stats.pearsonr(x[brain], y[brain])[0]
    assert 0.3 < expected < 0.9  # a case where r is neither ~0 nor ~1
    got = quality.pearson_in_brain(x[None, ..., None], y[None, ..., None], brain[None])
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_pearson_nan_for_tiny_brains_and_constant_targets():
    y = target_t1()
    tiny = np.zeros((H, W), bool)
    tiny.flat[np.random.default_rng(2).choice(H * W, quality.MIN_BRAIN_PIXELS, replace=False)] = 1
    just_too_small = tiny.copy()
    just_too_small.flat[np.flatnonzero(tiny)[0]] = 0
    y_noisy = y + np.random.default_rng(3).random((H, W))  # nonconstant on the scattered pixels
    constant = np.full((H, W), 0.6)
    x = np.stack([y_noisy, y_noisy, y, y, constant])
    target = np.stack([y_noisy, y_noisy, constant, y, y])
    brain = np.stack([tiny, just_too_small, brain_mask(), np.zeros((H, W), bool), brain_mask()])
    r = quality.pearson_in_brain(x, target, brain)
    assert r[0] == pytest.approx(1.0)
    assert np.isnan(r[1:4]).all()  # too little brain, or nothing to judge against
    assert r[4] == 0.0  # a constant translation: no anatomy at all


def test_pearson_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        quality.pearson_in_brain(np.zeros((2, H, W)), np.zeros((2, H, W)), np.ones((1, H, W)))


# --------------------------------------------------------------------- ssim


def test_ssim_in_brain_identical_and_outside_the_brain():
    rng = np.random.default_rng(4)
    y, brain = target_t1(), brain_mask()
    garbage_outside = np.where(far_outside_brain(), rng.random((H, W)), y)
    wrong_inside = np.where(brain, y + rng.normal(0, 0.2, y.shape), y)
    s = quality.ssim_in_brain(np.stack([y, garbage_outside, wrong_inside]), np.stack([y] * 3),
                              np.stack([brain] * 3))
    assert s[:2] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert s[2] < 0.8
    # the whole-image SSIM does see the garbage
    assert metrics.ssim(garbage_outside, y)[0] < 0.9


def test_ssim_in_brain_is_the_ssim_map_averaged_over_the_brain():
    """Against skimage's definition in float64, map averaged over brain pixels."""
    def blur(image):
        return ndi.gaussian_filter(image, sigma=1.5, truncate=3.5, mode="reflect")

    rng = np.random.default_rng(5)
    y, brain = target_t1(), brain_mask()
    x = np.clip(ndi.gaussian_filter(y, 1.0) + rng.normal(0, 0.05, y.shape), 0, 1)
    c1, c2 = 0.01**2, 0.03**2
    ux, uy = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - ux**2, blur(y * y) - uy**2, blur(x * y) - ux * uy
    ssim_map = (2 * ux * uy + c1) * (2 * cov + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    got = quality.ssim_in_brain(x, y, brain)
    assert got[0] == pytest.approx(ssim_map[brain].mean(), abs=1e-4)
    # with no mask, ssim is unchanged: the same map over the interior
    assert metrics.ssim(x, y)[0] == pytest.approx(ssim_map[5:-5, 5:-5].mean(), abs=1e-4)


def test_ssim_in_brain_nan_for_tiny_brains():
    y = target_t1()
    tiny = np.zeros((H, W), bool)
    tiny[20:24, 20:24] = True  # 16 pixels
    assert np.isnan(quality.ssim_in_brain(y, y, tiny)).all()


# --------------------------------------------------------------------- gate

WRONG = quality.WRONG_MAP


@pytest.mark.parametrize("method, structure, error, verdict", [
    ("cyclegan", 0.54, 0.1, WRONG),
    ("cyclegan", quality.STRUCTURE_GATE, quality.CONTRAST_TOLERANCE, "ok"),
    ("l1", 0.92, 0.1, "ok"),
    ("condgan", quality.STRUCTURE_GATE - 0.001, 0.1, WRONG),
    ("condgan", 0.95, quality.CONTRAST_TOLERANCE + 0.001, WRONG),  # right anatomy, wrong contrast
    ("l1", math.nan, 0.1, WRONG),
    ("l1", 0.9, math.nan, WRONG),
    ("gan", 0.1, 2.0, "not_gated"),
    ("gan", 0.99, 0.0, "not_gated"),
])
def test_gate_verdicts(method, structure, error, verdict):
    assert quality.gate(method, structure, error)[0] == verdict


def test_gate_says_which_checks_failed_and_what_it_could_not_check():
    assert quality.gate("cyclegan", 0.26, 1.38) == (
        WRONG, f"structure r 0.26 < {quality.STRUCTURE_GATE:g}; contrast error 1.38 > "
               f"{quality.CONTRAST_TOLERANCE:g}")
    # data without tissue maps (real BraTS): structure r alone decides, and it says so
    assert quality.gate("l1", 0.9, math.nan, contrast_checked=False) == (
        "ok", "contrast unchecked: the data has no tissue maps")
    assert quality.gate("l1", 0.3, math.nan, contrast_checked=False)[0] == WRONG


def test_pearson_of_a_constant_translation_is_zero_not_missing():
    """A translator that paints every brain pixel alike renders no anatomy: r 0, which
    counts in a mean, never a NaN that would silently leave it."""
    y, brain = target_t1(), brain_mask()
    assert quality.pearson_in_brain(np.full((H, W), 0.4), y, brain)[0] == 0.0


def test_structure_r_ignores_texture_and_what_lies_outside_the_mask():
    rng = np.random.default_rng(7)
    y, brain = target_t1(), brain_mask()
    textured = np.where(brain, y + rng.normal(0, 0.15, y.shape), rng.random((H, W)))
    pixel = quality.pearson_in_brain(textured, y, brain)[0]
    structure = quality.structure_r(textured, y, brain, 1.5)[0]
    assert pixel < 0.7 and structure > 0.8
    # blurring within the mask: the background (here garbage) never bleeds in
    blurred = quality.blur_in_mask(np.where(brain, y, 5.0), brain, 2.0)
    assert blurred[0][brain].max() <= y[brain].max() + 1e-9
    assert (blurred[0][~brain] == 0).all()
    assert quality.structure_sigma(128) == 2 * quality.STRUCTURE_SIGMA_64


def test_trimmed_structure_r_forgives_a_small_paint_and_no_wrong_map():
    y, brain = target_t1(), brain_mask()
    rows, cols = np.mgrid[0:H, 0:W]
    painted = np.where((rows - 20) ** 2 + (cols - 20) ** 2 <= 4, 0.0, y)  # a dark spot
    assert painted[brain].size and (painted != y)[brain].mean() < 0.05
    full = quality.structure_r(painted, y, brain, 1.5)[0]
    trimmed = quality.trimmed_structure_r(painted, y, brain, 1.5, 0.10)[0]
    assert trimmed > 0.95 and trimmed > full + 0.05
    # a wrong map (the texture's sign swapped) is everywhere: trimming cannot save it
    swapped = np.where(brain, 1.2 - y, 0.0)
    assert quality.trimmed_structure_r(swapped, y, brain, 1.5, 0.10)[0] < -0.9
    # nothing trimmed: structure r itself
    assert quality.trimmed_structure_r(painted, y, brain, 1.5, 0.0)[0] == pytest.approx(full)


def test_count_passing_reads_todays_gate_off_stored_numbers():
    rows = [{"structure_r": 0.9, "contrast_error": 0.1, "quality": "wrong_map"},
            {"structure_r": 0.5, "contrast_error": 0.1, "quality": "ok"},
            {"structure_r": 0.9, "contrast_error": 0.9},
            {"structure_r": float("nan"), "contrast_error": 0.1}]
    assert quality.count_passing("cyclegan", rows) == 1  # the stored verdicts do not count
    assert quality.count_passing("gan", rows) == 0  # not gated is not passing


def test_gate_warning_line():
    line = quality.gate_warning("cyclegan", "ratio=0.5/seed=0", "structure r 0.26 < 0.57")
    assert line == ("warning: cyclegan ratio=0.5/seed=0 fails the quality gate (structure r "
                    "0.26 < 0.57): it does not render the target's map; its flips are not "
                    "the paper's effect")


# ------------------------------------------------------- in results and figures


def _member_rows(method, translations, members, tissue=False):
    from types import SimpleNamespace

    from conftest import tiny_slices
    from jax_translate.config import Member
    from jax_translate.evaluation import scoring

    test = tiny_slices(n_patients=2, seed=1)
    translated = np.stack([getattr(test, name) for name in translations])
    cfg = SimpleNamespace(method=method, members=[Member(*m) for m in members], target="t1")
    return scoring.score(cfg, translated, test, judge=_Nobody()), test


class _Nobody:
    """A judge that calls nothing tumor."""

    def predict(self, images, brain_mask=None):
        return np.zeros(len(images), bool)


def test_results_rows_carry_fidelity_and_the_members_verdict():
    from jax_translate.evaluation import results, scoring

    rows, test = _member_rows("cyclegan", ["t1", "flair"], [(0.0, 0), (1.0, 0)])
    assert set(results.COLUMNS) <= set(rows[0])
    faithful, flair = rows[:2], rows[2:]
    assert [r["source_label"] for r in rows] == ["healthy", "tumor"] * 2
    for row in faithful:
        assert row["fidelity_r"] == pytest.approx(1.0)
        assert row["structure_r"] == pytest.approx(1.0)
        assert row["fidelity_ssim"] == pytest.approx(1.0, abs=1e-5)
        assert row["quality"] == "ok" and row["n_unscored"] == 0
        # tiny slices have no tissue maps: the contrast is unchecked, and the row says so
        assert math.isnan(row["contrast_error"])
        assert row["gate_reason"] == "contrast unchecked: the data has no tissue maps"
    healthy = test.label == 0
    expected = np.nanmean(quality.pearson_in_brain(
        test.flair[healthy], test.t1[healthy], test.brain_mask[healthy]))
    assert flair[0]["fidelity_r"] == pytest.approx(expected) and expected < 0
    assert flair[0]["left_out"] == 0.0  # healthy rows: the whole brain
    # tumor rows, for reference: outside the real lesion and its margin, its share shown
    tumor = ~healthy
    outside, left_out = scoring.scored_region(test, "tumor")
    assert flair[1]["fidelity_r"] == pytest.approx(np.nanmean(quality.pearson_in_brain(
        test.flair[tumor], test.t1[tumor], outside[tumor])))
    assert flair[1]["left_out"] == pytest.approx(left_out[tumor].mean()) and 0 < left_out[
        tumor].mean() < quality.MAX_LEFT_OUT
    assert [r["quality"] for r in flair] == [WRONG] * 2

    gan_rows, _ = _member_rows("gan", ["flair"], [(0.5, 0)])
    assert [r["quality"] for r in gan_rows] == ["not_gated"] * 2


def test_an_image_that_would_lose_most_of_its_brain_is_counted_not_averaged():
    """Issue 37: an image left with too little brain silently dropped out of the mean.
    Now a tumor source whose lesion and margin cover more than MAX_LEFT_OUT of the
    brain has no r, and the row counts it."""
    from types import SimpleNamespace

    from conftest import tiny_slices
    from jax_translate.config import Member
    from jax_translate.evaluation import scoring

    test = tiny_slices(n_patients=2, seed=1)
    tumor_mask = test.tumor_mask.copy()
    big = np.flatnonzero(test.label == 1)[0]
    tumor_mask[big] = test.brain_mask[big]  # the whole brain is lesion
    test = test.take(np.arange(len(test)))
    import dataclasses
    test = dataclasses.replace(test, tumor_mask=tumor_mask)
    cfg = SimpleNamespace(method="l1", members=[Member(0.5, 0)], target="t1")
    rows = scoring.score(cfg, test.t1[None], test)
    assert rows[1]["n_unscored"] == 1 and rows[0]["n_unscored"] == 0
    assert rows[1]["fidelity_r"] == pytest.approx(1.0)


def test_one_warning_line_per_member_that_fails_the_gate(capsys):
    rows, _ = _member_rows("cyclegan", ["t1", "flair", "flair"], [(0.0, 0), (0.5, 0), (1.0, 0)])
    rows[4]["status"] = rows[5]["status"] = "diverged"  # its status already says ignore it
    quality.print_gate_warnings(rows)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("warning: cyclegan ratio=0.5/seed=0 fails the quality gate "
                             "(structure r -")
    # a gridded member's line names it as config.Member.name does, knobs included
    from jax_translate.config import Member

    rows[2]["r1_weight"] = 10.0
    name = Member(0.5, 0, (("r1_weight", 10.0),)).name
    assert quality.gate_warnings(rows)[0].startswith(f"warning: cyclegan {name} fails")


def test_flip_table_and_aggregate_show_the_gate():
    from jax_translate.evaluation import results

    rows, _ = _member_rows("cyclegan", ["t1", "flair", "t1", "t1"],
                           [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)])
    lines = results.flip_table(rows).splitlines()
    assert lines[0].split()[-5:] == ["struct", "r", "GM/WM", "(real)", "gate"]
    zero, one = lines[1], lines[2]
    assert zero.endswith("wrong_map 1/2") and one.endswith("ok")
    # the pixel and structure r shown are the means over seeds of the healthy rows'
    healthy = [r for r in rows[:4] if r["source_label"] == "healthy"]
    r_mean = np.mean([r["fidelity_r"] for r in healthy])
    s_mean = np.mean([r["structure_r"] for r in healthy])
    assert f"{r_mean:.2f}  {s_mean:>8.2f}" in zero

    out = metrics.aggregate_over_seeds(rows)
    assert [(a["target_tumor_ratio"], a["source_label"], a["n_wrong_map"]) for a in out] == [
        (0.0, "healthy", 1), (0.0, "tumor", 1), (1.0, "healthy", 0), (1.0, "tumor", 0)]
    assert out[0]["fidelity_r_mean"] == pytest.approx(r_mean)
    assert out[2]["fidelity_ssim_mean"] == pytest.approx(1.0, abs=1e-5)
    assert all(a["n_diverged"] == 0 for a in out)


def _curve_rows(verdicts):
    return [dict(method=method, target_tumor_ratio=ratio, seed=0, source_label=label,
                 status="ok", frac_pred_tumor=0.5, ci_low=0.4, ci_high=0.6, quality=verdict)
            for method, by_ratio in verdicts.items() for ratio, verdict in by_ratio.items()
            for label in ("healthy", "tumor")]


def test_bias_curves_mark_members_that_fail_the_gate():
    from jax_translate.evaluation import figures

    fig = figures.bias_curve_figure(_curve_rows({
        "cyclegan": {0.0: "ok", 0.5: WRONG, 1.0: "ok"},
        "gan": {0.0: "not_gated", 0.5: "not_gated", 1.0: "not_gated"}}))
    cyclegan, gan = fig.axes
    hollow = [line for line in cyclegan.lines if line.get_markerfacecolor() == "none"]
    assert [list(line.get_xdata()) for line in hollow] == [[50.0], [50.0]]  # both sources
    filled = [line for line in cyclegan.lines
              if line.get_marker() == "o" and line.get_markerfacecolor() != "none"]
    assert [list(line.get_xdata()) for line in filled] == [[0.0, 100.0]] * 2
    assert not [line for line in gan.lines if line.get_markerfacecolor() == "none"]
    legend = [t.get_text() for t in cyclegan.get_legend().get_texts()]
    assert figures.WRONG_MAP_LABEL in legend
    figures._pyplot().close(fig)

    fig = figures.bias_curve_figure(_curve_rows({"l1": {0.0: "ok", 1.0: "ok"}}))
    assert not [line for line in fig.axes[0].lines if line.get_markerfacecolor() == "none"]
    assert figures.WRONG_MAP_LABEL not in [t.get_text()
                                           for t in fig.axes[0].get_legend().get_texts()]
    figures._pyplot().close(fig)


# ------------------------------------------------ StegoGAN's pFPR and iFPR


def test_ifpr_threshold_scales_stegogan_50_pixels_to_the_image_area():
    from jax_translate.evaluation import hallucination

    # 50 pixels at 256x256; the segmenter counts whole 2x2 cells, so ">= 50" is ">= 52"
    assert hallucination.ifpr_min_pixels(256, 256) == 52
    assert hallucination.ifpr_min_pixels(256, 128) == 28   # 25 pixels -> 7 cells
    assert hallucination.ifpr_min_pixels(64, 64) == 4      # 3.1 pixels -> one cell


def test_false_positive_rates_by_hand():
    from jax_translate.evaluation import hallucination

    fp = np.array([0, 4, 8, 100])
    brain = np.array([1000, 1000, 1000, 1000])
    pfpr, ifpr = hallucination.false_positive_rates(fp, brain, (64, 64))
    assert pfpr == pytest.approx(112 / 4000)
    assert ifpr == pytest.approx(3 / 4)        # 4, 8 and 100 are >= 4 pixels
    pfpr, ifpr = hallucination.false_positive_rates(fp, brain, (256, 256))
    assert ifpr == pytest.approx(1 / 4)        # only 100 is >= 52 pixels
    assert all(np.isnan(hallucination.false_positive_rates([], [], (64, 64))))
    with pytest.raises(ValueError, match="shapes differ"):
        hallucination.false_positive_rates([1, 2], [3], (64, 64))


def test_bias_curve_draws_seeds_that_all_flip():
    # Every translation of both seeds called tumor: the interval's top must reach the
    # mean (a rounding gap once made matplotlib refuse the error bars).
    from jax_translate.evaluation import figures

    rows = [{"method": "condgan", "target_tumor_ratio": r, "seed": s, "source_label": label,
             "status": "ok", "n_images": 175, "n_pred_tumor": 175, "frac_pred_tumor": 1.0,
             "verdicts": metrics.encode_verdicts(np.ones(175, bool)),
             "ci_low": 0.98, "ci_high": 1.0, "quality": WRONG}
            for r in (0.0, 1.0) for s in (0, 1) for label in ("healthy", "tumor")]
    panel, = figures.bias_curve_figure(rows).axes
    line, = [ln for ln in panel.lines if ln.get_label() == figures.LABEL_STYLE["healthy"][0]]
    np.testing.assert_allclose(line.get_ydata(), [1.0, 1.0])


def test_outside_lesions_leaves_out_every_lesion_and_its_margin():
    brain = np.ones((2, 12, 12), np.uint8)
    real = np.zeros((2, 12, 12), bool)
    real[0, 5, 5] = True
    segmented = np.zeros((2, 12, 12), bool)
    segmented[1, 2:4, 2:4] = True
    kept = quality.outside_lesions(brain, [real, segmented], margin=2)
    # a 4-connected margin of 2 pixels: the lesion pixel and its 12 neighbours within it
    assert (~kept[0]).sum() == 13 and not kept[0, 5, 5] and not kept[0, 5, 7]
    assert kept[0, 6, 7] and kept[0, 0, 0]
    assert not kept[1, 2:4, 2:4].any() and not kept[1, 1, 1] and kept[1, 6, 6]
    assert quality.outside_lesions(brain, [], margin=2).all()
