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


def test_pearson_nan_for_tiny_brains_and_constant_images():
    y = target_t1()
    tiny = np.zeros((H, W), bool)
    tiny.flat[np.random.default_rng(2).choice(H * W, quality.MIN_BRAIN_PIXELS, replace=False)] = 1
    just_too_small = tiny.copy()
    just_too_small.flat[np.flatnonzero(tiny)[0]] = 0
    y_noisy = y + np.random.default_rng(3).random((H, W))  # nonconstant on the scattered pixels
    constant = np.full((H, W), 0.6)
    x = np.stack([y_noisy, y_noisy, constant, y, y])
    target = np.stack([y_noisy, y_noisy, y, constant, y])
    brain = np.stack([tiny, just_too_small, brain_mask(), brain_mask(), np.zeros((H, W), bool)])
    r = quality.pearson_in_brain(x, target, brain)
    assert r[0] == pytest.approx(1.0)
    assert np.isnan(r[1:]).all()


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

UNDER = quality.UNDERTRAINED


@pytest.mark.parametrize("method, r, verdict", [
    ("cyclegan", 0.54, "undertrained"),
    ("cyclegan", quality.FIDELITY_GATE, "ok"),
    ("l1", 0.92, "ok"),
    ("condgan", quality.FIDELITY_GATE - 0.001, "undertrained"),
    ("l1", 0.42, "undertrained"),  # far below the gate
    ("l1", math.nan, "undertrained"),
    ("gan", 0.1, "not_gated"),
    ("gan", 0.99, "not_gated"),
])
def test_quality_verdict(method, r, verdict):
    assert quality.quality_verdict(method, r) == verdict


def test_gate_fails_no_translation_and_passes_a_translators_error():
    """On the simulator's own healthy slices (the default version): Flair used as T1,
    no translation at all, fails the gate by a wide margin; the real T1 with a
    translator's pixel error (noise of sd 0.02, the paper's CycleGAN MAE is
    0.012-0.025) passes it, and so does a slight blur (sigma 1 pixel). A blur that
    wipes out structure (sigma 2) fails it."""
    from jax_translate.data import simulator

    volume = simulator.simulate_patient(0, 0, simulator.GEOMETRIES["64"])
    area = volume.brain.reshape(len(volume.brain), -1).sum(1)
    healthy = (volume.tumor.reshape(len(volume.tumor), -1).sum(1) == 0) & (area > 200)
    t1, brain = volume.t1[healthy], volume.brain[healthy]
    assert healthy.sum() > 20

    def verdict(translated):
        return quality.quality_verdict("l1", np.nanmean(
            quality.pearson_in_brain(translated, t1, brain)))

    flair_r = np.nanmean(quality.pearson_in_brain(volume.flair[healthy], t1, brain))
    assert flair_r < quality.FIDELITY_GATE - 0.2 and verdict(volume.flair[healthy]) == UNDER
    noisy = t1 + np.random.default_rng(0).normal(0, 0.02, t1.shape)
    assert verdict(noisy) == "ok"
    assert verdict(ndi.gaussian_filter(t1, (0, 1, 1))) == "ok"
    assert verdict(ndi.gaussian_filter(t1, (0, 2, 2))) == UNDER


def test_undertrained_warning_line():
    line = quality.undertrained_warning("cyclegan", 0.5, 0, 0.5412)
    assert line == ("warning: cyclegan ratio=0.5/seed=0 is undertrained: fidelity r 0.54 < 0.8; "
                    "its flips are not the paper's effect")


# ------------------------------------------------------- in results and figures


def _member_rows(method, translations, members):
    from types import SimpleNamespace

    from conftest import tiny_slices
    from jax_translate.evaluation import results

    test = tiny_slices(n_patients=2, seed=1)
    translated = np.stack([getattr(test, name) for name in translations])
    from jax_translate.config import Member

    cfg = SimpleNamespace(method=method, members=[Member(*m) for m in members], target="t1")
    rows = results.member_rows(cfg, translated, np.zeros(translated.shape[:2], bool), test,
                                np.zeros(len(members), bool))
    return rows, test


