"""The methods comparison (issue 12): flips at the extreme ratios against fidelity.

From the result rows of finished run folders (one per method, as
``reproduce`` writes them; several ``reproduce`` folders can be combined:
``jobs.run_folder.read_runs``), it makes, per setting (a method, or each of
its grid points when it has gridded knobs; never pooled):

- one point for **tumors added** at the highest target tumor ratio (100%,
  healthy sources) and one for **tumors removed** at the lowest (0%, tumor
  sources). y: the flip fraction, mean over seeds, error bars its 95%
  interval over seeds (:func:`metrics.seed_interval`; dotted when fewer
  than ``metrics.MIN_SEEDS`` seeds make it unreliable); x: the structure r
  of the same members (their healthy rows, as the quality gate reads it),
  mean over seeds, error bars the seeds' min to max. A point with a member
  that fails the gate is hollow (as in :func:`figures.bias_curve_figure`);
  ``gan`` (never gated) is a square.
- one row of a markdown table: structure r and pixel r per ratio, GM/WM, the
  gate, the two flips (``*``: interval over too few seeds), pFPR / iFPR at the
  highest ratio and lesion preservation per ratio.

Diverged members (``status`` not ``ok``) are left out of every number and
counted in the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jax_translate.catalog import METHODS
from jax_translate.evaluation import figures, metrics, quality, results

ADDED, REMOVED = "added", "removed"
# what: (source label, which end of the ratio sweep)
PANELS = {ADDED: ("healthy", max), REMOVED: ("tumor", min)}
GATE_LABEL = f"quality gate (structure r {quality.STRUCTURE_GATE:g})"
NOT_GATED_LABEL = "not gated (gan)"


# ------------------------------------------------------------------ order


def method_order(methods) -> list[str]:
    """The registry's order (the paper's four, then the others); unknown names last."""
    known = [m for m in METHODS if m in methods]
    return known + sorted(m for m in methods if m not in METHODS)


# ------------------------------------------------------------------ numbers


def _ok(rows):
    return [r for r in rows if r.get("status", "ok") == "ok"]


def _select(rows, method, label=None, ratio=None, knobs=()):
    return [r for r in rows if r["method"] == method and metrics.knobs_of(r) == tuple(knobs)
            and (label is None or r["source_label"] == label)
            and (ratio is None or math.isclose(float(r["target_tumor_ratio"]), ratio))]


def ratios_of(rows, method=None, knobs=None) -> list[float]:
    """The ratios of ``rows`` (of ``method``; of its grid point ``knobs`` if given)."""
    return sorted({float(r["target_tumor_ratio"]) for r in rows
                   if (method is None or r["method"] == method)
                   and (knobs is None or metrics.knobs_of(r) == tuple(knobs))})


def settings(rows) -> list[tuple[str, tuple]]:
    """(method, gridded knobs) of the rows: methods in registry order, each method's
    grid points in the rows' order."""
    found = figures.settings(rows)
    return [(m, k) for method in method_order({m for m, _ in found})
            for m, k in found if m == method]


def _finite(values):
    values = np.asarray([float(v) for v in values], float)
    return values[np.isfinite(values)]


def _mean(values) -> float:
    values = _finite(values)
    return float(values.mean()) if len(values) else math.nan


def flip_point(rows: list[dict], method: str, what: str, knobs: tuple = ()) -> dict | None:
    """One point of the figure: ``what`` is ``added`` (healthy sources, highest
    ratio) or ``removed`` (tumor sources, lowest ratio) of the setting (``method``,
    ``knobs``); None if it has no such rows."""
    label, pick = PANELS[what]
    rows = _ok(rows)
    ratios = ratios_of(rows, method, knobs)
    if not ratios:
        return None
    ratio = pick(ratios)
    flips = _select(rows, method, label, ratio, knobs)
    members = _select(rows, method, "healthy", ratio, knobs)  # fidelity as the gate reads it
    if not flips:
        return None
    interval = results.across_seeds(flips, removed=what == REMOVED)
    r = _finite(m["structure_r"] for m in members)
    verdicts = [m.get("quality") for m in members]
    return dict(method=method, knobs=tuple(knobs), what=what, ratio=ratio,
                seeds=sorted({m["seed"] for m in flips}),
                y=interval.mean, y_low=interval.low, y_high=interval.high,
                reliable=interval.reliable,
                x=float(r.mean()) if len(r) else math.nan,
                x_low=float(r.min()) if len(r) else math.nan,
                x_high=float(r.max()) if len(r) else math.nan,
                wrong_map=quality.WRONG_MAP in verdicts,
                not_gated=bool(verdicts) and all(v == quality.NOT_GATED for v in verdicts))


