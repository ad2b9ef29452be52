"""Every member's translations of a set of images, as evaluation reads them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.images import downsample, from_model_range, to_model_range, upsample
from jax_translate.training.methods import Method

# With cfg.test_dropout, image i is translated with the dropout key
# fold_in(PRNGKey(EVAL_DROPOUT_SEED), i): the same for every member, run and
# chunking, so evaluations repeat exactly.
EVAL_DROPOUT_SEED = 0


def translate_all(method: Method, generators, images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(members, N, H, W) translations in [0, 1] of (N, H, W) images in [0, 1].

    Images are upscaled by ``cfg.upscale`` for the generator and its output
    area-averaged back to (H, W), so metrics and the classifier see the
    dataset's size. With ``cfg.test_dropout`` dropout stays on, with one fixed
    key per image (:data:`EVAL_DROPOUT_SEED`).
    """
    cfg = method.cfg

    def one_member(generator, x, keys):
        x = upsample(x, cfg.upscale)
        if cfg.test_dropout:
            y = jax.vmap(lambda xi, k: method.translate(generator, xi[None], dropout_key=k)[0])(
                x, keys)
        else:
            y = method.translate(generator, x)
        return downsample(y, cfg.upscale)

    fn = jax.jit(jax.vmap(one_member, in_axes=(0, None, None)))
    x = to_model_range(images, cfg.intensity_range)
    base = jax.random.PRNGKey(EVAL_DROPOUT_SEED)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(len(x)))
    parts = [np.asarray(fn(generators, jnp.asarray(x[i:i + chunk]), keys[i:i + chunk]))
             for i in range(0, len(x), chunk)]
    return from_model_range(np.concatenate(parts, axis=1), cfg.intensity_range)
