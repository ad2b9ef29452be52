"""The methods comparison (issue 12): what its figure draws, its table, and reading run folders."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from jax_translate.evaluation import comparison, figures, metrics, quality, results
from jax_translate.jobs import run_folder

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "methods_comparison" / "compare.py"
RATIOS = (0.0, 0.5, 1.0)
# method: structure r by seed (pixel r: 0.1 lower)
FIDELITY = {"cyclegan": (0.45, 0.55), "l1": (0.84, 0.86), "gan": (0.40, 0.30)}


def nested(counts, n=100):
    """(S, n) verdicts of seeds that call the first k_s of the same n images tumor."""
    return np.arange(n)[None, :] < np.asarray(counts)[:, None]


def _rows(methods=("cyclegan", "l1", "gan")):
    """Two seeds x three ratios. Healthy sources: 10 * (ratio * 8 + seed) of 100 called
    tumor; tumor sources: 50 + 40 * ratio + 2 * seed. Structure r: FIDELITY's per seed,
    minus 0.1 * ratio (pixel r 0.1 lower). cyclegan fails the gate, l1 passes it except
    seed 1 at 1.0, gan is not gated."""
    rows = []
    for method in methods:
        for ratio in RATIOS:
            for seed in (0, 1):
                r = FIDELITY[method][seed] - 0.1 * ratio
                verdict = ("not_gated" if method == "gan" else
                           "wrong_map" if method == "cyclegan" or (ratio == 1.0 and seed == 1)
                           else "ok")
                for label, k in (("healthy", int(10 * (ratio * 8 + seed))),
                                 ("tumor", int(50 + 40 * ratio + 2 * seed))):
                    rows.append(dict(
                        method=method, target_tumor_ratio=ratio, seed=seed, source_label=label,
                        status="ok", n_images=100, n_pred_tumor=k, frac_pred_tumor=k / 100,
                        verdicts=metrics.encode_verdicts(np.arange(100) < k),
                        ci_low=0.0, ci_high=1.0, structure_r=r if label == "healthy" else 0.1,
                        fidelity_r=r - 0.1 if label == "healthy" else 0.0,
                        gm_wm=0.70 + 0.1 * seed, gm_wm_real=0.66,
                        lesion_score=(0.02 if label == "healthy" else 0.5 * ratio + 0.1 * seed),
                        quality=verdict, pfpr=0.001 * (seed + 1) if label == "healthy" else np.nan,
                        ifpr=0.1 * (seed + 1) if label == "healthy" else np.nan))
    return rows


def _points(ax):
    return {line.get_label(): line for line in ax.lines if line.get_marker() in ("o", "s")}


def test_figure_draws_one_point_per_method_at_the_extreme_ratios():
    fig = comparison.comparison_figure(_rows())
    added, removed = fig.axes[:2]
    assert "added" in added.get_title() and "100%" in added.get_title()
    assert "removed" in removed.get_title() and "0%" in removed.get_title()
    assert "structure r" in added.get_xlabel()

    points = _points(added)
    assert list(points) == ["cyclegan", "l1", "gan"]  # the registry's order
    # Added at 100%: healthy sources, mean over seeds (80 and 90 of 100); x: the healthy r
    # of the same members, mean over seeds.
    l1 = points["l1"]
    assert np.allclose(l1.get_ydata(), [170 / 200])
    assert np.allclose(l1.get_xdata(), [np.mean([0.74, 0.76])])
    # Removed at 0%: tumor sources, 1 - kept: (50 + 52) kept of 200.
    assert np.allclose(_points(removed)["cyclegan"].get_ydata(), [(200 - 102) / 200])
    assert np.allclose(_points(removed)["cyclegan"].get_xdata(), [0.50])

    # Hollow: a member that fails the gate among the point's (l1 at 100%: seed 1; at 0%:
    # none).
    hollow = lambda line: line.get_markerfacecolor() == "none"  # noqa: E731
    assert hollow(points["cyclegan"]) and hollow(points["l1"])
    assert not hollow(_points(removed)["l1"])
    assert points["gan"].get_marker() == "s" and not hollow(points["gan"])

    # Error bars: y the interval over seeds (2 seeds: dotted, unreliable), x the seeds'
    # min to max.
    bars = {tuple(np.round(s.ravel(), 9)): c.get_linestyle()
            for c in added.collections for s in c.get_segments()}
    interval = metrics.seed_interval(nested([80, 90]))
    assert interval.high - interval.low > 0.5  # t with one degree of freedom
    x = np.mean([0.74, 0.76])
    y_bar = [style for seg, style in bars.items()
             if np.allclose(seg, [x, interval.low, x, interval.high])]
    assert len(y_bar) == 1 and y_bar[0][0][1] is not None  # dashed: not a solid line
    assert any(np.allclose(seg, [0.74, 0.85, 0.76, 0.85]) for seg in bars)

    # The gate's structure bar as a vertical line. The legend names every method.
    vlines = {line.get_label(): line.get_xdata()[0] for line in added.lines
              if line.get_linestyle() == "--"}
    assert vlines == {comparison.GATE_LABEL: quality.STRUCTURE_GATE}
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["cyclegan", "l1", "gan"]
    assert figures.WRONG_MAP_LABEL in legend and comparison.NOT_GATED_LABEL in legend
    assert figures.UNRELIABLE_LABEL in legend  # two seeds
    figures._pyplot().close(fig)


def test_table_and_diverged_members():
    rows = _rows()
    for row in rows:  # l1 seed 1 at 0.5 diverged: left out of every number
        if row["method"] == "l1" and row["target_tumor_ratio"] == 0.5 and row["seed"] == 1:
            row["status"] = "diverged"
            row["fidelity_r"] = row["structure_r"] = row["gm_wm"] = float("nan")
    table = comparison.markdown_table(comparison.summary(rows)).splitlines()
    assert table[0] == ("| method | structure r at 0 / 50 / 100% | pixel r at 0 / 50 / 100% | "
                        "GM/WM (real) | gate | added @100% [95% CI over seeds] "
                        "| removed @0% [95% CI over seeds] | pFPR / iFPR @100% | lesion kept at 0 / 50 / 100% |")
    by_method = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    added = metrics.seed_interval(nested([80, 90]))
    removed = metrics.seed_interval(~nested([50, 52]))  # tumor sources at 0%: not kept
    l1 = by_method["l1 (1 diverged)"]
    assert l1 == ("| l1 (1 diverged) | 0.85 / 0.79 / 0.75 | 0.75 / 0.69 / 0.65 | 0.74 (0.66) | "
                  "wrong map 1/5 | "
                  f"0.85 [{added.low:.2f}, {added.high:.2f}]* | "
                  f"0.49 [{removed.low:.2f}, {removed.high:.2f}]* | 0.0015 / 0.15 | "
                  "0.05 / 0.25 / 0.55 |")
    assert "| wrong map 6/6 |" in by_method["cyclegan"]
    assert "| not gated |" in by_method["gan"]
    assert table[-1] == results.UNRELIABLE_NOTE  # two seeds: every interval is marked


def test_grid_points_are_points_of_their_own():
    """Two grid points of l1 (r1_weight 0 and 10) with the same seeds: two points, two
    table rows, labelled by their knobs; neither pools the other's counts."""
    rows = []
    for weight, shift in ((0.0, 0), (10.0, 40)):
        rows += [dict(row, r1_weight=weight, n_pred_tumor=row["n_pred_tumor"] - shift,
                      frac_pred_tumor=(row["n_pred_tumor"] - shift) / 100,
                      verdicts=metrics.encode_verdicts(
                          np.arange(100) < row["n_pred_tumor"] - shift))
                 for row in _rows(("l1",))]
    summaries = comparison.summary(rows)
    assert [s["label"] for s in summaries] == ["l1 r1_weight=0", "l1 r1_weight=10"]
    assert [s["added"]["y"] for s in summaries] == pytest.approx([0.85, 0.45])
    lines = comparison.markdown_table(summaries).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| l1 r1_weight=0",
                                                              "| l1 r1_weight=10"]
    fig = comparison.comparison_figure(rows)
    points = _points(fig.axes[0])
    assert list(points) == ["l1 r1_weight=0", "l1 r1_weight=10"]
    assert np.allclose(points["l1 r1_weight=10"].get_ydata(), [0.45])
    figures._pyplot().close(fig)


