"""Evaluates a finished sweep: translate the holdout set with every member, count flips.

``evaluate_run(workdir)`` writes into the run folder:

- ``results.csv`` / ``results.json``: one row per (method, target_tumor_ratio,
  seed, source_label) with the classifier's verdicts (n_pred_tumor,
  frac_pred_tumor and its Wilson 95% interval), pixel metrics against the
  real paired T1 (mae, psnr, ssim), the mask-based lesion_score, fidelity
  inside the brain (fidelity_r, fidelity_ssim) and the member's quality
  (``quality.quality_verdict`` on its healthy rows' fidelity_r);
- ``translations.npz``: every member's translated holdout images, with what
  is needed to re-analyse them without rerunning;
- ``bias_curve.png``, ``examples.png`` and ``losses.png`` (the training losses
  of every member, from ``metrics/``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.config import SweepConfig
from jax_translate.data import domains
from jax_translate.data.dataset import SliceSet
from jax_translate import io_utils
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import figures, hallucination, metrics, quality
from jax_translate.run_folder import RESULTS_CSV, RESULTS_JSON, RunFolder, load_splits
from jax_translate.training.members import downsample, from_model_range, to_model_range, upsample
from jax_translate.training.methods import Method

COLUMNS = ("method", "target_tumor_ratio", "seed", "source_label", "status", "n_images",
           "n_pred_tumor", "frac_pred_tumor", "ci_low", "ci_high", "mae", "psnr", "ssim",
           "lesion_score", "fidelity_r", "fidelity_ssim", "quality", "pfpr", "ifpr")
LABELS = ("healthy", "tumor")
# With cfg.test_dropout, holdout image i is translated with the dropout key
# fold_in(PRNGKey(EVAL_DROPOUT_SEED), i): the same for every member, run and
# chunking, so evaluations repeat exactly.
EVAL_DROPOUT_SEED = 0


def dataset_folder(cfg: SweepConfig) -> Path:
    """The folder of ``cfg``'s dataset: its records, export, ceiling and classifier cache."""
    from jax_translate.data import dataset

    return dataset.dataset_dir(cfg.size, cfg.data_dir, cfg.brats_dir, **cfg.simulator_kwargs)


def classifier_cache_dir(cfg: SweepConfig) -> Path:
    return dataset_folder(cfg) / "classifier"


def holdout_set(cfg: SweepConfig, holdout: SliceSet) -> SliceSet:
    sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    return holdout.take(domains.holdout_indices(holdout.label, sizes, seed=cfg.data_seed))


