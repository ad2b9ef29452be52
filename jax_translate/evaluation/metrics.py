"""Metrics that say whether a translator erased or invented tumors.

Pure functions on host arrays. Images are batches of shape (N, H, W) or
(N, H, W, 1) (a single (H, W) image is read as N = 1), intensities nominally
in [0, 1]; per-image metrics return float64 arrays of shape (N,).

- `flip_counts`, `wilson_interval`: classifier-based flip rates with
  binomial confidence intervals; `seed_interval`: a flip rate over seeds
  with an interval that includes the seeds' disagreement.
- `mae`, `psnr`, `ssim`: pixel agreement with the real paired target
  (`ssim(mask=...)`: the SSIM map averaged over a mask, e.g. the brain).
- Fidelity inside the brain and the quality gate live in `quality.py`.
- `lesion_preservation`, `hallucination_score`, `lesion_score`: lesion
  metrics that use the ground-truth tumor and brain masks instead of a
  classifier, so the effect can be measured without trusting one. Neither
  assumes lesions are dark: real BraTS T1 need not behave like the simulator.
- `aggregate_over_seeds`: mean and spread of result rows over seeds, per
  setting (method, ratio, gridded knobs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi
import scipy.stats

from jax_translate.config import GRID_FIELDS

HEALTHY, TUMOR = 0, 1

# Window of Wang et al. (2004) as skimage builds it: a Gaussian of sigma 1.5
# truncated at 3.5 sigma, i.e. radius int(3.5 * 1.5 + 0.5) = 5, 11 x 11.
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)
SSIM_K1, SSIM_K2 = 0.01, 0.03
_SSIM_CHUNK = 128  # images per compiled call, bounds memory on big holdouts

# A voxel-wise |translated - real| above this counts as invented content.
# Good translators err by ~0.01-0.03 per pixel (the paper's CycleGAN MAE is
# 0.012-0.025), while a tumor differs from white/grey matter by ~0.2-0.4 on
# [0, 1] images, so 0.15 is several times the usual error and about half a
# lesion's contrast.
HALLUCINATION_THRESHOLD = 0.15
# Below this |lesion contrast| in the real target, a contrast ratio is noise.
MIN_LESION_CONTRAST = 0.02


def _as_batch(images) -> np.ndarray:
    """(H, W) | (N, H, W) | (N, H, W, 1) -> (N, H, W)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    elif images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"expected (N, H, W) or (N, H, W, 1), got {images.shape}")
    return images


def _as_labels(values, name: str) -> np.ndarray:
    """0/1 or boolean labels -> flat bool array; anything else is an error."""
    values = np.asarray(values).reshape(-1)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 (or booleans)")
    return values.astype(bool)


# ---------------------------------------------------------------- flip rates


