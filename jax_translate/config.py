"""The config of one sweep: its schema (:class:`SweepConfig`), validation and file form.

:func:`jax_translate.configure.resolve` is the only way one is made (defaults,
the method's own, the preset, a config file, flags, ``--set``); this module
says what a config is. A run folder keeps the resolved config in
``config.json``, nested by :data:`SECTIONS` (data, sweep, optim, options, eval,
runtime, with the model and the method at the top), so every result can be
traced to exactly what made it, its judge included (the ``classifier_*``
fields), and a rerun can check that it resumes the same experiment. Flat files
written before the sections still load. Fields in :data:`RUNTIME_FIELDS`
change how a run executes, not what it computes, and may differ on resume.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import types
import typing
from pathlib import Path
from typing import NamedTuple

from jax_translate.images import MODALITIES, SIZES
from jax_translate.errors import UsageError
from jax_translate.model_config import MODEL_PRESETS, ModelConfig
from jax_translate import model_config
from jax_translate.presets import PRESETS
from jax_translate.catalog import METHODS, PAIRED_METHODS, SPECS
MEMBER_AXES = ("auto", "vmap", "map", "loop")
CONV_IMPLS = ("auto", *model_config.CONV_IMPLS)
CONFIG_VERSION = 1
# The dataset versions there are (data/layout.py DATASETS, which this layer cannot import;
# tests/test_config.py checks the two agree).
DATASET_VERSIONS = (1, 2, 3, 4)
# How domains are drawn (data/domains.py); "outside_targets": paired methods' pretraining
# pairs from patients outside every target domain (cyclegan-adapt's first stage).
DOMAIN_PROTOCOLS = ("disjoint", "reference", "outside_targets")
GAN_LOSS_NAMES = ("vanilla", "lsgan")

# Changing these does not change the numbers a run produces.
RUNTIME_FIELDS = ("member_axis", "conv_impl", "data_dir", "log_every", "checkpoint_every",
                  "steps_per_call")
# Runtime fields that no longer exist: dropped when a config file holds them, so run
# folders written before their removal still resume and evaluate ("autotune": the
# measuring member axis, removed once no measurement showed it beating engine.plan).
REMOVED_FIELDS = ("autotune",)
PRECISIONS = model_config.PRECISIONS
# Training knobs that change no shape: each member may have its own (``grid``), traced
# in the compiled step (training/hparams.py). Everything else is one value per run.
GRID_FIELDS = ("learning_rate", "discriminator_learning_rate", "lambda_cycle", "lambda_identity",
               "gan_weight", "r1_weight", "augment_p", "cycle_noise")


class Member(NamedTuple):
    """One member of a sweep: a target tumor ratio, a seed and its gridded knobs."""

    target_tumor_ratio: float
    seed: int
    knobs: tuple[tuple[str, float], ...] = ()  # (field, value) of each ``grid`` field

    @property
    def name(self) -> str:
        """``ratio=0.5/seed=1[/lambda_cycle=5...]``: metric names, folders and figure labels."""
        return "/".join([f"ratio={self.target_tumor_ratio:g}", f"seed={self.seed}",
                         *(f"{k}={v:g}" for k, v in self.knobs)])


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    method: str = "cyclegan"
    target_tumor_ratios: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    seeds: int = 1                   # members use seeds 0 .. seeds-1
    steps: int = 1000                # optimizer steps per member
    size: str = "64"
    preset: str = "cpu"
    model: ModelConfig = MODEL_PRESETS["cpu"]
    batch_size: int = 1
    learning_rate: float = 2e-4
    beta1: float = 0.5
    decay_fraction: float = 0.5      # last half: linear decay to 0 (100 + 100 epochs)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5     # times lambda_cycle, as the reference
    # The discriminators' peak Adam rate; None: learning_rate.
    discriminator_learning_rate: float | None = None
    gan_weight: float = 1.0          # weight of the generators' adversarial terms
    r1_weight: float = 0.0           # R1 penalty on real images (Mescheder et al. 2018)
    # Probability of each differentiable augmentation (DiffAugment's translation and
    # cutout, Zhao et al. 2020) of every image a discriminator sees, real or fake.
    augment_p: float = 0.0
    # Std of Gaussian noise (model range) added to a translation before the cycle maps it
    # back: a code hidden in low-amplitude detail (Chu et al. 2017, "CycleGAN, a master of
    # steganography") then cannot carry the source, so the visible image must.
    cycle_noise: float = 0.0
    # Members per value: {field: [values]} of GRID_FIELDS, crossed with ratios and seeds.
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()
    # Generators that start from another finished sweep's instead of at random:
    # {generator: run folder}, e.g. {"ab": "runs/l1", "ba": "runs/l1_back"}; each takes
    # that run's translator ("ab") of the member with its seed (and ratio, when the run
    # has several). Discriminators and optimizer states start fresh (jobs/init_from.py).
    init_from: tuple[tuple[str, str], ...] = ()
    pool_size: int = 50
    # The reference code's settings (docs/paper_protocol.md); the defaults are ours.
    test_dropout: bool = False       # dropout also in evaluation's translations (the reference)
    upscale: int = 1                 # models see images bilinearly upscaled (scale_width: 2)
    intensity_range: tuple[float, float] = (-1.0, 1.0)  # where [0, 1] intensities map
    domain_protocol: str = "disjoint"  # or "reference": see data/domains.py
    condgan_gan_loss: str = "vanilla"  # the reference: "lsgan"
    condgan_pool_size: int = 0       # pool of (source, output) pairs; the reference: 50
    condgan_discriminator_first: bool = False  # the reference updates D before G
    # cut / fastcut (training/patchnce.py): the reference's defaults.
    nce_patches: int = 256           # patch locations per layer
    nce_temperature: float = 0.07
    nce_head_features: int = 256     # width of the 2-layer projection MLP
    # cyclegan-cc (training/lesion.py).
    lambda_lesion: float = 10.0      # weight of the lesion-consistency term
    lesion_segmenter_steps: int = 1500  # training steps of each frozen segmenter
    n_source: int = 700
    n_target: int = 700
    n_holdout: int = 350
    # The dataset. n_patients etc. only apply to the simulator.
    n_patients: int = 50
    n_train_patients: int = 30
    data_seed: int = 0
    # The dataset's version (data/layout.py DATASETS; named when it was the simulator's):
    # 4 is simulator 2's patients with Flair, T1, T2 and T1c, a validation split and each
    # pixel's tissue shares (the contrast check's); 3 the same without tissue shares; 2
    # and 1 the older data (Flair and T1 only). It also picks real BraTS's layout.
    simulator_version: int = 4
    brats_dir: str | None = None
    # The translation: source -> target modality (images.MODALITIES). The generator "ab"
    # maps source to target, the classifier judges target images; flair -> flair is the
    # identity task.
    source: str = "flair"
    target: str = "t1"
    # Convolutions and matmuls on float32 or bfloat16 operands (float32 parameters,
    # Adam, norms and losses either way: models/layers.py). Not a runtime field:
    # it changes the numbers. fp32 everywhere until a GPU measures bf16 (benchmarks/gpu.sh).
    precision: str = "fp32"
    # The evaluation classifier's training steps: the judge of this run's translations,
    # recorded with the run so that any command evaluating it picks the same one.
    classifier_steps: int = 1500
    # The rest of its settings (training/segmenter.py SegmenterConfig's defaults; a test
    # checks they agree): the run's config.json alone names its judge.
    classifier_width: int = 16
    classifier_batch_size: int = 32
    classifier_learning_rate: float = 2e-3
    classifier_seed: int = 0
    # Runtime only.
    member_axis: str = "auto"
    conv_impl: str = "auto"          # lax.conv ("xla") or batched matmuls ("patches")
    data_dir: str | None = None
    log_every: int = 50
    checkpoint_every: int = 500
    steps_per_call: int = 0          # 0: auto (1 on CPU, 50 on accelerators)
    version: int = CONFIG_VERSION

    def __post_init__(self):
        validate(self)

    @property
    def paired(self) -> bool:
        return self.method in PAIRED_METHODS

    @property
    def serial_batches(self) -> bool:
        """Paired members step through their pairs in order (the reference's --serial_batches)."""
        return self.paired and self.domain_protocol == "reference"

    @property
    def members(self) -> list[Member]:
        """Every (ratio, seed, grid point), ratio-major, then seed, then the grid in order."""
        names = [name for name, _ in self.grid]
        points = list(itertools.product(*(values for _, values in self.grid)))
        return [Member(r, s, tuple(zip(names, point)))
                for r in self.target_tumor_ratios for s in range(self.seeds) for point in points]

    def hparam_values(self, member: Member | None = None) -> dict[str, float]:
        """GRID_FIELDS' values of ``member`` (its grid point over the config's own)."""
        values = {name: getattr(self, name) for name in GRID_FIELDS}
        if values["discriminator_learning_rate"] is None:
            values["discriminator_learning_rate"] = self.learning_rate
        values.update(member.knobs if member is not None else ())
        return values

    def gridded(self, name: str) -> bool:
        return any(field == name for field, _ in self.grid)

    @property
    def simulator_kwargs(self) -> dict:
        """What picks the simulated dataset (for real BraTS data: only its version)."""
        if self.brats_dir:
            return {"version": self.simulator_version}
        return dict(n_patients=self.n_patients, n_train_patients=self.n_train_patients,
                    seed=self.data_seed, version=self.simulator_version)

    def to_json(self) -> str:
        """The config file's form: nested by :data:`SECTIONS`."""
        fields = dataclasses.asdict(self)
        # pairs, not a dict: sort_keys would reorder the fields, and the grid's order is the
        # members' order (a resumed sweep must find its stacked states where it left them)
        fields["grid"] = [[name, list(values)] for name, values in self.grid]
        fields["init_from"] = [list(pair) for pair in self.init_from]
        return json.dumps(nest(fields), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict) -> "SweepConfig":
        """A config file's fields, nested (:data:`SECTIONS`) or flat (files written
        before the sections)."""
        raw = {k: v for k, v in flatten(raw).items() if k not in REMOVED_FIELDS}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"config has unknown fields {sorted(unknown)}")
        check_types(raw, typing.get_type_hints(cls))
        if "model" in raw:
            raw["model"] = _model_config(raw["model"])
        for name in ("target_tumor_ratios", "intensity_range"):
            if name in raw and isinstance(raw[name], list):
                raw[name] = tuple(raw[name])
        if "grid" in raw:
            raw["grid"] = _grid(raw["grid"])
        if "init_from" in raw:
            raw["init_from"] = _init_from(raw["init_from"])
        return cls(**raw)

    @classmethod
    def load(cls, path: Path) -> "SweepConfig":
        """A saved config (`to_json`); one saved before simulator version 2 existed
        was trained on version 1's data, and says so now; one saved before the config
        held its classifier's steps was judged by its preset's."""
        raw = flatten(read_config_file(path), f"config {path}")
        preset = PRESETS.get(raw.get("preset"), {})
        return cls.from_dict({"simulator_version": 1,
                              "classifier_steps": preset.get("classifier_steps",
                                                             cls.classifier_steps), **raw})

    def differences(self, other: "SweepConfig") -> list[str]:
        """Fields (other than runtime ones) whose values differ."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k]]


# --------------------------------------------------------------- sections

# How a config file groups the fields: {section: fields}. In memory the config is one
# flat frozen record (every field name is unique, so ``cfg.learning_rate`` and
# ``dataclasses.replace(cfg, steps=...)`` need no section); files, ``--set
# optim.learning_rate=...`` and experiment configs may name the section. ``model`` is
# the field holding the networks (ModelConfig), already an object of its own.
TOP_LEVEL = ("method", "preset", "precision", "model", "version")
SECTIONS = {
    "data": ("size", "source", "target", "simulator_version", "brats_dir", "n_patients",
             "n_train_patients", "data_seed", "n_source", "n_target", "n_holdout",
             "domain_protocol", "upscale", "intensity_range"),
    "sweep": ("target_tumor_ratios", "seeds", "grid", "init_from"),
    "optim": ("steps", "batch_size", "learning_rate", "discriminator_learning_rate", "beta1",
              "decay_fraction"),
    "options": ("lambda_cycle", "lambda_identity", "gan_weight", "r1_weight", "augment_p",
                "cycle_noise", "pool_size", "condgan_gan_loss", "condgan_pool_size",
                "condgan_discriminator_first", "nce_patches", "nce_temperature",
                "nce_head_features", "lambda_lesion", "lesion_segmenter_steps"),
    "eval": ("test_dropout", "classifier_steps", "classifier_width", "classifier_batch_size",
             "classifier_learning_rate", "classifier_seed"),
    "runtime": RUNTIME_FIELDS,
}
SECTION_OF = {name: section for section, names in SECTIONS.items() for name in names}


def nest(fields: dict) -> dict:
    """Flat fields -> the file's form: TOP_LEVEL fields as they are, the rest by section."""
    out = {name: fields[name] for name in TOP_LEVEL if name in fields}
    for name, value in fields.items():
        if name not in TOP_LEVEL:
            out.setdefault(SECTION_OF[name], {})[name] = value
    return out


