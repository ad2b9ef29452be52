"""Quality and flips against training steps, one member per method (issue 15).

    python experiments/convergence/run.py --out runs/convergence [--steps 4000] [--points 8]

Each method trains one member (target tumor ratio 1.0, seed 0) of the cpu
preset for ``--steps`` steps with the preset's schedule. The run is stopped
``--points`` times (``train_sweep(stop_after=...)``, exactly as an
interrupted and resumed sweep, so the learning-rate schedule is that of the
full run) and the current translator is evaluated on the holdout set:
fidelity r and SSIM inside the brain on healthy sources (the quality gate),
lesion preservation on tumor sources, and the classifier's flip fractions.
Writes ``convergence.csv`` and ``convergence.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import numpy as np

from jax_translate.config import make_config
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import evaluate, quality
from jax_translate.run_folder import load_splits
from jax_translate.training.methods import Method
from jax_translate.training.sweep import train_sweep

FIELDS = ("method", "step", "fidelity_r", "fidelity_ssim", "lesion_score_tumor",
          "frac_pred_tumor_healthy", "frac_pred_tumor_tumor", "quality", "wall_s")


def evaluate_states(cfg, states, test, clf) -> dict:
    translated = evaluate.translate_all(Method(cfg), states.generator, test.flair)
    pred = np.stack([clf.predict(t) for t in translated])
    rows = evaluate.member_rows(cfg, translated, pred, test, np.asarray(states.diverged))
    healthy, tumor = (next(r for r in rows if r["source_label"] == s) for s in ("healthy", "tumor"))
    return {"fidelity_r": healthy["fidelity_r"], "fidelity_ssim": healthy["fidelity_ssim"],
            "lesion_score_tumor": tumor["lesion_score"],
            "frac_pred_tumor_healthy": healthy["frac_pred_tumor"],
            "frac_pred_tumor_tumor": tumor["frac_pred_tumor"], "quality": healthy["quality"]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("fidelity_r", "fidelity r (healthy sources)"),
              ("lesion_score_tumor", "lesion preservation (tumor sources)"),
              ("frac_pred_tumor_healthy", "healthy -> tumor (added)"),
              ("frac_pred_tumor_tumor", "tumor -> tumor (kept)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (key, title) in zip(axes, panels):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["step"], r[key]) for r in rows if r["method"] == method]
            ax.plot(*zip(*pts), marker="o", label=method)
        if key == "fidelity_r":
            ax.axhline(quality.FIDELITY_GATE, color="k", ls="--", lw=1, label="gate")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    fig.suptitle("cpu preset, target tumor ratio 1.0, seed 0")
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
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(args.out / "jax_cache"))

    rows = []
    for method in args.methods.split(","):
        cfg = make_config(method, "cpu", target_tumor_ratios=(1.0,), seeds=1, steps=args.steps,
                          checkpoint_every=max(1, args.steps // args.points),
                          log_every=max(1, args.steps // args.points), data_dir=args.data_dir)
        splits = load_splits(cfg)
        clf = classifier_lib.load_or_train(evaluate.classifier_cache_dir(cfg), splits,
                                           classifier_lib.ClassifierConfig(), progress=False)
        test = evaluate.holdout_set(cfg, splits["holdout"])
        t0, step = time.perf_counter(), 0
        for k in range(1, args.points + 1):
            target = round(k * args.steps / args.points)
            result = train_sweep(cfg, args.out / method, splits, progress=False,
                                 stop_after=target - step)
            step = target
            row = {"method": method, "step": step, **evaluate_states(cfg, result.states, test, clf),
                   "wall_s": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items()), flush=True)
        with (args.out / "convergence.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        plot(rows, args.out / "convergence.png")
    print(f"wrote {args.out / 'convergence.csv'} and {args.out / 'convergence.png'}")


if __name__ == "__main__":
    main()