def _write_run(folder: Path, rows):
    for method in dict.fromkeys(r["method"] for r in rows):
        (folder / method).mkdir(parents=True)
        (folder / method / "config.json").write_text("{}")
        (folder / method / "results.csv").write_text(
            results.rows_to_csv([r for r in rows if r["method"] == method]))


def test_reads_several_run_folders_and_the_script_writes_figure_and_table(tmp_path, monkeypatch):
    old, new = tmp_path / "reproduce", tmp_path / "comparison"
    _write_run(old, _rows(("cyclegan", "l1", "gan")))
    rows_new = _rows(("cyclegan",))
    for row in rows_new:
        row["n_pred_tumor"] = 0
        row["verdicts"] = metrics.encode_verdicts(np.zeros(100, bool))
    _write_run(new, rows_new)
    rows, sources = run_folder.read_runs([old, new], order=comparison.method_order)
    assert list(sources) == ["cyclegan", "l1", "gan"]
    assert sources["cyclegan"] == new / "cyclegan" / "results.csv"  # the last folder wins
    assert {r["n_pred_tumor"] for r in rows if r["method"] == "cyclegan"} == {0}
    assert rows[0]["target_tumor_ratio"] == 0 and rows[0]["seed"] == 0
    assert np.isnan([r["pfpr"] for r in rows if r["source_label"] == "tumor"]).all()

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"methods": ["cyclegan", "l1", "gan", "cut"]}))
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(old), str(new), "--out", str(out),
                                      "--config", str(config)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert done.value.code == 0
    assert (out / "comparison.png").stat().st_size > 0
    table = (out / "comparison.md").read_text()
    assert "| l1 |" in table and "missing (no finished results): cut" in table
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["missing"] == ["cut"] and saved["sources"]["l1"].endswith("l1/results.csv")
