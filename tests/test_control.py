"""experiments/control: the CUT repository's CycleGAN on our data, between export-domains
and judge.

CI has neither torch nor the CUT code, so a fake of each stands in: a CUT-like
checkout (``options.train_options.TrainOptions``, ``models.create_model``)
whose ``netG_A`` is the identity (or, with ``FAKE_CUT_NEGATE`` set, maps x to
-x in CUT's [-1, 1]: the contrast reversed) and which records everything the
driver hands it, and a ``torch`` that is numpy. The driver must export our
sweep member's own domains (and only that member), train on them, write its
translations of the holdout set keyed by id, and report judge's rows. The
evaluation classifier is a stand-in that calls a slice tumor when its brain
holds a pixel brighter than 0.8 (in the test data only a Flair lesion does).
"""

import importlib.util
import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jax_translate.configure import resolve
from jax_translate.data import domains
from jax_translate.data.dataset import SliceSet, export_splits, read_export
from jax_translate.evaluation import classifier as classifier_lib
from jax_translate.evaluation import metrics, quality
from jax_translate.jobs import export_domains as export_lib
from jax_translate.training import members

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"control_{name}",
                                                  ROOT / "experiments" / "control" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


control = _load("run")

FAKE_TORCH = '''
import contextlib
__version__ = "fake"
GRAD = [True]
def from_numpy(a): return a
def set_num_threads(n): pass
def manual_seed(s): pass
@contextlib.contextmanager
def no_grad():
    GRAD[0] = False
    try:
        yield
    finally:
        GRAD[0] = True
'''

FAKE_OPTIONS = '''
import types
class TrainOptions:
    def __init__(self, cmd_line=None):
        self.flags = cmd_line.split()
    def parse(self):
        f = self.flags
        return types.SimpleNamespace(flags=f, checkpoints_dir=f[f.index("--checkpoints_dir") + 1])
'''

FAKE_MODELS = '''
import atexit, json, os
import numpy as np
import torch

class Identity:
    def __call__(self, x):
        assert not torch.GRAD[0], "translate under no_grad"
        return -np.array(x) if os.environ.get("FAKE_CUT_NEGATE") else np.array(x)

class FakeCycleGAN:
    def __init__(self, opt):
        self.opt, self.netG_A, self.seen_A, self.seen_B = opt, Identity(), [], []
        self.calls = []
    def data_dependent_initialize(self):  # as CUT's CycleGANModel: no batch argument
        self.calls.append("init")
    def setup(self, opt):
        self.calls.append("setup")
    def set_input(self, data):
        self.A, self.B = data["A"], data["B"]
    def optimize_parameters(self):
        assert self.calls[:2] == ["init", "setup"]
        self.seen_A.append(self.A); self.seen_B.append(self.B)
    def update_learning_rate(self):
        self.calls.append("lr")
    def get_current_losses(self):
        return {"G_A": 0.5, "D_A": 0.25}

def create_model(opt):
    model = FakeCycleGAN(opt)
    def dump():
        os.makedirs(opt.checkpoints_dir, exist_ok=True)
        np.savez(os.path.join(opt.checkpoints_dir, "record.npz"), A=np.concatenate(model.seen_A),
                 B=np.concatenate(model.seen_B), flags=np.array(opt.flags),
                 calls=np.array(model.calls))
    atexit.register(dump)
    return model
'''


def _fakes(tmp_path: Path) -> Path:
    """A fake CUT checkout; its folder also holds the fake torch package."""
    repo = tmp_path / "fake_cut"
    for rel, text in {"torch/__init__.py": FAKE_TORCH, "options/__init__.py": "",
                      "options/train_options.py": FAKE_OPTIONS,
                      "models/__init__.py": FAKE_MODELS}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    return repo


def _split(rng, patients, per_patient=12, size=16):
    n = len(patients) * per_patient
    yy, xx = np.mgrid[:size, :size]
    brain = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2 - 2) ** 2).astype(np.uint8)
    label = np.tile(np.arange(per_patient) % 2, len(patients)).astype(np.int32)
    tumor = np.zeros((n, size, size), np.uint8)
    tumor[label == 1, 6:9, 6:9] = 1
    flair = brain * (0.5 + 0.1 * rng.random((n, size, size))) + 0.4 * tumor
    t1 = brain * (0.3 + 0.5 * flair ** 2 + 0.1 * rng.random((n, size, size))) - 0.25 * tumor
    return SliceSet(flair=flair.astype(np.float32), t1=np.clip(t1, 0, 1).astype(np.float32),
                    tumor_mask=tumor, brain_mask=np.repeat(brain[None], n, 0), label=label,
                    patient_id=np.repeat(np.asarray(patients, np.int32), per_patient),
                    slice_index=np.tile(np.arange(per_patient, dtype=np.int32), len(patients)))


