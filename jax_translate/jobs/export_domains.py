"""Exports the biased domains in the folder layout other translators read (issue 39).

``export_domains(cfg, out)`` writes, for every member (target tumor ratio, seed) of
``cfg``, the training domains our own sweep of that member would use and the
holdout sources it is judged on, one image per slice, in the layout of the
junyanz (pytorch-CycleGAN-and-pix2pix) and CUT repositories::

    OUT/manifest.json
    OUT/ratio=0.5/seed=0/trainA/0012_0087.png   source modality, the member's source domain
    OUT/ratio=0.5/seed=0/trainB/0034_0101.png   target modality, its biased target domain
    OUT/ratio=0.5/seed=0/testA/0041_0093.png    source modality, the holdout set (every member)

A file is named by its slice's id, ``<patient>_<slice>`` of the dataset. The
holdout's target images, masks and labels stay here: ``jax-translate judge``
scores the translations of ``testA`` that come back against them.

Formats (``image_format``): ``png`` (default) is 8-bit grayscale, ``round(255 x)``
of images in [0, 1] (the scale is in the manifest), which the junyanz and CUT
loaders read as they are; its quantisation (at most 1/510) costs a copy of the
target 0.00003 of pixel r (the real T1 of the validation split's healthy slices,
measured). ``npy`` is float32, lossless: what a
translator in numpy reads, and what makes ``judge`` reproduce ``reproduce``'s
rows exactly. ``manifest.json`` lists every file with its sha256, the ids of each
domain, the modality pair, the dataset and the whole config.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from jax_translate import io_utils
from jax_translate.config import SweepConfig
from jax_translate.data import dataset, domains
from jax_translate.data.layout import DATASETS
from jax_translate.errors import UsageError
from jax_translate.training.members import domain_indices

FORMATS = ("png", "npy")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
PNG_SCALE = 255


def slice_ids(s, index: np.ndarray) -> list[str]:
    """``<patient>_<slice>`` of each indexed slice: its file name without extension."""
    return [f"{int(s.patient_id[i]):04d}_{int(s.slice_index[i]):04d}" for i in index]


def member_folder(ratio: float, seed: int) -> str:
    return f"ratio={ratio:g}/seed={seed}"


def encode(image: np.ndarray, image_format: str) -> bytes:
    """One image in [0, 1] as the bytes of its file."""
    buffer = io.BytesIO()
    if image_format == "npy":
        np.save(buffer, np.asarray(image, np.float32))
    else:
        from PIL import Image

        pixels = np.round(np.clip(image, 0.0, 1.0) * PNG_SCALE).astype(np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(folder: Path, ids: list[str], images: np.ndarray, image_format: str,
           files: dict[str, str], root: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(ids, images):
        data = encode(image, image_format)
        path = folder / f"{name}.{image_format}"
        path.write_bytes(data)
        files[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()


def export_domains(cfg: SweepConfig, out: str | Path, splits=None,
                   image_format: str = "png") -> dict:
    """Writes every member's domains and the holdout sources into ``out`` (refused if it
    holds an export already); returns the manifest. The manifest is written last."""
    if image_format not in FORMATS:
        raise UsageError(f"unknown image format {image_format!r}; choose one of "
                         f"{', '.join(FORMATS)}")
    if cfg.grid:
        raise UsageError("export-domains draws the domains of ratios and seeds; a grid of "
                         "training knobs has no domains of its own: drop --grid")
    out = io_utils.writable_dir(out, "output folder")
    if (out / MANIFEST).exists() or any(out.glob("ratio=*")):
        raise UsageError(f"{out} holds an export already; use a new folder")
    splits = splits if splits is not None else dataset.load_for(cfg)
    train = splits["train"]
    test = domains.holdout_set(cfg, splits["holdout"])
    test_ids = slice_ids(test, np.arange(len(test)))
    files: dict[str, str] = {}
    members = []
    for ratio, seed, _ in cfg.members:
        source, target = domain_indices(cfg, train, ratio, seed)
        folder = out / member_folder(ratio, seed)
        a_ids, b_ids = slice_ids(train, source), slice_ids(train, target)
        _write(folder / "trainA", a_ids, train.image(cfg.source)[source], image_format, files,
               out)
        _write(folder / "trainB", b_ids, train.image(cfg.target)[target], image_format, files,
               out)
        _write(folder / "testA", test_ids, test.image(cfg.source), image_format, files, out)
        members.append({"folder": member_folder(ratio, seed), "target_tumor_ratio": ratio,
                        "seed": seed, "trainA": a_ids, "trainB": b_ids,
                        "trainB_tumor": int(train.label[target].sum())})
    manifest = {
        "format": MANIFEST_FORMAT, "image_format": image_format,
        "png_scale": PNG_SCALE if image_format == "png" else None,
        "source": cfg.source, "target": cfg.target,
        "dataset": {"folder": str(dataset.folder_for(cfg)), "version": cfg.simulator_version,
                    "modalities": list(DATASETS[cfg.simulator_version].modalities),
                    "size": cfg.size},
        "config": json.loads(cfg.to_json()),
        "testA": test_ids, "members": members, "files": files}
    io_utils.atomic_write_json(out / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    """An export's manifest, or one clear error."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read the export manifest {path}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UsageError(f"{path} is not an export manifest of format {MANIFEST_FORMAT}")
    return manifest


def verify(folder: str | Path) -> None:
    """Refuses (one line) an export whose files differ from the manifest's checksums."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise UsageError(f"export {folder} is damaged: {name} is missing or differs from "
                             "its checksum in manifest.json")
