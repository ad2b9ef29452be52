"""Loss terms of the four methods, as in pytorch-CycleGAN-and-pix2pix (2017)."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def lsgan_loss(scores: jnp.ndarray, target_is_real: bool) -> jnp.ndarray:
    """Least-squares GAN: mean (D(x) - 1)^2 for real targets, D(x)^2 for fake."""
    target = 1.0 if target_is_real else 0.0
    return jnp.mean((scores - target) ** 2)


def vanilla_gan_loss(logits: jnp.ndarray, target_is_real: bool) -> jnp.ndarray:
    """Binary cross-entropy on logits (pix2pix's default GAN loss)."""
    labels = jnp.full_like(logits, 1.0 if target_is_real else 0.0)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


def l1_loss(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(jnp.abs(a - b))


GAN_LOSSES = {"lsgan": lsgan_loss, "vanilla": vanilla_gan_loss}
