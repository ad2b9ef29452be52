"""Building blocks shared by the generators and the discriminator.

The networks mirror the 2017 pytorch-CycleGAN-and-pix2pix code that the paper
used (ieee8023/dist-bias is a fork of it), so these helpers reproduce its
conventions: weights drawn from normal(0, 0.02) with zero biases
(`init_weights('normal', 0.02)`), reflection padding in the ResNet generator,
and instance normalisation without learnable affine parameters
(`InstanceNorm2d(affine=False)`).

All tensors are NHWC float32. With ``precision="bf16"`` the convolutions
and matmuls (forward and backward) take bfloat16 operands and give float32
results (:func:`in_precision`); parameters, normalisation and activations
stay float32.
"""

from __future__ import annotations

from typing import Callable, Literal

import jax
import jax.numpy as jnp
from flax import linen as nn

from jax_translate.model_config import CONV_IMPLS, PRECISIONS

# The reference initialises every Conv and ConvTranspose weight from
# normal(0, 0.02) and every bias to zero; flax's defaults (lecun normal) would
# give a differently scaled starting point.
CONV_INIT = nn.initializers.normal(stddev=0.02)
BIAS_INIT = nn.initializers.zeros

Norm = Literal["instance", "none"]
Upsample = Literal["resize", "transpose"]
PadMode = Literal["reflect", "zero"]

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
    about 5x cheaper on CPU than resize's gradient.
    """
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
    return x.reshape(n, h * factor, w * factor, c)


ConvImpl = Literal["xla", "patches"]
# How a Conv2d computes (its `conv_impl` attribute, like the conv function
# Flax's nn.Conv takes as an attribute). 'xla' is lax.conv (cuDNN on GPUs).
# 'patches' is shifted slices and matmuls (:func:`conv_as_matmuls`): same
# function and parameters, but when a sweep is vmapped over members (each
# with its own weights) the matmuls batch into batched GEMMs, where lax.conv
# would become a grouped convolution, which is slow on GPUs and CPUs alike
# (benchmarks/). The names: model_config.CONV_IMPLS.

Precision = Literal["fp32", "bf16"]  # model_config.PRECISIONS


def in_precision(op: Callable, x: jax.Array, kernel: jax.Array, precision: Precision) -> jax.Array:
    """``op(x, kernel, out_dtype)`` (a conv or matmul) computed in ``precision``.

    'fp32' is ``op(x, kernel, None)``, exactly the float32 computation. 'bf16'
    rounds both operands to bfloat16 and asks for float32 results
    (``preferred_element_type``), so what follows (bias, instance-norm
    statistics, activations, losses) stays float32. The backward pass is
    defined here too: JAX's own transpose of such an op gets a float32
    cotangent and would upcast the bfloat16 operands to match, running the
    backward convolutions (two thirds of a step's FLOPs) in float32; here the
    cotangent is rounded to bfloat16 and both gradients are bfloat16 ops.
    Gradients come back as float32 (bfloat16-rounded) for the float32
    parameters and Adam.
    """
    if precision == "fp32":
        return op(x, kernel, None)
    if precision != "bf16":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    x_dtype, kernel_dtype = x.dtype, kernel.dtype

    def forward(x, kernel):
        x, kernel = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
        return op(x, kernel, jnp.float32), (x, kernel)

    @jax.custom_vjp
    def run(x, kernel):
        return forward(x, kernel)[0]

    def backward(operands, cotangent):
        _, vjp = jax.vjp(lambda a, b: op(a, b, None), *operands)
        dx, dkernel = vjp(cotangent.astype(jnp.bfloat16))
        return dx.astype(x_dtype), dkernel.astype(kernel_dtype)

    run.defvjp(forward, backward)
    return run(x, kernel)


def conv_as_matmuls(x: jax.Array, kernel: jax.Array, stride: int, padding: int,
                    out_dtype=None) -> jax.Array:
    """lax.conv (NHWC, HWIO, symmetric zero padding) as one matmul per kernel row.

    Each kernel row i multiplies the input's strided slices at column
    offsets 0..k-1, concatenated on channels, by kernel[i]; summing the rows
    gives the convolution. Per-row patches hold k, not k*k, copies of the
    input. Memory is the price: XLA's estimate for a vmapped cyclegan step
    (cpu preset, 128x128, 4 members) is 2.1 GB against 0.42 GB with lax.conv,
    and 11 paper-sized members did not fit in 40 GB of an H100. Wrapping this
    in jax.checkpoint made the estimate larger (2.9 GB), so it is not.
    ``out_dtype`` is the matmuls' ``preferred_element_type`` (None: the inputs').
    """
    k = kernel.shape[0]
    if padding:
        x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    height = (x.shape[1] - k) // stride + 1
    width = (x.shape[2] - k) // stride + 1
    rows_end, cols_end = stride * (height - 1) + 1, stride * (width - 1) + 1
    out = 0.0
    for i in range(k):
        row = x[:, i : i + rows_end : stride]
        patches = jnp.concatenate([row[:, :, j : j + cols_end : stride] for j in range(k)], -1)
        out = out + jnp.matmul(patches, kernel[i].reshape(-1, kernel.shape[-1]),
                               preferred_element_type=out_dtype)
    return out


class Conv2d(nn.Module):
    """nn.Conv's parameters ('kernel' HWIO, 'bias'), computed as ``conv_impl`` and
    ``precision`` say."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    conv_impl: ConvImpl = "xla"
    precision: Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, p = self.kernel_size, self.stride, self.padding
        kernel = self.param("kernel", CONV_INIT, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", BIAS_INIT, (self.features,))
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {self.conv_impl!r}")
        if self.conv_impl == "patches":
            def op(x, kernel, out_dtype):
                return conv_as_matmuls(x, kernel, s, p, out_dtype)
        else:
            def op(x, kernel, out_dtype):
                return jax.lax.conv_general_dilated(
                    x, kernel, (s, s), ((p, p), (p, p)),
                    dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=out_dtype)
        y = in_precision(op, x, kernel, self.precision)
        return y + bias


def conv(
    features: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    name: str | None = None,
    conv_impl: ConvImpl = "xla",
    precision: Precision = "fp32",
) -> Conv2d:
    """A Conv2d with the reference's init and symmetric zero padding.

    Every conv keeps its bias: with affine-free instance norm the reference sets
    use_bias=True, and the layers without norm have a bias by default anyway.
    """
    return Conv2d(features, kernel_size, stride, padding, conv_impl, precision, name=name)


class PaddedConv(nn.Module):
    """An unpadded conv after reflect or zero padding of `pad` pixels.

    Reflection (torch's ReflectionPad2d) is what the ResNet generator uses to
    avoid dark borders; zero padding is what the UNet uses.
    """

    features: int
    kernel_size: int
    pad: int
    pad_mode: PadMode = "reflect"
    conv_impl: ConvImpl = "xla"
    precision: Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        how = dict(conv_impl=self.conv_impl, precision=self.precision)
        if self.pad_mode == "reflect":
            x = reflect_pad(x, self.pad)
            return conv(self.features, self.kernel_size, name="conv", **how)(x)
        if self.pad_mode == "zero":
            return conv(self.features, self.kernel_size, padding=self.pad, name="conv", **how)(x)
        raise ValueError(f"unknown pad_mode {self.pad_mode!r}; expected 'reflect' or 'zero'")


def _phase_taps(kernel_size: int, phase: int) -> list[tuple[int, int]]:
    """(input offset d, kernel tap j) pairs feeding output rows 2m + phase.

    PyTorch's ConvTranspose2d(stride 2, padding 1, output_padding
    4 - kernel) gives (H - 1) * 2 - 2 + kernel + output_padding = 2H rows. In
    lax terms it correlates the stride-dilated input, padded by
    low = kernel - 2 (and high = 2), with the kernel; so row 2m + a reads
    input row m + d through tap j = 2d + low - a.
    """
    low = kernel_size - 2
    taps = []
    for d in range(-(low // 2), (low + 1) // 2 + 1):
        j = 2 * d + low - phase
        if 0 <= j < kernel_size:
            taps.append((d, j))
    return taps


class TransposeConv2x(nn.Module):
    """The reference's ConvTranspose2d(kernel, stride 2, padding 1), exactly 2x.

    Same function as nn.ConvTranspose with padding (low, low + 4 - kernel) and
    the same (kernel, kernel, in, out) parameter, computed in polyphase form:
    each of the four output phases (even/odd row, even/odd column) is a
    matmul of shifted copies of the input with the taps that reach it, and
    the phases are interleaved. Why not lax.conv_transpose: XLA on CPU
    computes its kernel gradient (a conv with a dilated input) 6-7x slower
    than this form's backward pass, and the backward pass is the training
    hot spot. Why matmuls rather than one stride-1 conv: XLA's CPU conv is
    pathologically slow (~50x) on the UNet's 2x2 maps with many channels.
    The kernel is the spatial flip of PyTorch's weight; the function family
    and init distribution are the same.
    """

    features: int
    kernel_size: int = 3
    precision: Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        if k not in (3, 4):
            raise ValueError(f"kernel_size must be 3 or 4, got {k}")
        kernel = self.param("kernel", CONV_INIT, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", BIAS_INIT, (self.features,))
        return in_precision(self._polyphase, x, kernel, self.precision) + bias

    def _polyphase(self, x: jax.Array, kernel: jax.Array, out_dtype) -> jax.Array:
        k = self.kernel_size
        batch, height, width, _ = x.shape
        low = k - 2
        before, after = low // 2, (low + 1) // 2  # input offsets reach -before..after
        x = jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
        rows = []
        for row_phase in (0, 1):
            columns = []
            for col_phase in (0, 1):
                taps = [
                    (d, row_tap, e, col_tap)
                    for d, row_tap in _phase_taps(k, row_phase)
                    for e, col_tap in _phase_taps(k, col_phase)
                ]
                shifted = [
                    x[:, before + d : before + d + height, before + e : before + e + width]
                    for d, _, e, _ in taps
                ]
                # The taps of one phase are every other kernel row and column
                # in the order of `taps`, so one strided slice fetches them
                # (and its gradient is one pad, not one per tap).
                first_row, first_col = taps[0][1], taps[0][3]
                weights = kernel[first_row::2, first_col::2].reshape(-1, self.features)
                columns.append(jnp.matmul(jnp.concatenate(shifted, axis=-1), weights,
                                          preferred_element_type=out_dtype))
            rows.append(jnp.stack(columns, axis=3))  # (batch, H, W, col_phase, C)
        y = jnp.stack(rows, axis=2)  # (batch, H, row_phase, W, col_phase, C)
        return y.reshape(batch, 2 * height, 2 * width, self.features)


class Upsample2x(nn.Module):
    """Doubles H and W and maps to `features` channels (no norm, no activation).

    'resize' (the default) is nearest-neighbour x2 then a 3x3 conv padded by
    `pad_mode`, which avoids the checkerboard artefacts of strided transposed
    convs. 'transpose' is the reference's ConvTranspose2d (see
    `TransposeConv2x`), kept for parity with the paper; both have the same
    parameter count for the ResNet's 3x3 kernels.

    Zero padding matters for the UNet: its innermost level can be 1x1, and a
    1x1 map upsampled to 2x2 and reflect-padded is constant, so the conv output
    would be constant and the following instance norm would zero it.
    """

    features: int
    mode: Upsample = "resize"
    transpose_kernel_size: int = 3
    pad_mode: PadMode = "reflect"
    conv_impl: ConvImpl = "xla"  # the resize conv's; the transposed conv is always matmuls
    precision: Precision = "fp32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.mode == "resize":
            conv_layer = PaddedConv(self.features, 3, 1, self.pad_mode, self.conv_impl,
                                    self.precision, name="resize_conv")
            return conv_layer(upsample_nearest(x, 2))
        if self.mode == "transpose":
            conv_layer = TransposeConv2x(
                self.features, self.transpose_kernel_size, self.precision, name="transpose_conv"
            )
            return conv_layer(x)
        raise ValueError(f"unknown upsample {self.mode!r}; expected 'resize' or 'transpose'")
