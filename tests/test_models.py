"""Tests of the translation networks against the PyTorch reference's design."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jax_translate.configure import resolve
from jax_translate.errors import UsageError
from jax_translate.model_config import MODEL_PRESETS, ModelConfig
from jax_translate.models import (
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    build_discriminator,
    build_generator,
    layers,
)

SHAPES = [(2, 64, 64, 1), (1, 256, 128, 1)]


def _key(seed):
    # XLA on CPU takes ~2 s to compile each differently shaped threefry draw
    # (jax_threefry_partitionable), so a model init compiles for 5-10 s;
    # an rbg key draws from the same distributions and compiles in ~1 s.
    return jax.random.key(seed, impl="rbg")


def _images(shape, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1.0, 1.0, shape), jnp.float32)


def _n_params(params):
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def _small_generator(kind, upsample):
    if kind == "resnet":
        return ResnetGenerator(ngf=4, n_blocks=2, upsample=upsample)
    return UnetGenerator(ngf=4, num_downs=6, upsample=upsample)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("upsample", ["resize", "transpose"])
@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_generator_keeps_shape(kind, upsample, shape):
    generator = _small_generator(kind, upsample)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    params = jax.eval_shape(generator.init, _key(1), x)
    y = jax.eval_shape(generator.apply, params, x)
    assert (y.shape, y.dtype) == (shape, jnp.float32)


@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_generator_output_in_range(kind):
    generator = _small_generator(kind, "resize")

    @jax.jit
    def translate_loudly(x):
        # Large weights push pre-activations far beyond [-1, 1]; only the
        # final tanh keeps the output in range.
        params = generator.init(_key(1), x)
        return generator.apply(jax.tree.map(lambda p: p * 50.0, params), x)

    y = translate_loudly(_images((2, 64, 64, 1)))
    assert float(jnp.min(y)) >= -1.0 and float(jnp.max(y)) <= 1.0
    assert float(jnp.max(jnp.abs(y))) > 0.9


@pytest.mark.parametrize(
    "shape, expected",
    [((2, 64, 64, 1), (2, 6, 6, 1)), ((1, 256, 128, 1), (1, 30, 14, 1)), ((1, 256, 256, 2), (1, 30, 30, 1))],
)
def test_discriminator_output_shape(shape, expected):
    discriminator = PatchDiscriminator(ndf=4, n_layers=3)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    params = jax.eval_shape(discriminator.init, _key(1), x)
    # The conditional (pix2pix) discriminator just sees more input channels.
    assert params["params"]["conv0"]["kernel"].shape == (4, 4, shape[-1], 4)
    assert jax.eval_shape(discriminator.apply, params, x).shape == expected


@pytest.mark.parametrize("kernel_size", [3, 4])
def test_transpose_conv_matches_pytorch_semantics(kernel_size):
    """Polyphase layer == nn.ConvTranspose == PyTorch's ConvTranspose2d formula."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 7, 3)), jnp.float32)
    layer = layers.TransposeConv2x(4, kernel_size)
    params = layer.init(_key(1), x)
    params = jax.tree.map(lambda p: jax.random.normal(_key(2), p.shape), params)
    y = layer.apply(params, x)
    assert y.shape == (2, 10, 14, 4)

    low = kernel_size - 2
    flax_transpose = nn.ConvTranspose(
        4, (kernel_size, kernel_size), strides=(2, 2), padding=((low, low + 4 - kernel_size),) * 2
    )
    chex.assert_trees_all_close(y, flax_transpose.apply(params, x), atol=1e-4)

    # torch: out[o] += x[i] * w[o - 2 * i + padding], padding 1, output cut at
    # 2H; our kernel is torch's weight flipped in both spatial axes.
    weight = np.asarray(params["params"]["kernel"])[::-1, ::-1]
    x_np = np.asarray(x)
    expected = np.broadcast_to(np.asarray(params["params"]["bias"]), (2, 10, 14, 4)).copy()
    for i in range(5):
        for j in range(7):
            for u in range(kernel_size):
                for v in range(kernel_size):
                    row, col = 2 * i - 1 + u, 2 * j - 1 + v
                    if 0 <= row < 10 and 0 <= col < 14:
                        expected[:, row, col] += x_np[:, i, j] @ weight[u, v]
    chex.assert_trees_all_close(y, expected, atol=1e-4)


