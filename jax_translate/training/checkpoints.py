"""Orbax checkpoints of the stacked state of a sweep.

A rerun of the same command in the same folder resumes from the latest
checkpoint (:mod:`jax_translate.run_folder` binds the folder to one config).
Checkpoints hold the real members only (never a sharded run's padding), so
they do not depend on the device count.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jax_translate.errors import UsageError


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The Orbax manager of a run folder's ``checkpoints/`` (see :mod:`run_folder`)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(Path(directory).resolve(), options=options)


def checksums(state) -> dict[str, str]:
    """A digest of every array of ``state``, by its path in the tree."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
    return {jax.tree_util.keystr(path): hashlib.blake2b(
        np.ascontiguousarray(leaf).tobytes(), digest_size=8).hexdigest() for path, leaf in leaves}


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
    """The state and its checksums, restored and checked together by :func:`restore_latest`."""
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), checksums=ocp.args.JsonSave(checksums(state))),
        force=True)


def _refuse(mngr: ocp.CheckpointManager, step: int, problem: str):
    earlier = [s for s in mngr.all_steps() if s < step]
    advice = (f"delete that folder to resume from step {max(earlier)}" if earlier else
              f"delete {mngr.directory} to start over")
    raise UsageError(f"checkpoint {mngr.directory}/{step} {problem}; {advice}")


def restore_latest(mngr: ocp.CheckpointManager, template):
    """(step, state) of the latest checkpoint, or (0, None) when there is none.

    The state comes back as ``template``'s leaves are: device arrays, or numpy
    arrays (what a sharded run restores, then pads and places itself). A
    checkpoint that cannot be read, whose arrays differ from the checksums
    saved with them, or whose arrays are not ``template``'s (another version's
    state), is refused with a UsageError; no file is changed.
    """
    step = mngr.latest_step()
    if step is None:
        return 0, None
    target = jax.tree_util.tree_map(
        lambda x: x if isinstance(x, np.ndarray) else ocp.utils.to_shape_dtype_struct(x), template)

    def read(**args):
        try:
            return mngr.restore(step, args=ocp.args.Composite(**args))
        except Exception as err:  # orbax raises many types for a damaged folder
            reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            _refuse(mngr, step, f"cannot be read ({reason})")

    expected = read(checksums=ocp.args.JsonRestore()).checksums
    layout = {jax.tree_util.keystr(path) for path, _ in
              jax.tree_util.tree_flatten_with_path(template)[0]}
    if set(expected) != layout:  # whole and readable, but not this version's state
        other = sorted(set(expected) ^ layout)
        raise UsageError(
            f"checkpoint {mngr.directory}/{step} holds another state layout than this version "
            f"of jax_translate trains ({len(other)} arrays differ, first {other[0]}); resume or "
            "evaluate it with the version that wrote it, or train anew in another folder")
    state = read(state=ocp.args.StandardRestore(target)).state
    found = checksums(state)  # the same array names as expected: checked above
    damaged = [name for name in found if expected[name] != found[name]]
    if damaged:
        _refuse(mngr, step, f"is damaged ({len(damaged)} array(s) fail their checksum, "
                            f"first {damaged[0]})")
    return step, state
