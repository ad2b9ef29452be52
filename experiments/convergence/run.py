"""Quality and flips against training steps, one member per method (issue 15).

    python experiments/convergence/run.py --out runs/convergence [--steps 4000] [--points 8]

Each method trains one member per ``--ratios`` (target tumor ratio; default
1.0, seed 0) of the cpu preset, or of its layout with the paper's networks
(``--model paper``: ResNet-9, ngf 64, ndf 64), for ``--steps`` steps with the
preset's schedule. The run is stopped
``--points`` times (``train_sweep(stop_after=...)``, exactly as an
interrupted and resumed sweep, so the learning-rate schedule is that of the
full run) and the current translator is evaluated on the holdout set by
``scoring.score``: pixel r, SSIM, structure r and the contrast error inside
the brain on healthy sources with the quality gate's verdict, lesion
preservation on tumor sources, and the classifier's flip fractions.
Writes ``convergence.csv`` (after every point) and ``convergence.png`` to
``--out``. ``--budget-s`` stops a method's points once it has trained that
long, so a fixed-length GPU call still ends with every method's early points.

``--control control.csv`` (repeatable, ``RATIO=control.csv``; a plain path is ratio 1)
adds the control translator's curve beside ours: the rows that
``experiments/control/run.py`` wrote (``OUT/control.csv``: the CUT repository's own
CycleGAN, trained on this dataset's exported domains; its code never enters
here), each step judged there by ``jax-translate judge`` as ours are scored,
classifier columns included.

On a GPU (issue 15's question: does a bigger network start the game?):

    python experiments/convergence/run.py --model paper --ratios 0,1 --steps 8000 \
        --points 4 --methods cyclegan,condgan,l1 --member-axis loop --budget-s 120
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import numpy as np

from jax_translate import io_utils
from jax_translate.configure import resolve
from jax_translate.data import dataset, domains
from jax_translate.evaluation import ceiling as ceiling_lib
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import quality, scoring
from jax_translate.jobs.sweep import train_sweep
from jax_translate.model_config import MODEL_PRESETS
from jax_translate.training import translate
from jax_translate.training.methods import Method

FIELDS = ("method", "model", "target_tumor_ratio", "step", "fidelity_r", "fidelity_ssim",
          "structure_r", "contrast_error", "lesion_score_tumor", "frac_pred_tumor_healthy",
          "frac_pred_tumor_tumor", "quality", "wall_s")


def curve_point(healthy: dict, tumor: dict) -> dict:
    """A member's point of the curves from its healthy and tumor rows (`scoring.score`)."""
    return {"target_tumor_ratio": healthy["target_tumor_ratio"],
            "fidelity_r": healthy["fidelity_r"], "fidelity_ssim": healthy["fidelity_ssim"],
            "structure_r": healthy["structure_r"], "contrast_error": healthy["contrast_error"],
            "lesion_score_tumor": tumor["lesion_score"],
            "frac_pred_tumor_healthy": healthy["frac_pred_tumor"],
            "frac_pred_tumor_tumor": tumor["frac_pred_tumor"],
            "quality": healthy["quality"]}


def score_members(cfg, translated: np.ndarray, test, clf, diverged=None) -> list[dict]:
    """One `curve_point` per member of ``cfg``, in ``cfg.members`` order, from its
    translations ``translated`` (members, N, H, W) of ``test``'s sources."""
    rows = scoring.score(cfg, translated, test, clf, diverged)  # per member: healthy, tumor
    return [curve_point(rows[2 * m], rows[2 * m + 1]) for m in range(len(cfg.members))]


def evaluate_states(cfg, states, test, clf) -> list[dict]:
    """One dict per member (target ratio), in ``cfg.members`` order."""
    translated = translate.translate_all(Method(cfg), states.generator, test.image(cfg.source))
    return score_members(cfg, translated, test, clf, np.asarray(states.diverged))


CONTROL = "control cyclegan"


def control_rows(spec: str) -> list[dict]:
    """The control's curve: ``[RATIO=]control.csv`` as experiments/control writes it, each
    step's translations scored there by ``jax-translate judge`` (the library's scoring, the
    same classifier): read, not scored again."""
    ratio, _, path = spec.rpartition("=")
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing: run experiments/control/run.py first")
    with path.open(newline="") as f:
        peer_rows = list(csv.DictReader(f))
    rows = [{"method": CONTROL, "model": "cut-repo", "step": int(peer["step"]),
             "target_tumor_ratio": float(ratio or 1.0), "wall_s": peer["secs"],
             "lesion_score_tumor": peer["lesion_preservation"],
             **{k: peer[k] for k in FIELDS if k in peer and k not in ("step",)}}
            for peer in peer_rows]
    if not rows:
        raise SystemExit(f"error: {path} holds no control rows (experiments/control/run.py)")
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    io_utils.write_csv(path, FIELDS, rows)


