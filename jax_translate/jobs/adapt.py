"""Pretrain, then adapt: the first stage of a method whose spec says ``pretrain``.

``cyclegan-adapt`` is how a translator reaches a new site: first paired L1 both
ways (source -> target as ``ab``, target -> source as ``ba``) on balanced pairs
from patients outside every target domain of the seed (``domain_protocol``
``outside_targets``: the source group's patients), then CycleGAN without the
identity term on the site's biased unpaired domains, starting from those
generators. The pretraining runs are ordinary L1 sweeps (the preset's L1 steps
and rate, every other field the adapting run's), in ``<run folder>/pretrain/ab``
and ``.../ba``: resumable, evaluable (``jax-translate evaluate``), and their
``config.json`` says exactly what they trained on. Each adapting member starts
from the pretrained member of its seed (``init_from``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jax_translate.catalog import SPECS
from jax_translate.config import SweepConfig
from jax_translate.configure import resolve

PRETRAIN_DIR = "pretrain"


def pretrain_configs(cfg: SweepConfig) -> dict[str, SweepConfig]:
    """{"ab": config, "ba": config} of the L1 pretraining of ``cfg``'s generators
    (none for a method whose spec does not pretrain). The sweep job trains them first,
    in ``<run folder>/pretrain/<name>`` (:func:`folder`)."""
    if not SPECS[cfg.method].pretrain:
        return {}
    l1 = resolve("l1", cfg.preset)  # the preset's L1 schedule
    base = dataclasses.replace(
        cfg, method="l1", target_tumor_ratios=(0.5,), steps=l1.steps,
        learning_rate=l1.learning_rate, discriminator_learning_rate=None,
        domain_protocol="outside_targets", grid=(), init_from=())
    return {"ab": base, "ba": dataclasses.replace(base, source=cfg.target, target=cfg.source)}


def folder(workdir: Path, name: str) -> Path:
    """Where the pretraining of generator ``name`` runs, inside the adapting run's folder."""
    return Path(workdir) / PRETRAIN_DIR / name
