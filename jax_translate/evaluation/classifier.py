"""The tumor classifier that judges translated images, trained once per dataset.

It applies the dataset's own label rule to a *predicted* tumor mask: a small
fully-convolutional network segments tumor tissue in a T1 slice, and the
slice is called *tumor* when the predicted tumor area exceeds
``MIN_TUMOR_FRACTION`` (1%) of the brain, exactly how the ground-truth labels
were made. A global tumor/healthy CNN trained on the same slices reached only
~93-96% on holdout patients here (it must guess the area implicitly); the
segmenting classifier makes the decision the rule makes.

It is trained on *real* T1 slices of the training split only (balanced
batches, with flips, shifts, intensity, noise and blur augmentation so it
tolerates what translators do to images), cached next to the dataset so every
run of every method is judged by the same classifier, and stored with its
accuracy, sensitivity and specificity on real holdout T1.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_translate.data.dataset import SliceSet
from jax_translate.data.slices import MIN_TUMOR_FRACTION
from jax_translate.errors import UsageError
from jax_translate.io_utils import atomic_write_bytes, atomic_write_json

CLASSIFIER_VERSION = 2
# Brain pixels of an image: skull-stripped T1 is 0 outside the brain and
# > 0.15 inside (CSF is its darkest tissue), translated images alike.
BRAIN_THRESHOLD = 0.05
# Tumor pixels are ~2% of a batch; without up-weighting them the segmenter
# settles on "no tumor anywhere". The weighting biases areas, so the logit
# threshold is calibrated afterwards on the training slices (calibrate()).
POS_WEIGHT = 10.0
LOGIT_GRID = np.linspace(-3.0, 3.0, 61)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    width: int = 16
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    version: int = CLASSIFIER_VERSION


class TumorSegmenter(nn.Module):
    """A small UNet at half resolution: per-pixel tumor logits on a 2x coarser grid."""

    width: int = 16

    @nn.compact
    def __call__(self, x):  # (N, H, W, 1) in [0, 1] -> (N, H/2, W/2) logits
        def block(x, features, stride=1):
            x = nn.Conv(features, (3, 3), strides=(stride, stride))(x)
            return nn.relu(nn.GroupNorm(num_groups=4)(x))

        def up(x):
            n, h, w, c = x.shape
            return jnp.broadcast_to(x[:, :, None, :, None], (n, h, 2, w, 2, c)).reshape(
                n, 2 * h, 2 * w, c)

        w = self.width
        s1 = block(block(x, w, 2), w)                  # H/2
        s2 = block(block(s1, 2 * w, 2), 2 * w)         # H/4
        s3 = block(block(s2, 4 * w, 2), 4 * w)         # H/8
        y = block(jnp.concatenate([up(s3), s2], -1), 2 * w)
        y = block(jnp.concatenate([up(y), s1], -1), w)
        return nn.Conv(1, (1, 1))(y)[..., 0]


def _augment(key, images, masks):
    """The same random flips and shifts for image and mask; intensity scale,
    noise and mild blur for the image only.

    Spatial augmentation matters most: the training split has only ~30
    tumors, and without it the network memorises where they were.
    """
    n, h, w, _ = images.shape
    k_flip, k_shift, k_scale, k_noise, k_blur = jax.random.split(key, 5)
    both = jnp.concatenate([images, masks], -1)
    flips = jax.random.bernoulli(k_flip, 0.5, (2, n, 1, 1, 1))
    both = jnp.where(flips[0], both[:, :, ::-1], both)
    both = jnp.where(flips[1], both[:, ::-1], both)
    shifts = jax.random.randint(k_shift, (n, 2), -(h // 8), h // 8 + 1)
    both = jax.vmap(lambda im, s: jnp.roll(im, s, axis=(0, 1)))(both, shifts)
    images, masks = both[..., :1], both[..., 1:]
    images = images * jax.random.uniform(k_scale, (n, 1, 1, 1), minval=0.85, maxval=1.15)
    images = images + 0.03 * jax.random.uniform(k_noise, (n, 1, 1, 1)) * jax.random.normal(
        k_noise, images.shape)
    kernel = jnp.array([0.25, 0.5, 0.25])
    blurred = jax.scipy.signal.convolve(images, kernel[None, :, None, None], mode="same")
    blurred = jax.scipy.signal.convolve(blurred, kernel[None, None, :, None], mode="same")
    blur = jax.random.bernoulli(k_blur, 0.3, (n, 1, 1, 1))
    return jnp.clip(jnp.where(blur, blurred, images), 0.0, 1.5), masks


def _coarse(masks):
    """(N, H, W, 1) masks -> (N, H/2, W/2) fraction of each 2x2 cell that is tumor."""
    n, h, w, _ = masks.shape
    return masks.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _balanced_batches(labels: np.ndarray, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch) indices with half tumor, half healthy slices in each batch."""
    rng = np.random.default_rng(seed)
    tumor, healthy = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(tumor) == 0 or len(healthy) == 0:
        raise UsageError("the classifier needs tumor and healthy training slices")
    half = batch_size // 2
    return np.concatenate([rng.choice(tumor, (steps, half)),
                           rng.choice(healthy, (steps, batch_size - half))], axis=1)