@pytest.fixture
def export(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "splits.npz"
    export_splits({"train": _split(rng, range(8)), "holdout": _split(rng, range(8, 12))}, path)
    return path



class BrightSpot:
    """The stand-in evaluation classifier: tumor when a brain pixel is brighter than 0.8."""

    metrics = {"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0, "modality": "t1"}

    def __init__(self):
        self.masks = []

    def predict(self, images, brain_mask=None):
        self.masks.append(brain_mask)
        bright = (np.asarray(images) > 0.8) & (np.asarray(brain_mask) > 0)
        return bright.reshape(len(images), -1).any(1)


@pytest.fixture
def classifier(monkeypatch):
    """BrightSpot in place of the cached or trained evaluation classifier; ``calls``
    records where it was asked for."""
    clf, calls = BrightSpot(), []

    def load_or_train(cache_dir, splits, cfg, progress=True, modality="t1"):
        calls.append((Path(cache_dir), modality))
        return clf

    monkeypatch.setattr(classifier_lib, "load_or_train", load_or_train)
    clf.calls = calls
    return clf


def _cache(export, modality):
    """A cached classifier's marker file beside ``export``, as ``--classifier cached`` looks
    for it."""
    ccfg = classifier_lib.config_for(resolve("cyclegan", "tiny"))
    marker = export.parent / "classifier" / classifier_lib.cache_name(ccfg, modality)
    marker.mkdir(parents=True)
    (marker / "classifier.json").write_text("{}")


def _rows_of(images):
    return {np.asarray(image, np.float32).tobytes(): k for k, image in enumerate(images)}


def _same(a, b):
    return all(x.keys() == y.keys() and all(
        x[k] == y[k] or (isinstance(x[k], float) and math.isnan(x[k]) and math.isnan(y[k]))
        for k in x) for x, y in zip(a, b)) and len(a) == len(b)


def _run(tmp_path, export, source="flair", target="t1", ratio=1.0, seed=0, steps=2,
         eval_every=2, classifier="cached", extra=()):
    repo = _fakes(tmp_path)
    out = tmp_path / "out"
    rows = control.main(["--cut-repo", str(repo), "--export", str(export), "--out", str(out),
                         "--preset", "tiny", "--ratio", str(ratio), "--seed", str(seed),
                         "--steps", str(steps), "--eval-every", str(eval_every),
                         "--source", source, "--target", target, "--classifier", classifier,
                         "--torch-python", sys.executable, *extra])
    return out, repo, rows


def test_the_driver_exports_our_member_trains_on_it_and_reports_judges_rows(
        tmp_path, export, monkeypatch, capsys, classifier):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake_cut"))  # cut_side's fake torch
    ratio, seed, steps = 1.0, 1, 6
    out, repo, rows = _run(tmp_path, export, ratio=ratio, seed=seed, steps=steps, eval_every=4,
                           classifier="train", extra=["--", "--lambda_identity", "0"])
    assert classifier.calls == [(export.parent / "classifier", "t1")]  # beside the splits.npz

    cfg = resolve("cyclegan", "tiny")
    splits = read_export(export)
    train = splits["train"]
    test = domains.holdout_set(cfg, splits["holdout"])
    source_index, target_index = members.domain_indices(cfg, train, ratio, seed)  # the engine's

    # The export holds exactly the member asked for (seed 0 exported, then removed).
    manifest = export_lib.read_manifest(out / "export")
    (member,) = manifest["members"]
    assert (member["folder"], member["seed"]) == ("ratio=1/seed=1", 1)
    assert member["trainA"] == export_lib.slice_ids(train, source_index)
    assert member["trainB"] == export_lib.slice_ids(train, target_index)
    assert manifest["testA"] == export_lib.slice_ids(test, np.arange(len(test)))
    assert not (out / "export" / "ratio=1" / "seed=0").exists()
    assert all(name.startswith("ratio=1/seed=1/") for name in manifest["files"])
    export_lib.verify(out / "export")

    # Every training image is one of the member's own, in CUT's [-1, 1].
    record = np.load(out / "cut" / "record.npz")
    source_rows = _rows_of(train.flair[source_index][:, None] * 2 - 1)
    target_rows = _rows_of(train.t1[target_index][:, None] * 2 - 1)
    assert record["A"].shape == record["B"].shape == (steps, 1, 16, 16)
    assert all(a.astype(np.float32).tobytes() in source_rows for a in record["A"])
    assert all(b.astype(np.float32).tobytes() in target_rows for b in record["B"])
    assert train.label[target_index].all()  # ratio 1: a tumor-only target

    flags = " ".join(record["flags"])
    for expected in ("--model cycle_gan", "--ngf 16", "--ndf 16", "--netG resnet_6blocks",
                     "--no_dropout", "--batch_size 1", "--input_nc 1", "--output_nc 1",
                     "--gpu_ids -1", "--lambda_identity 0"):
        assert expected in flags
    calls = list(record["calls"])
    assert calls[:2] == ["init", "setup"] and calls.count("lr") == steps  # 1 step per epoch

    # The identity generator's translations are our holdout set's sources, keyed by id.
    assert [row["step"] for row in rows] == [4, 6]
    for step in (4, 6):
        with np.load(out / "translations" / f"step={step}" / "ratio=1" / "seed=1"
                     / "translations.npz") as saved:
            assert list(saved.files) == manifest["testA"]
            translated = np.stack([saved[i] for i in manifest["testA"]])
        assert translated.dtype == np.float32
        np.testing.assert_allclose(translated, test.flair, atol=1e-6)

    # control.csv's rows are judge's rows, and those are our evaluator's numbers.
    healthy, tumor = test.label == 0, test.label == 1
    r = np.nanmean(quality.pearson_in_brain(test.flair[healthy], test.t1[healthy],
                                            test.brain_mask[healthy]))
    structure = np.nanmean(quality.structure_r(
        test.flair[healthy], test.t1[healthy], test.brain_mask[healthy],
        quality.structure_sigma(16)))
    kept = np.nanmean(metrics.lesion_preservation(test.flair[tumor], test.t1[tumor],
                                                  test.tumor_mask[tumor], test.brain_mask[tumor]))
    assert 0.3 < r < 0.99
    assert structure != pytest.approx(r, abs=1e-3)  # two measures, not one in two columns
    verdict, _ = quality.gate("cyclegan", structure, np.nan, contrast_checked=False)
    for row in rows:
        judged = json.loads((out / "judged" / f"step={row['step']}" / "results.json")
                            .read_text())["rows"]
        by_label = {j["source_label"]: j for j in judged}
        assert {j["method"] for j in judged} == {control.NAME}
        assert row["fidelity_r"] == by_label["healthy"]["fidelity_r"]
        assert row["lesion_preservation"] == by_label["tumor"]["lesion_score"]
        assert row["hallucination"] == by_label["healthy"]["lesion_score"]
        assert row["fidelity_r"] == pytest.approx(r, abs=1e-6)
        assert row["structure_r"] == pytest.approx(structure, abs=1e-6)
        assert np.isnan(row["contrast_error"])  # the export has no tissue maps
        assert row["lesion_preservation"] == pytest.approx(kept, abs=1e-6)
        assert row["quality"] == verdict
        # flair's lesions are the only pixels above 0.8: the stand-in finds exactly them
        assert (row["frac_pred_tumor_healthy"], row["frac_pred_tumor_tumor"]) == (0.0, 1.0)
    assert all(mask is not None and mask.shape == test.brain_mask.shape
               and (mask == test.brain_mask).all() for mask in classifier.masks)
    written = (out / "control.csv").read_text().splitlines()
    assert written[0] == ",".join(control.FIELDS) and len(written) == 3
    printed = capsys.readouterr().out
    assert f"flair used as t1: r {r:.3f}, structure r {structure:.3f}" in printed  # the floor
    assert (f"gate: structure r >= {quality.STRUCTURE_GATE}, "
            f"contrast error <= {quality.CONTRAST_TOLERANCE}") in printed
    assert (out / "judged" / control.FLOOR / "results.csv").is_file()

    # Judging again needs no CUT checkout and gives the same rows; training again into
    # the same OUT is refused.
    again = control.main(["--out", str(out), "--export", str(export), "--classifier", "train",
                          "--score-only"])
    assert _same(again, rows)
    with pytest.raises(SystemExit, match="holds a control run already"):
        _run(tmp_path, export, seed=seed)


def test_the_identity_task_passes_and_keeps_every_lesion(tmp_path, export, monkeypatch,
                                                        classifier):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake_cut"))
    _cache(export, "flair")
    out, _, (row,) = _run(tmp_path, export, "flair", "flair", ratio=0.5)  # flair -> flair
    assert classifier.calls == [(export.parent / "classifier", "flair")]
    assert (out / "export" / "ratio=0.5" / "seed=0" / "trainB").is_dir()
    assert row["fidelity_r"] == pytest.approx(1.0)
    assert row["structure_r"] == pytest.approx(1.0)
    assert row["lesion_preservation"] == pytest.approx(1.0)
    assert row["hallucination"] == 0.0
    assert (row["frac_pred_tumor_healthy"], row["frac_pred_tumor_tumor"]) == (0.0, 1.0)
    assert row["quality"] == quality.OK


def test_a_translation_with_its_contrast_reversed_fails_the_gate(tmp_path, export, monkeypatch,
                                                                 classifier):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake_cut"))
    monkeypatch.setenv("FAKE_CUT_NEGATE", "1")
    _cache(export, "flair")
    _, _, (row,) = _run(tmp_path, export, "flair", "flair")
    assert row["fidelity_r"] < 0 and row["structure_r"] < quality.STRUCTURE_GATE
    assert row["quality"] == quality.WRONG_MAP


def test_a_modality_the_export_lacks_stops_before_training(tmp_path, export):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"no 't2' images, only flair, t1.*--source/--target"):
        control.main(["--cut-repo", str(tmp_path), "--export", str(export), "--out", str(out),
                      "--preset", "tiny", "--source", "t2"])
    assert not (out / "export").exists()


def test_no_cached_classifier_stops_before_training(tmp_path, export):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"no t1 evaluation classifier is cached in .*"
                                         r"--classifier train trains one"):
        control.main(["--cut-repo", str(_fakes(tmp_path)), "--export", str(export), "--out",
                      str(out), "--preset", "tiny"])
    assert not (out / "export").exists() and not (out / "cut").exists()
