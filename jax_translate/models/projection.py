"""CUT's projection head (``PatchSampleF`` with ``netF mlp_sample``): one small MLP per layer.

Each sampled feature vector goes through Linear(C, 256), ReLU, Linear(256,
256) and is L2-normalised, so PatchNCE compares cosine similarities. It is
initialised like our other networks (normal(0, 0.02) weights, zero biases);
the CUT code's default for every network is xavier_normal with gain 0.02.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jax_translate.models.layers import BIAS_INIT, CONV_INIT

L2_EPS = 1e-7  # the reference's Normalize(2): x / (||x|| + 1e-7)


def l2_normalize(x: jax.Array) -> jax.Array:
    """x / (||x|| + 1e-7) over the last axis, with a finite gradient at x = 0.

    Zero vectors happen: a stride-2 conv over a patch the stem's ReLU zeroed
    (the background) outputs exactly 0 at init (zero biases), and so does the
    head. The gradient of a plain norm there is 0/0 = NaN, which froze every
    member of a 64x64 sweep at its first step; the norm's gradient is taken
    as 0 at 0 instead (the forward value is unchanged).
    """
    squared = jnp.sum(x * x, axis=-1, keepdims=True)
    positive = squared > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
    return x / (norm + L2_EPS)


class ProjectionHead(nn.Module):
    """(..., C) -> (..., features), L2-normalised."""

    features: int = 256

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.features, kernel_init=CONV_INIT, bias_init=BIAS_INIT, name="fc1")(x)
        x = nn.Dense(self.features, kernel_init=CONV_INIT, bias_init=BIAS_INIT,
                     name="fc2")(nn.relu(x))
        return l2_normalize(x)
