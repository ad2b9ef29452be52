"""How fast is a sweep? Member-axis strategies, PyTorch eager and the machine's peak.

One command, everything side by side in one process (see README.md here):

1. member-steps/s of the sweep step per strategy (vmap, map, loop) and N;
2. PyTorch eager training the same members one after another (the
   reference implementation's way), and the JAX/PyTorch ratio at the largest N
   with the strategy ``auto`` picks;
3. FLOPs per member-step counted from the layer shapes (``jax_translate.runtime.flops``),
   over time, against the card's TF32 and bf16 peaks and a measured matmul
   peak;
4. compile time and XLA's memory estimate per strategy and N;
   with ``--precisions fp32,bf16`` every strategy in both precisions, side
   by side (bf16 rows are labelled ``axis/conv/bf16``, with their speed-up
   over the same strategy in fp32);
5. with the paper preset, the projected wall time of the paper's protocol
   (4 methods x 11 ratios x 140k steps) at the fastest measured strategy.

Writes ``--out`` (JSON) and the same name with ``.md`` (a table).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jax_side  # its sibling: `python benchmarks/run.py` puts benchmarks/ on the path

from jax_translate.catalog import PAPER_METHODS
from jax_translate.configure import resolve
from jax_translate.runtime import engine, eta
from jax_translate.runtime import flops as flops_lib


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="cyclegan", help="comma-separated")
    p.add_argument("--members", default="1,2,4,8,11,22", help="comma-separated N")
    p.add_argument("--strategies", default="loop,vmap,map",
                   help="member axis[/conv impl], e.g. 'loop,vmap/xla,vmap/patches' "
                        "(impl defaults to what 'auto' picks for that axis)")
    p.add_argument("--only", default="",
                   help="restrict strategies to some N, e.g. 'map=11;loop=1,11,22', or one "
                        "precision's, e.g. 'map/xla/bf16=' (none) (default: all at every N)")
    p.add_argument("--precisions", default="fp32",
                   help="comma-separated: fp32, bf16 (convs and matmuls on bfloat16 operands)")
    p.add_argument("--preset", default="cpu", help="model preset (cpu, paper, tiny)")
    p.add_argument("--size", default="64", help="image size (64, 128, 256x128)")
    p.add_argument("--upscale", type=int, default=None,
                   help="override the preset's upscale (the paper preset trains at 2x)")
    p.add_argument("--upsample", default=None, choices=("resize", "transpose"),
                   help="override the preset's upsampling")
    p.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    p.add_argument("--steps-per-call", type=int, default=0, help="0: auto for the backend")
    p.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per row")
    p.add_argument("--torch", default="auto", choices=("auto", "cpu", "cuda", "none"),
                   help="device of the PyTorch baseline (auto: JAX's backend)")
    p.add_argument("--compare-members", type=int, default=11,
                   help="N at which JAX (auto strategy) is compared with PyTorch")
    p.add_argument("--torch-steps", type=int, default=20, help="timed steps per torch member")
    p.add_argument("--budget-s", type=float, default=0,
                   help="skip rows once this many seconds have passed (0: no limit)")
    p.add_argument("--machine", default=None, help="name for the results (default: guessed)")
    p.add_argument("--out", default=None, help="JSON to write (and .md beside it)")
    return p.parse_args(argv)


def describe_machine() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    return f"{getattr(dev, 'device_kind', dev.platform)} x{jax.device_count()}"


def versions() -> dict:
    out = {"python": platform.python_version(), "jax": jax.__version__}
    for name in ("jaxlib", "flax", "optax", "torch"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


class Results:
    """Accumulates rows and rewrites the JSON after each one (a killed run keeps them)."""

    def __init__(self, args):
        self.args, self.t0 = args, time.perf_counter()
        cfg = jax_side.sweep_config("cyclegan", 1, args.preset, args.size,
                                    overrides=args.overrides)
        self.data = {
            "machine": args.machine or describe_machine(),
            "backend": jax.default_backend(),
            "versions": versions(),
            "model": {"preset": args.preset, "size": args.size, "upscale": cfg.upscale,
                      "overrides": dict(args.overrides),
                      "config": dataclasses.asdict(cfg.model)},
            "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
            "auto_strategy": strategy_label(_plan().member_axis),
            "steps_per_call": _plan(steps_per_call=args.steps_per_call).steps_per_call,
            "members": [int(n) for n in args.members.split(",")],
            "precisions": args.precisions.split(","),
            "member_steps_per_s": {}, "compile_s": {}, "memory_bytes": {},
            "torch_member_steps_per_s": {}, "jax_over_torch": {}, "flops_per_member_step": {},
            "flops_utilisation": {}, "torch_flops_utilisation": {}, "skipped": [],
            "rows": [],
        }

    def over_budget(self) -> bool:
        b = self.args.budget_s
        return bool(b) and time.perf_counter() - self.t0 > b

    def save(self):
        if self.args.out:
            out = Path(self.args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(self.data, indent=2) + "\n")
            out.with_suffix(".md").write_text(markdown(self.data))


def _plan(**runtime_fields) -> engine.Plan:
    """What ``sweep`` decides here for these runtime fields (``engine.plan``; it reads no
    other field, so any method and preset do)."""
    return engine.plan(resolve("cyclegan", "tiny", **{"steps": 10**9, **runtime_fields}))


def strategy_label(spec: str) -> str:
    """'vmap' -> 'vmap/patches' (the conv impl auto picks); 'vmap/xla' unchanged."""
    axis, _, impl = spec.partition("/")
    return f"{axis}/{_plan(member_axis=axis, conv_impl=impl or 'auto').conv_impl}"


def _only_key(spec: str) -> str:
    """'vmap' -> 'vmap/patches' (every precision); 'map/xla/bf16' -> 'map/xla/bf16' and
    'vmap/patches/fp32' -> 'vmap/patches/fp32' (that precision only)."""
    parts = spec.split("/")
    precision = parts.pop() if parts[-1] in ("fp32", "bf16") else None
    label = strategy_label("/".join(parts))
    return label if precision is None else f"{label}/{precision}"


def parse_only(spec: str) -> dict[str, set[int]]:
    """--only 'map=11;vmap/patches/fp32=' -> {'map/xla': {11}, 'vmap/patches/fp32': set()}."""
    return {_only_key(part): {int(n) for n in ns.split(",") if n}
            for part, _, ns in (item.partition("=") for item in spec.split(";") if item)}


def allowed(only: dict[str, set[int]], strategy: str, precision: str, n: int) -> bool:
    """Whether --only keeps this row: a precision's own entry first, then the strategy's."""
    members = only.get(f"{strategy}/{precision}", only.get(strategy))
    return members is None or n in members


def run(args) -> dict:
    res = Results(args)
    d = res.data
    k = d["steps_per_call"]
    slices = jax_side.synthetic_slices(args.size)
    print(f"{d['machine']} | backend {d['backend']} | auto: {d['auto_strategy']}, "
          f"K={k} | preset {args.preset} {args.size}", flush=True)
    d["matmul_peak_flops"] = jax_side.matmul_peak_flops()
    d["peak_flops"] = {"measured": d["matmul_peak_flops"],
                       **(flops_lib.peak_flops(jax.devices()[0].device_kind) or {})}
    print("peaks (TFLOP/s): " + ", ".join(f"{k} {v / 1e12:.1f}" for k, v in d["peak_flops"].items()),
          flush=True)
    strategies = [strategy_label(x) for x in args.strategies.split(",")]
    only = parse_only(args.only)
    torch_device = None if args.torch == "none" else (
        ("cpu" if d["backend"] == "cpu" else "cuda") if args.torch == "auto" else args.torch)
    n_compare = args.compare_members

    for method in args.methods.split(","):
        for key in ("member_steps_per_s", "compile_s", "memory_bytes"):
            d[key][method] = {}
        flops = jax_side.flops_per_member_step(method, args.preset, args.size, slices,
                                               args.overrides)
        d["flops_per_member_step"][method] = flops
        if torch_device:  # first: cheap, and the comparison must not fall to the budget
            rate = _torch_rate(method, n_compare, args, slices, torch_device)
            d["torch_member_steps_per_s"][method] = {"members": n_compare,
                                                     "device": torch_device, "value": rate}
            print(f"{method}: PyTorch eager ({torch_device}) {rate:.2f} member-steps/s "
                  f"at N={n_compare}", flush=True)
        for n, precision, strategy in ((n, p, s) for n in d["members"]
                                       for p in d["precisions"] for s in strategies):
            label = strategy if precision == "fp32" else f"{strategy}/{precision}"
            if not allowed(only, strategy, precision, n):
                continue
            if res.over_budget():
                d["skipped"].append(f"{method} N={n} {label}: over --budget-s")
                continue
            axis, impl = strategy.split("/")
            try:
                row = jax_side.measure(method, n, axis, k, slices, args.preset, args.size,
                                       args.min_seconds, impl, precision, args.overrides)
            except Exception as err:  # e.g. out of memory: keep the other rows
                d["skipped"].append(f"{method} N={n} {label}: {type(err).__name__}: "
                                    f"{str(err).splitlines()[0][:200]}")
                print(d["skipped"][-1], flush=True)
                continue
            row["strategy"], row["ratio_to_loop"] = label, None
            d["rows"].append(row)
            for key in ("member_steps_per_s", "compile_s", "memory_bytes"):
                d[key][method].setdefault(label, {})[str(n)] = row[key]
            print(json.dumps(row), flush=True)
            res.save()
        _summarise(d, method, n_compare)
        res.save()
    _project_protocol(d, args)
    d["wall_s"] = time.perf_counter() - res.t0
    res.save()
    print(markdown(d))
    return d


def _summarise(d, method, n):
    """Ratios to the loop; auto vs PyTorch and vs the loop at N=n; utilisation."""
    rates = d["member_steps_per_s"][method]
    loop = next((r for label, r in rates.items()
                 if label.startswith("loop/") and label.count("/") == 1), {})  # the fp32 loop
    for row in d["rows"]:
        base = loop.get(str(row["members"]))
        if row["method"] == method and base:
            row["ratio_to_loop"] = row["member_steps_per_s"] / base
        fp32 = rates.get(row["strategy"].rsplit("/", 1)[0], {}).get(str(row["members"]))
        if row["method"] == method and row.get("precision", "fp32") != "fp32" and fp32:
            row["ratio_to_fp32"] = row["member_steps_per_s"] / fp32
    auto = rates.get(d["auto_strategy"], {}).get(str(n))
    flops, peaks = d["flops_per_member_step"].get(method), d["peak_flops"]
    best = max((r[str(n)] for r in rates.values() if str(n) in r), default=None)
    if best:
        d.setdefault("best_member_steps_per_s", {})[method] = {"members": n, "value": best}
        if flops:
            d.setdefault("best_flops_utilisation", {})[method] = flops_lib.utilisation(
                flops, best, peaks)
    if auto and loop.get(str(n)):
        d.setdefault("auto_over_loop", {})[method] = {"members": n, "value": auto / loop[str(n)]}
    if auto and flops:
        d["flops_utilisation"][method] = flops_lib.utilisation(flops, auto, peaks)
    torch_rate = d["torch_member_steps_per_s"].get(method, {}).get("value")
    if torch_rate:
        if auto:
            d["jax_over_torch"][method] = auto / torch_rate
        if flops:
            d["torch_flops_utilisation"][method] = flops_lib.utilisation(flops, torch_rate, peaks)


def _project_protocol(d, args) -> None:
    """The paper's protocol (4 methods x 11 ratios x 140k steps) at the best measured rates."""
    best = {m: r["value"] for m, r in d.get("best_member_steps_per_s", {}).items()}
    if args.preset != "paper" or not best:
        return
    seconds = eta.protocol_seconds(best)
    missing = sorted(set(PAPER_METHODS) - set(best))
    d["paper_protocol"] = {"seconds": seconds, "methods_measured": sorted(best),
                           "methods_missing": missing, "protocol": eta.PAPER_PROTOCOL}
    print(f"paper protocol ({', '.join(sorted(best))} measured"
          + (f"; {', '.join(missing)} not included" if missing else "")
          + f"): about {eta.format_duration(seconds)} on this machine", flush=True)


