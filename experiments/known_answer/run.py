"""The known-answer test: can a translator copy? Each regime beside L1 with the same generator.

    python experiments/known_answer/run.py --out runs/known_answer \\
        --regime base='{}' --regime d1='{"model": {"n_disc_layers": 1}}' \\
        --grid r1_weight=0,1,10 --seeds 2 --steps 3000 --points 6

The identity task (``--source flair --target flair``, the default): source and
target are the same modality, so copying the input is the exact answer (r 1),
and at target ratio 0.5, where the target's tumor share equals the source's,
copying is also the adversarial optimum. A distribution-matching translator
that cannot copy there cannot be trusted to translate anywhere.

Every ``--regime NAME=JSON`` (config overrides on top of the cpu preset, as a
config file would give them; ``model`` fields are merged into the cpu
networks) trains each ``--methods`` method (default cyclegan) with the
``--grid`` knobs crossed with ``--ratios`` and ``--seeds`` as members of one
sweep, and L1 with the same networks, steps and seeds as the reference. Each
sweep is stopped ``--points`` times on one schedule (as an interrupted and
resumed run) and every member's translations of the holdout set are scored (``scoring.score``, as
every result is): pixel r inside the brain on healthy sources (the verdict's
measure: copying is exact at the pixel level), beside the quality gate's
structure r, GM/WM ratio, contrast error and verdict, and lesion preservation
on tumor sources. Rows are appended to ``results.csv`` as they land; a rerun
resumes every sweep and skips rows already there.

A member passes when its final pixel r is within ``--tolerance`` (0.03) of
L1's final pixel r on the same seed; a regime passes when every seed of a
grid point does (the issue's rule: 2 seeds).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jax_translate import io_utils
from jax_translate.config import parse_grid
from jax_translate.configure import resolve
from jax_translate.data import dataset, domains
from jax_translate.errors import UsageError
from jax_translate.evaluation import scoring
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.jobs.sweep import train_sweep
from jax_translate.training import translate
from jax_translate.training.methods import Method

FIELDS = ("task", "split", "regime", "method", "member", "target_tumor_ratio", "seed", "step",
          "fidelity_r", "fidelity_ssim", "structure_r", "gm_wm", "contrast_error", "quality",
          "lesion_score_tumor", "wall_s")
# Read back as numbers; rows written before a column existed read NaN there.
NUMBER_FIELDS = ("target_tumor_ratio", "fidelity_r", "fidelity_ssim", "structure_r", "gm_wm",
                 "contrast_error", "lesion_score_tumor", "wall_s")
# Columns of a member's healthy row (scoring.score) kept in its row here.
HEALTHY_COLUMNS = ("fidelity_r", "fidelity_ssim", "structure_r", "gm_wm", "contrast_error",
                   "quality")
REFERENCE = "l1"
DISCRIMINATOR_FIELDS = ("ndf", "n_disc_layers", "d_pool")


def scored_members(cfg, translated, test) -> list[dict]:
    """Per member of ``cfg``, from its translations ``translated`` (members, N, H, W) of
    ``test``'s sources, scored by ``scoring.score`` (no classifier: the identity task
    needs none): its healthy row's pixel r, SSIM, structure r, GM/WM, contrast error and
    gate verdict, and its tumor row's lesion score."""
    scored = scoring.score(cfg, translated, test)  # per member: its healthy, then tumor row
    out = []
    for m, member in enumerate(cfg.members):
        healthy, tumor = scored[2 * m], scored[2 * m + 1]
        assert (healthy["source_label"], tumor["source_label"]) == ("healthy", "tumor")
        out.append({"member": member.name, "target_tumor_ratio": member.target_tumor_ratio,
                    "seed": member.seed, **{k: healthy[k] for k in HEALTHY_COLUMNS},
                    "lesion_score_tumor": tumor["lesion_score"]})
    return out


def score_members(cfg, states, test) -> list[dict]:
    """:func:`scored_members` of ``states``' generators, translating ``test``'s sources."""
    translated = translate.translate_all(Method(cfg), states.generator, test.image(cfg.source))
    return scored_members(cfg, np.asarray(translated), test)


