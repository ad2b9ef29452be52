"""Mixed precision: bf16 convs and matmuls (forward and backward), everything else float32."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config, tiny_slices
from jax_translate import cli
from jax_translate.errors import UsageError
from jax_translate.model_config import MODEL_PRESETS
from jax_translate.models import build_generator
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.runtime import engine
from jax_translate.training.members import build_members
from jax_translate.training.methods import Batch, Method
from jax_translate.jobs.sweep import train_sweep

CONTRACTIONS = ("conv_general_dilated", "dot_general")
# The tests of one_step share it: one pytest-xdist worker builds it once.
pytestmark = pytest.mark.xdist_group("precision")


def contractions(jaxpr) -> list:
    """(operand dtypes, result dtype) of every conv and matmul in ``jaxpr``, sub-jaxprs included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in CONTRACTIONS:
            found.append((tuple(str(v.aval.dtype) for v in eqn.invars),
                          str(eqn.outvars[0].aval.dtype)))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    found += contractions(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    found += contractions(sub)
    return found


@pytest.fixture(scope="module")
def one_step():
    """(method, states, new states, metrics) of one gan step in each precision, same init.

    gan: the networks and layers every method uses, in the cheapest step to compile."""
    train = tiny_slices()
    out = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config("gan", target_tumor_ratios=(0.5,), steps=4, precision=precision)
        m = Method(cfg)
        shared, members = build_members(cfg, train)
        states = engine.init_states(m, np.zeros(1, int), (16, 16))
        single = jax.jit(jax.vmap(functools.partial(engine.member_steps, m, 1),
                                  in_axes=(None, 0, 0)))
        new, metrics = single(shared, states, members)
        out[precision] = (m, engine.init_states(m, np.zeros(1, int), (16, 16)), new, metrics)
    return out


def test_bf16_step_agrees_with_fp32(one_step):
    (m32, init32, new32, metrics32), (m16, init16, new16, metrics16) = (
        one_step["fp32"], one_step["bf16"])
    # Same float32 parameters and optimizer state in and out, whatever the precision.
    for a, b in zip(jax.tree_util.tree_leaves(init32), jax.tree_util.tree_leaves(init16)):
        np.testing.assert_array_equal(a, b)
    for leaf in jax.tree_util.tree_leaves((new16.generator, new16.generator_opt)):
        assert leaf.dtype in (jnp.float32, jnp.int32)
    # Losses within 2% of fp32's.
    for name in ("generator_loss", "discriminator_loss"):
        np.testing.assert_allclose(metrics16[name], metrics32[name], rtol=2e-2)
    # The same generator (fp32 parameters after one fp32 step) computed in both precisions.
    probe = jnp.asarray(tiny_slices(n_patients=2, seed=3).flair[:4, ..., None] * 2 - 1)
    params = jax.tree_util.tree_map(lambda x: x[0], new32.generator)
    out32, out16 = (jax.jit(m.translate)(params, probe) for m in (m32, m16))
    assert out16.dtype == jnp.float32
    rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
    assert 0 < rel < 2e-2, rel
    # The first step's gradients point the same way, far closer than another
    # batch's. Measured at this init: corr 0.992 (bf16 vs fp32, same batch)
    # against 0.02 (fp32, two batches): bf16's noise is small next to batch-1
    # SGD's. (cyclegan's: 0.93, its cycle going through two generators of rounded
    # operands. Not the parameter deltas: Adam's first update is lr * g / |g| per
    # weight, so it shows the signs of the many near-zero gradients, corr ~0.84.)
    generator = jax.tree_util.tree_map(lambda x: x[0], init32.generator)
    discriminator = jax.tree_util.tree_map(lambda x: x[0], init32.discriminator)

    def grads(m):
        @jax.jit
        def flat(source, target):
            batch = Batch(source=source[None], target=target[None])
            return jnp.concatenate([jnp.ravel(g) for g in jax.tree_util.tree_leaves(
                jax.grad(lambda p: m.generator_loss(p, discriminator, batch)[0])(generator))])
        return flat

    grads32, grads16 = grads(m32), grads(m16)
    same = np.corrcoef(grads32(probe[0], probe[1]), grads16(probe[0], probe[1]))[0, 1]
    other = np.corrcoef(grads32(probe[0], probe[1]), grads32(probe[2], probe[3]))[0, 1]
    assert same > 0.98 and other < 0.5, (same, other)


def test_bf16_is_what_the_step_computes(one_step):
    """Every conv and matmul of a bf16 step, backward included, has bf16 operands; fp32: none."""
    found = {}
    for precision, (m, init, _, _) in one_step.items():
        cfg = m.cfg
        shared, members = build_members(cfg, tiny_slices())
        single = functools.partial(engine.member_steps, m, 1)
        found[precision] = contractions(jax.make_jaxpr(single)(
            shared, *(jax.tree_util.tree_map(lambda x: x[0], t) for t in (init, members))).jaxpr)
    assert found["fp32"] and all(ops == ("float32", "float32") for ops, _ in found["fp32"])
    assert found["bf16"] and all(ops == ("bfloat16", "bfloat16") for ops, _ in found["bf16"])
    results = [out for _, out in found["bf16"]]
    assert "float32" in results   # forward: bf16 operands, fp32 results
    assert "bfloat16" in results  # backward: gradients as bf16 ops


@pytest.mark.parametrize("conv_impl,upsample", [("xla", "resize"), ("patches", "transpose")])
def test_bf16_layers_match_fp32_and_keep_float32_between_them(conv_impl, upsample):
    model = dataclasses.replace(MODEL_PRESETS["tiny"], upsample=upsample)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 1)), jnp.float32)
    net32, net16 = (build_generator(model, conv_impl, p) for p in ("fp32", "bf16"))
    params = net32.init(jax.random.PRNGKey(0), x)
    out32, out16 = net32.apply(params, x), net16.apply(params, x)
    assert out16.dtype == jnp.float32
    assert 0 < float(jnp.abs(out16 - out32).max()) < 0.05 * float(jnp.abs(out32).max())
    jaxpr = str(jax.make_jaxpr(net16.apply)(params, x))
    assert "bf16" in jaxpr and "bf16" not in str(jax.make_jaxpr(net32.apply)(params, x))
    # instance-norm statistics in float32: every reduction reads float32
    assert "reduce_sum[" in jaxpr and all(
        "f32" in line.split("=")[0] for line in jaxpr.splitlines() if "reduce_sum[" in line)


