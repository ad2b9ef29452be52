"""experiments/known_answer/run.py: the verdict of a regime against its L1 reference."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "known_answer" / "run.py"
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
