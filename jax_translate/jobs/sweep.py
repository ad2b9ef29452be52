"""Runs a sweep: every (ratio, seed) member of one method, trained together.

``train_sweep(cfg, workdir)`` is the whole job behind ``jax-translate sweep``:
bind the config to the run folder, put the data on the device, initialise or
restore the stacked state, compile once, then call the compiled K-step
function until done, logging and checkpointing between calls. Rerunning it on
the same folder resumes; Ctrl-C saves a checkpoint first. With several
devices (or hosts) the members are split over them (:mod:`sharding`); only
process 0 writes the folder's files (:mod:`distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from jax_translate import io_utils
from jax_translate import progress as progress_lib
from jax_translate.config import SweepConfig
from jax_translate.data import dataset
from jax_translate.data.dataset import SliceSet
from jax_translate.errors import UsageError
from jax_translate.images import model_image_shape
from jax_translate.jobs.run_folder import RunFolder, parse_metrics_line
from jax_translate.training import autotune, checkpoints, distributed, engine, eta, sharding
from jax_translate.training.members import build_members, domain_indices
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


class _MetricsLog:
    """One JSONL file per member under the run folder's ``metrics/``."""

    def __init__(self, folder: RunFolder, cfg: SweepConfig, resume_step: int,
                 enabled: bool = True):
        self.enabled = enabled
        self.paths = [folder.metrics_path(member) for member in cfg.members]
        if not enabled:
            return
        folder.metrics_dir.mkdir(exist_ok=True)
        for path in self.paths:  # drop lines written after the checkpoint we resume from
            if path.exists():
                kept = [line for line in path.read_text().splitlines()
                        if (row := parse_metrics_line(line)) is not None and row["step"] <= resume_step]
                io_utils.atomic_write_text(path, "".join(k + "\n" for k in kept))

    def write(self, step: int, metrics: dict, diverged: np.ndarray) -> None:
        if not self.enabled:
            return
        for i, path in enumerate(self.paths):
            row = {"step": step, **{f"train/{k}": float(v[i]) for k, v in metrics.items()},
                   "diverged": bool(diverged[i])}
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def _summary(metrics: dict, diverged: np.ndarray, member_steps_per_s: float) -> str:
    ok = ~diverged
    parts = [f"{k.replace('_loss', '')}={np.median(v[ok]):.3f}" for k, v in metrics.items()
             if k in ("generator_loss", "discriminator_loss", "l1_loss") and ok.any()]
    parts.append(f"{member_steps_per_s:.1f} member-steps/s")
    if diverged.any():
        parts.append(f"{int(diverged.sum())} diverged")
    return " ".join(parts)


