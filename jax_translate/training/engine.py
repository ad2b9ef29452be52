"""One compiled function that advances every member of a sweep by K steps.

The single-member step (:func:`methods.train_step`) is written first; a
``lax.scan`` runs K of them per host call; the member axis is then added by
``jax.vmap`` (one batched program, best on accelerators) or ``jax.lax.map``
(members one after another inside the same program, which can be faster on a
CPU, where vmapping convolutions over their weights turns them into grouped
convolutions). Ratios and seeds are data, so one compile serves any grid with
the same number of members.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.training.members import MemberData, SharedData, sample_batch
from jax_translate.training.methods import Method, TrainState, train_step


def init_states(method: Method, seeds: np.ndarray, image_shape: tuple[int, int]) -> TrainState:
    """Stacked initial states; a member's state depends only on its seed."""
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    return jax.jit(jax.vmap(functools.partial(method.init, image_shape=image_shape)))(keys)


def member_steps(method: Method, n_steps: int, shared: SharedData, state: TrainState,
                 member: MemberData) -> tuple[TrainState, dict]:
    """K steps of one member; returns its state and its metrics averaged over them.

    Steps past ``cfg.steps`` leave the state unchanged, so the last call of a
    run can use the same compiled function as every other call.
    """
    cfg = method.cfg

    def body(state, _):
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 1 << 20)
        batch, _ = sample_batch(shared, member, key, cfg.batch_size, cfg.paired)
        active = state.step < cfg.steps
        state, metrics = train_step(method, state, batch, member.lr_scale, active)
        return state, (metrics, active)

    state, (metrics, active) = jax.lax.scan(body, state, None, length=n_steps)
    weight = active.astype(jnp.float32)
    mean = jax.tree_util.tree_map(
        lambda m: jnp.sum(m * weight) / jnp.maximum(jnp.sum(weight), 1.0), metrics)
    return state, mean


def make_sweep_step(method: Method, n_steps: int, member_axis: str):
    """jit(shared, states, members) -> (states, metrics), states donated."""
    single = functools.partial(member_steps, method, n_steps)
    if member_axis == "vmap":
        def sweep(shared, states, members):
            return jax.vmap(single, in_axes=(None, 0, 0))(shared, states, members)
    elif member_axis == "map":
        def sweep(shared, states, members):
            return jax.lax.map(lambda sm: single(shared, *sm), (states, members))
    else:
        raise ValueError(f"member_axis must be 'vmap' or 'map', got {member_axis!r}")
    return jax.jit(sweep, donate_argnums=(1,))


def resolve_member_axis(member_axis: str, backend: str | None = None) -> str:
    """'auto' -> 'vmap' on accelerators, 'map' on CPU (see benchmarks/ for why)."""
    if member_axis != "auto":
        return member_axis
    backend = backend or jax.default_backend()
    return "map" if backend == "cpu" else "vmap"