def test_precision_is_a_config_field_and_a_flag(tmp_path):
    assert tiny_config().precision == "fp32"
    with pytest.raises(UsageError, match="unknown precision"):
        tiny_config(precision="fp16")
    # It changes the numbers: a run cannot resume under the other precision.
    assert tiny_config(precision="bf16").differences(tiny_config()) == ["precision"]
    args = cli.build_parser().parse_args(
        ["sweep", "--method", "l1", "--precision", "bf16", "--workdir", str(tmp_path)])
    assert cli._sweep_config(args).precision == "bf16"
    assert cli.main(["sweep", "--method", "l1", "--precision", "fp8",
                     "--workdir", str(tmp_path)]) == 2


def test_reproduce_precision_flag_reaches_every_config(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("jax_translate.jobs.reproduce.reproduce",
                        lambda exp, out, **kw: seen.append(exp))
    assert cli.main(["reproduce", "--preset", "tiny", "--precision", "bf16",
                     "--out", str(tmp_path)]) == 0
    assert {cfg.precision for cfg in seen[0].configs.values()} == {"bf16"}


def test_a_bf16_sweep_runs_and_records_its_precision(tmp_path, tiny_splits):
    cfg = tiny_config("l1", target_tumor_ratios=(0.5,), steps=2, steps_per_call=2,
                      precision="bf16")
    result = train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    assert result.steps_run == 2
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(result.states))
    folder = RunFolder(tmp_path / "run")
    assert json.loads(folder.run_path.read_text())["precision"] == "bf16"
    assert json.loads(folder.config_path.read_text())["precision"] == "bf16"
