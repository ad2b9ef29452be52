"""Killed runs resume to the same results; damaged checkpoints are refused, untouched.

The sweep and evaluate commands run as subprocesses of the real CLI on a
small simulated dataset, and get SIGKILLed at a point chosen by polling the
run folder: the uninterrupted reference runs in this process.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import numpy as np
import pytest

from conftest import copy_run, tiny_config

from jax_translate import cli
from jax_translate.configure import resolve
from jax_translate.evaluation.classifier import ClassifierConfig
from jax_translate.jobs.evaluate_run import evaluate_run
from jax_translate.data import dataset
from jax_translate.errors import UsageError
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.runtime import checkpoints
from jax_translate.jobs.sweep import train_sweep

CLASSIFIER_STEPS = 20


@pytest.fixture(scope="module")
def run_config(tmp_path_factory, tiny_data_dir):
    """A config file of a short l1 sweep on the tiny preset's 5-patient simulated dataset."""
    folder = tmp_path_factory.mktemp("crash")
    cfg = resolve("l1", "tiny", target_tumor_ratios=(0.0, 1.0), steps=40, n_source=20,
                      n_target=20, n_holdout=16, steps_per_call=1, checkpoint_every=10,
                      log_every=5, n_patients=5, n_train_patients=3,
                      data_dir=str(tiny_data_dir))
    path = folder / "sweep.json"
    path.write_text(cfg.to_json())
    return cfg, path, dataset.load_for(cfg)


@pytest.fixture(scope="module")
def uninterrupted(run_config, tmp_path_factory):
    cfg, _, splits = run_config
    workdir = tmp_path_factory.mktemp("uninterrupted")
    train_sweep(cfg, workdir, splits, progress=False)
    evaluate_run(workdir, splits, classifier_cfg=ClassifierConfig(steps=CLASSIFIER_STEPS),
                 progress=False)
    return workdir


def _start(args) -> subprocess.Popen:
    # The session's compile cache comes with os.environ (conftest.compilation_cache):
    # the CLI runs load the programs this process compiled for the same config.
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-m", "jax_translate.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, ready, check=lambda: None, timeout=240) -> None:
    """SIGKILLs ``proc`` as soon as ``ready()``, calling ``check()`` on each poll."""
    deadline = time.monotonic() + timeout
    while not ready():
        check()
        assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    check()


def _finish(args) -> None:
    proc = _start(args)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err


def test_sigkilled_sweep_and_evaluate_resume_to_the_same_results(run_config, uninterrupted,
                                                                 tmp_path):
    cfg, config_file, _ = run_config
    workdir = tmp_path / "run"
    sweep = ["sweep", "--config", str(config_file), "--workdir", str(workdir)]

    # Killed right after its first checkpoint is committed, mid-training.
    first = workdir / "checkpoints" / str(cfg.checkpoint_every)
    _kill_when(_start(sweep), lambda: (first / "commit_success.txt").exists()
               or (first / "_CHECKPOINT_METADATA").exists())
    assert not json.loads((workdir / "run.json").read_text())["finished"]
    _finish(sweep)

    chex.assert_trees_all_equal(RunFolder(uninterrupted).restore_final(cfg), RunFolder(workdir).restore_final(cfg))
    for path in sorted((uninterrupted / "metrics").glob("*.jsonl")):
        assert (workdir / "metrics" / path.name).read_text() == path.read_text(), path.name

    # Evaluate killed once its first output exists; results are whole or absent.
    evaluate = ["evaluate", "--workdir", str(workdir), "--classifier-steps", str(CLASSIFIER_STEPS)]
    results = workdir / "results.json"

    def results_whole_or_absent():
        if results.exists():
            assert len(json.loads(results.read_text())["rows"]) == 2 * len(cfg.members)

    _kill_when(_start(evaluate), (workdir / "translations.npz").exists,
               results_whole_or_absent)
    _finish(evaluate)
    for name in ("results.csv", "results.json"):
        assert (workdir / name).read_text() == (uninterrupted / name).read_text(), name


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def stopped_at_20(run_config, tmp_path_factory):
    """The sweep stopped after 20 steps: checkpoints at steps 10 and 20."""
    cfg, _, splits = run_config
    workdir = tmp_path_factory.mktemp("stopped")
    train_sweep(cfg, workdir, splits, progress=False, stop_after=20)
    return workdir


def _drop_digests(workdir: Path) -> None:
    """Makes ``workdir``'s checkpoints those of a version that saved no file digests."""
    for listing in (workdir / "checkpoints").glob(f"*/{checkpoints.DIGESTS_FILE}"):
        listing.unlink()