def read_rows(path: Path) -> list[dict]:
    """``results.csv``'s rows, numbers as numbers; columns a row predates read NaN
    (numbers) or "" (the gate's verdict)."""
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in NUMBER_FIELDS:
            text = row.get(key) or ""
            row[key] = float(text) if text not in ("", "nan") else float("nan")
        row["seed"], row["step"] = int(row["seed"]), int(row["step"])
        row["quality"] = row.get("quality") or ""
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    """Appends ``rows``; a file written before FIELDS grew is rewritten under the new
    header first (its rows' new cells empty; rows from before the split column were
    scored on the holdout), so that every line has its columns."""
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header, old = tuple(reader.fieldnames or ()), list(reader)
        if header != FIELDS:
            io_utils.write_csv(path, FIELDS, ({"split": "holdout", **row} for row in old))
    io_utils.append_csv(path, FIELDS, rows)


def train_with_points(cfg, workdir: Path, splits, test, points: int, label: dict,
                      done: set, out_csv: Path) -> list[dict]:
    """Trains ``cfg`` in ``workdir``, scoring every member at each of ``points`` steps."""
    rows, t0, step = [], time.perf_counter(), 0
    for k in range(1, points + 1):
        target = round(k * cfg.steps / points)
        key = (label["task"], label["split"], label["regime"], label["method"], target)
        result = train_sweep(cfg, workdir, splits, progress=False, stop_after=target - step)
        step = target
        if key in done:
            continue
        states = result.states
        if states is None:  # already finished: the final checkpoint
            states = RunFolder.existing(workdir).restore_final(cfg)
        wall = round(time.perf_counter() - t0, 1)
        new = [{**label, **row, "step": target, "wall_s": wall}
               for row in score_members(cfg, states, test)]
        append_rows(out_csv, new)
        rows += new
        for row in new:
            print(f"{row['task']} {row['regime']} {row['method']} {row['member']} "
                  f"step={target} r={row['fidelity_r']:.3f} "
                  f"structure_r={row['structure_r']:.3f} gate={row['quality']} "
                  f"lesion={row['lesion_score_tumor']:.2f}",
                  flush=True)
    return rows


def verdicts(rows: list[dict], tolerance: float) -> list[str]:
    """One line per (regime, method, grid point): final r per seed against L1's, pass/fail."""
    final = {}
    for row in rows:
        key = (row["task"], row["regime"], row["method"], row["member"])
        if key not in final or row["step"] > final[key]["step"]:
            final[key] = row
    # L1 at every step it was scored, so that a sweep stopped early (a cap) is judged at its
    # own last step; a regime without an L1 of its own name (one that changes only the
    # discriminator, run beside another) takes its task's L1 when the task has exactly one.
    reference, ref_regimes = {}, {}
    for row in rows:
        if row["method"] == REFERENCE:
            reference[(row["task"], row["regime"], row["seed"], row["step"])] = row["fidelity_r"]
            ref_regimes.setdefault(row["task"], set()).add(row["regime"])
    groups = {}
    for (task, regime, method, member), row in final.items():
        if method == REFERENCE:
            continue
        point = "/".join(p for p in member.split("/") if not p.startswith("seed="))
        groups.setdefault((task, regime, method, point), []).append(row)
    lines = []
    for (task, regime, method, point), members in sorted(groups.items()):
        parts, ok = [], True
        own = ref_regimes.get(task, set())
        ref_regime = regime if regime in own or len(own) != 1 else next(iter(own))
        for row in sorted(members, key=lambda r: r["seed"]):
            ref = reference.get((task, ref_regime, row["seed"], row["step"]))
            gap = row["fidelity_r"] - ref if ref is not None else float("nan")
            ok &= bool(gap >= -tolerance)
            parts.append(f"seed {row['seed']}: r {row['fidelity_r']:.3f} vs l1 "
                         f"{ref if ref is not None else float('nan'):.3f} ({gap:+.3f})")
        lines.append(f"{'PASS' if ok else 'fail'} {task} {regime} {method} {point} "
                     f"step {members[0]['step']}: " + "; ".join(parts))
    return lines