def train_classifier(train: SliceSet, cfg: ClassifierConfig = ClassifierConfig(),
                     progress: bool = False, modality: str = "t1"):
    """Params of the segmenter trained on the real ``modality`` ("t1" or "flair")
    slices and tumor masks of ``train``."""
    from jax_translate import progress as progress_lib

    model = TumorSegmenter(cfg.width)
    images = jnp.asarray(getattr(train, modality)[..., None])
    masks = jnp.asarray(train.tumor_mask[..., None], jnp.float32)
    key = jax.random.PRNGKey(cfg.seed)
    params = jax.jit(model.init)(key, images[:1])["params"]  # eager: ~4x slower, same values
    opt = optax.adamw(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps),
                      weight_decay=1e-4)
    opt_state = opt.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, index, key):
        x, m = _augment(key, images[index], masks[index])
        target = _coarse(m)

        def loss_fn(p):
            logits = model.apply({"params": p}, x)
            weight = 1.0 + (POS_WEIGHT - 1.0) * target
            return (weight * optax.sigmoid_binary_cross_entropy(logits, target)).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batches = _balanced_batches(np.asarray(train.label), cfg.batch_size, cfg.steps, cfg.seed)
    for i in progress_lib.steps(cfg.steps, desc="classifier", disable=not progress):
        params, opt_state, _ = step(params, opt_state, batches[i], jax.random.fold_in(key, i))
    return params


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


def save_params(path: Path, params) -> None:
    """A segmenter's params to ``path`` (msgpack), written atomically; folders made."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, flax.serialization.to_bytes(params))


def params_shapes(width: int, image_shape: tuple[int, int]):
    """The shapes and dtypes of a :class:`TumorSegmenter`'s params (nothing computed)."""
    model, image = TumorSegmenter(width), jax.ShapeDtypeStruct((1, *image_shape, 1), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x)["params"], image)


def load_params(path: Path, width: int, image_shape: tuple[int, int]):
    """The params a :class:`TumorSegmenter` of ``width`` saved at ``path``, or None if the
    file is missing, damaged or of another shape (the caller then retrains)."""
    path = Path(path)
    if not path.exists():
        return None
    template = params_shapes(width, image_shape)
    try:
        params = flax.serialization.from_bytes(template, path.read_bytes())
    except Exception:  # damaged: msgpack errors of any kind
        return None
    # from_bytes takes its tree from the template, not its shapes
    same = jax.tree_util.tree_map(lambda p, t: np.shape(p) == t.shape and np.asarray(p).dtype
                                  == t.dtype, params, template)
    return params if all(jax.tree_util.tree_leaves(same)) else None


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
        params = load_params(params_path, cfg.width, splits["train"].t1.shape[1:])
        if meta.get("config") == dataclasses.asdict(cfg) and params is not None:
            return CachedClassifier(params, cfg, meta["holdout_real_t1"], meta["threshold"])
    t0 = time.perf_counter()
    params = train_classifier(splits["train"], cfg, progress)
    threshold = calibrate(params, splits["train"], cfg.width)
    holdout = splits["holdout"]
    metrics = scores(predict_tumor(params, holdout.t1, threshold, cfg.width), holdout.label)
    metrics["train_seconds"] = time.perf_counter() - t0
    save_params(params_path, params)
    atomic_write_json(meta_path, {"config": dataclasses.asdict(cfg), "threshold": threshold,
                                  "holdout_real_t1": metrics})
    return CachedClassifier(params, cfg, metrics, threshold)
