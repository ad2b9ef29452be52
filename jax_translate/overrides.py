"""``--set FIELD=VALUE``: any config field from the command line, checked against its type.

VALUE is read as JSON (``1e-3``, ``true``, ``[0, 0.5]``, ``{"lambda_cycle": [1, 5]}``),
else taken as a string (``member_axis=loop``). ``model.FIELD=VALUE`` (or
``model={...}``) changes fields of the networks on top of the model the run
starts from (its preset's or config file's), not of ModelConfig's defaults.
A field may be named by its section too (``optim.learning_rate=1e-3``:
config.SECTIONS). The parsed dict is ``configure.resolve``'s top layer.
A value's range is checked where the config is built (``config.validate``);
its type here, so that a string where a number belongs is one clear error.
"""

from __future__ import annotations

import difflib
import json
import typing

from jax_translate.config import OWN_PARSERS, SECTIONS, SweepConfig, fits, type_error
from jax_translate.errors import UsageError
from jax_translate.model_config import ModelConfig
from jax_translate.presets import EXTRA_TYPES, PER_METHOD

# Set by their own flags (--method, --methods, --preset), or not settable.
NOT_SETTABLE = {"method": "--method", "preset": "--preset", "version": None}


def _check(name: str, value, hints: dict, per_method: bool = False) -> None:
    if name not in hints:
        close = difflib.get_close_matches(name, hints, n=1)
        raise UsageError(f"--set {name}: no such config field"
                         + (f" (did you mean {close[0]}?)" if close else ""))
    if name in OWN_PARSERS:
        return  # read and checked as a config file's (config._grid, config._init_from)
    hint = hints[name]
    values = list(value.values()) if per_method and isinstance(value, dict) else [value]
    for v in values:
        if not fits(v, hint):
            raise type_error(name, v, hint)


def parse_sets(items: list[str]) -> dict:
    """``["learning_rate=1e-3", "model.ngf=32"]`` -> ``{"learning_rate": 0.001,
    "model": {"ngf": 32}}``; one UsageError for an unknown field or a value of the wrong type."""
    config_hints = typing.get_type_hints(SweepConfig)
    config_hints.update(EXTRA_TYPES)
    model_hints = typing.get_type_hints(ModelConfig)
    sets: dict = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--set takes FIELD=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        field, dot, sub = name.partition(".")
        if field in SECTIONS:
            if sub not in SECTIONS[field]:
                raise UsageError(f"--set {name}: section {field} has no field {sub!r}; it has "
                                 f"{', '.join(SECTIONS[field])}")
            field, dot, sub = sub, "", ""
        if field in NOT_SETTABLE:
            flag = NOT_SETTABLE[field]
            raise UsageError(f"--set {field}: " + (f"use {flag}" if flag else "not settable"))
        if field == "model":
            if dot:
                value = {sub: value}
            elif not isinstance(value, dict):
                raise UsageError(f"--set model takes a JSON object of model fields, got {text!r}")
            for key, v in value.items():
                _check(f"model.{key}", v, {f"model.{k}": h for k, h in model_hints.items()})
            sets["model"] = {**sets.get("model", {}), **value}
            continue
        if dot:
            raise UsageError(f"--set {name}: only model and the sections "
                             f"({', '.join(SECTIONS)}) have fields of their own")
        _check(field, value, config_hints, per_method=field in PER_METHOD)
        sets[field] = value
    return sets
