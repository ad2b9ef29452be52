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
from jax_translate.configure import Study, resolve_study
from jax_translate.data import dataset
from jax_translate.evaluation import ceiling as ceiling_lib
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import figures, metrics, results
from jax_translate.jobs import adapt, preflight
from jax_translate.jobs.evaluate_run import evaluate_run
from jax_translate.jobs.run_folder import StudyFolder
from jax_translate.jobs.sweep import train_sweep
from jax_translate.training import members


def reproduce(study: Study | str, out: str | Path, progress: bool = True, log=print,
              memory_limit: int | None = None) -> dict:
    """Runs (or resumes) the whole study into ``out``; returns the summary.

    ``study`` is a preset name (its methods) or a resolved
    :class:`~jax_translate.configure.Study` (``configure.resolve_study``: a config
    file, ``--methods``, flags and ``--set`` over a preset). A preset with
    ``preflight`` (paper) first prints its ETA and memory and refuses, before
    writing anything, what the device (``memory_limit`` bytes; default: the
    device's own) cannot hold.
    """
    if isinstance(study, str):
        study = resolve_study(study)
    preset_name, configs = study.preset, study.configs
    t0 = time.perf_counter()
    if study.preflight:
        preflight.check(configs.values(), log=log, memory_limit=memory_limit)
    folders = StudyFolder.create(out)
    first = next(iter(configs.values()))
    splits = dataset.load_for(first)
    log(f"data: {len(splits['train'])} train / {len(splits['holdout'])} holdout slices "
        f"({first.size}); preset {preset_name}: {study.notes}")
    data_ceiling, _ = ceiling_lib.recorded(dataset.folder_for(first), splits,
                                           source=first.source, target=first.target)
    log(data_ceiling.line())
    # The run's own classifier (config_for), the one `jax-translate evaluate` picks too;
    # every method of the experiment shares the dataset, preset and target.
    clf = classifier_lib.for_config(first, splits, progress=progress)
    log(classifier_lib.classifier_line(clf.metrics))

    for cfg in configs.values():  # every method's members, before the first trains
        for each in (cfg, *adapt.pretrain_configs(cfg).values()):
            members.check_domains(each, splits["train"])
    rows, timings = [], {}
    for method, cfg in configs.items():
        folder = folders.method(method)
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

    io_utils.atomic_write_text(folders.results_csv, results.rows_to_csv(rows))
    table = results.flip_table(rows)
    summary = {"preset": preset_name, "rows": rows, "aggregate": metrics.aggregate_over_seeds(rows),
               "classifier": clf.metrics, "information_ceiling": dataclasses.asdict(data_ceiling),
               "timings": timings, "flip_table": table,
               "wall_seconds_this_call": time.perf_counter() - t0}
    io_utils.atomic_write_json(folders.results_json, summary)
    figure = figures.bias_curves(rows, folders.bias_curves)
    figures.flips(rows, folders.flips)
    _contrast(folders, configs)
    log(f"\nfraction of holdout translations predicted tumor, mean over seeds [95% CI over "
        f"seeds]:\n{table}")
    log(f"\nfigures: {figure}, {folders.flips}, {folders.contrast} and "
        f"{folders.path}/<method>/examples.png; "
        f"table: {folders.results_csv}")
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
