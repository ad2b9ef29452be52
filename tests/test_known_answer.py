"""experiments/known_answer/run.py: the verdict of a regime against its L1 reference."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from jax_translate.evaluation import quality

_ROOT = Path(__file__).resolve().parents[1]
_PATH = _ROOT / "experiments" / "known_answer" / "run.py"
_spec = importlib.util.spec_from_file_location("known_answer_run", _PATH)
known_answer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(known_answer)


def _row(regime, method, seed, step, r, task="flair->flair"):
    member = f"ratio=0.5/seed={seed}" + ("" if method == "l1" else "/r1_weight=100")
    return {"task": task, "regime": regime, "method": method, "member": member,
            "seed": seed, "step": step, "fidelity_r": r}


def test_a_regime_passes_only_within_the_tolerance_on_every_seed():
    rows = [_row("base", "l1", 0, 1000, 0.90), _row("base", "l1", 1, 1000, 0.90),
            _row("base", "cyclegan", 0, 1000, 0.88), _row("base", "cyclegan", 1, 1000, 0.86)]
    [line] = known_answer.verdicts(rows, tolerance=0.03)
    assert line.startswith("fail") and "(-0.040)" in line
    [line] = known_answer.verdicts(rows, tolerance=0.05)
    assert line.startswith("PASS")


def test_a_sweep_stopped_early_is_judged_against_l1_at_its_own_last_step():
    """A cap stopped cyclegan at step 1000; L1 went on to 2000 and got better."""
    rows = [_row("base", "l1", 0, 1000, 0.80), _row("base", "l1", 0, 2000, 0.95),
            _row("base", "cyclegan", 0, 1000, 0.79)]
    [line] = known_answer.verdicts(rows, tolerance=0.03)
    assert line.startswith("PASS") and "step 1000" in line and "l1 0.800" in line


def test_a_discriminator_only_regime_takes_its_tasks_one_l1():
    rows = [_row("base", "l1", 0, 1000, 0.90), _row("d1", "cyclegan", 0, 1000, 0.89),
            _row("x", "cyclegan", 0, 1000, 0.5, task="flair->t1")]
    lines = known_answer.verdicts(rows, tolerance=0.03)
    assert lines[0].startswith("PASS flair->flair d1")
    # another task's L1 is never borrowed: no reference, no pass
    assert lines[1].startswith("fail flair->t1 x") and "l1 nan" in lines[1]


def test_with_two_l1_regimes_a_regime_without_its_own_has_no_reference():
    rows = [_row("a", "l1", 0, 1000, 0.90), _row("b", "l1", 0, 1000, 0.70),
            _row("c", "cyclegan", 0, 1000, 0.89)]
    [line] = known_answer.verdicts(rows, tolerance=0.03)
    assert line.startswith("fail") and "l1 nan" in line


# ---------------------------------------------------------------- scoring and its CSV

def _identity_task_members():
    import types

    from conftest import tiny_slices
    from jax_translate.config import Member

    test = tiny_slices(n_patients=2, seed=1)
    members = [Member(0.5, 0), Member(0.5, 1, (("r1_weight", 100.0),)), Member(0.5, 2)]
    cfg = types.SimpleNamespace(method="cyclegan", members=members, target="flair")
    rng = np.random.default_rng(0)
    noisy = np.clip(test.flair + rng.normal(0, 0.1, test.flair.shape), 0, 1)
    inverted = test.brain_mask * (1.0 - test.flair)  # the wrong map: contrast reversed
    translated = np.stack([test.flair, noisy, inverted]).astype(np.float32)
    return cfg, test, translated


def test_members_are_scored_through_scoring_with_the_healthy_rows_fidelity_and_gate():
    cfg, test, translated = _identity_task_members()
    rows = known_answer.scored_members(cfg, translated, test)
    assert [r["member"] for r in rows] == ["ratio=0.5/seed=0", "ratio=0.5/seed=1/r1_weight=100",
                                          "ratio=0.5/seed=2"]
    assert [r["seed"] for r in rows] == [0, 1, 2]
    copy, noisy, inverted = rows
    # the copy is the known answer: pixel r 1, lesions kept, the gate passes it
    assert copy["fidelity_r"] == pytest.approx(1.0)
    assert copy["structure_r"] == pytest.approx(1.0)
    assert copy["lesion_score_tumor"] == pytest.approx(1.0)
    assert copy["quality"] == quality.OK
    # pixel r is the healthy sources' over the whole brain (the verdict's measure)
    healthy = test.label == 0
    expected = np.nanmean(quality.pearson_in_brain(translated[1][healthy], test.flair[healthy],
                                                   test.brain_mask[healthy]))
    assert noisy["fidelity_r"] == pytest.approx(expected)
    assert noisy["fidelity_r"] < noisy["structure_r"] < 1.0  # the blur forgives the noise
    # a reversed contrast fails the gate on structure r
    assert inverted["fidelity_r"] < 0 and inverted["structure_r"] < quality.STRUCTURE_GATE
    assert inverted["quality"] == quality.WRONG_MAP
    # tiny_slices has no tissue maps: no contrast check
    assert all(np.isnan(r["gm_wm"]) and np.isnan(r["contrast_error"]) for r in rows)
    assert set(known_answer.FIELDS) >= set(copy) - {"task", "split", "regime", "method"}


OLD_CSV = (
    "task,regime,method,member,target_tumor_ratio,seed,step,fidelity_r,fidelity_ssim,"
    "lesion_score_tumor,wall_s\n"
    "flair->flair,base,cyclegan,ratio=0.5/seed=0/r1_weight=100,0.5,0,1000,0.88,0.6,0.7,824.1\n"
    "flair->flair,base,l1,ratio=0.5/seed=0,0.5,0,1000,0.9,nan,0.8,300.0\n")


def test_rows_written_before_the_gate_columns_read_nan_there(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(OLD_CSV)
    rows = known_answer.read_rows(path)
    assert [r["fidelity_r"] for r in rows] == [0.88, 0.9]
    assert rows[0]["seed"] == 0 and rows[0]["step"] == 1000
    assert np.isnan(rows[1]["fidelity_ssim"])
    for row in rows:
        assert all(np.isnan(row[k]) for k in ("structure_r", "gm_wm", "contrast_error"))
        assert row["quality"] == ""
    [line] = known_answer.verdicts(rows, tolerance=0.03)
    assert line.startswith("PASS") and "(-0.020)" in line
    assert "0.88" in known_answer.markdown_table(rows)


def test_appending_to_an_old_file_rewrites_it_under_the_new_header(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(OLD_CSV)
    new = {"task": "flair->flair", "split": "validation", "regime": "base", "method": "l1",
           "member": "ratio=0.5/seed=0", "target_tumor_ratio": 0.5, "seed": 0, "step": 2000,
           "fidelity_r": 0.95, "fidelity_ssim": 0.7, "structure_r": 0.97, "gm_wm": 0.8,
           "contrast_error": 0.1, "quality": "ok", "lesion_score_tumor": 0.85, "wall_s": 600.0}
    known_answer.append_rows(path, [new])
    assert path.read_text().splitlines()[0] == ",".join(known_answer.FIELDS)
    rows = known_answer.read_rows(path)
    assert [(r["method"], r["step"], r["fidelity_r"]) for r in rows] == [
        ("cyclegan", 1000, 0.88), ("l1", 1000, 0.9), ("l1", 2000, 0.95)]
    assert [r["split"] for r in rows] == ["holdout", "holdout", "validation"]
    assert np.isnan(rows[0]["structure_r"]) and rows[2]["structure_r"] == 0.97
    assert rows[2]["quality"] == "ok" and rows[0]["quality"] == ""
    known_answer.append_rows(path, [{**new, "step": 3000}])  # the header stays as it is
    assert [r["step"] for r in known_answer.read_rows(path)] == [1000, 1000, 2000, 3000]


@pytest.mark.parametrize("path", sorted(
    str(p.relative_to(_ROOT)) for p in [*(_ROOT / "experiments" / "known_answer" / "results")
                                        .glob("*.csv"),
                                        *(_ROOT / "experiments" / "gpu" / "results")
                                        .glob("known_answer*/results.csv")]))
def test_the_committed_results_still_read(path):
    rows = known_answer.read_rows(_ROOT / path)
    assert rows and all(np.isfinite(r["fidelity_r"]) for r in rows)
    assert all(isinstance(r["structure_r"], float) and isinstance(r["quality"], str)
               for r in rows)
    assert known_answer.markdown_table(rows).count("\n") >= 2
