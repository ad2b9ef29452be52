"""Is a member's failed gate its map, or the lesions it paints? (experiments/adapt)

    python experiments/adapt/painted.py --run runs/adapt     # writes results/painted.csv
    python experiments/adapt/painted.py --table              # the table of README.md

On healthy sources the gate reads the whole brain, so a translator that paints
lesions loses structure r for them: the gate is never passed by painting, and it
cannot say, from one number, whether a member failed for its map or for its paint.
This splits each member's healthy sources by the classifier's verdict on their
translation (``verdicts`` in results.csv): structure r of the translations called
healthy, and of those called tumor, against the real T1, per image and averaged,
with the gate's blur; and, so that hard slices are not mistaken for paint, the
structure r of *the same images* translated by the seed's member at 50%. A member
whose unpainted translations keep the other ratios' structure, and whose painted
ones lost structure those images had at 50%, has the right map and paints; one
whose every translation loses it has the wrong map. A diagnostic, not a gate: it
conditions on the flips.

Two rules that would not condition on the flips, measured beside it for whoever
decides how the study counts such members: structure r with each image's
``TRIM`` pixels farthest from the real target's (after a linear fit of the blurred
images) left out, so that a lesion-sized paint could not cost the map; and the
structure r the gate already computes on *tumor* sources outside their real
lesion and its margin (results.csv's tumor rows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from jax_translate import io_utils  # noqa: E402
from jax_translate.evaluation import metrics, quality, results  # noqa: E402

OUT = HERE / "results" / "painted.csv"
FIELDS = ("method", "target_tumor_ratio", "seed", "n_healthy", "n_called_tumor",
          "structure_r", "structure_r_called_healthy", "structure_r_called_tumor",
          "same_images_at_50", "structure_r_trimmed", "structure_r_tumor_sources")
TRIM = 0.10  # the share of each image's brain pixels left out by the trimmed r
BALANCED = 0.5  # the ratio whose member of the same seed is the reference


def member_rows(run: Path) -> list[dict]:
    every = results.read_csv(run / "results.csv")
    rows = [r for r in every if r["source_label"] == "healthy"]
    out = []
    for method in sorted({r["method"] for r in rows}):
        saved = np.load(run / method / "translations.npz")
        healthy = saved["label"] == 0
        real, brain = saved["real_target"][healthy], saved["brain_mask"][healthy] > 0
        sigma = quality.structure_sigma(real.shape[1])
        members = list(zip(saved["target_tumor_ratio"].tolist(), saved["seed"].tolist()))
        per_image = [quality.structure_r(saved["translated"][i][healthy], real, brain, sigma)
                     for i in range(len(members))]
        for i, (ratio, seed) in enumerate(members):
            row = next(r for r in rows if r["method"] == method and r["seed"] == int(seed)
                       and abs(r["target_tumor_ratio"] - float(ratio)) < 1e-9)
            called = metrics.decode_verdicts(row["verdicts"], int(healthy.sum()))
            r = per_image[i]
            balanced = [j for j, m in enumerate(members) if m == (BALANCED, seed)]
            tumor_row = next(t for t in every if t["source_label"] == "tumor"
                             and t["method"] == method and t["seed"] == int(seed)
                             and abs(t["target_tumor_ratio"] - float(ratio)) < 1e-9)
            trimmed = quality.trimmed_structure_r(saved["translated"][i][healthy], real, brain,
                                                  sigma, TRIM)
            out.append({"method": method, "target_tumor_ratio": float(ratio),
                        "seed": int(seed), "n_healthy": int(healthy.sum()),
                        "n_called_tumor": int(called.sum()),
                        "structure_r": float(np.nanmean(r)),
                        "structure_r_called_healthy": float(np.nanmean(r[~called]))
                        if (~called).any() else float("nan"),
                        "structure_r_called_tumor": float(np.nanmean(r[called]))
                        if called.any() else float("nan"),
                        "same_images_at_50": float(np.nanmean(per_image[balanced[0]][called]))
                        if called.any() and balanced else float("nan"),
                        "structure_r_trimmed": float(np.nanmean(trimmed)),
                        "structure_r_tumor_sources": float(tumor_row["structure_r"])})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| method | target tumor % | seed | called tumor | structure r: all | "
             "called healthy | called tumor | the same images at 50% | "
             f"all, {100 * TRIM:.0f}% trimmed | tumor sources |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {100 * r['target_tumor_ratio']:.0f} | {r['seed']} | "
                     f"{r['n_called_tumor']}/{r['n_healthy']} | {r['structure_r']:.2f} | "
                     f"{r['structure_r_called_healthy']:.2f} | "
                     f"{r['structure_r_called_tumor']:.2f} | "
                     f"{r['same_images_at_50']:.2f} | {r['structure_r_trimmed']:.2f} | "
                     f"{r['structure_r_tumor_sources']:.2f} |".replace("nan", "-"))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="a reproduce folder (results.csv, <method>/)")
    p.add_argument("--table", action="store_true", help="print the committed table")
    args = p.parse_args(argv)
    if args.run:
        OUT.unlink(missing_ok=True)
        io_utils.append_csv(OUT, FIELDS, member_rows(args.run))
    print(table(results.read_csv(OUT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
