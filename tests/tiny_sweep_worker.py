"""Runs tiny sweeps in their own process, so a test can pick its device count
(XLA_FLAGS) or make it one process of a jax.distributed run.

python tiny_sweep_worker.py WORKDIR=RATIOS [WORKDIR=RATIOS ...] [--distributed COORDINATOR NUM_PROCESSES PROCESS_ID]

Several sweeps share one process (one start of Python and JAX).
"""

import sys

from conftest import tiny_config, tiny_slices
from jax_translate.runtime import distributed
from jax_translate.jobs.sweep import train_sweep

SWEEP = dict(method="gan", steps=4, steps_per_call=2, checkpoint_every=2, member_axis="auto")


def main(argv):
    runs, coordinator, num_processes, process_id = argv, None, None, None
    if "--distributed" in argv:
        at = argv.index("--distributed")
        runs, (coordinator, num_processes, process_id) = argv[:at], argv[at + 1:at + 4]
        num_processes, process_id = int(num_processes), int(process_id)
    distributed.initialize(coordinator, num_processes, process_id)
    splits = {"train": tiny_slices(), "holdout": tiny_slices(n_patients=4, seed=1)}
    for run in runs:
        workdir, ratios = run.split("=")
        ratios = tuple(float(r) for r in ratios.split(","))
        train_sweep(tiny_config(target_tumor_ratios=ratios, **SWEEP), workdir, splits,
                    progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])
