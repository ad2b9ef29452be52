"""cyclegan-cc's lesion-consistency term and the frozen segmenters it uses.

Two tumor segmenters, one per domain, are trained once on the **training**
split only (real source images with their masks, real target images with
theirs: Flair and T1 by default, two of the same modality for an identity
task), with the evaluation classifier's network and training code
(:mod:`jax_translate.training.segmenter`) but their own seeds, and never
the evaluator itself: a translator trained against the judge could learn to
please it. They are cached in the run folder and enter the compiled step as
data (``SharedData.frozen`` -> ``Batch.frozen``), behind ``stop_gradient``.

The term asks each translation to keep the source's lesion map: the
target-domain segmenter's tumor probabilities on G_ab(a) should equal the
source-domain segmenter's on a, and symmetrically for G_ba on target images:

    lesion_loss = mean (S_tgt(G_ab(a)) - S_src(a))^2 + mean (S_src(G_ba(b)) - S_tgt(b))^2

(probabilities on the segmenter's 2x coarser grid; the source side is a
constant target). A whole lesion of typical size (~2% of the pixels) that is
erased or invented costs ~0.02 per direction, so ``lambda_lesion`` 10 (the
cycle loss's weight) makes that ~0.2, the size of the LSGAN generator loss
near equilibrium (0.25): enough to compete with the adversarial pull that
adds or removes tumors, not so much that it dominates the translation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_translate.data.dataset import SliceSet
from jax_translate.images import downsample
from jax_translate.io_utils import atomic_write_json
from jax_translate.models.segmenter import TumorSegmenter
from jax_translate.training import segmenter

SEGMENTER_DIR = "lesion_segmenters"
# By domain. The evaluation classifier uses seed 0; these must differ from it and
# each other (also when both domains are one modality, as in the identity task).
SEGMENTER_SEEDS = {"target": 1, "source": 2}
DOMAINS = tuple(SEGMENTER_SEEDS)


def _fingerprint(train: SliceSet, source: str, target: str) -> str:
    """A short hash of the slices and masks a segmenter learns from."""
    digest = hashlib.sha1()
    for array in (train.image(source), train.image(target), train.tumor_mask, train.patient_id):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


def segmenter_config(steps: int, domain: str) -> segmenter.SegmenterConfig:
    return segmenter.SegmenterConfig(steps=steps, seed=SEGMENTER_SEEDS[domain])


def segmenter_shapes(image_shape: tuple[int, int]) -> dict:
    """What :func:`train_segmenters` returns, as shapes only (nothing trained)."""
    return {d: segmenter.params_shapes(segmenter_config(1, d).width, image_shape) for d in DOMAINS}


def train_segmenters(train: SliceSet, steps: int, cache_dir: Path | None = None,
                     source: str = "flair", target: str = "t1") -> dict:
    """{"target": params, "source": params}: segmenters of the ``target`` and ``source``
    modalities trained on ``train`` (the training split), read from / written to
    ``cache_dir/lesion_segmenters`` when given.

    Each cache entry's JSON records the patients and slice count it was
    trained on, so what a segmenter saw can be checked afterwards.
    """
    fingerprint = _fingerprint(train, source, target)
    frozen = {}
    for domain in DOMAINS:
        modality = {"source": source, "target": target}[domain]
        cfg = segmenter_config(steps, domain)
        # the seed tells the two domains apart where they share a modality
        name = f"{modality}_w{cfg.width}_steps{steps}_seed{cfg.seed}_{fingerprint}"
        path = Path(cache_dir) / SEGMENTER_DIR / name if cache_dir is not None else None
        cached = (segmenter.load_params(path / "params.msgpack", cfg.width,
                                        train.image(modality).shape[1:])
                  if path is not None else None)  # None if absent or damaged: retrain
        if cached is not None:
            frozen[domain] = cached
            continue
        frozen[domain] = segmenter.train_segmenter(train, cfg, modality=modality)
        if path is not None:
            segmenter.save_params(path / "params.msgpack", frozen[domain])
            atomic_write_json(path / "segmenter.json", {
                "modality": modality, "domain": domain, "config": dataclasses.asdict(cfg),
                "fingerprint": fingerprint, "n_slices": len(train),
                "patient_ids": sorted(int(p) for p in np.unique(train.patient_id))})
    return frozen


def trained_on(cache_dir: Path) -> list[dict]:
    """The records of every segmenter cached under ``cache_dir``."""
    return [json.loads(p.read_text())
            for p in sorted((Path(cache_dir) / SEGMENTER_DIR).glob("*/segmenter.json"))]


def tumor_probability(params, images: jnp.ndarray, intensity_range, upscale: int,
                      width: int = 16) -> jnp.ndarray:
    """(B, H/2, W/2) tumor probabilities of model-range images (B, upscale*H, upscale*W, 1)."""
    low, high = intensity_range
    unit = jnp.clip((downsample(images, upscale) - low) / (high - low), 0.0, 1.0)
    logits = TumorSegmenter(width).apply({"params": jax.lax.stop_gradient(params)}, unit)
    return jax.nn.sigmoid(logits)


def lesion_consistency(frozen: dict, source: jnp.ndarray, translation: jnp.ndarray,
                       source_domain: str, intensity_range=(-1.0, 1.0),
                       upscale: int = 1) -> jnp.ndarray:
    """mean (S_other(translation) - S_source_domain(source))^2, the source side constant;
    ``source_domain``: "source" (G_ab's input) or "target" (G_ba's)."""
    other = "target" if source_domain == "source" else "source"
    source_map = jax.lax.stop_gradient(tumor_probability(
        frozen[source_domain], source, intensity_range, upscale))
    translation_map = tumor_probability(frozen[other], translation, intensity_range, upscale)
    return jnp.mean((translation_map - source_map) ** 2)