def _torch_rate(method, n, args, slices, device) -> float:
    import torch

    import torch_baseline

    # Same threads as XLA's CPU client, which uses every core.
    torch.set_num_threads(os.cpu_count())
    cfg = jax_side.sweep_config(method, n, args.preset, args.size, overrides=args.overrides)
    if device == "cpu":
        err = torch_baseline.check_equivalent(cfg)
        if err > 1e-3:
            raise SystemExit(f"torch and JAX networks differ (max |diff| {err:.2e})")
    flair = (2 * slices.flair[:, None] - 1).astype(np.float32)
    t1 = (2 * slices.t1[:, None] - 1).astype(np.float32)
    return torch_baseline.member_steps_per_s(cfg, flair, t1, n, args.torch_steps, device)


def markdown(d: dict) -> str:
    lines = [f"# Sweep speed: {d['machine']}", "",
             f"`{d['command']}`", "",
             f"Backend {d['backend']}; versions {d['versions']}; model preset "
             f"`{d['model']['preset']}` at {d['model']['size']}; K={d['steps_per_call']} steps "
             f"per call; `auto` picks `{d['auto_strategy']}`. Peaks (TFLOP/s): "
             + ", ".join(f"{k} {v / 1e12:.1f}" for k, v in d.get("peak_flops", {}).items())
             + ".", "",
             "| method | N | strategy (axis/conv[/precision]) | member-steps/s | x loop (fp32) "
             "| x fp32 | compile s | XLA memory MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        ratio = f"{r['ratio_to_loop']:.2f}" if r.get("ratio_to_loop") else "-"
        over_fp32 = f"{r['ratio_to_fp32']:.2f}" if r.get("ratio_to_fp32") else "-"
        mem = f"{r['memory_bytes'] / 2**20:.0f}" if r.get("memory_bytes") else "-"
        lines.append(f"| {r['method']} | {r['members']} | {r['strategy']} | "
                     f"{r['member_steps_per_s']:.2f} | {ratio} | {over_fp32} | "
                     f"{r['compile_s']:.1f} | {mem} |")
    if d["torch_member_steps_per_s"]:
        lines += ["", f"JAX with `auto` ({d['auto_strategy']}) against PyTorch eager, members "
                  "one after another; utilisation is FLOPs per member-step (counted from the "
                  "layer shapes) times member-steps/s over each peak.", "",
                  "| method | N | JAX member-steps/s | PyTorch eager | JAX / PyTorch "
                  "| GFLOP per member-step | JAX utilisation | PyTorch utilisation |",
                  "|---|---|---|---|---|---|---|---|"]
        for method, t in d["torch_member_steps_per_s"].items():
            n = t["members"]
            jax_rate = d["member_steps_per_s"][method].get(d["auto_strategy"], {}).get(str(n))
            if jax_rate is None or method not in d["jax_over_torch"]:
                continue
            flops = d["flops_per_member_step"].get(method) or 0
            lines.append(
                f"| {method} | {n} | {jax_rate:.2f} | {t['value']:.2f} ({t['device']}) | "
                f"{d['jax_over_torch'][method]:.2f} | {flops / 1e9:.3f} | "
                f"{_percent(d['flops_utilisation'].get(method))} | "
                f"{_percent(d['torch_flops_utilisation'].get(method))} |")
    if d.get("best_member_steps_per_s"):
        lines += ["", "Fastest measured strategy per method; utilisation against each peak.", "",
                  "| method | N | member-steps/s | GFLOP per member-step | utilisation |",
                  "|---|---|---|---|---|"]
        for method, best in d["best_member_steps_per_s"].items():
            flops = d["flops_per_member_step"].get(method) or 0
            lines.append(f"| {method} | {best['members']} | {best['value']:.2f} | "
                         f"{flops / 1e9:.1f} | "
                         f"{_percent(d.get('best_flops_utilisation', {}).get(method))} |")
    if d.get("paper_protocol"):
        p = d["paper_protocol"]
        lines += ["", f"Paper protocol (4 methods x 11 ratios x 140,000 steps) at these rates: "
                  f"**{eta.format_duration(p['seconds'])}**"
                  + (f" without {', '.join(p['methods_missing'])}" if p["methods_missing"] else "")
                  + "."]
    if d["skipped"]:
        lines += ["", "Skipped: " + "; ".join(d["skipped"])]
    return "\n".join(lines) + "\n"


def _percent(utilisation: dict | None) -> str:
    """'tf32 10.1% / bf16 5.0% / measured 13.6%'."""
    if not utilisation:
        return "-"
    return " / ".join(f"{k} {100 * v:.1f}%" for k, v in utilisation.items())


def preset_overrides(args) -> dict:
    """What --upscale, --upsample and --dropout change in the preset (every call applies it)."""
    overrides = {}
    if args.upscale is not None:
        overrides["upscale"] = args.upscale
    changes = {k: v for k, v in (("upsample", args.upsample), ("dropout", args.dropout))
               if v is not None}
    if changes:  # fields of the preset's networks (configure.resolve merges them)
        overrides["model"] = changes
        if changes.get("dropout") == 0:
            overrides["test_dropout"] = False  # the paper preset's needs dropout
    return overrides


def main(argv=None):
    args = parse_args(argv)
    from jax_translate.config import PRECISIONS

    bad = set(args.precisions.split(",")) - set(PRECISIONS)
    if bad:
        raise SystemExit(f"error: unknown precision {sorted(bad)}; choose from {PRECISIONS}")
    args.overrides = preset_overrides(args)
    return run(args)


if __name__ == "__main__":
    main()
