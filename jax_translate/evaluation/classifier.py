"""The tumor classifier that judges translated images, trained once per dataset and modality.

It applies the dataset's own label rule to a *predicted* tumor mask: a small
fully-convolutional network segments tumor tissue in a slice of the target
modality, and the slice is called *tumor* when the predicted tumor area
exceeds ``MIN_TUMOR_FRACTION`` (1%) of the brain, exactly how the
ground-truth labels were made. The brain is the slice's own brain mask (for a
translation, its source slice's): a threshold of the judged image would let
its background intensity move the rule. A global tumor/healthy CNN trained on
the same slices reached only ~93-96% on holdout patients here (it must guess
the area implicitly); the segmenting classifier makes the decision the rule
makes.

It is trained on *real* slices of the modality it judges (a run's
``target``), of the training split only (:mod:`jax_translate.training.segmenter`,
which also trains cyclegan-cc's segmenters), and cached next to the dataset
per modality and :class:`ClassifierConfig`, so every run of every method is
judged by the same classifier, with its accuracy, sensitivity and specificity
on the real holdout slices. Which config judges a run is a function of the
run's own config (:func:`config_for`), whichever command evaluates it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.config import SweepConfig
from jax_translate.data import dataset
from jax_translate.data.dataset import SliceSet
from jax_translate.data.layout import VALIDATION
from jax_translate.data.slices import MIN_TUMOR_FRACTION
from jax_translate.images import MODALITY_NAMES
from jax_translate.io_utils import atomic_write_json
from jax_translate.models.segmenter import TumorSegmenter
from jax_translate.training import segmenter
# The evaluator's config is the segmenter's training config (its label rule has none).
from jax_translate.training.segmenter import SegmenterConfig as ClassifierConfig

# Brain pixels of an image when no brain mask is given (the fallback of
# :func:`brain_areas`): skull-stripped T1 is 0 outside the brain and > 0.15
# inside (CSF is its darkest tissue). A translation's background need not be 0,
# so evaluation passes the source slices' masks instead.
BRAIN_THRESHOLD = 0.05
# The segmenter's loss up-weights tumor pixels (segmenter.POS_WEIGHT), which
# biases its areas: the logit threshold is calibrated on the training slices.
LOGIT_GRID = np.linspace(-3.0, 3.0, 61)


@functools.partial(jax.jit, static_argnums=0)
def _tumor_areas(width: int, params, images, thresholds):
    """(N, T) segmented tumor area in pixels at each logit threshold."""
    logits = TumorSegmenter(width).apply({"params": params}, images)
    # each coarse cell is 2x2 pixels
    return 4.0 * jnp.sum(logits[..., None] > thresholds, axis=(1, 2))


def _padded(part: np.ndarray, chunk: int) -> np.ndarray:
    """``part`` padded with blank images to a power of two (at most ``chunk``): a handful
    of compiled shapes, not one per image count (each image's result is its own)."""
    padded = np.zeros((min(chunk, 1 << (len(part) - 1).bit_length()), *part.shape[1:]),
                      np.float32)
    padded[:len(part)] = part
    return padded


def brain_areas(images: np.ndarray, brain_mask: np.ndarray | None = None) -> np.ndarray:
    """(N,) brain pixels per slice (>= 1): the mask's, or without one the pixels
    of the image above ``BRAIN_THRESHOLD`` (which a bright background inflates)."""
    brain = (np.asarray(images) > BRAIN_THRESHOLD) if brain_mask is None else (
        np.asarray(brain_mask) > 0)
    return np.maximum(brain.reshape(len(brain), -1).sum(1), 1)


def tumor_areas(params, images: np.ndarray, thresholds, width: int = 16,
                chunk: int = 256) -> np.ndarray:
    """(N, T) segmented tumor pixels of (N, H, W) images in [0, 1] at each logit threshold."""
    images = np.asarray(images, np.float32)
    thresholds = jnp.atleast_1d(jnp.asarray(thresholds, jnp.float32))
    out = []
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        padded = _padded(part, chunk)
        tumor = _tumor_areas(width, params, jnp.asarray(padded[..., None]), thresholds)
        out.append(np.asarray(tumor)[:len(part)])
    return np.concatenate(out) if out else np.zeros((0, len(thresholds)))


def tumor_fractions(params, images: np.ndarray, thresholds, width: int = 16,
                    chunk: int = 256, brain_mask: np.ndarray | None = None) -> np.ndarray:
    """(N, T) predicted tumor pixels / brain pixels (:func:`brain_areas`) at each
    logit threshold."""
    areas = tumor_areas(params, images, thresholds, width, chunk)
    return areas / brain_areas(images, brain_mask)[:, None]


def calibrate(params, train: SliceSet, width: int = 16, modality: str = "t1") -> float:
    """The logit threshold at which predicted tumor areas match the true ones
    (median ratio 1) on slices of ``modality`` with a clear tumor (> 2% of the
    brain): the validation split's where there is one."""
    brain = train.brain_mask.reshape(len(train), -1).sum(1)
    true = train.tumor_mask.reshape(len(train), -1).sum(1) / np.maximum(brain, 1)
    clear = true > 2 * MIN_TUMOR_FRACTION
    if not clear.any():
        return 0.0
    fractions = tumor_fractions(params, train.image(modality)[clear], LOGIT_GRID, width,
                                brain_mask=train.brain_mask[clear])
    ratio = np.median(fractions / true[clear][:, None], axis=0)
    return float(LOGIT_GRID[np.argmin(np.abs(np.log(np.maximum(ratio, 1e-6))))])


def predict_tumor(params, images: np.ndarray, threshold: float, width: int = 16,
                  brain_mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean tumor predictions for (N, H, W) images in [0, 1]: the label rule
    applied to the predicted mask, over the slices' ``brain_mask`` (see
    :func:`brain_areas` for None)."""
    fractions = tumor_fractions(params, images, threshold, width, brain_mask=brain_mask)
    return fractions[:, 0] > MIN_TUMOR_FRACTION


def scores(pred: np.ndarray, labels: np.ndarray) -> dict:
    pred, labels = np.asarray(pred, bool), np.asarray(labels) == 1
    return {"accuracy": float((pred == labels).mean()),
            "sensitivity": float(pred[labels].mean()) if labels.any() else float("nan"),
            "specificity": float((~pred[~labels]).mean()) if (~labels).any() else float("nan"),
            "n_images": int(len(labels))}


@dataclasses.dataclass
class CachedClassifier:
    params: dict
    cfg: ClassifierConfig
    metrics: dict    # accuracy, sensitivity, specificity on real holdout slices; modality
    threshold: float  # calibrated logit threshold of the segmenter
    modality: str = "t1"  # what it was trained on and judges

    def predict(self, images: np.ndarray, brain_mask: np.ndarray | None = None) -> np.ndarray:
        """Tumor or not, per image; ``brain_mask``: the images' (their source slices')."""
        return predict_tumor(self.params, images, self.threshold, self.cfg.width, brain_mask)

    def tumor_pixels(self, images: np.ndarray) -> np.ndarray:
        """(N,) pixels segmented as tumor at the calibrated threshold."""
        return tumor_areas(self.params, images, self.threshold, self.cfg.width)[:, 0]


def config_for(cfg: SweepConfig) -> ClassifierConfig:
    """The classifier that judges runs of ``cfg``: its ``classifier_*`` fields, recorded
    in the run's config.json, so every command evaluating one run picks the same cached
    classifier."""
    return ClassifierConfig(width=cfg.classifier_width, steps=cfg.classifier_steps,
                            batch_size=cfg.classifier_batch_size,
                            learning_rate=cfg.classifier_learning_rate,
                            seed=cfg.classifier_seed)


def cache_dir_for(cfg: SweepConfig) -> Path:
    """Where the evaluation classifiers of ``cfg``'s dataset are cached: beside the dataset."""
    return dataset.folder_for(cfg) / "classifier"


