"""Member-axis strategies side by side: member-steps/s of one sweep step.

For each method and strategy (vmap, map, loop), trains N members of the
chosen model preset on simulated 64x64 data for a few steps after compiling,
and reports member-steps/s, compile seconds and the ratio to the host loop.
All strategies run in the same process, one after another, on the same data.

    python benchmarks/member_axis.py --members 11 --methods cyclegan,gan,condgan,l1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jax_translate.config import make_config
from jax_translate.data import dataset
from jax_translate.training import engine
from jax_translate.training.members import build_members
from jax_translate.training.methods import Method


def measure(method: str, n_members: int, axis: str, k: int, splits, preset: str,
            min_seconds: float) -> dict:
    ratios = tuple(np.round(np.linspace(0, 1, n_members), 4))
    cfg = make_config(method, preset, target_tumor_ratios=ratios, steps=10**6)
    m = Method(cfg)
    shared, members = build_members(cfg, splits["train"])
    states = engine.init_states(m, np.zeros(n_members, int), splits["train"].t1.shape[1:])
    t0 = time.perf_counter()
    step = engine.make_sweep_step(m, k, axis).lower(shared, states, members).compile()
    compile_s = time.perf_counter() - t0
    states, _ = step(shared, states, members)            # warm-up
    jax.block_until_ready(states)
    calls, t0 = 0, time.perf_counter()
    while True:
        states, _ = step(shared, states, members)
        calls += 1
        jax.block_until_ready(states)
        if time.perf_counter() - t0 >= min_seconds and calls >= 2:
            break
    seconds = time.perf_counter() - t0
    return {"method": method, "members": n_members, "member_axis": axis, "steps_per_call": k,
            "member_steps_per_s": calls * k * n_members / seconds, "compile_s": compile_s}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", default="11")
    p.add_argument("--methods", default="cyclegan,gan,condgan,l1")
    p.add_argument("--axes", default="loop,vmap,map")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps-per-call", type=int, default=0, help="0: auto for the backend")
    p.add_argument("--min-seconds", type=float, default=5.0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="JSON file to write")
    args = p.parse_args(argv)
    splits = dataset.load("64", args.data_dir)
    k = engine.resolve_steps_per_call(args.steps_per_call)
    rows = []
    for method in args.methods.split(","):
        for n in map(int, args.members.split(",")):
            for axis in args.axes.split(","):
                row = measure(method, n, axis, k, splits, args.preset, args.min_seconds)
                rows.append(row)
                print(json.dumps(row), flush=True)
    for row in rows:
        base = next(r for r in rows if r["method"] == row["method"]
                    and r["members"] == row["members"] and r["member_axis"] == "loop")
        row["ratio_to_loop"] = row["member_steps_per_s"] / base["member_steps_per_s"]
    result = {"machine": f"{platform.processor() or platform.machine()}, {jax.device_count()} "
                         f"{jax.default_backend()} device(s)",
              "backend": jax.default_backend(), "jax": jax.__version__, "preset": args.preset,
              "auto_member_axis": engine.resolve_member_axis("auto"), "command": " ".join(sys.argv),
              "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'method':9s} {'N':>3s} {'axis':5s} {'member-steps/s':>15s} {'x loop':>7s} {'compile s':>9s}")
    for r in rows:
        print(f"{r['method']:9s} {r['members']:3d} {r['member_axis']:5s} "
              f"{r['member_steps_per_s']:15.2f} {r['ratio_to_loop']:7.2f} {r['compile_s']:9.1f}")


if __name__ == "__main__":
    main()
