"""The ``jax-translate`` command: parses and validates arguments, then calls the library.

It holds no training or evaluation logic. Anything the user can fix is
reported as one ``error: ...`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jax_translate.errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback-like noise
        raise UsageError(message)


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    from jax_translate.data.builders import SIZES

    parser.add_argument("--size", default="64", choices=SIZES,
                        help="slice size: 64 (default, CPUs), 128, or the paper's 256x128")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where TFDS datasets are cached (default: $JAX_TRANSLATE_DATA_DIR "
                             "or ~/.cache/jax_translate/tensorflow_datasets)")
    parser.add_argument("--brats-dir", type=Path, default=None,
                        help="use real BraTS volumes from this folder (one folder per patient "
                             "with *_flair.nii.gz, *_t1.nii.gz, *_seg.nii.gz) instead of the simulator")


def _writable_file(path: Path, suffix: str) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() != suffix:
        raise UsageError(f"output file {path} must end in {suffix}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")
    return path


def cmd_data(args) -> None:
    from jax_translate.data import dataset

    builder = dataset.get_builder(args.size, args.data_dir, args.brats_dir)
    built = dataset.prepare(builder, args.brats_dir)
    print(f"{'built' if built else 'reusing'} {builder.name}/{builder.builder_config.name} "
          f"in {builder.data_dir}")
    print(f"{'split':8s} {'slices':>7s} {'tumor':>6s} {'tumor %':>8s} {'patients':>9s}")
    for split in dataset.SPLITS:
        s = dataset.read_split(builder, split).summary()
        print(f"{split:8s} {s['slices']:7d} {s['tumor_slices']:6d} "
              f"{100 * s['tumor_fraction']:7.1f}% {s['patients']:9d}")


def cmd_preview(args) -> None:
    from jax_translate.data import dataset
    from jax_translate.data.preview import save_preview

    out = _writable_file(args.out, ".png")
    splits = dataset.load(args.size, args.data_dir, args.brats_dir)
    print(f"wrote {save_preview(splits['train'], out)}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jax-translate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("data", help="build (or reuse) the dataset and print its splits")
    _add_data_args(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("preview", help="write a PNG grid of Flair / T1 / tumor mask")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.set_defaults(func=cmd_preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
