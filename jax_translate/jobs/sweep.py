"""Runs a sweep: every member of one method, trained together.

``train_sweep(cfg, workdir)`` is the whole job behind ``jax-translate sweep``:
decide how the members run (``engine.plan``), bind the config to the run
folder, put the data on the device, initialise or restore the stacked state,
compile once, then call the compiled K-step function until done, logging
(:mod:`run_log`) and checkpointing between calls. Rerunning it on the same
folder resumes; Ctrl-C saves a checkpoint first. With several devices (or
hosts) the members are split over them (:mod:`sharding`); only process 0
writes the folder's files (:mod:`distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import jax
import numpy as np

from jax_translate.config import SweepConfig
from jax_translate.data import dataset
from jax_translate.data.dataset import SliceSet
from jax_translate.errors import UsageError
from jax_translate.images import model_image_shape
from jax_translate.jobs import adapt, init_from
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.jobs.run_log import TrainLog
from jax_translate.runtime import checkpoints, distributed, engine, sharding
from jax_translate.training.members import build_members, check_domains, domain_indices
from jax_translate.training.methods import Parts, TrainState

# JAX's transfer guard level for the compiled calls of the training loop, whose
# data, states and members were placed on the devices before it: "disallow"
# makes any implicit host<->device transfer there an error. The tests set it
# (tests/conftest.py, for their subprocesses too); unset leaves JAX's own setting.
TRANSFER_GUARD_ENV = "JAX_TRANSLATE_LOOP_TRANSFER_GUARD"


@dataclasses.dataclass
class SweepResult:
    cfg: SweepConfig
    states: TrainState | None  # stacked (real members only); None if already finished
    member_axis: str
    compile_seconds: float
    train_seconds: float      # wall time of the steps run by this call
    steps_run: int            # steps run by this call (0 if it was already done)


def train_sweep(cfg: SweepConfig, workdir: str | Path, splits: dict[str, SliceSet] | None = None,
                progress: bool = True, stop_after: int | None = None, *,
                parts: Parts = Parts(), domain_builder=domain_indices,
                transfer_guard: str | None = None, evaluators=()) -> SweepResult:
    """Trains (or resumes) every member of ``cfg`` in ``workdir``.

    ``splits`` skips loading the dataset (tests pass small ones);
    ``stop_after`` ends the call after that many steps, as an interruption would.
    An experiment hands in ``parts`` (networks, an optimizer: ``methods.Parts``)
    and a ``domain_builder`` (``members.build_members``); ``transfer_guard``
    (default: ``$JAX_TRANSLATE_LOOP_TRANSFER_GUARD``) guards the training loop.
    ``evaluators``, ``(every, fn)`` pairs as big_vision's ``config.evals``, call
    ``fn(step, states)`` (the real members' stacked states) whenever training passes
    a multiple of ``every``, without stopping it.
    """
    layout = sharding.MemberLayout.create(len(cfg.members))
    plan = engine.plan(cfg, n_devices=layout.n_devices)
    sweep_step = plan.sweep_step(cfg, parts, layout.mesh)  # refuses before any write
    folder = RunFolder.create(workdir)
    if folder.bind(cfg) and folder.is_finished() and folder.manager().latest_step() == cfg.steps:
        folder.verify_final(cfg, parts)  # a damaged final checkpoint is refused, not reported done
        return SweepResult(cfg, None, plan.member_axis, 0.0, 0.0, 0)  # nothing to compile or load
    mngr = folder.manager()
    splits = splits if splits is not None else dataset.load_for(cfg)
    sources = cfg.init_from + _before_training(cfg, folder, splits, progress, domain_builder)
    start, (shared, states, members), image_shape = _initial_state(
        cfg, folder, mngr, splits, layout, sweep_step.method, domain_builder, sources)
    t0 = time.perf_counter()
    step_fn = sweep_step.compile(shared, states, members)
    run_info = _run_info(cfg, plan, sweep_step.method, layout, image_shape,
                         compile_seconds=time.perf_counter() - t0, finished=start >= cfg.steps)
    folder.write_run_info(run_info)

    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    log = TrainLog(folder, cfg, layout, start, end, plan.steps_per_call,
                   distributed.is_primary(), progress)
    guard = _guard(transfer_guard)
    at = (start, states)  # the states and the step they are at, only ever assigned together
    t_train = time.perf_counter()
    try:
        while at[0] < end:
            step, states = at
            with guard():
                states, metrics = step_fn(shared, states, members)
            at = (min(step + plan.steps_per_call, cfg.steps), states)
            log.after_call(step, at[0], end, states, metrics)
            _between_calls(cfg, mngr, layout, step, at, end, evaluators)
    except jax.errors.JaxRuntimeError as err:
        _out_of_memory(err, cfg, plan, mngr)
    except KeyboardInterrupt:
        _save_interrupted(mngr, *at, start, layout)
        raise
    finally:
        log.close()
    mngr.wait_until_finished()
    if at[0] >= cfg.steps:
        folder.write_run_info({**run_info, "finished": True})
    return SweepResult(cfg, layout.unpad(at[1]), plan.member_axis, run_info["compile_seconds"],
                       time.perf_counter() - t_train, at[0] - start)


def _before_training(cfg, folder: RunFolder, splits, progress: bool,
                     domain_builder) -> tuple[tuple[str, str], ...]:
    """What must hold before the sweep's own training: every member's domains can be
    drawn (one error naming the member, before any step, its pretraining's included),
    and the pretraining runs of a pretrain-then-adapt method (jobs/adapt.py) are
    trained or found finished. Returns the ``init_from`` pairs they give; () for the
    others."""
    check_domains(cfg, splits["train"], domain_builder)
    sources = []
    for name, pretrain_cfg in adapt.pretrain_configs(cfg).items():
        path = adapt.folder(folder.path, name)
        train_sweep(pretrain_cfg, path, splits, progress=progress)
        sources.append((name, str(path)))
    return tuple(sources)


def _between_calls(cfg, mngr, layout, step: int, at: tuple, end: int, evaluators) -> None:
    """After the call that took the states from ``step`` to ``at``: a checkpoint, and the
    evaluators whose period it passed."""
    if at[0] // cfg.checkpoint_every > step // cfg.checkpoint_every or at[0] >= end:
        checkpoints.save(mngr, at[0], layout.unpad(at[1]))
    for every, evaluate in evaluators:
        if at[0] // every > step // every:
            evaluate(at[0], layout.unpad(at[1]))


def _out_of_memory(err, cfg, plan, mngr):
    """A device's memory exhausted: one line, the checkpoints kept; anything else raised."""
    if "RESOURCE_EXHAUSTED" not in str(err):
        raise err
    mngr.wait_until_finished()
    raise UsageError(
        f"out of device memory training {len(cfg.members)} members ({plan.member_axis}, "
        f"conv {plan.conv_impl}); try --set member_axis=loop, --conv-impl xla, more "
        f"devices, or fewer members; checkpointed steps: {mngr.latest_step() or 0}") from None


def _initial_state(cfg, folder: RunFolder, mngr, splits, layout, method, domain_builder,
                   sources):
    """(step, (shared, states, members) placed on the devices, image shape): the data,
    and the states restored from the folder's latest checkpoint, or fresh with the
    generators ``sources`` names started from other runs' (``init_from``)."""
    shared, members = build_members(cfg, splits["train"], cache_dir=folder.path,
                                    domain_builder=domain_builder)
    image_shape = model_image_shape(cfg, splits["train"].flair.shape)
    states = engine.init_states(method, np.asarray([m.seed for m in cfg.members]), image_shape)
    start, restored = checkpoints.restore_latest(mngr, layout.unpad(states))
    states = restored if restored is not None else init_from.pretrained(cfg, states, sources)
    return start, layout.place(shared, states, members), image_shape


def _run_info(cfg, plan, method, layout, image_shape, compile_seconds, finished) -> dict:
    """What ``run.json`` records of how the sweep ran."""
    return {"member_axis": plan.member_axis, "conv_impl": plan.conv_impl,
            "precision": method.precision, "steps_per_call": plan.steps_per_call,
            "backend": jax.default_backend(), "image_shape": list(image_shape),
            "devices": layout.n_devices, "processes": jax.process_count(),
            "padded_members": layout.n_padded,
            "members": [{"target_tumor_ratio": m.target_tumor_ratio, "seed": m.seed,
                         **dict(m.knobs)} for m in cfg.members],
            "compile_seconds": compile_seconds, "finished": finished}


def _guard(level: str | None):
    level = level or os.environ.get(TRANSFER_GUARD_ENV) or None
    return (lambda: jax.transfer_guard(level)) if level else contextlib.nullcontext


def _save_interrupted(mngr, step: int, states, start: int, layout) -> None:
    """Ctrl-C: checkpoints the loop's last states at their own step, unless that step is
    saved already, or their buffers were donated to the call the interrupt cut short
    (then the last checkpoint stands: the loop strategy donates them at its first member)."""
    donated = any(leaf.is_deleted() for leaf in jax.tree_util.tree_leaves(states)
                  if isinstance(leaf, jax.Array))
    if step > start and step != mngr.latest_step() and not donated:
        checkpoints.save(mngr, step, layout.unpad(states))
    mngr.wait_until_finished()
