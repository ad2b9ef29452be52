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
from jax_translate.run_folder import RunFolder
from jax_translate.training.methods import Method
from jax_translate.training.sweep import train_sweep

WORKER = Path(__file__).with_name("tiny_sweep_worker.py")


def _env(devices: int, cache: Path) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


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


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_splits):
    """ratios -> the run folder of that sweep on this process's one device."""
    runs = {}

    def run(ratios: str) -> Path:
        if ratios not in runs:
            runs[ratios] = tmp_path_factory.mktemp("one_device")
            cfg = tiny_config(target_tumor_ratios=tuple(float(r) for r in ratios.split(",")),
                              **SWEEP)
            train_sweep(cfg, runs[ratios], tiny_splits, progress=False)
        return runs[ratios]

    return run


# 3 members on 4 devices: one padding copy; 5 members: 2 per device, 3 copies.
@pytest.mark.parametrize("ratios,padded", [("0,0.5,1", 4), ("0,0.2,0.5,0.8,1", 8)])
def test_members_sharded_over_4_devices_match_one_device(ratios, padded, reference, tmp_path,
                                                         tiny_splits):
    subprocess.run([sys.executable, str(WORKER), str(tmp_path / "w"), ratios], check=True,
                   env=_env(4, tmp_path / "cache"), cwd=WORKER.parent, timeout=300)
    run = json.loads((tmp_path / "w" / "run.json").read_text())
    assert (run["devices"], run["padded_members"], run["member_axis"]) == (4, padded, "vmap")
    _assert_same_run(reference(ratios), tmp_path / "w", tiny_splits, ratios)


def test_two_jax_distributed_processes_match_one_process(reference, tmp_path, tiny_splits):
    """2 processes x 2 CPU devices (gloo collectives), 3 members padded to 4."""
    ratios = "0,0.5,1"
    address = f"localhost:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "w"), ratios,
                               address, "2", str(i)], env=_env(2, tmp_path / f"cache{i}"),
                              cwd=WORKER.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    run = json.loads((tmp_path / "w" / "run.json").read_text())
    assert (run["processes"], run["devices"], run["padded_members"]) == (2, 4, 4)
    _assert_same_run(reference(ratios), tmp_path / "w", tiny_splits, ratios)

