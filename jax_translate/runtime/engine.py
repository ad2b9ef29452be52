"""One compiled function that advances every member of a sweep by K steps.

The single-member step (:func:`methods.train_step`) is written first; a
``lax.scan`` runs K of them per host call; the member axis is then added by
``jax.vmap`` (one batched program, best on accelerators) or ``jax.lax.map``
(members one after another inside the same program). Ratios, seeds and a
member's training knobs (``hparams``) are data, so one compile serves any
grid with the same number of members. Given a mesh, ``vmap`` and ``map`` run on each
device's block of members (:mod:`sharding`). A third member axis, ``loop``,
calls one compiled single-member program per member from the host.

Which member axis, convolution implementation and K a run uses is decided
in one place, :func:`plan`; ``plan(cfg).sweep_step(cfg).compile(shared,
states, members)`` is the compiled step: call it, or ask XLA's memory and
cost analyses of it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.errors import UsageError
from jax_translate.runtime import sharding
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
    :func:`plan`). States are donated.
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

    def memory_bytes(self) -> int | None:
        """Arguments + outputs + temporaries (XLA's estimate), if this backend reports it."""
        try:
            m = self.compiled.memory_analysis()
            return int(m.argument_size_in_bytes + m.output_size_in_bytes
                       - m.alias_size_in_bytes + m.temp_size_in_bytes)
        except Exception:  # noqa: BLE001 - not every backend reports it
            return None

    def cost_analysis(self):
        return self.compiled.cost_analysis()

    def as_text(self) -> str:
        """The optimised HLO of the compiled program."""
        return self.compiled.as_text()


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a sweep's members run on this machine: decided once, by :func:`plan`."""

    member_axis: str      # "vmap", "map" or "loop" (MEMBER_AXES)
    conv_impl: str        # "xla" (lax.conv) or "patches" (batched matmuls)
    steps_per_call: int   # K: steps every member takes per compiled call

    def sweep_step(self, cfg, parts: Parts = Parts(), mesh=None) -> SweepStep:
        """``cfg``'s sweep step run this way (``mesh``: the members' devices, if several)."""
        return SweepStep(Method(cfg, conv_impl=self.conv_impl, parts=parts),
                         self.steps_per_call, self.member_axis, mesh)


def plan(cfg, backend: str | None = None, n_devices: int | None = None) -> Plan:
    """The one place that decides how ``cfg``'s members run, from its runtime fields,
    the backend and the device count (default: this process's JAX).

    A field the config sets is kept; "auto" (``steps_per_call`` 0) is what
    was measured fastest (benchmarks/README.md):

    - member axis: a host loop of one-member programs on a single CPU device.
      On a 2-core CPU (cpu-preset cyclegan, N=11) the loop ran 14.1
      member-steps/s, vmap 5.7 (vmapping convolutions over per-member weights
      makes grouped convolutions) and lax.map 1.6 (XLA's CPU backend runs
      convolutions inside loops ~8x slower). vmap everywhere else: at N=11 it
      ran 5.8x the loop on an H100 and 6.5x on an H200 (with patches), and on
      several devices it is what shards the members.
    - convolutions: batched matmuls ("patches") under vmap on accelerators
      (H100, N=11: 5.8x the loop, against 0.47-2.1x with grouped
      convolutions); lax.conv otherwise (3x faster for one member on a CPU).
    - steps per call: 1 on CPU (a scan would put the convolutions in a loop),
      50 on accelerators, where a call's launch overhead is paid once per K
      steps; never more than the run's steps.

    A vmapped step that does not fit the device stops the sweep with one
    ``error:`` line naming the loop and lax.conv (:mod:`jobs.sweep`).
    """
    backend = backend or jax.default_backend()
    n_devices = jax.device_count() if n_devices is None else n_devices
    on_cpu = backend == "cpu"
    axis = cfg.member_axis
    if axis == "auto":
        axis = "loop" if on_cpu and n_devices == 1 else "vmap"
    conv_impl = cfg.conv_impl
    if conv_impl == "auto":
        conv_impl = "patches" if axis == "vmap" and not on_cpu else "xla"
    steps_per_call = cfg.steps_per_call or (1 if on_cpu else 50)
    return Plan(axis, conv_impl, min(steps_per_call, cfg.steps))
