"""Orbax checkpoints of the stacked state of a sweep.

A rerun of the same command in the same folder resumes from the latest
checkpoint (:mod:`jax_translate.run_folder` binds the folder to one config).
Checkpoints hold the real members only (never a sharded run's padding), so
they do not depend on the device count.

Two checks guard what a restore reads: every array carries a checksum (saved
with it, compared after the restore), and every file of a step folder is
listed with its digest in that folder's ``digests.json``, written once the save
is complete and compared before Orbax reads anything. The file digests cover
what the array checksums cannot (Orbax's metadata, the OCDBT index); they also
let a finished sweep check its final checkpoint without restoring it. A step
folder without ``digests.json`` (killed between Orbax's commit and that write,
or saved before it existed) is checked by its array checksums alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jax_translate import io_utils
from jax_translate.errors import UsageError
from jax_translate.runtime import distributed

DIGESTS_FILE = "digests.json"


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The Orbax manager of a run folder's ``checkpoints/`` (see :mod:`run_folder`)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(Path(directory).resolve(), options=options)


def checksums(state) -> dict[str, str]:
    """A digest of every array of ``state``, by its path in the tree."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
    return {jax.tree_util.keystr(path): hashlib.blake2b(
        np.ascontiguousarray(leaf).tobytes(), digest_size=8).hexdigest() for path, leaf in leaves}


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _file_digests(step_dir: Path) -> dict[str, str]:
    """A digest of every file under ``step_dir`` but the digest list, by relative path."""
    return {p.relative_to(step_dir).as_posix(): _file_digest(p)
            for p in sorted(step_dir.rglob("*")) if p.is_file() and p != step_dir / DIGESTS_FILE}


def _step_dir(mngr: ocp.CheckpointManager, step: int) -> Path:
    return Path(mngr.directory) / str(step)


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
    """The state, its array checksums and its files' digests, all checked by :func:`restore_latest`.

    Waits for Orbax to finish writing (checkpoints are rare: the folder's digests
    need its final bytes), then lists every file of the step folder with its digest.
    """
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), checksums=ocp.args.JsonSave(checksums(state))),
        force=True)
    mngr.wait_until_finished()
    if distributed.is_primary():
        step_dir = _step_dir(mngr, step)
        io_utils.atomic_write_json(step_dir / DIGESTS_FILE, _file_digests(step_dir))


def _refuse(mngr: ocp.CheckpointManager, step: int, problem: str):
    earlier = [s for s in mngr.all_steps() if s < step]
    advice = (f"delete that folder to resume from step {max(earlier)}" if earlier else
              f"delete {mngr.directory} to start over")
    raise UsageError(f"checkpoint {mngr.directory}/{step} {problem}; {advice}")


def verify_files(mngr: ocp.CheckpointManager, step: int) -> bool:
    """Checks every file of checkpoint ``step`` against its digest list; reads no array.

    True when they all match; False when the folder has no digest list (see the
    module docstring); a UsageError, no file changed, when a file differs, is
    missing, or is not listed.
    """
    step_dir = _step_dir(mngr, step)
    listing = step_dir / DIGESTS_FILE
    if not listing.exists():
        return False
    try:
        expected = json.loads(listing.read_text())
    except ValueError:  # UnicodeDecodeError is one too
        expected = None
    if not isinstance(expected, dict):
        _refuse(mngr, step, f"is damaged (its {DIGESTS_FILE} is not a digest list)")
    found = _file_digests(step_dir)
    damaged = sorted(name for name in expected.keys() | found.keys()
                     if expected.get(name) != found.get(name))
    if damaged:
        _refuse(mngr, step, f"is damaged ({len(damaged)} file(s) differ from the digests "
                            f"saved with it, first {damaged[0]})")
    return True


def restore_latest(mngr: ocp.CheckpointManager, template):
    """(step, state) of the latest checkpoint, or (0, None) when there is none.

    The state comes back as ``template``'s leaves are: device arrays, or numpy
    arrays (what a sharded run restores, then pads and places itself). A
    checkpoint whose files differ from their digests (:func:`verify_files`), that
    cannot be read, whose arrays differ from the checksums saved with them, or
    whose arrays are not ``template``'s (another version's state), is refused
    with a UsageError; no file is changed.
    """
    step = mngr.latest_step()
    if step is None:
        return 0, None
    verify_files(mngr, step)  # before Orbax reads a byte of it
    target = jax.tree_util.tree_map(
        lambda x: x if isinstance(x, np.ndarray) else ocp.utils.to_shape_dtype_struct(x), template)

    def read(**args):
        try:
            return mngr.restore(step, args=ocp.args.Composite(**args))
        except Exception as err:  # orbax raises many types for a damaged folder
            reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            _refuse(mngr, step, f"is damaged (it cannot be read: {reason})")

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
