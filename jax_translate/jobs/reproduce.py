"""The main job: the paper's experiment end to end, one sweep per method.

``reproduce(preset_or_experiment, out)`` trains every method at every bias setting (one
vmapped sweep each), evaluates them with the shared classifier, and writes
the combined results and figures. It is resumable: finished sweeps and
evaluations are kept, an unfinished sweep continues from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from jax_translate import io_utils
from jax_translate.config import Experiment, make_config, preset_settings
from jax_translate.data import dataset
from jax_translate.evaluation import ceiling as ceiling_lib
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import figures, metrics, results
from jax_translate.jobs import preflight
from jax_translate.jobs.evaluate_run import evaluate_run
from jax_translate.jobs.run_folder import StudyFolder, classifier_cache_dir
from jax_translate.jobs.sweep import train_sweep
from jax_translate.presets import default_preset


def reproduce(experiment: Experiment | str, out: str | Path, data_dir: str | None = None,
              progress: bool = True, log=print, memory_limit: int | None = None) -> dict:
    """Runs (or resumes) the whole experiment into ``out``; returns the summary.

    ``experiment`` is a preset name (the paper's four methods) or an
    :class:`Experiment` (its ``methods``: any registered, e.g. cut).
    A preset with ``preflight`` (paper) first prints its ETA and memory and
    refuses, before writing anything, what the device (``memory_limit``
    bytes; default: the device's own) cannot hold.
    """
    if isinstance(experiment, str):
        experiment = Experiment(experiment, (), {})
    preset_name = experiment.preset or default_preset()
    settings = preset_settings(preset_name, **experiment.overrides)
    t0 = time.perf_counter()
    overrides = {**experiment.overrides, **({"data_dir": data_dir} if data_dir else {})}
    configs = {m: make_config(m, preset_name, **overrides)
               for m in dataclasses.replace(experiment, preset=preset_name).method_names()}
    if settings.get("preflight"):
        preflight.check(configs.values(), log=log, memory_limit=memory_limit)
    study = StudyFolder.create(out)
    first = next(iter(configs.values()))
    splits = dataset.load_for(first)
    log(f"data: {len(splits['train'])} train / {len(splits['holdout'])} holdout slices "
        f"({first.size}); preset {preset_name}: {settings.get('notes', '')}")
    data_ceiling, _ = ceiling_lib.recorded(dataset.folder_for(first), splits,
                                           source=first.source, target=first.target)
    log(data_ceiling.line())
    # The run's own classifier (config_for), the one `jax-translate evaluate` picks too;
    # every method of the experiment shares the dataset, preset and target.
    clf = classifier_lib.load_or_train(classifier_cache_dir(first), splits,
                                       classifier_lib.config_for(first), progress=progress,
                                       modality=first.target)
    log(classifier_lib.classifier_line(clf.metrics))

    rows, timings = [], {}
    for method, cfg in configs.items():
        folder = study.method(method)
        workdir = folder.path
        t = time.perf_counter()
        if folder.is_evaluated():
            folder.bind(cfg)  # reused only if it holds this config; refused otherwise
        else:
            result = train_sweep(cfg, workdir, splits, progress=progress)
            timings[method] = {"compile_s": result.compile_seconds,
                               "train_s": result.train_seconds, "steps_run": result.steps_run}
            evaluate_run(workdir, splits, clf, progress=progress)
        rows += folder.results()["rows"]
        log(f"{method}: done in {time.perf_counter() - t:.0f}s ({workdir})")

    io_utils.atomic_write_text(study.results_csv, results.rows_to_csv(rows))
    table = results.flip_table(rows)
    summary = {"preset": preset_name, "rows": rows, "aggregate": metrics.aggregate_over_seeds(rows),
               "classifier": clf.metrics, "information_ceiling": dataclasses.asdict(data_ceiling),
               "timings": timings, "flip_table": table,
               "wall_seconds_this_call": time.perf_counter() - t0}
    io_utils.atomic_write_json(study.results_json, summary)
    figure = figures.bias_curves(rows, study.bias_curves)
    figures.flips(rows, study.flips)
    _contrast(study, configs)
    log(f"\nfraction of holdout translations predicted tumor, mean over seeds [95% CI over "
        f"seeds]:\n{table}")
    log(f"\nfigures: {figure}, {study.flips}, {study.contrast} and "
        f"{study.path}/<method>/examples.png; "
        f"table: {study.results_csv}")
    return summary


def _contrast(study: StudyFolder, configs: dict) -> None:
    """``contrast.png``: each method's translations of the healthy holdout sources at the
    middle ratio (first seed) against the real target, with their tissue means; from the
    methods' translations.npz. Skipped for data without tissue maps."""
    import numpy as np

    panels, held = [], None
    for method, cfg in configs.items():
        with np.load(study.method(method).outputs()["translations"]) as saved:
            if "tissue" not in saved.files:
                return
            ratios = saved["target_tumor_ratio"]
            middle = sorted(set(ratios.tolist()))[len(set(ratios.tolist())) // 2]
            member = int(np.flatnonzero((ratios == middle) & (saved["seed"] == saved["seed"].min()))[0])
            healthy = saved["label"] == 0
            panels.append((f"{method} {100 * middle:g}%",
                           saved["translated"][member][healthy].astype(np.float32)))
            held = (saved["real_target"][healthy].astype(np.float32), saved["brain_mask"][healthy],
                    saved["tissue"][healthy], cfg.target)
    if not panels:
        return
    real, brain, tissue, target = held
    example = int(np.argmax(brain.reshape(len(brain), -1).sum(1)))  # the largest brain
    figures.contrast_plot(panels, real, brain, tissue, example, study.contrast, target)
