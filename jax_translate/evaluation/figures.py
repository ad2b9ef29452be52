"""Figures: bias curves (the paper's main result), flips, an example grid and the losses.

Every number drawn over seeds comes with its interval over seeds
(:func:`results.across_seeds`), per setting: a method's grid points
(gridded knobs) get their own panel or line, never one pooled curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jax_translate.catalog import SPECS
from jax_translate.data.dataset import SliceSet
from jax_translate.evaluation import metrics, quality, results
from jax_translate.images import MODALITY_NAMES

# docs/paper_protocol.md: fraction predicted tumor in the authors' notebooks, by target
# tumor % 0, 10, ..., 100 (their classifier: 75-82% accurate on real T1).
PAPER_CURVES = {
    "cyclegan": {"healthy": (.27, .27, .43, .35, .36, .34, .44, .45, .44, .51, .53),
                 "tumor": (.30, .37, .77, .77, .80, .81, .83, .86, .85, .85, .85)},
    "l1": {"healthy": (.31, .30, .31, .29, .29, .30, .29, .29, .29, .31, .31),
           "tumor": (.55, .77, .80, .79, .78, .80, .79, .78, .78, .80, .80)},
}
PAPER_X = tuple(10 * i for i in range(11))
PAPER_LABEL = "paper (their classifier)"
WRONG_MAP_LABEL = "fails the quality gate (wrong map)"
UNRELIABLE_LABEL = f"interval over < {metrics.MIN_SEEDS} seeds: unreliable"
LABEL_STYLE = {"healthy": ("healthy source (tumors added)", "tab:blue"),
               "tumor": ("tumor source (tumors kept)", "tab:red")}


def method_color(method: str) -> str:
    """The catalog's colour of ``method`` (gray for one it does not know)."""
    return SPECS[method].color if method in SPECS else "gray"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _write(fig, out: Path) -> Path:
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=120)
    tmp.replace(out)  # atomic
    _pyplot().close(fig)
    return out


def bias_curves(rows: list[dict], out: Path) -> Path:
    """`bias_curve_figure(rows)`, saved to `out`."""
    return _write(bias_curve_figure(rows), out)


def _curve(rows: list[dict], method: str, label: str, knobs: tuple = ()) -> dict:
    """Per ratio of one setting (method and gridded knobs) and source label: the mean
    over seeds, the seeds' min and max, the interval over seeds
    (:func:`results.across_seeds`), whether it is reliable (enough seeds) and whether
    a seed fails the quality gate."""
    sel = [r for r in rows if r["method"] == method and r["source_label"] == label
           and metrics.knobs_of(r) == tuple(knobs)]
    ratios = sorted({r["target_tumor_ratio"] for r in sel})
    out = {k: [] for k in ("mean", "low", "high", "ci_low", "ci_high", "reliable",
                           "wrong_map")}
    for ratio in ratios:
        at = [r for r in sel if r["target_tumor_ratio"] == ratio]
        fracs = np.array([r["frac_pred_tumor"] for r in at], float)
        out["mean"].append(np.nanmean(fracs))
        out["low"].append(np.nanmin(fracs)); out["high"].append(np.nanmax(fracs))
        if all(r.get("verdicts") not in (None, "") for r in at):
            interval = results.across_seeds(at)
            low, high, reliable = interval.low, interval.high, interval.reliable
        else:  # rows without verdicts: the members' own intervals, never called reliable
            low, high = np.mean([r["ci_low"] for r in at]), np.mean([r["ci_high"] for r in at])
            reliable = False
        out["ci_low"].append(low); out["ci_high"].append(high); out["reliable"].append(reliable)
        out["wrong_map"].append(any(r.get("quality") == quality.WRONG_MAP for r in at))
    out = {k: np.asarray(v, bool if k in ("reliable", "wrong_map") else float)
           for k, v in out.items()}
    out["x"], out["seeds"] = 100 * np.asarray(ratios, float), len({r["seed"] for r in sel})
    return out


def settings(rows: list[dict]) -> list[tuple[str, tuple]]:
    """(method, gridded knobs) of the rows, in their first row's order."""
    return list(dict.fromkeys((r["method"], metrics.knobs_of(r)) for r in rows))


