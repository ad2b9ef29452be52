"""One config object per sweep, built from a preset, with validation and a JSON form.

``make_config(method, preset, **overrides)`` is the only way a preset
(:mod:`jax_translate.presets`) is applied; :class:`Experiment` reads a config
file (a run folder's, or an ``experiments/<figure>/config.json``) as a preset
plus overrides.

A run folder keeps the resolved config in ``config.json`` so every result can
be traced to exactly what made it, and so a rerun can check that it resumes
the same experiment. Fields in :data:`RUNTIME_FIELDS` change how a run
executes, not what it computes, and may differ on resume.
"""

from __future__ import annotations

import dataclasses
import json
import itertools
import math
from pathlib import Path
from typing import NamedTuple

from jax_translate.images import MODALITIES, SIZES
from jax_translate.errors import UsageError
from jax_translate.model_config import MODEL_PRESETS, ModelConfig
from jax_translate import model_config
from jax_translate.presets import EXTRA_KEYS, PER_METHOD, PRESETS, default_preset
from jax_translate.catalog import METHODS, PAIRED_METHODS, PAPER_METHODS, SPECS
MEMBER_AXES = ("auto", "vmap", "map", "loop")
CONV_IMPLS = ("auto", *model_config.CONV_IMPLS)
CONFIG_VERSION = 1
DOMAIN_PROTOCOLS = ("disjoint", "reference")
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
    # 3 is simulator 2's patients with Flair, T1, T2 and T1c and a validation split;
    # 2 and 1 the older data (Flair and T1 only). It also picks real BraTS's layout.
    simulator_version: int = 3
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
        fields = dataclasses.asdict(self)
        # pairs, not a dict: sort_keys would reorder the fields, and the grid's order is the
        # members' order (a resumed sweep must find its stacked states where it left them)
        fields["grid"] = [[name, list(values)] for name, values in self.grid]
        return json.dumps(fields, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict) -> "SweepConfig":
        raw = {k: v for k, v in raw.items() if k not in REMOVED_FIELDS}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"config has unknown fields {sorted(unknown)}")
        if "model" in raw:
            raw["model"] = _model_config(raw["model"])
        for name in ("target_tumor_ratios", "intensity_range"):
            if name in raw and isinstance(raw[name], list):
                raw[name] = tuple(raw[name])
        if "grid" in raw:
            raw["grid"] = _grid(raw["grid"])
        return cls(**raw)

    @classmethod
    def load(cls, path: Path) -> "SweepConfig":
        """A saved config (`to_json`); one saved before simulator version 2 existed
        was trained on version 1's data, and says so now."""
        return cls.from_dict({"simulator_version": 1, **read_config_file(path)})

    def differences(self, other: "SweepConfig") -> list[str]:
        """Fields (other than runtime ones) whose values differ."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k]]


def _grid(raw) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``{field: [values]}`` (a config file's form) or pairs -> ((field, (values...)), ...)."""
    if isinstance(raw, dict):
        raw = raw.items()
    try:
        return tuple((str(name), tuple(float(v) for v in values)) for name, values in raw)
    except (TypeError, ValueError):
        raise UsageError(f"grid must map fields to lists of numbers, got {raw!r}") from None


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
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    for name in set(raw) - known:
        if name in ("conv_impl", "precision"):
            raise UsageError(f"model.{name} is set by the top-level {name}, not in \"model\"")
        raise UsageError(f"config's model has unknown field {name!r}; "
                         f"it has {', '.join(sorted(known))}")
    return ModelConfig(**raw)


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
                 "log_every", "checkpoint_every", "n_patients"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.steps_per_call < 0:
        raise UsageError(f"steps_per_call must be >= 0 (0: auto), got {cfg.steps_per_call}")
    if cfg.simulator_version not in (1, 2, 3):  # data/layout.py DATASETS
        raise UsageError(f"simulator_version must be 1, 2 or 3, got {cfg.simulator_version}")
    _validate_modalities(cfg)
    if not 0 < cfg.n_train_patients < cfg.n_patients:
        raise UsageError(f"n_train_patients must be in [1, n_patients), got {cfg.n_train_patients}")
    if not 0.0 <= cfg.decay_fraction <= 1.0:
        raise UsageError(f"decay_fraction must be in [0, 1], got {cfg.decay_fraction}")
    if cfg.pool_size < 0:
        raise UsageError(f"pool_size must be >= 0, got {cfg.pool_size}")
    _validate_knobs(cfg)
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


