"""One compiled function that advances every member of a sweep by K steps.

The single-member step (:func:`methods.train_step`) is written first; a
``lax.scan`` runs K of them per host call; the member axis is then added by
``jax.vmap`` (one batched program, best on accelerators) or ``jax.lax.map``
(members one after another inside the same program, which can be faster on a
CPU, where vmapping convolutions over their weights turns them into grouped
convolutions). Ratios and seeds are data, so one compile serves any grid with
the same number of members. Given a mesh, ``vmap`` and ``map`` run on each
device's block of members (:mod:`sharding`). A third member axis, ``loop``,
calls one compiled single-member program per member from the host.

``SweepStep(method, K, member_axis, mesh).compile(shared, states, members)``
is the compiled step: call it, or ask XLA's memory and cost analyses of it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.errors import UsageError
from jax_translate.training import sharding
from jax_translate.training.members import MemberData, SharedData, sample_batch
from jax_translate.training.methods import Method, Parts, TrainState, step_keys, train_step


def init_states(method: Method, seeds: np.ndarray, image_shape: tuple[int, int]) -> TrainState:
    """Stacked initial states; a member's state depends only on its seed.

    One member's init is compiled, whatever the number of members (so runs of
    other sizes share it through the compile cache), and stacked on the device.
    """
    init = jax.jit(functools.partial(method.init, image_shape=image_shape))
    states = [init(jax.random.PRNGKey(np.uint32(seed))) for seed in np.asarray(seeds)]
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states)


def member_steps(method: Method, n_steps: int, shared: SharedData, state: TrainState,
                 member: MemberData) -> tuple[TrainState, dict]:
    """K steps of one member; returns its state and its metrics averaged over them.

    Steps past ``cfg.steps`` leave the state unchanged, so the last call of a
    run can use the same compiled function as every other call.
    """
    cfg = method.cfg

    def body(state, _):
        key = step_keys(state.key, state.step).batch
        batch, _ = sample_batch(shared, member, key, cfg, state.step)
        active = state.step < cfg.steps
        state, metrics = train_step(method, state, batch, active, member.hparams)
        return state, (metrics, active)

    if n_steps == 1:
        # No loop at all: XLA's CPU backend runs convolutions inside a while
        # loop ~8x slower than at the top level of a program (measured), so
        # on CPU one step per call beats a scan.
        state, (metrics, active) = body(state, None)
        metrics, active = jax.tree_util.tree_map(lambda x: x[None], (metrics, active))
    else:
        state, (metrics, active) = jax.lax.scan(body, state, None, length=n_steps)
    weight = active.astype(jnp.float32)
    mean = jax.tree_util.tree_map(
        lambda m: jnp.sum(m * weight) / jnp.maximum(jnp.sum(weight), 1.0), metrics)
    return state, mean


def _take(tree, i):
    return jax.tree_util.tree_map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), tree)


MEMBER_AXES = ("vmap", "map", "loop")


@dataclasses.dataclass(frozen=True, eq=False)
class SweepStep:
    """(shared, states, members) -> (states, metrics) for every member, not yet compiled.

    ``vmap`` and ``map`` are one jitted program, split over ``mesh``'s member
    axis when given. ``loop`` is a host loop that calls one compiled
    single-member program per member (the member index is traced, so it
    compiles once), updating the stacked state in place; it uses one device.
    How convolutions are computed is ``method.conv_impl`` (see
    :func:`method_for`). States are donated.
    """

    method: Method
    n_steps: int
    member_axis: str
    mesh: object = None

    def __post_init__(self):
        if self.member_axis not in MEMBER_AXES:
            raise ValueError(f"member_axis must be one of {MEMBER_AXES}, got {self.member_axis!r}")
        if self.member_axis == "loop" and self.mesh is not None:
            raise UsageError(f"member axis 'loop' runs on one device, not {self.mesh.size}; "
                             "use vmap, map or auto to spread members over devices")

    def _single(self, shared, state, member):
        return member_steps(self.method, self.n_steps, shared, state, member)

    def _program(self):
        """The jitted function XLA compiles: the whole sweep, or (loop) one member by index."""
        single = self._single
        if self.member_axis == "loop":
            def one(shared, states, members, i):
                state, metrics = single(shared, _take(states, i), _take(members, i))
                states = jax.tree_util.tree_map(
                    lambda s, n: jax.lax.dynamic_update_index_in_dim(s, n, i, 0), states, state)
                return states, metrics

            return jax.jit(one, donate_argnums=(1,))
        if self.member_axis == "vmap":
            def sweep(shared, states, members):
                return jax.vmap(single, in_axes=(None, 0, 0))(shared, states, members)
        else:
            def sweep(shared, states, members):
                return jax.lax.map(lambda sm: single(shared, *sm), (states, members))
        if self.mesh is not None:
            sweep = sharding.shard_members(sweep, self.mesh)
        return jax.jit(sweep, donate_argnums=(1,))

    def lower(self, shared, states, members) -> jax.stages.Lowered:
        """The program for these arguments' shapes, lowered (``loop``: one member's)."""
        args = (shared, states, members) + ((jnp.int32(0),) if self.member_axis == "loop" else ())
        if self.mesh is None:
            # Shapes and dtypes only: restored (committed) states would otherwise lower
            # with explicit single-device shardings, another program text, and every
            # resume would miss the persistent compile cache (measured: 6 s recompiles).
            args = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(
                x.shape, x.dtype, weak_type=getattr(x, "weak_type", False)), args)
        return self._program().lower(*args)

    def compile(self, shared, states, members) -> "CompiledSweepStep":
        """Compiles for these arguments' shapes (nothing is run or donated)."""
        return CompiledSweepStep(self.lower(shared, states, members).compile(),
                                 self.member_axis == "loop")


