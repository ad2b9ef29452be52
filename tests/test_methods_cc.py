"""cyclegan-cc: the lesion-consistency term, segmenters trained on the training split
only (never the evaluator), and a tiny sweep that trains."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config, tiny_slices
from jax_translate.models.segmenter import TumorSegmenter
from jax_translate.training import segmenter
from jax_translate.training import lesion
from jax_translate.training.members import build_members
from jax_translate.training.methods import Batch, Method
from jax_translate.jobs.sweep import train_sweep


def _segmenter(seed):
    return TumorSegmenter(16).init(jax.random.PRNGKey(seed),
                                              jnp.zeros((1, 16, 16, 1)))["params"]


def test_lesion_term_is_zero_when_segmentations_agree_and_positive_otherwise():
    train = tiny_slices(n_patients=1)
    source = jnp.asarray(train.flair[:2, ..., None] * 2 - 1)
    same = {"target": _segmenter(0), "source": _segmenter(0)}
    assert float(lesion.lesion_consistency(same, source, source, "source")) == 0.0
    blob = source.at[:, 4:10, 4:10].set(1.0)
    assert float(lesion.lesion_consistency(same, source, blob, "source")) > 1e-6


def test_lesion_term_uses_each_domains_segmenter():
    """S_source on the (Flair) source, S_target on its (T1) translation (and the reverse
    for G_ba)."""
    frozen = {"target": _segmenter(1), "source": _segmenter(2)}
    train = tiny_slices(n_patients=1)
    flair = jnp.asarray(train.flair[:2, ..., None] * 2 - 1)
    t1 = jnp.asarray(train.t1[:2, ..., None] * 2 - 1)
    prob = lambda p, x: jax.nn.sigmoid(TumorSegmenter(16).apply(  # noqa: E731
        {"params": p}, (x + 1) / 2))
    expected = jnp.mean((prob(frozen["target"], t1) - prob(frozen["source"], flair)) ** 2)
    got = lesion.lesion_consistency(frozen, flair, t1, "source")
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    reverse = jnp.mean((prob(frozen["source"], flair) - prob(frozen["target"], t1)) ** 2)
    assert float(lesion.lesion_consistency(frozen, t1, flair, "target")) == pytest.approx(
        float(reverse), rel=1e-5)
    # the source side is a constant target: no gradient into the source image
    grad = jax.grad(lambda s: lesion.lesion_consistency(frozen, s, t1, "source"))(flair)
    assert float(jnp.abs(grad).max()) == 0.0


def test_segmenters_learn_from_the_training_split_only(tmp_path, monkeypatch, tiny_splits):
    seen = []
    real = segmenter.train_segmenter

    def spy(train, cfg, progress=False, modality="t1"):
        seen.append((train, cfg.seed, modality))
        return real(train, dataclasses.replace(cfg, steps=2), progress, modality)

    monkeypatch.setattr(segmenter, "train_segmenter", spy)
    cfg = tiny_config("cyclegan-cc")
    train = tiny_splits["train"]
    shared, _ = build_members(cfg, train, cache_dir=tmp_path)
    assert [(s[1], s[2]) for s in seen] == [(1, "t1"), (2, "flair")]
    assert all(s[0] is train for s in seen)  # the training split, nothing else
    assert 0 not in {s[1] for s in seen}    # not the evaluation classifier's seed
    records = lesion.trained_on(tmp_path)
    assert sorted(r["modality"] for r in records) == ["flair", "t1"]
    for r in records:
        assert r["n_slices"] == len(train)
        assert r["patient_ids"] == sorted(np.unique(train.patient_id).tolist())
    assert set(shared.frozen) == {"target", "source"}
    # a second build reads the cache instead of training
    seen.clear()
    again, _ = build_members(cfg, train, cache_dir=tmp_path)
    assert seen == []
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.frozen, shared.frozen)
    # the identity task: both domains' segmenters on Flair, told apart by their seeds
    build_members(tiny_config("cyclegan-cc", target="flair"), train, cache_dir=tmp_path)
    assert [(s[1], s[2]) for s in seen] == [(1, "flair"), (2, "flair")]
    records = lesion.trained_on(tmp_path)
    assert len(records) == 4 and sorted(r["domain"] for r in records[-4:]) == [
        "source", "source", "target", "target"]


def test_cyclegan_cc_adds_the_weighted_lesion_term_to_cyclegan():
    train = tiny_slices(n_patients=2)
    cc = Method(tiny_config("cyclegan-cc", lambda_lesion=3.0))
    plain = Method(tiny_config("cyclegan"))
    state = cc.init(jax.random.PRNGKey(0), (16, 16))
    frozen = {"target": _segmenter(1), "source": _segmenter(2)}
    batch = Batch(jnp.asarray(train.flair[:2, ..., None] * 2 - 1),
                  jnp.asarray(train.t1[2:4, ..., None] * 2 - 1), frozen=frozen)
    loss, (metrics, _) = cc.generator_loss(state.generator, state.discriminator, batch)
    base, _ = plain.generator_loss(state.generator, state.discriminator, batch)
    fake_b = cc.translate(state.generator, batch.source, "ab")
    fake_a = cc.translate(state.generator, batch.target, "ba")
    term = (lesion.lesion_consistency(frozen, batch.source, fake_b, "source")
            + lesion.lesion_consistency(frozen, batch.target, fake_a, "target"))
    assert float(metrics["lesion_loss"]) == pytest.approx(float(term), rel=1e-5)
    assert float(loss) == pytest.approx(float(base + 3.0 * term), rel=1e-5)
    assert float(term) > 0


def test_cyclegan_cc_sweep_trains(tmp_path, tiny_splits):
    cfg = tiny_config("cyclegan-cc", steps=2, steps_per_call=1, lesion_segmenter_steps=5)
    result = train_sweep(cfg, tmp_path, tiny_splits, progress=False)
    assert result.steps_run == 2 and not np.asarray(result.states.diverged).any()
    assert len(lesion.trained_on(tmp_path)) == 2  # cached in the run folder
    fresh = Method(cfg).init(jax.random.PRNGKey(0), (16, 16))
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a[0] - b).max()),
                                   result.states.generator, fresh.generator)
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-5
    text = "".join(p.read_text() for p in (tmp_path / "metrics").rglob("*.jsonl"))
    assert "train/lesion_loss" in text and "NaN" not in text
