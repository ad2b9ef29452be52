"""Figures: bias curves (the paper's main result) and an example grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jax_translate.data.dataset import SliceSet

LABEL_STYLE = {"healthy": ("healthy source (tumors added)", "tab:blue"),
               "tumor": ("tumor source (tumors kept)", "tab:red")}


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
    return _write(bias_figure(rows), out)


def bias_figure(rows: list[dict]):
    """Fraction predicted tumor vs % tumor in the target training data.

    One panel per method, one line per source label (mean over seeds). The
    band is the spread over seeds (min to max) when there are several seeds,
    else the Wilson 95% interval of the single run. Diverged members are left
    out.
    """
    plt = _pyplot()
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(3.6 * max(len(methods), 1), 3.3),
                             squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods):
        for label, (name, color) in LABEL_STYLE.items():
            sel = [r for r in rows if r["method"] == method and r["source_label"] == label]
            ratios = sorted({r["target_tumor_ratio"] for r in sel})
            mean, low, high = [], [], []
            for ratio in ratios:
                at = [r for r in sel if r["target_tumor_ratio"] == ratio]
                fracs = np.array([r["frac_pred_tumor"] for r in at], float)
                mean.append(np.nanmean(fracs))
                if len(at) > 1:
                    low.append(np.nanmin(fracs)); high.append(np.nanmax(fracs))
                else:
                    low.append(at[0]["ci_low"]); high.append(at[0]["ci_high"])
            x = 100 * np.asarray(ratios)
            ax.plot(x, mean, "o-", color=color, label=name, ms=3)
            ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
        ax.set_title(method)
        ax.set_xlabel("% tumor in target training data")
        ax.set_xlim(-3, 103); ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("fraction of translations\npredicted tumor")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


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
                 method: str, out: Path, per_label: int = 2, seed: int | None = None) -> Path:
    return _write(example_figure(translated, test, members, method, per_label, seed), out)


def example_figure(translated: np.ndarray, test: SliceSet, members: list[tuple[float, int]],
                   method: str, per_label: int = 2, seed: int | None = None):
    """Rows: holdout tumor and healthy slices. Columns: source, real target, and
    the translation at each ratio (the first seed)."""
    plt = _pyplot()
    seed = members[0][1] if seed is None else seed
    cols = [(i, r) for i, (r, s) in enumerate(members) if s == seed]
    index = example_indices(test, per_label)
    n_cols = 2 + len(cols)
    fig, axes = plt.subplots(len(index), n_cols, figsize=(1.25 * n_cols, 1.35 * len(index) + 0.4),
                             squeeze=False)
    for row, i in enumerate(index):
        images = [test.flair[i], test.t1[i]] + [translated[m, i] for m, _ in cols]
        titles = ["Flair", "real T1"] + [f"{100 * r:g}%" for _, r in cols]
        for col, (image, title) in enumerate(zip(images, titles)):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
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
