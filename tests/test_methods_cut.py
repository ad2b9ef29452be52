"""CUT and FastCUT: PatchNCE against a hand computation, the encoder's feature maps,
and tiny sweeps that train, with vmap == loop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config, tiny_slices
from jax_translate.models import ResnetGenerator
from jax_translate.models.projection import l2_normalize
from jax_translate.training import patchnce
from jax_translate.runtime import engine
from jax_translate.training.members import build_members
from jax_translate.training.methods import Batch, Method


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_patch_nce_matches_hand_computation():
    rng = np.random.default_rng(0)
    q, k = _unit(rng.normal(size=(1, 3, 2))), _unit(rng.normal(size=(1, 3, 2)))
    t = 0.07
    expected = []
    for i in range(3):
        logits = [q[0, i] @ k[0, i]] + [-10.0 if j == i else q[0, i] @ k[0, j] for j in range(3)]
        logits = np.array(logits) / t
        expected.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[0])
    got = patchnce.patch_nce_loss(jnp.asarray(q), jnp.asarray(k), t)
    np.testing.assert_allclose(np.asarray(got)[0], expected, rtol=1e-5, atol=1e-7)
    # negatives come from the same image only: a second image changes nothing for the first
    other = _unit(rng.normal(size=(1, 3, 2)))
    both = patchnce.patch_nce_loss(jnp.asarray(np.concatenate([q, other])),
                                   jnp.asarray(np.concatenate([k, other])), t)
    np.testing.assert_allclose(np.asarray(both)[0], expected, rtol=1e-5, atol=1e-7)
    # the source (key) side is a constant
    grad_k = jax.grad(lambda kk: patchnce.patch_nce_loss(jnp.asarray(q), kk, t).sum())(
        jnp.asarray(k))
    assert float(jnp.abs(grad_k).max()) == 0.0


def test_patch_nce_is_log_n_for_random_and_zero_for_matching_features():
    n = 64
    random_q = l2_normalize(jax.random.normal(jax.random.PRNGKey(0), (2, n, 8192)))
    random_k = l2_normalize(jax.random.normal(jax.random.PRNGKey(1), (2, n, 8192)))
    # N - 1 negatives + the positive, all with logits ~0: log N
    assert float(patchnce.patch_nce_loss(random_q, random_k, 0.07).mean()) == pytest.approx(
        np.log(n), abs=0.05)
    separated = jnp.eye(n)[None]  # identical, orthogonal features
    assert float(patchnce.patch_nce_loss(separated, separated, 0.07).max()) < 1e-4


def test_projection_has_finite_gradients_on_zero_features():
    """Background patches give all-zero conv features at init; a plain norm made NaNs."""
    from jax_translate.models.projection import ProjectionHead

    head = ProjectionHead(8)
    features = jnp.zeros((1, 4, 3)).at[0, 0].set(1.0)  # one real vector, three zero ones
    params = head.init(jax.random.PRNGKey(0), features)

    def loss(p):
        q = head.apply(p, features)
        return patchnce.patch_nce_loss(q, jax.lax.stop_gradient(q) + 0.1, 0.07).mean()

    grads = jax.grad(loss)(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))
    np.testing.assert_allclose(l2_normalize(jnp.array([[3.0, 4.0]])), [[0.6, 0.8]], rtol=1e-6)
    np.testing.assert_array_equal(l2_normalize(jnp.zeros((1, 2))), [[0.0, 0.0]])


def test_nce_loss_uses_the_same_locations_for_source_and_translation():
    # Every position has its own one-hot feature: only matching locations give ~0.
    features = [jnp.eye(64).reshape(1, 8, 8, 64), jnp.eye(16).reshape(1, 4, 4, 16)]
    head = lambda layer, v: l2_normalize(v)  # noqa: E731
    same = patchnce.nce_loss(head, features, features, jax.random.PRNGKey(3), 10, 0.07, 1.0)
    assert float(same) < 1e-4
    shifted = [jnp.roll(f, 1, axis=1) for f in features]
    assert float(patchnce.nce_loss(head, features, shifted, jax.random.PRNGKey(3), 10, 0.07,
                                   1.0)) > 5.0
    locations = patchnce.sample_locations(jax.random.PRNGKey(0), 64, 256)
    assert sorted(np.asarray(locations).tolist()) == list(range(64))  # all, without replacement


def test_encoder_features_are_the_reference_layers():
    net = ResnetGenerator(ngf=4, n_blocks=9)
    x = jax.random.uniform(jax.random.PRNGKey(0), (1, 16, 16, 1), minval=-1, maxval=1)
    params = net.init(jax.random.PRNGKey(1), x)
    features = net.apply(params, x, encode_only=True)
    assert [f.shape for f in features] == [(1, 16, 16, 1), (1, 8, 8, 8), (1, 4, 4, 16),
                                           (1, 4, 4, 16), (1, 4, 4, 16)]
    np.testing.assert_array_equal(features[0], x)
    _, inter = net.apply(params, x, capture_intermediates=True)
    inter = inter["intermediates"]
    np.testing.assert_allclose(features[1], inter["down0"]["__call__"][0], atol=1e-6)
    np.testing.assert_allclose(features[3], inter["block0"]["__call__"][0], atol=1e-6)
    np.testing.assert_allclose(features[4], inter["block4"]["__call__"][0], atol=1e-6)


@pytest.mark.parametrize("method,lambda_nce,identity",
                         [("cut", 1.0, True), ("fastcut", 10.0, False)])
def test_cut_objectives(method, lambda_nce, identity):
    m = Method(tiny_config(method))
    assert (m.spec.nce.lambda_nce, m.spec.nce.identity, m.pool_size, m.discriminator_first,
            m.discriminators) == (lambda_nce, identity, 0, True, ("b",))
    train = tiny_slices(n_patients=2)
    state = m.init(jax.random.PRNGKey(0), (16, 16))
    assert set(state.generator) == {"ab", "nce_head"} and len(state.generator["nce_head"]) == 4
    batch = Batch(jnp.asarray(train.flair[:2, ..., None] * 2 - 1),
                  jnp.asarray(train.t1[2:4, ..., None] * 2 - 1))
    loss, (metrics, fakes) = m.generator_loss(state.generator, state.discriminator, batch)
    nce = (0.5 * (metrics["nce_loss"] + metrics["nce_identity_loss"]) if identity
           else metrics["nce_loss"])
    assert float(loss) == pytest.approx(float(metrics["adversarial_loss"] + nce), rel=1e-6)
    assert ("nce_identity_loss" in metrics) == identity
    np.testing.assert_allclose(fakes["b"], m.translate(state.generator, batch.source), atol=1e-6)


def _translate_all(m, states, probe):
    return jax.jit(jax.vmap(lambda g: m.translate(g, probe)))(states.generator)


def test_cut_sweep_trains_and_vmap_equals_loop():
    train = tiny_slices()
    cfg = tiny_config("cut", steps=2, steps_per_call=1)
    m = Method(cfg)
    shared, members = build_members(cfg, train)
    init = lambda: engine.init_states(m, np.array([0, 1]), (16, 16))  # noqa: E731
    out = {}
    for axis in ("vmap", "loop"):
        states = init()
        step = engine.SweepStep(m, 1, axis).compile(shared, states, members)
        for _ in range(2):
            states, metrics = step(shared, states, members)
        out[axis] = (states, metrics)
    (vmapped, metrics), (looped, looped_metrics) = out["vmap"], out["loop"]
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    assert not np.asarray(vmapped.diverged).any() and int(vmapped.step[0]) == 2
    chex.assert_trees_all_close(metrics, looped_metrics, rtol=1e-4, atol=1e-5)
    probe = jnp.asarray(train.flair[:2, ..., None] * 2 - 1)
    chex.assert_trees_all_close(_translate_all(m, vmapped, probe),
                                _translate_all(m, looped, probe), atol=2e-4)
    fresh = init()
    # the generator, its projection heads and the discriminator all moved
    for moved, before in ((vmapped.generator["nce_head"], fresh.generator["nce_head"]),
                          (vmapped.generator["ab"], fresh.generator["ab"]),
                          (vmapped.discriminator, fresh.discriminator)):
        change = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), moved, before)
        assert max(jax.tree_util.tree_leaves(change)) > 1e-5


def test_fastcut_sweep_trains():
    train = tiny_slices()
    cfg = tiny_config("fastcut", steps=2, steps_per_call=1)
    m = Method(cfg)
    shared, members = build_members(cfg, train)
    fresh = engine.init_states(m, np.array([0, 1]), (16, 16))
    states = engine.init_states(m, np.array([0, 1]), (16, 16))
    step = engine.SweepStep(m, 1, "vmap").compile(shared, states, members)
    for _ in range(2):
        states, metrics = step(shared, states, members)
    assert set(metrics) == {"generator_loss", "adversarial_loss", "nce_loss", "discriminator_loss"}
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    change = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                    states.generator["nce_head"], fresh.generator["nce_head"])
    assert max(jax.tree_util.tree_leaves(change)) > 1e-5
