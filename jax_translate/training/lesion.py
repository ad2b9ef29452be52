"""cyclegan-cc's lesion-consistency term and the frozen segmenters it uses.

Two tumor segmenters, one per domain, are trained once on the **training**
split only (real Flair with its masks, real T1 with its masks), with the
evaluation classifier's network and training code
(:mod:`jax_translate.training.segmenter`) but their own seeds, and never
the evaluator itself: a translator trained against the judge could learn to
please it. They are cached in the run folder and enter the compiled step as
data (``SharedData.frozen`` -> ``Batch.frozen``), behind ``stop_gradient``.

The term asks each translation to keep the source's lesion map: the
T1-domain segmenter's tumor probabilities on G_ab(a) should equal the
Flair-domain segmenter's on a, and symmetrically for G_ba on T1 sources:

    lesion_loss = mean (S_T1(G_ab(a)) - S_Fl(a))^2 + mean (S_Fl(G_ba(b)) - S_T1(b))^2

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
# The evaluation classifier uses seed 0; these must differ from it and each other.
SEGMENTER_SEEDS = {"t1": 1, "flair": 2}
MODALITIES = tuple(SEGMENTER_SEEDS)


def _fingerprint(train: SliceSet) -> str:
    """A short hash of the slices and masks a segmenter learns from."""
    digest = hashlib.sha1()
    for array in (train.flair, train.t1, train.tumor_mask, train.patient_id):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


def segmenter_config(steps: int, modality: str) -> segmenter.SegmenterConfig:
    return segmenter.SegmenterConfig(steps=steps, seed=SEGMENTER_SEEDS[modality])


def segmenter_shapes(image_shape: tuple[int, int]) -> dict:
    """What :func:`train_segmenters` returns, as shapes only (nothing trained)."""
    return {m: segmenter.params_shapes(segmenter_config(1, m).width, image_shape) for m in MODALITIES}


def train_segmenters(train: SliceSet, steps: int, cache_dir: Path | None = None) -> dict:
    """{"t1": params, "flair": params}: segmenters trained on ``train`` (the training split),
    read from / written to ``cache_dir/lesion_segmenters`` when given.

    Each cache entry's JSON records the patients and slice count it was
    trained on, so what a segmenter saw can be checked afterwards.
    """
    fingerprint = _fingerprint(train)
    frozen = {}
    for modality in MODALITIES:
        cfg = segmenter_config(steps, modality)
        name = f"{modality}_w{cfg.width}_steps{steps}_seed{cfg.seed}_{fingerprint}"
        path = Path(cache_dir) / SEGMENTER_DIR / name if cache_dir is not None else None
        cached = (segmenter.load_params(path / "params.msgpack", cfg.width, train.t1.shape[1:])
                  if path is not None else None)  # None if absent or damaged: retrain
        if cached is not None:
            frozen[modality] = cached
            continue
        frozen[modality] = segmenter.train_segmenter(train, cfg, modality=modality)
        if path is not None:
            segmenter.save_params(path / "params.msgpack", frozen[modality])
            atomic_write_json(path / "segmenter.json", {
                "modality": modality, "config": dataclasses.asdict(cfg),
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
                       source_modality: str, intensity_range=(-1.0, 1.0),
                       upscale: int = 1) -> jnp.ndarray:
    """mean (S_target(translation) - S_source(source))^2, the source side constant."""
    target_modality = "t1" if source_modality == "flair" else "flair"
    source_map = jax.lax.stop_gradient(tumor_probability(
        frozen[source_modality], source, intensity_range, upscale))
    translation_map = tumor_probability(frozen[target_modality], translation, intensity_range,
                                        upscale)
    return jnp.mean((translation_map - source_map) ** 2)
