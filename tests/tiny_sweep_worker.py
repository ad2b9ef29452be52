"""Runs a tiny sweep in its own process, so a test can pick its device count
(XLA_FLAGS) or make it one process of a jax.distributed run.

python tiny_sweep_worker.py WORKDIR RATIOS [COORDINATOR NUM_PROCESSES PROCESS_ID]
"""

import sys

from conftest import tiny_config, tiny_slices
from jax_translate.training import distributed
from jax_translate.training.sweep import train_sweep

SWEEP = dict(method="gan", steps=4, steps_per_call=2, checkpoint_every=2, member_axis="auto")


def main(workdir, ratios, coordinator=None, num_processes=None, process_id=None):
    distributed.initialize(coordinator, num_processes and int(num_processes),
                           process_id and int(process_id))
    ratios = tuple(float(r) for r in ratios.split(","))
    splits = {"train": tiny_slices(), "holdout": tiny_slices(n_patients=4, seed=1)}
    train_sweep(tiny_config(target_tumor_ratios=ratios, **SWEEP), workdir, splits, progress=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
