"""condgan against L1 seed by seed: the difference in flips, paired, with its interval.

    python experiments/flip_table/paired.py                      # the committed 6-seed run
    python experiments/flip_table/paired.py runs/reproduce/results.csv --a condgan --b l1

Seed s of every method trains on the same domains (a member's domains are drawn from
its ratio and seed) and every method translates the same holdout images, so two
methods' flips can be compared within each seed and image: ``metrics.paired_difference``
(the crossed seed x image interval of ``seed_interval``, on the differences). The
table gives, per ratio and source label, both methods' share called tumor, the
difference a - b with its 95% interval, and in how many seeds a's share exceeds b's.
The results file is any ``reproduce`` results.csv holding both methods, >= 2 seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from jax_translate.evaluation import metrics, results  # noqa: E402

SIX_SEEDS = HERE / "results" / "six_seeds.csv"
WHAT = {"healthy": "added (healthy -> tumor)", "tumor": "kept (tumor -> tumor)"}


def rows_of(rows, method, ratio, label):
    return sorted((r for r in rows if r["method"] == method and r["source_label"] == label
                   and abs(r["target_tumor_ratio"] - ratio) < 1e-9 and r["status"] == "ok"),
                  key=lambda r: r["seed"])


def table(rows: list[dict], a: str, b: str) -> str:
    lines = [f"| target tumor % | | {a} | {b} | {a} - {b} [95%] | seeds with {a} > {b} |",
             "|---|---|---|---|---|---|"]
    ratios = sorted({r["target_tumor_ratio"] for r in rows if r["method"] in (a, b)})
    for label in WHAT:
        for ratio in ratios:
            ra, rb = rows_of(rows, a, ratio, label), rows_of(rows, b, ratio, label)
            seeds = [r["seed"] for r in ra]
            if seeds != [r["seed"] for r in rb] or len(seeds) < 2:
                raise SystemExit(f"error: {a} and {b} at {ratio:g} ({label}) do not share "
                                 f">= 2 seeds: {seeds} and {[r['seed'] for r in rb]}")
            va, vb = metrics.verdict_matrix(ra), metrics.verdict_matrix(rb)
            d = metrics.paired_difference(va, vb)
            above = int((va.mean(axis=1) > vb.mean(axis=1)).sum())
            lines.append(f"| {100 * ratio:.0f} | {WHAT[label]} | {va.mean():.2f} | "
                         f"{vb.mean():.2f} | {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}] | "
                         f"{above} of {len(seeds)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, nargs="?", default=SIX_SEEDS,
                   help="a reproduce results.csv (default: the committed 6-seed cpu run)")
    p.add_argument("--a", default="condgan")
    p.add_argument("--b", default="l1")
    args = p.parse_args(argv)
    if not args.results.is_file():
        raise SystemExit(f"error: no results file {args.results}")
    print(table(results.read_csv(args.results), args.a, args.b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