def setting_label(method: str, knobs: tuple, sep: str = " ") -> str:
    """``cyclegan`` or ``cyclegan r1_weight=10``: a setting's name in figures."""
    return f"{method}{sep}{metrics.knob_label(knobs)}" if knobs else method


def interval_bars(ax, x, y, low, high, reliable, color, **kwargs) -> None:
    """Error bars from ``low`` to ``high`` around ``y``: solid where the interval is
    reliable, dotted where it rests on fewer than ``metrics.MIN_SEEDS`` seeds."""
    x, y, low, high = (np.asarray(a, float) for a in (x, y, low, high))
    reliable = np.asarray(reliable, bool)
    for keep, style in ((reliable, "-"), (~reliable, ":")):
        if keep.any():
            # clipped: a mean of 0 or 1 can sit a hair outside its interval by rounding
            yerr = np.clip([y[keep] - low[keep], high[keep] - y[keep]], 0.0, None)
            bars = ax.errorbar(x[keep], y[keep], yerr=yerr, fmt="none", ecolor=color, **kwargs)
            for lines in bars.lines[2]:
                lines.set_linestyle(style)


def _unreliable_handle(plt):
    return plt.Line2D([], [], ls=":", color="gray", lw=1)


def bias_curve_figure(rows: list[dict]):
    """Fraction predicted tumor vs % tumor in the target training data.

    One panel per setting (method, and its gridded knobs if any), one line
    per source label (mean over seeds). The band is the spread over seeds
    (min to max) when there are several seeds, else the single run's
    interval; the error bars are the 95% interval over seeds
    (:func:`metrics.seed_interval`), dotted where fewer than
    ``metrics.MIN_SEEDS`` seeds make it unreliable. Diverged members are left
    out. A ratio with a member that fails the quality gate gets a hollow
    marker: its flips are not the paper's effect. For cyclegan and l1 the
    paper's numbers are drawn beside ours (dashed, crosses).
    """
    plt = _pyplot()
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    panels = settings(rows)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.6 * max(len(panels), 1), 3.3),
                             squeeze=False, sharey=True)
    unreliable = False
    for ax, (method, knobs) in zip(axes[0], panels):
        for label, (name, color) in LABEL_STYLE.items():
            c = _curve(rows, method, label, knobs)
            x, mean, hollow = c["x"], c["mean"], c["wrong_map"]
            ax.plot(x, mean, "-", color=color, label=name)
            ax.plot(x[~hollow], mean[~hollow], "o", color=color, ms=3)
            if hollow.any():
                ax.plot(x[hollow], mean[hollow], "o", color=color, mfc="none", ms=5)
            low, high = (c["low"], c["high"]) if c["seeds"] > 1 else (c["ci_low"], c["ci_high"])
            ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
            interval_bars(ax, x, mean, c["ci_low"], c["ci_high"], c["reliable"], color,
                          elinewidth=0.8, capsize=0, alpha=0.7)
            unreliable |= not c["reliable"].all()
            if method in PAPER_CURVES:
                ax.plot(PAPER_X, PAPER_CURVES[method][label], "x--", color=color, ms=4, lw=0.8,
                        alpha=0.7, label=f"{PAPER_LABEL}: {label}")
        ax.set_title(setting_label(method, knobs, "\n"))
        ax.set_xlabel("% tumor in target training data")
        ax.set_xlim(-3, 103); ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("fraction of translations\npredicted tumor")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if any(r.get("quality") == quality.WRONG_MAP for r in rows):
        handles.append(plt.Line2D([], [], ls="", marker="o", color="gray", mfc="none", ms=5))
        labels.append(WRONG_MAP_LABEL)
    if unreliable:
        handles.append(_unreliable_handle(plt))
        labels.append(UNRELIABLE_LABEL)
    axes[0, 0].legend(handles, labels, fontsize=7, loc="best")
    for ax in axes[0, 1:]:
        if any(label.startswith(PAPER_LABEL) for label in ax.get_legend_handles_labels()[1]):
            ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


