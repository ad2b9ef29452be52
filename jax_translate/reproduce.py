"""The main job: the paper's experiment end to end, one sweep per method.

``reproduce(preset, out)`` trains every method at every bias setting (one
vmapped sweep each), evaluates them with the shared classifier, and writes
the combined results and figures. It is resumable: finished sweeps and
evaluations are kept, an unfinished sweep continues from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax

from jax_translate import io_utils
from jax_translate.config import METHODS, SweepConfig, make_config
from jax_translate.errors import UsageError
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import evaluate, figures, metrics
from jax_translate.training import checkpoints
from jax_translate.training.sweep import load_splits, train_sweep


@dataclasses.dataclass(frozen=True)
class ReproducePreset:
    model_preset: str
    size: str
    ratios: tuple[float, ...]
    seeds: int
    steps: dict[str, int]          # per method
    n_source: int = 700
    n_target: int = 700
    n_holdout: int = 350
    classifier_steps: int = classifier_lib.ClassifierConfig.steps
    steps_per_call: int = 0        # 0: auto (1 on CPU, 50 on accelerators)
    checkpoint_every: int = 500
    log_every: int = 50
    n_patients: int = 50
    n_train_patients: int = 30
    notes: str = ""


ELEVEN = tuple(round(0.1 * i, 1) for i in range(11))
PAPER_STEPS = 200 * 700  # 200 epochs of 700 images at batch 1

PRESETS = {
    # Sized so the whole job finishes in ~15 minutes on a 2-core CPU.
    "cpu": ReproducePreset(
        model_preset="cpu", size="64", ratios=(0.0, 0.5, 1.0), seeds=1,
        steps={"cyclegan": 1000, "gan": 1000, "condgan": 1000, "l1": 1000},
        notes="64x64, narrow ResNet, 3 ratios: shows the effect on a CPU in minutes"),
    # ../shared/PAPER.md: 256x128, ResNet-9 (ngf 64), 11 ratios, 200 epochs.
    "paper": ReproducePreset(
        model_preset="paper", size="256x128", ratios=ELEVEN, seeds=1,
        steps={m: PAPER_STEPS for m in METHODS}, classifier_steps=3000,
        steps_per_call=100, checkpoint_every=5000, log_every=500,
        notes="the paper's protocol; for a GPU"),
    # For tests: seconds.
    "tiny": ReproducePreset(
        model_preset="tiny", size="64", ratios=(0.0, 1.0), seeds=1,
        steps={m: 4 for m in METHODS}, n_source=20, n_target=20, n_holdout=16,
        classifier_steps=20, steps_per_call=2, checkpoint_every=2, log_every=2,
        n_patients=5, n_train_patients=3),
}


def default_preset(backend: str | None = None) -> str:
    return "cpu" if (backend or jax.default_backend()) == "cpu" else "paper"


def method_config(preset: ReproducePreset, method: str, **overrides) -> SweepConfig:
    return make_config(
        method, preset.model_preset, size=preset.size, target_tumor_ratios=preset.ratios,
        seeds=preset.seeds, steps=preset.steps[method], n_source=preset.n_source,
        n_target=preset.n_target, n_holdout=preset.n_holdout,
        steps_per_call=min(preset.steps_per_call, preset.steps[method]),
        checkpoint_every=preset.checkpoint_every, log_every=preset.log_every,
        n_patients=preset.n_patients, n_train_patients=preset.n_train_patients, **overrides)


def _is_evaluated(workdir: Path) -> bool:
    return (workdir / "results.json").exists() and (workdir / "bias_curve.png").exists()


def reproduce(preset_name: str, out: str | Path, methods=METHODS, data_dir: str | None = None,
              progress: bool = True, log=print) -> dict:
    """Runs (or resumes) the whole experiment into ``out``; returns the summary."""
    if preset_name not in PRESETS:
        raise UsageError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    out = checkpoints.check_workdir(out)
    t0 = time.perf_counter()
    configs = {m: method_config(preset, m, data_dir=data_dir) for m in methods}
    splits = load_splits(next(iter(configs.values())))
    log(f"data: {len(splits['train'])} train / {len(splits['holdout'])} holdout slices "
        f"({preset.size}); preset {preset_name}: {preset.notes}")
    clf_cfg = classifier_lib.ClassifierConfig(steps=preset.classifier_steps)
    clf = classifier_lib.load_or_train(
        evaluate.classifier_cache_dir(next(iter(configs.values()))),
        splits, clf_cfg, progress=progress)
    c = clf.metrics
    log(f"classifier on real T1 holdout: accuracy {c['accuracy']:.3f}, sensitivity "
        f"{c['sensitivity']:.3f}, specificity {c['specificity']:.3f}")

    rows, timings = [], {}
    for method, cfg in configs.items():
        workdir = out / method
        t = time.perf_counter()
        if not _is_evaluated(workdir):
            result = train_sweep(cfg, workdir, splits, progress=progress)
            timings[method] = {"compile_s": result.compile_seconds,
                               "train_s": result.train_seconds, "steps_run": result.steps_run}
            evaluate.evaluate_run(workdir, splits, clf, progress=progress)
        rows += json.loads((workdir / "results.json").read_text())["rows"]
        log(f"{method}: done in {time.perf_counter() - t:.0f}s ({workdir})")

    io_utils.atomic_write_text(out / "results.csv", evaluate.rows_to_csv(rows))
    table = evaluate.flip_table(rows)
    summary = {"preset": preset_name, "rows": rows, "aggregate": metrics.aggregate_over_seeds(rows),
               "classifier": clf.metrics, "timings": timings, "flip_table": table,
               "wall_seconds_this_call": time.perf_counter() - t0}
    io_utils.atomic_write_json(out / "results.json", summary)
    figure = figures.bias_curves(rows, out / "bias_curves.png")
    log(f"\nfraction of holdout translations predicted tumor [Wilson 95% CI]:\n{table}")
    log(f"\nfigures: {figure} and {out}/<method>/examples.png; table: {out}/results.csv")
    return summary
