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
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + L2_EPS)


class ProjectionHead(nn.Module):
    """(..., C) -> (..., features), L2-normalised."""

    features: int = 256

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.features, kernel_init=CONV_INIT, bias_init=BIAS_INIT, name="fc1")(x)
        x = nn.Dense(self.features, kernel_init=CONV_INIT, bias_init=BIAS_INIT,
                     name="fc2")(nn.relu(x))
        return l2_normalize(x)