def train_sweep(cfg: SweepConfig, workdir: str | Path, splits: dict[str, SliceSet] | None = None,
                progress: bool = True, stop_after: int | None = None, *,
                parts: Parts = Parts(), domain_builder=domain_indices,
                transfer_guard: str | None = None) -> SweepResult:
    """Trains (or resumes) every member of ``cfg`` in ``workdir``.

    ``splits`` skips loading the dataset (tests pass small ones);
    ``stop_after`` ends the call after that many steps, as an interruption would.
    An experiment hands in ``parts`` (networks, an optimizer: ``methods.Parts``)
    and a ``domain_builder`` (``members.build_members``); ``transfer_guard``
    (default: ``$JAX_TRANSLATE_LOOP_TRANSFER_GUARD``) guards the training loop.
    """
    guard_level = transfer_guard or os.environ.get(TRANSFER_GUARD_ENV) or None
    axis = engine.resolve_member_axis(cfg.member_axis)
    method = engine.method_for(cfg, axis, parts=parts)
    layout = sharding.MemberLayout.create(len(cfg.members))
    k = min(engine.resolve_steps_per_call(cfg.steps_per_call), cfg.steps)
    sweep_step = engine.SweepStep(method, k, axis, layout.mesh)  # refuses before any write
    primary = distributed.is_primary()
    folder = RunFolder.create(workdir)
    if folder.bind(cfg) and folder.is_finished() and folder.manager().latest_step() == cfg.steps:
        folder.verify_final(cfg, parts)  # a damaged final checkpoint is refused, not reported done
        return SweepResult(cfg, None, axis, 0.0, 0.0, 0)  # nothing to compile or load
    splits = splits if splits is not None else dataset.load_for(cfg)
    shared, members = build_members(cfg, splits["train"], cache_dir=folder.path,
                                    domain_builder=domain_builder)
    image_shape = model_image_shape(cfg, splits["train"].flair.shape)
    seeds = np.asarray([member.seed for member in cfg.members])
    states = engine.init_states(method, seeds, image_shape)

    mngr = folder.manager()
    start, restored = checkpoints.restore_latest(mngr, layout.unpad(states))
    states = restored if restored is not None else states
    shared, states, members = layout.place(shared, states, members)
    from tqdm.auto import tqdm

    say = tqdm.write if progress and primary else (lambda line: None)
    tuned = autotune.maybe_choose(cfg, method, k, layout.mesh, (shared, states, members),
                                  image_shape, log=say)
    if tuned is not None:
        axis, method = tuned.member_axis, engine.method_for(cfg, axis, tuned.conv_impl, parts)
        sweep_step = engine.SweepStep(method, k, axis, layout.mesh)

    t0 = time.perf_counter()
    step_fn = (tuned.compiled if tuned is not None and tuned.compiled is not None
               else sweep_step.compile(shared, states, members))
    compile_seconds = time.perf_counter() - t0
    run_info = {"member_axis": axis, "conv_impl": method.conv_impl,
                "precision": method.precision, "steps_per_call": k,
                "backend": jax.default_backend(), "image_shape": list(image_shape),
                "devices": layout.n_devices, "processes": jax.process_count(),
                "padded_members": layout.n_padded, "members": [
                    {"target_tumor_ratio": m.target_tumor_ratio, "seed": m.seed, **dict(m.knobs)}
                    for m in cfg.members],
                "compile_seconds": compile_seconds, "finished": start >= cfg.steps,
                "autotune": tuned.record if tuned else None}
    folder.write_run_info(run_info)

    log = _MetricsLog(folder, cfg, start, enabled=primary)
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    step, t_train = start, time.perf_counter()
    synced_step, synced_at = start, t_train
    bar = progress_lib.bar(cfg.steps, start, f"{cfg.method} x{len(cfg.members)}",
                           disable=not (progress and primary))
    timer = eta.FirstCallsTimer(cfg.method, len(cfg.members), k, end, say)

    def guard():
        return (jax.transfer_guard(guard_level) if guard_level else contextlib.nullcontext())

    try:
        while step < end:
            with guard():
                states, metrics = step_fn(shared, states, members)
                done = min(step + k, cfg.steps)
                timer.after_call(states, done)
            # Host syncs only every log_every steps (and at the end).
            if done // cfg.log_every > step // cfg.log_every or done >= end:
                metrics = layout.to_host(metrics)
                diverged = layout.to_host(states.diverged)
                log.write(done, metrics, diverged)
                rate = (done - synced_step) * len(cfg.members) / (time.perf_counter() - synced_at)
                synced_step, synced_at = done, time.perf_counter()
                bar.set_postfix_str(_summary(metrics, diverged, rate), refresh=False)
            if done // cfg.checkpoint_every > step // cfg.checkpoint_every or done >= end:
                checkpoints.save(mngr, done, layout.unpad(states))
            bar.update(done - step)
            step = done
    except jax.errors.JaxRuntimeError as err:
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        mngr.wait_until_finished()
        raise UsageError(
            f"out of device memory training {len(cfg.members)} members ({axis}, conv "
            f"{method.conv_impl}); try --conv-impl xla, more devices, or fewer members; "
            f"checkpointed steps: {mngr.latest_step() or 0}") from None
    except KeyboardInterrupt:
        if mngr.latest_step() != step and step > start:
            checkpoints.save(mngr, step, layout.unpad(states))
        mngr.wait_until_finished()
        raise
    finally:
        bar.close()
    mngr.wait_until_finished()
    if step >= cfg.steps:
        folder.write_run_info({**run_info, "finished": True})
    return SweepResult(cfg, layout.unpad(states), axis, compile_seconds,
                       time.perf_counter() - t_train, step - start)
