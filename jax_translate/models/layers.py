"""Building blocks shared by the generators and the discriminator.

The networks mirror the 2017 pytorch-CycleGAN-and-pix2pix code that the paper
used (ieee8023/dist-bias is a fork of it), so these helpers reproduce its
conventions: weights drawn from normal(0, 0.02) with zero biases
(`init_weights('normal', 0.02)`), reflection padding in the ResNet generator,
and instance normalisation without learnable affine parameters
(`InstanceNorm2d(affine=False)`).

All tensors are NHWC float32.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
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


def _polyphase_taps(kernel_size: int) -> np.ndarray:
    """0/1 map from a transposed-conv kernel to its four stride-1 phases.

    For PyTorch's ConvTranspose2d(stride 2, padding 1, output_padding
    4 - kernel) the output is (H - 1) * 2 - 2 + kernel + output_padding = 2H.
    In lax terms that is the stride-dilated input padded by
    low = kernel - 2 (and high = 2) and correlated with the kernel, so output
    row 2m + a reads input row m + d through kernel tap j = 2d + low - a.
    Returns S[d, e, a, b, j, l] = 1 where tap (j, l) links input offset
    (d, e) to output phase (a, b); offsets run from -(low // 2) upwards.
    """
    low = kernel_size - 2
    offsets = range(-(low // 2), (low + 1) // 2 + 1)
    taps = np.zeros((len(offsets), 2, kernel_size), np.float32)
    for i, d in enumerate(offsets):
        for a in (0, 1):
            j = 2 * d + low - a
            if 0 <= j < kernel_size:
                taps[i, a, j] = 1.0
    # Rows and columns choose their taps independently.
    return np.einsum("paj,qbl->pqabjl", taps, taps)


class TransposeConv2x(nn.Module):
    """The reference's ConvTranspose2d(kernel, stride 2, padding 1), exactly 2x.

    Computed in its polyphase form: one stride-1 conv of the input producing
    the four output phases as channels, then depth-to-space. This is the same
    function as nn.ConvTranspose with padding (low, low + 4 - kernel) and the
    same (kernel, kernel, in, out) parameter, but XLA on CPU computes the
    kernel gradient of a transposed conv (a conv with a dilated input) about
    7x slower than that of an ordinary conv, and this layer's backward pass
    is the training hot spot. The kernel is the spatial flip of PyTorch's
    weight; the function family and init distribution are the same.
    """

    features: int
    kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kernel_size not in (3, 4):
            raise ValueError(f"kernel_size must be 3 or 4, got {self.kernel_size}")
        k = self.kernel_size
        in_features = x.shape[-1]
        kernel = self.param("kernel", CONV_INIT, (k, k, in_features, self.features))
        bias = self.param("bias", BIAS_INIT, (self.features,))

        taps = _polyphase_taps(k)
        n_offsets = taps.shape[0]
        phase_kernel = jnp.einsum("pqabjl,jlio->pqiabo", taps, kernel).reshape(
            n_offsets, n_offsets, in_features, 4 * self.features
        )
        low = k - 2
        pad = (low // 2, (low + 1) // 2)
        y = jax.lax.conv_general_dilated(
            x,
            phase_kernel,
            window_strides=(1, 1),
            padding=(pad, pad),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        n, h, w, _ = y.shape
        y = y.reshape(n, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(n, 2 * h, 2 * w, self.features) + bias


class Upsample2x(nn.Module):
    """Doubles H and W and maps to `features` channels (no norm, no activation).

    'resize' (the default) is nearest-neighbour x2 then a reflect-padded 3x3
    conv, which avoids the checkerboard artefacts of strided transposed convs.
    'transpose' is the reference's ConvTranspose2d (see `TransposeConv2x`),
    kept for parity with the paper; both have the same parameter count for
    the ResNet's 3x3 kernels.
    """

    features: int
    mode: Upsample = "resize"
    transpose_kernel_size: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.mode == "resize":
            conv_layer = ReflectConv(self.features, 3, 1, name="resize_conv")
            return conv_layer(upsample_nearest(x, 2))
        if self.mode == "transpose":
            conv_layer = TransposeConv2x(
                self.features, self.transpose_kernel_size, name="transpose_conv"
            )
            return conv_layer(x)
        raise ValueError(f"unknown upsample {self.mode!r}; expected 'resize' or 'transpose'")