def markdown_table(rows: list[dict]) -> str:
    """Every regime's curve (r at each evaluated step, per seed) beside its L1 reference."""
    curves = {}
    for row in rows:
        key = (row["task"], row["regime"], row["method"], row["member"])
        curves.setdefault(key, {})[row["step"]] = row["fidelity_r"]
    lines = ["| task | regime | method | member | r at each evaluated step | final |",
             "|---|---|---|---|---|---|"]
    for (task, regime, method, member), curve in curves.items():
        steps = sorted(curve)
        points = " / ".join(f"{curve[s]:.2f}" for s in steps)
        lines.append(f"| {task} | {regime} | {method} | {member} | {points} (steps "
                     f"{', '.join(f'{s:,}' for s in steps)}) | {curve[steps[-1]]:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/known_answer"))
    parser.add_argument("--source", default="flair")
    parser.add_argument("--target", default="flair")
    parser.add_argument("--regime", action="append", default=[], metavar="NAME=JSON",
                        help="config overrides of one regime (repeatable; default base={})")
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                        help="knobs gridded over the members of each regime's sweep")
    parser.add_argument("--methods", default="cyclegan")
    parser.add_argument("--ratios", default="0.5")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--no-reference", action="store_true", help="skip the L1 reference")
    parser.add_argument("--preset", default="cpu", help="what each regime starts from")
    parser.add_argument("--size", default=None, help="image size (default: the preset's)")
    parser.add_argument("--member-axis", default="auto", choices=("auto", "loop", "vmap", "map"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", default="validation", choices=("validation", "holdout"),
                        help="where translators are scored (default validation: regimes are "
                             "chosen there, the holdout is read once for reported numbers)")
    parser.add_argument("--table", action="store_true",
                        help="print --out's results as a markdown table and the verdicts; "
                             "train nothing")
    args = parser.parse_args(argv)
    try:
        if args.table:
            rows = read_rows(args.out / "results.csv")
            print(markdown_table(rows) + "\n\n" + "\n".join(verdicts(rows, args.tolerance)))
            return
        run(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2)


def run(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(args.out / "jax_cache"))
    task = f"{args.source}->{args.target}"
    out_csv = args.out / "results.csv"
    rows = read_rows(out_csv)
    done = {(r["task"], r.get("split", "holdout"), r["regime"], r["method"], r["step"])
            for r in rows}
    ratios = tuple(float(r) for r in args.ratios.split(","))
    regimes = [item.partition("=") for item in (args.regime or ["base={}"])]
    splits = test = None
    for name, _, text in regimes:
        overrides = json.loads(text)
        # a regime may carry its own grid ({field: [values]}), crossed with --grid's
        regime_grid = overrides.pop("grid", {})
        if not isinstance(regime_grid, dict):
            raise UsageError(f"regime {name}: 'grid' must be {{field: [values]}}")
        grid_here = parse_grid(args.grid + [f"{k}={','.join(str(v) for v in values)}"
                                            for k, values in regime_grid.items()])
        # a partial "model" changes those fields of the preset's networks (configure.resolve)
        common = dict(source=args.source, target=args.target,
                      target_tumor_ratios=ratios, seeds=args.seeds, steps=args.steps,
                      checkpoint_every=max(1, args.steps // args.points),
                      log_every=max(1, args.steps // args.points), data_dir=args.data_dir,
                      member_axis=args.member_axis, **({"size": args.size} if args.size else {}))
        # (method, is the reference): an l1 named in --methods takes the regime like any other
        # (e.g. a grid of its learning rate); the appended reference takes only its networks
        methods = [(m, False) for m in args.methods.split(",") if m]
        if not args.no_reference:
            methods.append((REFERENCE, True))
        for method, is_reference in methods:
            if is_reference:  # the same generator and schedule: no knobs, no grid
                ref = {k: v for k, v in overrides.items() if k in ("model", "size")}
                if "model" in ref:  # L1 has no discriminator: its fields change nothing
                    ref["model"] = {k: v for k, v in ref["model"].items()
                                    if k not in DISCRIMINATOR_FIELDS}
                cfg = resolve(method, args.preset, **common, **ref)
                # one L1 per distinct network and schedule, shared by the regimes that keep them
                signature = json.dumps([ref, common], sort_keys=True, default=str).encode()
                folder = args.out / task / f"l1-{hashlib.sha1(signature).hexdigest()[:8]}"
            else:
                cfg = resolve(method, args.preset, **common, grid=grid_here, **overrides)
                folder = args.out / task / f"{name}-{method}"
            if splits is None:
                splits = dataset.load_for(cfg)
                if args.split not in splits:
                    raise UsageError(f"the dataset has no {args.split} split (dataset version "
                                     f"{cfg.simulator_version}); use --split holdout")
                # choices are made on validation; the holdout is read once, for the report
                test = domains.holdout_set(cfg, splits[args.split])
            label = {"task": task, "split": args.split, "regime": name, "method": method}
            rows += train_with_points(cfg, folder, splits, test, args.points, label, done,
                                      out_csv)
    print("\n".join(verdicts(rows, args.tolerance)))


if __name__ == "__main__":
    main()
