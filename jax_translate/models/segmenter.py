"""The tumor segmenter network: the evaluator's classifier and cyclegan-cc's frozen segmenters."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class TumorSegmenter(nn.Module):
    """A small UNet at half resolution: per-pixel tumor logits on a 2x coarser grid."""

    width: int = 16

    @nn.compact
    def __call__(self, x):  # (N, H, W, 1) in [0, 1] -> (N, H/2, W/2) logits
        def block(x, features, stride=1):
            x = nn.Conv(features, (3, 3), strides=(stride, stride))(x)
            return nn.relu(nn.GroupNorm(num_groups=4)(x))

        def up(x):
            n, h, w, c = x.shape
            return jnp.broadcast_to(x[:, :, None, :, None], (n, h, 2, w, 2, c)).reshape(
                n, 2 * h, 2 * w, c)

        w = self.width
        s1 = block(block(x, w, 2), w)                  # H/2
        s2 = block(block(s1, 2 * w, 2), 2 * w)         # H/4
        s3 = block(block(s2, 4 * w, 2), 4 * w)         # H/8
        y = block(jnp.concatenate([up(s3), s2], -1), 2 * w)
        y = block(jnp.concatenate([up(y), s1], -1), w)
        return nn.Conv(1, (1, 1))(y)[..., 0]
