"""Judges anyone's translator: the translations of an export's ``testA`` that come back.

``judge(export, translations, out)`` reads, for every member of an export
(``export_domains``), the user's translations of its holdout sources from
``translations/ratio=R/seed=S/`` and scores them exactly as ``reproduce`` scores
ours (``scoring.score``, with the same classifier and the same dataset): the
flip table with intervals over seeds, the gate's verdict, pixel and structure r,
the contrast check and the lesion scores. It writes ``results.csv``,
``results.json`` and the figures into ``out``.

A member's folder holds one file per holdout source, named by its id as the
export named it: ``<id>.png``, ``<id>.npy``, or arrays in ``.npz`` files keyed
by id. The names the junyanz and CUT test scripts give (``<id>_fake_B.png``,
``<id>_fake.png``) are read too, and their other visuals (``<id>_real_A.png``,
``_rec_``, ``_idt_``) are passed over. PNGs are 8-bit (/255) or 16-bit
(/65535) grayscale, or RGB with three equal channels; arrays are floats in
[0, 1] (or uint8 / uint16, scaled the same way). A missing or extra id, a
wrong size, a colour image or values outside [0, 1] is one clear line, and
nothing is written until every translation has been read.
"""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import numpy as np

from jax_translate import io_utils
from jax_translate.config import Member, SweepConfig, flatten
from jax_translate.data import dataset, domains
from jax_translate.errors import UsageError
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import figures, metrics, quality, results, scoring
from jax_translate.jobs.export_domains import read_manifest, slice_ids, verify

# What the junyanz and CUT test scripts append to an image's name.
TRANSLATION_SUFFIXES = ("_fake_B", "_fake")
OTHER_VISUALS = ("_real_A", "_real_B", "_real", "_rec_A", "_rec_B", "_idt_A", "_idt_B", "_idt",
                 "_fake_A")
# Values this far outside [0, 1] are rounding; beyond, the range is another one.
RANGE_SLACK = 1e-3


@dataclasses.dataclass
class Judgement:
    rows: list[dict]
    classifier_metrics: dict
    outputs: dict[str, Path]


def _as_unit(array: np.ndarray, where: str) -> np.ndarray:
    """An image array as float32 in [0, 1], or one clear error."""
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        if not (np.array_equal(array[..., 0], array[..., 1])
                and np.array_equal(array[..., 0], array[..., 2])):
            raise UsageError(f"{where} is a colour image; translations are grayscale")
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    if not np.issubdtype(array.dtype, np.floating):
        raise UsageError(f"{where} holds {array.dtype} values; give floats in [0, 1], uint8 or "
                         "uint16")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UsageError(f"{where} holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        raise UsageError(f"{where} spans [{low:.3g}, {high:.3g}]; translations are in [0, 1] "
                         "(from [-1, 1]: (x + 1) / 2)")
    return np.clip(array, 0.0, 1.0)


def _read_image(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I"):
            return np.asarray(image, dtype=np.uint32).astype(np.uint16)
        return np.asarray(image)


def _id_of(stem: str, ids: set[str]) -> str | None:
    """The id a file stem names, "" for another visual to pass over, None if none."""
    if stem in ids:
        return stem
    for suffix in TRANSLATION_SUFFIXES:
        if stem.endswith(suffix) and stem[:-len(suffix)] in ids:
            return stem[:-len(suffix)]
    if any(stem.endswith(s) and stem[:-len(s)] in ids for s in OTHER_VISUALS):
        return ""
    return None


def read_member(folder: Path, ids: list[str], shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) translations of ``ids`` in their order from one member's folder."""
    if not folder.is_dir():
        raise UsageError(f"no translations for {folder.parent.name}/{folder.name}: "
                         f"{folder} is not a folder")
    wanted, found = set(ids), {}

    def take(image_id: str, array: np.ndarray, where: str):
        if image_id in found:
            raise UsageError(f"{folder}: id {image_id} is given twice")
        array = _as_unit(np.asarray(array), where)
        if array.shape != shape:
            raise UsageError(f"{where} is {array.shape[0]}x{array.shape[1]}; the holdout's "
                             f"images are {shape[0]}x{shape[1]}")
        found[image_id] = array

    extra = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                for key in arrays.files:
                    image_id = _id_of(key, wanted)
                    if image_id:
                        take(image_id, arrays[key], f"{path}[{key}]")
                    elif image_id is None:
                        extra.append(key)
        elif path.suffix in (".png", ".npy"):
            image_id = _id_of(path.stem, wanted)
            if image_id:
                take(image_id, _read_image(path), str(path))
            elif image_id is None:
                extra.append(path.name)
    if extra:
        raise UsageError(f"{folder}: {len(extra)} file(s) name no holdout source, first "
                         f"{extra[0]} (files are named <id>.png, <id>.npy or <id>_fake_B.png)")
    missing = [i for i in ids if i not in found]
    if missing:
        raise UsageError(f"{folder}: {len(missing)} of {len(ids)} translations are missing, "
                         f"first {missing[0]}")
    return np.stack([found[i] for i in ids])


def judge(export: str | Path, translations: str | Path, out: str | Path,
          name: str = "external", classifier=None, splits=None, data_dir=None,
          progress: bool = True, log=print) -> Judgement:
    """Scores the translations in ``translations`` of the export in ``export`` and
    writes the results into ``out`` (results.csv and results.json last)."""
    export, translations = Path(export), Path(translations)
    manifest = read_manifest(export)
    verify(export)
    raw = flatten(manifest["config"])
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    cfg = SweepConfig.from_dict(raw)
    splits = splits if splits is not None else dataset.load_for(cfg)
    test = domains.holdout_set(cfg, splits["holdout"])
    if slice_ids(test, np.arange(len(test))) != manifest["testA"]:
        raise UsageError(f"the holdout set of {dataset.folder_for(cfg)} is not the export's "
                         "testA: judge with the dataset the export was made from")
    shape = test.image(cfg.target).shape[1:]
    members = manifest["members"]
    translated = np.stack([read_member(translations / m["folder"], manifest["testA"], shape)
                           for m in members])  # every file read before anything is written
    out = io_utils.writable_dir(out, "output folder")
    if classifier is None:
        classifier = classifier_lib.for_config(cfg, splits, progress)
    scored = types.SimpleNamespace(
        method=name, target=cfg.target,
        members=[Member(m["target_tumor_ratio"], m["seed"]) for m in members])
    rows = scoring.score(scored, translated, test, classifier)
    quality.print_gate_warnings(rows)
    outputs = {"bias_curves": out / "bias_curves.png", "flips": out / "flips.png",
               "examples": out / "examples.png", "results_csv": out / "results.csv",
               "results_json": out / "results.json"}
    figures.bias_curves(rows, outputs["bias_curves"])
    figures.flips(rows, outputs["flips"])
    figures.example_grid(translated, test, scored.members, name, outputs["examples"],
                         source=cfg.source, target=cfg.target, rows=rows)
    io_utils.atomic_write_text(outputs["results_csv"], results.rows_to_csv(rows))
    io_utils.atomic_write_json(outputs["results_json"], {
        "rows": rows, "aggregate": metrics.aggregate_over_seeds(rows),
        "classifier": classifier.metrics, "export": str(export),
        "translations": str(translations), "config": json.loads(cfg.to_json())})
    log(classifier_lib.classifier_line(classifier.metrics))
    log(results.flip_table(rows, ratios=None))
    log("wrote " + ", ".join(str(p) for p in outputs.values()))
    return Judgement(rows, classifier.metrics, outputs)

