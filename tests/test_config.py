"""Presets as overrides of one SweepConfig, and the config files that build on them."""

import dataclasses
import json
from pathlib import Path

import pytest

from jax_translate import cli
from jax_translate.catalog import METHODS
from jax_translate.config import SECTIONS, TOP_LEVEL, SweepConfig
from jax_translate.configure import Experiment, resolve
from jax_translate.errors import UsageError
from jax_translate.model_config import MODEL_PRESETS
from jax_translate.presets import PER_METHOD, PRESETS

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*/config.json"))


def test_overrides_beat_the_preset():
    cpu = resolve("l1", "cpu", steps=7, seeds=2)
    assert (cpu.steps, cpu.seeds) == (7, 2)
    assert cpu.target_tumor_ratios == PRESETS["cpu"]["target_tumor_ratios"]  # not overridden
    assert resolve("gan", "tiny", steps={"gan": 3, "l1": 9}).steps == 3
    with pytest.raises(UsageError, match="unknown preset"):
        resolve("l1", "huge")
    with pytest.raises(UsageError, match="no value for method"):
        resolve("gan", "tiny", steps={"l1": 9})


def test_a_partial_model_changes_only_those_fields_of_the_presets_networks(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"n_disc_layers": 1},
                                "r1_weight": {"cyclegan": 100, "default": 0}}))
    experiment = Experiment.load(path).with_preset("cpu")
    cyclegan, condgan = experiment.config("cyclegan"), experiment.config("condgan")
    assert cyclegan.model == dataclasses.replace(MODEL_PRESETS["cpu"], n_disc_layers=1)
    assert (cyclegan.r1_weight, condgan.r1_weight) == (100, 0)


def test_a_run_folders_config_rebuilds_the_same_run(tmp_path):
    cfg = resolve("condgan", "tiny", seeds=3, target_tumor_ratios=(0.2, 0.7))
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert Experiment.load(tmp_path / "config.json").config() == cfg
    assert SweepConfig.load(tmp_path / "config.json") == cfg
    assert resolve(file=tmp_path / "config.json") == cfg
    # written by section, the method and its networks at the top
    raw = json.loads(cfg.to_json())
    assert set(raw) == set(TOP_LEVEL) | set(SECTIONS)
    assert raw["optim"]["learning_rate"] == cfg.learning_rate and raw["method"] == "condgan"
    assert raw["eval"]["classifier_steps"] == cfg.classifier_steps
    # a file written flat (before the sections) is the same config
    flat = dataclasses.asdict(cfg)
    flat["model"] = dataclasses.asdict(cfg.model)
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    assert SweepConfig.load(tmp_path / "flat.json") == cfg
    assert resolve(file=tmp_path / "flat.json") == cfg


def test_every_field_is_in_one_section_or_at_the_top():
    names = [f.name for f in dataclasses.fields(SweepConfig)]
    placed = list(TOP_LEVEL) + [n for section in SECTIONS.values() for n in section]
    assert sorted(placed) == sorted(names)  # each once, none missing, none invented
    assert not set(SECTIONS) & set(names)  # a section is never mistaken for a field


def test_a_field_in_the_wrong_section_or_given_twice_is_one_line(tmp_path):
    path = tmp_path / "c.json"
    for raw, message in (({"optim": {"seeds": 2}}, "config .*'s optim has no field 'seeds'"),
                         ({"optim": {"steps": 2}, "steps": 3}, "gives steps twice")):
        path.write_text(json.dumps(raw))
        with pytest.raises(UsageError, match=message):
            resolve("l1", "tiny", file=path)
    with pytest.raises(UsageError, match="section optim has no field 'seeds'"):
        resolve("l1", "tiny", sets=["optim.seeds=2"])


def test_the_layers_in_their_order(tmp_path):
    """defaults < the method's own < preset < file < flags < --set, each over the last,
    and a partial model over the model below it."""
    assert SweepConfig().lambda_identity == 0.5  # the default ...
    assert resolve("cyclegan-adapt", "tiny").lambda_identity == 0.0  # ... the method's own
    assert resolve("l1", "tiny").steps == PRESETS["tiny"]["steps"]  # the preset over both
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"optim": {"steps": 7, "learning_rate": 1e-3},
                                "lambda_identity": 0.25, "model": {"ngf": 6}}))
    assert resolve("cyclegan-adapt", "tiny", file=path).lambda_identity == 0.25  # the file
    cfg = resolve("l1", "tiny", file=path)
    assert (cfg.steps, cfg.learning_rate) == (7, 1e-3)
    cfg = resolve("l1", "tiny", file=path, steps=9)  # a flag over the file
    assert (cfg.steps, cfg.learning_rate) == (9, 1e-3)
    cfg = resolve("l1", "tiny", file=path, steps=9, sets=["optim.steps=11", "model.ndf=5"])
    assert cfg.steps == 11  # --set over the flag
    assert cfg.model == dataclasses.replace(MODEL_PRESETS["tiny"], ngf=6, ndf=5)
    args = cli.build_parser().parse_args(
        ["sweep", "--config", str(path), "--method", "l1", "--preset", "tiny", "--steps", "9",
         "--set", "steps=11", "--set", "model.ndf=5", "--workdir", str(tmp_path / "r")])
    assert cli._sweep_config(args) == cfg


