"""Differentiable augmentation of what a discriminator sees (DiffAugment, Zhao et al. 2020).

With 680 images per domain, a discriminator whose field covers the whole
64x64 image sees each real image as one sample and can memorise the set.
DiffAugment applies the same random transformations to real and fake inputs
(and, differentiably, to the fakes the generator is graded on), so the
discriminator cannot tell them apart by the transformation and the generator
is not pushed to reproduce it. ADA (Karras et al. 2020) applies each
transformation to an image with a probability ``p``; we follow that, with
DiffAugment's two geometric ones: translation by up to 1/8 of the image
size (the gap filled with the background) and cutout of a square of half
the image size (set to 0, as DiffAugment does). No colour transformations:
intensity and contrast are what the translation is judged on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def diff_augment(images: jnp.ndarray, key: jax.Array, p, background: float = -1.0
                 ) -> jnp.ndarray:
    """(B, H, W, C) images, each translated with probability ``p`` and cut out with
    probability ``p``, independently (every channel of an image alike)."""
    _, height, width, channels = images.shape
    shift_h, shift_w = max(height // 8, 1), max(width // 8, 1)
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]

    def one(image, key):
        keys = jax.random.split(key, 6)
        padded = jnp.pad(image, ((shift_h, shift_h), (shift_w, shift_w), (0, 0)),
                         constant_values=background)
        dy = jax.random.randint(keys[0], (), 0, 2 * shift_h + 1)
        dx = jax.random.randint(keys[1], (), 0, 2 * shift_w + 1)
        shifted = jax.lax.dynamic_slice(padded, (dy, dx, 0), (height, width, channels))
        image = jnp.where(jax.random.uniform(keys[2]) < p, shifted, image)
        cy = jax.random.randint(keys[3], (), 0, height)
        cx = jax.random.randint(keys[4], (), 0, width)
        hole = (jnp.abs(rows - cy) < height // 4) & (jnp.abs(cols - cx) < width // 4)
        cut = jnp.where(hole[..., None], 0.0, image)
        return jnp.where(jax.random.uniform(keys[5]) < p, cut, image)

    return jax.vmap(one)(images, jax.random.split(key, images.shape[0]))