def flip_counts(pred_tumor, source_label) -> dict[str, dict]:
    """Classifier verdicts on translated images, split by the source label.

    `pred_tumor[i]` is 1 if the classifier calls translated image i a tumor,
    `source_label[i]` the ground truth of its source (0 healthy, 1 tumor).
    For each label L in {"healthy", "tumor"}:
        n_images = #{i : source_label_i = L}
        n_pred_tumor = #{i : source_label_i = L and pred_tumor_i = 1}
        frac_pred_tumor = n_pred_tumor / n_images   (NaN when n_images = 0)
    and the flips:
        added   = healthy predicted tumor:  count = n_pred_tumor(healthy),
                  rate = count / n_images(healthy)
        removed = tumor predicted healthy:  count = n_images(tumor)
                  - n_pred_tumor(tumor), rate = count / n_images(tumor)
    `added` and `removed` also carry `n` (the denominator), so
    `wilson_interval(count, n)` gives their interval.
    """
    pred = _as_labels(pred_tumor, "pred_tumor")
    label = _as_labels(source_label, "source_label")
    if pred.shape != label.shape:
        raise ValueError(f"{pred.shape=} differs from {label.shape=}")

    def rate(k, n):
        return k / n if n else math.nan

    out = {}
    for name, value in (("healthy", False), ("tumor", True)):
        in_class = label == value
        n, k = int(in_class.sum()), int((pred & in_class).sum())
        out[name] = {"n_images": n, "n_pred_tumor": k, "frac_pred_tumor": rate(k, n)}
    n_h, n_t = out["healthy"]["n_images"], out["tumor"]["n_images"]
    added = out["healthy"]["n_pred_tumor"]
    removed = n_t - out["tumor"]["n_pred_tumor"]
    out["added"] = {"count": added, "n": n_h, "rate": rate(added, n_h)}
    out["removed"] = {"count": removed, "n": n_t, "rate": rate(removed, n_t)}
    return out


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval for a binomial proportion k / n.

    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")``:
    the p at which the score test |p_hat - p| / sqrt(p(1-p)/n) = z. Integer k,
    n (whole images); broadcastable arrays give arrays (one scipy call per
    pair: a few ms each, fine for tables and figures); n = 0 gives (NaN, NaN).
    Returns floats for scalar input. (Our own closed form agreed with scipy to
    2e-16 on every k of n = 1, 2, 7, 10, 175, 350 and 1000; scipy's is kept.)
    """
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k), np.asarray(n))
    if ((k_arr < 0) | (k_arr > n_arr)).any():
        raise ValueError("need 0 <= k <= n")
    if (k_arr != np.round(k_arr)).any() or (n_arr != np.round(n_arr)).any():
        raise ValueError("k and n count images: whole numbers")
    low, high = np.full(k_arr.shape, np.nan), np.full(k_arr.shape, np.nan)
    for i in np.ndindex(k_arr.shape):
        if n_arr[i] == 0:
            continue
        ci = scipy.stats.binomtest(int(k_arr[i]), int(n_arr[i])).proportion_ci(
            confidence, method="wilson")
        low[i], high[i] = ci.low, ci.high
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


# Fewer seeds than this and an interval over seeds is flagged unreliable: with 2
# seeds t has one degree of freedom (12.7 at 95%), and a 1-seed interval knows
# nothing of seed-to-seed variation.
MIN_SEEDS = 3


@dataclasses.dataclass(frozen=True)
class SeedInterval:
    """A fraction over seeds: the mean of the seeds' fractions and its 95% interval."""

    mean: float
    low: float
    high: float
    n_seeds: int
    n_images: int  # per seed (the seeds share one holdout set)

    @property
    def reliable(self) -> bool:
        return self.n_seeds >= MIN_SEEDS


def seed_interval(verdicts, confidence: float = 0.95) -> SeedInterval:
    """The flip fraction of a setting over its seeds, and an interval that carries seed
    and image noise together.

    ``verdicts`` is (S, N): 1 where seed s's translation of holdout image i is called
    tumor. Every seed translates the *same* N images, so the two sources of noise
    are crossed, not nested: a training seed moves all of its verdicts (a_s), an
    image moves its verdict under every seed (b_i). With the two-way random-effects
    model y_si = theta + a_s + b_i + e_si, the variance of the grand mean is

        Var(y..) = s_a^2 / S + s_b^2 / N + s_e^2 / (S N)
                 = (MS_seed + MS_image - MS_error) / (S N)

    by the ANOVA mean squares (E MS_seed = s_e^2 + N s_a^2, E MS_image = s_e^2 +
    S s_b^2, E MS_error = s_e^2). Split as the two stages of the experiment: given
    the images, the S seed means are independent draws around the images' own mean,
    with variance MS_seed / N (training noise and each seed's own verdict noise), so
    they get the t quantile of S - 1 degrees of freedom (4.3 at 3 seeds: 3 seeds know
    little of training noise); the images' own mean differs from the population's by
    the shared image part, (MS_image - MS_error) / (S N), which gets the normal
    quantile (N is hundreds). The half-width is sqrt(t^2 MS_seed / (S N) + z^2
    (MS_image - MS_error)+ / (S N)). It is never narrower than the Wilson interval of
    one seed's N images at the mean (all there is with one seed, and what keeps
    verdicts that all agree from a zero width), clipped to [0, 1]. (One
    Satterthwaite t for the whole sum, tried first, covered 0.925 at 3 seeds that
    disagree: their few degrees of freedom must not be pooled with the images'.)

    Why not a two-level bootstrap: with 2-3 seeds a bootstrap over seeds is
    degenerate (3 seeds give 10 distinct resamples, and never leave the seeds'
    own range), where t's few degrees of freedom say how little 3 seeds know.
    The previous rule took the larger of the seeds' t-interval and one seed's Wilson
    interval instead of adding the two noises; in the coverage simulations of
    tests/test_metrics.py (images shared across seeds) it covered as well, being
    wider where seeds disagree, so what changed is that the interval now follows
    from the design of the experiment.
    Flagged unreliable below `MIN_SEEDS` seeds; NaN for no seeds or no images.
    """
    y = np.asarray(verdicts, np.float64)
    if y.ndim != 2:
        raise ValueError(f"verdicts are (seeds, images), got shape {y.shape}")
    seeds, n = y.shape
    if seeds == 0 or n == 0:
        return SeedInterval(math.nan, math.nan, math.nan, seeds, n)
    mean = float(y.mean())
    low, high = wilson_interval(int(round(mean * n)), n, confidence)
    if seeds > 1:
        half = _crossed_half_width(y, confidence)
        low, high = min(low, mean - half), max(high, mean + half)
    # the hull contains the mean: the Wilson part alone could miss it by the rounding
    return SeedInterval(mean, float(np.clip(min(low, mean), 0, 1)),
                        float(np.clip(max(high, mean), 0, 1)), seeds, n)


def encode_verdicts(verdicts) -> str:
    """A row's per-image verdicts (0/1, in the holdout's order) as a hex string, so a
    results.csv carries what its intervals are computed from."""
    bits = np.asarray(verdicts, bool).reshape(-1)
    return np.packbits(bits).tobytes().hex()


def decode_verdicts(text: str, n_images: int) -> np.ndarray:
    """:func:`encode_verdicts`' inverse: (n_images,) bool."""
    raw = np.frombuffer(bytes.fromhex(str(text)), np.uint8)
    if raw.size * 8 < n_images:
        raise ValueError(f"{raw.size * 8} verdict bits for {n_images} images")
    return np.unpackbits(raw, count=n_images).astype(bool)


# ------------------------------------------------------------ pixel metrics


def mae(translated, real_target) -> np.ndarray:
    """Per image: mean over pixels of |translated - real_target|."""
    x, y = _as_batch(translated).astype(np.float64), _as_batch(real_target)
    return np.abs(x - y).mean(axis=(1, 2))


def psnr(translated, real_target, data_range: float = 1.0) -> np.ndarray:
    """Per image: 10 log10(data_range^2 / MSE), MSE = mean (x - y)^2.

    Identical images (MSE = 0) give +inf. ``dm_pix.psnr`` gives the same to
    1e-5 (tests/test_metrics.py) but fixes the range at 1 and computes in
    float32; this takes ``data_range`` and is float64, in two lines.
    """
    x, y = _as_batch(translated).astype(np.float64), _as_batch(real_target)
    mse = ((x - y) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10 * np.log10(data_range**2 / mse)


# Our SSIM, not dm-pix's: ``dm_pix.ssim(..., return_map=True)`` on images mirrored by
# SSIM_RADIUS gives the same map to 5e-6 (tests/test_metrics.py), but its per-row
# jnp.convolve ran 5-6x slower on the 2-core CPU (350 images: 64x64 1.09 s vs 0.22 s,
# 256x128 8.2 s vs 1.3 s), and evaluation computes two SSIMs per member and label.
def _gaussian_taps() -> jnp.ndarray:
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1)
    taps = np.exp(-0.5 * offsets**2 / SSIM_SIGMA**2)
    return jnp.asarray(taps / taps.sum(), jnp.float32)


def _gaussian_blur(images: jnp.ndarray) -> jnp.ndarray:
    """Separable 11-tap Gaussian over (H, W) of (N, H, W).

    'symmetric' padding is scipy.ndimage's 'reflect', as in skimage; only the
    5-pixel border that SSIM crops away ever sees it.
    """
    taps, r = _gaussian_taps(), SSIM_RADIUS
    height, width = images.shape[1:]
    padded = jnp.pad(images, ((0, 0), (r, r), (r, r)), mode="symmetric")
    rows = sum(taps[i] * padded[:, i : i + height, :] for i in range(2 * r + 1))
    return sum(taps[i] * rows[:, :, i : i + width] for i in range(2 * r + 1))


@functools.partial(jax.jit, static_argnames="data_range")
def _ssim_batch(x: jnp.ndarray, y: jnp.ndarray, weight: jnp.ndarray,
                data_range: float) -> jnp.ndarray:
    """Per image: the SSIM map averaged with per-pixel `weight` (N, H, W)."""
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _gaussian_blur(x), _gaussian_blur(y)
    var_x = _gaussian_blur(x * x) - mu_x**2
    var_y = _gaussian_blur(y * y) - mu_y**2
    cov_xy = _gaussian_blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return (ssim_map * weight).sum(axis=(1, 2)) / weight.sum(axis=(1, 2))


def ssim(translated, real_target, data_range: float = 1.0, mask=None) -> np.ndarray:
    """Per image: mean structural similarity (Wang et al. 2004).

    With mu, sigma^2, sigma_xy the local means, variances and covariance
    under an 11 x 11 Gaussian window (sigma 1.5, normalised, population
    moments: E_w[x^2] - mu_x^2), C1 = (0.01 L)^2, C2 = (0.03 L)^2, L =
    data_range:
        S = (2 mu_x mu_y + C1)(2 sigma_xy + C2)
            / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
    averaged over the pixels at least 5 from every border (where the window
    lies inside the image); the filter mirrors the image at its edges. This is
    skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L). Computed in float32.

    `mask` ((N, H, W), nonzero = in) replaces that average by the mean of the
    SSIM map over the mask's pixels, border included (e.g. the brain: see
    `quality.ssim_in_brain`); an empty mask gives NaN.
    """
    x, y = _as_batch(translated), _as_batch(real_target)
    if x.shape != y.shape:
        raise ValueError(f"{x.shape=} differs from {y.shape=}")
    if min(x.shape[1:]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"images must be at least 11 x 11, got {x.shape[1:]}")
    if mask is None:
        weight = np.zeros(x.shape[1:], np.float32)
        weight[SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS] = 1
        weight = np.broadcast_to(weight, x.shape)
    else:
        weight = (_as_batch(mask) > 0).astype(np.float32)
        if weight.shape != x.shape:
            raise ValueError(f"mask shape {weight.shape} differs from {x.shape}")
    chunks = [
        _ssim_batch(*(jnp.asarray(a[i : i + _SSIM_CHUNK], jnp.float32) for a in (x, y, weight)),
                    float(data_range))
        for i in range(0, len(x), _SSIM_CHUNK)
    ]
    with np.errstate(invalid="ignore"):
        return np.concatenate([np.asarray(c, np.float64) for c in chunks])


# ----------------------------------------------------------- lesion metrics


def _disk(radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def default_ring_width(height: int) -> int:
    """Ring width in pixels: max(2, H // 32), 8 for the 256-row slices."""
    return max(2, height // 32)


def lesion_contrast(image, lesion, brain, ring_width: int) -> float:
    """C = mean(image over ring) - mean(image over lesion) for one image.

    lesion = tumor mask within the brain; ring = lesion dilated by a disk of
    radius `ring_width`, minus the lesion, within the brain: the tissue that an
    inpainting translator would paint over the lesion. Positive for dark
    lesions, negative for bright ones; NaN if lesion or ring is empty.
    """
    lesion = lesion & brain
    ring = ndi.binary_dilation(lesion, _disk(ring_width)) & brain & ~lesion
    if not lesion.any() or not ring.any():
        return math.nan
    return float(image[ring].mean() - image[lesion].mean())


def lesion_preservation(
    translated,
    real_target,
    tumor_mask,
    brain_mask,
    ring_width: int | None = None,
    clip: tuple[float, float] | None = (0.0, 1.5),
    min_contrast: float = MIN_LESION_CONTRAST,
) -> np.ndarray:
    """Per image: how much of the real lesion's contrast the translation keeps.

        score = C(translated) / C(real_target)
    with C from `lesion_contrast` (same lesion and ring pixels for both).
    The ratio of signed contrasts is sign-free: it is 1 when the lesion is as
    dark (or as bright) against its surround as in the real target, 0 when it
    is erased (filled with surrounding tissue), 0.5 at half the contrast, and
    negative if the translation inverts it. Clipped to `clip` (default
    [0, 1.5], so inversion counts as erased and exaggeration cannot outweigh
    erasures in a mean); `clip=None` reports it raw. NaN when the tumor mask is
    empty or |C(real_target)| < `min_contrast` (an invisible lesion cannot be
    kept or lost): average with np.nanmean. `ring_width` defaults to
    `default_ring_width(H)`.
    """
    x, y = _as_batch(translated), _as_batch(real_target)
    tumor, brain = _as_batch(tumor_mask) > 0, _as_batch(brain_mask) > 0
    width = default_ring_width(x.shape[1]) if ring_width is None else ring_width
    scores = np.full(len(x), np.nan)
    for i in range(len(x)):
        c_real = lesion_contrast(y[i], tumor[i], brain[i], width)
        if np.isnan(c_real) or abs(c_real) < min_contrast:
            continue
        scores[i] = lesion_contrast(x[i], tumor[i], brain[i], width) / c_real
    return scores if clip is None else np.clip(scores, *clip)


def hallucination_score(
    translated,
    real_target,
    brain_mask,
    threshold: float = HALLUCINATION_THRESHOLD,
    remove_specks: bool = True,
) -> np.ndarray:
    """Per image: fraction of the brain the translation changed lesion-like.

        D = {p in brain : |translated_p - real_target_p| > threshold}
        score = |open(D)| / |brain|
    where open() is a binary opening with a 3 x 3 square (if `remove_specks`),
    which drops blobs thinner than 3 pixels: noise and blur along edges, not
    lesions. Meant for healthy sources: an identity translation scores 0 and a
    pasted lesion of area A about A / |brain| (if its contrast exceeds
    `threshold`). Counts dark and bright changes alike. NaN for an empty brain.
    """
    x, y = _as_batch(translated).astype(np.float64), _as_batch(real_target)
    brain = _as_batch(brain_mask) > 0
    changed = (np.abs(x - y) > threshold) & brain
    if remove_specks:
        square = np.ones((1, 3, 3), bool)  # no mixing across the batch axis
        changed = ndi.binary_opening(changed, square)
    brain_area = brain.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(brain_area > 0, changed.sum(axis=(1, 2)) / brain_area, np.nan)


def lesion_score(
    translated, real_target, source_label, tumor_mask, brain_mask, **kwargs
) -> np.ndarray:
    """Per image: `lesion_preservation` for tumor sources (label 1),
    `hallucination_score` for healthy ones (label 0).

    Keyword arguments go to the function they belong to (`ring_width`, `clip`,
    `min_contrast`; `threshold`, `remove_specks`). Good translators score ~1
    on tumor rows and ~0 on healthy rows; a row's `lesion_score` in
    results.csv is the np.nanmean over its images.
    """
    label = _as_labels(source_label, "source_label")
    x, y = _as_batch(translated), _as_batch(real_target)
    tumor, brain = _as_batch(tumor_mask), _as_batch(brain_mask)
    keep_args = {k: kwargs.pop(k) for k in ("ring_width", "clip", "min_contrast") if k in kwargs}
    scores = np.full(len(x), np.nan)
    if label.any():
        scores[label] = lesion_preservation(
            x[label], y[label], tumor[label], brain[label], **keep_args
        )
    if (~label).any():
        scores[~label] = hallucination_score(x[~label], y[~label], brain[~label], **kwargs)
    return scores


# ------------------------------------------------------ aggregation over seeds

GROUP_KEYS = ("method", "target_tumor_ratio", "source_label")
# Text columns whose bad values are counted per group, as n_<value>.
COUNTED_VALUES = (("status", "diverged"), ("quality", "wrong_map"))
# What `seed_columns` adds to a group of rows: the flip fraction over the group's
# ok seeds, its `seed_interval`, how many seeds that is and whether it is reliable
# (1: at least MIN_SEEDS seeds, 0: fewer).
SEED_COLUMNS = ("seeds_frac_pred_tumor", "seeds_ci_low", "seeds_ci_high", "seeds_n",
                "seeds_ci_reliable")


def knobs_of(row: Mapping) -> tuple[tuple[str, float], ...]:
    """The gridded knobs of a results row, (name, value) in GRID_FIELDS' order.

    An empty cell is no knob: a combined results.csv has a column for every
    method's knobs, and the rows of a method without it leave it empty.
    """
    return tuple((name, row[name]) for name in GRID_FIELDS if row.get(name) not in (None, ""))


def knob_label(knobs) -> str:
    """``r1_weight=10 augment_p=0.2`` (the member names' spelling), or ``""``."""
    return " ".join(f"{name}={float(value):g}" for name, value in knobs)


def _crossed_half_width(y: np.ndarray, confidence: float) -> float:
    """Half the interval of the grand mean of ``y`` (S >= 2 seeds, N images, crossed):
    sqrt(t^2 MS_seed / (S N) + z^2 (MS_image - MS_error)+ / (S N)) (seed_interval)."""
    seeds, n = y.shape
    mean = y.mean()
    seed_means, image_means = y.mean(axis=1), y.mean(axis=0)
    ms_seed = n * np.sum((seed_means - mean) ** 2) / (seeds - 1)
    ms_image = seeds * np.sum((image_means - mean) ** 2) / (n - 1) if n > 1 else 0.0
    residual = y - seed_means[:, None] - image_means[None, :] + mean
    ms_error = np.sum(residual ** 2) / ((seeds - 1) * (n - 1)) if n > 1 else 0.0
    t = scipy.stats.t.ppf(0.5 + confidence / 2, seeds - 1)
    z = scipy.stats.norm.ppf(0.5 + confidence / 2)
    return math.sqrt((t * t * ms_seed + z * z * max(ms_image - ms_error, 0.0)) / (seeds * n))


def paired_difference(verdicts_a, verdicts_b, confidence: float = 0.95) -> SeedInterval:
    """How much more often method a calls the images tumor than method b, with seeds
    paired: seed s of both trained on the same domains (the engine draws a member's
    domains from its ratio and seed) and both translated the same N holdout images.

    The per-image differences d_si = a_si - b_si (-1, 0 or 1) have the crossed
    design of :func:`seed_interval` (a seed moves all of its differences, an image
    its difference under every seed), so the same half-width applies to their mean;
    paired, the seeds' and images' shared parts cancel, which is what makes the
    comparison sharper than two separate intervals. At least 2 seeds; clipped to
    [-1, 1]. ``n_images`` is N; ``reliable`` as seed_interval's.
    """
    a, b = np.asarray(verdicts_a, np.float64), np.asarray(verdicts_b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired verdicts must be (seeds, images) of one shape, got "
                         f"{a.shape} and {b.shape}")
    seeds, n = a.shape
    if seeds < 2 or n == 0:
        return SeedInterval(math.nan, math.nan, math.nan, seeds, n)
    d = a - b
    mean, half = float(d.mean()), _crossed_half_width(d, confidence)
    return SeedInterval(mean, float(max(mean - half, -1.0)), float(min(mean + half, 1.0)),
                        seeds, n)


def verdict_matrix(rows: Iterable[Mapping], removed: bool = False) -> np.ndarray:
    """(S, N) per-image verdicts of the rows (seeds of one setting and source label)
    from their ``verdicts`` columns (:func:`encode_verdicts`); ``removed``: 1 where
    the image is *not* called tumor. Rows must hold verdicts of one holdout set."""
    rows = list(rows)
    sizes = {int(row["n_images"]) for row in rows}
    if len(sizes) > 1:
        raise ValueError(f"the seeds were scored on different holdout sets: sizes {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    matrix = np.asarray([decode_verdicts(row["verdicts"], n) for row in rows], bool).reshape(
        len(rows), n)
    return ~matrix if removed else matrix


def seed_columns(rows: Iterable[Mapping]) -> dict:
    """`SEED_COLUMNS` of one setting and source label: `seed_interval` of the
    per-image verdicts of its rows whose status is ok."""
    ok = [row for row in rows if row.get("status", "ok") == "ok"]
    if not all(row.get("verdicts") not in (None, "") for row in ok):  # nobody judged them
        return dict(zip(SEED_COLUMNS, (math.nan, math.nan, math.nan, len(ok), 0)))
    interval = seed_interval(verdict_matrix(ok))
    return dict(zip(SEED_COLUMNS, (interval.mean, interval.low, interval.high,
                                   interval.n_seeds, int(interval.reliable))))


def _is_number(value) -> bool:
    return isinstance(value, (Real, np.number)) and not isinstance(value, (bool, np.bool_))


def aggregate_over_seeds(
    rows: Iterable[Mapping],
    group_keys: Sequence[str] = GROUP_KEYS,
    seed_key: str = "seed",
) -> list[dict]:
    """Mean and spread over seeds, one row per `group_keys` and gridded knobs.

    Rows of different grid points (`knobs_of`) are never pooled: each group
    also carries its knobs. Every other numeric (non-boolean) column m
    becomes `m_mean` and `m_std` (sample std, ddof 1: NaN with one seed) over
    the rows of the group whose m is not NaN (so also fidelity_r,
    fidelity_ssim); non-numeric columns are dropped, except that `n_seeds`
    counts the group's rows and, for each (column, value) of `COUNTED_VALUES`
    that the rows carry, `n_<value>` counts those holding it (`n_diverged`,
    `n_wrong_map`). Rows with per-image verdicts (``verdicts``) also
    get `seed_columns`: the flip fraction's interval over seeds. Groups keep
    the order of their first row. Two rows with the same seed in one group
    raise ValueError: that is a bookkeeping bug.
    """
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        key = tuple(row[k] for k in group_keys) + (knobs_of(row),)
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        *key, knobs = key
        seeds = [row[seed_key] for row in members]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"repeated seed in group {dict(zip(group_keys, key), **dict(knobs))}: "
                             f"{seeds}")
        result = dict(zip(group_keys, key), **dict(knobs), n_seeds=len(members))
        for column, value in COUNTED_VALUES:
            if any(column in row for row in members):
                result[f"n_{value}"] = sum(row.get(column) == value for row in members)
        if all(row.get("verdicts") not in (None, "") for row in members):
            result.update(seed_columns(members))
        columns = dict.fromkeys(name for row in members for name in row)
        skip = {*group_keys, seed_key, *GRID_FIELDS, *SEED_COLUMNS}
        for m in (c for c in columns if c not in skip):
            values = [row[m] for row in members if m in row]
            if not values or not all(_is_number(v) for v in values):
                continue
            values = np.asarray(values, np.float64)
            values = values[~np.isnan(values)]
            result[f"{m}_mean"] = float(values.mean()) if len(values) else math.nan
            result[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        out.append(result)
    return out
