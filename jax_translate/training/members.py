"""Members of a sweep and the training data they sample on the device.

A member is one (target tumor ratio, seed). The training images sit on the
device once (:class:`SharedData`); each member only carries the indices of its
own biased domains (:class:`MemberData`) and samples its batches from them
inside the compiled step, so no host pipeline stalls training.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.config import SweepConfig
from jax_translate.data import domains
from jax_translate.data.dataset import SliceSet
from jax_translate.training.methods import Batch


@flax.struct.dataclass
class SharedData:
    flair: jnp.ndarray  # (N, H, W, 1) in [-1, 1]
    t1: jnp.ndarray     # (N, H, W, 1) in [-1, 1]
    label: jnp.ndarray  # (N,) int32
    frozen: dict | None = None  # frozen networks every member's loss uses (cyclegan-cc)


@flax.struct.dataclass
class MemberData:
    source_index: jnp.ndarray  # (n_source,) into SharedData; the pairs' index if paired
    target_index: jnp.ndarray  # (n_target,)


def to_model_range(images: np.ndarray, intensity_range=(-1.0, 1.0)) -> np.ndarray:
    """[0, 1] images (N, H, W) -> ``intensity_range`` (inside tanh's [-1, 1]), with a channel axis.

    The reference's (-1, -0.216) comes from storing 0..100 in uint8 and then
    normalising x/255 as if it spanned 0..255.
    """
    low, high = intensity_range
    return (low + (high - low) * np.asarray(images, np.float32))[..., None]


def from_model_range(images, intensity_range=(-1.0, 1.0)) -> np.ndarray:
    """The inverse of :func:`to_model_range`, clipped to [0, 1]."""
    low, high = intensity_range
    return np.clip((np.asarray(images)[..., 0] - low) / (high - low), 0.0, 1.0)


def upsample(images: jnp.ndarray, factor: int) -> jnp.ndarray:
    """(B, H, W, C) -> (B, factor*H, factor*W, C), bilinear as the reference's scale_width."""
    if factor == 1:
        return images
    b, h, w, c = images.shape
    return jax.image.resize(images, (b, factor * h, factor * w, c), "bilinear")


def downsample(images: jnp.ndarray, factor: int) -> jnp.ndarray:
    """(B, factor*H, factor*W, C) -> (B, H, W, C), each pixel the mean of its factor x factor block."""
    if factor == 1:
        return images
    b, h, w, c = images.shape
    return images.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def model_image_shape(cfg: SweepConfig, dataset_shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of the images the models see: the dataset's (H, W) times ``cfg.upscale``."""
    height, width = dataset_shape[-2:]
    return cfg.upscale * height, cfg.upscale * width


def domain_indices(cfg: SweepConfig, train: SliceSet, ratio: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) indices into ``train`` for one member."""
    sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    if cfg.paired:
        pairs = domains.paired_domain(train.label, ratio, sizes, seed)
        return pairs, pairs
    if cfg.domain_protocol == "reference":
        return domains.reference_domains(train.label, ratio, sizes, seed)
    return domains.unpaired_domains(train.label, train.patient_id, ratio, sizes, seed)


def build_members(cfg: SweepConfig, train: SliceSet, cache_dir=None, segmenters: bool = True
                  ) -> tuple[SharedData, MemberData]:
    """Device data for all members, stacked on a leading member axis.

    Only slices some member uses go to the device; indices are remapped.
    A method whose spec asks for frozen lesion segmenters (cyclegan-cc) gets
    them trained on ``train`` (the training split), cached under ``cache_dir``
    (the run folder) when given; with ``segmenters=False``, only their
    parameter shapes (enough to compile the step, as the preflight does).
    """
    from jax_translate.training.specs import SPECS

    pairs = [domain_indices(cfg, train, r, s) for r, s in cfg.members]
    used = np.unique(np.concatenate([np.concatenate(p) for p in pairs]))
    remap = lambda index: np.searchsorted(used, index).astype(np.int32)  # noqa: E731
    shared = SharedData(flair=jnp.asarray(to_model_range(train.flair[used], cfg.intensity_range)),
                        t1=jnp.asarray(to_model_range(train.t1[used], cfg.intensity_range)),
                        label=jnp.asarray(train.label[used], jnp.int32))
    if SPECS[cfg.method].lesion_segmenters:
        from jax_translate.training import lesion

        shared = shared.replace(frozen=lesion.train_segmenters(
            train, cfg.lesion_segmenter_steps, cache_dir) if segmenters
            else lesion.segmenter_shapes(train.t1.shape[1:]))
    members = MemberData(
        source_index=jnp.asarray(np.stack([remap(p[0]) for p in pairs])),
        target_index=jnp.asarray(np.stack([remap(p[1]) for p in pairs])))
    return shared, members


def sample_batch(shared: SharedData, member: MemberData, key: jax.Array, cfg: SweepConfig,
                 step: jnp.ndarray) -> tuple[Batch, jnp.ndarray]:
    """The member's batch at ``step`` (traced), upscaled by ``cfg.upscale``.

    Drawn uniformly (with replacement) from the member's domains, or, for
    ``cfg.serial_batches``, pairs ``step * B + j`` (mod the number of pairs)
    in order, as the reference's unshuffled loader. Returns the batch and the
    SharedData indices of its target images.
    """
    batch_size = cfg.batch_size
    if cfg.serial_batches:
        n = member.target_index.shape[0]
        position = (step * batch_size + jnp.arange(batch_size)) % n
        target = source = member.target_index[position]
    else:
        source_key, target_key = jax.random.split(key)
        pick = lambda k, index: index[jax.random.randint(k, (batch_size,), 0, index.shape[0])]  # noqa: E731
        target = pick(target_key, member.target_index)
        source = target if cfg.paired else pick(source_key, member.source_index)
    batch = Batch(source=upsample(shared.flair[source], cfg.upscale),
                  target=upsample(shared.t1[target], cfg.upscale), frozen=shared.frozen)
    return batch, target
