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


def _add_data_args(parser: argparse.ArgumentParser, preset_defaults: bool = False) -> None:
    """``preset_defaults``: a sweep's, whose --size and --simulator-version default to the
    preset's (or config file's)."""
    from jax_translate.images import SIZES

    parser.add_argument("--size", default=None if preset_defaults else "64", choices=SIZES,
                        help="slice size: 64, 128, or the paper's 256x128 (default: "
                             + ("the preset's)" if preset_defaults else "64)"))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where TFDS datasets are cached (default: $JAX_TRANSLATE_DATA_DIR "
                             "or ~/.cache/jax_translate/tensorflow_datasets)")
    parser.add_argument("--brats-dir", type=Path, default=None,
                        help="use real BraTS volumes from this folder (one folder per patient "
                             "with *_flair.nii.gz, *_t1.nii.gz, *_t2.nii.gz, *_t1ce.nii.gz, "
                             "*_seg.nii.gz) instead of the simulator")
    from jax_translate.config import DATASET_VERSIONS

    parser.add_argument("--simulator-version", type=int, default=None, choices=DATASET_VERSIONS,
                        help="the dataset's version: 4, each patient's own crisp anatomy in "
                             "Flair, T1, T2 and T1c, with a validation split and each pixel's "
                             "CSF, GM and WM shares; 3, the same without the shares; 2, the "
                             "same patients' Flair and T1; 1, the older data, the template's "
                             "average tissue mixture in every voxel (default: "
                             + ("the preset's)" if preset_defaults else "4)"))


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

    from jax_translate.evaluation import ceiling

    builder = dataset.get_builder(args.size, args.data_dir, args.brats_dir,
                                  version=args.simulator_version)
    built = dataset.prepare(builder, args.brats_dir)
    print(f"{'built' if built else 'reusing'} {builder.name}/{builder.builder_config.name} "
          f"{builder.version} in {builder.data_dir}")
    splits = dataset.read_splits(builder)
    if args.export:
        path = dataset.export_splits(splits, Path(builder.data_dir) / dataset.EXPORT_NAME)
        print(f"exported {', '.join(splits)} to {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"{'split':10s} {'slices':>7s} {'tumor':>6s} {'tumor %':>8s} {'patients':>9s}")
    for split, slices in splits.items():
        s = slices.summary()
        print(f"{split:10s} {s['slices']:7d} {s['tumor_slices']:6d} "
              f"{100 * s['tumor_fraction']:7.1f}% {s['patients']:9d}")
    print(f"modalities: {', '.join(splits['train'].modalities)}")
    found, measured = ceiling.recorded(Path(builder.data_dir), splits)
    print(found.line() + ("" if measured else f" (recorded in {ceiling.CEILING_FILE})"))


def cmd_preview(args) -> None:
    from jax_translate.data import dataset
    from jax_translate.data.preview import save_preview

    out = _writable_file(args.out, ".png")
    splits = dataset.load(args.size, args.data_dir, args.brats_dir,
                          version=args.simulator_version)
    print(f"wrote {save_preview(splits['train'], out)}")


def _flags(args) -> dict:
    """The config fields the command's flags give (a command without a flag, such as
    export-domains without --steps, simply has no value for it)."""
    from jax_translate.config import parse_grid, parse_init_from, parse_ratios

    given = lambda name: getattr(args, name, None)  # noqa: E731
    fields = {}
    if given("ratios") is not None:
        fields["target_tumor_ratios"] = parse_ratios(args.ratios)
    for name in ("seeds", "member_axis", "conv_impl", "size", "steps", "batch_size",
                 "checkpoint_every", "log_every", "steps_per_call", "precision",
                 "simulator_version", "source", "target"):
        if given(name) is not None:
            fields[name] = given(name)
    for name in ("data_dir", "brats_dir"):
        if given(name) is not None:
            fields[name] = str(given(name))
    if given("grid"):
        fields["grid"] = parse_grid(args.grid)
    if given("init_from"):
        fields["init_from"] = parse_init_from(args.init_from)
    return fields


def _sweep_config(args):
    """--preset (or --config's preset and fields), the flags given on top, then --set."""
    from jax_translate.configure import resolve

    if args.config is None and args.method is None:
        raise UsageError("the following arguments are required: --method (or --config)")
    return resolve(args.method, args.preset, file=args.config, sets=args.set, **_flags(args))


def cmd_sweep(args) -> None:
    from jax_translate.jobs.run_folder import RunFolder
    from jax_translate.jobs.sweep import train_sweep
    from jax_translate.runtime import distributed

    # First: the default preset asks JAX for its backend, after which
    # jax.distributed.initialize refuses to start.
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    cfg = _sweep_config(args)
    workdir = RunFolder.create(args.workdir).path
    result = train_sweep(cfg, workdir)
    if distributed.is_primary() and result.steps_run == 0 and result.states is None:
        print(f"{cfg.method}: already finished ({cfg.steps} steps); run folder {workdir}")
    elif distributed.is_primary():
        print(f"{cfg.method}: {len(cfg.members)} members, {cfg.steps} steps, member axis "
              f"{result.member_axis}, compiled in {result.compile_seconds:.1f}s; "
              f"run folder {workdir}")


def cmd_evaluate(args) -> None:
    from jax_translate.evaluation.classifier import ClassifierConfig, classifier_line
    from jax_translate.evaluation.results import flip_table
    from jax_translate.jobs.evaluate_run import evaluate_run

    # None: the run's own classifier (its preset's steps), the one reproduce uses
    clf_cfg = (None if args.classifier_steps is None
               else ClassifierConfig(steps=args.classifier_steps))
    result = evaluate_run(args.workdir, classifier_cfg=clf_cfg)
    print(classifier_line(result.classifier_metrics))
    print(flip_table(result.rows, ratios=None))
    print("wrote " + ", ".join(str(p) for p in result.outputs.values()))


def cmd_reproduce(args) -> None:
    from jax_translate.config import parse_methods
    from jax_translate.configure import resolve_study
    from jax_translate.jobs.reproduce import reproduce

    methods = parse_methods(args.methods) if args.methods is not None else None
    study = resolve_study(args.preset, file=args.config, methods=methods, sets=args.set,
                          **_flags(args))
    reproduce(study, args.out)


def cmd_export_domains(args) -> None:
    from jax_translate.jobs.export_domains import export_domains

    if args.method is None and args.config is None:
        args.method = "cyclegan"  # unpaired domains, the paper's protocol
    cfg = _sweep_config(args)
    manifest = export_domains(cfg, args.out, image_format=args.format)
    print(f"exported {len(manifest['members'])} members ({cfg.source} -> {cfg.target}, "
          f"{len(manifest['testA'])} holdout sources, {args.format}) to {args.out}; translate "
          "each member's testA into TRANSLATIONS/ratio=R/seed=S/ and run jax-translate judge")


def cmd_judge(args) -> None:
    from jax_translate.jobs.judge import judge

    judge(args.export, args.translations, args.out, name=args.name,
          data_dir=str(args.data_dir) if args.data_dir else None)


def cmd_table(args) -> None:
    from jax_translate.evaluation import results

    rows = []
    for spec in args.results:
        name, _, path = spec.rpartition("=")  # NAME=PATH: its rows shown as method NAME
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"no results file at {path}")
        rows += [{**r, "method": name} if name else r for r in results.read_csv(path)]
    if args.gated:  # the members that pass the gate (both rows of a member share its verdict)
        from jax_translate.evaluation import quality

        rows = [r for r in rows if r.get("quality") == quality.OK]
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        missing = [m for m in wanted if m not in {r["method"] for r in rows}]
        if missing:
            raise UsageError(f"no rows of method {', '.join(missing)} in "
                             f"{', '.join(args.results)}")
        rows = sorted((r for r in rows if r["method"] in wanted),
                      key=lambda r: wanted.index(r["method"]))
    print(results.markdown_flip_table(rows))