def flatten(raw: dict, where: str = "config") -> dict:
    """A file's fields (sections and flat fields mixed as given) -> flat fields; a field
    a section does not hold, or given twice, is one clear error."""
    out = {}
    for key, value in raw.items():
        names = ({key: value} if key not in SECTIONS or not isinstance(value, dict)
                 else value)
        for name, v in names.items():
            if key in SECTIONS and name not in SECTIONS[key]:
                raise UsageError(f"{where}'s {key} has no field {name!r}; it has "
                                 f"{', '.join(SECTIONS[key])}")
            if name in out:
                raise UsageError(f"{where} gives {name} twice")
            out[name] = v
    return out


def _grid(raw) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``{field: [values]}`` (a config file's form) or pairs -> ((field, (values...)), ...)."""
    if isinstance(raw, dict):
        raw = raw.items()
    try:
        return tuple((str(name), tuple(float(v) for v in values)) for name, values in raw)
    except (TypeError, ValueError):
        raise UsageError(f"grid must map fields to lists of numbers, got {raw!r}") from None


def _init_from(raw) -> tuple[tuple[str, str], ...]:
    """``{generator: run folder}`` (a config file's form) or pairs -> ((name, folder), ...)."""
    if isinstance(raw, dict):
        raw = raw.items()
    try:
        pairs = tuple((str(name), str(folder)) for name, folder in raw)
    except (TypeError, ValueError):
        raise UsageError(f"init_from must map generators to run folders, got {raw!r}") from None
    return pairs


def parse_init_from(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``["ab=runs/l1", ...]`` (--init-from flags) -> the config's init_from."""
    pairs = []
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not folder.strip():
            raise UsageError(f"--init-from takes GENERATOR=RUN_FOLDER, got {item!r}")
        pairs.append((name.strip(), folder.strip()))
    return tuple(pairs)


def parse_grid(items: list[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``["lambda_cycle=1,5,10", ...]`` (--grid flags) -> the config's grid."""
    pairs = []
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not text.strip():
            raise UsageError(f"--grid takes FIELD=V1,V2,..., got {item!r}")
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise UsageError(f"--grid {name}: values must be numbers, got {text!r}") from None
        pairs.append((name.strip(), values))
    return tuple(pairs)


def _model_config(raw) -> ModelConfig:
    if isinstance(raw, ModelConfig):
        return raw
    if not isinstance(raw, dict):
        raise UsageError(f"model takes an object of model fields, got {json.dumps(raw)}")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    for name in set(raw) - known:
        if name in ("conv_impl", "precision"):
            raise UsageError(f"model.{name} is set by the top-level {name}, not in \"model\"")
        raise UsageError(f"config's model has unknown field {name!r}; "
                         f"it has {', '.join(sorted(known))}")
    check_types(raw, typing.get_type_hints(ModelConfig), prefix="model.")
    return ModelConfig(**raw)


# --------------------------------------------------------------- field types

# Read by their own parsers (config._grid, config._init_from), which say what they take.
OWN_PARSERS = ("grid", "init_from", "model")


def fits(value, hint) -> bool:
    """Whether a value (JSON's, or a Python default's) has the type ``hint`` names
    (lists or tuples for tuples, ints for floats, never a bool for a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args))
    return True


def type_name(hint) -> str:
    """``a whole number``, ``a list of numbers``, ``a string or null``: for errors."""
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else type_name(a)
                           for a in typing.get_args(hint))
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args:
        plural = type_name(args[0]).replace("a number", "numbers").replace("a ", "")
        return f"a list of {plural}" if args[-1] is Ellipsis else f"a list of {len(args)} {plural}"
    return names.get(hint, str(hint))


def type_error(name: str, value, hint) -> UsageError:
    """The one line a value of the wrong type gets, from a config file or --set."""
    return UsageError(f"{name} takes {type_name(hint)}, got {json.dumps(value, default=str)}")


def check_types(raw: dict, hints: dict, prefix: str = "") -> None:
    """Refuses, in one line, the first field of ``raw`` whose value is not of its type."""
    for name, value in raw.items():
        if name in hints and name not in OWN_PARSERS and not fits(value, hints[name]):
            raise type_error(prefix + name, value, hints[name])


def read_config_file(path: Path) -> dict:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read config {path}: {err}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"config {path} is not a JSON object")
    return raw


def validate(cfg: SweepConfig) -> None:
    if cfg.method not in METHODS:
        raise UsageError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    if cfg.preset not in PRESETS:
        raise UsageError(f"unknown preset {cfg.preset!r}; choose one of {', '.join(PRESETS)}")
    if cfg.size not in SIZES:
        raise UsageError(f"unknown image size {cfg.size!r}; choose one of {', '.join(SIZES)}")
    if cfg.conv_impl not in CONV_IMPLS:
        raise UsageError(
            f"unknown conv impl {cfg.conv_impl!r}; choose one of {', '.join(CONV_IMPLS)}")
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {cfg.precision!r}; "
                         f"choose one of {', '.join(PRECISIONS)}")
    if cfg.member_axis not in MEMBER_AXES:
        raise UsageError(f"unknown member axis {cfg.member_axis!r}; choose one of {', '.join(MEMBER_AXES)}")
    ratios = cfg.target_tumor_ratios
    if not ratios:
        raise UsageError("give at least one target tumor ratio")
    for r in ratios:
        if not isinstance(r, (int, float)) or math.isnan(r) or not 0.0 <= r <= 1.0:
            raise UsageError(f"target tumor ratio {r} is outside [0, 1]")
    if len(set(ratios)) != len(ratios):
        raise UsageError(f"duplicate target tumor ratios in {list(ratios)}")
    for name in ("seeds", "steps", "batch_size", "n_source", "n_target", "n_holdout",
                 "log_every", "checkpoint_every", "n_patients", "classifier_steps",
                 "classifier_width", "classifier_batch_size"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.steps_per_call < 0:
        raise UsageError(f"steps_per_call must be >= 0 (0: auto), got {cfg.steps_per_call}")
    if cfg.simulator_version not in DATASET_VERSIONS:
        raise UsageError(f"simulator_version must be one of "
                         f"{', '.join(map(str, DATASET_VERSIONS))}, got {cfg.simulator_version!r}")
    _validate_modalities(cfg)
    if not 0 < cfg.n_train_patients < cfg.n_patients:
        raise UsageError(f"n_train_patients must be in [1, n_patients), got {cfg.n_train_patients}")
    if not cfg.classifier_learning_rate > 0 or cfg.classifier_seed < 0:
        raise UsageError("classifier_learning_rate must be > 0 and classifier_seed >= 0, got "
                         f"{cfg.classifier_learning_rate} and {cfg.classifier_seed}")
    if not 0.0 <= cfg.decay_fraction <= 1.0:
        raise UsageError(f"decay_fraction must be in [0, 1], got {cfg.decay_fraction}")
    if cfg.pool_size < 0:
        raise UsageError(f"pool_size must be >= 0, got {cfg.pool_size}")
    _validate_knobs(cfg)
    _validate_init_from(cfg)
    _validate_method_settings(cfg)
    _validate_reference_settings(cfg)
    if cfg.version != CONFIG_VERSION:
        raise UsageError(f"config version {cfg.version} is not this program's ({CONFIG_VERSION})")


def _validate_modalities(cfg: SweepConfig) -> None:
    for role in ("source", "target"):
        modality = getattr(cfg, role)
        if modality not in MODALITIES:
            raise UsageError(f"unknown {role} modality {modality!r}; choose one of "
                             f"{', '.join(MODALITIES)}")
        # data/layout.py DATASETS: versions 1 and 2 stored Flair and T1 only
        if cfg.simulator_version < 3 and modality not in ("flair", "t1"):
            raise UsageError(f"{role} {modality}: dataset version {cfg.simulator_version} "
                             "holds flair and t1 only; use simulator_version 3")


def _check_knob(name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise UsageError(f"{name} must be a number, got {value!r}")
    if name == "augment_p" and not 0.0 <= value <= 1.0:
        raise UsageError(f"augment_p is a probability in [0, 1], got {value}")
    if value < 0:
        raise UsageError(f"{name} must be >= 0, got {value}")


def _validate_knobs(cfg: SweepConfig) -> None:
    for name in GRID_FIELDS:
        if getattr(cfg, name) is not None:
            _check_knob(name, getattr(cfg, name))
    seen = set()
    for name, values in cfg.grid:
        if name not in GRID_FIELDS:
            other = ("it changes shapes or the compiled program, so it is one value per run"
                     if name in {f.name for f in dataclasses.fields(SweepConfig)}
                     else "no such field")
            raise UsageError(f"cannot grid {name!r}: {other}; grid one of {', '.join(GRID_FIELDS)}")
        if name in seen:
            raise UsageError(f"grid names {name!r} twice")
        seen.add(name)
        if not values:
            raise UsageError(f"grid {name!r} has no values")
        if len(set(values)) != len(values):
            raise UsageError(f"grid {name!r} repeats a value: {list(values)}")
        for value in values:
            _check_knob(name, value)


def _validate_init_from(cfg: SweepConfig) -> None:
    names = [name for name, _ in cfg.init_from]
    generators = SPECS[cfg.method].generators
    for name in names:
        if name not in generators:
            raise UsageError(f"init_from names generator {name!r}; {cfg.method} has "
                             f"{', '.join(generators)}")
    if len(set(names)) != len(names):
        raise UsageError(f"init_from names a generator twice: {names}")


def _validate_reference_settings(cfg: SweepConfig) -> None:
    for name in ("test_dropout", "condgan_discriminator_first"):
        if not isinstance(getattr(cfg, name), bool):
            raise UsageError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
    if cfg.test_dropout and not cfg.model.dropout:
        raise UsageError("test_dropout needs model dropout > 0 (the model has none)")
    if not isinstance(cfg.upscale, int) or cfg.upscale < 1:
        raise UsageError(f"upscale must be an integer >= 1, got {cfg.upscale!r}")
    bounds = cfg.intensity_range
    if (not isinstance(bounds, tuple) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) for b in bounds)
            or not -1.0 <= bounds[0] < bounds[1] <= 1.0):
        raise UsageError(f"intensity_range must be (low, high) with -1 <= low < high <= 1 "
                         f"(the generator's tanh range), got {bounds!r}")
    if cfg.domain_protocol not in DOMAIN_PROTOCOLS:
        raise UsageError(f"unknown domain protocol {cfg.domain_protocol!r}; "
                         f"choose one of {', '.join(DOMAIN_PROTOCOLS)}")
    if cfg.domain_protocol == "outside_targets" and not cfg.paired:
        raise UsageError(f"domain protocol outside_targets draws pairs: {cfg.method} is unpaired")
    if cfg.condgan_gan_loss not in GAN_LOSS_NAMES:
        raise UsageError(f"unknown condgan GAN loss {cfg.condgan_gan_loss!r}; "
                         f"choose one of {', '.join(GAN_LOSS_NAMES)}")
    if cfg.condgan_pool_size < 0:
        raise UsageError(f"condgan_pool_size must be >= 0, got {cfg.condgan_pool_size}")


def _validate_method_settings(cfg: SweepConfig) -> None:
    for name in ("nce_patches", "nce_head_features", "lesion_segmenter_steps"):
        if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            raise UsageError(f"{name} must be an integer >= 1, got {getattr(cfg, name)!r}")
    if not cfg.nce_temperature > 0:
        raise UsageError(f"nce_temperature must be > 0, got {cfg.nce_temperature}")
    if not cfg.lambda_lesion >= 0:
        raise UsageError(f"lambda_lesion must be >= 0, got {cfg.lambda_lesion}")
    if SPECS[cfg.method].nce and cfg.model.generator != "resnet":
        raise UsageError(f"{cfg.method} takes PatchNCE features from the ResNet generator; "
                         f"set model.generator to 'resnet', not {cfg.model.generator!r}")


def parse_ratios(text: str) -> tuple[float, ...]:
    """'0,0.5,1' -> (0.0, 0.5, 1.0), with a clear error for anything else."""
    try:
        ratios = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"ratios must be comma-separated numbers in [0, 1], got {text!r}") from None
    if not ratios:
        raise UsageError("give at least one target tumor ratio")
    return ratios


def parse_methods(text: str) -> tuple[str, ...]:
    """'cut,fastcut' -> ('cut', 'fastcut'), refusing unknown or repeated names."""
    methods = tuple(part.strip() for part in text.split(",") if part.strip())
    if not methods:
        raise UsageError(f"give at least one method; choose from {', '.join(METHODS)}")
    for method in methods:
        if method not in METHODS:
            raise UsageError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise UsageError(f"repeated method in {text!r}")
    return methods
