"""Speed, FLOPs and a profile of one sweep step: member-steps/s, counted FLOPs, XLA's cost
analysis and the top ops of a traced call, per member axis and precision.

    python benchmarks/speed_profile.py --preset paper --size 256x128 --upscale 1 \\
        --upsample resize --dropout 0 --members 11 --out benchmarks/results/gpu-h200-paper-profile.json

The default is issue 11's paper networks at 256x128 (resize convs, no dropout,
no upscale: the rows of ``h100-paper256-bf16``), cyclegan, 11 members, K=10
steps per call, rows in the order of ``--rows`` (what was never measured
first). Each row compiles the step that ``sweep`` runs (``engine.SweepStep``,
as ``run.py`` times it), then records:

- member-steps/s after a warm-up call (``--min-seconds`` of calls);
- FLOPs per member-step counted from the layer shapes (``runtime/flops.py``),
  the achieved FLOP/s and its share of the card's peaks and of a measured
  matmul;
- XLA's cost analysis of the compiled program (its ``flops`` and ``bytes
  accessed``; per member-step: divided by N under vmap; a scan body is counted
  once, so K does not multiply it). On GPUs it misses what runs in cuDNN;
- a profile of ``--profile-calls`` calls (``jax.profiler.trace``), parsed
  here: the ops that took the most time (GPU: the kernels on the device's
  streams; CPU: XLA's thunks), each one's share of all op time, their
  categories, and op time over wall time (how busy the device was; on a CPU,
  summed over XLA's threads, it can pass 100%).

Rows that would start after ``--budget-s`` are skipped (listed in
``skipped``); the JSON (and ``.md`` beside it) is rewritten after every row,
so a run cut off keeps what it measured.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax

import jax_side  # siblings: `python benchmarks/speed_profile.py` puts benchmarks/ on the path
from run import describe_machine, preset_overrides, versions

from jax_translate.runtime import engine
from jax_translate.runtime import flops as flops_lib

# Trace lines that repeat the stream's kernels (xprof's derived lines): never summed.
DERIVED_LINES = ("XLA Modules", "XLA Ops", "XLA TraceMe", "Steps", "Launch Stats",
                 "Framework Ops", "Framework Name Scope", "Source code", "TensorFlow Ops",
                 "TensorFlow Name Scope")
CATEGORIES = (
    ("matmul/conv", re.compile(r"gemm|cublas|cutlass|xmma|wgmma|nvjet|cudnn|convolution|"
                               r"(^|[._-])dot([._-]|$)|dot_general|conv_general|conv2d|implicit_convolve")),
    ("copy/transpose", re.compile(r"copy|transpose|memcpy|memset|dynamic[-_]update")),
    ("reduction", re.compile(r"reduc")),
    ("fusion", re.compile(r"fusion|loop_|input_|triton")),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="cyclegan")
    p.add_argument("--preset", default="paper")
    p.add_argument("--size", default="256x128")
    p.add_argument("--upscale", type=int, default=1)
    p.add_argument("--upsample", default="resize", choices=("resize", "transpose"))
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--members", type=int, default=11)
    p.add_argument("--steps-per-call", type=int, default=10)
    p.add_argument("--rows", default="vmap/patches/fp32,vmap/patches/bf16,loop/xla/bf16,"
                                      "loop/xla/fp32",
                   help="AXIS/CONV/PRECISION, comma-separated, measured in this order")
    p.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per row")
    p.add_argument("--profile-calls", type=int, default=1)
    p.add_argument("--top", type=int, default=12, help="ops listed per row")
    p.add_argument("--budget-s", type=float, default=0,
                   help="start no row after this many seconds (0: no limit)")
    p.add_argument("--row-estimate-s", type=float, default=60,
                   help="a row's time before one is measured (for --budget-s)")
    p.add_argument("--machine", default=None)
    p.add_argument("--out", type=Path, required=True, help="JSON to write (and .md beside it)")
    args = p.parse_args(argv)
    rows = []
    for spec in args.rows.split(","):
        parts = spec.split("/")
        if len(parts) != 3 or parts[0] not in engine.MEMBER_AXES or \
                parts[1] not in ("xla", "patches") or parts[2] not in ("fp32", "bf16"):
            p.error(f"--rows: {spec!r} is not AXIS/CONV/PRECISION (e.g. vmap/patches/bf16)")
        rows.append(tuple(parts))
    args.row_specs = rows
    return args


def cost_numbers(compiled) -> dict:
    """XLA's cost analysis of a compiled program: flops and bytes accessed (None if absent)."""
    try:
        cost = compiled.cost_analysis()
    except Exception as err:  # noqa: BLE001 - not every backend has one
        return {"error": f"{type(err).__name__}: {err}"}
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0] if cost else {}
    cost = cost or {}
    return {"flops": float(cost["flops"]) if "flops" in cost else None,
            "bytes_accessed": float(cost["bytes accessed"]) if "bytes accessed" in cost else None}