def test_results_rows_carry_fidelity_and_the_members_verdict():
    from jax_translate.evaluation import results

    rows, test = _member_rows("cyclegan", ["t1", "flair"], [(0.0, 0), (1.0, 0)])
    assert set(results.COLUMNS) <= set(rows[0])
    faithful, flair = rows[:2], rows[2:]
    assert [r["source_label"] for r in rows] == ["healthy", "tumor"] * 2
    for row in faithful:
        assert row["fidelity_r"] == pytest.approx(1.0)
        assert row["fidelity_ssim"] == pytest.approx(1.0, abs=1e-5)
        assert row["quality"] == "ok"
    healthy = test.label == 0
    expected = np.nanmean(quality.pearson_in_brain(
        test.flair[healthy], test.t1[healthy], test.brain_mask[healthy]))
    assert flair[0]["fidelity_r"] == pytest.approx(expected) and expected < 0
    # tumor rows: over the tumor sources, for reference; the verdict is the member's.
    # The gate's r leaves the real lesions (and a margin) out; fidelity_r_brain does not.
    tumor = ~healthy
    assert flair[1]["fidelity_r_brain"] == pytest.approx(np.nanmean(quality.pearson_in_brain(
        test.flair[tumor], test.t1[tumor], test.brain_mask[tumor])))
    outside = quality.outside_lesions(test.brain_mask[tumor], [test.tumor_mask[tumor]])
    assert flair[1]["fidelity_r"] == pytest.approx(np.nanmean(quality.pearson_in_brain(
        test.flair[tumor], test.t1[tumor], outside)))
    assert flair[1]["fidelity_r"] != pytest.approx(flair[1]["fidelity_r_brain"])
    assert [r["quality"] for r in flair] == ["undertrained"] * 2

    gan_rows, _ = _member_rows("gan", ["flair"], [(0.5, 0)])
    assert [r["quality"] for r in gan_rows] == ["not_gated"] * 2


def test_one_warning_line_per_undertrained_member(capsys):
    rows, _ = _member_rows("cyclegan", ["t1", "flair", "flair"], [(0.0, 0), (0.5, 0), (1.0, 0)])
    rows[4]["status"] = rows[5]["status"] = "diverged"  # its status already says ignore it
    quality.print_undertrained(rows)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("warning: cyclegan ratio=0.5/seed=0 is undertrained: fidelity r -")
    assert err[0].endswith("< 0.8; its flips are not the paper's effect")
    # a gridded member's line names it as config.Member.name does, knobs included
    from jax_translate.config import Member

    rows[2]["r1_weight"] = 10.0
    name = Member(0.5, 0, (("r1_weight", 10.0),)).name
    assert quality.undertrained_warnings(rows)[0].startswith(
        f"warning: cyclegan {name} is undertrained")


def test_flip_table_and_aggregate_show_quality():
    from jax_translate.evaluation import results

    rows, _ = _member_rows("cyclegan", ["t1", "flair", "t1", "t1"],
                           [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)])
    lines = results.flip_table(rows).splitlines()
    assert lines[0].endswith("fidelity r, quality")
    zero, one = lines[1], lines[2]
    assert zero.endswith("undertrained 1/2") and one.endswith("1.00 ok")
    # the fidelity shown is the mean over seeds of the healthy rows' r
    r_mean = np.mean([r["fidelity_r"] for r in rows[:4] if r["source_label"] == "healthy"])
    assert f"{r_mean:.2f} undertrained 1/2" in zero

    out = metrics.aggregate_over_seeds(rows)
    assert [(a["target_tumor_ratio"], a["source_label"], a["n_undertrained"]) for a in out] == [
        (0.0, "healthy", 1), (0.0, "tumor", 1), (1.0, "healthy", 0), (1.0, "tumor", 0)]
    assert out[0]["fidelity_r_mean"] == pytest.approx(r_mean)
    assert out[2]["fidelity_ssim_mean"] == pytest.approx(1.0, abs=1e-5)
    assert all(a["n_diverged"] == 0 for a in out)


def _curve_rows(verdicts):
    return [dict(method=method, target_tumor_ratio=ratio, seed=0, source_label=label,
                 status="ok", frac_pred_tumor=0.5, ci_low=0.4, ci_high=0.6, quality=verdict)
            for method, by_ratio in verdicts.items() for ratio, verdict in by_ratio.items()
            for label in ("healthy", "tumor")]


