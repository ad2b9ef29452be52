"""Two methods seed by seed: the difference in flips, paired, with its interval.

    python experiments/flip_table/paired.py                      # condgan - l1, the 6-seed run
    python experiments/flip_table/paired.py runs/reproduce/results.csv --a condgan --b l1
    python experiments/flip_table/paired.py experiments/adapt/results/results.csv \
        --a cyclegan-adapt --b l1 --b-results experiments/adapt/results/pretrained.csv \
        --b-ratio 0.5 --b-name pretrained          # each adapted member - its own start

Seed s of every method trains on the same domains (a member's domains are drawn from
its ratio and seed) and every method translates the same holdout images, so two
methods' flips can be compared within each seed and image: ``metrics.paired_difference``
(the crossed seed x image interval of ``seed_interval``, on the differences). The
table gives, per ratio and source label, both methods' share called tumor, the
difference a - b with its 95% interval, and in how many seeds a's share exceeds b's.
The results file is any ``reproduce`` results.csv holding both methods, >= 2 seeds;
``--b-results`` takes b's rows from another file (an ``evaluate`` of the same holdout),
``--b-ratio`` b's rows at that one ratio against every ratio of a's (a member against
the generator it started from).
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


def table(rows: list[dict], a: str, b: str, b_rows: list[dict] | None = None,
          b_ratio: float | None = None, b_name: str | None = None) -> str:
    b_rows, name = rows if b_rows is None else b_rows, b_name or b
    lines = [f"| target tumor % | | {a} | {name} | {a} - {name} [95%] | "
             f"seeds with {a} > {name} |", "|---|---|---|---|---|---|"]
    ratios = sorted({r["target_tumor_ratio"] for r in rows if r["method"] == a})
    for label in WHAT:
        for ratio in ratios:
            ra = rows_of(rows, a, ratio, label)
            rb = rows_of(b_rows, b, ratio if b_ratio is None else b_ratio, label)
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
    p.add_argument("--b-results", type=Path, default=None, help="b's rows from this file")
    p.add_argument("--b-ratio", type=float, default=None,
                   help="b's rows at this ratio against every ratio of a's")
    p.add_argument("--b-name", default=None, help="b's name in the table")
    args = p.parse_args(argv)
    for path in (args.results, args.b_results):
        if path is not None and not path.is_file():
            raise SystemExit(f"error: no results file {path}")
    b_rows = results.read_csv(args.b_results) if args.b_results else None
    print(table(results.read_csv(args.results), args.a, args.b, b_rows, args.b_ratio,
                args.b_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
