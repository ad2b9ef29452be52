"""Source and target modalities: the identity task, a classifier per target modality,
the brain-mask rule, the lesion's contrast sign from the data, older configs and
datasets, and one classifier per run whichever command evaluates it."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import copy_run, tiny_config, tiny_slices
from jax_translate import cli
from jax_translate.config import SweepConfig, flatten
from jax_translate.configure import resolve, resolve_study
from jax_translate.data import dataset, domains
from jax_translate.data.dataset import SliceSet
from jax_translate.errors import UsageError
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import metrics
from jax_translate.images import to_model_range
from jax_translate.jobs import evaluate_run as evaluate_run_lib
from jax_translate.jobs import reproduce as reproduce_lib
from jax_translate.jobs.sweep import train_sweep
from jax_translate.training import segmenter
from jax_translate.training.members import build_members


def with_t2(s: SliceSet) -> SliceSet:
    """A T2 unlike Flair and T1: the tumor bright on a darker, flatter brain."""
    return dataclasses.replace(s, t2=np.clip(0.3 * s.brain_mask + 0.6 * s.tumor_mask, 0, 1)
                               .astype(np.float32))


class RecordingJudge:
    """Calls every image healthy; remembers the brain masks it was handed."""

    metrics = {"accuracy": 1.0}

    def __init__(self):
        self.masks = []

    def predict(self, images, brain_mask=None):
        self.masks.append(brain_mask)
        return np.zeros(len(images), bool)


# ----------------------------------------------------------------- config and flags

def test_source_and_target_are_config_fields_flags_and_config_file_keys(tmp_path, capsys):
    cfg = resolve("l1", "tiny")
    assert (cfg.source, cfg.target, cfg.simulator_version) == ("flair", "t1", 4)
    args = cli.build_parser().parse_args(["sweep", "--method", "l1", "--preset", "tiny",
                                          "--source", "t2", "--target", "flair",
                                          "--workdir", str(tmp_path)])
    assert (cli._sweep_config(args).source, cli._sweep_config(args).target) == ("t2", "flair")
    path = tmp_path / "experiment.json"  # how reproduce gets them
    path.write_text(json.dumps({"preset": "tiny", "methods": ["l1"], "target": "t1c"}))
    assert resolve(file=path).target == "t1c"
    with pytest.raises(UsageError, match="unknown target modality 'pd'"):
        resolve("l1", "tiny", target="pd")
    with pytest.raises(UsageError, match="source t2: dataset version 2 holds flair and t1 only"):
        resolve("l1", "tiny", source="t2", simulator_version=2)
    assert cli.main(["sweep", "--method", "l1", "--source", "pd", "--workdir",
                     str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: argument --source: invalid choice")


def test_a_config_from_before_modalities_loads_as_flair_to_t1_on_its_dataset(tmp_path):
    raw = flatten(json.loads(tiny_config("l1").to_json()))  # written flat then
    for name in ("source", "target"):
        del raw[name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**raw, "simulator_version": 2}))
    old = SweepConfig.load(path)
    assert (old.source, old.target) == ("flair", "t1")
    assert dataset.folder_for(old).name == "2.0.0"
    del raw["simulator_version"]  # written before simulator version 2: version 1's data
    path.write_text(json.dumps(raw))
    assert dataset.folder_for(SweepConfig.load(path)).name == "1.0.0"


def test_a_slice_set_without_t2_still_works_and_says_what_it_lacks():
    old = tiny_slices(n_patients=2)  # flair and t1 only, as datasets 1.0.0 and 2.0.0
    assert old.modalities == ("flair", "t1") and old.t2 is None
    part = old.take(np.arange(3))
    assert part.t2 is None and part.image("t1") is part.t1
    with pytest.raises(UsageError, match="no t1c images, only flair, t1; dataset version 4"):
        old.image("t1c")
    new = with_t2(old)
    np.testing.assert_array_equal(new.take(np.arange(3)).image("t2"), new.t2[:3])


# ----------------------------------------------------------------- training data

def test_members_train_on_the_configs_source_and_target(tiny_splits):
    from jax_translate.training.members import domain_indices

    train = with_t2(tiny_splits["train"])
    cfg = tiny_config("l1", source="t2", target="flair")
    shared, _ = build_members(cfg, train)
    used = np.unique(np.concatenate([np.concatenate(domain_indices(
        cfg, train, m.target_tumor_ratio, m.seed)) for m in cfg.members]))
    np.testing.assert_array_equal(shared.source, to_model_range(train.t2[used]))
    np.testing.assert_array_equal(shared.target, to_model_range(train.flair[used]))


def test_the_identity_task_trains_and_is_evaluated_against_flair(tmp_path, tiny_splits):
    """flair -> flair: the L1 target is the source, and every metric compares with Flair."""
    cfg = tiny_config("l1", target="flair", steps=2, steps_per_call=1, member_axis="loop")
    train_sweep(cfg, tmp_path, tiny_splits, progress=False)
    judge = RecordingJudge()
    rows = evaluate_run_lib.evaluate_run(tmp_path, tiny_splits, judge, progress=False).rows
    test = domains.holdout_set(cfg, tiny_splits["holdout"])
    with np.load(tmp_path / "translations.npz") as npz:
        assert str(npz["target_modality"]) == "flair" == str(npz["source_modality"])
        np.testing.assert_array_equal(npz["real_target"], test.flair.astype(np.float16))
        translated = npz["translated"].astype(np.float32)
    # the classifier's 1% rule got the holdout's brain masks
    assert all(np.array_equal(mask, test.brain_mask) for mask in judge.masks)
    healthy = test.label == 0
    row = next(r for r in rows if r["source_label"] == "healthy"
               and r["target_tumor_ratio"] == cfg.members[0].target_tumor_ratio)
    def mae_against(real):
        return float(np.mean(metrics.mae(translated[0][healthy], real[healthy])))

    # (the stored translations are float16: 1e-3 apart at most; T1 is 0.04 away)
    assert row["mae"] == pytest.approx(mae_against(test.flair), abs=1e-3)
    assert abs(row["mae"] - mae_against(test.t1)) > 0.01


# ----------------------------------------------------------------- the classifier

def test_the_classifier_of_a_t2_target_is_trained_and_cached_on_t2(tmp_path, monkeypatch,
                                                                     tiny_splits):
    splits = {name: with_t2(s) for name, s in tiny_splits.items()}
    seen = []
    real = segmenter.train_segmenter

    def spy(train, cfg, progress=False, modality="t1", desc=""):
        seen.append(modality)
        assert train.image(modality) is splits["train"].t2 or modality != "t2"
        return real(train, cfg, progress, modality)

    monkeypatch.setattr(segmenter, "train_segmenter", spy)
    cfg = classifier_lib.ClassifierConfig(steps=2, batch_size=4)
    clf = classifier_lib.load_or_train(tmp_path, splits, cfg, progress=False, modality="t2")
    assert seen == ["t2"] and clf.modality == "t2" and clf.metrics["modality"] == "t2"
    assert (tmp_path / classifier_lib.cache_name(cfg, "t2") / "params.msgpack").is_file()
    assert classifier_lib.cache_name(cfg, "t2").startswith("t2_")
    assert classifier_lib.classifier_line(clf.metrics).startswith("classifier on real T2 holdout")
    again = classifier_lib.load_or_train(tmp_path, splits, cfg, progress=False, modality="t2")
    assert seen == ["t2"] and again.threshold == clf.threshold  # read from the cache
    classifier_lib.load_or_train(tmp_path, splits, cfg, progress=False, modality="t1")
    assert seen == ["t2", "t1"]  # another modality is another classifier
    with pytest.raises(UsageError, match="no t1c images"):
        classifier_lib.load_or_train(tmp_path, splits, cfg, progress=False, modality="t1c")


def test_the_one_percent_rule_counts_the_brain_mask_not_the_background(monkeypatch):
    """A fixed segmented area of 12 pixels in a 30 x 30 brain (1.3%): tumor, whatever
    the background's intensity; the maskless fallback's verdict moves with it."""
    monkeypatch.setattr(classifier_lib, "tumor_areas",
                        lambda params, images, thresholds, width=16, chunk=256:
                        np.full((len(images), 1), 12.0))
    brain = np.zeros((2, 64, 64), np.uint8)
    brain[:, 10:40, 10:40] = 1
    clf = classifier_lib.CachedClassifier(params=None, cfg=classifier_lib.ClassifierConfig(),
                                          metrics={}, threshold=0.0)
    for background in (0.0, 0.2):
        images = np.where(brain > 0, 0.6, background).astype(np.float32)
        assert clf.predict(images, brain_mask=brain).all()
    bright = np.where(brain > 0, 0.6, 0.2).astype(np.float32)
    assert not clf.predict(bright).any()  # the threshold counts 4096 "brain" pixels


def test_evaluate_and_reproduce_pick_one_classifier(tmp_path, monkeypatch, tiny_run,
                                                     tiny_splits):
    """The run's preset's classifier_steps (tiny: 20, not ClassifierConfig's 1500), its
    dataset folder and its target: the same whichever command evaluates the run."""
    class Picked(Exception):
        pass

    calls = []

    def record(cache_dir, splits, cfg=None, progress=True, modality="t1"):
        calls.append((cache_dir, cfg, modality))
        raise Picked

    monkeypatch.setattr(classifier_lib, "load_or_train", record)
    run = copy_run(tiny_run[1], tmp_path / "run")
    raw = flatten(json.loads((run / "config.json").read_text()))
    raw["data_dir"] = str(tmp_path / "data")  # a runtime field: the tests' own data folder
    (run / "config.json").write_text(json.dumps(raw))
    with pytest.raises(Picked):
        evaluate_run_lib.evaluate_run(run, tiny_splits, progress=False)

    class Ceiling:  # the ceiling is not what this test is about
        def line(self):
            return ""

    monkeypatch.setattr(dataset, "load_for", lambda cfg: tiny_splits)
    monkeypatch.setattr(reproduce_lib.ceiling_lib, "recorded", lambda *a, **k: (Ceiling(), False))
    with pytest.raises(Picked):
        reproduce_lib.reproduce(resolve_study(file=run / "config.json"), tmp_path / "study",
                                log=lambda line: None)
    assert calls[0] == calls[1]
    cache_dir, cfg, modality = calls[0]
    assert cfg.steps == 20 and modality == "t1"
    assert cache_dir == classifier_lib.cache_dir_for(SweepConfig.load(run / "config.json"))
    # a target of T2 is judged by T2's classifier
    (run / "config.json").write_text(json.dumps({**raw, "target": "t2"}))
    with pytest.raises(Picked):
        evaluate_run_lib.evaluate_run(run, tiny_splits, progress=False)
    assert calls[-1][2] == "t2"
    # a config that names other classifier steps records them, and is judged by them
    (run / "config.json").write_text(json.dumps(raw))
    other = resolve_study(file=run / "config.json", sets=["eval.classifier_steps=5"])
    with pytest.raises(Picked):
        reproduce_lib.reproduce(other, tmp_path / "other", log=lambda line: None)
    assert calls[-1][1].steps == 5


# ----------------------------------------------------------------- lesion metrics

@pytest.mark.parametrize("lesion_value", [0.9, 0.1], ids=["bright_like_flair", "dark_like_t1"])
def test_the_lesion_score_takes_the_contrast_sign_from_the_real_target(lesion_value):
    """Kept: ~1, erased: ~0, inverted: 0, whether the target's lesions are bright
    (Flair, T2) or dark (T1)."""
    size = 32
    yy, xx = np.mgrid[:size, :size]
    brain = ((yy - 16) ** 2 + (xx - 16) ** 2 < 14 ** 2).astype(np.uint8)[None]
    tumor = ((yy - 16) ** 2 + (xx - 16) ** 2 < 4 ** 2).astype(np.uint8)[None]
    real = np.where(tumor > 0, lesion_value, 0.5 * brain).astype(np.float32)
    erased = (0.5 * brain).astype(np.float32)
    inverted = np.where(tumor > 0, 1.0 - lesion_value, erased).astype(np.float32)
    score = lambda x: float(metrics.lesion_score(x, real, [1], tumor, brain)[0])  # noqa: E731
    assert score(real) == pytest.approx(1.0)
    assert score(erased) == pytest.approx(0.0, abs=1e-6)
    assert score(inverted) == 0.0
    half = np.where(tumor > 0, (lesion_value + 0.5) / 2, erased).astype(np.float32)
    assert score(half) == pytest.approx(0.5, abs=1e-6)
