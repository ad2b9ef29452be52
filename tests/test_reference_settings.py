"""The reference code's settings (docs/paper_protocol.md): each a config field that the paper preset sets."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config, tiny_slices
from jax_translate.config import SweepConfig
from jax_translate.configure import resolve
from jax_translate.data import domains
from jax_translate.errors import UsageError
from jax_translate.jobs import evaluate_run
from jax_translate.training import translate
from jax_translate.model_config import MODEL_PRESETS
from jax_translate.presets import REFERENCE_INTENSITY_RANGE
from jax_translate.runtime import engine
from jax_translate.images import downsample, from_model_range, to_model_range, upsample
from jax_translate.training.members import build_members, sample_batch
from jax_translate.training.methods import Batch, Method, train_step
from jax_translate.jobs.sweep import train_sweep

REFERENCE = dict(test_dropout=True, upscale=2, intensity_range=REFERENCE_INTENSITY_RANGE,
                 domain_protocol="reference", condgan_gan_loss="lsgan", condgan_pool_size=50,
                 condgan_discriminator_first=True)


@pytest.fixture(scope="module")
def train():
    return tiny_slices()


def _member(members, i):
    return jax.tree_util.tree_map(lambda x: x[i], members)


def test_paper_preset_has_the_reference_settings_and_others_keep_ours():
    paper = resolve("condgan", "paper")
    assert {k: getattr(paper, k) for k in REFERENCE} == REFERENCE
    assert (paper.model.upsample, paper.model.dropout) == ("transpose", 0.5)
    assert REFERENCE_INTENSITY_RANGE[1] == pytest.approx(-0.216, abs=1e-3)
    ours = SweepConfig()
    for preset in ("cpu", "tiny"):
        cfg = resolve("condgan", preset)
        assert {k: getattr(cfg, k) for k in REFERENCE} == {k: getattr(ours, k) for k in REFERENCE}
        assert (cfg.model.upsample, cfg.model.dropout) == ("resize", 0.0)


@pytest.mark.parametrize("overrides,message", [
    (dict(test_dropout=True), "test_dropout needs model dropout"),
    (dict(test_dropout="yes"), 'test_dropout takes true or false, got "yes"'),
    (dict(upscale=0), "upscale must be an integer >= 1"),
    (dict(upscale=1.5), "upscale takes a whole number, got 1.5"),
    (dict(intensity_range=(0.5, 0.2)), "intensity_range must be"),
    (dict(intensity_range=(-2.0, 1.0)), "intensity_range must be"),
    (dict(intensity_range=(-1.0,)), "intensity_range takes a list of 2 numbers"),
    (dict(domain_protocol="shared"), "unknown domain protocol 'shared'"),
    (dict(condgan_gan_loss="wgan"), "unknown condgan GAN loss 'wgan'"),
    (dict(condgan_pool_size=-1), "condgan_pool_size must be >= 0"),
    (dict(condgan_discriminator_first=1), "condgan_discriminator_first takes true or false"),
])
def test_bad_values_are_one_clear_error(overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve("condgan", "tiny", **overrides)


def test_reference_settings_survive_a_json_round_trip(tmp_path):
    cfg = resolve("condgan", "paper")
    assert SweepConfig.from_dict(__import__("json").loads(cfg.to_json())) == cfg


# ---------------------------------------------------------------- intensities

def test_intensity_range_round_trips_and_default_is_unchanged():
    x = np.random.default_rng(0).uniform(0, 1, (5, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(to_model_range(x), (2.0 * x - 1.0)[..., None])
    y = to_model_range(x)
    np.testing.assert_array_equal(from_model_range(y), np.clip((y[..., 0] + 1.0) / 2.0, 0, 1))
    np.testing.assert_allclose(from_model_range(y), x, atol=1e-7)
    y = to_model_range(x, REFERENCE_INTENSITY_RANGE)
    low, high = REFERENCE_INTENSITY_RANGE
    np.testing.assert_allclose(to_model_range(np.array([0.0, 1.0]), REFERENCE_INTENSITY_RANGE)[:, 0],
                               [-1.0, -0.2157], atol=1e-4)
    assert low <= y.min() and y.max() <= high + 1e-7
    np.testing.assert_allclose(from_model_range(y, REFERENCE_INTENSITY_RANGE), x, atol=1e-6)
    # outputs beyond the range (tanh reaches 1) clip to white
    assert from_model_range(np.ones((1, 2, 2, 1)), REFERENCE_INTENSITY_RANGE).max() == 1.0


def test_training_images_use_the_intensity_range(train):
    cfg = tiny_config("l1", intensity_range=REFERENCE_INTENSITY_RANGE)
    shared, _ = build_members(cfg, train)
    assert float(shared.target.min()) >= -1.0 and float(shared.target.max()) <= -0.2156


# ---------------------------------------------------------------- upscale

def test_upsample_and_downsample():
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (2, 6, 4, 1)), jnp.float32)
    assert upsample(x, 1) is x and downsample(x, 1) is x
    assert upsample(x, 2).shape == (2, 12, 8, 1)
    np.testing.assert_allclose(downsample(upsample(jnp.full((1, 4, 4, 1), 0.3), 2), 2), 0.3,
                               rtol=1e-6)
    block = downsample(jnp.arange(16.0).reshape(1, 4, 4, 1), 2)[0, :, :, 0]
    np.testing.assert_allclose(block, [[2.5, 4.5], [10.5, 12.5]])


def test_batches_are_upscaled_and_upscale_1_is_todays_batch(train):
    cfg = tiny_config("cyclegan", upscale=2)
    shared, members = build_members(cfg, train)
    batch, _ = sample_batch(shared, _member(members, 0), jax.random.PRNGKey(0), cfg, jnp.int32(0))
    assert batch.source.shape == batch.target.shape == (1, 32, 32, 1)
    plain = dataclasses.replace(cfg, upscale=1)
    member = _member(members, 0)
    key = jax.random.PRNGKey(0)
    batch, target = sample_batch(shared, member, key, plain, jnp.int32(0))
    source_key, target_key = jax.random.split(key)  # today's draw, by hand
    source = member.source_index[jax.random.randint(source_key, (1,), 0, 8)]
    np.testing.assert_array_equal(batch.source, shared.source[source])
    np.testing.assert_array_equal(batch.target, shared.target[target])


def test_translations_come_back_at_the_datasets_size(train):
    cfg = tiny_config("l1", upscale=2)
    method = Method(cfg)
    states = engine.init_states(method, np.arange(2), (32, 32))
    out = translate.translate_all(method, states.generator, train.flair[:5])
    assert out.shape == (2, 5, 16, 16) and 0 <= out.min() and out.max() <= 1
    x = jnp.asarray(to_model_range(train.flair[:5]))
    g0 = jax.tree_util.tree_map(lambda p: p[0], states.generator)
    by_hand = from_model_range(downsample(method.translate(g0, upsample(x, 2)), 2))
    np.testing.assert_allclose(out[0], by_hand, atol=1e-6)
    # upscale 1: bit for bit what translate_all computed before these fields existed
    plain = Method(dataclasses.replace(cfg, upscale=1))
    states = engine.init_states(plain, np.arange(2), (16, 16))
    before = jax.jit(jax.vmap(lambda g, x: plain.translate(g, x), in_axes=(0, None)))
    np.testing.assert_array_equal(translate.translate_all(plain, states.generator, train.flair[:5]),
                                  from_model_range(before(states.generator, x)))


# ---------------------------------------------------------------- dropout at test time

def test_test_dropout_is_on_and_repeats_exactly(train):
    cfg = tiny_config("l1")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.5))
    on = Method(dataclasses.replace(cfg, test_dropout=True))
    states = engine.init_states(on, np.arange(1), (16, 16))
    images = train.flair[:7]
    first = translate.translate_all(on, states.generator, images)
    np.testing.assert_array_equal(first, translate.translate_all(on, states.generator, images))
    np.testing.assert_allclose(first, translate.translate_all(on, states.generator, images, chunk=3),
                               atol=1e-6)  # a key per image, whatever the chunking
    off = translate.translate_all(Method(cfg), states.generator, images)
    assert np.abs(first - off).max() > 1e-3


# ---------------------------------------------------------------- domains

def test_reference_domains_share_one_source_and_all_patients():
    rng = np.random.default_rng(0)
    patient_id = np.repeat(np.arange(30), 60)
    labels = (rng.uniform(size=patient_id.size) < 0.4).astype(np.int32)
    sizes = domains.DomainSizes(200, 200, 50)
    drawn = {r: domains.reference_domains(labels, r, sizes, seed=2) for r in (0.0, 0.3, 1.0)}
    for ratio, (source, target) in drawn.items():
        np.testing.assert_array_equal(source, drawn[0.0][0])   # one source for every ratio
        assert labels[source].mean() == 0.5 and labels[target].mean() == pytest.approx(ratio)
        assert set(patient_id[source]) & set(patient_id[target])  # shared patients
    assert not np.array_equal(domains.reference_domains(labels, 0.3, sizes, seed=3)[0],
                              drawn[0.0][0])
    # ours: disjoint patients and a source per ratio
    a, b = (domains.unpaired_domains(labels, patient_id, r, sizes, seed=2) for r in (0.0, 1.0))
    assert not set(patient_id[a[0]]) & set(patient_id[a[1]])
    assert not np.array_equal(a[0], b[0])


def test_reference_protocol_reaches_the_members(train):
    cfg = tiny_config("cyclegan", domain_protocol="reference", target_tumor_ratios=(0.0, 0.5, 1.0))
    _, members = build_members(cfg, train)
    source = np.asarray(members.source_index)
    assert (source == source[0]).all()
    _, ours = build_members(dataclasses.replace(cfg, domain_protocol="disjoint"), train)
    assert not (np.asarray(ours.source_index) == np.asarray(ours.source_index)[0]).all()


@pytest.mark.parametrize("batch_size", [1, 3])
def test_paired_reference_batches_step_through_the_pairs_in_order(batch_size, train):
    cfg = tiny_config("condgan", domain_protocol="reference", batch_size=batch_size)
    shared, members = build_members(cfg, train)
    member = _member(members, 1)
    n = member.target_index.shape[0]
    draw = jax.jit(lambda step: sample_batch(shared, member, jax.random.PRNGKey(0), cfg, step))
    for step in range(2 * n // batch_size + 2):
        batch, target = draw(jnp.int32(step))  # the step is traced: one compile
        expected = member.target_index[(step * batch_size + np.arange(batch_size)) % n]
        np.testing.assert_array_equal(target, expected)
        np.testing.assert_array_equal(batch.source, shared.source[expected])
    # ours: uniform draws, not the first pairs in order
    uniform = dataclasses.replace(cfg, domain_protocol="disjoint")
    firsts = [int(sample_batch(shared, member, jax.random.PRNGKey(k), uniform, jnp.int32(0))[1][0])
              for k in range(8)]
    assert len(set(firsts)) > 1


# ---------------------------------------------------------------- condgan as the reference

# condgan as the reference code trains it: LSGAN, a pool of 50 (source, output) pairs, D first.
REFERENCE_CONDGAN = dict(condgan_gan_loss="lsgan", condgan_pool_size=50,
                         condgan_discriminator_first=True)


@functools.lru_cache(maxsize=None)  # each distinct step is compiled once for every test
def _condgan_step(**overrides):
    """One condgan train_step from a fresh state: (method, state before, batch, state after, metrics)."""
    m = Method(tiny_config("condgan", **overrides))
    state = m.init(jax.random.PRNGKey(3), (16, 16))
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.uniform(-1, 1, (1, 16, 16, 1)), jnp.float32) for _ in range(2))
    batch = Batch(a, b)
    new, metrics = jax.jit(lambda s: train_step(m, s, batch, jnp.bool_(True)))(
        state)
    return m, state, batch, new, metrics


def _d(m, discriminator, x):
    return np.asarray(m.discriminator_net.apply({"params": discriminator["b"]}, x))


@pytest.mark.parametrize("gan_loss", ["vanilla", "lsgan"])
def test_condgan_gan_loss_by_hand(gan_loss):
    m, state, batch, _, metrics = _condgan_step(condgan_gan_loss=gan_loss)
    fake = np.asarray(m.translate(state.generator, batch.source))
    real_scores = _d(m, state.discriminator, np.concatenate([batch.source, batch.target], -1))
    fake_scores = _d(m, state.discriminator, np.concatenate([batch.source, fake], -1))
    if gan_loss == "lsgan":
        expected = 0.5 * (((real_scores - 1) ** 2).mean() + (fake_scores ** 2).mean())
    else:
        expected = 0.5 * (np.log1p(np.exp(-real_scores)).mean()
                          + np.log1p(np.exp(fake_scores)).mean())
    assert float(metrics["discriminator_loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_condgan_pool_holds_source_output_pairs():
    m, state, batch, new, _ = _condgan_step(**REFERENCE_CONDGAN)
    assert state.pools["b"]["images"].shape == (50, 16, 16, 2)
    assert int(new.pools["b"]["count"]) == 1
    fake = m.translate(state.generator, batch.source)
    np.testing.assert_allclose(new.pools["b"]["images"][0],
                               np.concatenate([batch.source, fake], -1)[0], atol=1e-6)
    assert Method(tiny_config("condgan")).init(jax.random.PRNGKey(0), (16, 16)).pools == {}


def test_condgan_discriminator_first_scores_the_generator_with_the_updated_discriminator():
    m, state, batch, g_first, g_first_metrics = _condgan_step(condgan_gan_loss="lsgan")
    _, _, _, d_first, d_first_metrics = _condgan_step(**REFERENCE_CONDGAN)
    pair = np.concatenate([batch.source, m.translate(state.generator, batch.source)], -1)
    for new, metrics, discriminator in ((g_first, g_first_metrics, state.discriminator),
                                        (d_first, d_first_metrics, d_first.discriminator)):
        expected = ((_d(m, discriminator, pair) - 1) ** 2).mean()
        assert float(metrics["adversarial_loss"]) == pytest.approx(float(expected), rel=1e-5)
    # D trains on the same fakes either way (the filling pool returns them as they are);
    # only G sees a different D
    chex.assert_trees_all_close(g_first.discriminator, d_first.discriminator, atol=1e-6)
    moved = jax.tree_util.tree_map(lambda x, y: float(jnp.abs(x - y).max()),
                                   g_first.generator, d_first.generator)
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-6


class _DarkClassifier:
    metrics = {"accuracy": 1.0}

    def predict(self, images, brain_mask=None):
        return (np.asarray(images) < 0.3).reshape(len(images), -1).mean(1) > 0.5


def test_a_sweep_with_every_reference_setting_trains_resumes_and_evaluates(tmp_path, tiny_splits):
    """condgan: upscaled 2-channel pool in the checkpoint, serial pairs, D first, test dropout."""
    cfg = tiny_config("condgan", steps=4, steps_per_call=2, checkpoint_every=2, **REFERENCE,
                      model=dataclasses.replace(MODEL_PRESETS["tiny"], dropout=0.5))
    (tmp_path / "run").mkdir()
    whole = train_sweep(cfg, tmp_path / "whole", tiny_splits, progress=False)
    train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False, stop_after=2)
    resumed = train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    chex.assert_trees_all_close(whole.states.generator, resumed.states.generator, atol=1e-6)
    result = evaluate_run.evaluate_run(tmp_path / "run", tiny_splits, _DarkClassifier(), progress=False)
    translated = np.load(tmp_path / "run" / "translations.npz")["translated"]
    assert translated.shape == (len(cfg.members), cfg.n_holdout, 16, 16)
    again = evaluate_run.evaluate_run(tmp_path / "run", tiny_splits, _DarkClassifier(), progress=False)
    assert again.rows == result.rows  # test-time dropout, yet the same numbers
