"""Starts a sweep's generators from other finished sweeps (``SweepConfig.init_from``).

``{"ab": "runs/l1", "ba": "runs/l1_back"}`` gives each member's generator ``ab``
the translator (generator ``ab``) of a finished run in ``runs/l1``, and ``ba``
that of ``runs/l1_back``: how CycleGAN is started from paired-L1 generators
(experiments/equilibrium) and how a pretrained translator is adapted to a new
site (``cyclegan-adapt``, docs/paper_protocol.md). Each member takes the source
member with its seed, and its ratio when the source has several; everything else
(discriminators, optimizer states, image pools) starts as a fresh run's would.

The source must translate the right way (``ab``: the same source and target
modalities; ``ba``: the other way round) with the same generator architecture,
intensity range and upscale; anything else is refused with one line.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.config import SweepConfig
from jax_translate.errors import UsageError
from jax_translate.jobs.run_folder import RunFolder

# ModelConfig fields of the generator: what a source run's must match.
GENERATOR_FIELDS = ("generator", "ngf", "n_blocks", "n_down", "num_downs", "upsample", "dropout")


def _check_source(cfg: SweepConfig, name: str, source: SweepConfig, folder) -> None:
    direction = (cfg.source, cfg.target) if name == "ab" else (cfg.target, cfg.source)
    if (source.source, source.target) != direction:
        raise UsageError(f"init_from {name}={folder} translates {source.source} -> "
                         f"{source.target}; generator {name} translates "
                         f"{direction[0]} -> {direction[1]}")
    mine, theirs = (dataclasses.asdict(c.model) for c in (cfg, source))
    differ = [f for f in GENERATOR_FIELDS if mine[f] != theirs[f]]
    for field in ("intensity_range", "upscale", "size"):
        if getattr(cfg, field) != getattr(source, field):
            differ.append(field)
    if differ:
        raise UsageError(f"init_from {name}={folder} has another generator "
                         f"({', '.join(differ)} differ); it cannot start this sweep's")


def source_members(cfg: SweepConfig, source: SweepConfig, folder) -> np.ndarray:
    """For each member of ``cfg``, the index of the source run's member it starts from:
    the one with its seed, and its ratio when the source has several ratios."""
    if source.grid:
        raise UsageError(f"init_from {folder} is a gridded sweep: which grid point to start "
                         "from is ambiguous")
    index = {}
    for i, member in enumerate(source.members):
        key = (member.seed, member.target_tumor_ratio if len(
            source.target_tumor_ratios) > 1 else None)
        index[key] = i
    picked = []
    for member in cfg.members:
        key = (member.seed, member.target_tumor_ratio if len(
            source.target_tumor_ratios) > 1 else None)
        if key not in index:
            raise UsageError(f"init_from {folder} has no member for {member.name} (it has "
                             f"seeds 0-{source.seeds - 1} at ratios "
                             f"{list(source.target_tumor_ratios)})")
        picked.append(index[key])
    return np.asarray(picked)


def pretrained(cfg: SweepConfig, states, sources=None):
    """``states`` (stacked, fresh) with the generators ``sources`` (default
    ``cfg.init_from``: (generator, run folder) pairs) names replaced."""
    sources = cfg.init_from if sources is None else sources
    if not sources:
        return states
    generator = dict(states.generator)
    for name, folder in sources:
        run = RunFolder.existing(folder)
        source = run.finished_config()
        _check_source(cfg, name, source, folder)
        picked = source_members(cfg, source, folder)
        translator = run.restore_final(source).generator["ab"]
        generator[name] = jax.tree_util.tree_map(
            lambda leaf: jnp.asarray(np.asarray(leaf)[picked]), translator)
        shapes = jax.tree_util.tree_map(jnp.shape, states.generator[name])
        if jax.tree_util.tree_map(jnp.shape, generator[name]) != shapes:
            raise UsageError(f"init_from {name}={folder}: its generator's arrays differ in "
                             "shape from this sweep's")
    return states.replace(generator=generator)
