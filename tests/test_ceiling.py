"""The information ceiling of a dataset: what a paired local map of Flair can predict of T1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jax_translate.data.dataset import SliceSet
from jax_translate.evaluation import ceiling


def _slices(rng, t1_of, n=40, size=24, patch_dependent=False) -> SliceSet:
    """Piecewise-constant 'tissue' images: Flair in [0.1, 0.9], T1 = t1_of(Flair, rng)."""
    blocks = rng.uniform(0.1, 0.9, (n, size // 4, size // 4))
    flair = np.kron(blocks, np.ones((4, 4))).astype(np.float32)
    flair += 0.005 * rng.standard_normal(flair.shape).astype(np.float32)
    brain = np.zeros(flair.shape, np.uint8)
    brain[:, 2:-2, 2:-2] = 1
    flair *= brain
    t1 = (t1_of(flair, rng) * brain).astype(np.float32)
    zeros = np.zeros(n, np.int32)
    return SliceSet(flair=flair, t1=t1, tumor_mask=np.zeros_like(brain), brain_mask=brain,
                    label=zeros, patient_id=zeros, slice_index=np.arange(n, dtype=np.int32))


def test_ceiling_finds_a_non_monotone_map_that_flair_and_a_quadratic_miss():
    # T1 goes up and down with Flair, like tissue mixtures whose orders differ.
    bumpy = lambda f, rng: 0.5 + 0.4 * np.sin(12 * f)  # noqa: E731
    rng = np.random.default_rng(0)
    found = ceiling.information_ceiling(_slices(rng, bumpy), _slices(rng, bumpy), patch=1)
    assert found.local_map_r > 0.95
    assert found.quadratic_r < found.local_map_r - 0.1
    assert found.source_r < 0.5
    assert found.patch == 1 and found.holdout_slices == 40
    assert found.line().startswith(f"information ceiling: r {found.local_map_r:.3f} (best paired "
                                   "map of a 1x1 Flair patch")


def test_ceiling_of_unrelated_t1_is_near_zero():
    noise = lambda f, rng: rng.uniform(0.1, 0.9, f.shape)  # noqa: E731
    rng = np.random.default_rng(1)
    found = ceiling.information_ceiling(_slices(rng, noise), _slices(rng, noise), patch=3)
    assert abs(found.local_map_r) < 0.15 and abs(found.source_r) < 0.15


def test_ceiling_is_recorded_reused_and_remeasured_when_damaged(tmp_path):
    rng = np.random.default_rng(2)
    square = lambda f, rng: f * f  # noqa: E731
    splits = {"train": _slices(rng, square, n=12), "holdout": _slices(rng, square, n=12)}
    first, measured = ceiling.recorded(tmp_path, splits, patch=1)
    path = tmp_path / ceiling.CEILING_FILE
    assert measured and json.loads(path.read_text())["local_map_r"] == pytest.approx(first.local_map_r)
    # Reused as recorded: a changed record shows that it was read, not measured.
    path.write_text(json.dumps({**json.loads(path.read_text()), "local_map_r": 0.5}))
    again, measured = ceiling.recorded(tmp_path, splits, patch=1)
    assert not measured and again.local_map_r == 0.5
    for damage in ("{not json", json.dumps({"patch": 1})):
        path.write_text(damage)
        mended, measured = ceiling.recorded(tmp_path, splits, patch=1)
        assert measured and mended == first
    # Another patch is another measurement.
    other, measured = ceiling.recorded(tmp_path, splits, patch=3)
    assert measured and other.patch == 3


def test_ceiling_needs_healthy_holdout_slices():
    rng = np.random.default_rng(3)
    square = lambda f, rng: f * f  # noqa: E731
    holdout = _slices(rng, square, n=4)
    holdout = SliceSet(**{**holdout.__dict__, "label": np.ones(4, np.int32)})
    with pytest.raises(ValueError, match="no healthy slice"):
        ceiling.information_ceiling(_slices(rng, square), holdout)


def test_each_pair_has_its_ceiling_and_the_identity_floor_is_one(tmp_path):
    """The ceiling is of (source, target): T2 a function of Flair, T1 noise; the
    identity task's floor (the source used as the target) is 1."""
    rng = np.random.default_rng(4)
    noise = lambda f, rng: rng.uniform(0.1, 0.9, f.shape)  # noqa: E731

    def with_t2(s):
        return SliceSet(**{**s.__dict__, "t2": (0.5 + 0.4 * np.sin(12 * s.flair)) * s.brain_mask})

    splits = {"train": with_t2(_slices(rng, noise)), "holdout": with_t2(_slices(rng, noise))}
    to_t2, measured = ceiling.recorded(tmp_path, splits, patch=1, source="flair", target="t2")
    assert measured and to_t2.local_map_r > 0.95 and (to_t2.source, to_t2.target) == ("flair", "t2")
    assert "1x1 Flair patch" in to_t2.line() and "(Flair as T2)" in to_t2.line()
    assert (tmp_path / "ceiling_flair_t2.json").is_file()
    to_t1, _ = ceiling.recorded(tmp_path, splits, patch=1)
    assert abs(to_t1.local_map_r) < 0.15 and (tmp_path / ceiling.CEILING_FILE).is_file()
    identity = ceiling.information_ceiling(splits["train"], splits["holdout"], patch=1,
                                           source="flair", target="flair")
    assert identity.source_r == pytest.approx(1.0, abs=1e-6)
    assert identity.local_map_r == pytest.approx(1.0, abs=1e-3)


def test_a_record_from_before_pairs_is_read_as_flair_to_t1(tmp_path):
    rng = np.random.default_rng(5)
    square = lambda f, rng: f * f  # noqa: E731
    splits = {"train": _slices(rng, square, n=12), "holdout": _slices(rng, square, n=12)}
    old = {"patch": 1, "local_map_r": 0.9, "quadratic_r": 0.8, "flair_r": 0.4,
           "holdout_slices": 12, "train_pixels": 100}
    (tmp_path / ceiling.CEILING_FILE).write_text(json.dumps(old))
    found, measured = ceiling.recorded(tmp_path, splits, patch=1)
    assert not measured and found.source_r == 0.4 and (found.source, found.target) == ("flair", "t1")