def _add_precision_arg(parser: argparse.ArgumentParser) -> None:
    from jax_translate.config import PRECISIONS

    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="convolutions and matmuls on float32 or bfloat16 operands "
                             "(parameters, Adam, norms and losses stay float32); default fp32, "
                             "or the config's")


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any config field (jax_translate/config.py), after the other "
                             "flags: VALUE as JSON, else a string; model.FIELD for the "
                             "networks, SECTION.FIELD by its section (config.SECTIONS) "
                             "(repeatable; e.g. --set learning_rate=1e-3 --set "
                             "model.ngf=32 --set eval.classifier_steps=3000)")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jax-translate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("data", help="build (or reuse) the dataset and print its splits")
    _add_data_args(p)
    p.add_argument("--export", action="store_true",
                   help="also write both splits to splits.npz in the dataset's folder, "
                        "readable without tensorflow-datasets (a GPU image)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("preview", help="write a PNG grid of each modality and the tumor mask")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.set_defaults(func=cmd_preview)

    from jax_translate.catalog import METHODS
    from jax_translate.config import CONV_IMPLS, GRID_FIELDS, MEMBER_AXES
    from jax_translate.presets import PRESETS

    p = sub.add_parser("sweep", help="train one method at every bias setting and seed at once")
    p.add_argument("--method", choices=METHODS, help="required unless --config gives it")
    p.add_argument("--config", type=Path, default=None,
                   help="start from this config.json (a run folder's or an experiment's, "
                        "see experiments/README.md); flags override it")
    p.add_argument("--ratios", default=None,
                   help="target tumor ratios, comma-separated, each in [0, 1] "
                        "(default: the preset's)")
    p.add_argument("--seeds", type=_positive_int, default=None,
                   help="seeds per ratio (0..S-1; default: the preset's)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="optimizer steps per member (default: the preset's)")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="what the flags start from (jax_translate/presets.py; default: cpu on "
                        "a CPU, gpu on a GPU/TPU)")
    p.add_argument("--member-axis", default=None, choices=MEMBER_AXES,
                   help="how members share the devices (default: the preset's, else auto: a "
                        "host loop on one CPU device, vmap otherwise)")
    p.add_argument("--conv-impl", default=None, choices=CONV_IMPLS,
                   help="convolutions as lax.conv (xla) or batched matmuls (patches); "
                        "default auto: patches under vmap on accelerators")
    _add_precision_arg(p)
    from jax_translate.images import MODALITIES

    p.add_argument("--source", default=None, choices=MODALITIES,
                   help="the modality translated from (default: the preset's, else flair)")
    p.add_argument("--target", default=None, choices=MODALITIES,
                   help="the modality translated to and judged (default: the preset's, else t1; "
                        "--source flair --target flair is the identity task)")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                   help="members per value of a training knob, crossed with the ratios and "
                        f"seeds, all in one program (repeatable; one of {', '.join(GRID_FIELDS)})")
    p.add_argument("--init-from", action="append", default=[], metavar="GENERATOR=RUN",
                   help="start generator ab (or ba) from a finished sweep's translator, the "
                        "member with the same seed (e.g. --init-from ab=runs/l1 --init-from "
                        "ba=runs/l1_back); discriminators and optimizers start fresh")
    _add_set_arg(p)
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="default: the preset's")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None,
                   help="default: the preset's")
    p.add_argument("--log-every", type=_positive_int, default=None,
                   help="steps per logged row, each the mean over its steps "
                        "(default: the preset's)")
    p.add_argument("--steps-per-call", type=_positive_int, default=None,
                   help="steps run by one compiled call (lax.scan length; default: the "
                        "preset's, else 1 on CPU, 50 on accelerators)")
    p.add_argument("--workdir", type=Path, required=True)
    _add_data_args(p, preset_defaults=True)
    p.add_argument("--coordinator", default=None,
                   help="multi-host run, one process per host: host:port of process 0, or "
                        "auto to read the cluster's environment (SLURM, Open MPI, Cloud TPU)")
    p.add_argument("--num-processes", type=_positive_int, default=None,
                   help="with --coordinator host:port: how many processes")
    p.add_argument("--process-id", type=_non_negative_int, default=None,
                   help="with --coordinator host:port: this process's id, 0..N-1")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("evaluate", help="flip counts, pixel and lesion metrics, figures of a sweep")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--classifier-steps", type=_positive_int, default=None,
                   help="training steps of another tumor classifier than the run's (default: "
                        "the run config's classifier_steps, as reproduce uses)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-domains",
                       help="write every member's biased domains as image folders (trainA, "
                            "trainB, testA) for any translator, and a manifest")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="whose domains: unpaired (default cyclegan) or a paired method's pairs")
    p.add_argument("--config", type=Path, default=None,
                   help="an experiment or run config to take the domains' settings from")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="sizes, ratios and seeds from this preset (default: cpu on a CPU)")
    p.add_argument("--ratios", default=None, help="target tumor ratios, e.g. 0,0.5,1")
    p.add_argument("--seeds", type=_positive_int, default=None, help="seeds per ratio")
    p.add_argument("--source", default=None, choices=MODALITIES)
    p.add_argument("--target", default=None, choices=MODALITIES)
    p.add_argument("--format", default="png", choices=("png", "npy"),
                   help="png: 8-bit grayscale, round(255 x), what the junyanz and CUT loaders "
                        "read; npy: float32, lossless")
    _add_set_arg(p)
    p.add_argument("--out", type=Path, required=True, help="a new folder for the export")
    _add_data_args(p, preset_defaults=True)
    p.set_defaults(func=cmd_export_domains, grid=[], init_from=[])

    p = sub.add_parser("judge",
                       help="score anyone's translations of an export's testA: flip table, "
                            "gate, lesion scores, as reproduce gives them")
    p.add_argument("--export", type=Path, required=True, help="the export-domains folder")
    p.add_argument("--translations", type=Path, required=True,
                   help="a folder with one ratio=R/seed=S/ folder of translations per member")
    p.add_argument("--out", type=Path, default=Path("runs/judge"))
    p.add_argument("--name", default="external", help="the translator's name in the tables")
    p.add_argument("--data-dir", type=Path, default=None)
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("table", help="the flip table of a results.csv, as markdown")
    p.add_argument("results", nargs="+", metavar="[NAME=]RESULTS_CSV",
                   help="results.csv files (evaluate's, reproduce's, judge's), read together; "
                        "NAME=PATH shows that file's rows as method NAME")
    p.add_argument("--methods", default=None, help="only these methods, in this order")
    p.add_argument("--gated", action="store_true",
                   help="only the members that pass the gate (their seeds' intervals)")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("reproduce",
                       help="the paper's experiment: its four methods, evaluation, figures")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="default: cpu on a CPU, gpu on a GPU/TPU; paper: the full protocol")
    p.add_argument("--config", type=Path, default=None,
                   help="an experiment config (experiments/<figure>/config.json): a preset, "
                        "its methods and overrides")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods to run instead of the config's or the "
                        "preset's (cpu: l1,condgan, the two that reach the quality gate on a "
                        f"CPU; gpu: those, cyclegan-adapt, cyclegan and gan; paper: the paper's four): any of {', '.join(METHODS)}")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--data-dir", type=Path, default=None)
    _add_precision_arg(p)
    _add_set_arg(p)
    p.set_defaults(func=cmd_reproduce)
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
