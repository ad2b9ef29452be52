"""Scores translations: from every member's translated holdout images to results rows.

:func:`score` is the one scoring call: ``evaluate`` (``jobs/evaluate_run``),
``judge`` and every experiment read their numbers through it, so a number means
the same wherever it is printed. Per member and source label
(:class:`results.ResultRow`):

- the classifier's verdicts (``n_pred_tumor`` and each image's, ``verdicts``,
  from which intervals over seeds are computed) and StegoGAN's pFPR / iFPR;
- pixel agreement with the real paired target (MAE, PSNR, SSIM) and the lesion
  score (masks, no classifier);
- fidelity: pixel r and structure r (`quality`), and the contrast check
  (`contrast`), over the whole brain on healthy sources; on tumor sources over
  the brain outside the real lesion and its margin, an image that would lose
  more than `quality.MAX_LEFT_OUT` of its brain having none. Images without an
  r are counted (``n_unscored``), never silently dropped;
- the member's gate verdict (`quality.gate`), read from its healthy row.

Pure: arrays and configs in, rows out; nothing is written.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from jax_translate.data.dataset import SliceSet
from jax_translate.evaluation import contrast, hallucination, metrics, quality
from jax_translate.evaluation.results import LABELS, ResultRow


class Judge(Protocol):
    """What scores a translation tumor or not: the evaluation classifier
    (:class:`classifier.CachedClassifier`) or a test's stand-in. ``tumor_pixels``
    is optional (without it pFPR and iFPR are NaN)."""

    def predict(self, images: np.ndarray, brain_mask: np.ndarray | None = None) -> np.ndarray:
        ...


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def _fidelity(x: np.ndarray, y: np.ndarray, mask: np.ndarray, tissue: np.ndarray | None
              ) -> dict:
    """Pixel r, structure r, SSIM and the contrast check of translations ``x`` against
    real ``y`` over ``mask`` (N, H, W)."""
    pixel = quality.pearson_in_brain(x, y, mask)
    out = {"fidelity_r": _nanmean(pixel), "n_unscored": int(np.isnan(pixel).sum()),
           "structure_r": _nanmean(quality.structure_r(
               x, y, mask, quality.structure_sigma(x.shape[1]))),
           "fidelity_ssim": _nanmean(quality.ssim_in_brain(x, y, mask)),
           "gm_wm": math.nan, "csf_wm": math.nan, "gm_wm_real": math.nan,
           "csf_wm_real": math.nan, "contrast_error": math.nan}
    if tissue is not None:
        found, real = contrast.contrast(x, tissue, mask), contrast.contrast(y, tissue, mask)
        out.update(gm_wm=found.gm_wm, csf_wm=found.csf_wm, gm_wm_real=real.gm_wm,
                   csf_wm_real=real.csf_wm, contrast_error=found.error(real))
    return out


def scored_region(test: SliceSet, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask, left-out share) per image of ``test``: the whole brain for healthy
    sources; for tumor sources the brain outside the real lesion and its margin, and
    none at all for an image that would lose more than ``quality.MAX_LEFT_OUT``."""
    brain = test.brain_mask > 0
    if label == "healthy":
        return brain, np.zeros(len(test))
    outside = quality.outside_lesions(brain, [test.tumor_mask])
    area = np.maximum(brain.sum(axis=(1, 2)), 1)
    left_out = 1.0 - outside.sum(axis=(1, 2)) / area
    outside[left_out > quality.MAX_LEFT_OUT] = False
    return outside, left_out


def score(cfg, translated: np.ndarray, test: SliceSet, judge: Judge | None = None,
          diverged: np.ndarray | None = None) -> list[ResultRow]:
    """Rows of every member of ``cfg`` from ``translated`` (members, N, H, W), its
    translations of ``test``'s source images: one per member and source label.

    ``cfg`` is a SweepConfig, or anything with its ``method``, ``members``
    (``config.Member``s) and ``target`` (an outside translator's translations are
    scored the same way). ``judge`` (the evaluation classifier) calls translations
    tumor or not; without one the flip columns are NaN. ``diverged`` (members,) marks
    members frozen in training.
    """
    diverged = np.zeros(len(cfg.members), bool) if diverged is None else np.asarray(diverged)
    regions = {label: scored_region(test, label) for label in LABELS}
    rows = []
    for m, (ratio, seed, knobs) in enumerate(cfg.members):
        pred = (np.asarray(judge.predict(translated[m], brain_mask=test.brain_mask), bool)
                if judge is not None else None)
        member = [{"method": cfg.method, "target_tumor_ratio": ratio, "seed": seed,
                   "source_label": name, "status": "diverged" if diverged[m] else "ok",
                   **_label_columns(translated[m], test, cfg.target, value, name, regions[name],
                                    pred, judge),
                   **dict(knobs)}
                  for value, name in enumerate(LABELS)]
        # the gate reads the healthy row (LABELS[0]): the whole brain, where a pasted
        # lesion counts against the translator; tumor rows' fidelity is for reference
        verdict, why = quality.gate(cfg.method, member[0]["structure_r"],
                                    member[0]["contrast_error"], contrast_checked=test.has_tissue)
        rows += [{**row, "quality": verdict, "gate_reason": why} for row in member]
    return rows


# What a row holds before it is scored: every measured column, NaN (or "" for text).
_UNSCORED = {column: ("" if column == "verdicts" else math.nan)
             for column in ResultRow.__annotations__
             if column not in ("method", "target_tumor_ratio", "seed", "source_label", "status",
                               "quality", "gate_reason")}


def _label_columns(translated: np.ndarray, test: SliceSet, target: str, label_value: int,
                   name: str, region, pred, judge) -> dict:
    """The measured columns of one member's row of source label ``name``."""
    sel = test.label == label_value
    n = int(sel.sum())
    out = {**_UNSCORED, "n_images": n}
    if not n:
        return out
    x, y = translated[sel], test.image(target)[sel]
    mask, left_out = (part[sel] for part in region)
    if pred is not None:
        k = int(pred[sel].sum())
        low, high = metrics.wilson_interval(k, n)
        out.update(n_pred_tumor=k, frac_pred_tumor=k / n, ci_low=low, ci_high=high,
                   verdicts=metrics.encode_verdicts(pred[sel]))
    out.update(mae=float(np.mean(metrics.mae(x, y))), psnr=float(np.mean(metrics.psnr(x, y))),
               ssim=float(np.mean(metrics.ssim(x, y))),
               lesion_score=_nanmean(metrics.lesion_score(
                   x, y, test.label[sel], test.tumor_mask[sel], test.brain_mask[sel])),
               left_out=float(left_out.mean()),
               **_fidelity(x, y, mask, test.tissue[sel] if test.has_tissue else None))
    tumor_pixels = getattr(judge, "tumor_pixels", None)
    if tumor_pixels is not None and name == "healthy":
        brain_pixels = test.brain_mask[sel].reshape(n, -1).sum(1)
        out["pfpr"], out["ifpr"] = hallucination.false_positive_rates(
            tumor_pixels(x), brain_pixels, x.shape[1:3])
    return out
