"""FLOPs of the networks and of one member's training step, from layer shapes.

Why analytic: XLA's cost analysis of a GPU program does not count the
convolutions it hands to cuDNN (it reported 0.1 GFLOP for a 4.3 GFLOP step
on an H100), and a scan body is counted once whatever its trip count. The
count here is 2 x multiply-accumulates of every convolution and matmul, the
convention of published TFLOP/s peaks; elementwise work (instance norm,
activations, Adam) is left out, as it is tiny next to the convolutions
(tested against XLA's CPU cost analysis of a jitted forward pass).

At 256x128 the ResNet-9 generator's forward pass is 56.0 GFLOP with resize
convolutions (48.7 with the reference's transposed convs) and the PatchGAN's
3.05 GFLOP (docs/paper_protocol.md). Both transposed-conv forms, lax's and
``layers.TransposeConv2x``'s four phases, cost k*k*C_in*C_out MACs per
*input* pixel; a resize conv costs 3*3*C_in*C_out per *output* pixel, 4x as
many.

A training step runs each network several times (:func:`method_passes`);
a pass that trains its weights costs 3 forwards (backward = 2x forward:
input and weight gradients), a discriminator inside the generator's loss
costs 2 (input gradients only), a pass with no gradient costs 1.
"""

from __future__ import annotations

import dataclasses

from jax_translate.model_config import ModelConfig

# Forward-pass multiples of one pass, by what its backward pass computes.
PASS_COST = {"forward": 1, "input_grad": 2, "train": 3}


def _taps(size: int, kernel: int, stride: int, padding: int, count_padding: bool):
    """(output length, kernel taps summed over outputs) along one axis."""
    out = (size + 2 * padding - kernel) // stride + 1
    if count_padding:
        return out, out * kernel
    return out, sum(0 <= o * stride - padding + t < size for o in range(out) for t in range(kernel))


def conv_macs(height: int, width: int, kernel: int, c_in: int, c_out: int, stride: int = 1,
              padding: int = 0, count_padding: bool = True) -> tuple[int, int, int]:
    """(MACs, out height, out width) of a square zero-padded conv on a (height, width) map.

    ``count_padding=False`` leaves out the taps that fall on zero padding, as
    XLA's cost analysis does (cuDNN and PyTorch compute them).
    """
    out_h, taps_h = _taps(height, kernel, stride, padding, count_padding)
    out_w, taps_w = _taps(width, kernel, stride, padding, count_padding)
    return taps_h * taps_w * c_in * c_out, out_h, out_w


def _upsample_macs(height: int, width: int, c_in: int, c_out: int, mode: str,
                   transpose_kernel: int) -> int:
    """MACs of ``layers.Upsample2x`` on a (height, width) input."""
    if mode == "resize":  # 3x3 conv at the doubled size
        return 9 * c_in * c_out * (2 * height) * (2 * width)
    return transpose_kernel * transpose_kernel * c_in * c_out * height * width


def generator_forward_flops(model: ModelConfig, image_shape: tuple[int, int],
                            in_channels: int = 1, out_channels: int = 1,
                            count_padding: bool = True) -> int:
    """FLOPs (2 x MACs) of one generator forward pass on one (H, W) image."""
    h, w = image_shape
    pad = count_padding
    if model.generator == "unet":
        return 2 * _unet_macs(model, h, w, in_channels, out_channels, pad)
    ngf = model.ngf
    macs = 49 * in_channels * ngf * h * w                       # stem, 7x7 after reflect pad
    c = ngf
    widths = [ngf * 2**i for i in range(model.n_down + 1)]
    for features in widths[1:]:                                 # stride-2 downsamplings
        m, h, w = conv_macs(h, w, 3, c, features, stride=2, padding=1, count_padding=pad)
        macs, c = macs + m, features
    macs += model.n_blocks * 2 * 9 * c * c * h * w              # residual blocks
    for features in reversed(widths[:-1]):
        macs += _upsample_macs(h, w, c, features, model.upsample, 3)
        h, w, c = 2 * h, 2 * w, features
    macs += 49 * c * out_channels * h * w                       # head
    return 2 * macs


def _unet_macs(model: ModelConfig, h: int, w: int, in_channels: int, out_channels: int,
               count_padding: bool) -> int:
    widths = [model.ngf * min(2**level, 8) for level in range(model.num_downs)]
    macs, c, sizes = 0, in_channels, [(h, w)]
    for features in widths:
        m, h, w = conv_macs(h, w, 4, c, features, stride=2, padding=1,
                            count_padding=count_padding)
        macs, c = macs + m, features
        sizes.append((h, w))
    innermost = model.num_downs - 1
    for level in range(innermost, 0, -1):  # input: innermost skip, then (skip, up) concatenated
        c_in = widths[innermost] if level == innermost else 2 * widths[level]
        macs += _upsample_macs(*sizes[level + 1], c_in, widths[level - 1], model.upsample, 4)
    return macs + _upsample_macs(*sizes[1], 2 * widths[0], out_channels, model.upsample, 4)