def test_nearest_upsampling_repeats_pixels():
    x = jnp.arange(2 * 3 * 4 * 2, dtype=jnp.float32).reshape(2, 3, 4, 2)
    expected = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(layers.upsample_nearest(x), expected)


def test_instance_norm_per_example_per_channel():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6, 5, 4)), jnp.float32)
    x = x * jnp.arange(1.0, 5.0) + 7.0
    y = np.asarray(layers.instance_norm(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    # Biased variance plus eps, as torch.nn.InstanceNorm2d.
    x_np = np.asarray(x, np.float64)
    expected = (x_np - x_np.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        x_np.var(axis=(1, 2), keepdims=True) + 1e-5
    )
    np.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize(
    "network",
    [
        ResnetGenerator(ngf=4, n_blocks=1),
        UnetGenerator(ngf=4, num_downs=6),
        PatchDiscriminator(ndf=4, n_layers=3),
    ],
    ids=["resnet", "unet", "patchgan"],
)
def test_examples_in_a_batch_are_independent(network):
    batch = _images((2, 64, 64, 1))
    params = jax.jit(network.init)(_key(1), batch)
    apply = jax.jit(network.apply)
    changed = batch.at[1].set(_images((64, 64, 1), seed=5) * 0.1 + 0.5)
    before, after = apply(params, batch), apply(params, changed)
    chex.assert_trees_all_close(before[0], after[0], atol=1e-6)
    assert not np.allclose(before[1], after[1], atol=1e-3)
    # And the same example in another batch gives the same output.
    swapped = jnp.stack([changed[1], batch[0]])
    chex.assert_trees_all_close(apply(params, swapped)[1], before[0], atol=1e-5)


@pytest.mark.parametrize("upsample", ["resize", "transpose"])
def test_paper_resnet9_parameter_count_matches_reference(upsample):
    # The PyTorch ResNet-9 generator, 1 channel in and out, ngf 64; each conv
    # is kh * kw * in * out weights + out biases.
    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    expected = (
        conv(7, 1, 64)  # reflect pad 3, c7s1-64
        + conv(3, 64, 128)  # stride-2 downsampling
        + conv(3, 128, 256)
        + 9 * 2 * conv(3, 256, 256)  # residual blocks, two convs each
        + conv(3, 256, 128)  # ConvTranspose2d(256, 128, 3): same count
        + conv(3, 128, 64)
        + conv(7, 64, 1)  # c7s1-1 before tanh
    )
    assert expected == 11_365_633
    cfg = ModelConfig(**{**vars(MODEL_PRESETS["paper"]), "upsample": upsample})
    generator = build_generator(cfg)
    params = jax.eval_shape(generator.init, _key(0), jnp.zeros((1, 64, 64, 1)))
    assert _n_params(params) == expected


def test_paper_patchgan_parameter_count_matches_reference():
    def conv(cin, cout):
        return 4 * 4 * cin * cout + cout

    expected = conv(1, 64) + conv(64, 128) + conv(128, 256) + conv(256, 512) + conv(512, 1)
    discriminator = build_discriminator(MODEL_PRESETS["paper"])
    params = jax.eval_shape(discriminator.init, _key(0), jnp.zeros((1, 256, 256, 1)))
    assert _n_params(params) == expected == 2_762_689


def test_unet_transpose_parameter_count_matches_reference():
    # pix2pix UNet with 6 levels: widths 64, 128, 256, 512, 512, 512; each
    # up-conv (4x4 ConvTranspose2d) reads the skip and the level below.
    def conv(cin, cout):
        return 4 * 4 * cin * cout + cout

    down = conv(1, 64) + conv(64, 128) + conv(128, 256) + conv(256, 512) + 2 * conv(512, 512)
    up = conv(512, 512) + conv(1024, 512) + conv(1024, 256) + conv(512, 128) + conv(256, 64) + conv(128, 1)
    generator = UnetGenerator(ngf=64, num_downs=6, upsample="transpose")
    params = jax.eval_shape(generator.init, _key(0), jnp.zeros((1, 64, 64, 1)))
    assert _n_params(params) == down + up


def test_patchgan_receptive_field_is_70():
    # Instance norm spreads a little gradient over the whole image, so the
    # window of the conv stack is measured with the norm switched off.
    discriminator = PatchDiscriminator(ndf=4, n_layers=3, norm="none")
    x = _images((1, 256, 256, 1))
    params = discriminator.init(_key(1), x)
    params = jax.tree.map(lambda p: p + 0.05, params)  # no accidental zero taps

    def score(x, row, col):
        return discriminator.apply(params, x)[0, row, col, 0]

    for row, col in [(15, 15), (3, 20)]:
        grad = np.asarray(jax.grad(score)(x, row, col))[0, :, :, 0]
        rows, cols = np.nonzero(grad)
        # Output pixel j sees inputs 8j - 23 ... 8j + 46.
        assert (rows.min(), rows.max()) == (8 * row - 23, 8 * row + 46)
        assert (cols.min(), cols.max()) == (8 * col - 23, 8 * col + 46)
        assert rows.size == 70 * 70


def test_weights_initialised_like_reference():
    discriminator = build_discriminator(MODEL_PRESETS["paper"])
    params = jax.jit(discriminator.init)(_key(0), jnp.zeros((1, 64, 64, 1)))["params"]
    for name, layer in params.items():
        assert float(jnp.max(jnp.abs(layer["bias"]))) == 0.0, name
        if layer["kernel"].size > 10_000:
            assert abs(float(jnp.std(layer["kernel"])) - 0.02) < 0.002, name


def test_unet_rejects_images_too_small_for_its_depth():
    generator = UnetGenerator(ngf=4, num_downs=7)
    with pytest.raises(ValueError, match="divisible by 128"):
        generator.init(_key(0), jnp.zeros((1, 64, 64, 1)))


def test_config_validation():
    with pytest.raises(UsageError, match="generator must be one of .*'vgg'"):
        ModelConfig(generator="vgg")
    with pytest.raises(UsageError, match="upsample must be one of .*'bilinear'"):
        ModelConfig(upsample="bilinear")
    assert {"paper", "cpu", "tiny"} <= set(MODEL_PRESETS)


@pytest.mark.parametrize("generator_kind", ["resnet", "unet"])
def test_tiny_preset_trains_every_layer(generator_kind):
    """A G-then-D value_and_grad step reaches every conv kernel.

    Biases are only checked for finiteness: a bias right before affine-free
    instance norm is cancelled by the mean subtraction (the reference keeps
    it anyway), so its gradient is zero up to rounding.
    """
    cfg = ModelConfig(**{**vars(MODEL_PRESETS["tiny"]), "generator": generator_kind})
    generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    source = _images((1, 64, 64, 1))
    params = {
        "generator": jax.jit(generator.init)(_key(1), source),
        # Conditional discriminator: (source, translated) on the channel axis.
        "discriminator": jax.jit(discriminator.init)(_key(2), jnp.zeros((1, 64, 64, 2))),
    }

    def loss(params, source):
        fake = generator.apply(params["generator"], source)
        scores = discriminator.apply(params["discriminator"], jnp.concatenate([source, fake], -1))
        return jnp.mean((scores - 1.0) ** 2) + jnp.mean(jnp.abs(fake - source))

    value, grads = jax.jit(jax.value_and_grad(loss))(params, source)
    assert np.isfinite(float(value))
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.all(jnp.isfinite(grad))), path
        if path[-1].key == "kernel":
            assert float(jnp.max(jnp.abs(grad))) > 1e-6, path


def test_generator_under_vmap_over_members():
    generator = build_generator(MODEL_PRESETS["tiny"])
    x = _images((1, 64, 64, 1))
    keys = jax.random.split(_key(0), 3)
    members = jax.jit(jax.vmap(generator.init, in_axes=(0, None)))(keys, x)
    stacked = jax.jit(jax.vmap(generator.apply, in_axes=(0, None)))(members, x)
    apply_one = jax.jit(generator.apply)
    for m in range(3):
        one = apply_one(jax.tree.map(lambda p: p[m], members), x)
        chex.assert_trees_all_close(stacked[m], one, atol=1e-5)


@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 1, 0), (3, 2, 1), (4, 2, 1),
                                                        (4, 1, 1), (7, 1, 0)])
