"""The methods comparison figure and table (issue 12) from finished run folders.

    jax-translate reproduce --config experiments/methods_comparison/config.json --out runs/comparison
    python experiments/methods_comparison/compare.py runs/comparison

Reads each method's ``results.csv`` in the given ``reproduce`` folders (or
sweep folders; a method found in several is taken from the last one given)
and writes into ``--out`` (default: this folder's ``results/``):
``comparison.png`` (tumors added at 100% and removed at 0% against structure r,
one point per method), ``comparison.md`` (the table) and ``comparison.json``
(the numbers and which file each method came from). Methods of this
folder's ``config.json`` that no folder holds are listed as missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__ in (None, "") and str(HERE.parents[1]) not in sys.path:
    sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from jax_translate import io_utils  # noqa: E402
from jax_translate.evaluation import comparison  # noqa: E402
from jax_translate.jobs.run_folder import read_runs  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="reproduce (or sweep) run folders")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--config", default=str(HERE / "config.json"),
                        help="the experiment config whose methods are expected")
    args = parser.parse_args(argv)

    rows, sources = read_runs(args.runs, order=comparison.method_order)
    if not rows:
        print(f"error: no results.csv in {', '.join(args.runs)}", file=sys.stderr)
        return 2
    expected = json.loads(Path(args.config).read_text()).get("methods", [])
    missing = [m for m in expected if m not in sources]
    summaries = comparison.summary(rows)
    table = comparison.markdown_table(summaries)
    if missing:
        table += f"\nmissing (no finished results): {', '.join(missing)}\n"

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure = comparison.comparison_plot(rows, out / "comparison.png")
    io_utils.atomic_write_text(out / "comparison.md", table)
    io_utils.atomic_write_json(out / "comparison.json", {
        "sources": {m: str(p) for m, p in sources.items()}, "missing": missing,
        "summary": [{**s, **{name: {str(k): v for k, v in s[name].items()}
                             for name in ("structure_r", "fidelity_r", "lesion_kept")}}
                    for s in summaries]})
    print(table)
    print(f"figure: {figure}; table: {out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
