"""The tumor classifier that judges translated images, trained once per dataset.

It applies the dataset's own label rule to a *predicted* tumor mask: a small
fully-convolutional network segments tumor tissue in a T1 slice, and the
slice is called *tumor* when the predicted tumor area exceeds
``MIN_TUMOR_FRACTION`` (1%) of the brain, exactly how the ground-truth labels
were made. A global tumor/healthy CNN trained on the same slices reached only
~93-96% on holdout patients here (it must guess the area implicitly); the
segmenting classifier makes the decision the rule makes.

It is trained on *real* T1 slices of the training split only
(:mod:`jax_translate.training.segmenter`, which also trains cyclegan-cc's
segmenters), cached next to the dataset so every
run of every method is judged by the same classifier, and stored with its
accuracy, sensitivity and specificity on real holdout T1.
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

from jax_translate.data.dataset import SliceSet
from jax_translate.data.slices import MIN_TUMOR_FRACTION
from jax_translate.io_utils import atomic_write_json
from jax_translate.models.segmenter import TumorSegmenter
from jax_translate.training import segmenter
# The evaluator's config is the segmenter's training config (its label rule has none).
from jax_translate.training.segmenter import SegmenterConfig as ClassifierConfig

# Brain pixels of an image: skull-stripped T1 is 0 outside the brain and
# > 0.15 inside (CSF is its darkest tissue), translated images alike.
BRAIN_THRESHOLD = 0.05
# The segmenter's loss up-weights tumor pixels (segmenter.POS_WEIGHT), which
# biases its areas: the logit threshold is calibrated on the training slices.
LOGIT_GRID = np.linspace(-3.0, 3.0, 61)


@functools.partial(jax.jit, static_argnums=0)
def _areas(width: int, params, images, thresholds):
    """(tumor area at each logit threshold (N, T), brain area (N,)) in pixels."""
    logits = TumorSegmenter(width).apply({"params": params}, images)
    # each coarse cell is 2x2 pixels
    tumor = 4.0 * jnp.sum(logits[..., None] > thresholds, axis=(1, 2))
    brain = jnp.sum(images[..., 0] > BRAIN_THRESHOLD, axis=(1, 2))
    return tumor, jnp.maximum(brain, 1)


def tumor_fractions(params, images: np.ndarray, thresholds, width: int = 16,
                    chunk: int = 256) -> np.ndarray:
    """(N, T) predicted tumor pixels / brain pixels at each logit threshold."""
    images = np.asarray(images, np.float32)
    thresholds = jnp.atleast_1d(jnp.asarray(thresholds, jnp.float32))
    out = []
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        # Padded with blank images to a power of two: a handful of compiled shapes,
        # not one per image count (each image's areas are its own).
        padded = np.zeros((min(chunk, 1 << (len(part) - 1).bit_length()), *part.shape[1:]),
                          np.float32)
        padded[:len(part)] = part
        tumor, brain = _areas(width, params, jnp.asarray(padded[..., None]), thresholds)
        out.append(np.asarray(tumor)[:len(part)] / np.asarray(brain)[:len(part), None])
    return np.concatenate(out) if out else np.zeros((0, len(thresholds)))


def calibrate(params, train: SliceSet, width: int = 16) -> float:
    """The logit threshold at which predicted tumor areas match the true ones
    (median ratio 1) on training slices with a clear tumor (> 2% of the brain)."""
    brain = train.brain_mask.reshape(len(train), -1).sum(1)
    true = train.tumor_mask.reshape(len(train), -1).sum(1) / np.maximum(brain, 1)
    clear = true > 2 * MIN_TUMOR_FRACTION
    if not clear.any():
        return 0.0
    fractions = tumor_fractions(params, train.t1[clear], LOGIT_GRID, width)
    ratio = np.median(fractions / true[clear][:, None], axis=0)
    return float(LOGIT_GRID[np.argmin(np.abs(np.log(np.maximum(ratio, 1e-6))))])


def predict_tumor(params, images: np.ndarray, threshold: float, width: int = 16) -> np.ndarray:
    """Boolean tumor predictions for (N, H, W) images in [0, 1]: the label rule
    applied to the predicted mask."""
    return tumor_fractions(params, images, threshold, width)[:, 0] > MIN_TUMOR_FRACTION


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
    metrics: dict    # accuracy, sensitivity, specificity on real T1 holdout slices
    threshold: float  # calibrated logit threshold of the segmenter

    def predict(self, images: np.ndarray) -> np.ndarray:
        return predict_tumor(self.params, images, self.threshold, self.cfg.width)

    def tumor_pixels(self, images: np.ndarray) -> np.ndarray:
        """(N,) pixels segmented as tumor at the calibrated threshold."""
        fractions = tumor_fractions(self.params, images, self.threshold, self.cfg.width)[:, 0]
        brain = np.maximum((np.asarray(images) > BRAIN_THRESHOLD).sum(axis=(1, 2)), 1)
        return np.rint(fractions * brain)


def load_or_train(cache_dir: Path, splits: dict[str, SliceSet],
                  cfg: ClassifierConfig = ClassifierConfig(), progress: bool = True
                  ) -> CachedClassifier:
    """The classifier cached under ``cache_dir``, training and saving it if absent.

    Each classifier config gets its own subfolder, so changing it never
    reuses a classifier trained differently.
    """
    cache_dir = Path(cache_dir) / (f"v{cfg.version}_w{cfg.width}_steps{cfg.steps}"
                                   f"_b{cfg.batch_size}_lr{cfg.learning_rate:g}_seed{cfg.seed}")
    params_path, meta_path = cache_dir / "params.msgpack", cache_dir / "classifier.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        params = segmenter.load_params(params_path, cfg.width, splits["train"].t1.shape[1:])
        if meta.get("config") == dataclasses.asdict(cfg) and params is not None:
            return CachedClassifier(params, cfg, meta["holdout_real_t1"], meta["threshold"])
    t0 = time.perf_counter()
    params = segmenter.train_segmenter(splits["train"], cfg, progress, desc="classifier")
    threshold = calibrate(params, splits["train"], cfg.width)
    holdout = splits["holdout"]
    metrics = scores(predict_tumor(params, holdout.t1, threshold, cfg.width), holdout.label)
    metrics["train_seconds"] = time.perf_counter() - t0
    segmenter.save_params(params_path, params)
    atomic_write_json(meta_path, {"config": dataclasses.asdict(cfg), "threshold": threshold,
                                  "holdout_real_t1": metrics})
    return CachedClassifier(params, cfg, metrics, threshold)