def test_the_run_names_its_whole_judge():
    """The classifier's settings are the config's (eval section), defaults the segmenter's."""
    from jax_translate.evaluation.classifier import ClassifierConfig, config_for

    cfg = resolve("l1", "tiny")
    assert config_for(cfg) == dataclasses.replace(ClassifierConfig(),
                                                  steps=PRESETS["tiny"]["classifier_steps"])
    wide = resolve("l1", "tiny", sets=["eval.classifier_width=8", "classifier_seed=3"])
    assert (config_for(wide).width, config_for(wide).seed) == (8, 3)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.parent.name)
def test_every_experiment_config_loads(path, tmp_path, monkeypatch):
    experiment = Experiment.load(path)
    for preset in PRESETS:
        for method in experiment.with_preset(preset).method_names():
            cfg = experiment.with_preset(preset).config(method)
            assert cfg.method == method and cfg.preset == preset
    # `sweep --config` builds the config it would train ...
    args = cli.build_parser().parse_args(
        ["sweep", "--config", str(path), "--method", "l1", "--steps", "5",
         "--workdir", str(tmp_path)])
    cfg = cli._sweep_config(args)
    assert (cfg.method, cfg.steps) == ("l1", 5)
    assert cfg == resolve("l1", "cpu", **{**experiment.overrides, "steps": 5})
    # ... and `reproduce --config` hands the experiment to reproduce()
    seen = []
    monkeypatch.setattr("jax_translate.jobs.reproduce.reproduce", lambda exp, out, **kw: seen.append(exp))
    assert cli.main(["reproduce", "--config", str(path), "--preset", "tiny",
                     "--out", str(tmp_path / "out")]) == 0
    want = experiment.with_preset("tiny").method_names()
    assert seen[0].preset == "tiny" and tuple(seen[0].configs) == want
    assert all(cfg == experiment.with_preset("tiny").config(m)
               for m, cfg in seen[0].configs.items())


def test_config_files_are_checked(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "cpu", "methods": ["cyclegan", "l1"], "bogus": 1}))
    with pytest.raises(UsageError, match="unknown fields"):
        Experiment.load(path)
    path.write_text(json.dumps({"preset": "cpu", "methods": ["cyclegan", "l1"]}))
    with pytest.raises(UsageError, match="pick one with --method"):
        Experiment.load(path).config()
    with pytest.raises(UsageError, match="built on preset 'cpu'"):
        Experiment.load(path).with_preset("paper")
    assert Experiment.load(path).config("l1").classifier_steps == PRESETS["cpu"]["classifier_steps"]


def test_how_the_model_computes_is_set_at_the_top_level_only():
    """conv_impl lives on the top level only; ModelConfig is the architecture."""
    cfg = resolve("cyclegan", "tiny", conv_impl="patches")
    assert "conv_impl" not in json.loads(cfg.to_json())["model"]
    model = {**dataclasses.asdict(cfg.model), "conv_impl": "patches"}
    with pytest.raises(UsageError, match="model.conv_impl is set by the top-level conv_impl"):
        resolve("cyclegan", "tiny", model=model)


def test_presets_set_what_they_name_and_nothing_else():
    """Every field of every preset's config, for every method, is the preset's value
    (its method's, or its "default", for PER_METHOD dicts), else the method's own
    default (its catalog spec's), else SweepConfig's default: what resolve
    promises, checked without copying a preset's numbers."""
    from jax_translate.catalog import SPECS

    defaults = SweepConfig()
    for preset, settings in PRESETS.items():
        for method in METHODS:
            cfg = resolve(method, preset)
            own = dict(SPECS[method].defaults)
            for field in dataclasses.fields(SweepConfig):
                if field.name in ("method", "preset"):
                    continue
                want = settings.get(field.name, own.get(field.name,
                                                        getattr(defaults, field.name)))
                if field.name in PER_METHOD and isinstance(want, dict):
                    want = want.get(method, want.get("default"))
                assert getattr(cfg, field.name) == want, (preset, method, field.name)
    # a method the preset does not name takes its "default"; learning rates alike
    assert resolve("cut", "cpu", steps={"default": 7, "l1": 9}).steps == 7
    rates = {"l1": 1e-3, "default": 2e-4}
    assert [resolve(m, "cpu", learning_rate=rates).learning_rate for m in ("l1", "gan")] == [
        1e-3, 2e-4]
    with pytest.raises(UsageError, match="learning_rate gives no value for method 'gan'"):
        resolve("gan", "cpu", learning_rate={"l1": 1e-3})