def category(name: str) -> str:
    lowered = name.lower()
    return next((label for label, pattern in CATEGORIES if pattern.search(lowered)), "other")


def exclusive_times(events: list[dict]) -> list[dict]:
    """The complete events with ``self_us``: their duration less that of the events nested in
    them on the same line (a CPU ``while`` thunk holds its body's ops)."""
    lines: dict[tuple, list[dict]] = {}
    for e in events:
        lines.setdefault((e["pid"], e.get("tid")), []).append(dict(e, self_us=float(e["dur"])))
    out = []
    for line in lines.values():
        line.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[dict] = []
        for e in line:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            if stack:
                stack[-1]["self_us"] -= e["dur"]
            stack.append(e)
        out += line
    return out


def trace_op_events(events: list[dict]) -> tuple[str, list[dict]]:
    """(where the ops were read, the complete events that are XLA ops, with ``self_us``).

    GPU: kernels on the device's stream lines (xprof's derived lines repeat them);
    without stream lines, every device line but the derived ones. CPU: the thunks on
    XLA's threads (its client's and the Eigen pool's), less waits and nested ops.
    """
    processes = {e["pid"]: e.get("args", {}).get("name", "") for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e.get("args", {}).get("name", "") for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}

    def line(e):
        return threads.get((e["pid"], e.get("tid")), "")

    complete = [e for e in events if e.get("ph") == "X" and "dur" in e and "ts" in e]
    devices = {pid for pid, name in processes.items() if name.startswith("/device:")}
    if devices:
        on_device = [e for e in complete if e["pid"] in devices]
        streams = [e for e in on_device if line(e).startswith("Stream")]
        if streams:
            return "device stream kernels", exclusive_times(streams)
        return "device lines", exclusive_times(
            [e for e in on_device if line(e) not in DERIVED_LINES])
    # "end: op" marks are not work; the client's wait holds the ops it waits for
    cpu = exclusive_times([e for e in complete if line(e).startswith("tf_XLA")
                           and not e["name"].startswith("end:")])
    return "CPU thunks", [e for e in cpu if not e["name"].startswith("ThunkExecutor")]


def summarise_ops(events: list[dict], calls: int, wall_s: float, top: int) -> dict:
    """The top ops by time (share of all op time), time per category, and device busy."""
    source, ops = trace_op_events(events)
    total = sum(e["self_us"] for e in ops)  # microseconds
    if not ops or total <= 0:
        return {"source": source, "error": "no op events in the trace"}
    groups: dict[str, dict] = {}
    for e in ops:
        name = e["name"]
        g = groups.setdefault(name, {"count": 0, "us": 0.0,
                                     "hlo_op": e.get("args", {}).get("hlo_op")})
        g["count"] += 1
        g["us"] += e["self_us"]
    by_category: dict[str, float] = {}
    for name, g in groups.items():
        label = category(f"{name} {g['hlo_op'] or ''}")
        by_category[label] = by_category.get(label, 0.0) + g["us"]
    ranked = sorted(groups.items(), key=lambda kv: -kv[1]["us"])
    return {
        "source": source, "calls": calls, "op_events": len(ops),
        "distinct_ops": len(groups), "op_ms_per_call": total / calls / 1e3,
        "wall_ms_per_call": 1e3 * wall_s / calls,
        "busy_fraction": (total / 1e6) / wall_s if wall_s > 0 else None,
        "categories": {k: v / total for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"name": name[:120], "category": category(f"{name} {g['hlo_op'] or ''}"),
                     "count": g["count"], "ms_per_call": g["us"] / calls / 1e3,
                     "share": g["us"] / total, "hlo_op": g["hlo_op"]}
                    for name, g in ranked[:top]],
    }