def summary(rows: list[dict]) -> list[dict]:
    """Per setting (methods in registry order, then their grid points): the table's
    numbers and the figure's points; ``label`` names the setting."""
    out = []
    all_ratios = ratios_of(rows)
    for method, knobs in settings(rows):
        mine = _select(rows, method, knobs=knobs)
        ok = _ok(mine)
        healthy = [r for r in ok if r["source_label"] == "healthy"]
        top = max(ratios_of(ok, method), default=math.nan)
        verdicts = [r.get("quality") for r in healthy]
        at = lambda label, x: _select(ok, method, label, x, knobs)  # noqa: E731
        out.append(dict(
            method=method,
            knobs=knobs,
            label=figures.setting_label(method, knobs),
            ratios=all_ratios,
            members=len({(r["target_tumor_ratio"], r["seed"]) for r in mine}),
            diverged=len({(r["target_tumor_ratio"], r["seed"]) for r in mine
                          if r.get("status", "ok") != "ok"}),
            structure_r={x: _mean(r["structure_r"] for r in at("healthy", x))
                         for x in all_ratios},
            fidelity_r={x: _mean(r["fidelity_r"] for r in at("healthy", x)) for x in all_ratios},
            gm_wm=_mean(r.get("gm_wm", math.nan) for r in healthy),
            gm_wm_real=_mean(r.get("gm_wm_real", math.nan) for r in healthy),
            lesion_kept={x: _mean(r["lesion_score"] for r in at("tumor", x)) for x in all_ratios},
            n_wrong_map=verdicts.count(quality.WRONG_MAP),
            n_gated=sum(v in (quality.OK, quality.WRONG_MAP) for v in verdicts),
            not_gated=bool(verdicts) and all(v == quality.NOT_GATED for v in verdicts),
            top_ratio=top,
            pfpr=_mean(r.get("pfpr", math.nan) for r in at("healthy", top)),
            ifpr=_mean(r.get("ifpr", math.nan) for r in at("healthy", top)),
            added=flip_point(rows, method, ADDED, knobs),
            removed=flip_point(rows, method, REMOVED, knobs),
        ))
    return out


# ------------------------------------------------------------------ table


