"""Result rows: one per (method, target ratio, seed, source label), their CSV, and pooling.

A row (:class:`ResultRow`, made by :func:`scoring.score`) holds a member's flips
on healthy or tumor holdout sources with each image's verdict, pixel and lesion
metrics against the real paired target, fidelity (pixel r, structure r, the
contrast check) and the member's gate verdict. :func:`across_seeds` gives the
flip fraction of a setting (method, ratio and gridded knobs: :func:`setting`)
over its seeds, with an interval that carries seed and image noise
(:func:`metrics.seed_interval`): the flip table, ``results.csv``'s ``seeds_*``
columns, the bias curves and the methods comparison all read their numbers
through it. Rows of different grid points are never pooled.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TypedDict

import numpy as np

from jax_translate.config import GRID_FIELDS
from jax_translate.evaluation import metrics, quality

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
    verdicts: str              # each image's verdict, in the holdout's order
                               # (metrics.encode_verdicts): what seed intervals read
    mae: float
    psnr: float
    ssim: float
    lesion_score: float        # metrics.lesion_score: lesion contrast kept, vs real target
    fidelity_r: float          # pixel r (quality.pearson_in_brain), mean over the images;
                               # healthy rows: whole brain; tumor rows: outside the real
                               # lesion and its margin (scoring.scored_region)
    structure_r: float         # quality.structure_r over the same pixels: the gate's
    fidelity_ssim: float
    n_unscored: int            # images without an r (too little brain, or too much of
                               # it left out): counted, never silently dropped
    left_out: float            # mean share of the brain left out (tumor rows)
    gm_wm: float               # contrast.contrast of the translations ...
    csf_wm: float
    gm_wm_real: float          # ... and of the real targets, over the same pixels
    csf_wm_real: float
    contrast_error: float      # contrast.Contrast.error: the gate's
    quality: str               # quality.gate of the member's healthy row
    gate_reason: str           # the checks it failed ("" when ok)
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
    interval (:func:`metrics.seed_interval`, from each image's verdict; unreliable
    below ``metrics.MIN_SEEDS`` seeds)."""
    return metrics.seed_interval(metrics.verdict_matrix(rows, removed))


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


# Columns read back as text, whatever they look like (a verdicts string "00" or "1e5"
# must not become a number).
TEXT_COLUMNS = ("method", "source_label", "status", "verdicts", "quality", "gate_reason")


