"""Trains tumor segmenters on real slices and their masks, and saves and loads their params.

The evaluation classifier (:mod:`jax_translate.evaluation.classifier`) is a
segmenter trained here with the dataset's label rule on top; cyclegan-cc's
frozen segmenters (:mod:`lesion`) are trained here too, with their own seeds.
Training uses balanced batches, with flips, shifts, intensity, noise and blur
augmentation, so a segmenter tolerates what translators do to images.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_translate import progress as progress_lib
from jax_translate.data.dataset import SliceSet
from jax_translate.errors import UsageError
from jax_translate.io_utils import atomic_write_bytes
from jax_translate.models.segmenter import TumorSegmenter

SEGMENTER_VERSION = 2  # part of every cache folder's name: bump it to retrain them all
# Tumor pixels are ~2% of a batch; without up-weighting them the segmenter
# settles on "no tumor anywhere". The weighting biases areas, so the
# evaluator calibrates its logit threshold afterwards (classifier.calibrate).
POS_WEIGHT = 10.0


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
    """How a :class:`~jax_translate.models.segmenter.TumorSegmenter` is trained."""


    width: int = 16
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    version: int = SEGMENTER_VERSION


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


def train_segmenter(train: SliceSet, cfg: SegmenterConfig = SegmenterConfig(),
                    progress: bool = False, modality: str = "t1", desc: str = "segmenter"):
    """Params of the segmenter trained on the real ``modality`` (any the dataset holds:
    ``SliceSet.image``) slices and tumor masks of ``train``."""
    model = TumorSegmenter(cfg.width)
    images = jnp.asarray(train.image(modality)[..., None])
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
    for i in progress_lib.steps(cfg.steps, desc=desc, disable=not progress):
        params, opt_state, _ = step(params, opt_state, batches[i], jax.random.fold_in(key, i))
    return params


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
