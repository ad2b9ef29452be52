"""Building blocks shared by the generators and the discriminator.

The networks mirror the 2017 pytorch-CycleGAN-and-pix2pix code that the paper
used (ieee8023/dist-bias is a fork of it), so these helpers reproduce its
conventions: weights drawn from normal(0, 0.02) with zero biases
(`init_weights('normal', 0.02)`), reflection padding in the ResNet generator,
and instance normalisation without learnable affine parameters
(`InstanceNorm2d(affine=False)`).

All tensors are NHWC float32.
"""

from typing import Literal

import jax
import jax.numpy as jnp
from flax import linen as nn

# The reference initialises every Conv and ConvTranspose weight from
# normal(0, 0.02) and every bias to zero; flax's defaults (lecun normal) would
# give a differently scaled starting point.
CONV_INIT = nn.initializers.normal(stddev=0.02)
BIAS_INIT = nn.initializers.zeros

Norm = Literal["instance", "none"]
Upsample = Literal["resize", "transpose"]

INSTANCE_NORM_EPS = 1e-5  # torch.nn.InstanceNorm2d's default


def instance_norm(x: jax.Array, eps: float = INSTANCE_NORM_EPS) -> jax.Array:
    """Normalises each example and channel over its own H, W (no affine).

    Stateless on purpose: nothing is shared between examples, so the output for
    one image never depends on the rest of the batch or on other vmapped sweep
    members. The variance is the biased one, as PyTorch's instance norm uses,
    and is computed as E[(x - mean)^2] rather than E[x^2] - mean^2 so that
    nearly constant feature maps do not lose precision.
    """
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    centred = x - mean
    var = jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True)
    return centred * jax.lax.rsqrt(var + eps)


def normalize(x: jax.Array, norm: Norm) -> jax.Array:
    """Applies the configured normalisation ('none' exists for analysis only)."""
    if norm == "instance":
        return instance_norm(x)
    if norm == "none":
        return x
    raise ValueError(f"unknown norm {norm!r}; expected 'instance' or 'none'")


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Mirror-pads H and W like torch.nn.ReflectionPad2d (edge not repeated)."""
    if pad == 0:
        return x
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling by broadcasting and reshaping.

    Not jax.image.resize: a broadcast's gradient is a plain reshape and sum,
    whereas resize's gradient is a general (and on CPU much slower) scatter.
    """
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
    return x.reshape(n, h * factor, w * factor, c)


def conv(
        features: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        name: str | None = None,
) -> nn.Conv:
    """A Conv2d with the reference's init and symmetric zero padding.

    Every conv keeps its bias: with affine-free instance norm the reference sets
    use_bias=True, and the layers without norm have a bias by default anyway.
    """
    return nn.Conv(
            features,
            (kernel_size, kernel_size),
            strides=(stride, stride),
            padding=((padding, padding), (padding, padding)),
            kernel_init=CONV_INIT,
            bias_init=BIAS_INIT,
            name=name,
    )


class ReflectConv(nn.Module):
    """Reflection padding followed by an unpadded conv (ReflectionPad2d+Conv2d)."""

    features: int
    kernel_size: int
    pad: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = reflect_pad(x, self.pad)
        return conv(self.features, self.kernel_size, name="conv")(x)


def transpose_conv_2x(
        features: int, kernel_size: int, name: str | None = None
) -> nn.ConvTranspose:
    """A ConvTranspose2d(stride 2, padding 1) whose output is exactly 2x the input.

    PyTorch's size is (H - 1) * 2 - 2 * padding + kernel + output_padding, so
    doubling needs output_padding = 4 - kernel (1 for the ResNet's 3x3 kernel,
    0 for the UNet's 4x4 kernel). lax.conv_transpose pads the stride-dilated
    input instead, and the equivalent padding is
    (kernel - 1 - padding, kernel - 1 - padding + output_padding). Without
    transpose_kernel the kernel is the spatial flip of PyTorch's, which is the
    same family of functions and the same init distribution.
    """
    if kernel_size not in (3, 4):
        raise ValueError(f"kernel_size must be 3 or 4, got {kernel_size}")
    torch_padding = 1
    output_padding = 4 - kernel_size
    low = kernel_size - 1 - torch_padding
    pads = ((low, low + output_padding),) * 2
    return nn.ConvTranspose(
            features,
            (kernel_size, kernel_size),
            strides=(2, 2),
            padding=pads,
            kernel_init=CONV_INIT,
            bias_init=BIAS_INIT,
            name=name,
    )


class Upsample2x(nn.Module):
    """Doubles H and W and maps to `features` channels (no norm, no activation).

    'resize' is nearest-neighbour x2 then a reflect-padded 3x3 conv. It is the
    default because XLA's CPU gradient of a transposed conv is roughly an order
    of magnitude slower than PyTorch's, and resize-conv also avoids the
    checkerboard artefacts of strided transposed convs. 'transpose' is the
    reference's ConvTranspose2d, kept for parity.
    """

    features: int
    mode: Upsample = "resize"
    transpose_kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.mode == "resize":
            return ReflectConv(self.features, 3, 1, name="resize_conv")(
                    upsample_nearest(x, 2)
            )
        if self.mode == "transpose":
            return transpose_conv_2x(
                    self.features, self.transpose_kernel_size, name="transpose_conv"
            )(x)
        raise ValueError(
                f"unknown upsample {self.mode!r}; expected 'resize' or 'transpose'"
        )
