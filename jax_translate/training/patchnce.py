"""PatchNCE (Park et al., ECCV 2020): the contrastive term of CUT and FastCUT.

A patch of the translation G(x) should be closer to the patch of x at the
same place than to x's other patches. Read against taesungp/contrastive-
unpaired-translation (``models/patchnce.py``, ``PatchSampleF`` in
``models/networks.py``, ``calculate_NCE_loss`` in ``models/cut_model.py``):

- features: the generator's encoder applied to the source and, separately,
  to the translation. The reference takes layers 0, 4, 8, 12, 16 of its
  ``resnet_9blocks`` Sequential: the reflect-padded input, the first and
  second downsampling conv (before norm), and the 1st and 5th residual
  block. Ours are the same maps of our ResNet (``ResnetGenerator(...,
  encode_only=True)``): the input (unpadded), ``down0`` and ``down1`` (before
  norm; stride-2 convs, where the reference's antialiased convs have stride 1
  and blur-pool after, so ours sit at half the reference's resolution), and
  blocks 0 and ``n_blocks // 2`` (4 of 9; the cpu preset's 3 blocks: 0 and 1;
  the tiny preset's single block appears once).
- ``num_patches`` locations per layer, drawn without replacement (all of them
  when the map is smaller), the same for every image of the batch and for
  source and translation; each layer has its own 2-layer MLP head.
- per patch: cross-entropy of (positive, negatives) / T with the positive at
  index 0; negatives are the source's other patches of the same image (the
  reference's default ``nce_includes_all_negatives_from_minibatch=False``);
  the self-similarity entries are set to -10 before dividing by T, as there.
  The source (key) side gets no gradient.
- the layer losses are averaged, each weighted by lambda_NCE.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MASKED_LOGIT = -10.0  # the reference's fill for the meaningless self-similarities


def patch_nce_loss(queries: jnp.ndarray, keys: jnp.ndarray, temperature: float) -> jnp.ndarray:
    """(B, N, C) L2-normalised queries (translation) and keys (source) -> (B, N) losses."""
    keys = jax.lax.stop_gradient(keys)
    positive = jnp.sum(queries * keys, axis=-1, keepdims=True)               # (B, N, 1)
    negative = jnp.einsum("bnc,bmc->bnm", queries, keys)                     # (B, N, N)
    n = queries.shape[1]
    negative = jnp.where(jnp.eye(n, dtype=bool), MASKED_LOGIT, negative)
    logits = jnp.concatenate([positive, negative], axis=-1) / temperature
    return -jax.nn.log_softmax(logits, axis=-1)[..., 0]


def sample_locations(key: jax.Array, n_positions: int, num_patches: int) -> jnp.ndarray:
    """min(num_patches, n_positions) distinct flat positions, in random order."""
    return jax.random.permutation(key, n_positions)[:min(num_patches, n_positions)]


def gather_patches(features: jnp.ndarray, locations: jnp.ndarray) -> jnp.ndarray:
    """(B, H, W, C) feature map -> (B, len(locations), C) feature vectors."""
    b, h, w, c = features.shape
    return features.reshape(b, h * w, c)[:, locations]


def nce_loss(head, source_features: list, translation_features: list, key: jax.Array,
             num_patches: int, temperature: float, lambda_nce: float) -> jnp.ndarray:
    """calculate_NCE_loss of the reference: the mean over layers of lambda * mean PatchNCE.

    ``head(layer, vectors)`` projects (B, N, C) vectors of layer ``layer``.
    """
    total = 0.0
    for layer, (src, tgt) in enumerate(zip(source_features, translation_features)):
        locations = sample_locations(jax.random.fold_in(key, layer),
                                     src.shape[1] * src.shape[2], num_patches)
        keys = head(layer, gather_patches(src, locations))
        queries = head(layer, gather_patches(tgt, locations))
        total = total + lambda_nce * jnp.mean(patch_nce_loss(queries, keys, temperature))
    return total / len(source_features)
