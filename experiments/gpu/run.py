"""One entry point for a ~15-minute GPU lease (issue 29): three parts, each under its own
cap, each writing results as it goes.

  speed  (cap SPEED_CAP_S, default 150 s): the paper's networks at 256x128, cyclegan N=11,
         vmap/patches and the loop in fp32 and bf16: member-steps/s, counted FLOPs per
         member-step (runtime/flops.py), XLA's cost analysis and the top ops of a traced
         call (benchmarks/speed_profile.py) -> benchmarks/results/gpu-<card>-paper-profile.*
  known  (cap KNOWN_CAP_S, default 240 s): the known-answer regime search
         (experiments/known_answer/run.py, --member-axis vmap) on the identity task
         (flair -> flair, ratio 0.5) and on flair -> t1 (ratio 1) at 64x64, the runs,
         regimes and grids below; every run (a task, a method, a regime and its grid as
         members of one sweep; or an L1 reference) is a process of its own, side by side
         on the GPU -> experiments/gpu/results/known_answer/{results.csv,table.md,log.txt}
  study  (cap STUDY_CAP_S, default 270 s): jax-translate reproduce --preset gpu
         -> experiments/gpu_study/results/

On a CPU machine with the package installed (pip install -e ".[test]"), once:
  bash experiments/gpu/run.sh prepare [--data-dir DIR] [--dtype float16|uint8]
builds (or reuses) the gpu preset's 64x64 dataset and writes experiments/gpu/carry/ (git
ignores it): data-64.npz (Flair and T1 of every split, images float16, masks as bits,
~25 MiB) and the wheels the GPU image lacks (tensorboardX). It prints the `run` calls.

On a GPU machine, from the repository root (no install: PYTHONPATH; nothing downloaded;
no tensorflow-datasets or nilearn needed), with experiments/gpu/carry/ copied over:
  bash experiments/gpu/run.sh                     # all three parts, ~11 min
  bash experiments/gpu/run.sh speed known         # or some of them, in this order
With the device `run` tool (one command <= 10 min, so two calls on one warm machine):
  run(command='bash experiments/gpu/run.sh --pack "$OUT" speed known', timeout_s=450,
      carry=["experiments/gpu/carry"])
  run(command='bash experiments/gpu/run.sh --pack "$OUT" study', timeout_s=330,
      carry=["experiments/gpu/carry"])
(`bash experiments/gpu/run.sh plan` prints these for the caps in force.) --pack DIR puts
each part's results into DIR/<part>.tar.gz (paths from the repository root) and the log
into DIR/log-<parts>.txt; the end of the output says what to untar and commit.

On a CPU, the dry run (a test in CI, tests/test_gpu_script.py): every part at the tiny
preset with a few steps, against a synthetic export it packs and unpacks itself, with
tensorflow-datasets, nilearn and nibabel blocked; nothing is written into the repository:
  bash experiments/gpu/run.sh --dry-run [--workdir DIR] [speed known study]

Settings (environment variables; the defaults below):
  SPEED_CAP_S, KNOWN_CAP_S, STUDY_CAP_S   each part's cap in seconds
  SPEED_ROWS    the speed rows, AXIS/CONV/PRECISION, comma-separated
  SPEED_FLAGS   benchmarks/speed_profile.py's model and sweep (issue 11's paper-256)
  KA_RUNS       the known-answer processes, "SOURCE TARGET RATIOS METHOD REGIME" a line
                (METHOD l1: the regime's L1 reference alone); empty: every task of KA_TASKS
                x regime of KA_REGIMES x (cyclegan, l1)
  KA_REGIMES    NAME=JSON a line: config overrides, with its own "grid" of knobs
  KA_TASKS      "SOURCE TARGET RATIOS" a line
  KA_GRID       FIELD=V1,V2 (space-separated) crossed into every regime
  KA_SEEDS, KA_POINTS, KA_PRESET, KA_STEPS (a number, or auto: (cap - KA_OVERHEAD_S) x
                KA_RATE / (the largest sweep's members x KA_SLOWDOWN), a multiple of
                50 x points)
  STUDY_PRESET, STUDY_FLAGS   reproduce's preset and other flags (e.g. --methods l1,condgan)

Exit status: 0 when every part ran (a part stopped at its cap on a GPU counts as run: its
results so far are kept; in the dry run it is a failure), else 1; bad usage 2.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("speed", "known", "study")
CAPPED = 124  # what `timeout` returns: the part ran to its cap
GPU_MODULES = ("jax", "flax", "optax", "orbax.checkpoint", "numpy", "scipy", "matplotlib",
               "tqdm", "tensorboardX")
GPU_WHEELS = ("tensorboardX",)
BLOCKED = ("tensorflow_datasets", "nilearn", "nibabel")  # what the GPU image lacks

# What the lead sets; environment variables override. Measured on one H200 (README.md):
# the default known runs reach 6,000 steps in 240 s.
DEFAULTS = {
    "SPEED_CAP_S": "150", "KNOWN_CAP_S": "240", "STUDY_CAP_S": "270",
    "SPEED_ROWS": "vmap/patches/fp32,vmap/patches/bf16,loop/xla/bf16,loop/xla/fp32",
    "SPEED_FLAGS": "--preset paper --size 256x128 --upscale 1 --upsample resize --dropout 0 "
                   "--members 11 --steps-per-call 10",
    "KA_GRID": "", "KA_SEEDS": "2", "KA_PRESET": "cpu", "KA_POINTS": "3",
    "KA_REGIMES": "base={}\n"
                  'id-r1={"grid": {"r1_weight": [100, 1000]}}\n'
                  'id-d1-r1={"model": {"n_disc_layers": 1}, "grid": {"r1_weight": [100, 1000]}}\n'
                  't1-dpool2-noid={"model": {"d_pool": 2}, "lambda_identity": 0, '
                  '"grid": {"gan_weight": [1, 3]}}',
    "KA_TASKS": "flair flair 0.5\nflair t1 1",
    # the second lease of 2026-12-04 (experiments/known_answer/README.md)
    "KA_RUNS": "flair flair 0.5 cyclegan id-r1\nflair flair 0.5 cyclegan id-d1-r1\n"
               "flair flair 0.5 l1 base\nflair t1 1 cyclegan t1-dpool2-noid",
    "KA_STEPS": "6000", "KA_RATE": "1000", "KA_OVERHEAD_S": "60", "KA_SLOWDOWN": "3",
    "STUDY_PRESET": "gpu", "STUDY_FLAGS": "",
}
WHOLE = ("SPEED_CAP_S", "KNOWN_CAP_S", "STUDY_CAP_S", "KA_SEEDS", "KA_POINTS", "KA_RATE",
         "KA_OVERHEAD_S", "KA_SLOWDOWN")


class Usage(Exception):
    """Bad usage: one ``error:`` line and exit status 2."""


@dataclass
class Args:
    mode: str = "gpu"           # gpu, dry, prepare or plan
    pack: Path | None = None
    workdir: Path | None = None
    data_dir: str | None = None
    dtype: str = "float16"
    parts: tuple[str, ...] = ()


def parse(argv: list[str]) -> Args:
    a = Args()
    if argv and argv[0] in ("prepare", "plan"):
        a.mode, argv = argv[0], argv[1:]
    parts, it = [], iter(argv)

    def value(flag, what):
        v = next(it, None)
        if not v:
            raise Usage(f"{flag} needs {what}")
        return v
    for arg in it:
        if arg == "--dry-run":
            if a.mode != "gpu":
                raise Usage(f"--dry-run does not go with {a.mode}")
            a.mode = "dry"
        elif arg == "--pack":
            a.pack = Path(value(arg, "a folder"))
        elif arg == "--workdir":
            a.workdir = Path(value(arg, "a folder"))
        elif arg == "--data-dir":
            a.data_dir = value(arg, "a folder")
        elif arg == "--dtype":
            a.dtype = value(arg, "float16 or uint8")
        elif arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        elif arg in PARTS:
            parts.append(arg)
        else:
            raise Usage(f"unknown argument '{arg}' (bash experiments/gpu/run.sh --help)")
    if a.dtype not in ("float16", "uint8"):
        raise Usage("--dtype must be float16 or uint8")
    if a.mode in ("prepare", "plan"):
        if parts or a.pack or a.workdir:
            raise Usage(f"{a.mode} takes --data-dir and --dtype only")
    elif a.data_dir:
        raise Usage("--data-dir goes with prepare (the GPU side reads the carry folder)")
    a.parts = tuple(p for p in PARTS if p in parts) or PARTS
    return a


def settings() -> dict[str, str]:
    s = {k: os.environ.get(k, v) for k, v in DEFAULTS.items()}
    for name in WHOLE:
        if not re.fullmatch(r"[1-9][0-9]*", s[name]):
            raise Usage(f"{name} must be a positive whole number, got '{s[name]}'")
    if s["KA_STEPS"] != "auto" and not re.fullmatch(r"[1-9][0-9]*", s["KA_STEPS"]):
        raise Usage("KA_STEPS must be auto or a number")
    return s


def carry_dir() -> Path:
    return Path(os.environ.get("GPU_CARRY", "experiments/gpu/carry"))  # tests point it elsewhere


def plan_lines(s: dict) -> list[str]:
    """The run tool's calls for the caps in force (each call: its parts' caps + 60 s)."""
    t1 = int(s["SPEED_CAP_S"]) + int(s["KNOWN_CAP_S"]) + 60
    t2 = int(s["STUDY_CAP_S"]) + 60
    carry = carry_dir()
    return [f"the device run tool (one warm H200; at most ~{(t1 + t2) // 60 + 2} min of the "
            "lease, its start included):",
            f"  run(command='bash experiments/gpu/run.sh --pack \"$OUT\" speed known', "
            f"timeout_s={t1}, carry=[\"{carry}\"])",
            f"  run(command='bash experiments/gpu/run.sh --pack \"$OUT\" study', "
            f"timeout_s={t2}, carry=[\"{carry}\"])",
            "then give_back; on any GPU machine: bash experiments/gpu/run.sh"]


# ---- processes ----------------------------------------------------------------------------

class Log:
    """stdout, and the pack's log file when there is one."""

    def __init__(self, path: Path | None):
        self.file = path.open("a") if path else None
        self.lock = threading.Lock()

    def __call__(self, line: str = "") -> None:
        with self.lock:
            print(line, flush=True)
            if self.file:
                self.file.write(line + "\n")
                self.file.flush()


