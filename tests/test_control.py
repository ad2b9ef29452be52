"""experiments/control: the CUT repository's CycleGAN on our data, scored by our evaluator.

CI has neither torch nor the CUT code, so a fake of each stands in: a CUT-like
checkout (``options.train_options.TrainOptions``, ``models.create_model``)
whose ``netG_A`` is the identity and which records everything the driver hands
it, and a ``torch`` that is numpy. The driver must train on our sweep member's
own domains, translate our holdout set in its order, and score what comes
back exactly as our evaluator does.
"""

import importlib.util
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jax_translate.config import make_config
from jax_translate.data import domains
from jax_translate.data.dataset import SliceSet, export_splits, read_export
from jax_translate.evaluation import metrics, quality
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
        return np.array(x)

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


def _rows_of(images):
    return {np.asarray(image, np.float32).tobytes(): k for k, image in enumerate(images)}


def test_the_driver_trains_our_member_and_scores_its_translations(tmp_path, export, monkeypatch):
    repo = _fakes(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(repo))  # the fake torch, for cut_side.py's process
    out = tmp_path / "out"
    ratio, seed, steps = 1.0, 1, 6
    rows = control.main(["--cut-repo", str(repo), "--export", str(export), "--out", str(out),
                         "--preset", "tiny", "--ratio", str(ratio), "--seed", str(seed),
                         "--steps", str(steps), "--eval-every", "4", "--classifier", "off",
                         "--torch-python", sys.executable, "--", "--lambda_identity", "0"])

    cfg = make_config("cyclegan", "tiny")
    splits = read_export(export)
    train = splits["train"]
    source_index, target_index = members.domain_indices(cfg, train, ratio, seed)  # the engine's
    record = np.load(out / "cut" / "record.npz")
    # Every training image is one of the member's own, in CUT's [-1, 1].
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

    # The identity generator's translations are our holdout set's sources, in order.
    test = domains.holdout_set(cfg, splits["holdout"])
    assert [row["step"] for row in rows] == [4, 6]
    for step in (4, 6):
        translated = np.load(out / f"trans_{step}.npz")["translated"]
        np.testing.assert_allclose(translated, test.flair, atol=1e-6)

    healthy, tumor = test.label == 0, test.label == 1
    r = np.nanmean(quality.pearson_in_brain(test.flair[healthy], test.t1[healthy],
                                            test.brain_mask[healthy]))
    kept = np.nanmean(metrics.lesion_preservation(test.flair[tumor], test.t1[tumor],
                                                  test.tumor_mask[tumor], test.brain_mask[tumor]))
    assert 0.3 < r < 0.99
    for row in rows:
        assert row["fidelity_r"] == pytest.approx(r, abs=1e-6)
        assert row["lesion_preservation"] == pytest.approx(kept, abs=1e-6)
        assert row["quality"] == quality.quality_verdict("cyclegan", r)
        assert row["frac_pred_tumor_healthy"] is None
    assert (out / "control.csv").read_text().count("\n") == 3

    # Scoring again needs no CUT checkout and gives the same rows.
    again = control.main(["--out", str(out), "--export", str(export), "--preset", "tiny",
                          "--ratio", str(ratio), "--seed", str(seed), "--classifier", "off",
                          "--score-only"])
    assert again == rows


def test_scores_the_identity_translation_and_a_classifier(export):
    cfg = make_config("cyclegan", "tiny")
    test = domains.holdout_set(cfg, read_export(export)["holdout"])

    class Perfect:
        def predict(self, images, brain_mask=None):
            assert brain_mask is test.brain_mask
            return test.label == 1

    row = control.score(test.flair, test, "flair", Perfect())  # flair -> flair
    assert row["fidelity_r"] == pytest.approx(1.0)
    assert row["lesion_preservation"] == pytest.approx(1.0)
    assert row["hallucination"] == 0.0
    assert (row["frac_pred_tumor_healthy"], row["frac_pred_tumor_tumor"]) == (0.0, 1.0)
    assert row["quality"] == "ok"
    with pytest.raises(Exception, match="holdout set has"):
        control.score(test.flair[:3], test, "t1")


def test_a_modality_the_export_lacks_stops_before_training(tmp_path, export):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"no 't2' images, only flair, t1.*--source/--target"):
        control.main(["--cut-repo", str(tmp_path), "--export", str(export), "--out", str(out),
                      "--preset", "tiny", "--source", "t2", "--classifier", "off"])
    assert not (out / "inputs.npz").exists()
