"""Result rows: one per (method, target ratio, seed, source label), their CSV, and pooling.

A row (:class:`ResultRow`) holds a member's flips on healthy or tumor holdout
sources, the classifier's Wilson interval, pixel and lesion metrics against
the real paired T1, fidelity inside the brain and the member's quality
verdict. :func:`across_seeds` gives the flip fraction of a setting (method,
ratio and gridded knobs: :func:`setting`) over its seeds, with an interval
that includes the seeds' disagreement (:func:`metrics.seed_interval`): the
flip table, ``results.csv``'s ``seeds_*`` columns, the bias curves and the
methods comparison all read their numbers through it. Rows of different
grid points are never pooled.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TypedDict

import numpy as np

from jax_translate.config import GRID_FIELDS, SweepConfig
from jax_translate.data.dataset import SliceSet
from jax_translate.evaluation import hallucination, metrics, quality

LABELS = ("healthy", "tumor")


class ResultRow(TypedDict):
    """The columns of ``results.csv`` and the rows of ``results.json``."""

    method: str
    target_tumor_ratio: float
    seed: int
    source_label: str          # LABELS
    status: str                # "ok" or "diverged" (then read nothing else)
    n_images: int
    n_pred_tumor: int          # holdout translations the classifier calls tumor
    frac_pred_tumor: float
    ci_low: float              # Wilson 95% interval of frac_pred_tumor: this member's
                               # images only (over seeds: metrics.SEED_COLUMNS)
    ci_high: float
    mae: float
    psnr: float
    ssim: float
    lesion_score: float        # metrics.lesion_score: lesion contrast kept, vs real target
    fidelity_r: float          # the gate's: quality.pearson_in_brain outside every lesion
    fidelity_r_brain: float    # quality.pearson_in_brain over the whole brain
    fidelity_ssim: float
    quality: str               # quality.quality_verdict of the member's healthy row
    pfpr: float                # hallucination.false_positive_rates (healthy rows)
    ifpr: float


COLUMNS = tuple(ResultRow.__annotations__)


def setting(row) -> tuple:
    """(method, target tumor ratio, gridded knobs): the rows of one setting differ only
    by seed (and source label); nothing is pooled across settings."""
    return row["method"], row["target_tumor_ratio"], metrics.knobs_of(row)


def across_seeds(rows, removed: bool = False) -> metrics.SeedInterval:
    """The fraction of ``rows``' images predicted tumor (``removed``: not predicted
    tumor), mean over the rows (seeds of one setting and source label), and its
    interval over seeds (:func:`metrics.seed_interval`; unreliable below
    ``metrics.MIN_SEEDS`` seeds)."""
    n = [int(r["n_images"]) for r in rows]
    k = [int(r["n_pred_tumor"]) for r in rows]
    return metrics.seed_interval([n_i - k_i for n_i, k_i in zip(n, k)] if removed else k, n)


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else np.nan


def member_rows(cfg: SweepConfig, translated: np.ndarray, pred: np.ndarray, test: SliceSet,
                diverged: np.ndarray, tumor_pixels: np.ndarray | None = None,
                lesion_masks: np.ndarray | None = None) -> list[ResultRow]:
    """Rows of every member; ``tumor_pixels`` (members, N), the segmenter's tumor
    area per translation, gives the healthy rows StegoGAN's pFPR and iFPR;
    ``lesion_masks`` (members, N, H, W), its tumor pixels, are left out of the
    gate's fidelity with the real lesions (``quality.outside_lesions``)."""
    rows = []
    for m, (ratio, seed, knobs) in enumerate(cfg.members):
        member = []
        counts = metrics.flip_counts(pred[m], test.label)
        for label_value, name in enumerate(LABELS):
            sel = test.label == label_value
            x, y = translated[m][sel], test.image(cfg.target)[sel]
            n, k = counts[name]["n_images"], counts[name]["n_pred_tumor"]
            low, high = metrics.wilson_interval(k, n) if n else (np.nan, np.nan)
            lesion = metrics.lesion_score(x, y, test.label[sel], test.tumor_mask[sel],
                                          test.brain_mask[sel]) if n else np.array([np.nan])
            brain = test.brain_mask[sel]
            lesions = [test.tumor_mask[sel]] + ([lesion_masks[m][sel]]
                                                if lesion_masks is not None else [])
            outside = quality.outside_lesions(brain, lesions)
            member.append({
                "method": cfg.method, "target_tumor_ratio": ratio, "seed": seed,
                "source_label": name, "status": "diverged" if diverged[m] else "ok",
                "n_images": n, "n_pred_tumor": k, "frac_pred_tumor": counts[name]["frac_pred_tumor"],
                "ci_low": low, "ci_high": high,
                "mae": float(np.mean(metrics.mae(x, y))) if n else np.nan,
                "psnr": float(np.mean(metrics.psnr(x, y))) if n else np.nan,
                "ssim": float(np.mean(metrics.ssim(x, y))) if n else np.nan,
                "lesion_score": _nanmean(lesion),
                "fidelity_r": _nanmean(quality.pearson_in_brain(x, y, outside)) if n else np.nan,
                "fidelity_r_brain": (_nanmean(quality.pearson_in_brain(x, y, brain)) if n
                                     else np.nan),
                "fidelity_ssim": _nanmean(quality.ssim_in_brain(x, y, brain)) if n else np.nan,
                "pfpr": np.nan, "ifpr": np.nan, **dict(knobs),
            })
            if tumor_pixels is not None and name == "healthy":
                member[-1]["pfpr"], member[-1]["ifpr"] = hallucination.false_positive_rates(
                    tumor_pixels[m][sel], brain.reshape(len(brain), -1).sum(1), x.shape[1:3])
        # the gate reads the healthy row (LABELS[0]) only: there, a lesion the bias
        # pasted or erased cannot lower fidelity; tumor rows' is for reference
        verdict = quality.quality_verdict(cfg.method, member[0]["fidelity_r"])
        rows += [dict(row, quality=verdict) for row in member]
    return rows