def _num(x: float, fmt: str = ".2f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


def _pct(ratio: float) -> str:
    return f"{100 * ratio:g}%"


def quality_cell(s: dict) -> str:
    if s["not_gated"]:
        return "not gated"
    if s["n_wrong_map"] == 0:
        return "ok"
    return f"wrong map {s['n_wrong_map']}/{s['n_gated']}"


def _flip_cell(point: dict | None) -> str:
    if point is None:
        return "-"
    mark = "" if point["reliable"] else results.UNRELIABLE_MARK
    return f"{point['y']:.2f} [{point['y_low']:.2f}, {point['y_high']:.2f}]{mark}"


def markdown_table(summaries: list[dict]) -> str:
    """The comparison table (experiments/methods_comparison/README.md), one row per
    setting; a note under it when an interval rests on too few seeds."""
    ratios = summaries[0]["ratios"] if summaries else []
    per_ratio = " / ".join(_pct(x).rstrip("%") for x in ratios) + "%"
    top = _pct(max(ratios)) if ratios else "100%"
    low = _pct(min(ratios)) if ratios else "0%"
    head = ["method", f"structure r at {per_ratio}", f"pixel r at {per_ratio}",
            "GM/WM (real)", "gate",
            f"added @{top} [95% CI over seeds]", f"removed @{low} [95% CI over seeds]",
            f"pFPR / iFPR @{top}",
            f"lesion kept at {per_ratio}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        name = s["label"] + (f" ({s['diverged']} diverged)" if s["diverged"] else "")
        cells = [name,
                 " / ".join(_num(s["structure_r"].get(x)) for x in ratios),
                 " / ".join(_num(s["fidelity_r"].get(x)) for x in ratios),
                 f"{_num(s['gm_wm'])} ({_num(s['gm_wm_real'])})",
                 quality_cell(s),
                 _flip_cell(s["added"]),
                 _flip_cell(s["removed"]),
                 f"{_num(s['pfpr'], '.4f')} / {_num(s['ifpr'])}",
                 " / ".join(_num(s["lesion_kept"].get(x)) for x in ratios)]
        lines.append("| " + " | ".join(cells) + " |")
    if any(p is not None and not p["reliable"] for s in summaries for p in (s[ADDED], s[REMOVED])):
        lines.append(f"\n{results.UNRELIABLE_NOTE}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ figure


def comparison_figure(rows: list[dict]):
    """Two panels: tumors added at the highest ratio, removed at the lowest, each
    against structure r; one point per setting (see the module docstring). The
    gate's structure bar is a dashed line (its contrast check is the hollow
    markers' other reason)."""
    plt = figures._pyplot()
    summaries = summary(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), sharey=True)
    for ax, what in zip(axes, (ADDED, REMOVED)):
        label, _ = PANELS[what]
        ratio = None
        for s in summaries:
            p = s[what]
            if p is None:
                continue
            ratio = p["ratio"]
            color = figures.method_color(s["method"])
            xerr = np.clip([[p["x"] - p["x_low"]], [p["x_high"] - p["x"]]], 0.0, None)
            ax.errorbar([p["x"]], [p["y"]], xerr=xerr, fmt="none", ecolor=color,
                        elinewidth=1.0, capsize=2, alpha=0.8)
            figures.interval_bars(ax, [p["x"]], [p["y"]], [p["y_low"]], [p["y_high"]],
                                  [p["reliable"]], color, elinewidth=1.0, capsize=2, alpha=0.8)
            ax.plot([p["x"]], [p["y"]], ls="", marker="s" if p["not_gated"] else "o", ms=7,
                    color=color, mfc="none" if p["wrong_map"] else color, mew=1.5,
                    label=s["label"])
            ax.annotate(s["label"], (p["x"], p["y"]), xytext=(5, 4),
                        textcoords="offset points", fontsize=7, color=color)
        ax.axvline(quality.STRUCTURE_GATE, ls="--", color="gray", lw=1, label=GATE_LABEL)
        where = f"{_pct(ratio)} tumor target" if ratio is not None else ""
        ax.set_title(f"tumors {what}, {where} ({label} sources)", fontsize=10)
        ax.set_xlabel("structure r (healthy holdout; mean, seeds' min-max)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of holdout translations flipped\n"
                       "(mean over seeds, 95% CI over seeds)")
    lo = min([s[w]["x_low"] for s in summaries for w in PANELS
              if s[w] is not None and math.isfinite(s[w]["x_low"])],
             default=quality.STRUCTURE_GATE)
    for ax in axes:
        ax.set_xlim(min(lo - 0.05, quality.STRUCTURE_GATE - 0.1), 1.0)
    # Legend: one filled marker per method, then the reference lines and the marker styles.
    handles = [plt.Line2D([], [], ls="", marker="s" if s["not_gated"] else "o", ms=7,
                          color=figures.method_color(s["method"]))
               for s in summaries]
    labels = [s["label"] for s in summaries]
    handles.append(plt.Line2D([], [], ls="--", color="gray", lw=1))
    labels.append(GATE_LABEL)
    points = [p for s in summaries for p in (s[ADDED], s[REMOVED]) if p is not None]
    if any(p["wrong_map"] for p in points):
        handles.append(plt.Line2D([], [], ls="", marker="o", color="gray", mfc="none", ms=7))
        labels.append(figures.WRONG_MAP_LABEL)
    if not all(p["reliable"] for p in points):
        handles.append(plt.Line2D([], [], ls=":", color="gray", lw=1))
        labels.append(figures.UNRELIABLE_LABEL)
    if any(p["not_gated"] for p in points):
        handles.append(plt.Line2D([], [], ls="", marker="s", color="gray", ms=7))
        labels.append(NOT_GATED_LABEL)
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    return fig


def comparison_plot(rows: list[dict], out: str | Path) -> Path:
    """`comparison_figure(rows)`, saved to `out`."""
    return figures._write(comparison_figure(rows), Path(out))
