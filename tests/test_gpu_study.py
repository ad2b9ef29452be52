"""The gpu preset, the split export read without TFDS, the paper preflight and the study figures."""

import dataclasses
import sys

import numpy as np
import pytest

from jax_translate.catalog import METHODS, PAPER_METHODS
from jax_translate.configure import resolve
from jax_translate.data import dataset
from jax_translate.errors import UsageError
from jax_translate.presets import ELEVEN
from jax_translate.presets import default_preset


def test_gpu_preset_is_the_whole_study():
    for method in METHODS:
        cfg = resolve(method, "gpu")
        assert cfg.target_tumor_ratios == ELEVEN and cfg.seeds == 3 and len(cfg.members) == 33
        assert cfg.size == "64" and cfg.member_axis == "vmap"
        for cadence in (cfg.steps_per_call, cfg.log_every):
            assert cfg.steps % cadence == 0
    assert default_preset("gpu") == "gpu" and default_preset("tpu") == "gpu"
    assert default_preset("cpu") == "cpu"


def test_dataset_dir_is_the_builders_folder(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    for kwargs in ({}, dict(n_patients=8, n_train_patients=6, seed=1), dict(version=1),
                   dict(version=2, n_patients=8), dict(version=3, n_patients=8),
                   dict(version=4, n_patients=8)):
        builder = dataset.get_builder("64", tmp_path, **kwargs)
        assert dataset.dataset_dir("64", tmp_path, **kwargs) == dataset.Path(builder.data_dir)
        # the config's simulator_version is the dataset's major version; 4 is the default
        assert builder.version.major == kwargs.get("version", 4) == int(builder.data_dir[-5])
    with pytest.raises(dataset.UsageError, match="unknown simulator version 5"):
        dataset.dataset_dir("64", tmp_path, version=5)


def _equal(a: dataset.SliceSet, b: dataset.SliceSet):
    for f in dataclasses.fields(dataset.SliceSet):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None or y is None:  # a modality the split does not hold
            assert x is None and y is None, f.name
            continue
        assert x.dtype == y.dtype and np.array_equal(x, y), f.name


def test_export_is_read_without_tfds(tmp_path, tiny_splits, monkeypatch):
    folder = dataset.dataset_dir("64", tmp_path, n_patients=8)
    folder.mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    with pytest.raises(UsageError, match="tensorflow-datasets is not installed"):
        dataset.load("64", tmp_path, n_patients=8)
    dataset.export_splits(tiny_splits, folder / dataset.EXPORT_NAME)
    loaded = dataset.load("64", tmp_path, n_patients=8)
    assert list(loaded) == list(dataset.SPLITS)  # an older export: train and holdout
    for split in dataset.SPLITS:
        _equal(loaded[split], tiny_splits[split])
    # version 3's: every split, with the modalities each holds
    holdout = tiny_splits["holdout"]
    splits = {**tiny_splits, "validation": dataclasses.replace(
        holdout, t2=holdout.flair * 0.5, t1c=holdout.t1 + 0.1)}
    dataset.export_splits(splits, folder / dataset.EXPORT_NAME)
    loaded = dataset.load("64", tmp_path, n_patients=8)
    assert list(loaded) == ["train", "holdout", "validation"]
    for split in splits:
        _equal(loaded[split], splits[split])


def test_paper_preflight_refuses_before_writing(tmp_path):
    from jax_translate.configure import resolve_study
    from jax_translate.jobs.reproduce import reproduce

    lines = []
    study = resolve_study("tiny", methods=("l1",), preflight=True, data_dir=str(tmp_path / "data"))
    assert study.preflight
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=r"l1's step needs .* GiB, more than 90% of this device"):
        reproduce(study, out, log=lines.append, memory_limit=1000)
    assert not out.exists() and not (tmp_path / "data").exists()
    assert lines[0].startswith("preflight: 1 sweeps, about ")
    assert "need" in lines[1] and "of a 0.0 GiB pool" in lines[1]


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu", "paper"])
def test_preflight_stand_in_holds_every_members_domains(preset):
    """Disjoint source and target patients at ratios 0 and 1 included (the paper
    preset's own protocol is the reference's; others use ours)."""
    from jax_translate.jobs import preflight
    from jax_translate.training.members import domain_indices

    for protocol in ("disjoint", "reference"):
        cfg = resolve("cyclegan", preset, domain_protocol=protocol)
        train = preflight.stand_in_train(cfg)
        for ratio, seed, _ in cfg.members:
            source, target = domain_indices(cfg, train, ratio, seed)
            assert (len(source), len(target)) == (cfg.n_source, cfg.n_target)
            assert train.label[target].mean() == pytest.approx(ratio, abs=1 / cfg.n_target)