def translate_all(method: Method, generators, images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(members, N, H, W) translations in [0, 1] of (N, H, W) images in [0, 1].

    Images are upscaled by ``cfg.upscale`` for the generator and its output
    area-averaged back to (H, W), so metrics and the classifier see the
    dataset's size. With ``cfg.test_dropout`` dropout stays on, with one fixed
    key per image (:data:`EVAL_DROPOUT_SEED`).
    """
    cfg = method.cfg

    def one_member(generator, x, keys):
        x = upsample(x, cfg.upscale)
        if cfg.test_dropout:
            y = jax.vmap(lambda xi, k: method.translate(generator, xi[None], dropout_key=k)[0])(
                x, keys)
        else:
            y = method.translate(generator, x)
        return downsample(y, cfg.upscale)

    fn = jax.jit(jax.vmap(one_member, in_axes=(0, None, None)))
    x = to_model_range(images, cfg.intensity_range)
    base = jax.random.PRNGKey(EVAL_DROPOUT_SEED)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(len(x)))
    parts = [np.asarray(fn(generators, jnp.asarray(x[i:i + chunk]), keys[i:i + chunk]))
             for i in range(0, len(x), chunk)]
    return from_model_range(np.concatenate(parts, axis=1), cfg.intensity_range)


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else np.nan


def member_rows(cfg: SweepConfig, translated: np.ndarray, pred: np.ndarray, test: SliceSet,
                diverged: np.ndarray, tumor_pixels: np.ndarray | None = None) -> list[dict]:
    """Rows of every member; ``tumor_pixels`` (members, N), the segmenter's tumor
    area per translation, gives the healthy rows StegoGAN's pFPR and iFPR."""
    rows = []
    for m, (ratio, seed) in enumerate(cfg.members):
        member = []
        counts = metrics.flip_counts(pred[m], test.label)
        for label_value, name in enumerate(LABELS):
            sel = test.label == label_value
            x, y = translated[m][sel], test.t1[sel]
            n, k = counts[name]["n_images"], counts[name]["n_pred_tumor"]
            low, high = metrics.wilson_interval(k, n) if n else (np.nan, np.nan)
            lesion = metrics.lesion_score(x, y, test.label[sel], test.tumor_mask[sel],
                                          test.brain_mask[sel]) if n else np.array([np.nan])
            brain = test.brain_mask[sel]
            member.append({
                "method": cfg.method, "target_tumor_ratio": ratio, "seed": seed,
                "source_label": name, "status": "diverged" if diverged[m] else "ok",
                "n_images": n, "n_pred_tumor": k, "frac_pred_tumor": counts[name]["frac_pred_tumor"],
                "ci_low": low, "ci_high": high,
                "mae": float(np.mean(metrics.mae(x, y))) if n else np.nan,
                "psnr": float(np.mean(metrics.psnr(x, y))) if n else np.nan,
                "ssim": float(np.mean(metrics.ssim(x, y))) if n else np.nan,
                "lesion_score": _nanmean(lesion),
                "fidelity_r": _nanmean(quality.pearson_in_brain(x, y, brain)) if n else np.nan,
                "fidelity_ssim": _nanmean(quality.ssim_in_brain(x, y, brain)) if n else np.nan,
                "pfpr": np.nan, "ifpr": np.nan,
            })
            if tumor_pixels is not None and name == "healthy":
                member[-1]["pfpr"], member[-1]["ifpr"] = hallucination.false_positive_rates(
                    tumor_pixels[m][sel], brain.reshape(len(brain), -1).sum(1), x.shape[1:3])
        # the gate reads the healthy row (LABELS[0]) only: there, a lesion the bias
        # pasted or erased cannot lower fidelity; tumor rows' is for reference
        verdict = quality.quality_verdict(cfg.method, member[0]["fidelity_r"])
        rows += [dict(row, quality=verdict) for row in member]
    return rows


def rows_to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


@dataclasses.dataclass
class Evaluation:
    rows: list[dict]
    classifier_metrics: dict
    outputs: dict[str, Path]


def evaluate_run(workdir: str | Path, splits: dict[str, SliceSet] | None = None,
                 classifier=None, progress: bool = True,
                 classifier_cfg: classifier_lib.ClassifierConfig = classifier_lib.ClassifierConfig()
                 ) -> Evaluation:
    """Evaluates the finished sweep in ``workdir`` and writes its outputs there.

    ``classifier`` defaults to the cached one of ``classifier_cfg`` (trained if
    absent). ``results.csv`` and ``results.json`` are written last, each
    atomically: once both exist, every other output is complete too.
    """
    folder = RunFolder.existing(workdir)
    cfg = folder.finished_config()
    states = folder.restore_final(cfg)  # a damaged checkpoint is refused before any work
    splits = splits if splits is not None else load_splits(cfg)
    if classifier is None:
        classifier = classifier_lib.load_or_train(classifier_cache_dir(cfg), splits,
                                                  classifier_cfg, progress=progress)
    method = Method(cfg)
    test = holdout_set(cfg, splits["holdout"])
    translated = translate_all(method, states.generator, test.flair)
    pred = np.stack([classifier.predict(t) for t in translated])
    diverged = np.asarray(states.diverged)
    # pFPR/iFPR need the segmenter's areas; a classifier that only labels leaves them NaN
    tumor_pixels = (np.stack([classifier.tumor_pixels(t) for t in translated])
                    if hasattr(classifier, "tumor_pixels") else None)
    rows = member_rows(cfg, translated, pred, test, diverged, tumor_pixels)
    quality.print_undertrained(rows)

    workdir = folder.path
    outputs = {name: workdir / name for name in
               (RESULTS_CSV, RESULTS_JSON, "translations.npz", "bias_curve.png", "examples.png",
                "losses.png")}
    tmp = workdir / ".translations.tmp.npz"
    np.savez_compressed(
        tmp, translated=translated.astype(np.float16), source=test.flair.astype(np.float16),
        real_target=test.t1.astype(np.float16), label=test.label, tumor_mask=test.tumor_mask,
        brain_mask=test.brain_mask, patient_id=test.patient_id, slice_index=test.slice_index,
        target_tumor_ratio=np.asarray([r for r, _ in cfg.members]),
        seed=np.asarray([s for _, s in cfg.members]), pred_tumor=pred, method=cfg.method)
    tmp.replace(outputs["translations.npz"])
    figures.bias_curves(rows, outputs["bias_curve.png"])
    figures.loss_curves(folder.metrics(cfg), outputs["losses.png"])
    figures.example_grid(translated, test, cfg.members, cfg.method, outputs["examples.png"])
    io_utils.atomic_write_text(outputs[RESULTS_CSV], rows_to_csv(rows))
    io_utils.atomic_write_json(outputs[RESULTS_JSON], {
        "rows": rows, "aggregate": metrics.aggregate_over_seeds(rows),
        "classifier": classifier.metrics, "config": json.loads(cfg.to_json())})
    return Evaluation(rows, classifier.metrics, outputs)


def _quality_cell(rows: list[dict]) -> str:
    """Mean healthy-source fidelity r over seeds and the members' verdicts,
    e.g. ``0.91 ok``, ``0.62 undertrained`` or ``0.80 undertrained 1/2``."""
    healthy = [r for r in rows if r["source_label"] == "healthy" and "quality" in r]
    if not healthy:
        return "-"  # results written before the quality columns existed
    fidelity = np.asarray([r["fidelity_r"] for r in healthy], float)
    verdicts = [r["quality"] for r in healthy]
    n_bad = verdicts.count(quality.UNDERTRAINED)
    if n_bad:
        verdict = quality.UNDERTRAINED + (f" {n_bad}/{len(verdicts)}" if n_bad < len(verdicts)
                                          else "")
    else:
        verdict = verdicts[0]
    r_mean = np.nanmean(fidelity) if np.isfinite(fidelity).any() else np.nan
    return f"{r_mean:.2f} {verdict}"


def flip_table(rows: list[dict], ratios=(0.0, 0.5, 1.0)) -> str:
    """Per method and ratio: fraction of holdout images predicted tumor, per source label.

    Counts are pooled over seeds; brackets hold the Wilson 95% interval of the
    pooled fraction. ``healthy`` columns are tumors *added*, ``tumor`` columns
    tumors *kept* (1 - removed). The last column is the mean fidelity r on
    healthy sources and the quality gate's verdict (``undertrained k/n`` when
    k of n seeds fail it): flips of undertrained members are not the paper's
    effect.
    """
    pooled: dict[tuple, list[int]] = {}
    members: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status", "ok") != "ok":
            continue
        key = (r["method"], r["target_tumor_ratio"], r["source_label"])
        k_n = pooled.setdefault(key, [0, 0])
        k_n[0] += int(r["n_pred_tumor"]); k_n[1] += int(r["n_images"])
        members.setdefault(key[:2], []).append(r)
    header = (f"{'method':9s} {'ratio':>5s}  {'healthy->tumor':>22s}  {'tumor->tumor':>22s}  "
              "fidelity r, quality")
    lines = [header]
    for method, ratio in members:
        if ratios is not None and not any(abs(ratio - x) < 1e-9 for x in ratios):
            continue
        cells = []
        for label in LABELS:
            k, n = pooled.get((method, ratio, label), (0, 0))
            low, high = metrics.wilson_interval(k, n) if n else (np.nan, np.nan)
            cells.append(f"{k / n if n else np.nan:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(f"{method:9s} {ratio:5.2f}  {cells[0]:>22s}  {cells[1]:>22s}  "
                     f"{_quality_cell(members[method, ratio])}")
    return "\n".join(lines)
