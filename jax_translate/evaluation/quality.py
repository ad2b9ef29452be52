"""Is a translator translating? Fidelity inside the brain, structure, and the quality gate.

A flip count means something only if the translator renders its input's
anatomy with the target's tissue contrast: a generator that paints plausible
texture over the wrong map also "adds" and "removes" tumors, but that is a
fault, not the paper's effect. Pixel r alone cannot say which: it punishes an
invented texture as much as a wrong map (a translator that samples the right
posterior scores about the square of the best paired r: the perception-
distortion tradeoff, Blau & Michaeli 2018), so the gate reads the map instead:

- `structure_r`: Pearson r between translation and real target, both blurred
  (`STRUCTURE_SIGMA_64` px at 64 rows) within the brain, where a texture no
  longer counts but the anatomy and its contrast still do;
- the contrast check (`contrast.py`): each tissue's mean over WM's against the
  real target's, as a share of the real contrast;
- `pearson_in_brain` (pixel r) and `ssim_in_brain` stay in every table.

`gate` is the verdict: ``ok`` when structure r >= `STRUCTURE_GATE` and the
contrast error <= `CONTRAST_TOLERANCE` on healthy holdout sources, over the
whole brain (a lesion the translator painted counts against it); else
``wrong_map``; ``not_gated`` for methods with nothing tying output to input
(gan). Its thresholds are calibrated on translations whose verdict is known
(`known_cases.py`, `calibrate`): the table is `experiments/gate/results/`.

Same conventions as `metrics`: (N, H, W) or (N, H, W, 1) host arrays,
per-image float64 results of shape (N,).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping

import numpy as np

from jax_translate.evaluation.metrics import _as_batch, knobs_of, ssim
from jax_translate.catalog import SPECS

# The blur of `structure_r`, in pixels at 64 rows (scaled with the image height: the
# same millimetres at every size). Chosen on the validation split of dataset 4.0.0 as
# the smallest sigma, in half pixels, at which a posterior sample of the pixel lookup
# ("lookup + texture", known_cases.py) loses at most 0.05 of r to its texture against
# the lookup's mean (0.156 at the pixel level): experiments/gate/results/sigma.csv.
STRUCTURE_SIGMA_64 = 1.5
# Calibrated on the known cases (experiments/gate/results/known_cases.csv, validation
# split), each halfway between the worst case that must pass and the best that must
# fail it (`calibrate`), to 2 decimals: structure r between the posterior sample of the
# pixel lookup (0.860) and another patient's slice of the most similar outline (0.476);
# contrast error between the same lookup (0.340) and that slice (0.677).
# tests/test_gate.py recomputes both from that file.
STRUCTURE_GATE = 0.67
CONTRAST_TOLERANCE = 0.51
# Fewer brain pixels than this and r or a brain-mean SSIM is noise (slices at
# the top of the head, or a test's toy image).
MIN_BRAIN_PIXELS = 20
# On tumor sources the real lesion and a margin are left out of r (the effect being
# measured is there); an image losing more than this share of its brain to them has
# no r (counted in `n_unscored`, never silently dropped).
MAX_LEFT_OUT = 0.5

OK, WRONG_MAP, NOT_GATED = "ok", "wrong_map", "not_gated"


def _brain_pixels(translated, real_target, brain_mask):
    x = _as_batch(translated).astype(np.float64)
    y = _as_batch(real_target).astype(np.float64)
    brain = _as_batch(brain_mask) > 0
    if not x.shape == y.shape == brain.shape:
        raise ValueError(f"shapes differ: {x.shape=}, {y.shape=}, {brain.shape=}")
    return x, y, brain


def pearson_in_brain(translated, real_target, brain_mask) -> np.ndarray:
    """Per image: Pearson r between translated and real target over the brain.

        r = sum_b (x - mean_b x)(y - mean_b y)
            / sqrt(sum_b (x - mean_b x)^2 * sum_b (y - mean_b y)^2)
    with sums and means over the brain pixels b only, so nothing outside the
    brain counts. Invariant to gain and offset (r of a x + c against x is
    sign(a)), so it judges anatomy and contrast, not intensity calibration
    (MAE and PSNR do that). A translation constant over the brain holds no
    anatomy: r 0. NaN where there is nothing to judge: an image with fewer than
    `MIN_BRAIN_PIXELS` brain pixels, or a real target constant over them.
    """
    x, y, brain = _brain_pixels(translated, real_target, brain_mask)
    n = brain.sum(axis=(1, 2))
    scores = np.full(len(x), np.nan)
    for i in np.flatnonzero(n >= MIN_BRAIN_PIXELS):
        xb, yb = x[i][brain[i]], y[i][brain[i]]
        if np.ptp(yb) == 0:
            continue
        if np.ptp(xb) == 0:
            scores[i] = 0.0
            continue
        xb, yb = xb - xb.mean(), yb - yb.mean()
        scores[i] = float(np.clip((xb * yb).sum() / math.sqrt((xb**2).sum() * (yb**2).sum()),
                                  -1.0, 1.0))
    return scores


def blur_in_mask(images, mask, sigma: float) -> np.ndarray:
    """(N, H, W) float64: each image Gaussian-blurred (``sigma`` pixels) within its
    mask, by normalised convolution: G * (x m) / G * (m), so nothing outside the mask
    (a translation's background, a left-out lesion) bleeds in; 0 outside the mask."""
    from scipy import ndimage

    x = _as_batch(images).astype(np.float64)
    m = (_as_batch(mask) > 0).astype(np.float64)
    sigmas = (0, sigma, sigma)  # per image: no mixing along the batch axis
    num = ndimage.gaussian_filter(x * m, sigmas, mode="constant")
    den = ndimage.gaussian_filter(m, sigmas, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, num / np.maximum(den, 1e-12), 0.0)


def structure_r(translated, real_target, mask, sigma: float) -> np.ndarray:
    """Per image: `pearson_in_brain` of translation and real target, each blurred
    within ``mask`` (:func:`blur_in_mask`, ``sigma`` pixels): r at a scale where a
    texture no longer counts, while the anatomy and its contrast still do."""
    return pearson_in_brain(blur_in_mask(translated, mask, sigma),
                            blur_in_mask(real_target, mask, sigma), mask)


def trimmed_structure_r(translated, real, brain, sigma: float, trim: float) -> np.ndarray:
    """Per image: :func:`structure_r` over the brain pixels but the ``trim`` share whose
    blurred translation lies farthest from the least-squares line through the blurred
    real target: a paint of that size cannot lower it, a wrong map is everywhere.
    Not the gate's measure: a candidate for members that paint on the right map
    (experiments/adapt/painted.py, experiments/gate's known cases)."""
    brain = _as_batch(brain) > 0
    x = blur_in_mask(translated, brain, sigma)
    y = blur_in_mask(real, brain, sigma)
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        a, b = x[i][brain[i]], y[i][brain[i]]
        if a.size < MIN_BRAIN_PIXELS or np.ptp(b) == 0:
            continue
        slope, intercept = np.polyfit(b, a, 1)
        residual = np.abs(a - slope * b - intercept)
        keep = residual <= np.quantile(residual, 1 - trim)
        out[i] = np.corrcoef(a[keep], b[keep])[0, 1]
    return out


# Pixels within this distance of a lesion (real, or segmented in the translation) are
# left out of the gate's fidelity: a lesion the bias pasted or erased is the effect
# being measured, and must not fail its own gate; the margin covers the partial-volume
# rim that the segmenter's 2x2 cells miss.
LESION_MARGIN_PX = 2


def outside_lesions(brain_mask, lesion_masks, margin: int = LESION_MARGIN_PX) -> np.ndarray:
    """(N, H, W) brain pixels farther than ``margin`` pixels from every lesion pixel of
    ``lesion_masks`` (any number of (N, H, W) masks: real, segmented, ...)."""
    from scipy import ndimage

    brain = _as_batch(brain_mask) > 0
    lesion = np.zeros(brain.shape, bool)
    for mask in lesion_masks:
        lesion |= _as_batch(mask) > 0
    structure = ndimage.generate_binary_structure(2, 1)[None]  # per image, 4-connected
    near = ndimage.binary_dilation(lesion, structure, iterations=margin) if margin else lesion
    return brain & ~near


def ssim_in_brain(translated, real_target, brain_mask, data_range: float = 1.0) -> np.ndarray:
    """Per image: the SSIM map of `metrics.ssim` averaged over brain pixels.

    Same Gaussian-window SSIM (window 11, sigma 1.5, mirrored edges); only the
    pixels averaged differ: the brain, border pixels included. NaN for an
    image with fewer than `MIN_BRAIN_PIXELS` brain pixels.
    """
    x, y, brain = _brain_pixels(translated, real_target, brain_mask)
    scores = ssim(x, y, data_range, mask=brain)
    return np.where(brain.sum(axis=(1, 2)) >= MIN_BRAIN_PIXELS, scores, np.nan)


def structure_sigma(height: int) -> float:
    """`STRUCTURE_SIGMA_64` in pixels of images ``height`` rows tall."""
    return STRUCTURE_SIGMA_64 * height / 64


def gate(method: str, structure: float, contrast_error: float,
         contrast_checked: bool = True) -> tuple[str, str]:
    """(verdict, why) of a member from its healthy sources' structure r and contrast
    error: ``ok``; ``wrong_map`` with the failed checks (also for NaN: no evidence
    it translates); ``not_gated`` for methods whose spec is not ``gated`` (gan:
    nothing ties its output to its input, so a wrong map is by design). A method
    the catalog does not know (an outside translator ``judge`` scores) is gated. Data without
    tissue maps (real BraTS) cannot have its contrast checked
    (``contrast_checked=False``): structure r alone decides, and ``why`` says so."""
    if method in SPECS and not SPECS[method].gated:  # an outside translator is gated
        return NOT_GATED, ""
    failed = []
    if not structure >= STRUCTURE_GATE:
        failed.append(f"structure r {structure:.2f} < {STRUCTURE_GATE:g}")
    if contrast_checked and not contrast_error <= CONTRAST_TOLERANCE:
        failed.append(f"contrast error {contrast_error:.2f} > {CONTRAST_TOLERANCE:g}")
    if failed:
        return WRONG_MAP, "; ".join(failed)
    return OK, "" if contrast_checked else "contrast unchecked: the data has no tissue maps"


def count_passing(method: str, rows: Iterable[Mapping]) -> int:
    """How many of ``rows`` (stored healthy-source numbers: ``structure_r`` and
    ``contrast_error``) today's gate passes: a file's ``quality`` column is the gate of
    the day each row was written."""
    return sum(gate(method, row["structure_r"], row["contrast_error"])[0] == OK
               for row in rows)


def calibrate(scores: Iterable[Mapping], column: str, higher_passes: bool) -> float:
    """The threshold on ``column`` halfway between the worst case that must pass and
    the best that must fail: the largest margin on both sides. ``scores`` are rows
    of known cases (``expected``: pass or fail; report rows are ignored);
    ``higher_passes``: whether passing cases lie above it. Cases that must fail for
    another check (a painted disc keeps its contrast) are left out of this one when
    they would pass it: their ``fails_by`` names the check that fails them."""
    scores = list(scores)
    passing = [r[column] for r in scores if r["expected"] == "pass"]
    failing = [r[column] for r in scores if r["expected"] == "fail"
               and r.get("fails_by", column) in ("", column)]
    sign = 1.0 if higher_passes else -1.0
    worst_pass = min(sign * v for v in passing)
    best_fail = max(sign * v for v in failing)
    if not worst_pass > best_fail:
        raise ValueError(f"{column} does not separate the known cases: worst pass "
                         f"{sign * worst_pass:.3f}, best fail {sign * best_fail:.3f}")
    return sign * (worst_pass + best_fail) / 2


def gate_warning(method: str, name: str, why: str) -> str:
    """The one line `evaluate` prints for a member that fails the gate (``name`` as
    ``config.Member.name`` names it: its gridded knobs too)."""
    return (f"warning: {method} {name} fails the quality gate ({why}): it does not render "
            "the target's map; its flips are not the paper's effect")


def member_name(row: Mapping) -> str:
    return "/".join([f"ratio={row['target_tumor_ratio']:g}", f"seed={row['seed']}",
                     *(f"{k}={float(v):g}" for k, v in knobs_of(row))])


def gate_warnings(rows: Iterable[Mapping]) -> list[str]:
    """One `gate_warning` per member of results rows that fails the gate. A member is
    read from its healthy row. Diverged members are left out: their `status`
    already says to ignore them."""
    return [gate_warning(row["method"], member_name(row), row.get("gate_reason", ""))
            for row in rows
            if row["source_label"] == "healthy" and row.get("quality") == WRONG_MAP
            and row.get("status", "ok") == "ok"]


def print_gate_warnings(rows: Iterable[Mapping], file=None) -> None:
    for line in gate_warnings(rows):
        print(line, file=sys.stderr if file is None else file, flush=True)