def discriminator_forward_flops(model: ModelConfig, image_shape: tuple[int, int],
                                in_channels: int = 1, count_padding: bool = True) -> int:
    """FLOPs of one PatchGAN forward pass (``PatchDiscriminator``) on one image."""
    (h, w), c, macs = image_shape, in_channels, 0
    h, w = h // model.d_pool, w // model.d_pool  # it judges block means (the pooling: ~0)
    layers = [(model.ndf * min(2**n, 8), 2) for n in range(model.n_disc_layers)]
    layers += [(model.ndf * min(2**model.n_disc_layers, 8), 1), (1, 1)]
    for features, stride in layers:
        m, h, w = conv_macs(h, w, 4, c, features, stride, 1, count_padding)
        macs, c = macs + m, features
    return 2 * macs


@dataclasses.dataclass(frozen=True)
class StepPasses:
    """How many passes of each kind one member's training step runs."""

    generator: dict[str, int]
    discriminator: dict[str, int]
    discriminator_channels: int = 1  # 2 for condgan's (source, image) pairs


def method_passes(method: str, discriminator_first: bool = False) -> StepPasses:
    """The passes of ``methods.train_step`` for ``method``, from its spec (catalog.py).

    cyclegan: G loss runs ab(a), ba(b), ba(fake_b), ab(fake_a), ab(b), ba(a)
    (6 trained generator passes) and D_b(fake_b), D_a(fake_a) (2 with input
    gradients); D loss runs each discriminator on a real and a pooled fake
    (4 trained). gan and condgan: 1 generator, 1 + 2 discriminator passes;
    a step that updates the discriminator first (``discriminator_first``:
    condgan's option, always for cut and fastcut) adds one gradient-free
    generator pass for the fakes D trains on. l1: one generator pass. cut's PatchNCE
    encoder passes are counted as whole passes (an upper bound); cyclegan-cc's
    small segmenters are not counted.
    """
    from jax_translate.catalog import SPECS

    spec = SPECS[method]
    generator = dict(spec.generator_passes)
    if discriminator_first:
        generator["forward"] = generator.get("forward", 0) + 1
    return StepPasses(generator, dict(spec.discriminator_passes),
                      discriminator_channels=2 if spec.conditional else 1)


def member_step_flops(cfg, image_shape: tuple[int, int]) -> float:
    """FLOPs of one member's training step of SweepConfig ``cfg`` at the model's (H, W).

    ``image_shape`` is what the models see (``images.model_image_shape``:
    the dataset's size times ``cfg.upscale``). Batch size multiplies it.
    """
    from jax_translate.catalog import SPECS

    passes = method_passes(cfg.method, SPECS[cfg.method].discriminator_first(cfg))
    g = generator_forward_flops(cfg.model, image_shape)
    d = discriminator_forward_flops(cfg.model, image_shape, passes.discriminator_channels)
    total = (g * sum(PASS_COST[k] * n for k, n in passes.generator.items())
             + d * sum(PASS_COST[k] * n for k, n in passes.discriminator.items()))
    return float(total * cfg.batch_size)


# Dense tensor-core peaks (FLOP/s) by device kind, from the vendors' data
# sheets (no sparsity): (bf16/fp16, TF32). Matched as lower-case substrings
# of jax's ``device_kind``, first match wins (H100 PCIe and NVL before SXM).
PEAK_FLOPS: tuple[tuple[str, float, float], ...] = (
    ("h100 pcie", 756e12, 378e12),
    ("h100 nvl", 835e12, 418e12),
    ("h100", 989e12, 494e12),    # SXM, e.g. "NVIDIA H100 80GB HBM3"
    ("h200", 989e12, 494e12),
    ("gh200", 989e12, 494e12),
    ("a100", 312e12, 156e12),
    ("l4", 121e12, 60e12),
)


def peak_flops(device_kind: str) -> dict[str, float] | None:
    """{"bf16": ..., "tf32": ...} FLOP/s for a known ``device_kind``, else None."""
    kind = device_kind.lower()
    for name, bf16, tf32 in PEAK_FLOPS:
        if name in kind:
            return {"bf16": bf16, "tf32": tf32}
    return None


def utilisation(flops_per_member_step: float, member_steps_per_s: float,
                peaks: dict[str, float]) -> dict[str, float]:
    """Achieved FLOP/s over each named peak (e.g. tf32, bf16, measured)."""
    achieved = flops_per_member_step * member_steps_per_s
    return {name: achieved / peak for name, peak in peaks.items() if peak}
