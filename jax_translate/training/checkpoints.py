"""Run folders: the config they hold, and Orbax checkpoints of the stacked state.

A rerun of the same command in the same folder resumes from the latest
checkpoint; a different config is refused with the fields that differ, so a
folder never mixes two experiments. Checkpoints hold the real members only
(never a sharded run's padding), so they do not depend on the device count.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jax_translate.config import SweepConfig
from jax_translate.errors import UsageError
from jax_translate.io_utils import atomic_write_text, writable_dir
from jax_translate.training import distributed

CONFIG_FILE = "config.json"


def check_workdir(workdir: Path) -> Path:
    return writable_dir(workdir, "workdir")


def bind_config(workdir: Path, cfg: SweepConfig) -> bool:
    """Writes cfg into a new run folder, or checks it against the folder's.

    Returns True when the folder already held this run (a resume). In a
    multi-process run every process reads the folder before process 0 writes
    to it, so they all take the same branch.
    """
    path = Path(workdir) / CONFIG_FILE
    stored = SweepConfig.load(path) if path.exists() else None
    distributed.barrier("bind_config:read")
    if stored is not None:
        diff = cfg.differences(stored)
        if diff:
            details = ", ".join(f"{k}: {getattr(stored, k)!r} -> {getattr(cfg, k)!r}"
                                for k in diff[:4])
            raise UsageError(f"workdir {workdir} holds a run with another config ({details}); "
                             "use a new --workdir or the same arguments")
        return True
    if distributed.is_primary():
        atomic_write_text(path, cfg.to_json() + "\n")
    distributed.barrier("bind_config:written")
    return False


def manager(workdir: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(Path(workdir).resolve() / "checkpoints", options=options)


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
    mngr.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(mngr: ocp.CheckpointManager, template):
    """(step, state) of the latest checkpoint, or (0, None) when there is none.

    The state comes back as ``template``'s leaves are: device arrays, or numpy
    arrays (what a sharded run restores, then pads and places itself).
    """
    step = mngr.latest_step()
    if step is None:
        return 0, None
    target = jax.tree_util.tree_map(
        lambda x: x if isinstance(x, np.ndarray) else ocp.utils.to_shape_dtype_struct(x), template)
    try:
        state = mngr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as err:  # orbax raises many types for a damaged folder
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise UsageError(f"checkpoint {mngr.directory}/{step} cannot be read ({reason}); "
                         "delete that folder to resume from an earlier one") from None
    return step, state