@pytest.mark.parametrize("digests", [True, False], ids=["digests", "no_digests"])
@pytest.mark.parametrize("damage", ["truncate_data", "garble_metadata", "random_bytes"])
def test_damaged_checkpoint_is_refused_and_the_folder_untouched(damage, digests, stopped_at_20,
                                                                tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(stopped_at_20, workdir)
    if not digests:
        _drop_digests(workdir)
    step_dir = workdir / "checkpoints" / "20"
    data = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
    if damage == "truncate_data":
        for p in data:
            p.write_bytes(p.read_bytes()[:7])
    elif damage == "garble_metadata":
        (step_dir / "state" / "_METADATA").write_text("{not json")
    else:  # what a bad disk does: the file keeps its size, some bytes change
        largest = max(data, key=lambda p: p.stat().st_size)
        raw = bytearray(largest.read_bytes())
        middle = len(raw) // 2
        raw[middle:middle + 100] = np.random.default_rng(0).bytes(100)
        largest.write_bytes(bytes(raw))
    assert data
    before = _snapshot(workdir)

    for argv in (["sweep", "--config", str(workdir / "config.json"), "--workdir", str(workdir)],
                 ["evaluate", "--workdir", str(workdir)]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.startswith(f"error: checkpoint {step_dir} ") and err.count("\n") == 1, err
        if digests:  # checked before Orbax reads a byte
            assert re.search(r"is damaged \(\d+ file\(s\) differ from the digests saved with it",
                             err), err
        elif damage == "random_bytes":
            # where 100 bytes land in a compressed chunk (a layout that varies from run to
            # run) decides whether it no longer decodes or decodes to other values: either
            # way the checkpoint is called damaged, in one line
            assert re.search(r"is damaged \((it cannot be read: |1 array\(s\) fail their "
                             r"checksum)", err), err
        else:
            assert "is damaged (it cannot be read: " in err, err
        assert "delete that folder to resume from step 10" in err
        assert _snapshot(workdir) == before
        (workdir / "run.json").write_text(  # evaluate checks a finished run's checkpoint
            json.dumps({**json.loads((workdir / "run.json").read_text()), "finished": True}))
        before = _snapshot(workdir)


@pytest.mark.parametrize("digests", [True, False], ids=["digests", "no_digests"])
def test_random_bytes_in_a_finished_sweeps_final_checkpoint_are_refused_by_the_next_command(
        digests, tiny_run, tmp_path, capsys):
    """Issue 24: 100 random bytes written into the middle of the largest file of a
    finished sweep's latest checkpoint. The next sweep answered "already finished"
    without reading the checkpoint (exit 0); now it checks the files' digests (or,
    in a checkpoint saved without them, restores and checks the arrays), and it
    and evaluate refuse with one line, every file left as it was."""
    cfg = tiny_run[0].cfg
    workdir = copy_run(tiny_run[1], tmp_path / "run")
    if not digests:
        _drop_digests(workdir)
    step_dir = workdir / "checkpoints" / str(cfg.steps)
    largest = max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    size = largest.stat().st_size
    with largest.open("r+b") as f:
        f.seek(size // 2)
        f.write(np.random.default_rng(24).bytes(100))
    before = _snapshot(workdir)
    # Without digests, where 100 bytes land in a compressed chunk decides how it shows: a
    # chunk that no longer decodes ("cannot be read") or one that decodes to other values
    # ("fail their checksum"); the layout varies from run to run (CI saw both). Each is a
    # refusal of one line.
    problems = ((f"is damaged (1 file(s) differ from the digests saved with it, first "
                 f"{largest.relative_to(step_dir).as_posix()}",) if digests else
                ("is damaged (1 array(s) fail their checksum", "is damaged (it cannot be read: "))
    for argv in (["sweep", "--config", str(workdir / "config.json"), "--workdir", str(workdir)],
                 ["evaluate", "--workdir", str(workdir)]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.startswith(tuple(f"error: checkpoint {step_dir} {p}" for p in problems)), err
        assert err.endswith("; delete that folder to resume from step 2\n"), err
        assert err.count("\n") == 1, err
        assert _snapshot(workdir) == before


def test_a_checkpoint_of_another_state_layout_is_refused_not_called_damaged(tmp_path):
    """A whole checkpoint whose arrays are not the ones this version trains (say, an
    optimizer state saved per array, read as one flat vector) is not damage: the
    error says so and does not advise deleting it."""
    import jax.numpy as jnp

    from jax_translate.errors import UsageError
    from jax_translate.runtime import checkpoints

    mngr = checkpoints.manager(tmp_path / "checkpoints")
    checkpoints.save(mngr, 10, {"params": jnp.ones(3), "opt": {"mu": {"w": jnp.zeros(3)}}})
    mngr.wait_until_finished()
    before = _snapshot(tmp_path)
    template = {"params": jnp.ones(3), "opt": {"mu": jnp.zeros(3)}}
    with pytest.raises(UsageError, match=r"checkpoints/10 holds another state layout .*"
                                         r"2 arrays differ, first \['opt'\]\['mu'\]") as err:
        checkpoints.restore_latest(mngr, template)
    assert "delete" not in str(err.value)
    assert _snapshot(tmp_path) == before
    # the same layout restores
    step, state = checkpoints.restore_latest(mngr, {"params": jnp.ones(3),
                                                    "opt": {"mu": {"w": jnp.zeros(3)}}})
    assert step == 10 and float(state["params"].sum()) == 3.0


def test_a_member_whose_domains_the_data_cannot_hold_is_refused_before_any_step(tmp_path,
                                                                                 tiny_splits):
    """Seed 5 of the cpu preset's unpaired domains needed 680 healthy slices where 673
    exist, and said so only after the pretraining had run: now every member's domains
    are drawn first, and the error names the member."""
    cfg = tiny_config("cyclegan", seeds=2, n_target=10_000)
    with pytest.raises(UsageError, match=r"cyclegan ratio=0 seed=0: the target domain at "
                                         r"ratio 0 needs \d+ healthy slices"):
        train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    assert RunFolder(tmp_path / "run").manager().latest_step() is None  # not one step
    adapting = tiny_config("cyclegan-adapt", seeds=2, n_target=10_000)
    with pytest.raises(UsageError, match="cyclegan-adapt ratio=0 seed=0"):
        train_sweep(adapting, tmp_path / "adapt", tiny_splits, progress=False)
    assert not (tmp_path / "adapt" / "pretrain").exists()  # no pretraining first
