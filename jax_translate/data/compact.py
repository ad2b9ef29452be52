"""A compact copy of a dataset's splits, for a machine that cannot build it.

A GPU machine without tensorflow-datasets, nilearn or internet reads the
dataset as its ``splits.npz`` export (:func:`dataset.read_export`). That export
is float32 and holds every modality (44 MiB at 64x64 for Flair and T1 of
dataset 2.0.0). The compact form keeps only the modalities a run needs, stores
images as float16 (largest error 2**-12 on [0, 1]) or uint8 (round(255 x),
largest error 1/510) and the masks as bits, in one compressed ``.npz`` that
also names the dataset's folder under the data directory; at 64x64 Flair and
T1 of dataset 2.0.0 take 21 MiB as float16, 12 MiB as uint8.
:func:`unpack` writes it back as a float32 ``splits.npz`` in that folder, where
:func:`dataset.load` finds it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jax_translate.data.dataset import EXPORT_NAME, SliceSet
from jax_translate.errors import UsageError

FORMAT = 1
# The largest difference between an image in [0, 1] and its stored value, by dtype.
QUANTISATION = {"float16": 2.0**-12, "uint8": 1 / 510}
MASKS = ("tumor_mask", "brain_mask")
# Tissue shares (uint8 already) travel as they are, where the dataset has them.
TISSUE = "tissue"
META = "meta.json"


def image_fields() -> tuple[str, ...]:
    """The SliceSet fields that hold images (every field but the masks and the 1-D ones)."""
    per_slice = ("label", "patient_id", "slice_index")
    return tuple(f.name for f in dataclasses.fields(SliceSet)
                 if f.name not in MASKS + per_slice + (TISSUE,))


def _required(name: str) -> bool:
    field = next(f for f in dataclasses.fields(SliceSet) if f.name == name)
    return field.default is dataclasses.MISSING


def _encode_image(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return x.astype(np.float16)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise UsageError(f"uint8 stores images in [0, 1]; these span [{x.min()}, {x.max()}]")
    return np.round(x * 255).astype(np.uint8)


def _decode_image(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255
    return x.astype(np.float32)


def write(splits: dict[str, SliceSet], path: Path, dataset_folder: str,
          modalities: tuple[str, ...] = ("flair", "t1"), image_dtype: str = "float16",
          files: dict[str, str] | None = None) -> Path:
    """Writes ``splits`` compactly (atomically) to ``path``; returns it.

    ``dataset_folder``: the dataset's folder relative to its data directory
    (where :func:`unpack` puts it back); ``files``: small text files of that
    folder to carry along (e.g. the recorded information ceiling), by name.
    """
    if image_dtype not in QUANTISATION:
        raise UsageError(f"unknown image dtype {image_dtype!r}; choose one of "
                         f"{', '.join(QUANTISATION)}")
    known = image_fields()
    unknown = [m for m in modalities if m not in known]
    if unknown:
        raise UsageError(f"unknown modality {', '.join(unknown)}; choose from {', '.join(known)}")
    missing = [m for m in known if _required(m) and m not in modalities]
    if missing:
        raise UsageError(f"a compact export needs {', '.join(missing)} (every split has them)")
    if Path(dataset_folder).is_absolute() or ".." in Path(dataset_folder).parts:
        raise UsageError(f"dataset_folder must be relative to the data directory: "
                         f"{dataset_folder!r}")
    arrays, shapes = {}, {}
    for split, s in splits.items():
        for name in modalities:
            images = getattr(s, name)
            if images is None:
                raise UsageError(f"split {split!r} has no {name} images")
            arrays[f"{split}/{name}"] = _encode_image(np.asarray(images), image_dtype)
        for name in MASKS:
            mask = np.asarray(getattr(s, name))
            if mask.size and not np.isin(mask, (0, 1)).all():
                raise UsageError(f"{split}/{name} is not a 0/1 mask")
            arrays[f"{split}/{name}"] = np.packbits(mask.astype(bool), axis=None)
            shapes[f"{split}/{name}"] = list(mask.shape)
        for name in ("label", "patient_id", "slice_index"):
            arrays[f"{split}/{name}"] = np.asarray(getattr(s, name))
        if s.tissue is not None:
            arrays[f"{split}/{TISSUE}"] = np.asarray(s.tissue, np.uint8)
    meta = {"format": FORMAT, "dataset_folder": str(Path(dataset_folder)),
            "splits": list(splits), "modalities": list(modalities),
            "image_dtype": image_dtype, "mask_shapes": shapes, "files": dict(files or {})}
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def read(path: Path) -> tuple[dict[str, SliceSet], dict]:
    """(splits as float32 SliceSets, the export's metadata) of a compact export."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no compact export at {path}")
    try:
        data = np.load(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} is not an .npz file: {err}") from None
    with data:
        if META not in data.files:
            raise UsageError(f"{path} is not a compact export (no {META})")
        meta = json.loads(data[META].tobytes().decode())
        if meta.get("format") != FORMAT:
            raise UsageError(f"{path} has format {meta.get('format')!r}; this version reads "
                             f"{FORMAT}")
        splits = {}
        for split in meta["splits"]:
            fields = {name: _decode_image(data[f"{split}/{name}"]) for name in meta["modalities"]}
            for name in MASKS:
                shape = meta["mask_shapes"][f"{split}/{name}"]
                bits = np.unpackbits(data[f"{split}/{name}"], count=int(np.prod(shape)))
                fields[name] = bits.reshape(shape).astype(np.uint8)
            for name in ("label", "patient_id", "slice_index"):
                fields[name] = data[f"{split}/{name}"]
            if f"{split}/{TISSUE}" in data.files:
                fields[TISSUE] = data[f"{split}/{TISSUE}"]
            splits[split] = SliceSet(**fields)
    return splits, meta


def unpack(path: Path, data_dir: Path) -> Path:
    """Writes a compact export back as ``data_dir/<its folder>/splits.npz`` (float32, what
    :func:`dataset.load` reads) with the files it carries; returns that folder."""
    splits, meta = read(path)
    folder = Path(data_dir) / meta["dataset_folder"]
    folder.mkdir(parents=True, exist_ok=True)
    # The keys of dataset.export_splits, uncompressed: writing is seconds, not tens.
    arrays = {f"{split}/{f.name}": getattr(s, f.name) for split, s in splits.items()
              for f in dataclasses.fields(SliceSet) if getattr(s, f.name) is not None}
    tmp = folder / f".{Path(EXPORT_NAME).stem}.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(folder / EXPORT_NAME)
    for name, text in meta["files"].items():
        (folder / Path(name).name).write_text(text)
    return folder