def _parse(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``results.csv``, numbers parsed (``nan`` included), text kept as text."""
    with open(path, newline="") as f:
        return [{k: v if k in TEXT_COLUMNS else _parse(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _mean(rows: list[dict], column: str) -> float:
    """Mean of a column over rows, NaN where a row has none (an empty CSV cell included)."""
    values = np.asarray([r.get(column) if isinstance(r.get(column), (int, float)) else np.nan
                         for r in rows], float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else np.nan


def gate_cell(rows: list[dict]) -> str:
    """The members' gate verdicts over seeds: ``ok``, ``wrong_map``, ``wrong_map 1/3``
    (when 1 of 3 seeds fails it) or ``not_gated``."""
    verdicts = [r["quality"] for r in rows if r["source_label"] == "healthy" and "quality" in r]
    if not verdicts:
        return "-"
    n_bad = verdicts.count(quality.WRONG_MAP)
    if n_bad:
        return quality.WRONG_MAP + (f" {n_bad}/{len(verdicts)}" if n_bad < len(verdicts) else "")
    return verdicts[0]


def fidelity_cells(rows: list[dict]) -> tuple[str, str, str]:
    """(pixel r, structure r, ``GM/WM 0.71 (0.67)``): healthy sources' means over seeds."""
    healthy = [r for r in rows if r["source_label"] == "healthy"]
    ratio, real = _mean(healthy, "gm_wm"), _mean(healthy, "gm_wm_real")
    return (f"{_mean(healthy, 'fidelity_r'):.2f}", f"{_mean(healthy, 'structure_r'):.2f}",
            f"{ratio:.2f} ({real:.2f})")


UNRELIABLE_MARK = "*"
UNRELIABLE_NOTE = (f"{UNRELIABLE_MARK} fewer than {metrics.MIN_SEEDS} seeds: the interval "
                   "cannot say how much seeds disagree (unreliable)")


def interval_cell(interval: metrics.SeedInterval) -> str:
    """``0.50 [0.00, 1.00]*``: the mean over seeds, its interval, the mark if unreliable."""
    mark = "" if interval.reliable else UNRELIABLE_MARK
    return f"{interval.mean:.2f} [{interval.low:.2f}, {interval.high:.2f}]{mark}"


def table_rows(rows: list[dict], ratios=None) -> tuple[list[dict], bool]:
    """One cell dict per setting (method, ratio, gridded knobs) of ``rows`` whose status
    is ok, at ``ratios`` (None: all): the flips over seeds and what the gate reads; and
    whether any interval rests on fewer than ``metrics.MIN_SEEDS`` seeds. What both
    flip tables print."""
    members: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status", "ok") == "ok":
            members.setdefault(setting(r), []).append(r)
    out, unreliable = [], False
    for (method, ratio, knobs), at in members.items():
        if ratios is not None and not any(abs(ratio - x) < 1e-9 for x in ratios):
            continue
        flips = []
        for label in LABELS:
            interval = across_seeds([r for r in at if r["source_label"] == label])
            unreliable |= not interval.reliable
            flips.append(interval_cell(interval))
        pixel, structure, gm_wm = fidelity_cells(at)
        out.append({"method": method, "ratio": ratio, "knobs": metrics.knob_label(knobs),
                    "added": flips[0], "kept": flips[1], "pixel_r": pixel,
                    "structure_r": structure, "gm_wm": gm_wm, "gate": gate_cell(at),
                    "lesion": _mean([r for r in at if r["source_label"] == "tumor"],
                                    "lesion_score")})
    return out, unreliable


def flip_table(rows: list[dict], ratios=(0.0, 0.5, 1.0)) -> str:
    """Per setting (method, ratio, gridded knobs): fraction of holdout images predicted
    tumor, per source label, next to what the gate reads.

    The mean over seeds; brackets hold its 95% interval (:func:`across_seeds`),
    marked ``*`` with fewer than ``metrics.MIN_SEEDS`` seeds (a note under the
    table says so). ``healthy`` columns are tumors *added*, ``tumor`` columns tumors
    *kept* (1 - removed). Then, on healthy sources and over seeds, pixel r,
    structure r and GM/WM of the translations (the real target's in brackets), and
    the gate's verdict (``wrong_map k/n`` when k of n seeds fail it): flips of
    members that fail it are not the paper's effect. A ``knobs`` column names each
    row's grid point when the rows have one.
    """
    cells, unreliable = table_rows(rows, ratios)
    width = max([len(c["knobs"]) for c in cells] + [0])
    knob_head = f"{'knobs':{width}s}  " if width else ""
    lines = [f"{'method':11s} {knob_head}{'ratio':>5s}  {'healthy->tumor':>23s}  "
             f"{'tumor->tumor':>23s}  {'pixel r':>7s}  {'struct r':>8s}  "
             f"{'GM/WM (real)':>12s}  gate"]
    for c in cells:
        knob_cell = f"{c['knobs']:{width}s}  " if width else ""
        lines.append(f"{c['method']:11s} {knob_cell}{c['ratio']:5.2f}  {c['added']:>23s}  "
                     f"{c['kept']:>23s}  {c['pixel_r']:>7s}  {c['structure_r']:>8s}  "
                     f"{c['gm_wm']:>12s}  {c['gate']}")
    if unreliable:
        lines.append(UNRELIABLE_NOTE)
    return "\n".join(lines)


def markdown_flip_table(rows: list[dict]) -> str:
    """The flip table as markdown (the README's, `jax-translate table`): per setting and
    ratio, tumors added to healthy sources and kept in tumor sources (mean over seeds
    [95% interval, `across_seeds`]), lesion preservation, then on healthy sources pixel
    r, structure r and GM/WM (the real target's in brackets), and the gate's verdicts."""
    cells, unreliable = table_rows(rows)
    lines = ["| method | target tumor % | added (healthy -> tumor) | kept (tumor -> tumor) | "
             "lesion kept | pixel r | structure r | GM/WM (real) | gate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        name = f"{c['method']} {c['knobs']}".strip()
        lines.append(f"| {name} | {100 * c['ratio']:g} | {c['added']} | {c['kept']} | "
                     f"{c['lesion']:.2f} | {c['pixel_r']} | {c['structure_r']} | {c['gm_wm']} | "
                     f"{c['gate']} |")
    if unreliable:
        lines.append("\n" + UNRELIABLE_NOTE)
    return "\n".join(lines)
