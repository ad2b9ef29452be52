"""Shared fixtures: tiny slice sets and tiny configs, so a training step runs in seconds."""

import os
import shutil

# The suite compiles ~70 small XLA programs and runs each for a few steps, so compile
# time is most of its time. Two XLA CPU settings cut it (set before JAX starts;
# inherited by the tests' subprocesses):
# - LLVM's optimisations cost more than they save: one tiny cyclegan step compiles in
#   7.7 s instead of 12.6 s, and runs in 0.8 s instead of 0.2 s; the suite, 7:07
#   instead of 9:00.
# - XLA's newer fusion emitters compile slower than the elemental emitter they
#   replace: the same step's XLA compile, 4.4 s instead of 6.4 s (run time equal);
#   the suite, 4:15 instead of 5:15. Only where this jaxlib knows the flag (an unknown
#   one aborts XLA).
def _xla_knows(flag: str) -> bool:
    import mmap
    from pathlib import Path

    import jaxlib  # the binary only, JAX's backend is not started

    for lib in Path(jaxlib.__file__).parent.glob("*.so"):
        with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(flag.encode()) >= 0:
                return True
    return False


_TEST_XLA_FLAGS = ["--xla_backend_optimization_level=0"] + (
    ["--xla_cpu_use_fusion_emitters=false"] if _xla_knows("xla_cpu_use_fusion_emitters")
    else [])
os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), *_TEST_XLA_FLAGS]))

import pytest  # noqa: E402

from jax_translate.configure import resolve  # noqa: E402
from jax_translate.data import synthetic  # noqa: E402
from jax_translate.data.dataset import SliceSet  # noqa: E402
from jax_translate.jobs import sweep  # noqa: E402

# STYLE.md, "No hidden host syncs": every compiled call of a training loop run by
# the tests (and by their subprocesses, which inherit the environment) fails on
# an implicit host<->device transfer. Data, states and members are placed before
# the loop; whatever must cross inside it crosses explicitly (jax.device_put/get).
os.environ[sweep.TRANSFER_GUARD_ENV] = "disallow"


def tiny_slices(n_patients=8, per_patient=12, size=16, seed=0) -> SliceSet:
    """The library's synthetic slices (ellipse brains, a tumor blob in every other slice)."""
    return synthetic.ellipse_slices(n_patients, per_patient, size, seed)


@pytest.fixture(scope="session")
def tiny_splits():
    return {"train": tiny_slices(), "holdout": tiny_slices(n_patients=4, seed=1)}


def tiny_config(method="cyclegan", **overrides):
    base = dict(target_tumor_ratios=(0.0, 1.0), seeds=1, steps=6, n_source=8, n_target=10,
                n_holdout=8, pool_size=3, steps_per_call=3, log_every=2, checkpoint_every=3,
                member_axis="vmap")
    base.update(overrides)
    return resolve(method, preset="tiny", **base)


def shared_run_config(**overrides):
    """The tiny cyclegan sweep that the training tests share (:func:`tiny_run`):
    3 ratios x 2 seeds, 4 steps in calls of 2, a checkpoint after each call."""
    base = dict(target_tumor_ratios=(0.0, 0.5, 1.0), seeds=2, steps=4, steps_per_call=2,
                checkpoint_every=2, log_every=2)
    return tiny_config("cyclegan", **{**base, **overrides})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_splits):
    """The shared sweep trained to the end: its SweepResult and folder.

    Read-only: a test that writes into a run folder copies it first (:func:`copy_run`).
    """
    from jax_translate.jobs.sweep import train_sweep

    workdir = tmp_path_factory.mktemp("tiny_run")
    return train_sweep(shared_run_config(), workdir, tiny_splits, progress=False), workdir


@pytest.fixture(scope="session")
def tiny_run_half(tmp_path_factory, tiny_splits):
    """The shared sweep stopped after its first call (checkpoint at step 2); read-only."""
    from jax_translate.jobs.sweep import train_sweep

    workdir = tmp_path_factory.mktemp("tiny_run_half")
    return train_sweep(shared_run_config(), workdir, tiny_splits, progress=False,
                       stop_after=2), workdir


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """A data folder holding the tiny preset's simulated dataset (5 patients), built once.

    Tests that train on it share it, and with it the classifier cached next to the
    dataset (the tiny preset's 20 steps); building from nothing is tested in
    test_builders.
    """
    from jax_translate.data import dataset

    folder = tmp_path_factory.mktemp("tiny_data")
    dataset.load_for(resolve("l1", preset="tiny", data_dir=str(folder)))
    return folder


def tensorboard_scalars(folder) -> dict:
    """{run: {tag: [(step, value), ...]}} of the event files under ``folder``, read by
    TensorBoard's own reader (what ``tensorboard --logdir folder`` shows)."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    events = EventMultiplexer().AddRunsFromDirectory(str(folder))
    events.Reload()
    return {run: {tag: [(e.step, e.value) for e in events.Scalars(run, tag)]
                  for tag in tags["scalars"]} for run, tags in events.Runs().items()}


def copy_run(folder, to):
    """A writable copy of a shared run folder."""
    shutil.copytree(folder, to)
    return to


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """One persistent compile cache for the session, shared with the subprocesses
    the tests start (the env vars): a program compiled once is not compiled again
    by a later test, a resumed CLI run, or another pytest-xdist worker."""
    import jax

    # Under xdist every worker has its own basetemp; their parent is shared.
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    cache = shared / "jax_cache"
    cache.mkdir(exist_ok=True)
    settings = {"jax_compilation_cache_dir": str(cache),
                "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)
    return cache


# Tests that share a session fixture built at some cost run in one pytest-xdist
# worker (pyproject: --dist loadgroup), so that fixture is built once, not per worker.
_SHARED_GROUPS = {"tiny_run": "tiny_run", "tiny_run_half": "tiny_run", "tiny_data_dir": "tiny_data"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks
def pytest_collection_modifyitems(items):
    for item in items:
        groups = {_SHARED_GROUPS[f] for f in item.fixturenames if f in _SHARED_GROUPS}
        if groups:
            item.add_marker(pytest.mark.xdist_group(min(groups)))
