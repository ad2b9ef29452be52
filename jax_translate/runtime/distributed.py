"""One process per host: starting ``jax.distributed`` and who writes the run folder.

Every process runs the same sweep on its own devices; together they form one
mesh over all global devices (:mod:`sharding`). The run folder must be on a
file system all hosts share. Process 0 alone writes ``config.json``,
``run.json`` and the metrics; Orbax coordinates the checkpoints (process 0
writes them, the others wait at its barriers).
"""

from __future__ import annotations

import jax
from jax.experimental import multihost_utils

from jax_translate.errors import UsageError

AUTO = "auto"


def initialize(coordinator: str | None, num_processes: int | None,
               process_id: int | None) -> None:
    """Joins the processes of a multi-host run; must come before any JAX computation.

    ``coordinator='auto'`` lets JAX read the cluster's environment (SLURM,
    Open MPI, Cloud TPU); ``host:port`` needs the process count and this
    process's id. ``None`` is a single-process run.
    """
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise UsageError("--num-processes and --process-id need --coordinator")
        return
    if coordinator == AUTO:
        if num_processes is not None or process_id is not None:
            raise UsageError("--coordinator auto reads the process count and id from the "
                             "cluster; drop --num-processes and --process-id")
        kwargs = {}
    else:
        if ":" not in coordinator:
            raise UsageError(f"--coordinator must be host:port or auto, got {coordinator!r}")
        if num_processes is None or process_id is None:
            raise UsageError("--coordinator host:port needs --num-processes and --process-id")
        if not 0 <= process_id < num_processes:
            raise UsageError(f"--process-id must be in [0, {num_processes}), got {process_id}")
        kwargs = dict(coordinator_address=coordinator, num_processes=num_processes,
                      process_id=process_id)
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise UsageError(f"cannot start jax.distributed ({reason})") from None


def is_primary() -> bool:
    """True in the process that writes the run folder's files."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits for every process (no-op in a single-process run)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