def test_preflight_eta_and_fit():
    from jax_translate.jobs import preflight
    from jax_translate.runtime.flops import member_step_flops

    cfg = resolve("l1", "tiny", steps=10)
    report = preflight.check([cfg], log=lambda line: None, memory_limit=2**40, flops_per_s=1e9)
    assert report["memory_bytes"]["l1"] > 0
    flops = member_step_flops(cfg, (64, 64))
    assert report["projected_training_seconds"] == pytest.approx(10 * 2 * flops / 1e9)
    paper = [resolve(m, "paper") for m in PAPER_METHODS]
    hours = preflight.projected_seconds(paper) / 3600
    assert 30 < hours < 100  # 4 x 11 x 140k steps of <= 3.7 TFLOP at 50 TFLOP/s: ~50 h


def test_preflight_takes_cyclegan_cc_segmenters_as_shapes(monkeypatch):
    """The step the preflight compiles gets the frozen segmenters' shapes; nothing is trained
    (compiling what it lowers: test_preflight_eta_and_fit)."""
    from jax_translate.jobs import preflight
    from jax_translate.training import segmenter

    def no_training(*args, **kwargs):
        raise AssertionError("the preflight trained a network")

    monkeypatch.setattr(segmenter, "train_segmenter", no_training)
    step, args = preflight.sweep_step(resolve("cyclegan-cc", "tiny"))
    assert "stablehlo.convolution" in step.lower(*args).as_text()


def _verdicts(k, n=100):
    from jax_translate.evaluation import metrics

    return metrics.encode_verdicts(np.arange(n) < k)


def _nested(counts, n=100):
    return np.arange(n)[None, :] < np.asarray(counts)[:, None]


def _study_rows():
    """Three seeds at 11 ratios; seed s adds s/100 to 0.9 x ratio (healthy) or 0.9 (tumor),
    calling the first images tumor; seed 2 of cyclegan at 0.5 fails the gate."""
    rows = []
    for method in METHODS:
        for ratio in ELEVEN:
            for seed in range(3):
                for label in ("healthy", "tumor"):
                    frac = (0.9 * ratio if label == "healthy" else 0.9) + seed / 100
                    bad = method == "cyclegan" and ratio == 0.5 and seed == 2
                    rows.append(dict(method=method, target_tumor_ratio=ratio, seed=seed,
                                     source_label=label, status="ok", n_images=100,
                                     n_pred_tumor=round(100 * frac), frac_pred_tumor=frac,
                                     verdicts=_verdicts(round(100 * frac)),
                                     ci_low=0.0, ci_high=1.0,
                                     quality="wrong_map" if bad else "ok"))
    return rows


def test_bias_curves_bands_wilson_and_paper():
    from jax_translate.evaluation import figures, metrics

    fig = figures.bias_curve_figure(_study_rows())
    by_title = {ax.get_title(): ax for ax in fig.axes}
    assert set(by_title) == set(METHODS)
    cyclegan = by_title["cyclegan"]
    x = [10.0 * i for i in range(11)]
    mean = [line for line in cyclegan.lines if line.get_linestyle() == "-"]
    assert np.allclose(mean[0].get_xdata(), x)
    assert np.allclose(mean[0].get_ydata(), 0.9 * np.asarray(ELEVEN) + 0.01)  # over seeds
    # Band: min to max over seeds.
    band = cyclegan.collections[0].get_paths()[0].vertices
    assert np.isclose(band[:, 1].min(), 0.0) and np.isclose(band[:, 1].max(), 0.92)
    # Error bars: the interval over seeds (ratio 0: 0, 1 and 2 of 100), solid: 3 seeds
    bars = [c for c in cyclegan.collections if hasattr(c, "get_segments")][0]
    interval = metrics.seed_interval(_nested([0, 1, 2]))
    assert interval.reliable
    assert np.allclose(bars.get_segments()[0][:, 1], [interval.low, interval.high])
    assert bars.get_linestyle()[0][1] is None
    # The paper's numbers beside ours for cyclegan and l1 only.
    paper = {line.get_label(): line for line in cyclegan.lines
             if line.get_label().startswith(figures.PAPER_LABEL)}
    assert np.allclose(paper[f"{figures.PAPER_LABEL}: healthy"].get_ydata(),
                       figures.PAPER_CURVES["cyclegan"]["healthy"])
    assert np.allclose(paper[f"{figures.PAPER_LABEL}: tumor"].get_xdata(), x)
    assert any(line.get_label().startswith(figures.PAPER_LABEL) for line in by_title["l1"].lines)
    for method in ("gan", "condgan"):
        assert not any(line.get_label().startswith(figures.PAPER_LABEL)
                       for line in by_title[method].lines)
    hollow = [line for line in cyclegan.lines if line.get_markerfacecolor() == "none"]
    assert [list(line.get_xdata()) for line in hollow] == [[50.0], [50.0]]
    figures._pyplot().close(fig)


