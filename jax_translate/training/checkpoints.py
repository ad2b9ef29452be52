"""Orbax checkpoints of the stacked state of a sweep.

A rerun of the same command in the same folder resumes from the latest
checkpoint (:mod:`jax_translate.run_folder` binds the folder to one config).
Checkpoints hold the real members only (never a sharded run's padding), so
they do not depend on the device count.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jax_translate.errors import UsageError


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The Orbax manager of a run folder's ``checkpoints/`` (see :mod:`run_folder`)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(Path(directory).resolve(), options=options)


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
