"""Image-to-image generators: the CycleGAN ResNet and the pix2pix UNet.

Both follow the 2017 pytorch-CycleGAN-and-pix2pix `networks.py` layer by
layer (instance norm without affine, biases on every conv, normal(0, 0.02)
init) so that parameter counts and receptive fields match the paper's
networks. One deliberate change is the default upsampling, nearest-neighbour
x2 + 3x3 conv instead of a transposed conv (see `layers.Upsample2x`); the
reference's transposed conv is upsample='transpose'.

Dropout is off unless ``dropout`` is set (ResNet only). The authors' run
scripts do not pass `--no_dropout`, and the 2017 code then puts Dropout(0.5)
between the two convs of every residual block, so the paper's generators
most likely trained with it; it is active only in training steps.

Inputs and outputs are NHWC float32 in [-1, 1]; ``conv_impl`` and
``precision`` say how every conv computes (see ``layers``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from jax_translate.models import layers


class ResnetBlock(nn.Module):
    """x + (reflect pad, conv3x3, norm, ReLU, [dropout], reflect pad, conv3x3, norm)(x)."""

    features: int
    norm: layers.Norm = "instance"
    dropout: float = 0.0
    conv_impl: layers.ConvImpl = "xla"
    precision: layers.Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        how = dict(conv_impl=self.conv_impl, precision=self.precision)
        y = layers.PaddedConv(self.features, 3, 1, **how, name="conv1")(x)
        y = nn.relu(layers.normalize(y, self.norm))
        if self.dropout:
            y = nn.Dropout(self.dropout, deterministic=not train)(y)
        y = layers.PaddedConv(self.features, 3, 1, **how, name="conv2")(y)
        # No activation after the sum, as in the reference.
        return x + layers.normalize(y, self.norm)


class ResnetGenerator(nn.Module):
    """Johnson et al.'s generator as used by CycleGAN ('resnet_9blocks').

    c7s1-ngf, `n_down` (the reference: two) stride-2 downsamplings doubling the
    channels, `n_blocks` residual blocks at ngf * 2**n_down channels and
    1 / 2**n_down resolution, as many 2x upsamplings, c7s1-out + tanh. H and
    W must be multiples of 2**n_down for the output to match the input size.
    """

    out_channels: int = 1
    ngf: int = 64
    n_blocks: int = 9
    n_down: int = 2
    upsample: layers.Upsample = "resize"
    norm: layers.Norm = "instance"
    dropout: float = 0.0
    conv_impl: layers.ConvImpl = "xla"
    precision: layers.Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False,
                 encode_only: bool = False) -> jax.Array | list[jax.Array]:
        """``train`` turns dropout on (it then needs a 'dropout' rng).

        ``encode_only`` returns, instead of the image, the encoder feature maps
        that PatchNCE compares (CUT's ``nce_layers`` 0,4,8,12,16 of its
        resnet_9blocks), stopping there: the input, the output of each
        downsampling conv (before its norm), and the outputs of the first and
        the middle residual block (``n_blocks // 2``: the 5th of 9; once if
        they are the same block). See training/patchnce.py for the mapping.
        """
        _check_divisible(x, 2**self.n_down, "ResnetGenerator")
        how = dict(conv_impl=self.conv_impl, precision=self.precision)
        features_out = [x]
        h = layers.PaddedConv(self.ngf, 7, 3, **how, name="stem")(x)
        h = nn.relu(layers.normalize(h, self.norm))

        widths = [self.ngf * 2**i for i in range(self.n_down + 1)]
        for i, features in enumerate(widths[1:]):
            h = layers.conv(features, 3, stride=2, padding=1, name=f"down{i}", **how)(h)
            features_out.append(h)
            h = nn.relu(layers.normalize(h, self.norm))

        for i in range(self.n_blocks):
            block = ResnetBlock(widths[-1], self.norm, self.dropout, **how, name=f"block{i}")
            h = block(h, train)
            if i in (0, self.n_blocks // 2):
                features_out.append(h)
            if encode_only and i == self.n_blocks // 2:
                break
        if encode_only:
            return features_out

        for i, features in enumerate(reversed(widths[:-1])):
            h = layers.Upsample2x(
                features, self.upsample, transpose_kernel_size=3, **how, name=f"up{i}"
            )(h)
            h = nn.relu(layers.normalize(h, self.norm))

        h = layers.PaddedConv(self.out_channels, 7, 3, **how, name="head")(h)
        return jnp.tanh(h)


class UnetGenerator(nn.Module):
    """The pix2pix UNet ('unet_128' is num_downs=7, 'unet_256' is 8).

    Every level halves H and W with a 4x4 stride-2 conv, so H and W must be
    multiples of 2**num_downs (64x64 allows up to 6, 256x128 up to 7).
    Channels per level are ngf * min(2**level, 8); the reference needs at
    least five levels.
    """

    out_channels: int = 1
    ngf: int = 64
    num_downs: int = 6
    upsample: layers.Upsample = "resize"
    norm: layers.Norm = "instance"
    conv_impl: layers.ConvImpl = "xla"
    precision: layers.Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.num_downs < 5:
            raise ValueError(f"UnetGenerator needs num_downs >= 5, got {self.num_downs}")
        _check_divisible(x, 2**self.num_downs, "UnetGenerator")
        innermost = self.num_downs - 1
        widths = [self.ngf * min(2**level, 8) for level in range(self.num_downs)]

        # Down path. The outermost conv sees the raw image (no activation, no
        # norm); the innermost has no norm because its output can be 1x1,
        # where instance norm would zero every feature.
        skips = []
        h = x
        for level, features in enumerate(widths):
            if level > 0:
                h = nn.leaky_relu(h, 0.2)
            h = layers.conv(features, 4, stride=2, padding=1, name=f"down{level}",
                            conv_impl=self.conv_impl, precision=self.precision)(h)
            if 0 < level < innermost:
                h = layers.normalize(h, self.norm)
            skips.append(h)

        # Up path, innermost first. The reference's in-place LeakyReLU also
        # rewrites each skip tensor, but every concatenation is followed by a
        # ReLU and relu(leaky_relu(z)) == relu(z), so plain skips are exact.
        h = skips[innermost]
        for level in range(innermost, 0, -1):
            h = nn.relu(h)
            h = self._up(widths[level - 1], level)(h)
            h = layers.normalize(h, self.norm)
            h = jnp.concatenate([skips[level - 1], h], axis=-1)
        h = self._up(self.out_channels, 0)(nn.relu(h))
        return jnp.tanh(h)

    def _up(self, features: int, level: int) -> layers.Upsample2x:
        # Zero-padded like every UNet conv in the reference (see Upsample2x).
        return layers.Upsample2x(
            features, self.upsample, transpose_kernel_size=4, pad_mode="zero",
            conv_impl=self.conv_impl, precision=self.precision, name=f"up{level}"
        )


def _check_divisible(x: jax.Array, factor: int, who: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{who} expects NHWC input, got shape {x.shape}")
    height, width = x.shape[1:3]
    if height % factor or width % factor:
        raise ValueError(
            f"{who} needs H and W divisible by {factor}, got {height}x{width}"
        )
