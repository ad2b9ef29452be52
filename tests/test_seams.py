"""What an experiment hands in instead of patching the library (docs/architecture.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from conftest import tiny_config
from jax_translate.data import domains, simulator
from jax_translate.jobs.evaluate_run import evaluate_run
from jax_translate.jobs.sweep import train_sweep
from jax_translate.training.members import build_members, domain_indices, sample_batch
from jax_translate.training.methods import Method, Parts, train_step


class PixelGenerator(nn.Module):
    """Only a 1x1 remap of intensities: parameters no built generator has."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return jnp.tanh(nn.Conv(1, (1, 1), name="remap")(x))


def _one_step(method, shared, members):
    member = jax.tree_util.tree_map(lambda x: x[0], members)
    state = method.init(jax.random.PRNGKey(0), shared.source.shape[1:3])
    batch, _ = sample_batch(shared, member, jax.random.PRNGKey(1), method.cfg, state.step)
    new, _ = jax.jit(lambda s, b: train_step(method, s, b, jnp.bool_(True)))(state, batch)
    return state, new


def test_a_handed_in_generator_and_discriminator_optimizer_are_the_ones_trained(tiny_splits):
    cfg = tiny_config("cyclegan", target_tumor_ratios=(0.5,))
    shared, members = build_members(cfg, tiny_splits["train"])
    frozen_d = Parts(generator=PixelGenerator(),
                     discriminator_optimizer=lambda c: optax.set_to_zero())
    state, new = _one_step(Method(cfg, parts=frozen_d), shared, members)
    assert set(state.generator["ab"]) == {"remap"}  # the handed-in network's parameters
    changed = lambda a, b: any(  # noqa: E731
        not np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                 jax.tree_util.tree_leaves(b)))
    assert changed(state.generator, new.generator)
    assert not changed(state.discriminator, new.discriminator)  # its optimizer: no updates
    _, default = _one_step(Method(cfg), shared, members)
    assert changed(state.discriminator, default.discriminator)  # the config's Adam moves D


def test_a_sweep_trains_and_evaluates_with_handed_in_parts(tmp_path, tiny_splits):
    cfg = tiny_config("l1", steps=2, steps_per_call=1, checkpoint_every=2, member_axis="loop")
    parts = Parts(generator=PixelGenerator())
    result = train_sweep(cfg, tmp_path, tiny_splits, progress=False, parts=parts)
    assert set(result.states.generator["ab"]) == {"remap"}

    class Judge:  # calls every image tumor: evaluation needs no trained classifier here
        metrics = {"accuracy": 1.0}

        def predict(self, images, brain_mask=None):
            return np.ones(len(images), bool)

    rows = evaluate_run(tmp_path, tiny_splits, Judge(), progress=False, parts=parts).rows
    assert {r["frac_pred_tumor"] for r in rows} == {1.0}


def test_a_handed_in_domain_builder_draws_the_domains(tiny_splits):
    cfg = tiny_config("cyclegan")
    train = tiny_splits["train"]
    seen = []

    def first_slices(cfg, train, ratio, seed):
        seen.append((ratio, seed))
        return np.arange(cfg.n_source), np.arange(cfg.n_target)

    _, members = build_members(cfg, train, domain_builder=first_slices)
    assert seen == [(m.target_tumor_ratio, m.seed) for m in cfg.members]
    _, default = build_members(cfg, train, domain_builder=domain_indices)
    assert not np.array_equal(members.target_index, default.target_index)

    def every_patient(labels, patient_id, sizes, seed):
        return np.unique(patient_id), np.unique(patient_id)

    sizes = domains.DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    source, target = domains.unpaired_domains(train.label, train.patient_id, 1.0, sizes, 0,
                                              split=every_patient)
    disjoint = domains.unpaired_domains(train.label, train.patient_id, 1.0, sizes, 0)
    assert not set(train.patient_id[disjoint[0]]) & set(train.patient_id[disjoint[1]])
    assert set(train.patient_id[source]) & set(train.patient_id[target])  # shared patients


def test_a_handed_in_renderer_renders_the_patient():
    geometry = simulator.GEOMETRIES["64"]
    calls = []

    def dark(rng, fractions, axes_mm, average):
        calls.append(sorted(fractions))
        images = simulator.render(rng, fractions, axes_mm, average)
        return {name: np.zeros_like(image) for name, image in images.items()}

    volume = simulator.simulate_patient(0, 0, geometry, version=1, renderer=dark)
    assert calls and "wm" in calls[0]
    assert not volume.flair.any() and not volume.t1.any()
    assert simulator.simulate_patient(0, 0, geometry, version=1).flair.any()
