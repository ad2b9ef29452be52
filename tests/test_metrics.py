"""Tests of jax_translate.evaluation.metrics against hand-made answers."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.optimize
import scipy.special
import scipy.stats

from jax_translate.evaluation import metrics

H, W = 128, 96


# ------------------------------------------------------------------ fixtures


def _grid():
    return np.mgrid[0:H, 0:W].astype(np.float64)


def brain_mask():
    rows, cols = _grid()
    return ((rows - H / 2) / (0.42 * H)) ** 2 + ((cols - W / 2) / (0.42 * W)) ** 2 <= 1


def disc(center=(70, 40), radius=9):
    rows, cols = _grid()
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def healthy_slice():
    """Ellipse 'brain' of 0.7 with a fine texture of amplitude 0.05.

    Texture on the lesion's scale would itself read as lesion contrast (0.027
    here with periods of ~30 pixels): the preservation score's noise floor.
    """
    rows, cols = _grid()
    texture = 0.05 * np.sin(rows / 2.0) * np.cos(cols / 3.0)
    return np.where(brain_mask(), 0.7 + texture, 0.0)


def with_lesion(image, value, mask=None):
    mask = disc() if mask is None else mask
    return np.where(mask, value, image)


# --------------------------------------------------------------- flip counts


def test_flip_counts_hand_made():
    label = [0, 0, 0, 0, 1, 1, 1]
    pred = [1, 0, 0, 1, 1, 0, 1]
    out = metrics.flip_counts(np.array(pred), np.array(label))
    assert out["healthy"] == {"n_images": 4, "n_pred_tumor": 2, "frac_pred_tumor": 0.5}
    assert out["tumor"]["n_images"] == 3 and out["tumor"]["n_pred_tumor"] == 2
    assert out["tumor"]["frac_pred_tumor"] == pytest.approx(2 / 3)
    assert out["added"] == {"count": 2, "n": 4, "rate": 0.5}
    assert out["removed"]["count"] == 1 and out["removed"]["n"] == 3
    assert out["removed"]["rate"] == pytest.approx(1 / 3)


def test_flip_counts_empty_class_and_booleans():
    out = metrics.flip_counts(np.array([True, False]), np.array([True, True]))
    assert out["healthy"]["n_images"] == 0 and math.isnan(out["healthy"]["frac_pred_tumor"])
    assert math.isnan(out["added"]["rate"]) and out["added"]["count"] == 0
    assert out["removed"] == {"count": 1, "n": 2, "rate": 0.5}


def test_flip_counts_rejects_probabilities():
    with pytest.raises(ValueError, match="must hold only 0/1"):
        metrics.flip_counts(np.array([0.3, 0.9]), np.array([0, 1]))


# ------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    "k, n, expected",
    [(0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0))],
)
def test_wilson_known_values(k, n, expected):
    assert metrics.wilson_interval(k, n) == pytest.approx(expected, abs=1e-4)


def _score_test_bounds(k, n, confidence):
    """Wilson bounds by definition: the p where the score statistic hits z."""
    z = scipy.stats.norm.ppf(0.5 + confidence / 2)
    p_hat = k / n

    def excess(p):
        return abs(p_hat - p) / math.sqrt(p * (1 - p) / n) - z

    eps = 1e-12
    low = 0.0 if k == 0 else scipy.optimize.brentq(excess, eps, p_hat)
    high = 1.0 if k == n else scipy.optimize.brentq(excess, p_hat, 1 - eps)
    return low, high


@pytest.mark.parametrize("k, n", [(1, 7), (13, 40), (175, 350), (99, 100)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_inverts_the_score_test(k, n, confidence):
    got = metrics.wilson_interval(k, n, confidence)
    assert got == pytest.approx(_score_test_bounds(k, n, confidence), abs=1e-9)


def test_wilson_is_scipys_and_counts_whole_images():
    for k, n in ((0, 175), (17, 175), (158, 175), (175, 175), (3, 7)):
        ci = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert metrics.wilson_interval(k, n) == (ci.low, ci.high)
    with pytest.raises(ValueError, match="whole numbers"):
        metrics.wilson_interval(87.5, 175)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        metrics.wilson_interval(11, 10)


def test_wilson_vectorised_and_empty():
    low, high = metrics.wilson_interval(np.array([0, 5, 0]), np.array([10, 10, 0]))
    np.testing.assert_allclose(low[:2], [0.0, 0.2366], atol=1e-4)
    np.testing.assert_allclose(high[:2], [0.2775, 0.7634], atol=1e-4)
    assert np.isnan(low[2]) and np.isnan(high[2])
    assert all(math.isnan(v) for v in metrics.wilson_interval(0, 0))


# ------------------------------------------------------------- pixel metrics


def test_mae_and_psnr_known_values():
    x = np.zeros((2, 16, 16))
    y = np.stack([np.full((16, 16), 0.1), np.zeros((16, 16))])
    np.testing.assert_allclose(metrics.mae(x, y), [0.1, 0.0])
    got = metrics.psnr(x, y)
    assert got[0] == pytest.approx(20.0) and got[1] == np.inf
    # Only half the pixels off by 0.2: MSE 0.02.
    y_half = np.zeros((1, 16, 16))
    y_half[:, :8] = 0.2
    assert metrics.psnr(x[:1], y_half)[0] == pytest.approx(10 * math.log10(1 / 0.02))
    assert metrics.mae(x[:1, ..., None], y_half[..., None])[0] == pytest.approx(0.1)


def _ssim_reference(x, y):
    """skimage's definition, one image at a time in float64."""
    def blur(image):
        return ndi.gaussian_filter(image, sigma=1.5, truncate=3.5, mode="reflect")

    c1, c2 = 0.01**2, 0.03**2
    out = []
    for a, b in zip(x.astype(np.float64), y.astype(np.float64)):
        ua, ub = blur(a), blur(b)
        va, vb, cov = blur(a * a) - ua**2, blur(b * b) - ub**2, blur(a * b) - ua * ub
        s = (2 * ua * ub + c1) * (2 * cov + c2) / ((ua**2 + ub**2 + c1) * (va + vb + c2))
        out.append(s[5:-5, 5:-5].mean())
    return np.array(out)


