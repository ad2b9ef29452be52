"""A member's training knobs as data: scalars that change no shape, traced, never static.

Like the target tumor ratio and the seed, each member carries its own
learning rates, loss weights, R1 weight and augmentation probability
(:class:`HParams`, one float32 scalar each, stacked on the member axis in
``MemberData``), so one compiled program trains a whole grid of regimes
(config ``grid``; PureJaxRL vmaps ``make_train`` over hyperparameters the
same way). Knobs that change shapes or the program (networks, resolution,
steps) stay one per run.

Whether a term exists at all is static (``Method.uses_r1``,
``uses_augment``): a run whose every member has R1 weight 0 compiles no R1
pass, and a grid that includes a non-zero weight compiles it for every member.
"""

from __future__ import annotations

import flax
import jax.numpy as jnp
import numpy as np

from jax_translate.config import GRID_FIELDS, SweepConfig


@flax.struct.dataclass
class HParams:
    """One member's knobs (float32 scalars; a leading member axis when stacked)."""

    learning_rate: jnp.ndarray                  # the generators' peak Adam rate
    discriminator_learning_rate: jnp.ndarray    # the discriminators' peak Adam rate
    lambda_cycle: jnp.ndarray                   # cycle L1 weight (cyclegan, cyclegan-cc)
    lambda_identity: jnp.ndarray                # identity L1 weight, times lambda_cycle
    gan_weight: jnp.ndarray                     # the generators' adversarial term
    r1_weight: jnp.ndarray                      # gamma of (gamma / 2) E|grad D(real)|^2
    augment_p: jnp.ndarray                      # per image: translate, per image: cut out
    cycle_noise: jnp.ndarray                    # std of the noise on translations cycled back


assert tuple(HParams.__dataclass_fields__) == GRID_FIELDS, "config.GRID_FIELDS names HParams"


def of_values(values: dict) -> HParams:
    return HParams(**{name: jnp.float32(values[name]) for name in GRID_FIELDS})


def for_config(cfg: SweepConfig) -> HParams:
    """The config's own values (no grid): what evaluation and single-step tests use."""
    return of_values(cfg.hparam_values())


def for_members(cfg: SweepConfig) -> HParams:
    """Every member's knobs, stacked in ``cfg.members`` order."""
    rows = [cfg.hparam_values(member) for member in cfg.members]
    return HParams(**{name: jnp.asarray(np.array([row[name] for row in rows], np.float32))
                      for name in GRID_FIELDS})