def test_conv_as_matmuls_matches_lax_conv_and_its_gradients(kernel_size, stride, padding):
    rng = np.random.default_rng(kernel_size + stride)
    x = jnp.asarray(rng.standard_normal((2, 13, 11, 3)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((kernel_size, kernel_size, 3, 5)), jnp.float32)

    def xla(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (stride, stride), [(padding, padding)] * 2,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def patches(x, kernel):
        return layers.conv_as_matmuls(x, kernel, stride, padding)

    want, got = xla(x, kernel), patches(x, kernel)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
    for g_want, g_got in zip(jax.grad(loss(xla), (0, 1))(x, kernel),
                             jax.grad(loss(patches), (0, 1))(x, kernel)):
        np.testing.assert_allclose(g_got, g_want, atol=1e-3)


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_conv_impl_switches_the_computation_not_the_parameters(generator):
    model = dataclasses.replace(MODEL_PRESETS["tiny"], generator=generator, num_downs=5)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)), jnp.float32)
    for build, inputs in ((build_generator, x), (build_discriminator, x)):
        net = build(model)
        patched_net = build(model, "patches")
        params = net.init(jax.random.PRNGKey(0), inputs)
        chex.assert_trees_all_equal_shapes(params, patched_net.init(jax.random.PRNGKey(0), inputs))
        assert "conv_general_dilated" not in str(jax.make_jaxpr(patched_net.apply)(params, inputs))
        assert "conv_general_dilated" in str(jax.make_jaxpr(net.apply)(params, inputs))
        np.testing.assert_allclose(patched_net.apply(params, inputs), net.apply(params, inputs),
                                   atol=1e-5)
    with pytest.raises(UsageError, match="unknown conv impl"):
        resolve("cyclegan", "tiny", conv_impl="cudnn")


def test_resnet_dropout_acts_in_training_only():
    cfg = ModelConfig(generator="resnet", ngf=4, n_blocks=2, ndf=4, dropout=0.5)
    net = build_generator(cfg)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 1)), jnp.float32)
    params = net.init(jax.random.PRNGKey(0), x)
    plain = build_generator(dataclasses.replace(cfg, dropout=0.0))
    # Same parameters with and without dropout; at test time the same function.
    chex.assert_trees_all_equal_shapes(params, plain.init(jax.random.PRNGKey(0), x))
    np.testing.assert_allclose(net.apply(params, x), plain.apply(params, x), atol=1e-6)
    a, b = (net.apply(params, x, train=True, rngs={"dropout": jax.random.PRNGKey(k)})
            for k in (1, 2))
    assert float(jnp.abs(a - b).max()) > 1e-4
    with pytest.raises(UsageError, match="dropout"):
        ModelConfig(dropout=1.0)
    with pytest.raises(UsageError, match="ResNet"):
        ModelConfig(generator="unet", dropout=0.5)
