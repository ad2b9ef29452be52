"""Before a long run starts: its projected wall time and whether the device can hold it.

``reproduce`` calls :func:`check` for presets that set ``preflight`` (the
``paper`` preset: 4 x 11 members x 140,000 steps at 512x256), before it
writes anything. The memory is XLA's estimate (``memory_analysis``) of the
compiled sweep step, lowered on a stand-in training split of the same image
size (no dataset needed; frozen networks such as cyclegan-cc's segmenters as
shapes, not trained); the ETA is the analytic FLOP count
(:mod:`jax_translate.runtime.flops`) over an assumed throughput.
"""

from __future__ import annotations

import jax
import numpy as np

from jax_translate.data.dataset import SliceSet
from jax_translate.errors import UsageError
from jax_translate.images import image_shape, model_image_shape
from jax_translate.jobs.run_folder import state_template
from jax_translate.runtime import engine, eta
from jax_translate.runtime.flops import member_step_flops
from jax_translate.training.members import build_members

# What the loop reached at the paper's size on one H200 (issue 11: 47.1
# member-steps/s x 1.06 TFLOP per cyclegan step at 256x128, ~50 TFLOP/s).
ASSUMED_FLOPS_PER_S = 50e12
# Of the device's pool: room for what XLA's estimate leaves out (the runtime's own buffers).
MEMORY_FRACTION = 0.9


def stand_in_train(cfg) -> SliceSet:
    """Zeros of ``cfg``'s image size, 4 x max(n_source, n_target) slices of 30 patients,
    half of them tumor: enough for disjoint source and target patients at any ratio.

    The member data only depends on the split's size and labels, and only the
    slices some member uses go to the device, as with the real train split.
    """
    n = 4 * max(cfg.n_source, cfg.n_target)
    h, w = image_shape(cfg.size)
    zeros = np.zeros((n, h, w), np.float32)
    # every modality, so any source and target have their stand-ins
    return SliceSet(flair=zeros, t1=zeros, t2=zeros, t1c=zeros, tumor_mask=zeros.astype(np.uint8),
                    brain_mask=np.ones((n, h, w), np.uint8),
                    label=(np.arange(n) % 2).astype(np.int32),
                    patient_id=(np.arange(n) // 2 % 30).astype(np.int32),  # both labels each
                    slice_index=np.arange(n, dtype=np.int32))


def sweep_step(cfg):
    """(``cfg``'s sweep step as ``sweep`` would run it on one device here
    (``engine.plan``), the arguments it is compiled for), from the stand-in
    split; states and frozen networks as shapes."""
    train = stand_in_train(cfg)
    shared, members = build_members(cfg, train, segmenters=False)
    states = state_template(cfg, model_image_shape(cfg, train.flair.shape))
    return engine.plan(cfg, n_devices=1).sweep_step(cfg), (shared, states, members)


def step_memory_bytes(cfg) -> int | None:
    """XLA's estimate of the compiled sweep step of ``cfg`` (None where not reported)."""
    step, args = sweep_step(cfg)
    return step.compile(*args).memory_bytes()


def device_memory_limit() -> int | None:
    """Bytes of the first device's pool (None where unknown, e.g. CPUs)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend reports it
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def projected_seconds(configs, flops_per_s: float = ASSUMED_FLOPS_PER_S) -> float:
    """Training time of every config at ``flops_per_s`` (analytic FLOPs per member-step)."""
    total = 0.0
    for cfg in configs:
        shape = model_image_shape(cfg, image_shape(cfg.size))
        total += cfg.steps * len(cfg.members) * member_step_flops(cfg, shape)
    return total / flops_per_s


def check(configs, log=print, memory_limit: int | None = None,
          flops_per_s: float = ASSUMED_FLOPS_PER_S) -> dict:
    """Prints the ETA and the memory each method's step needs; raises UsageError if one
    exceeds ``MEMORY_FRACTION`` of the device's pool (``memory_limit``
    bytes; default: the first device's, unknown on CPUs)."""
    configs = list(configs)
    seconds = projected_seconds(configs, flops_per_s)
    log(f"preflight: {len(configs)} sweeps, about {eta.format_duration(seconds)} of training "
        f"at an assumed {flops_per_s / 1e12:.0f} TFLOP/s (the loop's rate on one H200)")
    limit = device_memory_limit() if memory_limit is None else memory_limit
    needs = {}
    for cfg in configs:
        needs[cfg.method] = step_memory_bytes(cfg)
        if needs[cfg.method] is None:
            continue
        pool = f" of a {limit / 2**30:.1f} GiB pool" if limit else " (device pool unknown)"
        log(f"preflight: {cfg.method}: {len(cfg.members)} members need "
            f"{needs[cfg.method] / 2**30:.2f} GiB{pool}")
        if limit and needs[cfg.method] > MEMORY_FRACTION * limit:
            raise UsageError(
                f"{cfg.method}'s step needs {needs[cfg.method] / 2**30:.1f} GiB, more than "
                f"{MEMORY_FRACTION:.0%} of this device's {limit / 2**30:.1f} GiB; use fewer "
                f"members (fewer ratios or seeds), more devices, or --set member_axis=loop")
    return {"projected_training_seconds": seconds, "memory_bytes": needs,
            "memory_limit": limit}
