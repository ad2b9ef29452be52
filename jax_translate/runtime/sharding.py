"""Spreads the members of a sweep over every device, on one host or many.

The devices form a one-axis mesh (``members``). With N members and D devices
the member axis is padded to ``ceil(N / D) * D`` by repeating real members
(padding slot j copies member ``j mod N``), and each device trains its own
block with ``shard_map``, so no member ever depends on another and a sharded
run computes what a single-device run computes. Padding is dropped before
anything leaves the devices: metrics, checkpoints and results hold the N real
members only, so a run can resume on a different number of devices.

With one device there is no mesh and nothing is moved or copied: the
single-device path is the one the engine had before sharding.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "members"


@dataclasses.dataclass(frozen=True)
class MemberLayout:
    n_members: int
    mesh: Mesh | None  # None: one device, arrays stay where jit puts them

    @classmethod
    def create(cls, n_members: int, devices=None) -> "MemberLayout":
        devices = jax.devices() if devices is None else list(devices)
        if len(devices) == 1:
            return cls(n_members, None)
        return cls(n_members, Mesh(np.asarray(devices), (AXIS,)))

    @property
    def n_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    @property
    def n_padded(self) -> int:
        return -(-self.n_members // self.n_devices) * self.n_devices

    def place(self, shared, states, members):
        """(shared, states, members) as the sharded step expects them.

        ``shared`` is replicated on every device; states and members are
        padded and split over the member axis. Every process passes the same
        full host values and keeps only the blocks of its own devices.
        """
        if self.mesh is None:
            return shared, states, members
        index = np.arange(self.n_padded) % self.n_members
        split = NamedSharding(self.mesh, PartitionSpec(AXIS))
        whole = NamedSharding(self.mesh, PartitionSpec())

        def put(x, sharding, pad):
            x = np.asarray(x)[index] if pad else np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])

        shared = jax.tree_util.tree_map(lambda x: put(x, whole, False), shared)
        states, members = jax.tree_util.tree_map(lambda x: put(x, split, True), (states, members))
        return shared, states, members

    def to_host(self, tree):
        """The real members of member-axis arrays, as numpy, on every process.

        A collective when the arrays span several processes: all must call it.
        """
        def get(x):
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                x = multihost_utils.process_allgather(x, tiled=True)
            return np.asarray(x)[:self.n_members]

        return jax.tree_util.tree_map(get, jax.device_get(tree) if self.mesh is None else tree)

    def unpad(self, states):
        """States of the real members: as they are on one device, on the host otherwise."""
        return states if self.mesh is None else self.to_host(states)


def shard_members(fn, mesh: Mesh):
    """fn(shared, states, members) run on each device's block of members."""
    spec = PartitionSpec(AXIS)
    return jax.shard_map(fn, mesh=mesh, in_specs=(PartitionSpec(), spec, spec),
                         out_specs=spec)