class CompiledSweepStep:
    """A compiled :class:`SweepStep`: call it with (shared, states, members).

    XLA's memory and cost analyses are those of the compiled program: the
    whole sweep under vmap and map, one member's under loop (where the host
    calls it once per member).
    """

    def __init__(self, compiled: jax.stages.Compiled, per_member: bool):
        self.compiled, self.per_member = compiled, per_member

    def __call__(self, shared, states, members):
        if not self.per_member:
            return self.compiled(shared, states, members)
        n = jax.tree_util.tree_leaves(members)[0].shape[0]
        metrics = []
        for i in range(n):
            # An explicit transfer: tests run the loop under a 'disallow' transfer guard.
            states, m = self.compiled(shared, states, members, jax.device_put(np.int32(i)))
            metrics.append(m)
        return states, jax.tree_util.tree_map(lambda *m: jnp.stack(m), *metrics)

    def memory_analysis(self):
        return self.compiled.memory_analysis()

    def cost_analysis(self):
        return self.compiled.cost_analysis()

    def as_text(self) -> str:
        """The optimised HLO of the compiled program."""
        return self.compiled.as_text()


def resolve_member_axis(member_axis: str, backend: str | None = None,
                        n_devices: int | None = None) -> str:
    """'auto' -> 'loop' on a single CPU device, 'vmap' otherwise.

    On a 2-core CPU (benchmarks/), one cyclegan member-step of the cpu preset
    took 59 ms run alone, 123 ms per member under vmap (vmapping convolutions
    over their weights makes grouped convolutions), and ~600 ms inside any
    XLA loop (lax.map or scan), so the CPU gets a host loop of one-step calls.
    Several devices (even CPU ones) get vmap, which can be split over them.
    """
    if member_axis != "auto":
        return member_axis
    backend = backend or jax.default_backend()
    n_devices = jax.device_count() if n_devices is None else n_devices
    return "loop" if backend == "cpu" and n_devices == 1 else "vmap"


def resolve_conv_impl(conv_impl: str, member_axis: str, backend: str | None = None) -> str:
    """'auto' -> 'patches' (batched matmuls) under vmap on accelerators, else 'xla'.

    Vmapping lax.conv over per-member weights makes a grouped convolution.
    On an H100, 11 cpu-preset cyclegan members ran at 2.1x a host loop of
    single members (8 members) with grouped convs and 5.8x with patches; 11
    paper-sized members at 0.47x with grouped convs (benchmarks/results). On
    a 2-core CPU a single member is 3x faster with lax.conv, and patches
    double compile times, so CPUs keep lax.conv.
    """
    if conv_impl != "auto":
        return conv_impl
    backend = backend or jax.default_backend()
    return "patches" if member_axis == "vmap" and backend != "cpu" else "xla"


def method_for(cfg, member_axis: str, conv_impl: str | None = None,
               parts: Parts = Parts()) -> Method:
    """``cfg``'s Method, its convolutions computed as ``conv_impl`` (default: ``cfg.conv_impl``)
    resolved for ``member_axis`` on this backend (:func:`resolve_conv_impl`)."""
    return Method(cfg, conv_impl=resolve_conv_impl(conv_impl or cfg.conv_impl, member_axis),
                  parts=parts)


def resolve_steps_per_call(steps_per_call: int, backend: str | None = None) -> int:
    """0 (auto) -> 1 on CPU (no scan: see resolve_member_axis), 50 elsewhere."""
    if steps_per_call:
        return steps_per_call
    return 1 if (backend or jax.default_backend()) == "cpu" else 50