# A method's grid points on one axis: same colour, one marker each.
GRID_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def flips_figure(rows: list[dict]):
    """Flips against % tumor in the target, all settings on one axis: tumors added to
    healthy sources (solid) and removed from tumor sources (1 - kept, dashed), mean
    over seeds with the seeds' min-max band and the 95% interval over seeds (error
    bars, dotted when unreliable); hollow markers: a seed that fails the quality gate. A method's
    grid points share its colour, each with its own marker."""
    plt = _pyplot()
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    grid_index: dict[str, int] = {}
    unreliable = False
    for method, knobs in settings(rows):
        color = method_color(method)
        grid_index[method] = grid_index.get(method, -1) + 1
        marker = GRID_MARKERS[grid_index[method] % len(GRID_MARKERS)]
        name = setting_label(method, knobs)
        for label, style, what in (("healthy", "-", "added"), ("tumor", "--", "removed")):
            c = _curve(rows, method, label, knobs)
            if not len(c["x"]):
                continue
            flip = lambda y: y if label == "healthy" else 1 - y  # noqa: E731
            mean = flip(c["mean"])
            ax.plot(c["x"], mean, style, color=color, label=f"{name}: tumors {what}")
            hollow = c["wrong_map"]
            ax.plot(c["x"][~hollow], mean[~hollow], marker, color=color, ms=3)
            if hollow.any():
                ax.plot(c["x"][hollow], mean[hollow], marker, color=color, mfc="none", ms=5)
            ax.fill_between(c["x"], flip(c["low"]), flip(c["high"]), color=color, alpha=0.12,
                            lw=0)
            low, high = ((c["ci_low"], c["ci_high"]) if label == "healthy"
                         else (1 - c["ci_high"], 1 - c["ci_low"]))
            interval_bars(ax, c["x"], mean, low, high, c["reliable"], color, elinewidth=0.7,
                          capsize=0, alpha=0.5)
            unreliable |= not c["reliable"].all()
    ax.set_xlabel("% tumor in target training data")
    ax.set_ylabel("fraction of holdout translations flipped")
    ax.set_xlim(-3, 103); ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if unreliable:
        handles.append(_unreliable_handle(plt))
        labels.append(UNRELIABLE_LABEL)
    ax.legend(handles, labels, fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    return fig


def flips(rows: list[dict], out: Path) -> Path:
    """`flips_figure(rows)`, saved to `out`."""
    return _write(flips_figure(rows), out)


def example_indices(test: SliceSet, per_label: int = 2) -> np.ndarray:
    """Tumor slices with the largest tumors, then healthy mid-brain slices, each
    from a different patient where possible."""
    def distinct(order):
        chosen, seen = [], set()
        for i in order:
            if test.patient_id[i] not in seen:
                seen.add(test.patient_id[i]); chosen.append(i)
            if len(chosen) == per_label:
                break
        return chosen

    tumor = np.flatnonzero(test.label == 1)
    area = test.tumor_mask[tumor].reshape(len(tumor), -1).sum(1)
    healthy = np.flatnonzero(test.label == 0)
    brain = test.brain_mask[healthy].reshape(len(healthy), -1).sum(1)
    return np.asarray(distinct(tumor[np.argsort(-area, kind="stable")])
                      + distinct(healthy[np.argsort(-brain, kind="stable")]), np.int64)


def example_grid(translated: np.ndarray, test: SliceSet, members: list[tuple[float, int]],
                 method: str, out: Path, per_label: int = 2, seed: int | None = None,
                 source: str = "flair", target: str = "t1", rows: list[dict] | None = None
                 ) -> Path:
    return _write(example_figure(translated, test, members, method, per_label, seed,
                                 source, target, rows), out)


def _contrast_note(row: dict | None, real: bool = False) -> str:
    """``GM/WM .71 s .93``: a member's healthy-source GM/WM and structure r (the real
    target's GM/WM for ``real``), for a column title; "" without them."""
    if row is None or not np.isfinite(row.get("gm_wm", np.nan)):
        return ""
    if real:
        return f"\nGM/WM {row['gm_wm_real']:.2f}"
    return f"\nGM/WM {row['gm_wm']:.2f} s {row['structure_r']:.2f}"


def example_figure(translated: np.ndarray, test: SliceSet, members: list[tuple[float, int]],
                   method: str, per_label: int = 2, seed: int | None = None,
                   source: str = "flair", target: str = "t1", rows: list[dict] | None = None):
    """Rows: holdout tumor and healthy slices. Columns: source, real target (modalities
    ``source`` and ``target``), and the translation at each ratio (the first seed).
    With results ``rows``, each column title carries the member's tissue contrast
    (GM/WM on healthy sources, the real target's under it) and structure r."""
    plt = _pyplot()
    seed = members[0].seed if seed is None else seed
    cols = [(i, m) for i, m in enumerate(members) if m.seed == seed]
    healthy = {(r["target_tumor_ratio"], r["seed"], metrics.knobs_of(r)): r for r in rows or ()
               if r["source_label"] == "healthy"}
    row_of = lambda m: healthy.get((m.target_tumor_ratio, m.seed, tuple(m.knobs)))  # noqa: E731
    index = example_indices(test, per_label)
    n_cols = 2 + len(cols)
    fig, axes = plt.subplots(len(index), n_cols, figsize=(1.3 * n_cols, 1.35 * len(index) + 0.7),
                             squeeze=False)
    first = row_of(cols[0][1]) if cols else None
    titles = [MODALITY_NAMES[source], f"real {MODALITY_NAMES[target]}"
              + _contrast_note(first, real=True)] + [
        f"{100 * m.target_tumor_ratio:g}%" + _contrast_note(row_of(m)) for _, m in cols]
    for row, i in enumerate(index):
        images = [test.image(source)[i], test.image(target)[i]] + [translated[m, i]
                                                                   for m, _ in cols]
        for col, (image, title) in enumerate(zip(images, titles)):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=7)
        axes[row, 0].set_ylabel("tumor" if test.label[i] else "healthy", fontsize=8)
    fig.suptitle(f"{method}: translations by % tumor in the target training data", fontsize=9)
    fig.tight_layout()
    return fig