def test_method_registry_lists_and_the_methods_flag(tmp_path):
    from jax_translate.catalog import PAIRED_METHODS, PAPER_METHODS
    from jax_translate.config import parse_methods

    assert PAPER_METHODS == ("cyclegan", "condgan", "l1", "gan")
    assert METHODS == PAPER_METHODS + ("cut", "fastcut", "cyclegan-adapt", "cyclegan-cc")
    assert PAIRED_METHODS == ("condgan", "l1")
    assert parse_methods("cut, fastcut") == ("cut", "fastcut")
    with pytest.raises(UsageError, match="unknown method 'foo'"):
        parse_methods("cut,foo")
    with pytest.raises(UsageError, match="repeated"):
        parse_methods("cut,cut")
    (tmp_path / "c.json").write_text("{}")
    # reproduce's default: the preset's methods (cpu: the two that reach the gate on a CPU;
    # gpu: those, cyclegan-adapt and the paper's other two), the paper's four where a
    # preset names none
    assert Experiment.load(tmp_path / "c.json").with_preset("cpu").method_names() == (
        "l1", "condgan")
    assert Experiment.load(tmp_path / "c.json").with_preset("gpu").method_names() == (
        "l1", "condgan", "cyclegan-adapt", "cyclegan", "gan")
    assert Experiment.load(tmp_path / "c.json").with_preset("paper").method_names() == (
        PAPER_METHODS)
    (tmp_path / "c.json").write_text('{"methods": ["gan"]}')
    assert Experiment.load(tmp_path / "c.json").with_preset("cpu").method_names() == ("gan",)
    args = cli.build_parser().parse_args(["reproduce", "--methods", "cut,cyclegan-cc"])
    assert parse_methods(args.methods) == ("cut", "cyclegan-cc")
    with pytest.raises(UsageError, match="ResNet generator"):
        resolve("cut", "tiny", model={**dataclasses.asdict(MODEL_PRESETS["tiny"]),
                                          "generator": "unet"})


def test_every_catalog_entry_names_an_objective_and_every_objective_is_named():
    """The catalog (vocabulary: config checks read it, so it holds no jax code) names each
    method's objective by key; the key must be one of training's objectives, each with
    the objective signature, and no objective may be left unnamed."""
    import inspect

    from jax_translate.catalog import SPECS
    from jax_translate.training import objectives

    assert {spec.objective for spec in SPECS.values()} == set(objectives.OBJECTIVES)
    for name, function in objectives.OBJECTIVES.items():
        assert function.__name__ == name
        assert list(inspect.signature(function).parameters) == [
            "method", "generator", "batch", "translate", "judge", "hp", "keys"]


def _wrong_value(hint):
    """A JSON value that is not of type ``hint`` (a string where a number belongs, ...)."""
    import typing

    args = typing.get_args(hint)
    if hint in (int, float) or float in args or int in args:
        return "x"
    if hint is str or str in args:
        return 5
    if hint is bool:
        return "yes"
    return "x"  # tuples, the model, the grid, init_from: not a string


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(SweepConfig)])
def test_a_config_file_field_of_the_wrong_type_is_one_line_not_a_traceback(field, tmp_path,
                                                                          capsys):
    """Issue 37 item 8: {"n_source": "x"} in a config file was a 28-line TypeError; every
    field now gets one line and exit status 2, the same line as --set gives."""
    import typing

    hint = typing.get_type_hints(SweepConfig)[field]
    value = _wrong_value(hint)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({field: value}))
    argv = ["sweep", "--config", str(path), "--method", "l1", "--preset", "tiny",
            "--workdir", str(tmp_path / "run")]
    if field in ("method", "preset"):  # given by their flags, which the file may not contradict
        argv = [a for a in argv if a not in ("--method", "l1", "--preset", "tiny")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "run" / "config.json").exists()
    if field not in ("method", "preset", "model", "grid", "init_from", "version"):
        assert err == f"error: {field} takes {_type_name(hint)}, got {json.dumps(value)}\n"
        # --set says the same
        assert cli.main(["sweep", "--method", "l1", "--preset", "tiny", "--set",
                         f"{field}={json.dumps(value)}", "--workdir", str(tmp_path / "run")]) == 2
        assert capsys.readouterr().err == err


def _type_name(hint):
    from jax_translate.config import type_name

    return type_name(hint)


def test_the_model_and_the_extra_keys_of_a_config_file_are_type_checked(tmp_path):
    path = tmp_path / "c.json"
    for raw, message in (({"model": {"ngf": "wide"}}, 'model.ngf takes a whole number, got "wide"'),
                         ({"model": 3}, "model takes an object of model fields, got 3"),
                         ({"classifier_steps": "many"},
                          'classifier_steps takes a whole number, got "many"')):
        path.write_text(json.dumps(raw))
        with pytest.raises(UsageError) as err:
            Experiment.load(path).with_preset("tiny").config("l1")
        assert str(err.value) == message


def test_the_configs_dataset_versions_are_the_datasets():
    from jax_translate.config import DATASET_VERSIONS
    from jax_translate.data.layout import DATASETS, LATEST_VERSION

    assert DATASET_VERSIONS == tuple(sorted(DATASETS))
    assert SweepConfig().simulator_version == LATEST_VERSION
