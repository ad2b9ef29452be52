"""The data of experiments/gpu/run.sh: a compact export built on a CPU, unpacked on the GPU.

    python experiments/gpu/data.py pack --preset gpu --out experiments/gpu/carry/data-64.npz
    python experiments/gpu/data.py unpack experiments/gpu/carry/data-64.npz --data-dir DIR --preset gpu
    python experiments/gpu/data.py synthetic --preset tiny --data-dir DIR   # the dry run's

``pack`` builds (once, with tensorflow-datasets) or reads the dataset a preset
trains on and writes only the modalities the runs need, images as float16 and
masks as bits (jax_translate/data/compact.py). ``unpack`` writes it back as the
float32 ``splits.npz`` the runs read without tensorflow-datasets, and refuses an
export of another dataset than the preset's. ``synthetic`` writes a float32
export of ellipse "brains" with blobs for a preset's dataset folder (no
simulator, no TFDS): what the CPU dry run packs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from jax_translate.configure import resolve
from jax_translate.data import compact, dataset, synthetic
from jax_translate.data.layout import default_data_dir
from jax_translate.errors import UsageError


def preset_config(preset: str, data_dir: Path | None, size: str | None = None,
                  version: int | None = None):
    """The config whose dataset the runs of ``preset`` read (any method: they share it)."""
    overrides = {"data_dir": str(data_dir) if data_dir else None}
    if size:
        overrides["size"] = size
    if version is not None:
        overrides["simulator_version"] = version
    return resolve("l1", preset, **overrides)


def relative_folder(cfg) -> str:
    root = Path(cfg.data_dir or default_data_dir()).expanduser().resolve()
    return str(dataset.folder_for(cfg).relative_to(root))


def cmd_pack(args) -> None:
    cfg = preset_config(args.preset, args.data_dir, args.size, args.simulator_version)
    t0 = time.perf_counter()
    splits = dataset.load_for(cfg)  # the export if there is one, else built with TFDS
    folder = dataset.folder_for(cfg)
    files = {p.name: p.read_text() for p in sorted(folder.glob("ceiling*.json"))}
    modalities = tuple(m for m in args.modalities.split(",") if m)
    path = compact.write(splits, args.out, relative_folder(cfg), modalities, args.dtype, files)
    back, _ = compact.read(path)
    error = max(float(np.abs(getattr(back[s], m) - getattr(splits[s], m)).max())
                for s in splits for m in modalities)
    size = path.stat().st_size
    print(f"wrote {path}: {size / 2**20:.1f} MiB ({size} bytes), {relative_folder(cfg)}, "
          f"splits {', '.join(f'{k} {len(v)}' for k, v in splits.items())}, "
          f"{', '.join(modalities)} as {args.dtype} (largest error {error:.2e}, bound "
          f"{compact.QUANTISATION[args.dtype]:.2e}), in {time.perf_counter() - t0:.0f}s")


def cmd_unpack(args) -> None:
    _, meta = compact.read(args.export)
    if args.preset:
        want = relative_folder(preset_config(args.preset, args.data_dir, args.size))
        if meta["dataset_folder"] != want:
            raise UsageError(f"{args.export} holds {meta['dataset_folder']}, but the "
                             f"{args.preset} preset reads {want}: run "
                             f"'bash experiments/gpu/run.sh prepare' again")
    t0 = time.perf_counter()
    folder = compact.unpack(args.export, args.data_dir)
    print(f"unpacked {args.export} ({', '.join(meta['modalities'])} as "
          f"{meta['image_dtype']}) into {folder / dataset.EXPORT_NAME} in "
          f"{time.perf_counter() - t0:.1f}s")


def synthetic_splits(patients: dict[str, range], per_patient: int, size: int,
                     seed: int = 0) -> dict[str, dataset.SliceSet]:
    """The library's synthetic slices (``data.synthetic``), one split per patient range."""
    return {split: synthetic.ellipse_slices(len(ids), per_patient, size, seed + i,
                                            first_patient=ids[0])
            for i, (split, ids) in enumerate(patients.items())}


def cmd_synthetic(args) -> None:
    cfg = preset_config(args.preset, args.data_dir, args.size)
    n, train = cfg.n_patients, cfg.n_train_patients
    patients = {"train": range(train), "holdout": range(train, n),
                "validation": range(n, n + 1)}
    size = int(cfg.size.split("x")[0])
    splits = synthetic_splits(patients, args.per_patient, size)
    folder = dataset.folder_for(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    path = dataset.export_splits(splits, folder / dataset.EXPORT_NAME)
    print(f"wrote {path}: synthetic, {', '.join(f'{k} {len(v)}' for k, v in splits.items())} "
          f"slices")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="build or read a preset's dataset; write it compactly")
    p.add_argument("--preset", default="gpu")
    p.add_argument("--size", default=None, help="default: the preset's")
    p.add_argument("--simulator-version", type=int, default=None,
                   help="the dataset's version (default: the latest)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the dataset is built (default: $JAX_TRANSLATE_DATA_DIR or "
                        "~/.cache/jax_translate/tensorflow_datasets)")
    p.add_argument("--modalities", default="flair,t1")
    p.add_argument("--dtype", default="float16", choices=sorted(compact.QUANTISATION))
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_pack)
    p = sub.add_parser("unpack", help="write a compact export back as the float32 splits.npz")
    p.add_argument("export", type=Path)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--preset", default=None,
                   help="refuse an export of another dataset than this preset's")
    p.add_argument("--size", default=None)
    p.set_defaults(func=cmd_unpack)
    p = sub.add_parser("synthetic", help="a synthetic float32 export for a preset's dataset")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--size", default=None)
    p.add_argument("--per-patient", type=int, default=40)
    p.add_argument("--data-dir", type=Path, required=True)
    p.set_defaults(func=cmd_synthetic)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