def rows_to_csv(rows: list[dict]) -> str:
    """One line per row (per seed), its knobs, and its setting's interval over seeds
    (``metrics.SEED_COLUMNS``, the same on every seed's line of a setting and label)."""
    out = io.StringIO()
    knobs = [name for name in GRID_FIELDS if any(name in row for row in rows)]
    writer = csv.DictWriter(out, fieldnames=COLUMNS + metrics.SEED_COLUMNS + tuple(knobs),
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((setting(row), row["source_label"]), []).append(row)
    over_seeds = {key: metrics.seed_columns(members) for key, members in groups.items()}
    for row in rows:
        row = {**row, **over_seeds[setting(row), row["source_label"]]}
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def _parse(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``results.csv``, numbers parsed (``nan`` included)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _quality_cell(rows: list[dict]) -> str:
    """Mean healthy-source fidelity r over seeds and the members' verdicts,
    e.g. ``0.91 ok``, ``0.62 undertrained`` or ``0.80 undertrained 1/2``."""
    healthy = [r for r in rows if r["source_label"] == "healthy" and "quality" in r]
    if not healthy:
        return "-"  # results written before the quality columns existed
    fidelity = np.asarray([r["fidelity_r"] for r in healthy], float)
    verdicts = [r["quality"] for r in healthy]
    n_bad = verdicts.count(quality.UNDERTRAINED)
    if n_bad:
        verdict = quality.UNDERTRAINED + (f" {n_bad}/{len(verdicts)}" if n_bad < len(verdicts)
                                          else "")
    else:
        verdict = verdicts[0]
    r_mean = np.nanmean(fidelity) if np.isfinite(fidelity).any() else np.nan
    return f"{r_mean:.2f} {verdict}"


UNRELIABLE_MARK = "*"
UNRELIABLE_NOTE = (f"{UNRELIABLE_MARK} fewer than {metrics.MIN_SEEDS} seeds: the interval "
                   "cannot say how much seeds disagree (unreliable)")


def interval_cell(interval: metrics.SeedInterval) -> str:
    """``0.50 [0.00, 1.00]*``: the mean over seeds, its interval, the mark if unreliable."""
    mark = "" if interval.reliable else UNRELIABLE_MARK
    return f"{interval.mean:.2f} [{interval.low:.2f}, {interval.high:.2f}]{mark}"


def flip_table(rows: list[dict], ratios=(0.0, 0.5, 1.0)) -> str:
    """Per setting (method, ratio, gridded knobs): fraction of holdout images predicted
    tumor, per source label.

    The mean over seeds; brackets hold its 95% interval over seeds
    (:func:`metrics.seed_interval`), marked ``*`` with fewer than
    ``metrics.MIN_SEEDS`` seeds (a note under the table says so). ``healthy``
    columns are tumors *added*, ``tumor`` columns tumors *kept* (1 -
    removed). The last column is the mean fidelity r on healthy sources and
    the quality gate's verdict (``undertrained k/n`` when k of n seeds fail
    it): flips of undertrained members are not the paper's effect. A
    ``knobs`` column names each row's grid point when the rows have one.
    """
    members: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status", "ok") == "ok":
            members.setdefault(setting(r), []).append(r)
    width = max([len(metrics.knob_label(knobs)) for _, _, knobs in members] + [0])
    knob_head = f"{'knobs':{width}s}  " if width else ""
    header = (f"{'method':9s} {knob_head}{'ratio':>5s}  {'healthy->tumor':>23s}  "
              f"{'tumor->tumor':>23s}  fidelity r, quality")
    lines, unreliable = [header], False
    for (method, ratio, knobs), at in members.items():
        if ratios is not None and not any(abs(ratio - x) < 1e-9 for x in ratios):
            continue
        cells = []
        for label in LABELS:
            interval = across_seeds([r for r in at if r["source_label"] == label])
            unreliable |= not interval.reliable
            cells.append(interval_cell(interval))
        knob_cell = f"{metrics.knob_label(knobs):{width}s}  " if width else ""
        lines.append(f"{method:9s} {knob_cell}{ratio:5.2f}  {cells[0]:>23s}  {cells[1]:>23s}  "
                     f"{_quality_cell(at)}")
    if unreliable:
        lines.append(UNRELIABLE_NOTE)
    return "\n".join(lines)
