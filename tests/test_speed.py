"""FLOP counts and the ETA (nothing is benchmarked)."""

import dataclasses
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jax_translate.runtime import flops
from jax_translate.configure import resolve
from jax_translate.model_config import MODEL_PRESETS
from jax_translate.models import build_discriminator, build_generator
from jax_translate.runtime import eta

PAPER = MODEL_PRESETS["paper"]


def test_paper_sized_forward_flops_match_the_audit():
    """docs/paper_protocol.md: ResNet-9 at 256x128 56.0 (resize) / 48.7 (transposed), PatchGAN 3.05."""
    assert flops.generator_forward_flops(PAPER, (256, 128)) / 1e9 == pytest.approx(55.98, abs=0.01)
    transposed = dataclasses.replace(PAPER, upsample="transpose")
    assert flops.generator_forward_flops(transposed, (256, 128)) / 1e9 == pytest.approx(48.73, abs=0.01)
    assert flops.discriminator_forward_flops(PAPER, (256, 128)) / 1e9 == pytest.approx(3.048, abs=0.001)
    # cyclegan: 6 trained G passes (x3), 4 trained D passes (x3), 2 D passes in G's loss (x2).
    cfg = resolve("cyclegan", "cpu", model=PAPER)
    expected = 3 * 6 * 55.977181184e9 + (3 * 4 + 2 * 2) * 3.04775168e9
    assert flops.member_step_flops(cfg, (256, 128)) == pytest.approx(expected)
    # The paper preset trains at 512x256 (upscale 2) with transposed convs: ~3.7 TFLOP.
    paper = resolve("cyclegan", "paper")
    assert flops.member_step_flops(paper, (512, 256)) / 1e12 == pytest.approx(3.71, abs=0.01)


@pytest.mark.parametrize("method,generator,discriminator", [
    ("cyclegan", {"train": 6}, {"input_grad": 2, "train": 4}),
    ("gan", {"train": 1}, {"input_grad": 1, "train": 2}),
    ("l1", {"train": 1}, {}),
])
def test_method_passes(method, generator, discriminator):
    passes = flops.method_passes(method)
    assert (passes.generator, passes.discriminator) == (generator, discriminator)
    first = flops.method_passes("condgan", discriminator_first=True)
    assert first.generator == {"train": 1, "forward": 1} and first.discriminator_channels == 2


def _xla_flops(module, x):
    """XLA's HLO cost analysis of the forward pass (of the lowered program: no compile,
    and parameter shapes only)."""
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
    cost = jax.jit(module.apply).lower(params, x).cost_analysis()
    return (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]


@pytest.mark.parametrize("upsample", ["resize", "transpose"])
def test_analytic_count_matches_xla_cost_analysis(upsample):
    """XLA counts the same convolutions (without taps on zero padding) plus the
    elementwise work, which is 1-3% of the cpu preset's forward pass at 64x64."""
    model = dataclasses.replace(MODEL_PRESETS["cpu"], upsample=upsample)
    image = jnp.zeros((1, 64, 64, 1))
    ours = flops.generator_forward_flops(model, (64, 64), count_padding=False)
    assert 1.0 <= _xla_flops(build_generator(model), image) / ours < 1.04
    for channels in (1, 2):
        ours = flops.discriminator_forward_flops(model, (64, 64), channels, count_padding=False)
        x = jnp.zeros((1, 64, 64, channels))
        assert 1.0 <= _xla_flops(build_discriminator(model), x) / ours < 1.04


def test_peak_lookup_and_utilisation():
    """peak_flops reads a device kind as JAX spells it: any case; the PCIe H100 gets its
    own row, not the SXM's that its name contains; a device the table lacks gets None,
    never another device's peak. Each row's dense bf16 peak is twice its TF32 (as on
    Ampere, Ada and Hopper): a mistyped row fails. utilisation is achieved FLOP/s over
    each peak given, skipping a peak that is unknown."""
    sxm, pcie = flops.peak_flops("NVIDIA H100 80GB HBM3"), flops.peak_flops("NVIDIA H100 PCIe")
    assert pcie["bf16"] < sxm["bf16"] and flops.peak_flops("nvidia h100 pcie") == pcie
    for kind in ("cpu", "TPU v5 lite", "Tesla T4"):
        assert flops.peak_flops(kind) is None, kind
    for name, bf16, tf32 in flops.PEAK_FLOPS:
        assert bf16 == pytest.approx(2 * tf32, rel=0.01), name
        assert flops.peak_flops(f"NVIDIA {name.upper()}") == {"bf16": bf16, "tf32": tf32}, name
    u = flops.utilisation(1.06e12, 47, {"tf32": sxm["tf32"], "measured": None})
    assert set(u) == {"tf32"}
    assert u["tf32"] * sxm["tf32"] == pytest.approx(1.06e12 * 47)


def test_eta_arithmetic(monkeypatch):
    assert eta.projected_seconds(1000, 11, 55.0) == pytest.approx(200.0)
    assert eta.projected_seconds(-5, 11, 55.0) == 0.0
    with pytest.raises(ValueError, match="member-steps/s must be > 0"):
        eta.projected_seconds(10, 1, 0.0)
    # The paper protocol: 4 methods x 11 ratios x 140k steps, each at its rate.
    rates = {"cyclegan": 47.0, "gan": 100.0, "condgan": 100.0, "l1": 154.0}
    expected = sum(11 * 140_000 / r for r in rates.values())
    assert eta.protocol_seconds(rates) == pytest.approx(expected)
    assert [eta.format_duration(s) for s in (12, 250, 7500)] == ["12 s", "4 min 10 s", "2 h 05 min"]

    clock = iter([10.0, 12.0])  # the window's ends: 10 calls of K=1 for 11 members in 2 s
    monkeypatch.setattr(eta.time, "perf_counter", lambda: next(clock))
    lines = []
    timer = eta.FirstCallsTimer("cyclegan", 11, 1, end_step=1000, report=lines.append)
    for done in range(1, 13):
        timer.after_call(jnp.zeros(()), done)
    assert timer.member_steps_per_s == pytest.approx(55.0)
    assert lines == [eta.eta_line("cyclegan", 1000 - 11, 11, 55.0)]
    assert lines[0].endswith("about 3 min 18 s")


def test_benchmark_only_filters_one_precision_or_a_whole_strategy(monkeypatch):
    """--only: 'vmap/patches/fp32=' drops that precision's row and keeps bf16's (it used
    to drop both); a bare strategy restricts every precision; N lists are honoured."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))  # run.py imports its sibling jax_side
    spec = importlib.util.spec_from_file_location("benchmarks_run", folder / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    only = bench.parse_only("vmap/patches/fp32=;map=11;loop/xla/bf16=1")
    assert not bench.allowed(only, "vmap/patches", "fp32", 11)
    assert bench.allowed(only, "vmap/patches", "bf16", 11)
    assert bench.allowed(only, "map/xla", "bf16", 11) and not bench.allowed(only, "map/xla", "fp32", 4)
    assert bench.allowed(only, "loop/xla", "bf16", 1) and not bench.allowed(only, "loop/xla", "bf16", 11)
    assert bench.allowed(only, "loop/xla", "fp32", 11)
