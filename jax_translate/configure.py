"""The one way a config is made: layers of settings, each over the last.

    SweepConfig's defaults < the method's own (its catalog spec's ``defaults``)
    < the preset (presets.py) < the config file < ``fields`` (command-line flags,
    an experiment's settings) < ``sets`` (``--set FIELD=VALUE`` items)

:func:`resolve` gives one method's :class:`~jax_translate.config.SweepConfig`;
:func:`resolve_study` every method a study runs, with its preset's notes and
preflight. The CLI, the jobs, the experiments and the benchmarks all call one
of the two. A partial ``model`` in any layer changes those fields of the
networks below it (:func:`merge_model`, the one merge).
The file is an experiment's ``config.json`` (a preset, its methods and
overrides of the preset) or a run folder's (every field): :class:`Experiment`
reads both, flat or nested by section.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

from jax_translate.catalog import METHODS, PAPER_METHODS, SPECS
from jax_translate.config import (REMOVED_FIELDS, SweepConfig, check_types, flatten,
                                  read_config_file)
from jax_translate.errors import UsageError
from jax_translate.model_config import ModelConfig
from jax_translate.overrides import parse_sets
from jax_translate.presets import EXTRA_KEYS, EXTRA_TYPES, PER_METHOD, PRESETS, default_preset


class Study(NamedTuple):
    """What ``reproduce`` runs: its preset, one config per method (in the order they
    run), and the preset's ``notes`` and ``preflight``."""

    preset: str
    configs: dict[str, SweepConfig]
    notes: str = ""
    preflight: bool = False


def resolve(method: str | None = None, preset: str | None = None, *,
            file: str | Path | None = None, sets=(), **fields) -> SweepConfig:
    """``method``'s config (the file's only method if None) on ``preset`` (the file's,
    else ``presets.default_preset()``); ``sets``: ``--set`` items (strings) or their
    parsed dict; ``fields``: config fields, the ``PER_METHOD`` ones also as
    ``{method: value}`` dicts (``"default"``: every other method)."""
    return Experiment.of(file).with_preset(preset).config(method, sets, **fields)


def resolve_study(preset: str | None = None, *, file: str | Path | None = None,
                  methods: tuple[str, ...] | None = None, sets=(), **fields) -> Study:
    """Every method of a study: ``methods``, else the file's, else the preset's, else
    the paper's four; the layers as :func:`resolve`'s."""
    experiment = Experiment.of(file).with_preset(preset)
    if methods:
        experiment = dataclasses.replace(experiment, methods=tuple(methods))
    experiment = experiment.with_preset(experiment.preset or default_preset())
    settings = experiment.settings(sets, **fields)  # once: every method reads the same layers
    configs = {m: _config(m, experiment.preset, settings)
               for m in experiment.method_names()}
    return Study(experiment.preset, configs, settings.get("notes", ""),
                 bool(settings.get("preflight", False)))


def merge_model(base, changes: dict) -> dict:
    """The fields of ``base`` (a ModelConfig, or its dict) with ``changes`` on top: the
    one place a partial model (a config file's, ``--set model.X``, an experiment's) is
    merged into the networks it changes."""
    base = dataclasses.asdict(base) if isinstance(base, ModelConfig) else dict(base)
    return {**base, **changes}


def _on_top(settings: dict, layer: dict) -> dict:
    """``layer`` over ``settings``; a partial model (a dict) over the model below it."""
    out = dict(settings)
    for name, value in layer.items():
        if name == "model" and isinstance(value, dict):
            value = merge_model(settings.get("model") or ModelConfig(), value)
        out[name] = value
    return out


def _config(method: str, preset: str, settings: dict) -> SweepConfig:
    """``settings`` (the preset's and every layer above it) as ``method``'s config, over
    the method's own defaults and SweepConfig's."""
    if method not in SPECS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    fields = {**dict(SPECS[method].defaults), **settings}
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
    ``config.json`` (``{"preset": "cpu", "methods": [...], ...}``) are both one;
    ``overrides`` are flat (sections read by ``config.flatten``).
    """

    preset: str | None = None  # None: the file names none (default_preset() unless a flag picks one)
    methods: tuple[str, ...] = ()  # (): the preset's (method_names)
    overrides: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, file: "str | Path | Experiment | None") -> "Experiment":
        """The file's experiment (None: an empty one, every setting the preset's)."""
        if isinstance(file, Experiment):
            return file
        return cls() if file is None else cls.load(Path(file))

    @classmethod
    def load(cls, path: Path) -> "Experiment":
        raw = flatten(read_config_file(path), f"config {path}")
        raw = {k: v for k, v in raw.items() if k not in REMOVED_FIELDS}
        known = {f.name for f in dataclasses.fields(SweepConfig)} | set(EXTRA_KEYS)
        unknown = set(raw) - known
        if unknown:
            raise UsageError(f"config {path} has unknown fields {sorted(unknown)}")
        check_types({k: v for k, v in raw.items() if k in EXTRA_KEYS}, EXTRA_TYPES)
        methods = raw.pop("methods", None) or ([raw.pop("method")] if "method" in raw else ())
        for method in methods:
            if method not in METHODS:
                raise UsageError(f"config {path}: unknown method {method!r}")
        return cls(raw.pop("preset", None), tuple(methods), raw)

    def method_names(self) -> tuple[str, ...]:
        """What this experiment runs: its own methods, else its preset's ``methods``,
        else the paper's four."""
        return self.methods or tuple(self.settings().get("methods", PAPER_METHODS))

    def with_preset(self, preset: str | None) -> "Experiment":
        """This experiment on ``preset`` (a --preset flag); refused if the file names another."""
        if preset is None or preset == self.preset:
            return self
        if self.preset is not None:
            raise UsageError(f"the config is built on preset {self.preset!r}, not {preset!r}; "
                             "drop --preset or edit the config's \"preset\"")
        return dataclasses.replace(self, preset=preset)

    def settings(self, sets=(), **fields) -> dict:
        """The preset's values with the file's, ``fields`` and ``sets`` on top, EXTRA_KEYS
        included."""
        preset = self.preset or default_preset()
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        parsed = parse_sets(list(sets)) if not isinstance(sets, dict) else sets
        settings = dict(PRESETS[preset])
        for layer in (self.overrides, fields, parsed):
            settings = _on_top(settings, layer)
        return settings

    def config(self, method: str | None = None, sets=(), **fields) -> SweepConfig:
        """The SweepConfig of ``method`` (the file's only method if None)."""
        if method is None:
            methods = self.method_names()
            if len(methods) != 1:
                raise UsageError(f"the config runs methods {', '.join(methods)}: "
                                 "pick one with --method")
            method = methods[0]
        return _config(method, self.preset or default_preset(), self.settings(sets, **fields))
