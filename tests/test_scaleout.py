"""Members sharded over 4 devices, and over 2 jax.distributed processes, match one device.

Each sharded run is a subprocess (the device count is fixed when JAX starts);
the single-device reference runs the same sweep (tiny_sweep_worker.SWEEP) here.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import pytest

from conftest import tiny_config
from tiny_sweep_worker import SWEEP
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.training.methods import Method
from jax_translate.jobs.sweep import train_sweep

WORKER = Path(__file__).with_name("tiny_sweep_worker.py")
# The tests share the module's `runs` (3 subprocesses): one pytest-xdist worker builds it.
pytestmark = pytest.mark.xdist_group("scaleout")


def _env(devices: int) -> dict:
    # The session's compile cache and XLA flags come with os.environ (conftest).
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={devices}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _metrics(workdir: Path) -> dict:
    return {p.name: [json.loads(line) for line in p.read_text().splitlines()]
            for p in sorted((workdir / "metrics").glob("*.jsonl"))}


def _assert_same_run(reference: Path, other: Path, splits, ratios: str):
    """Same members, same logged metrics, same trained translators (float tolerance:
    XLA may order a sum differently when a device holds fewer members)."""
    ref, got = _metrics(reference), _metrics(other)
    ratios = tuple(float(r) for r in ratios.split(","))
    assert ref.keys() == got.keys() and len(ref) == len(ratios)
    for name in ref:
        assert [r["step"] for r in ref[name]] == [r["step"] for r in got[name]]
        for a, b in zip(ref[name], got[name]):
            for key in a:
                if key.startswith("train/"):
                    assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (name, key)
    assert json.loads((other / "run.json").read_text())["finished"]
    cfg = tiny_config(target_tumor_ratios=ratios, **SWEEP)
    method = Method(cfg)
    probe = jnp.asarray(splits["holdout"].flair[:4, ..., None] * 2 - 1)
    translate = jax.jit(jax.vmap(lambda g: method.translate(g, probe)))
    outs = []
    for workdir in (reference, other):
        states = RunFolder(workdir).restore_final(cfg)
        outs.append(translate(states.generator))
    chex.assert_trees_all_close(outs[0], outs[1], atol=1e-4)


# ratios -> padded members. 5 members on 4 devices: 2 per device, 3 padding copies.
# One member count for both runs, so one one-device reference serves both.
FOUR_DEVICE_RATIOS = {"0,0.2,0.5,0.8,1": 8}
TWO_PROCESS_RATIOS = "0,0.2,0.5,0.8,1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_splits):
    """Every sharded run and its one-device reference, started together.

    One subprocess with 4 CPU devices trains both 4-device sweeps; two more
    form a 2-process jax.distributed run. They run while this process trains
    the one-device references, so Python and JAX start once per process.
    """
    root = tmp_path_factory.mktemp("scaleout")
    four = {ratios: root / f"four_{i}" for i, ratios in enumerate(FOUR_DEVICE_RATIOS)}
    two = root / "two_processes"
    address = f"localhost:{_free_port()}"
    logs = [root / f"worker{i}.log" for i in range(3)]

    def start(args, devices, log):  # output to a file: nobody reads a pipe meanwhile
        with log.open("w") as out:
            return subprocess.Popen([sys.executable, str(WORKER), *args], env=_env(devices),
                                    cwd=WORKER.parent, stdout=out, stderr=subprocess.STDOUT)

    procs = [start([f"{w}={r}" for r, w in four.items()], 4, logs[0])]
    procs += [start([f"{two}={TWO_PROCESS_RATIOS}", "--distributed", address, "2", str(i)], 2,
                    logs[1 + i]) for i in range(2)]
    try:
        reference = {}
        for ratios in FOUR_DEVICE_RATIOS:
            reference[ratios] = root / f"one_device_{len(reference)}"
            cfg = tiny_config(target_tumor_ratios=tuple(float(r) for r in ratios.split(",")),
                              **SWEEP)
            train_sweep(cfg, reference[ratios], tiny_splits, progress=False)
        returncodes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return dict(four=four, two=two, reference=reference, returncodes=returncodes,
                outputs=[log.read_text()[-3000:] for log in logs])


@pytest.mark.parametrize("ratios", list(FOUR_DEVICE_RATIOS))
def test_members_sharded_over_4_devices_match_one_device(ratios, runs, tiny_splits):
    assert runs["returncodes"][0] == 0, runs["outputs"][0]
    workdir = runs["four"][ratios]
    run = json.loads((workdir / "run.json").read_text())
    assert (run["devices"], run["padded_members"], run["member_axis"]) == (
        4, FOUR_DEVICE_RATIOS[ratios], "vmap")
    _assert_same_run(runs["reference"][ratios], workdir, tiny_splits, ratios)


def test_two_jax_distributed_processes_match_one_process(runs, tiny_splits):
    """2 processes x 2 CPU devices (gloo collectives), 5 members padded to 8."""
    assert runs["returncodes"][1:] == [0, 0], runs["outputs"][1:]
    run = json.loads((runs["two"] / "run.json").read_text())
    assert (run["processes"], run["devices"], run["padded_members"]) == (2, 4, 8)
    _assert_same_run(runs["reference"][TWO_PROCESS_RATIOS], runs["two"], tiny_splits,
                     TWO_PROCESS_RATIOS)