def test_ssim_matches_reference():
    rng = np.random.default_rng(0)
    real = np.stack([healthy_slice(), with_lesion(healthy_slice(), 0.3), rng.random((H, W))])
    noisy = np.clip(real + rng.normal(0, 0.05, real.shape), 0, 1)
    blurred = ndi.gaussian_filter(real, (0, 2, 2))
    for translated in (noisy, blurred, rng.random(real.shape)):
        np.testing.assert_allclose(
            metrics.ssim(translated, real), _ssim_reference(translated, real), atol=1e-4
        )


def test_ssim_properties():
    rng = np.random.default_rng(1)
    real = np.stack([healthy_slice()] * 2)
    assert metrics.ssim(real, real) == pytest.approx([1.0, 1.0], abs=1e-5)
    slightly = real + rng.normal(0, 0.02, real.shape)
    very = real + rng.normal(0, 0.2, real.shape)
    s_slight, s_very = metrics.ssim(slightly, real), metrics.ssim(very, real)
    assert (s_very < s_slight).all() and (s_slight < 1).all()
    np.testing.assert_allclose(metrics.ssim(real, very), s_very, atol=1e-5)  # symmetric
    np.testing.assert_allclose(metrics.ssim(very[..., None], real[..., None]), s_very)


def test_ssim_and_psnr_give_dm_pixs_numbers():
    """dm-pix (the maintained JAX library) on images mirrored by the window's radius gives
    the whole SSIM map: its mean over the interior is our ssim, over a mask our masked
    ssim (the brain's border pixels included), to float32 rounding; its PSNR is ours."""
    import dm_pix
    import jax.numpy as jnp

    rng = np.random.default_rng(4)
    real = np.stack([healthy_slice(), with_lesion(healthy_slice(), 0.3), rng.random((H, W))])
    translated = np.stack([np.clip(real[0] + rng.normal(0, 0.05, (H, W)), 0, 1),
                           ndi.gaussian_filter(real[1], 2), rng.random((H, W))])
    r = metrics.SSIM_RADIUS

    def mirrored(a):
        return jnp.asarray(np.pad(a, ((0, 0), (r, r), (r, r)), mode="symmetric")[..., None],
                           jnp.float32)

    ssim_map = np.asarray(dm_pix.ssim(mirrored(translated), mirrored(real),
                                      return_map=True))[..., 0]
    np.testing.assert_allclose(metrics.ssim(translated, real),
                               ssim_map[:, r:-r, r:-r].mean(axis=(1, 2)), atol=2e-5)
    brain = np.stack([brain_mask()] * 3)
    np.testing.assert_allclose(metrics.ssim(translated, real, mask=brain),
                               [m[b].mean() for m, b in zip(ssim_map, brain)], atol=2e-5)
    pix_psnr = dm_pix.psnr(jnp.asarray(translated[..., None], jnp.float32),
                           jnp.asarray(real[..., None], jnp.float32))
    np.testing.assert_allclose(metrics.psnr(translated, real), pix_psnr, rtol=1e-5)


