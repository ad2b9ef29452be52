"""Is the right map a resting point of CycleGAN's objective? (issue 35, item 4)

    python experiments/equilibrium/run.py --out runs/equilibrium   # train and score (resumable)
    python experiments/equilibrium/run.py --table                  # the table of the committed CSV

CycleGAN starts from paired-L1 generators (``--init-from``): Flair -> T1 and
T1 -> Flair, each trained by the cpu preset's L1 (2,000 steps at 5e-4) on
balanced pairs (ratio 0.5) of the training split, one pair of generators per
seed. It then trains on with the cpu preset's CycleGAN objective, fresh
discriminators and a constant rate, at ratio 0.5 (a balanced target: the bias is
not what moves it), one sweep per set of terms:

- ``adversarial``: the two LSGAN terms alone (lambda_cycle 0, so no identity term);
- ``+ cycle``: and the cycle loss (lambda_cycle 10, lambda_identity 0);
- ``+ cycle + identity``: the cpu preset's whole objective (identity 0.5).

Every 250 steps each member's Flair -> T1 translator is scored on the
validation split by the library's scoring (``scoring.score``: pixel r, structure
r, GM/WM and CSF/WM, the gate's verdict; the holdout is not read). The same
runs start from the *swapped* map too: L1 generators trained onto T1 rendered
with GM and WM exchanged (the simulator's own patients, ``known_cases``), to see
whether a wrong map is a resting point as well. 3 seeds each. Rows are appended
to ``results/equilibrium.csv`` as they land; a rerun resumes every sweep and
skips points already written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np  # noqa: E402

from jax_translate import io_utils  # noqa: E402
from jax_translate.configure import resolve  # noqa: E402
from jax_translate.data import dataset, domains  # noqa: E402
from jax_translate.data.layout import VALIDATION  # noqa: E402
from jax_translate.evaluation import known_cases, quality, results, scoring  # noqa: E402
from jax_translate.jobs.run_folder import RunFolder  # noqa: E402
from jax_translate.jobs.sweep import train_sweep  # noqa: E402
from jax_translate.training.methods import Method  # noqa: E402
from jax_translate.training.translate import translate_all  # noqa: E402

RESULTS = HERE / "results" / "equilibrium.csv"
SEEDS, STEPS, EVERY, RATIO = 3, 2000, 250, 0.5
# CycleGAN's terms, as config overrides of the cpu preset.
REGIMES = {
    "adversarial": {"lambda_cycle": 0.0, "lambda_identity": 0.0},
    "+ cycle": {"lambda_identity": 0.0},
    "+ cycle + identity": {},
}
STARTS = ("right", "swapped")
FIELDS = ("start", "regime", "seed", "step", "pixel_r", "structure_r", "gm_wm", "csf_wm",
          "gm_wm_real", "csf_wm_real", "contrast_error", "quality")


def swapped_splits(splits: dict) -> dict:
    """The training split with its T1 rendered with GM and WM exchanged (the same
    patients, noise and bias field): what the "swapped" L1 generators learn."""
    train = splits["train"]
    variants = known_cases.simulated_variants(np.unique(train.patient_id))
    if not np.array_equal(variants["dataset"].flair, train.flair):
        raise SystemExit("error: the re-simulated training patients differ from the dataset's")
    return {**splits, "train": dataclasses.replace(train, t1=variants["GM/WM swapped"].t1)}


# The L1 starts' schedule, pinned: the one the committed right-start rows were trained
# with (the cpu preset's L1 of that day), so that a later preset does not change the
# experiment (nor refuse its finished L1 folders).
L1_SETTINGS = {"learning_rate": 5e-4, "steps": 2000}


def l1_folders(out: Path, splits: dict, data_dir, starts=STARTS) -> dict[str, dict[str, Path]]:
    """{start: {"ab": folder, "ba": folder}} of finished L1 runs, trained if needed."""
    folders = {}
    for start in starts:
        data = splits if start == "right" else swapped_splits(splits)
        folders[start] = {}
        for name, (source, target) in (("ab", ("flair", "t1")), ("ba", ("t1", "flair"))):
            cfg = resolve("l1", "cpu", target_tumor_ratios=(RATIO,), seeds=SEEDS,
                              source=source, target=target, **L1_SETTINGS, **_data(data_dir))
            folder = out / f"l1-{start}-{source}-{target}"
            train_sweep(cfg, folder, data, progress=True)
            folders[start][name] = folder
    return folders


def _data(data_dir) -> dict:
    return {"data_dir": data_dir} if data_dir else {}


def read_rows(path: Path) -> list[dict]:
    """The rows written so far (numbers parsed), or none."""
    return results.read_csv(path) if path.exists() else []


def append(path: Path, rows: list[dict]) -> None:
    io_utils.append_csv(path, FIELDS, rows)


def scorer(cfg, test, start: str, regime: str, done: set, path: Path):
    """An evaluator (``train_sweep``'s): scores every member's Flair -> T1 translator at
    ``step`` on ``test`` and appends the rows not yet written."""
    def evaluate(step, states):
        if (start, regime, step) in done:
            return
        translated = translate_all(Method(cfg), states.generator, test.image(cfg.source))
        rows = [{"start": start, "regime": regime, "seed": row["seed"], "step": step,
                 "pixel_r": row["fidelity_r"], **row}
                for row in scoring.score(cfg, translated, test)
                if row["source_label"] == "healthy"]
        append(path, rows)
        done.add((start, regime, step))
        print(f"{start} {regime} step {step}: " + ", ".join(
            f"seed {r['seed']} r {r['pixel_r']:.2f} s {r['structure_r']:.2f} "
            f"GM/WM {r['gm_wm']:.2f}" for r in rows), flush=True)
    return evaluate


def run(out: Path, data_dir=None, path: Path = RESULTS, starts=STARTS,
        regimes=tuple(REGIMES)) -> None:
    cfg0 = resolve("cyclegan", "cpu", **_data(data_dir))
    splits = dataset.load_for(cfg0)
    test = domains.holdout_set(cfg0, splits[VALIDATION])
    done = {(r["start"], r["regime"], r["step"]) for r in read_rows(path)}
    folders = l1_folders(out, splits, data_dir, starts)
    for start in starts:
        l1 = resolve("l1", "cpu", target_tumor_ratios=(RATIO,), seeds=SEEDS,
                         **_data(data_dir))
        state = RunFolder.existing(folders[start]["ab"]).restore_final(l1)
        scorer(l1, test, start, "L1 start", done, path)(0, state)
        for regime, overrides in ((r, REGIMES[r]) for r in regimes):
            cfg = resolve("cyclegan", "cpu", target_tumor_ratios=(RATIO,), seeds=SEEDS,
                              steps=STEPS, decay_fraction=0.0, checkpoint_every=EVERY,
                              init_from=tuple((k, str(v)) for k, v in folders[start].items()),
                              **overrides, **_data(data_dir))
            folder = out / f"cyclegan-{start}-{regime.replace(' ', '').replace('+', '_')}"
            evaluate = scorer(cfg, test, start, regime, done, path)
            result = train_sweep(cfg, folder, splits, progress=True,
                                 evaluators=[(EVERY, evaluate)])
            if result.states is None:  # finished before: its last point from the checkpoint
                evaluate(STEPS, RunFolder.existing(folder).restore_final(cfg))


def table(rows: list[dict], steps=(0, 250, 500, 1000, 2000)) -> str:
    """Per start and regime: mean (seed min-max) of pixel r, structure r and GM/WM at a few
    steps, and the gate's verdicts at the last one."""
    def cell(values, fmt=".2f"):
        values = np.asarray(values, float)
        return (f"{values.mean():{fmt}} ({values.min():{fmt}}-{values.max():{fmt}})"
                if len(values) else "-")

    real = np.mean([r["gm_wm_real"] for r in rows]) if rows else float("nan")
    lines = [f"Validation split, healthy sources, {SEEDS} seeds: mean (min-max over seeds); "
             f"real T1's GM/WM {real:.2f}. Step 0 is the L1 start.", "",
             "| start | regime | step | pixel r | structure r | GM/WM | CSF/WM | gate ok |",
             "|---|---|---|---|---|---|---|---|"]
    starts = {r["start"]: [x for x in rows if x["start"] == r["start"]
                           and x["regime"] == "L1 start"] for r in rows}
    for start in dict.fromkeys(r["start"] for r in rows):
        for regime in REGIMES:
            mine = [r for r in rows if r["start"] == start and r["regime"] == regime]
            for step in steps:
                at = starts[start] if step == 0 else [r for r in mine if r["step"] == step]
                if not at:
                    continue
                ok = quality.count_passing("cyclegan", at)  # today's gate
                lines.append(f"| {start} | {regime} | {step:,} | {cell([r['pixel_r'] for r in at])}"
                             f" | {cell([r['structure_r'] for r in at])} | "
                             f"{cell([r['gm_wm'] for r in at])} | "
                             f"{cell([r['csf_wm'] for r in at])} | {ok}/{len(at)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "equilibrium")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--starts", default=",".join(STARTS),
                        help=f"which starts, comma-separated (default: {','.join(STARTS)})")
    parser.add_argument("--regimes", default=";".join(REGIMES),
                        help="which regimes, ';'-separated (default: all)")
    parser.add_argument("--table", action="store_true",
                        help="print the table of the committed results; train nothing")
    args = parser.parse_args(argv)
    if not args.table:
        starts = tuple(s for s in args.starts.split(",") if s)
        regimes = tuple(r.strip() for r in args.regimes.split(";") if r.strip())
        unknown = [s for s in starts if s not in STARTS] + [r for r in regimes if r not in REGIMES]
        if unknown:
            parser.error(f"unknown start or regime {unknown[0]!r}")
        run(args.out, args.data_dir, starts=starts, regimes=regimes)
    print(table(read_rows(RESULTS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