def for_config(cfg: SweepConfig, splits: dict[str, SliceSet], progress: bool = True,
               settings: ClassifierConfig | None = None,
               cache_dir: Path | None = None) -> "CachedClassifier":
    """The judge of runs of ``cfg``: the classifier of its target modality with its
    ``classifier_*`` settings (``settings``: others), cached beside its dataset (or in
    ``cache_dir``), trained there if absent. The one call every command and experiment
    that scores a translation makes."""
    return load_or_train(cache_dir or cache_dir_for(cfg), splits, settings or config_for(cfg),
                         progress=progress, modality=cfg.target)


def cache_name(cfg: ClassifierConfig, modality: str) -> str:
    """The cache subfolder of a classifier config and modality. T1's has no prefix:
    the folders cached before modalities existed stay valid."""
    name = (f"v{cfg.version}_w{cfg.width}_steps{cfg.steps}_b{cfg.batch_size}"
            f"_lr{cfg.learning_rate:g}_seed{cfg.seed}")
    return name if modality == "t1" else f"{modality}_{name}"


def classifier_line(metrics: dict) -> str:
    """``classifier on real T1 holdout: accuracy ...`` for logs."""
    name = MODALITY_NAMES[metrics.get("modality", "t1")]
    return (f"classifier on real {name} holdout: accuracy {metrics['accuracy']:.3f}, "
            f"sensitivity {metrics['sensitivity']:.3f}, specificity {metrics['specificity']:.3f}")


