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


@flax.struct.dataclass
class MemberData:
    source_index: jnp.ndarray  # (n_source,) into SharedData; the pairs' index if paired
    target_index: jnp.ndarray  # (n_target,)


def to_model_range(images: np.ndarray) -> np.ndarray:
    """[0, 1] images (N, H, W) -> [-1, 1] with a channel axis, as tanh outputs."""
    return (2.0 * np.asarray(images, np.float32) - 1.0)[..., None]


def from_model_range(images) -> np.ndarray:
    return np.clip((np.asarray(images)[..., 0] + 1.0) / 2.0, 0.0, 1.0)


def domain_indices(cfg: SweepConfig, train: SliceSet, ratio: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) indices into ``train`` for one member."""
    sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    if cfg.paired:
        pairs = domains.paired_domain(train.label, ratio, sizes, seed)
        return pairs, pairs
    return domains.unpaired_domains(train.label, train.patient_id, ratio, sizes, seed)


def build_members(cfg: SweepConfig, train: SliceSet) -> tuple[SharedData, MemberData]:
    """Device data for all members, stacked on a leading member axis.

    Only slices some member uses go to the device; indices are remapped.
    """
    pairs = [domain_indices(cfg, train, r, s) for r, s in cfg.members]
    used = np.unique(np.concatenate([np.concatenate(p) for p in pairs]))
    remap = lambda index: np.searchsorted(used, index).astype(np.int32)  # noqa: E731
    shared = SharedData(flair=jnp.asarray(to_model_range(train.flair[used])),
                        t1=jnp.asarray(to_model_range(train.t1[used])),
                        label=jnp.asarray(train.label[used], jnp.int32))
    members = MemberData(
        source_index=jnp.asarray(np.stack([remap(p[0]) for p in pairs])),
        target_index=jnp.asarray(np.stack([remap(p[1]) for p in pairs])))
    return shared, members


def sample_batch(shared: SharedData, member: MemberData, key: jax.Array, batch_size: int,
                 paired: bool) -> tuple[Batch, jnp.ndarray]:
    """A batch drawn uniformly (with replacement) from the member's domains.

    Returns the batch and the SharedData indices of its target images.
    """
    source_key, target_key = jax.random.split(key)
    pick = lambda k, index: index[jax.random.randint(k, (batch_size,), 0, index.shape[0])]  # noqa: E731
    target = pick(target_key, member.target_index)
    source = target if paired else pick(source_key, member.source_index)
    return Batch(source=shared.flair[source], target=shared.t1[target]), target
