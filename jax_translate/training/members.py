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

from jax_translate.catalog import SPECS
from jax_translate.config import SweepConfig
from jax_translate.data import domains
from jax_translate.data.dataset import SliceSet
from jax_translate.errors import UsageError
from jax_translate.images import to_model_range, upsample
from jax_translate.training import hparams, lesion
from jax_translate.training.hparams import HParams
from jax_translate.training.methods import Batch


@flax.struct.dataclass
class SharedData:
    source: jnp.ndarray  # (N, H, W, 1) cfg.source images in the model's range
    target: jnp.ndarray  # (N, H, W, 1) cfg.target images, the same slices
    label: jnp.ndarray  # (N,) int32
    frozen: dict | None = None  # frozen networks every member's loss uses (cyclegan-cc)


@flax.struct.dataclass
class MemberData:
    source_index: jnp.ndarray  # (n_source,) into SharedData; the pairs' index if paired
    target_index: jnp.ndarray  # (n_target,)
    hparams: HParams           # the member's knobs (training/hparams.py)


def domain_indices(cfg: SweepConfig, train: SliceSet, ratio: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) indices into ``train`` for one member."""
    sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    if cfg.paired:
        pairs = (domains.outside_target_pairs(train.label, train.patient_id, ratio, sizes, seed)
                 if cfg.domain_protocol == "outside_targets"
                 else domains.paired_domain(train.label, ratio, sizes, seed))
        return pairs, pairs
    if cfg.domain_protocol == "reference":
        return domains.reference_domains(train.label, ratio, sizes, seed)
    return domains.unpaired_domains(train.label, train.patient_id, ratio, sizes, seed)


def check_domains(cfg: SweepConfig, train: SliceSet, domain_builder=domain_indices) -> None:
    """Draws every member's domains (seeds and ratios; gridded knobs share them) and
    refuses, in one line naming the member, the first that the data cannot hold: a
    check that costs milliseconds, run before anything trains."""
    for ratio, seed in dict.fromkeys((m.target_tumor_ratio, m.seed) for m in cfg.members):
        try:
            domain_builder(cfg, train, ratio, seed)
        except UsageError as err:
            raise UsageError(f"{cfg.method} ratio={ratio:g} seed={seed}: {err}") from None


def build_members(cfg: SweepConfig, train: SliceSet, cache_dir=None, segmenters: bool = True,
                  domain_builder=domain_indices) -> tuple[SharedData, MemberData]:
    """Device data for all members, stacked on a leading member axis.

    Only slices some member uses go to the device; indices are remapped.
    A method whose spec asks for frozen lesion segmenters (cyclegan-cc) gets
    them trained on ``train`` (the training split), cached under ``cache_dir``
    (the run folder) when given; with ``segmenters=False``, only their
    parameter shapes (enough to compile the step, as the preflight does).
    ``domain_builder(cfg, train, ratio, seed)`` gives a member's (source,
    target) indices: :func:`domain_indices` unless an experiment hands in another.
    """
    pairs = [domain_builder(cfg, train, m.target_tumor_ratio, m.seed) for m in cfg.members]
    used = np.unique(np.concatenate([np.concatenate(p) for p in pairs]))
    remap = lambda index: np.searchsorted(used, index).astype(np.int32)  # noqa: E731
    images = lambda modality: jnp.asarray(  # noqa: E731
        to_model_range(train.image(modality)[used], cfg.intensity_range))
    shared = SharedData(source=images(cfg.source), target=images(cfg.target),
                        label=jnp.asarray(train.label[used], jnp.int32))
    if SPECS[cfg.method].lesion_segmenters:
        shared = shared.replace(frozen=lesion.train_segmenters(
            train, cfg.lesion_segmenter_steps, cache_dir, cfg.source, cfg.target) if segmenters
            else lesion.segmenter_shapes(train.brain_mask.shape[1:]))
    members = MemberData(
        source_index=jnp.asarray(np.stack([remap(p[0]) for p in pairs])),
        target_index=jnp.asarray(np.stack([remap(p[1]) for p in pairs])),
        hparams=hparams.for_members(cfg))
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
    batch = Batch(source=upsample(shared.source[source], cfg.upscale),
                  target=upsample(shared.target[target], cfg.upscale), frozen=shared.frozen)
    return batch, target
