"""The image pool of Shrivastava et al. (2017), as a pure function.

Discriminators see a mix of the newest fakes and older ones, which damps
oscillation. Same rule as the reference ``ImagePool``: until the pool is full,
each new image is stored and returned; after that, with probability 1/2 a
random stored image is returned and replaced by the new one, else the new
image is returned as is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def init_pool(size: int, image_shape: tuple[int, ...]) -> dict:
    return {"images": jnp.zeros((size, *image_shape), jnp.float32),
            "count": jnp.zeros((), jnp.int32)}


def query_pool(pool: dict, images: jnp.ndarray, key: jax.Array) -> tuple[dict, jnp.ndarray]:
    """Returns (new pool, images for the discriminator) for a batch of fakes."""
    size = pool["images"].shape[0]
    if size == 0:
        return pool, images

    def one(pool, inputs):
        image, key = inputs
        coin_key, slot_key = jax.random.split(key)
        full = pool["count"] >= size
        swap = full & (jax.random.uniform(coin_key) < 0.5)
        slot = jnp.where(full, jax.random.randint(slot_key, (), 0, size), pool["count"])
        stored = pool["images"][slot]
        out = jnp.where(swap, stored, image)
        write = jnp.where(full & ~swap, stored, image)  # keep the pool when not swapping
        pool = {"images": pool["images"].at[slot].set(write),
                "count": jnp.minimum(pool["count"] + 1, size)}
        return pool, out

    keys = jax.random.split(key, images.shape[0])
    return jax.lax.scan(one, pool, (images, keys))