def loss_figure(metrics: dict[str, list[dict]]):
    """One panel per logged loss, one line per member, against the step."""
    plt = _pyplot()
    keys = sorted({k for rows in metrics.values() for row in rows for k in row
                   if k.startswith("train/") and k.endswith("_loss")})
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 2.8),
                             squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, rows in metrics.items():
            ax.plot([r["step"] for r in rows], [r.get(key, np.nan) for r in rows], label=name)
        ax.set_title(key.removeprefix("train/"))
        ax.set_xlabel("step")
    if keys:
        axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def loss_curves(metrics: dict[str, list[dict]], out: Path) -> Path:
    """``losses.png``: the training losses of every member (from the metrics files)."""
    return _write(loss_figure(metrics), out)


def contrast_figure(panels: list[tuple[str, np.ndarray]], real: np.ndarray, brain: np.ndarray,
                    tissue: np.ndarray, example: int, target: str = "t1"):
    """Does each translator render the target's tissue contrast? Top: one healthy
    slice, real then each translation; bottom: their mean intensity in pure CSF, GM
    and WM pixels over all the healthy slices (``contrast.contrast``), each as a share
    of their own WM mean, the real target's dashed. ``panels``: (name, translations
    of the same healthy slices as ``real``)."""
    from jax_translate.evaluation import contrast

    plt = _pyplot()
    columns = [(f"real {MODALITY_NAMES[target]}", real)] + list(panels)
    fig, axes = plt.subplots(2, len(columns), figsize=(2.0 * len(columns), 4.4), squeeze=False)
    reference = contrast.contrast(real, tissue, brain)
    for col, (name, images) in enumerate(columns):
        found = contrast.contrast(images, tissue, brain)
        ax = axes[0, col]
        ax.imshow(images[example], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]); ax.set_yticks([])
        ax.set_title(name, fontsize=8)
        ax = axes[1, col]
        ax.bar(range(3), [found.csf_wm, found.gm_wm, 1.0], color="tab:gray")
        ax.plot(range(3), [reference.csf_wm, reference.gm_wm, 1.0], "k_", ms=18, mew=2)
        ax.set_xticks(range(3), ["CSF", "GM", "WM"], fontsize=7)
        ax.set_ylim(0, 1.6)
        ax.set_title(f"GM/WM {found.gm_wm:.2f}", fontsize=8)
        if col == 0:
            ax.set_ylabel("tissue mean / WM mean\n(black: real)", fontsize=7)
    fig.suptitle("tissue contrast of each translator (healthy sources; bars: pure-tissue "
                 "means over WM's)", fontsize=8)
    fig.tight_layout()
    return fig


def contrast_plot(panels, real, brain, tissue, example: int, out: Path, target: str = "t1") -> Path:
    """`contrast_figure`, saved to ``out``."""
    return _write(contrast_figure(panels, real, brain, tissue, example, target), out)
