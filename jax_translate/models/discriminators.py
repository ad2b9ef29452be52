"""The PatchGAN discriminator of pix2pix and CycleGAN ('NLayerDiscriminator').

It scores overlapping patches instead of the whole image: with n_layers=3 each
output pixel sees a 70x70 input window, and a 256x256 input gives a 30x30 map
of scores. The scores are raw (no sigmoid) so that the caller chooses the
loss, least squares for CycleGAN or a logistic loss on logits.

The conditional discriminator of pix2pix is the same network fed the source
and the candidate image concatenated on the channel axis; the input channel
count simply follows the input.

Note that instance norm makes every score depend a little on the whole image
through the per-channel mean and variance; the 70x70 window is that of the
conv stack.
"""

from __future__ import annotations

import functools

import jax
from flax import linen as nn

from jax_translate.images import downsample
from jax_translate.models import layers


class PatchDiscriminator(nn.Module):
    """4x4 convs with padding 1: n_layers at stride 2, then two at stride 1."""

    ndf: int = 64
    n_layers: int = 3
    pool: int = 1          # judge the input averaged over pool x pool blocks
    norm: layers.Norm = "instance"
    conv_impl: layers.ConvImpl = "xla"
    precision: layers.Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")
        # The first layer has no norm, as in the reference.
        conv = functools.partial(layers.conv, conv_impl=self.conv_impl, precision=self.precision)
        x = downsample(x, self.pool)
        h = conv(self.ndf, 4, stride=2, padding=1, name="conv0")(x)
        h = nn.leaky_relu(h, 0.2)

        for n in range(1, self.n_layers):
            features = self.ndf * min(2**n, 8)
            h = conv(features, 4, stride=2, padding=1, name=f"conv{n}")(h)
            h = nn.leaky_relu(layers.normalize(h, self.norm), 0.2)

        features = self.ndf * min(2**self.n_layers, 8)
        h = conv(features, 4, stride=1, padding=1, name=f"conv{self.n_layers}")(h)
        h = nn.leaky_relu(layers.normalize(h, self.norm), 0.2)

        return conv(1, 4, stride=1, padding=1, name="scores")(h)