def test_ssim_batches_beyond_one_chunk():
    rng = np.random.default_rng(2)
    real = rng.random((metrics._SSIM_CHUNK + 3, 12, 12))
    translated = np.clip(real + rng.normal(0, 0.1, real.shape), 0, 1)
    got = metrics.ssim(translated, real)
    assert got.shape == (len(real),)
    np.testing.assert_allclose(got, _ssim_reference(translated, real), atol=1e-4)


# ----------------------------------------------------------- lesion metrics


@pytest.mark.parametrize("lesion_value, background", [(0.3, "dark"), (1.0, "bright")])
def test_lesion_preservation_built_cases(lesion_value, background):
    healthy, mask, brain = healthy_slice(), disc(), brain_mask()
    real = with_lesion(healthy, lesion_value)
    half = with_lesion(healthy, (lesion_value + 0.7) / 2)
    translated = np.stack([real, healthy, half])
    got = metrics.lesion_preservation(translated, np.stack([real] * 3), [mask] * 3, [brain] * 3)
    assert got[0] == pytest.approx(1.0, abs=1e-9), background
    assert got[1] == pytest.approx(0.0, abs=0.05), background  # inpainted
    assert got[2] == pytest.approx(0.5, abs=0.05), background


def test_lesion_preservation_clipping_and_nan():
    healthy, mask, brain = healthy_slice(), disc(), brain_mask()
    real = with_lesion(healthy, 0.3)
    inverted = with_lesion(healthy, 1.0)
    raw = metrics.lesion_preservation(inverted, real, mask, brain, clip=None)
    assert raw[0] < -0.5
    assert metrics.lesion_preservation(inverted, real, mask, brain)[0] == 0.0
    exaggerated = with_lesion(healthy, -0.5)
    assert metrics.lesion_preservation(exaggerated, real, mask, brain)[0] == 1.5
    # Empty mask, or a lesion invisible in the real target: NaN.
    empty = metrics.lesion_preservation(real, real, np.zeros_like(mask), brain)
    flat = np.where(brain, 0.7, 0.0)
    invisible = metrics.lesion_preservation(real, flat, mask, brain)
    assert np.isnan(empty[0]) and np.isnan(invisible[0])