def load_or_train(cache_dir: Path, splits: dict[str, SliceSet],
                  cfg: ClassifierConfig = ClassifierConfig(), progress: bool = True,
                  modality: str = "t1") -> CachedClassifier:
    """The classifier of ``modality`` cached under ``cache_dir``, training and saving it
    if absent.

    Each classifier config and modality gets its own subfolder, so changing
    either never reuses a classifier trained differently.
    """
    cache_dir = Path(cache_dir) / cache_name(cfg, modality)
    params_path, meta_path = cache_dir / "params.msgpack", cache_dir / "classifier.json"
    train, holdout = splits["train"], splits["holdout"]
    train_images = train.image(modality)  # a clear error if the dataset lacks it
    # The threshold is chosen on the validation split where the dataset has one (the
    # holdout is read once, for the numbers reported), else on the training slices.
    calibration = VALIDATION if VALIDATION in splits else "train"
    params, t0 = None, time.perf_counter()
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        params = segmenter.load_params(params_path, cfg.width, train_images.shape[1:])
        if meta.get("config") != dataclasses.asdict(cfg):
            params = None
        elif params is not None and meta.get("calibrated_on", "train") == calibration:
            # "holdout_real_t1": caches written before other modalities existed
            metrics = meta.get("holdout_real", meta.get("holdout_real_t1"))
            return CachedClassifier(params, cfg, {**metrics, "modality": modality},
                                    meta["threshold"], modality)
    if params is None:  # else: the same network, calibrated on another split before
        params = segmenter.train_segmenter(train, cfg, progress, modality=modality,
                                           desc="classifier")
    threshold = calibrate(params, splits[calibration], cfg.width, modality)
    metrics = scores(predict_tumor(params, holdout.image(modality), threshold, cfg.width,
                                   holdout.brain_mask), holdout.label)
    metrics["train_seconds"] = time.perf_counter() - t0
    metrics["modality"] = modality
    segmenter.save_params(params_path, params)
    atomic_write_json(meta_path, {"config": dataclasses.asdict(cfg), "threshold": threshold,
                                  "modality": modality, "calibrated_on": calibration,
                                  "holdout_real": metrics})
    return CachedClassifier(params, cfg, metrics, threshold, modality)
