"""The sweep command's flags on a real tiny run: --grid, --set, TensorBoard scalars; their
errors; a config file's grid; reproduce's --set; a multi-host start without --preset."""

import argparse
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import tensorboard_scalars
from jax_translate import cli
from jax_translate.config import SweepConfig, flatten
from jax_translate.configure import Experiment, resolve
from jax_translate.jobs.run_folder import RunFolder

GRIDDED = ["sweep", "--method", "cyclegan", "--preset", "tiny", "--ratios", "0.5", "--seeds", "2",
           "--grid", "lambda_cycle=1,10", "--set", "learning_rate=1e-3", "--set", "model.ngf=2"]


@pytest.fixture(scope="module")
def gridded_run(tiny_data_dir, tmp_path_factory):
    """``jax-translate sweep`` of 1 ratio x 2 seeds x 2 cycle weights on the tiny dataset."""
    workdir = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main([*GRIDDED, "--data-dir", str(tiny_data_dir), "--workdir", str(workdir)]) == 0
    return workdir


def test_grid_and_set_flags_train_those_members_in_one_program(gridded_run):
    folder = RunFolder(gridded_run)
    cfg = folder.config()
    assert cfg.learning_rate == 1e-3 and cfg.model.ngf == 2  # --set, over the tiny preset
    assert cfg.model.n_blocks == resolve("cyclegan", "tiny").model.n_blocks
    assert [m.name for m in cfg.members] == [
        "ratio=0.5/seed=0/lambda_cycle=1", "ratio=0.5/seed=0/lambda_cycle=10",
        "ratio=0.5/seed=1/lambda_cycle=1", "ratio=0.5/seed=1/lambda_cycle=10"]
    run = json.loads(folder.run_path.read_text())
    assert run["finished"] and run["padded_members"] == 4
    assert [m["lambda_cycle"] for m in run["members"]] == [1.0, 10.0, 1.0, 10.0]
    logged = folder.metrics(cfg)
    assert all(len(rows) == cfg.steps // cfg.log_every for rows in logged.values())
    # members with another cycle weight trained differently from the same start
    losses = [logged[m.name][-1]["train/cycle_loss"] for m in cfg.members]
    assert losses[0] != losses[1]


def test_tensorboard_reader_finds_each_members_training_scalars(gridded_run):
    cfg = RunFolder(gridded_run).config()
    scalars = tensorboard_scalars(gridded_run / "tensorboard")
    assert set(scalars) == {m.name for m in cfg.members}  # one run per member, by its name
    logged = RunFolder(gridded_run).metrics(cfg)
    for member in cfg.members:
        tags = scalars[member.name]
        assert {"train/generator_loss", "train/discriminator_loss", "train/cycle_loss"} <= set(tags)
        for tag, points in tags.items():
            assert points == [(row["step"], pytest.approx(row[tag])) for row in logged[member.name]]


def test_a_config_files_grid_and_the_flag_that_replaces_it(tmp_path):
    path = tmp_path / "gridded.json"
    path.write_text(json.dumps({"method": "l1", "preset": "tiny",
                                "grid": {"lambda_cycle": [1, 5]}}))
    cfg = Experiment.load(path).config()
    assert cfg.grid == (("lambda_cycle", (1.0, 5.0)),)
    assert [m.name for m in cfg.members] == [
        f"ratio={r:g}/seed=0/lambda_cycle={v}" for r in (0.0, 1.0) for v in (1, 5)]
    args = cli.build_parser().parse_args(["sweep", "--config", str(path), "--workdir", "w",
                                          "--grid", "learning_rate=1e-4,1e-3"])
    assert cli._sweep_config(args).grid == (("learning_rate", (1e-4, 1e-3)),)
    # a run folder's config.json keeps the grid, and rebuilds the same members
    (tmp_path / "run.json").write_text(cfg.to_json())
    assert SweepConfig.load(tmp_path / "run.json").members == cfg.members


@pytest.mark.parametrize("flags,message", [
    (["--grid", "steps=100,200"], "cannot grid 'steps': it changes shapes or the compiled program"),
    (["--grid", "model=1,2"], "cannot grid 'model'"),
    (["--grid", "batch_size=1,2"], "cannot grid 'batch_size'"),
    (["--grid", "lambda_cycle"], "--grid takes FIELD=V1,V2"),
    (["--set", "learning_rat=1e-3"], "no such config field (did you mean learning_rate?)"),
    (["--set", "learning_rate=fast"], "learning_rate takes a number, got \"fast\""),
    (["--set", "model.ngf=wide"], "model.ngf takes a whole number"),
    (["--set", "steps=0"], "steps must be >= 1"),
    (["--set", "member_axis=sideways"], "unknown member axis 'sideways'"),
    (["--set", "method=l1"], "--set method: use --method"),
    (["--autotune"], "unrecognized arguments: --autotune"),
])
def test_bad_grids_and_sets_are_one_error_line(flags, message, tmp_path, capsys):
    workdir = tmp_path / "w"
    code = cli.main(["sweep", "--method", "cyclegan", "--preset", "tiny", "--workdir",
                     str(workdir), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not workdir.exists()


def test_reproduce_takes_set_on_top_of_its_config(tmp_path, monkeypatch):
    from jax_translate.jobs import reproduce

    seen = []
    monkeypatch.setattr(reproduce, "reproduce", lambda experiment, out, **kw: seen.append(
        experiment))
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"preset": "tiny", "methods": ["l1"], "model": {"ngf": 3},
                                "steps": 7}))
    assert cli.main(["reproduce", "--config", str(path), "--set", "learning_rate=1e-3",
                     "--set", "model.ndf=2", "--out", str(tmp_path / "out")]) == 0
    cfg = seen[0].configs["l1"]
    assert (cfg.learning_rate, cfg.steps, cfg.model.ngf, cfg.model.ndf) == (1e-3, 7, 3, 2)


def test_help_names_the_presets_defaults():
    """Flags whose value a preset sets say so (--seeds once said 1; the cpu preset has 2)."""
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {flag: action.help for action in sub.choices["sweep"]._actions
             for flag in action.option_strings}
    for flag in ("--ratios", "--seeds", "--steps", "--size", "--batch-size", "--log-every",
                 "--steps-per-call", "--checkpoint-every", "--member-axis", "--simulator-version"):
        assert "the preset's" in helps[flag], flag


def test_a_config_of_a_removed_runtime_field_still_loads(tmp_path):
    """Run folders written while ``autotune`` existed resume and evaluate."""
    raw = flatten(json.loads(resolve("l1", "tiny").to_json()))  # written flat then
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**raw, "autotune": "off"}))
    assert SweepConfig.load(path) == resolve("l1", "tiny")
    assert Experiment.load(path).config() == resolve("l1", "tiny")


def test_multi_host_start_without_a_preset(tmp_path):
    """With --coordinator and no --preset, the default preset asks JAX for its backend,
    after which jax.distributed refuses to start: the command starts it first. In a new
    process (this one's JAX has started): it gets as far as the run folder, which holds
    another run, and stops there."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(resolve("l1", "tiny").to_json())
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "jax_translate.cli", "sweep", "--method", "l1", "--coordinator",
         f"localhost:{port}", "--num-processes", "1", "--process-id", "0", "--workdir",
         str(workdir)], env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True,
        text=True, timeout=180)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.startswith("error: "), proc.stderr
    assert "holds a run with another config" in last, proc.stderr