def test_lesion_preservation_ring_stays_in_brain():
    healthy, brain = healthy_slice(), brain_mask()
    # A lesion touching the brain edge: the background (0) next to it must not
    # enter the ring, or the 'inpainted' image would still show contrast.
    edge_mask = disc(center=(H // 2, 6), radius=6) & brain
    real = with_lesion(healthy, 0.3, edge_mask)
    got = metrics.lesion_preservation(healthy, real, edge_mask, brain, clip=None)
    assert edge_mask.sum() > 20
    assert got[0] == pytest.approx(0.0, abs=0.05)


def test_hallucination_identity_and_pasted_lesion():
    healthy, brain = healthy_slice(), brain_mask()
    mask = disc(radius=10)
    pasted = with_lesion(healthy, 0.3, mask)
    got = metrics.hallucination_score(np.stack([healthy, pasted]), np.stack([healthy] * 2), brain)
    assert got[0] == 0.0
    assert got[1] == pytest.approx(mask.sum() / brain.sum(), rel=0.05)
    # Sign-free: a bright pasted lesion counts the same.
    bright = metrics.hallucination_score(with_lesion(healthy, 1.1, mask), healthy, brain)
    assert bright[0] == pytest.approx(got[1])
    # A faint change below the threshold does not count.
    faint = metrics.hallucination_score(with_lesion(healthy, 0.6, mask), healthy, brain)
    assert faint[0] == 0.0


def test_hallucination_ignores_specks_and_outside_brain():
    rng = np.random.default_rng(3)
    healthy, brain = healthy_slice(), brain_mask()
    noisy = healthy + rng.normal(0, 0.06, healthy.shape)
    line = healthy.copy()
    line[:, W // 2] += 0.5  # one pixel wide: an edge artefact, not a lesion
    outside = np.where(brain, healthy, 0.9)
    batch = np.stack([noisy, line, outside])
    kept = metrics.hallucination_score(batch, np.stack([healthy] * 3), brain, remove_specks=False)
    opened = metrics.hallucination_score(batch, np.stack([healthy] * 3), brain)
    assert kept[0] > 0.001 and kept[1] > 0.005 and kept[2] == 0.0
    np.testing.assert_allclose(opened, 0.0, atol=2e-4)


def test_lesion_score_routes_by_label():
    healthy, brain = healthy_slice(), brain_mask()
    real_tumor = with_lesion(healthy, 0.3)
    pasted = with_lesion(healthy, 0.3, disc(radius=10))
    translated = np.stack([healthy, with_lesion(healthy, 0.5), pasted])
    real = np.stack([real_tumor, real_tumor, healthy])
    tumor_masks = np.stack([disc(), disc(), np.zeros_like(brain)])
    brains = np.stack([brain] * 3)
    got = metrics.lesion_score(translated, real, [1, 1, 0], tumor_masks, brains, threshold=0.2)
    np.testing.assert_allclose(
        got[:2], metrics.lesion_preservation(translated[:2], real[:2], tumor_masks[:2], brains[:2])
    )
    assert got[2] == pytest.approx(
        metrics.hallucination_score(translated[2:], real[2:], brains[2:], threshold=0.2)[0]
    )
    assert got[0] < 0.05 and 0.45 < got[1] < 0.55 and got[2] > 0.01


# -------------------------------------------------------------- aggregation


def test_aggregate_over_seeds():
    rows = [
        {"method": "cyclegan", "target_tumor_ratio": 0.0, "seed": 0, "source_label": "healthy",
         "frac_pred_tumor": 0.2, "lesion_score": 0.01, "note": "x", "converged": True},
        {"method": "cyclegan", "target_tumor_ratio": 0.0, "seed": 1, "source_label": "healthy",
         "frac_pred_tumor": 0.4, "lesion_score": float("nan"), "note": "y", "converged": True},
        {"method": "cyclegan", "target_tumor_ratio": 0.0, "seed": 2, "source_label": "healthy",
         "frac_pred_tumor": 0.6, "lesion_score": 0.03, "note": "z", "converged": False},
        {"method": "l1", "target_tumor_ratio": 0.0, "seed": 0, "source_label": "healthy",
         "frac_pred_tumor": 0.3, "lesion_score": 0.0, "note": "w", "converged": True},
    ]
    out = metrics.aggregate_over_seeds(rows)
    assert [(r["method"], r["n_seeds"]) for r in out] == [("cyclegan", 3), ("l1", 1)]
    cyc, l1 = out
    assert cyc["frac_pred_tumor_mean"] == pytest.approx(0.4)
    assert cyc["frac_pred_tumor_std"] == pytest.approx(0.2)  # ddof 1
    assert cyc["lesion_score_mean"] == pytest.approx(0.02)  # NaN seed skipped
    assert "note_mean" not in cyc and "converged_mean" not in cyc and "seed_mean" not in cyc
    assert l1["frac_pred_tumor_mean"] == 0.3 and math.isnan(l1["frac_pred_tumor_std"])
    with pytest.raises(ValueError, match="repeated seed in group"):
        metrics.aggregate_over_seeds(rows + [dict(rows[0])])


@pytest.mark.parametrize("n", [175, 350, 1000])
def test_wilson_contains_the_proportion_at_the_extremes(n):
    # (350, 350) once gave a high of 0.9999999999999999, and the figures' error bars
    # (mean - low, high - mean) went negative.
    assert metrics.wilson_interval(n, n)[1] == 1.0
    assert metrics.wilson_interval(0, n)[0] == 0.0
    low, high = metrics.wilson_interval(np.arange(n + 1), n)
    p = np.arange(n + 1) / n
    assert np.all(low <= p) and np.all(p <= high)


# ------------------------------------------------------- intervals over seeds


def nested_verdicts(counts, n):
    """(S, n) verdicts of seeds that call the first k_s of the same n images tumor."""
    return np.arange(n)[None, :] < np.asarray(counts)[:, None]


def test_seed_interval_of_seeds_that_disagree_is_wide():
    """gan at 100% tumor: seeds at 0.90 and 0.10 of the same 175 images. Pooling their
    counts as 350 trials claimed 0.50 [0.45, 0.55]; with two seeds t has one degree
    of freedom (12.7), the interval covers [0, 1] and is flagged unreliable."""
    pooled = metrics.wilson_interval(158 + 17, 350)
    assert pooled[1] - pooled[0] < 0.11  # what the table printed
    got = metrics.seed_interval(nested_verdicts([158, 17], 175))
    assert got.mean == pytest.approx(0.5)
    assert (got.low, got.high) == (0.0, 1.0)
    assert (got.n_seeds, got.n_images, got.reliable) == (2, 175, False)


def test_seed_interval_is_the_seeds_t_interval_when_images_carry_no_noise():
    """Seeds whose verdicts do not depend on the image (each calls all 175 images alike):
    the image part is 0, and the interval is the t-interval of the seeds' fractions."""
    verdicts = np.repeat(np.array([1, 0, 1, 1, 0], bool)[:, None], 175, axis=1)
    got = metrics.seed_interval(verdicts)
    fractions = verdicts.mean(axis=1)
    t_low, t_high = scipy.stats.t.interval(0.95, 4, loc=fractions.mean(),
                                           scale=scipy.stats.sem(fractions))
    assert (got.low, got.high) == pytest.approx((max(t_low, 0), min(t_high, 1)), abs=1e-12)
    assert got.reliable and got.n_seeds == 5


def test_seed_interval_of_seeds_that_agree_is_one_seeds_images():
    """Seeds that agree share the same 175 images: 3 x 175 are not 525 trials. The
    interval is then the images' (as wide as one seed's Wilson interval), not the
    pooled one, and never zero-width."""
    agreeing = metrics.seed_interval(nested_verdicts([88, 88, 88], 175))
    one_seed = metrics.wilson_interval(88, 175)
    pooled = metrics.wilson_interval(3 * 88, 3 * 175)
    width = agreeing.high - agreeing.low
    assert width == pytest.approx(one_seed[1] - one_seed[0], rel=0.05)
    assert width > 1.5 * (pooled[1] - pooled[0])
    # one seed: its own Wilson interval, and unreliable (nothing is known of seeds)
    one = metrics.seed_interval(nested_verdicts([88], 175))
    assert (one.low, one.high) == one_seed and not one.reliable
    # all or none called tumor: the interval keeps the mean
    assert metrics.seed_interval(nested_verdicts([175] * 3, 175)).high == 1.0
    assert metrics.seed_interval(nested_verdicts([0] * 3, 175)).low == 0.0
    assert np.isnan(metrics.seed_interval(np.zeros((0, 175))).mean)


def _coverage(seeds, mu, tau_seed, tau_image, reps, rng, interval):
    """How often ``interval(verdicts)`` covers the population's flip rate, when the
    seeds' verdicts come from shared images (as in a real evaluation): each image has
    its own tendency (logit sd ``tau_image``) and each seed its own (``tau_seed``)."""
    expit = scipy.special.expit
    truth = expit(mu + tau_seed * rng.standard_normal((400, 1))
                  + tau_image * rng.standard_normal((1, 4000))).mean()
    hits = 0
    for _ in range(reps):
        p = expit(mu + tau_seed * rng.standard_normal((seeds, 1))
                  + tau_image * rng.standard_normal((1, 175)))
        low, high = interval(rng.random(p.shape) < p)
        hits += low <= truth <= high
    return hits / reps


def _seeds_only_t(verdicts):
    fractions = verdicts.mean(axis=1)
    return scipy.stats.t.interval(0.95, len(fractions) - 1, loc=fractions.mean(),
                                  scale=scipy.stats.sem(fractions))


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("mu, tau_seed, tau_image", [
    (-1.0, 0.4, 1.5),   # seed spread ~0.06 around a 0.33 flip rate
    (1.5, 0.6, 1.0),    # ~0.08 around 0.76
    (-1.0, 0.8, 1.0),   # ~0.12 around 0.31: seeds dominate
    (0.0, 0.1, 3.0),    # seeds agree, images carry the noise
])
def test_seed_interval_covers_the_flip_rate_with_images_shared_across_seeds(
        seeds, mu, tau_seed, tau_image):
    """Issue 37: coverage at 3 and 5 seeds, with the same images under every seed."""
    rng = np.random.default_rng(seeds)

    def interval(verdicts):
        got = metrics.seed_interval(verdicts)
        return got.low, got.high

    assert _coverage(seeds, mu, tau_seed, tau_image, 1000, rng, interval) >= 0.93


def test_an_interval_over_seeds_alone_misses_the_shared_images_noise():
    """Why the image part is needed: when seeds agree, the t-interval of the seeds'
    fractions shrinks to their few disagreements and misses the population's rate,
    since every seed saw the same images."""
    rng = np.random.default_rng(0)
    assert _coverage(5, 0.0, 0.1, 3.0, 600, rng, _seeds_only_t) < 0.8


def _paired_draw(rng, seeds, n, mu, delta, tau_seed, tau_image, shared):
    """Verdicts of two methods on the same n images under the same seeds: each image has
    one tendency for both, each seed a tendency ``shared`` with the other method's."""
    expit = scipy.special.expit
    image = tau_image * rng.standard_normal((1, n))
    seed = tau_seed * rng.standard_normal((seeds, 1))
    own = tau_seed * rng.standard_normal((seeds, 1))
    seed_b = shared * seed + math.sqrt(1 - shared ** 2) * own
    p_a, p_b = expit(mu + delta + seed + image), expit(mu + seed_b + image)
    return rng.random(p_a.shape) < p_a, rng.random(p_b.shape) < p_b


@pytest.mark.parametrize("seeds", [3, 6])
@pytest.mark.parametrize("mu, delta, tau_seed, tau_image, shared", [
    (-2.0, 1.0, 0.6, 1.5, 0.5),  # a adds ~0.13 more than b's ~0.2
    (-1.0, 0.0, 0.8, 1.0, 0.0),  # no difference, seeds dominate
    (0.0, -1.0, 0.1, 3.0, 0.9),  # images carry the noise, seeds agree
])
def test_paired_difference_covers_the_difference(seeds, mu, delta, tau_seed, tau_image,
                                                 shared):
    rng = np.random.default_rng(seeds)
    expit = scipy.special.expit
    z_seed, z_own, z_image = (rng.standard_normal((2000, 1)), rng.standard_normal((2000, 1)),
                              rng.standard_normal((1, 2000)))
    seed_b = tau_seed * (shared * z_seed + math.sqrt(1 - shared ** 2) * z_own)
    truth = (expit(mu + delta + tau_seed * z_seed + tau_image * z_image).mean()
             - expit(mu + seed_b + tau_image * z_image).mean())
    hits = 0
    for _ in range(600):
        got = metrics.paired_difference(*_paired_draw(rng, seeds, 175, mu, delta, tau_seed,
                                                      tau_image, shared))
        hits += got.low <= truth <= got.high
    assert hits / 600 >= 0.93


def test_paired_difference_is_sharper_than_two_intervals_and_knows_no_difference():
    rng = np.random.default_rng(0)
    a, b = _paired_draw(rng, 6, 175, -2.0, 1.0, 0.3, 2.0, 0.9)
    paired = metrics.paired_difference(a, b)
    ia, ib = metrics.seed_interval(a), metrics.seed_interval(b)
    assert paired.mean == pytest.approx(ia.mean - ib.mean)
    assert paired.high - paired.low < (ia.high - ia.low) + (ib.high - ib.low)
    same = metrics.paired_difference(a, a)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    assert np.isnan(metrics.paired_difference(a[:1], b[:1]).mean)  # one seed: no interval
    with pytest.raises(ValueError, match="one shape"):
        metrics.paired_difference(a, b[:, :10])


def test_verdicts_round_trip_through_their_text():
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 175):
        bits = rng.random(n) < 0.5
        text = metrics.encode_verdicts(bits)
        assert set(text) <= set("0123456789abcdef")
        np.testing.assert_array_equal(metrics.decode_verdicts(text, n), bits)
    with pytest.raises(ValueError, match="verdict bits for"):
        metrics.decode_verdicts("ff", 9)


def test_aggregate_never_pools_grid_points():
    rows = [dict(method="cyclegan", target_tumor_ratio=1.0, seed=seed, source_label="healthy",
                 status="ok", n_images=100, n_pred_tumor=k, frac_pred_tumor=k / 100,
                 verdicts=metrics.encode_verdicts(np.arange(100) < k), r1_weight=weight)
            for weight, counts in ((0.0, (10, 20, 30)), (10.0, (70, 80, 90)))
            for seed, k in enumerate(counts)]
    out = metrics.aggregate_over_seeds(rows)  # the same seeds twice: no "repeated seed"
    assert [(a["r1_weight"], a["n_seeds"]) for a in out] == [(0.0, 3), (10.0, 3)]
    assert [a["frac_pred_tumor_mean"] for a in out] == pytest.approx([0.2, 0.8])
    assert "r1_weight_mean" not in out[0]
    interval = metrics.seed_interval(nested_verdicts([70, 80, 90], 100))
    assert (out[1]["seeds_ci_low"], out[1]["seeds_ci_high"]) == (interval.low, interval.high)
    assert out[1]["seeds_ci_reliable"] == 1
    assert metrics.knob_label(metrics.knobs_of(rows[3])) == "r1_weight=10"
    # an empty cell (another method's column in a combined CSV) is no knob
    assert metrics.knobs_of({"r1_weight": ""}) == ()
