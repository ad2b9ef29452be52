"""Steps and learning rates chosen on the validation split (issue 36 item 1, issue 37 item 5).

    python experiments/schedule/run.py --method condgan --grid learning_rate=2e-4,5e-4 \\
        --steps 2000 --every 400 --out runs/schedule
    python experiments/schedule/run.py --table          # the tables of the committed results

One sweep of ``--method`` on the cpu preset: its ``--grid`` knobs crossed with
``--ratios`` and ``--seeds`` (members of one program), trained for ``--steps``
with the preset's schedule for that many steps (constant, then a linear decay
over the last half), and every ``--every`` steps each member is scored on the
**validation** split by the
library's scoring (``scoring.score``, with the evaluation classifier): the gate's
structure r and contrast error, pixel r, lesion preservation and the flips. The
holdout is not read. Rows are appended to ``results/<method>.csv`` as they land
(a rerun resumes the sweep and skips the points already written).

``--table`` prints, per grid point and step, the means over seeds and ratios and
how many members pass the gate; the choice rule of each method is in
``README.md`` beside its table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np  # noqa: E402

from jax_translate import io_utils  # noqa: E402
from jax_translate.config import parse_grid, parse_ratios
from jax_translate.configure import resolve  # noqa: E402
from jax_translate.data import dataset, domains  # noqa: E402
from jax_translate.data.layout import VALIDATION  # noqa: E402
from jax_translate.evaluation import classifier as classifier_lib  # noqa: E402
from jax_translate.evaluation import metrics, quality, results, scoring  # noqa: E402
from jax_translate.jobs.sweep import train_sweep  # noqa: E402
from jax_translate.training.methods import Method  # noqa: E402
from jax_translate.training.translate import translate_all  # noqa: E402

FIELDS = ("method", "knobs", "schedule", "target_tumor_ratio", "seed", "step", "fidelity_r", "structure_r",
          "contrast_error", "gm_wm", "quality", "added", "kept", "lesion_score")


def result_path(method: str) -> Path:
    return HERE / "results" / f"{method}.csv"


def read_rows(path: Path) -> list[dict]:
    """The rows written so far (numbers parsed), or none."""
    return results.read_csv(path) if path.exists() else []


def append(path: Path, rows: list[dict]) -> None:
    io_utils.append_csv(path, FIELDS, rows)


def member_rows(scored: list[dict], step: int, schedule: int) -> list[dict]:
    """One line per member from its two scoring rows (healthy: the gate, tumors added;
    tumor: tumors kept and lesion preservation)."""
    out = []
    for healthy, tumor in zip(scored[::2], scored[1::2]):
        out.append({**{k: healthy[k] for k in ("method", "target_tumor_ratio", "seed",
                                                 "fidelity_r", "structure_r", "contrast_error",
                                                 "gm_wm", "quality")},
                    "knobs": metrics.knob_label(metrics.knobs_of(healthy)), "step": step,
                    "schedule": schedule,
                    "added": healthy["frac_pred_tumor"], "kept": tumor["frac_pred_tumor"],
                    "lesion_score": tumor["lesion_score"]})
    return out


def run(args) -> None:
    cfg = resolve(args.method, "cpu", target_tumor_ratios=parse_ratios(args.ratios),
                      seeds=args.seeds, steps=args.steps, grid=parse_grid(args.grid),
                      checkpoint_every=args.every,
                      **({"data_dir": args.data_dir} if args.data_dir else {}))
    splits = dataset.load_for(cfg)
    test = domains.holdout_set(cfg, splits[VALIDATION])
    judge = classifier_lib.for_config(cfg, splits)
    path = result_path(args.method)
    # a point is (schedule length, step): step 2,000 of a 2,500-step schedule is not
    # the end of a 2,000-step one
    done = {(row["schedule"], row["step"]) for row in read_rows(path)}

    def evaluate(step, states):
        if (args.steps, step) in done:
            return
        translated = translate_all(Method(cfg), states.generator, test.image(cfg.source))
        rows = member_rows(scoring.score(cfg, translated, test, judge,
                                         np.asarray(states.diverged)), step, args.steps)
        append(path, rows)
        done.add((args.steps, step))
        print(f"step {step}: " + "; ".join(
            f"{r['knobs']} {r['target_tumor_ratio']:g}/{r['seed']} s {r['structure_r']:.2f} "
            f"c {r['contrast_error']:.2f} {r['quality']}" for r in rows), flush=True)

    train_sweep(cfg, args.out / args.method, splits, evaluators=[(args.every, evaluate)])


def table(rows: list[dict]) -> str:
    """Per grid point and step: means over the members (every ratio and seed) and the
    members that pass the gate."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["knobs"], row["schedule"], row["step"]),
                          []).append(row)
    lines = ["| method | knobs | schedule | step | structure r | pixel r | contrast error | GM/WM | "
             "lesion kept (tumor) | added @100% | kept @0% | gate ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (method, knobs, schedule, step), at in sorted(groups.items()):
        mean = lambda key, sel=at: np.mean([r[key] for r in sel])  # noqa: E731
        top = [r for r in at if r["target_tumor_ratio"] == max(x["target_tumor_ratio"] for x in at)]
        low = [r for r in at if r["target_tumor_ratio"] == min(x["target_tumor_ratio"] for x in at)]
        ok = quality.count_passing(method, at)  # today's gate on the stored numbers
        lines.append(f"| {method} | {knobs} | {schedule:,} | {step:,} | {mean('structure_r'):.2f} | "
                     f"{mean('fidelity_r'):.2f} | {mean('contrast_error'):.2f} | "
                     f"{mean('gm_wm'):.2f} | {mean('lesion_score'):.2f} | "
                     f"{mean('added', top):.2f} | {mean('kept', low):.2f} | {ok}/{len(at)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="condgan")
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2")
    parser.add_argument("--ratios", default="0,0.5,1")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "schedule")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--table", action="store_true",
                        help="print the tables of the committed results; train nothing")
    args = parser.parse_args(argv)
    if not args.table:
        run(args)
    for path in sorted((HERE / "results").glob("*.csv")):
        print(table(read_rows(path)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