def preset_settings(preset: str, **overrides) -> dict:
    """The preset's overrides with ``overrides`` on top (EXTRA_KEYS included). A ``model``
    given as a dict changes those fields of the preset's networks, as ``--set model.X`` does
    (a config file need not repeat the networks to change its discriminator)."""
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    settings = {**PRESETS[preset], **overrides}
    base = PRESETS[preset].get("model")
    if isinstance(overrides.get("model"), dict) and isinstance(base, ModelConfig):
        settings["model"] = {**dataclasses.asdict(base), **overrides["model"]}
    return settings


def make_config(method: str, preset: str | None = None, **overrides) -> SweepConfig:
    """``method``'s config: SweepConfig defaults, then ``preset``, then ``overrides``.

    The one place a preset is applied; ``preset`` None is
    ``presets.default_preset()``. ``overrides`` may hold the preset-only keys
    (``classifier_steps``, ``notes``; dropped here) and the ``PER_METHOD``
    fields as ``{method: value}`` dicts (``"default"``: every other method).
    """
    preset = preset or default_preset()
    fields = preset_settings(preset, **overrides)
    for key in EXTRA_KEYS:
        fields.pop(key, None)
    for name in PER_METHOD:
        if isinstance(fields.get(name), dict):
            values = fields[name]
            if method not in values and "default" not in values:
                raise UsageError(f"{name} gives no value for method {method!r}")
            fields[name] = values.get(method, values.get("default"))
    if isinstance(fields.get("model"), ModelConfig):
        fields["model"] = dataclasses.asdict(fields["model"])
    return SweepConfig.from_dict({**fields, "method": method, "preset": preset})


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A config file: a preset, the methods to run and overrides of the preset.

    A run folder's ``config.json`` (every field) and an experiment's
    ``config.json`` (``{"preset": "cpu", "methods": [...], ...}``) are both one.
    """

    preset: str | None     # None: the file names none (presets.default_preset() unless a flag picks one)
    methods: tuple[str, ...]
    overrides: dict

    @classmethod
    def load(cls, path: Path) -> "Experiment":
        raw = {k: v for k, v in read_config_file(path).items() if k not in REMOVED_FIELDS}
        known = {f.name for f in dataclasses.fields(SweepConfig)} | set(EXTRA_KEYS) | {"methods"}
        unknown = set(raw) - known
        if unknown:
            raise UsageError(f"config {path} has unknown fields {sorted(unknown)}")
        methods = (raw.pop("methods", None)
                   or ([raw.pop("method")] if "method" in raw else PAPER_METHODS))
        for method in methods:
            if method not in METHODS:
                raise UsageError(f"config {path}: unknown method {method!r}")
        return cls(raw.pop("preset", None), tuple(methods), raw)

    def with_preset(self, preset: str | None) -> "Experiment":
        """This experiment on ``preset`` (a --preset flag); refused if the file names another."""
        if preset is None or preset == self.preset:
            return self
        if self.preset is not None:
            raise UsageError(f"the config is built on preset {self.preset!r}, not {preset!r}; "
                             "drop --preset or edit the config's \"preset\"")
        return dataclasses.replace(self, preset=preset)

    def settings(self) -> dict:
        """The preset's values with the file's on top, EXTRA_KEYS included."""
        return preset_settings(self.preset or default_preset(), **self.overrides)

    def config(self, method: str | None = None, **overrides) -> SweepConfig:
        """The SweepConfig of ``method`` (the file's only method if None)."""
        if method is None:
            if len(self.methods) != 1:
                raise UsageError(f"the config runs methods {', '.join(self.methods)}: "
                                 "pick one with --method")
            method = self.methods[0]
        return make_config(method, self.preset, **{**self.overrides, **overrides})
