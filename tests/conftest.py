"""Shared fixtures: tiny slice sets and tiny configs, so a training step runs in seconds."""

import numpy as np
import pytest

from jax_translate.config import make_config
from jax_translate.data.dataset import SliceSet


def tiny_slices(n_patients=8, per_patient=12, size=16, seed=0) -> SliceSet:
    """Ellipse 'brains' of varied shape and texture, with a dark-in-T1 /
    bright-in-Flair blob in every other slice (the tumor slices)."""
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    radii = rng.uniform(0.7, 0.95, (n, 2))
    brain = ((xx / radii[:, :1, None]) ** 2 + (yy / radii[:, 1:, None]) ** 2 < 1).astype(np.uint8)
    label = np.tile(np.arange(per_patient) % 2, n_patients).astype(np.int32)
    tumor = np.zeros((n, size, size), np.uint8)
    for i in np.flatnonzero(label):
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        tumor[i] = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.08) & (brain[i] > 0)
    texture = rng.uniform(0.0, 0.2, (n, 1, 1)) * np.sin(
        rng.uniform(2, 6, (n, 1, 1)) * xx + rng.uniform(0, 6, (n, 1, 1)))
    noise = rng.normal(0, 0.02, (2, n, size, size)).astype(np.float32)
    flair = np.clip(brain * (0.5 + texture) + tumor * 0.4 + noise[0], 0, 1).astype(np.float32)
    t1 = np.clip(brain * (0.75 - texture) - tumor * 0.5 + noise[1], 0, 1).astype(np.float32)
    return SliceSet(flair=flair, t1=t1, tumor_mask=tumor, brain_mask=brain,
                    label=label, patient_id=np.repeat(np.arange(n_patients), per_patient).astype(np.int32),
                    slice_index=np.tile(np.arange(per_patient), n_patients).astype(np.int32))


@pytest.fixture(scope="session")
def tiny_splits():
    return {"train": tiny_slices(), "holdout": tiny_slices(n_patients=4, seed=1)}


def tiny_config(method="cyclegan", **overrides):
    base = dict(target_tumor_ratios=(0.0, 1.0), seeds=1, steps=6, n_source=8, n_target=10,
                n_holdout=8, pool_size=3, steps_per_call=3, log_every=2, checkpoint_every=3,
                member_axis="vmap")
    base.update(overrides)
    return make_config(method, preset="tiny", **base)


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """Reuse compiled programs across tests that build the same step again."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
