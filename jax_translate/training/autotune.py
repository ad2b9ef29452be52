"""``member_axis='auto'`` that measures: compile the candidates, time them, keep the fastest.

Why measure: which strategy wins depends on the model size and the card. On
one H200 (issue 11) vmap with batched-matmul convolutions ran the cpu
preset's 11 members at 6.5x a host loop, and the paper's at 0.91x the loop
with 62.5 GB of XLA memory, more than an H100's default pool. A fixed rule
cannot get both right.

The rules, in this order:
- a candidate whose XLA memory estimate exceeds ``MEMORY_FRACTION`` of the
  device's pool is not run (nor one that fails to compile or to run);
- the baseline (the host loop on one device; the static rule's choice on
  several) is kept unless another candidate is more than ``MARGIN`` faster,
  so ``auto`` is never slower than the loop beyond noise;
- if the baseline does not fit, the fastest candidate that fits wins.

Timings run on a copy of the states (the real ones are not advanced). The
decision is cached in ``autotune.json`` under the data directory, keyed by
backend, device kind and count, model, image shape, N, method, K and the
rest of the program's shape, so a rerun does not pay for it twice. On one
CPU device nothing is measured unless asked (``autotune='on'``): the loop
wins there by 2-8x (benchmarks/README.md). Several processes never measure:
each would have to make the same choice.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp

from jax_translate import io_utils
from jax_translate.training import engine
from jax_translate.catalog import SPECS

MARGIN = 0.10           # another strategy must beat the baseline by more than this
MEMORY_FRACTION = 0.9   # of the device's pool: room for the live states beside the copy
TIMED_CALLS = 3
CACHE_FILE = "autotune.json"


@dataclasses.dataclass(frozen=True)
class Candidate:
    member_axis: str
    conv_impl: str

    @property
    def label(self) -> str:
        return f"{self.member_axis}/{self.conv_impl}"


@dataclasses.dataclass
class Trial:
    candidate: Candidate
    memory_bytes: int | None = None
    member_steps_per_s: float | None = None
    error: str | None = None      # why it was not timed

    def to_json(self) -> dict:
        return {"strategy": self.candidate.label, "memory_bytes": self.memory_bytes,
                "member_steps_per_s": self.member_steps_per_s, "error": self.error}


@dataclasses.dataclass
class Choice:
    member_axis: str
    conv_impl: str
    compiled: engine.CompiledSweepStep | None  # the chosen step, when it was measured now
    record: dict              # what run.json keeps


def candidates(n_devices: int, conv_impl: str = "auto") -> list[Candidate]:
    """The strategies worth timing; the baseline first. ``conv_impl`` other than auto restricts them."""
    pool = [Candidate("vmap", "patches"), Candidate("vmap", "xla"), Candidate("map", "xla")]
    if n_devices == 1:
        pool.insert(0, Candidate("loop", "xla"))  # 'loop' runs on one device only
    return [c for c in pool if conv_impl in ("auto", c.conv_impl)]


def baseline(n_devices: int, conv_impl: str = "auto") -> Candidate:
    """What must be beaten: the loop on one device, else the static rule's choice."""
    if n_devices == 1 and conv_impl in ("auto", "xla"):
        return Candidate("loop", "xla")
    axis = engine.resolve_member_axis("auto", n_devices=n_devices)
    return Candidate(axis, engine.resolve_conv_impl(conv_impl, axis))


def should_measure(cfg, backend: str, n_devices: int, n_processes: int = 1) -> bool:
    if cfg.member_axis != "auto" or cfg.autotune == "off" or n_processes > 1:
        return False
    # CPUs keep the static rule unless asked: one device gets the measured-once loop
    # (benchmarks/), and several CPU devices are a test setting, not a machine to tune.
    return cfg.autotune == "on" or backend != "cpu"


def pick(trials: list[Trial], base: Candidate, margin: float = MARGIN) -> Candidate:
    """The fastest timed candidate, unless the baseline is within ``margin`` of it."""
    timed = [t for t in trials if t.member_steps_per_s]
    if not timed:
        return base
    best = max(timed, key=lambda t: t.member_steps_per_s)
    base_trial = next((t for t in timed if t.candidate == base), None)
    if base_trial is not None and best.member_steps_per_s <= (1 + margin) * base_trial.member_steps_per_s:
        return base
    return best.candidate


