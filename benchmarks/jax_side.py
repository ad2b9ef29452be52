"""The JAX side of the benchmarks: one sweep step, timed, costed and sized.

Data are synthetic slices (smooth random images, half of them labelled
tumor): speed does not depend on what the images show, and the device
machine has no dataset. Members and the compiled step come from the package
itself, so what is timed is exactly what ``jax-translate sweep`` runs.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.runtime import flops
from jax_translate.configure import resolve
from jax_translate.data import synthetic
from jax_translate.data.dataset import SliceSet
from jax_translate.images import image_shape
from jax_translate.runtime import engine
from jax_translate.images import model_image_shape
from jax_translate.training.members import build_members
from jax_translate.training.methods import Method


def synthetic_slices(size: str = "64", n_patients: int = 50, per_patient: int = 60,
                     seed: int = 0) -> SliceSet:
    """Enough slices for 700-image domains at any ratio, from disjoint patients
    (the library's synthetic slices at ``size``)."""
    return synthetic.ellipse_slices(n_patients, per_patient, image_shape(size), seed)


def sweep_config(method: str, n_members: int, preset: str, size: str, precision: str = "fp32",
                 overrides: dict | None = None):
    """An N-member config of ``preset``; ``overrides`` (run.py's --upscale etc.) on top."""
    ratios = tuple(float(r) for r in np.round(np.linspace(0, 1, n_members), 6))
    return resolve(method, preset, size=size, target_tumor_ratios=ratios, steps=10**6,
                       precision=precision, **(overrides or {}))


def flops_per_member_step(method: str, preset: str, size: str, slices: SliceSet,
                          overrides: dict | None = None) -> float:
    """FLOPs of one member's training step, counted from the layer shapes (:mod:`flops`).

    Not from XLA's cost analysis: a GPU program hides its convolutions in
    cuDNN calls that the analysis does not count (0.1 GFLOP for a 4.3 GFLOP
    step on an H100), and the CPU count of the paper-sized step reported
    3.6 GFLOP for ~1,060 (issue 11). The analytic count is within 4% of XLA's
    CPU count of the loop-free cpu-preset step for every method.
    """
    cfg = sweep_config(method, 1, preset, size, overrides=overrides)
    return flops.member_step_flops(cfg, model_image_shape(cfg, slices.t1.shape))


def _sweep(method: str, n_members: int, preset: str, size: str, slices: SliceSet,
           conv_impl: str = "xla", precision: str = "fp32", overrides: dict | None = None):
    """(method, shared data, stacked initial states, member data) of an N-member sweep."""
    m = Method(sweep_config(method, n_members, preset, size, precision, overrides),
               conv_impl=conv_impl)
    shared, members = build_members(m.cfg, slices)
    states = engine.init_states(m, np.zeros(n_members, int),
                                model_image_shape(m.cfg, slices.t1.shape))
    return m, shared, states, members


def compile_sweep(method: str, n_members: int, axis: str, k: int, slices: SliceSet,
                  preset: str = "cpu", size: str = "64", conv_impl: str = "xla",
                  precision: str = "fp32", overrides: dict | None = None):
    """(compiled step, shared, states, members, row): an N-member sweep's K-step program,
    compiled, and the row that describes it (its compile time and memory)."""
    m, shared, states, members = _sweep(method, n_members, preset, size, slices, conv_impl,
                                        precision, overrides)
    t0 = time.perf_counter()
    step = engine.SweepStep(m, k, axis).compile(shared, states, members)
    row = {"method": method, "members": n_members, "member_axis": axis,
           "conv_impl": conv_impl, "precision": precision, "steps_per_call": k,
           "compile_s": time.perf_counter() - t0, "memory_bytes": step.memory_bytes()}
    return step, shared, states, members, row


def time_calls(step, shared, states, members, min_seconds: float):
    """(states, calls, seconds): calls of ``step`` after a warm-up call, until at least
    ``min_seconds`` and 2 calls have passed, each waited for."""
    states, _ = step(shared, states, members)  # warm-up
    jax.block_until_ready(states)
    calls, t0 = 0, time.perf_counter()
    while True:
        states, _ = step(shared, states, members)
        calls += 1
        jax.block_until_ready(states)
        if time.perf_counter() - t0 >= min_seconds and calls >= 2:
            return states, calls, time.perf_counter() - t0


def measure(method: str, n_members: int, axis: str, k: int, slices: SliceSet,
            preset: str = "cpu", size: str = "64", min_seconds: float = 3.0,
            conv_impl: str = "xla", precision: str = "fp32",
            overrides: dict | None = None) -> dict:
    """member-steps/s of the compiled sweep step, after a warm-up call."""
    step, shared, states, members, row = compile_sweep(
        method, n_members, axis, k, slices, preset, size, conv_impl, precision, overrides)
    _, calls, seconds = time_calls(step, shared, states, members, min_seconds)
    return {**row, "member_steps_per_s": calls * k * n_members / seconds}


def matmul_peak_flops(n: int | None = None, repeats: int = 10) -> float:
    """Measured FLOP/s of a large float32 matmul at the default precision.

    The default precision is what training uses (on GPUs it allows TF32), so
    utilisation compares like with like.
    """
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    a, b = (jax.random.normal(key, (n, n), jnp.float32) for key in keys)
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times))