def test_bias_curves_mark_undertrained_members():
    from jax_translate.evaluation import figures

    fig = figures.bias_curve_figure(_curve_rows({
        "cyclegan": {0.0: "ok", 0.5: "undertrained", 1.0: "ok"},
        "gan": {0.0: "not_gated", 0.5: "not_gated", 1.0: "not_gated"}}))
    cyclegan, gan = fig.axes
    hollow = [line for line in cyclegan.lines if line.get_markerfacecolor() == "none"]
    assert [list(line.get_xdata()) for line in hollow] == [[50.0], [50.0]]  # both sources
    filled = [line for line in cyclegan.lines
              if line.get_marker() == "o" and line.get_markerfacecolor() != "none"]
    assert [list(line.get_xdata()) for line in filled] == [[0.0, 100.0]] * 2
    assert not [line for line in gan.lines if line.get_markerfacecolor() == "none"]
    legend = [t.get_text() for t in cyclegan.get_legend().get_texts()]
    assert "undertrained (fidelity r < 0.8)" in legend
    figures._pyplot().close(fig)

    fig = figures.bias_curve_figure(_curve_rows({"l1": {0.0: "ok", 1.0: "ok"}}))
    assert not [line for line in fig.axes[0].lines if line.get_markerfacecolor() == "none"]
    assert not any("undertrained" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
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
    # Every translation of both seeds called tumor: the pooled Wilson interval's top
    # must reach the mean (a rounding gap once made matplotlib refuse the error bars).
    from jax_translate.evaluation import figures

    rows = [{"method": "condgan", "target_tumor_ratio": r, "seed": s, "source_label": label,
             "status": "ok", "n_images": 175, "n_pred_tumor": 175, "frac_pred_tumor": 1.0,
             "ci_low": 0.98, "ci_high": 1.0, "quality": "undertrained"}
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


def test_a_pasted_lesion_does_not_fail_its_own_gate():
    """A translator that copies the target and pastes a lesion into every healthy
    source (the paper's effect at its purest) keeps r 1 outside what the segmenter
    finds; over the whole brain the lesion costs it the gate."""
    from types import SimpleNamespace

    from conftest import tiny_slices
    from jax_translate.config import Member
    from jax_translate.evaluation import results

    test = tiny_slices(n_patients=2, seed=1)
    pasted = test.t1.copy()
    lesion = np.zeros(test.t1.shape, bool)
    lesion[:, 5:11, 5:11] = test.brain_mask[:, 5:11, 5:11] > 0
    pasted[lesion] = 0.0  # a dark T1 lesion, large against a 16x16 brain
    cfg = SimpleNamespace(method="cyclegan", members=[Member(1.0, 0)], target="t1")
    pred = np.ones((1, len(test)), bool)
    args = (cfg, pasted[None], pred, test, np.zeros(1, bool), None)
    seen = results.member_rows(*args, lesion_masks=lesion[None])
    blind = results.member_rows(*args)
    healthy_seen, healthy_blind = seen[0], blind[0]
    assert healthy_seen["source_label"] == "healthy"
    assert healthy_seen["fidelity_r"] == pytest.approx(1.0)
    assert healthy_seen["quality"] == "ok"
    assert healthy_blind["fidelity_r"] < quality.FIDELITY_GATE
    assert healthy_blind["quality"] == "undertrained"
    assert healthy_seen["fidelity_r_brain"] == pytest.approx(healthy_blind["fidelity_r"])


def test_tumor_masks_are_the_pixels_whose_area_the_rule_reads():
    import jax

    from jax_translate.evaluation import classifier
    from jax_translate.models.segmenter import TumorSegmenter

    images = np.random.default_rng(0).uniform(0, 1, (5, 16, 16)).astype(np.float32)
    params = TumorSegmenter(8).init(jax.random.PRNGKey(3), images[:1, ..., None])["params"]
    masks = classifier.tumor_masks(params, images, 0.0, width=8)
    areas = classifier.tumor_areas(params, images, 0.0, width=8)[:, 0]
    assert masks.shape == images.shape and masks.dtype == bool
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), areas)
    assert 0 < masks.sum() < masks.size  # random weights: some pixels, not all