def memory_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries of a compiled program (XLA's estimate), if known."""
    try:
        m = compiled.memory_analysis()
        return int(m.argument_size_in_bytes + m.output_size_in_bytes
                   - m.alias_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # not every backend reports it
        return None


def device_memory_limit() -> int | None:
    """Bytes of the first device's pool (None where unknown, e.g. CPUs)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def measure(cands: list[Candidate], compile_fn: Callable[[Candidate], object],
            time_fn: Callable[[object], float], members: int, steps_per_call: int,
            memory_limit: int | None) -> tuple[list[Trial], dict]:
    """(trials, {candidate: compiled}); ``time_fn(compiled)`` returns seconds per call."""
    trials, compiled_by = [], {}
    for cand in cands:
        trial = Trial(cand)
        trials.append(trial)
        try:
            compiled = compile_fn(cand)
        except Exception as err:  # noqa: BLE001 - e.g. out of memory while compiling
            trial.error = f"compile failed: {_first_line(err)}"
            continue
        trial.memory_bytes = memory_bytes(compiled)
        if memory_limit and trial.memory_bytes and trial.memory_bytes > MEMORY_FRACTION * memory_limit:
            trial.error = (f"does not fit: {trial.memory_bytes / 2**30:.1f} GiB > "
                           f"{MEMORY_FRACTION:.0%} of {memory_limit / 2**30:.1f} GiB")
            continue
        try:
            seconds = time_fn(compiled)
        except Exception as err:  # noqa: BLE001 - out of memory at run time
            trial.error = f"run failed: {_first_line(err)}"
            continue
        trial.member_steps_per_s = members * steps_per_call / seconds
        compiled_by[cand] = compiled
    return trials, compiled_by


def _first_line(err: Exception) -> str:
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"


def timer(args, calls: int = TIMED_CALLS) -> Callable[[object], float]:
    """Seconds per call of a compiled sweep step on a copy of ``args`` (after one warm-up call)."""
    shared, states, members = args

    def time_fn(compiled) -> float:
        copy = jax.tree_util.tree_map(jnp.copy, states)  # donated: the real states stay
        copy, _ = compiled(shared, copy, members)
        jax.block_until_ready(copy)
        t0 = time.perf_counter()
        for _ in range(calls):
            copy, _ = compiled(shared, copy, members)
        jax.block_until_ready(copy)
        return (time.perf_counter() - t0) / calls

    return time_fn


def cache_key(cfg, image_shape, n_members: int, n_devices: int, steps_per_call: int) -> str:
    device = jax.devices()[0]
    return json.dumps({
        "backend": device.platform, "device_kind": device.device_kind, "devices": n_devices,
        "jax": jax.__version__, "method": cfg.method, "model": dataclasses.asdict(cfg.model),
        "image_shape": list(image_shape), "members": n_members, "batch_size": cfg.batch_size,
        "steps_per_call": steps_per_call, "conv_impl": cfg.conv_impl,
        "precision": cfg.precision,
        "condgan_discriminator_first": cfg.condgan_discriminator_first,
        "pool_size": SPECS[cfg.method].pool_size(cfg),
    }, sort_keys=True)


def read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def choose(cfg, method, steps_per_call: int, mesh, args, image_shape, cache_path: Path | None,
           compile_fn=None, time_fn=None, memory_limit=None, log=print) -> Choice:
    """Measures (or reads from the cache) the strategy for ``cfg``; ``args`` = (shared, states, members).

    ``compile_fn``, ``time_fn`` and ``memory_limit`` default to the real
    ones; tests inject fakes.
    """
    n_devices = 1 if mesh is None else mesh.size
    n_members = jax.tree_util.tree_leaves(args[2])[0].shape[0]
    base = baseline(n_devices, cfg.conv_impl)
    key = cache_key(cfg, image_shape, n_members, n_devices, steps_per_call)
    cache = read_cache(cache_path) if cache_path else {}
    if key in cache:
        hit = cache[key]
        axis, impl = hit["choice"].split("/")
        log(f"autotune: {hit['choice']} (cached in {cache_path})")
        return Choice(axis, impl, None, {**hit, "cached": True})

    def compile_real(cand: Candidate):
        step = engine.SweepStep(dataclasses.replace(method, conv_impl=cand.conv_impl),
                                steps_per_call, cand.member_axis, mesh)
        return step.compile(*args)

    t0 = time.perf_counter()
    trials, compiled_by = measure(
        candidates(n_devices, cfg.conv_impl), compile_fn or compile_real, time_fn or timer(args),
        n_members, steps_per_call, device_memory_limit() if memory_limit is None else memory_limit)
    chosen = pick(trials, base)
    record = {"choice": chosen.label, "baseline": base.label, "margin": MARGIN,
              "trials": [t.to_json() for t in trials], "seconds": time.perf_counter() - t0}
    for t in trials:
        rate = f"{t.member_steps_per_s:.1f} member-steps/s" if t.member_steps_per_s else t.error
        log(f"autotune: {t.candidate.label}: {rate}")
    log(f"autotune: chose {chosen.label} (baseline {base.label}, kept unless beaten by "
        f">{MARGIN:.0%})")
    if cache_path and any(t.member_steps_per_s for t in trials):
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        io_utils.atomic_write_json(cache_path, {**read_cache(cache_path), key: record})
    return Choice(chosen.member_axis, chosen.conv_impl, compiled_by.get(chosen),
                  {**record, "cached": False})


def maybe_choose(cfg, method, steps_per_call: int, mesh, args, image_shape,
                 log=print) -> Choice | None:
    """The measured choice when ``cfg`` asks for one here (:func:`should_measure`), else None."""
    n_devices = 1 if mesh is None else mesh.size
    if not should_measure(cfg, jax.default_backend(), n_devices, jax.process_count()):
        return None
    from jax_translate.data.dataset import default_data_dir

    cache_dir = Path(cfg.data_dir).expanduser() if cfg.data_dir else default_data_dir()
    return choose(cfg, method, steps_per_call, mesh, args, image_shape,
                  cache_dir / CACHE_FILE, log=log)