def read_trace(trace_dir: Path) -> list[dict]:
    files = sorted(Path(trace_dir).rglob("*.trace.json.gz"))
    if not files:
        raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}")
    with gzip.open(files[-1], "rt") as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def profile(step, shared, states, members, calls: int, top: int):
    """Traces ``calls`` calls of a compiled step; returns (states, the ops' summary)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with jax.profiler.trace(tmp):
            for _ in range(calls):
                states, _ = step(shared, states, members)
            jax.block_until_ready(states)
        wall = time.perf_counter() - t0
        summary = summarise_ops(read_trace(Path(tmp)), calls, wall, top)
    if jax.default_backend() != "cpu" and summary["source"] == "CPU thunks":
        # no device lines: the profiler could not read the device (e.g. CUPTI unavailable)
        summary = {"source": "none", "error": "the trace holds no device events"}
    return states, summary


def measure_row(args, axis: str, conv_impl: str, precision: str, slices, d: dict) -> dict:
    n, k = args.members, args.steps_per_call
    step, shared, states, members, row = jax_side.compile_sweep(
        args.method, n, axis, k, slices, args.preset, args.size, conv_impl, precision,
        args.overrides)
    cost = cost_numbers(step)
    # a loop's program is one member's; vmap's (and map's) holds all N
    per_program = 1 if axis == "loop" else n
    if cost.get("flops") is not None:
        cost["flops_per_member_step"] = cost["flops"] / per_program
    if cost.get("bytes_accessed") is not None:
        cost["bytes_per_member_step"] = cost["bytes_accessed"] / per_program
    row["xla_cost"] = cost
    states, calls, seconds = jax_side.time_calls(step, shared, states, members,
                                                 args.min_seconds)
    row["member_steps_per_s"] = calls * k * n / seconds
    row["seconds_per_call"] = seconds / calls
    flops = d["flops_per_member_step"]
    row["achieved_flops_per_s"] = flops * row["member_steps_per_s"]
    row["utilisation"] = flops_lib.utilisation(flops, row["member_steps_per_s"], d["peak_flops"])
    if cost.get("flops_per_member_step"):
        row["xla_over_counted_flops"] = cost["flops_per_member_step"] / flops
    try:
        states, row["profile"] = profile(step, shared, states, members, args.profile_calls,
                                         args.top)
    except Exception as err:  # noqa: BLE001 - a profile that fails leaves the row's numbers
        row["profile"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    return row


def markdown(d: dict) -> str:
    peaks = ", ".join(f"{k} {v / 1e12:.1f}" for k, v in d.get("peak_flops", {}).items())
    lines = [f"# Sweep step speed, FLOPs and profile: {d['machine']}", "",
             f"`{d['command']}`", "",
             f"Backend {d['backend']}; versions {d['versions']}; {d['method']}, model preset "
             f"`{d['model']['preset']}` at {d['model']['size']} (overrides "
             f"{d['model']['overrides']}), N={d['members']}, K={d['steps_per_call']} steps per "
             f"call. Counted FLOPs per member-step (runtime/flops.py): "
             f"**{d['flops_per_member_step'] / 1e9:.2f} GFLOP**. Peaks (TFLOP/s): {peaks}.", "",
             "| strategy | precision | member-steps/s | x fp32 | TFLOP/s (counted) | utilisation "
             "| XLA GFLOP / member-step | XLA / counted | compile s | memory GB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    fp32 = {(r["member_axis"], r["conv_impl"]): r["member_steps_per_s"] for r in d["rows"]
            if r["precision"] == "fp32"}
    for r in d["rows"]:
        base = fp32.get((r["member_axis"], r["conv_impl"]))
        ratio = f"{r['member_steps_per_s'] / base:.2f}" if base and r["precision"] != "fp32" \
            else "-"
        util = " / ".join(f"{k} {100 * v:.1f}%" for k, v in r["utilisation"].items())
        xla = r["xla_cost"].get("flops_per_member_step")
        xla_s = f"{xla / 1e9:.2f}" if xla else "-"
        over = f"{r['xla_over_counted_flops']:.2f}" if r.get("xla_over_counted_flops") else "-"
        mem = f"{r['memory_bytes'] / 2**30:.1f}" if r.get("memory_bytes") else "-"
        lines.append(f"| {r['member_axis']}/{r['conv_impl']} | {r['precision']} | "
                     f"{r['member_steps_per_s']:.2f} | {ratio} | "
                     f"{r['achieved_flops_per_s'] / 1e12:.2f} | {util} | {xla_s} | {over} | "
                     f"{r['compile_s']:.1f} | {mem} |")
    for r in d["rows"]:
        prof = r.get("profile", {})
        title = f"{r['member_axis']}/{r['conv_impl']}/{r['precision']}"
        if "error" in prof:
            lines += ["", f"Profile of {title}: {prof['error']}"]
            continue
        busy = f"{100 * prof['busy_fraction']:.0f}%" if prof.get("busy_fraction") else "-"
        cats = ", ".join(f"{k} {100 * v:.0f}%" for k, v in prof["categories"].items())
        lines += ["", f"Profile of {title} ({prof['source']}, {prof['calls']} call(s) of "
                  f"{r['steps_per_call']} steps): {prof['op_ms_per_call']:.1f} ms of ops per "
                  f"call in {prof['wall_ms_per_call']:.1f} ms of wall time (busy {busy}); "
                  f"{prof['distinct_ops']} distinct ops. By category: {cats}.", "",
                  "| op | category | count | ms per call | share of op time |",
                  "|---|---|---|---|---|"]
        for op in prof["top_ops"]:
            name = op["name"].replace("|", "/")
            if op.get("hlo_op") and op["hlo_op"] not in name:
                name += f" ({op['hlo_op']})"
            lines.append(f"| `{name}` | {op['category']} | {op['count']} | "
                         f"{op['ms_per_call']:.2f} | {100 * op['share']:.1f}% |")
    if d["skipped"]:
        lines += ["", "Skipped: " + "; ".join(d["skipped"])]
    return "\n".join(lines) + "\n"


def save(d: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(d, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(d))


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    args.overrides = preset_overrides(args)
    cfg = jax_side.sweep_config(args.method, 1, args.preset, args.size, overrides=args.overrides)
    slices = jax_side.synthetic_slices(args.size)
    d = {"machine": args.machine or describe_machine(), "backend": jax.default_backend(),
         "versions": versions(), "method": args.method,
         "model": {"preset": args.preset, "size": args.size, "overrides": args.overrides},
         "command": "python " + " ".join(sys.argv),
         "members": args.members, "steps_per_call": args.steps_per_call,
         "flops_per_member_step": jax_side.flops_per_member_step(
             args.method, args.preset, args.size, slices, args.overrides),
         "rows": [], "skipped": []}
    d["model"]["overrides"] = json.loads(json.dumps(d["model"]["overrides"], default=str))
    d["model"]["upscale"] = cfg.upscale
    d["matmul_peak_flops"] = jax_side.matmul_peak_flops()
    d["peak_flops"] = {"measured": d["matmul_peak_flops"],
                       **(flops_lib.peak_flops(jax.devices()[0].device_kind) or {})}
    print(f"{d['machine']} | {d['backend']} | {args.method} {args.preset} {args.size} "
          f"N={args.members} K={args.steps_per_call} | "
          f"{d['flops_per_member_step'] / 1e9:.2f} GFLOP per member-step (counted)", flush=True)
    save(d, args.out)
    row_seconds = args.row_estimate_s
    for axis, conv_impl, precision in args.row_specs:
        label = f"{axis}/{conv_impl}/{precision}"
        elapsed = time.perf_counter() - t_start
        if args.budget_s and elapsed + row_seconds > args.budget_s:
            d["skipped"].append(f"{label}: would end after --budget-s {args.budget_s:g} "
                                f"({elapsed:.0f} s spent, a row takes ~{row_seconds:.0f} s)")
            print(d["skipped"][-1], flush=True)
            continue
        t0 = time.perf_counter()
        try:
            row = measure_row(args, axis, conv_impl, precision, slices, d)
        except Exception as err:  # noqa: BLE001 - e.g. out of memory: keep the other rows
            d["skipped"].append(f"{label}: {type(err).__name__}: "
                                f"{str(err).splitlines()[0][:200]}")
            print(d["skipped"][-1], flush=True)
            save(d, args.out)
            continue
        row["row_s"] = time.perf_counter() - t0
        row_seconds = max(row_seconds if d["rows"] else 0, row["row_s"])
        d["rows"].append(row)
        prof = row.get("profile", {})
        print(f"{label}: {row['member_steps_per_s']:.2f} member-steps/s, compile "
              f"{row['compile_s']:.1f} s, XLA {row['xla_cost'].get('flops_per_member_step') or 0:.3g} "
              f"FLOP/member-step, profile: "
              + (prof.get("error") or f"{len(prof['top_ops'])} top ops, busy "
                 f"{100 * (prof.get('busy_fraction') or 0):.0f}%"), flush=True)
        save(d, args.out)
    d["wall_s"] = time.perf_counter() - t_start
    save(d, args.out)
    print(markdown(d), flush=True)
    return d


if __name__ == "__main__":
    main()