def read_rows(path: Path) -> list[dict]:
    """convergence.csv's rows, numbers as numbers (empty cells: None)."""
    def value(key, text):
        if text == "" or key in ("method", "model", "quality"):
            return text or None
        return int(text) if key == "step" else float(text)
    with path.open() as f:
        return [{k: value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot(rows: list[dict], path: Path, title: str, ceiling=None) -> None:
    """The curves; with the dataset's `ceiling.Ceiling`, its floor and ceiling (pixel r)
    too. The gate's structure r has its own panel, with the gate's threshold (dashed);
    rows from before it was recorded leave that panel empty."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("fidelity_r", "pixel r (healthy sources)"),
              ("structure_r", f"structure r (healthy sources), gate {quality.STRUCTURE_GATE:g}"),
              ("lesion_score_tumor", "lesion preservation (tumor sources)"),
              ("frac_pred_tumor_healthy", "healthy -> tumor (added)"),
              ("frac_pred_tumor_tumor", "tumor -> tumor (kept)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (key, panel_title) in zip(axes, panels):
        for curve in dict.fromkeys((r["method"], r["target_tumor_ratio"]) for r in rows):
            pts = [(r["step"], r[key]) for r in rows
                   if (r["method"], r["target_tumor_ratio"]) == curve and r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ls="--" if curve[0] == CONTROL else "-",
                        label=f"{curve[0]} @ {curve[1]:g}")
        if key == "structure_r":
            ax.axhline(quality.STRUCTURE_GATE, color="k", ls="--", lw=1, label="gate")
        if key == "fidelity_r" and ceiling is not None:
            ax.axhline(ceiling.local_map_r, color="gray", ls=":", lw=1.5,
                       label=f"information ceiling ({ceiling.patch}x{ceiling.patch})")
            ax.axhline(ceiling.source_r, color="gray", ls="-.", lw=1,
                       label=f"{ceiling.source} as {ceiling.target}")
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/convergence"))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--methods", default="l1,condgan,cyclegan,gan")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default="cpu", choices=("cpu", "paper"),
                        help="networks: the cpu preset's, or the paper's (ResNet-9, ngf/ndf 64)")
    parser.add_argument("--ratios", default="1.0", help="target tumor ratios, one member each")
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="per method: no new point after training this long")
    parser.add_argument("--steps-per-call", type=int, default=0, help="0: the backend's default")
    parser.add_argument("--control", action="append", default=[], metavar="[RATIO=]CONTROL.csv",
                        help="the control translator's rows (experiments/control), drawn beside ours")
    parser.add_argument("--methods-from", type=Path, default=None, metavar="CSV",
                        help="start from this convergence.csv's rows (plot a run again with "
                             "a control, or add methods to it) instead of an empty table")
    parser.add_argument("--member-axis", default="auto", choices=("auto", "loop", "vmap", "map"),
                        help="how the members train (auto: engine.plan's choice)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="a config field on top of the cpu preset, e.g. learning_rate=1e-3 "
                             "(repeatable; recorded in the model column)")
    args = parser.parse_args()
    label = " ".join([args.model, *args.set])
    args.out.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(args.out / "jax_cache"))

    ratios = tuple(float(r) for r in args.ratios.split(","))
    title = (f"{args.model} networks{' ' + ' '.join(args.set) if args.set else ''}, 64x64, "
             f"target tumor ratio {args.ratios}, seed 0")
    rows = read_rows(args.methods_from) if args.methods_from else []
    loaded = {}

    def data_for(cfg):
        """(splits, classifier, holdout set) of ``cfg``'s dataset and target, read once each."""
        key = dataset.folder_for(cfg), cfg.target
        if key not in loaded:
            splits = dataset.load_for(cfg)
            clf = classifier_lib.for_config(cfg, splits, progress=False)
            loaded[key] = splits, clf, domains.holdout_set(cfg, splits["holdout"])
        return loaded[key]

    rows += [row for spec in args.control for row in control_rows(spec)]
    for method in filter(None, args.methods.split(",")):
        cfg = resolve(method, "cpu", target_tumor_ratios=ratios, seeds=1, steps=args.steps,
                          checkpoint_every=max(1, args.steps // args.points),
                          log_every=max(1, args.steps // args.points), data_dir=args.data_dir,
                          steps_per_call=args.steps_per_call, member_axis=args.member_axis,
                          model=MODEL_PRESETS[args.model], sets=args.set)
        splits, clf, test = data_for(cfg)
        t0, step = time.perf_counter(), 0
        for k in range(1, args.points + 1):
            target = round(k * args.steps / args.points)
            result = train_sweep(cfg, args.out / method, splits, progress=False,
                                 stop_after=target - step)
            step = target
            wall = round(time.perf_counter() - t0, 1)
            for member in evaluate_states(cfg, result.states, test, clf):
                row = {"method": method, "model": label, "step": step, **member,
                       "wall_s": wall}
                rows.append(row)
                print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row.items()), flush=True)
            write_rows(rows, args.out / "convergence.csv")
            if wall > args.budget_s:
                print(f"{method}: budget of {args.budget_s:g} s spent at step {step}", flush=True)
                break
    write_rows(rows, args.out / "convergence.csv")
    cfg = resolve("cyclegan", "cpu", data_dir=args.data_dir)
    data_ceiling, _ = ceiling_lib.recorded(dataset.folder_for(cfg), data_for(cfg)[0],
                                           source=cfg.source, target=cfg.target)
    plot(rows, args.out / "convergence.png", title, data_ceiling)
    print(f"wrote {args.out / 'convergence.csv'} and {args.out / 'convergence.png'}")


if __name__ == "__main__":
    main()