def run(cmd: list[str], log: Log, cap: float | None = None, env: dict | None = None,
        prefix: str = "", tee: Path | None = None, stop=signal.SIGTERM, grace: float = 15) -> int:
    """Runs ``cmd`` with its output line by line into ``log`` (and ``tee``); at ``cap``
    seconds it gets ``stop``, and a kill ``grace`` seconds later: status 124, as
    ``timeout`` gives."""
    out = tee.open("a") if tee else None
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    capped = threading.Event()

    def watch():
        if _wait(proc, cap):
            return
        capped.set()
        proc.send_signal(stop)
        if not _wait(proc, grace):
            proc.kill()
    watcher = threading.Thread(target=watch, daemon=True) if cap else None
    if watcher:
        watcher.start()
    for line in proc.stdout:
        log(prefix + line.rstrip("\n"))
        if out:
            out.write(prefix + line)
            out.flush()
    rc = proc.wait()
    if out:
        out.close()
    return CAPPED if capped.is_set() else rc


def _wait(proc, seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def python(*args) -> list[str]:
    return [sys.executable, *map(str, args)]


# ---- prepare (CPU side) -------------------------------------------------------------------

def prepare(a: Args, s: dict, log: Log) -> int:
    carry = carry_dir()
    (carry / "wheels").mkdir(parents=True, exist_ok=True)
    cmd = python("experiments/gpu/data.py", "pack", "--preset", "gpu", "--dtype", a.dtype,
                 *(["--data-dir", a.data_dir] if a.data_dir else []),
                 "--out", carry / "data-64.npz")
    if run(cmd, log):
        return 1
    for name in GPU_WHEELS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise Usage(f"{name} is not installed here: pip install -e '.[test]' first")
        if not any(p.name.lower().startswith(f"{name.lower()}-{version}-")
                   for p in (carry / "wheels").iterdir()):
            if run(python("-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                          f"{name}=={version}", "-d", carry / "wheels"), log):
                raise Usage(f"could not download the {name} {version} wheel into "
                            f"{carry / 'wheels'}")
    carry_mib = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file()) / 2**20
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=ROOT, capture_output=True)
    tree_mib = sum((ROOT / f).stat().st_size for f in tracked.stdout.decode().split("\0")
                   if f and (ROOT / f).is_file()) / 2**20
    log(f"carry: {carry} {carry_mib:.0f} MiB; working tree {tree_mib:.0f} MiB; "
        "limit 64 MiB together")
    if carry_mib + tree_mib >= 60:
        raise Usage("the carry and the tree pass 60 MiB; use --dtype uint8")
    for line in plan_lines(s):
        log(line)
    return 0


# ---- the parts ----------------------------------------------------------------------------

@dataclass
class Ctx:
    mode: str
    s: dict
    work: Path
    results: Path     # the repository, or the dry run's copy of its layout
    data: Path
    env: dict
    card: str
    log: Log


def part_speed(c: Ctx) -> int:
    name = c.card or "cpu"
    out = c.results / "benchmarks/results" / (
        "dry-run-profile.json" if c.mode == "dry" else f"gpu-{name}-paper-profile.json")
    cap = int(c.s["SPEED_CAP_S"])
    budget = cap - 10 if cap > 30 else cap  # no row starts that would end past the cap
    return run(python("benchmarks/speed_profile.py", *shlex.split(c.s["SPEED_FLAGS"]),
                      "--rows", c.s["SPEED_ROWS"], "--budget-s", budget, "--machine", name,
                      "--out", out), c.log, cap, c.env)


def known_runs(s: dict) -> list[tuple[str, str, str, str, str]]:
    """(source, target, ratios, method, regime name) of each process."""
    lines = s["KA_RUNS"].strip()
    if not lines:
        regimes = [r.partition("=")[0] for r in s["KA_REGIMES"].splitlines() if r.strip()]
        lines = "\n".join(f"{task.strip()} {method} {regime}"
                          for task in s["KA_TASKS"].splitlines() if task.strip()
                          for regime in regimes for method in ("cyclegan", "l1"))
    return [tuple(line.split()) for line in lines.splitlines() if line.strip()]


def known_steps(c: Ctx) -> int:
    s = c.s
    if s["KA_STEPS"] != "auto":
        return int(s["KA_STEPS"])
    points = math.prod(len(g.partition("=")[2].split(",")) for g in s["KA_GRID"].split())
    n = max(points * len(task.split()[2].split(",")) * int(s["KA_SEEDS"])
            for task in s["KA_TASKS"].splitlines() if task.strip())
    quantum = 50 * int(s["KA_POINTS"])
    steps = ((int(s["KNOWN_CAP_S"]) - int(s["KA_OVERHEAD_S"])) * int(s["KA_RATE"])
             // (n * int(s["KA_SLOWDOWN"])) // quantum * quantum)
    steps = max(steps, quantum)
    c.log(f"known: {steps} steps = ({s['KNOWN_CAP_S']} s cap - {s['KA_OVERHEAD_S']} s) x "
          f"{s['KA_RATE']} member-steps/s / ({n} members x {s['KA_SLOWDOWN']}), "
          f"a multiple of {quantum}")
    return steps


def part_known(c: Ctx) -> int:
    s = c.s
    res, runs = c.results / "experiments/gpu/results/known_answer", c.work / "known_answer"
    res.mkdir(parents=True, exist_ok=True)
    steps = known_steps(c)
    regimes = {r.partition("=")[0]: r.strip() for r in s["KA_REGIMES"].splitlines() if r.strip()}
    grid = [x for g in s["KA_GRID"].split() for x in ("--grid", g)]
    (res / "log.txt").write_text("")
    env = {**c.env, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    threads, codes = [], {}
    for src, tgt, ratios, method, name in known_runs(s):
        if name not in regimes:
            c.log(f"known: no regime '{name}' in KA_REGIMES")
            return 2
        out, tag = runs / f"{src}-{tgt}" / name / method, f"{src}->{tgt} {name} {method}"
        out.mkdir(parents=True, exist_ok=True)
        which = ["--methods", ""] if method == "l1" else ["--methods", method, "--no-reference"]
        cmd = python("experiments/known_answer/run.py", "--out", out, "--source", src,
                     "--target", tgt, "--ratios", ratios, "--regime", regimes[name], *grid,  # NAME=JSON
                     "--seeds", s["KA_SEEDS"], "--steps", steps, "--points", s["KA_POINTS"],
                     "--preset", s["KA_PRESET"], "--member-axis", "vmap", "--data-dir", c.data,
                     *which)
        t = threading.Thread(target=lambda cmd=cmd, tag=tag: codes.__setitem__(tag, run(
            cmd, c.log, int(s["KNOWN_CAP_S"]), env, f"[{tag}] ", res / "log.txt")))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    worst = 0
    for tag, rc in codes.items():
        if rc:
            c.log(f"known: [{tag}] exited {rc}{' (its cap)' if rc == CAPPED else ''}")
            worst = 1 if rc != CAPPED else (worst or CAPPED)
    # one table of every process's rows (header once), and the harness's own verdicts
    files = sorted(runs.rglob("results.csv"))
    if not files:
        c.log("known: no rows were written")
        return 1
    lines = [f.read_text().splitlines() for f in files]
    merged = [lines[0][0], *itertools.chain.from_iterable(ls[1:] for ls in lines)]
    (res / "results.csv").write_text("\n".join(merged) + "\n")
    c.log(f"known: {len(merged) - 1} rows in {res / 'results.csv'}")
    table = subprocess.run(python("experiments/known_answer/run.py", "--table", "--out", res),
                           cwd=ROOT, env=c.env, capture_output=True, text=True)
    if table.returncode:
        c.log(table.stderr.strip())
        return 1
    (res / "table.md").write_text(table.stdout)
    c.log(table.stdout.rstrip())
    return worst


def part_study(c: Ctx) -> int:
    res, out = c.results / "experiments/gpu_study/results", c.work / "study"
    res.mkdir(parents=True, exist_ok=True)
    start, cap = time.time(), int(c.s["STUDY_CAP_S"])
    (res / "log.txt").write_text("")
    # SIGINT at the cap: the sweep checkpoints and reproduce stops ("rerun to resume")
    rc = run(python("-m", "jax_translate.cli", "reproduce", "--preset", c.s["STUDY_PRESET"],
                    "--data-dir", c.data, "--out", out, *shlex.split(c.s["STUDY_FLAGS"])),
             c.log, cap, c.env, tee=res / "log.txt", stop=signal.SIGINT, grace=30)
    for name in ("results.csv", "results.json", "bias_curves.png", "flips.png",
                 "contrast.png"):
        if (out / name).is_file():
            (res / name).write_bytes((out / name).read_bytes())
    for folder in sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else ():
        m = folder.name  # each method evaluated so far (the combined table comes at the end)
        for src, dst in (("results.csv", f"{m}_results.csv"), ("results.json",
                         f"{m}_results.json"), ("examples.png", f"examples_{m}.png")):
            if (folder / src).is_file():
                (res / dst).write_bytes((folder / src).read_bytes())
    devices = subprocess.run(python("-c", "import jax; print('jax', jax.__version__, "
                                    "jax.devices())"), env=c.env, capture_output=True, text=True)
    info = [f"command: bash experiments/gpu/run.sh study (reproduce --preset "
            f"{c.s['STUDY_PRESET']} {c.s['STUDY_FLAGS']})",
            f"exit: {rc}{f' (stopped at its cap, {cap} s)' if rc == CAPPED else ''}",
            f"wall_seconds: {time.time() - start:.0f}", f"commit: {commit()}",
            f"gpu: {gpu_line()}", devices.stdout.strip()]
    (res / "run_info.txt").write_text("\n".join(info) + "\n")
    for line in info:
        c.log(line)
    return rc


def commit(short: bool = False) -> str:
    done = subprocess.run(["git", "rev-parse", *(["--short"] if short else []), "HEAD"],
                          cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def gpu_line() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True)
        return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    except OSError:
        return ""


# ---- set-up of the GPU side (and the dry run) ---------------------------------------------

def gpu_card(env: dict) -> str:
    """The GPU's kind as a file-name word, or "" when JAX sees no GPU."""
    code = ("import re, jax; d = jax.devices()[0]; print(re.sub(r'[^A-Za-z0-9]+', '-', "
            "d.device_kind).strip('-').lower() if d.platform == 'gpu' else '')")
    done = subprocess.run(python("-c", code), env=env, capture_output=True, text=True)
    return done.stdout.strip()


def setup(a: Args, s: dict) -> Ctx:
    dry = a.mode == "dry"
    work = a.workdir or (Path(tempfile.mkdtemp()) if dry else ROOT / "runs" / "gpu")
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise Usage(f"cannot create {work}")
    work = work.resolve()
    if a.pack:
        a.pack.mkdir(parents=True, exist_ok=True)
    log = Log(a.pack / f"log-{'-'.join(a.parts)}.txt" if a.pack else None)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_TRANSLATE_DATA_DIR": str(work / "data"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    if dry:
        cap = os.environ.get("DRY_CAP_S", "300")
        s.update(SPEED_CAP_S=cap, KNOWN_CAP_S=cap, STUDY_CAP_S=cap,
                 SPEED_ROWS=os.environ.get("DRY_SPEED_ROWS", "vmap/xla/bf16"),
                 SPEED_FLAGS="--preset tiny --size 64 --members 2 --steps-per-call 1 "
                             "--min-seconds 0 --row-estimate-s 1",
                 KA_RUNS=os.environ.get("DRY_KA_RUNS", ""),
                 KA_GRID=os.environ.get("DRY_KA_GRID", "r1_weight=0,10"), KA_SEEDS="1",
                 KA_REGIMES=os.environ.get("DRY_KA_REGIMES", "base={}"), KA_PRESET="tiny",
                 KA_POINTS=os.environ.get("DRY_KA_POINTS", "1"), KA_STEPS="2",
                 KA_TASKS="flair t1 0.5,1",  # one task: the CPU has 2 cores
                 STUDY_PRESET="tiny", STUDY_FLAGS="--methods l1")
        # XLA's CPU optimisations cost more than they save on tiny programs (tests/conftest.py)
        env.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
        results, export, data_preset = work / "results", work / "carry/data-tiny.npz", "tiny"
    else:
        results, export, data_preset = ROOT, carry_dir() / "data-64.npz", s["STUDY_PRESET"]
    log(f"gpu/run.py: mode {a.mode}, parts {' '.join(a.parts)}, workdir {work}, "
        f"commit {commit(short=True)}")
    needs_data = any(p != "speed" for p in a.parts)
    card = ""
    if dry:
        block = work / "block"
        block.mkdir(exist_ok=True)
        for mod in BLOCKED:
            (block / f"{mod}.py").write_text(
                f"raise ImportError('{mod} is blocked by the dry run of experiments/gpu/run.sh')\n")
        if needs_data:  # prepare, on the CPU side: a synthetic export, packed
            for cmd in (("synthetic", "--preset", "tiny", "--data-dir", work / "build"),
                        ("pack", "--preset", "tiny", "--data-dir", work / "build",
                         "--out", export)):
                if run(python("experiments/gpu/data.py", *cmd), log, env=env):
                    raise SystemExit(1)
        env["PYTHONPATH"] = os.pathsep.join([str(block), env["PYTHONPATH"]])
    else:
        card = gpu_card(env)
        if not card:
            backend = subprocess.run(python("-c", "import jax; print(jax.default_backend())"),
                                     env=env, capture_output=True, text=True)
            seen = (backend.stdout + backend.stderr).strip().splitlines()
            raise Usage(f"no GPU: JAX sees {seen[-1] if seen else 'nothing'}; on a CPU run: "
                        "bash experiments/gpu/run.sh --dry-run")
        log(gpu_line())
        missing = [m for m in GPU_MODULES if importlib.util.find_spec(m.split(".")[0]) is None]
        if missing:
            wheels = sorted((carry_dir() / "wheels").glob("*.whl"))
            if not wheels:
                raise Usage(f"missing python modules: {' '.join(missing)} (and no wheels in "
                            f"{carry_dir() / 'wheels'}: run 'bash experiments/gpu/run.sh "
                            f"prepare' on a CPU and carry {carry_dir()})")
            if run(python("-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                          "--upgrade", "--target", work / "site", *wheels), log):
                raise Usage(f"could not install the wheels of {carry_dir() / 'wheels'}")
            env["PYTHONPATH"] += os.pathsep + str(work / "site")
    data = work / "data"
    if needs_data:
        if not export.is_file():
            raise Usage(f"no {export}: run 'bash experiments/gpu/run.sh prepare' on a CPU "
                        f"machine and carry {carry_dir()}")
        stamp = work / f".unpacked-{export.name}"
        if not stamp.is_file() or export.stat().st_mtime > stamp.stat().st_mtime:
            if run(python("experiments/gpu/data.py", "unpack", export, "--data-dir", data,
                          "--preset", data_preset), log, env=env):
                raise SystemExit(1)
            stamp.touch()
    return Ctx(a.mode, s, work, results, data, env, card, log)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        a, s = parse(argv), settings()
        if a.mode == "plan":
            print("\n".join(plan_lines(s)))
            return 0
        if a.mode == "prepare":
            return prepare(a, s, Log(None))
        c = setup(a, s)
    except Usage as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    status, written = {}, []
    watched = ("benchmarks/results", "experiments/gpu/results", "experiments/gpu_study/results")
    for part in a.parts:
        c.log(f"=== part {part} (cap {part.upper()}_CAP_S) ===")
        start = time.time()
        time.sleep(1)  # files written from here on are the part's
        rc = {"speed": part_speed, "known": part_known, "study": part_study}[part](c)
        wall = time.time() - start
        status[part] = ("ok" if rc == 0 else "stopped at its cap" if rc == CAPPED
                        else f"failed (exit {rc})"), wall
        files = sorted(str(p.relative_to(c.results)) for d in watched
                       for p in (c.results / d).rglob("*")
                       if p.is_file() and p.stat().st_mtime >= start)
        written += files
        if a.pack and files:
            with tarfile.open(a.pack / f"{part}.tar.gz", "w:gz") as tar:
                for f in files:
                    tar.add(c.results / f, arcname=f)
            c.log(f"packed {a.pack / f'{part}.tar.gz'}")
        c.log(f"=== part {part}: {status[part][0]} in {wall:.0f} s, {len(files)} files ===")
    c.log("")
    c.log("summary:")
    failed = False
    for part, (verdict, wall) in status.items():
        c.log(f"  {part}: {verdict} ({wall:.0f} s)")
        failed |= not (verdict == "ok" or (a.mode == "gpu" and verdict == "stopped at its cap"))
    if written:
        c.log(f"results written (under {c.results}):")
        for f in written:
            c.log(f"  {f}")
        if a.mode == "gpu":
            if a.pack:
                c.log("back home: for f in FILES_AT/*.tar.gz; do tar -xzf $f -C REPO; done  "
                      "(FILES_AT: the run tool's files_at)")
            c.log("to commit:")
            c.log(f"  git add -- {' '.join(written)}")
            c.log(f"  git commit -m 'GPU lease: {' '.join(a.parts)}' -- {' '.join(written)}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