def test_flips_figure_all_methods_on_one_axis():
    from jax_translate.evaluation import figures

    fig = figures.flips_figure(_study_rows())
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(lines) == {f"{m}: tumors {w}" for m in METHODS for w in ("added", "removed")}
    assert np.allclose(lines["l1: tumors added"].get_ydata(), 0.9 * np.asarray(ELEVEN) + 0.01)
    assert np.allclose(lines["gan: tumors removed"].get_ydata(), 1 - 0.91)
    assert np.allclose(lines["gan: tumors removed"].get_xdata(), [10.0 * i for i in range(11)])
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "none"]
    assert [list(line.get_xdata()) for line in hollow] == [[50.0], [50.0]]
    figures._pyplot().close(fig)


def _grid_rows():
    """cyclegan at two grid points (r1_weight 0 and 10), 3 seeds each, the same seeds:
    healthy sources called tumor 10 + 5 * seed of 100 at r1_weight 0, 60 + 5 * seed at 10."""
    return [dict(method="cyclegan", target_tumor_ratio=ratio, seed=seed, source_label=label,
                 status="ok", n_images=100, n_pred_tumor=k, frac_pred_tumor=k / 100,
                 verdicts=_verdicts(k), quality="ok", r1_weight=weight)
            for weight, base in ((0.0, 10), (10.0, 60)) for ratio in (0.0, 1.0)
            for seed in range(3) for label, k in (("healthy", base + 5 * seed), ("tumor", 90))]


def test_figures_draw_each_grid_point_apart():
    from jax_translate.evaluation import figures, metrics

    fig = figures.bias_curve_figure(_grid_rows())
    by_title = {ax.get_title(): ax for ax in fig.axes}
    assert set(by_title) == {"cyclegan\nr1_weight=0", "cyclegan\nr1_weight=10"}
    for title, counts in (("cyclegan\nr1_weight=0", [10, 15, 20]),
                          ("cyclegan\nr1_weight=10", [60, 65, 70])):
        healthy, = [line for line in by_title[title].lines
                    if line.get_label() == figures.LABEL_STYLE["healthy"][0]]
        assert np.allclose(healthy.get_ydata(), np.mean(counts) / 100)
        bars = [c for c in by_title[title].collections if hasattr(c, "get_segments")][0]
        interval = metrics.seed_interval(_nested(counts))
        assert np.allclose(bars.get_segments()[0][:, 1], [interval.low, interval.high])
    figures._pyplot().close(fig)

    fig = figures.flips_figure(_grid_rows())
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(lines) == {f"cyclegan r1_weight={w}: tumors {what}" for w in (0, 10)
                          for what in ("added", "removed")}
    assert np.allclose(lines["cyclegan r1_weight=10: tumors added"].get_ydata(), 0.65)
    # removed = 1 - kept: its error bar is the kept interval mirrored
    kept = metrics.seed_interval(_nested([90, 90, 90]))
    segments = [s for c in ax.collections if hasattr(c, "get_segments") for s in c.get_segments()]
    assert any(np.allclose(s[:, 1], [1 - kept.high, 1 - kept.low]) for s in segments)
    figures._pyplot().close(fig)
