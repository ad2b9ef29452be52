"""experiments/gpu/run.sh: its compact data export, its profile parser, and its CPU dry run
(every part at the tiny preset, against an export it packs and unpacks itself)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from jax_translate.configure import resolve
from jax_translate.data import compact, dataset
from jax_translate.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "gpu" / "run.sh"
sys.path.insert(0, str(ROOT / "experiments" / "gpu"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import data as gpu_data  # noqa: E402  experiments/gpu/data.py
import speed_profile  # noqa: E402  benchmarks/speed_profile.py


def _splits():
    """Synthetic splits with tissue maps (dataset 4.0.0's): they must travel too."""
    splits = gpu_data.synthetic_splits({"train": range(3), "holdout": range(3, 5),
                                        "validation": range(5, 6)}, per_patient=6, size=16)
    rng = np.random.default_rng(0)
    return {name: dataclasses.replace(s, tissue=rng.integers(0, 256, (*s.t1.shape, 3),
                                                             dtype=np.uint8))
            for name, s in splits.items()}


@pytest.mark.parametrize("dtype", ["float16", "uint8"])
def test_compact_export_round_trips_within_its_quantisation(tmp_path, dtype):
    splits = _splits()
    path = compact.write(splits, tmp_path / "c.npz", "simulated_brats/x/3.0.0",
                         image_dtype=dtype, files={"ceiling.json": '{"r": 1}'})
    back, meta = compact.read(path)
    assert list(back) == ["train", "holdout", "validation"]
    assert meta["dataset_folder"] == "simulated_brats/x/3.0.0" and meta["image_dtype"] == dtype
    bound = compact.QUANTISATION[dtype]
    for split, s in splits.items():
        b = back[split]
        for name in ("flair", "t1"):
            x, y = getattr(s, name), getattr(b, name)
            assert y.dtype == np.float32 and y.shape == x.shape
            err = np.abs(y - x).max()
            assert 0 < err <= bound + 1e-9, (name, err)  # quantised, within the bound
        for f in dataclasses.fields(dataset.SliceSet):
            if f.name not in ("flair", "t1") and getattr(s, f.name) is not None:
                x, y = getattr(s, f.name), getattr(b, f.name)
                assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    # masks as bits: the file is smaller than the float32 export of the same splits
    full = dataset.export_splits(splits, tmp_path / "full.npz")
    assert path.stat().st_size < full.stat().st_size


def test_unpacked_export_is_what_load_reads_without_tfds(tmp_path, monkeypatch):
    cfg = resolve("l1", "tiny", data_dir=str(tmp_path / "data"))
    splits = _splits()
    path = compact.write(splits, tmp_path / "c.npz", gpu_data.relative_folder(cfg),
                         files={"ceiling.json": '{"patch": 3}'})
    folder = compact.unpack(path, tmp_path / "data")
    assert folder == dataset.folder_for(cfg)
    assert (folder / "ceiling.json").read_text() == '{"patch": 3}'
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    loaded = dataset.load_for(cfg)
    expected, _ = compact.read(path)
    assert list(loaded) == list(expected)
    for split in expected:
        for f in dataclasses.fields(dataset.SliceSet):
            x, y = getattr(expected[split], f.name), getattr(loaded[split], f.name)
            assert (x is None and y is None) or np.array_equal(x, y), (split, f.name)


def test_compact_export_refuses_what_it_cannot_store(tmp_path):
    splits = _splits()
    with pytest.raises(UsageError, match="unknown modality pd"):
        compact.write(splits, tmp_path / "c.npz", "a", modalities=("flair", "t1", "pd"))
    with pytest.raises(UsageError, match="needs t1"):
        compact.write(splits, tmp_path / "c.npz", "a", modalities=("flair",))
    with pytest.raises(UsageError, match="unknown image dtype"):
        compact.write(splits, tmp_path / "c.npz", "a", image_dtype="int4")
    with pytest.raises(UsageError, match="relative to the data directory"):
        compact.write(splits, tmp_path / "c.npz", "../elsewhere")
    bad = dict(splits, train=dataclasses.replace(splits["train"],
                                                 brain_mask=splits["train"].brain_mask * 2))
    with pytest.raises(UsageError, match="train/brain_mask is not a 0/1 mask"):
        compact.write(bad, tmp_path / "c.npz", "a")
    over = dict(splits, train=dataclasses.replace(splits["train"],
                                                  t1=splits["train"].t1 + 2))
    with pytest.raises(UsageError, match=r"uint8 stores images in \[0, 1\]"):
        compact.write(over, tmp_path / "c.npz", "a", image_dtype="uint8")
    dataset.export_splits(splits, tmp_path / "plain.npz")
    with pytest.raises(UsageError, match="not a compact export"):
        compact.read(tmp_path / "plain.npz")
    assert not (tmp_path / "c.npz").exists()


def test_unpack_refuses_another_presets_dataset(tmp_path, capsys):
    path = compact.write(_splits(), tmp_path / "c.npz", "simulated_brats/64/2.0.0")
    rc = gpu_data.main(["unpack", str(path), "--data-dir", str(tmp_path), "--preset", "gpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "simulated_brats/64/2.0.0" in err[0] and "simulated_brats/64/4.0.0" in err[0]
    assert not (tmp_path / "simulated_brats").exists()


def _event(pid, tid, name, ts, dur, **args):
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": ts, "dur": dur, "args": args}


def _meta(kind, pid, name, tid=None):
    e = {"ph": "M", "pid": pid, "name": kind, "args": {"name": name}}
    if tid is not None:
        e["tid"] = tid
    return e


def test_profile_reads_gpu_stream_kernels_not_derived_lines():
    """A GPU trace as xprof writes it: kernels on stream lines, the same time again on the
    derived 'XLA Ops' line, host events elsewhere; only the kernels count."""
    events = [_meta("process_name", 1, "/device:GPU:0"), _meta("process_name", 701, "/host:CPU"),
              _meta("thread_name", 1, "Stream #13(Compute)", 13),
              _meta("thread_name", 1, "XLA Ops", 10001), _meta("thread_name", 701, "python", 5),
              _event(1, 13, "sm90_xmma_gemm_f32f32_tf32", 0, 600, hlo_op="custom-call.3"),
              _event(1, 13, "loop_add_fusion", 600, 300, hlo_op="fusion.7"),
              _event(1, 13, "sm90_xmma_gemm_f32f32_tf32", 900, 100, hlo_op="custom-call.4"),
              _event(1, 10001, "fusion.7", 600, 300), _event(1, 10001, "custom-call.3", 0, 600),
              _event(701, 5, "PjitFunction(step)", 0, 5000)]
    s = speed_profile.summarise_ops(events, calls=1, wall_s=0.002, top=5)
    assert s["source"] == "device stream kernels" and s["op_events"] == 3
    assert s["op_ms_per_call"] == pytest.approx(1.0)
    assert s["busy_fraction"] == pytest.approx(0.5)
    top = s["top_ops"][0]
    assert top["name"] == "sm90_xmma_gemm_f32f32_tf32" and top["count"] == 2
    assert top["share"] == pytest.approx(0.7) and top["category"] == "matmul/conv"
    assert s["categories"] == pytest.approx({"matmul/conv": 0.7, "fusion": 0.3})


def test_profile_counts_cpu_thunks_by_self_time():
    """A CPU trace: a while thunk holds its body's ops on the same thread (counted once),
    the client waits for completion (not work), the Eigen pool runs other ops."""
    events = [_meta("process_name", 701, "/host:CPU"),
              _meta("thread_name", 701, "tf_XLAPjRtCpuClient/1", 1),
              _meta("thread_name", 701, "tf_XLAEigen/2", 2),
              _event(701, 1, "ThunkExecutor::Execute (wait for completion)", 0, 1000),
              _event(701, 1, "while.5", 0, 800), _event(701, 1, "convolution.1", 100, 500),
              _event(701, 1, "end: convolution.1", 600, 1),
              _event(701, 2, "wrapped_tanh", 0, 200)]
    s = speed_profile.summarise_ops(events, calls=2, wall_s=0.001, top=5)
    assert s["source"] == "CPU thunks"
    ops = {op["name"]: op for op in s["top_ops"]}
    assert set(ops) == {"while.5", "convolution.1", "wrapped_tanh"}
    assert ops["while.5"]["ms_per_call"] == pytest.approx(0.15)  # 800 - 500 us, over 2 calls
    assert ops["convolution.1"]["share"] == pytest.approx(500 / 1000)
    assert speed_profile.summarise_ops([], 1, 1.0, 5)["error"] == "no op events in the trace"


def _run(*args, env=None, timeout=900):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_script_usage_errors_are_one_line(tmp_path):
    for args, env, message in (
            (["bogus"], {}, "error: unknown argument 'bogus'"),
            (["plan"], {"SPEED_CAP_S": "0"}, "error: SPEED_CAP_S must be a positive whole number"),
            (["prepare", "speed"], {}, "error: prepare takes --data-dir and --dtype only"),
            (["--dry-run", "--data-dir", "x"], {}, "error: --data-dir goes with prepare"),
            (["--workdir", "WORK"], {"JAX_PLATFORMS": "cpu"}, "error: no GPU: JAX sees cpu")):
        result = _run(*[str(tmp_path) if a == "WORK" else a for a in args], env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and lines[-1].startswith(message), (args, result.stderr)
        assert sum(line.startswith("error:") for line in lines) == 1


def test_plan_prints_the_run_calls_for_the_caps():
    out = _run("plan", env={"SPEED_CAP_S": "100", "KNOWN_CAP_S": "200", "STUDY_CAP_S": "300"})
    assert out.returncode == 0
    assert ("run(command='bash experiments/gpu/run.sh --pack \"$OUT\" speed known', "
            "timeout_s=360, carry=[\"experiments/gpu/carry\"])") in out.stdout
    assert "study', timeout_s=360" in out.stdout


def test_prepare_packs_the_gpu_presets_dataset_with_its_wheels(tmp_path):
    """prepare on a data folder that holds the gpu preset's export (a synthetic one: no
    build); the wheel is already there, so nothing is downloaded."""
    data = tmp_path / "data"
    assert gpu_data.main(["synthetic", "--preset", "gpu", "--per-patient", "4",
                          "--data-dir", str(data)]) == 0
    carry = tmp_path / "carry"
    version = importlib.metadata.version("tensorboardX")
    (carry / "wheels").mkdir(parents=True)
    (carry / "wheels" / f"tensorboardX-{version}-py3-none-any.whl").write_bytes(b"")
    out = _run("prepare", "--data-dir", str(data), env={"GPU_CARRY": str(carry)})
    assert out.returncode == 0, out.stderr
    assert "simulated_brats/64/4.0.0" in out.stdout and "float16" in out.stdout
    assert "carry: " in out.stdout and "run(command=" in out.stdout
    splits, meta = compact.read(carry / "data-64.npz")
    assert meta["modalities"] == ["flair", "t1"] and len(splits["train"]) == 30 * 4


def test_a_broken_part_fails_the_run(tmp_path):
    out = _run("--dry-run", "--workdir", str(tmp_path), "speed",
               env={"DRY_SPEED_ROWS": "loop/xla/fp64"})
    assert out.returncode == 1
    assert "speed: failed (exit 2)" in out.stdout
    assert "is not AXIS/CONV/PRECISION" in out.stderr + out.stdout


@pytest.mark.slow
def test_dry_run_runs_every_part(tmp_path):
    work, pack = tmp_path / "work", tmp_path / "pack"
    out = _run("--dry-run", "--workdir", str(work), "--pack", str(pack))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    results = work / "results"
    # speed: its row, with counted and XLA FLOPs and a parsed profile
    speed = json.loads((results / "benchmarks/results/dry-run-profile.json").read_text())
    assert [(r["member_axis"], r["precision"]) for r in speed["rows"]] == [("vmap", "bf16")]
    assert speed["flops_per_member_step"] > 0 and not speed["skipped"]
    for row in speed["rows"]:
        assert row["member_steps_per_s"] > 0 and row["xla_cost"]["flops_per_member_step"] > 0
        assert row["profile"]["top_ops"] and "error" not in row["profile"]
    # known: every process's rows merged, verdicts against L1 (the harness's own table)
    known = results / "experiments/gpu/results/known_answer"
    rows = (known / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "task" in header and rows.count(rows[0]) == 1
    methods = {line.split(",")[header.index("method")] for line in rows[1:]}
    assert methods == {"cyclegan", "l1"} and len(rows) == 1 + 4 + 2  # 2 ratios x 2 grid points + L1
    table = (known / "table.md").read_text()
    assert " flair->t1 base cyclegan ratio=1/r1_weight=10 step 2: seed 0: r " in table
    assert "vs l1 nan" not in table
    # study: reproduce's results and figures, copied out
    study = results / "experiments/gpu_study/results"
    for name in ("results.csv", "l1_results.csv", "bias_curves.png", "run_info.txt"):
        assert (study / name).is_file(), name
    # packed for the run tool, paths from the repository root; nothing written into the repo
    with tarfile.open(pack / "known.tar.gz") as tar:
        assert "experiments/gpu/results/known_answer/results.csv" in tar.getnames()
    assert {p.name for p in pack.iterdir()} == {"speed.tar.gz", "known.tar.gz", "study.tar.gz",
                                               "log-speed-known-study.txt"}
    assert not (ROOT / "benchmarks/results/dry-run-profile.json").exists()
    assert "summary:\n  speed: ok" in out.stdout
