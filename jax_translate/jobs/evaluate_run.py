"""Evaluates a finished sweep: translate the holdout set with every member, count flips.

``evaluate_run(workdir)`` writes into the run folder (:class:`RunFolder` names
each file):

- ``results.csv`` / ``results.json``: one row per (method, target_tumor_ratio,
  seed, source_label) (:class:`~jax_translate.evaluation.results.ResultRow`, from
  :func:`~jax_translate.evaluation.scoring.score`: the classifier's verdicts, pixel
  and lesion metrics against the real paired target image (T1 by default),
  fidelity, the contrast check and the member's gate verdict);
- ``translations.npz``: every member's translated holdout images, with what
  is needed to re-analyse them without rerunning;
- ``bias_curves.png``, ``examples.png`` and ``losses.png`` (the training losses
  of every member, from ``metrics/``);
- each member's evaluation metrics as TensorBoard scalars (:mod:`run_log`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jax_translate import io_utils
from jax_translate.data import dataset, domains
from jax_translate.data.dataset import SliceSet
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import figures, metrics, quality, results, scoring
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.jobs.run_log import write_eval_scalars
from jax_translate.training.methods import Method, Parts
from jax_translate.training.translate import translate_all


@dataclasses.dataclass
class Evaluation:
    rows: list[dict]
    classifier_metrics: dict
    outputs: dict[str, Path]


def evaluate_run(workdir: str | Path, splits: dict[str, SliceSet] | None = None,
                 classifier=None, progress: bool = True,
                 classifier_cfg: classifier_lib.ClassifierConfig | None = None,
                 parts: Parts = Parts()) -> Evaluation:
    """Evaluates the finished sweep in ``workdir`` and writes its outputs there.

    ``classifier`` defaults to the cached one of ``classifier_cfg`` for the run's
    target modality (trained if absent); ``classifier_cfg`` to the run's own
    (``classifier.config_for``: what ``reproduce`` judges it with). ``parts``
    are what the sweep was trained with (``train_sweep``'s).
    ``results.csv`` and ``results.json`` are written last, each atomically:
    once both exist, every other output is complete too.
    """
    folder = RunFolder.existing(workdir)
    cfg = folder.finished_config()
    states = folder.restore_final(cfg, parts)  # a damaged checkpoint is refused before any work
    splits = splits if splits is not None else dataset.load_for(cfg)
    if classifier is None:
        classifier = classifier_lib.for_config(cfg, splits, progress, settings=classifier_cfg)
    method = Method(cfg, parts=parts)
    test = domains.holdout_set(cfg, splits["holdout"])
    source, real_target = test.image(cfg.source), test.image(cfg.target)
    translated = translate_all(method, states.generator, source)
    rows = scoring.score(cfg, translated, test, classifier, np.asarray(states.diverged))
    quality.print_gate_warnings(rows)

    outputs = folder.outputs()
    tmp = folder.path / ".translations.tmp.npz"
    np.savez_compressed(
        tmp, translated=translated.astype(np.float16), source=source.astype(np.float16),
        real_target=real_target.astype(np.float16), source_modality=cfg.source,
        target_modality=cfg.target, label=test.label, tumor_mask=test.tumor_mask,
        brain_mask=test.brain_mask, patient_id=test.patient_id, slice_index=test.slice_index,
        target_tumor_ratio=np.asarray([m.target_tumor_ratio for m in cfg.members]),
        seed=np.asarray([m.seed for m in cfg.members]),
        member=np.asarray([m.name for m in cfg.members]), method=cfg.method,
        **({"tissue": test.tissue} if test.has_tissue else {}))
    tmp.replace(outputs["translations"])
    figures.bias_curves(rows, outputs["bias_curves"])
    figures.loss_curves(folder.metrics(cfg), outputs["losses"])
    figures.example_grid(translated, test, cfg.members, cfg.method, outputs["examples"],
                         source=cfg.source, target=cfg.target, rows=rows)
    write_eval_scalars(folder, cfg, rows)  # TensorBoard: eval/<metric>/<source label>
    io_utils.atomic_write_text(outputs["results_csv"], results.rows_to_csv(rows))
    io_utils.atomic_write_json(outputs["results_json"], {
        "rows": rows, "aggregate": metrics.aggregate_over_seeds(rows),
        "classifier": classifier.metrics, "config": json.loads(cfg.to_json())})
    return Evaluation(rows, classifier.metrics, outputs)
