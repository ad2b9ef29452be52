"""The training engine: vmapped sweep == members alone, resume, sampling, losses."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import copy_run, shared_run_config, tiny_config, tiny_slices
from jax_translate.jobs.run_folder import RunFolder, member_name
from jax_translate.training import hparams, image_pool, losses
from jax_translate.runtime import checkpoints, engine
from jax_translate.training.members import build_members, sample_batch
from jax_translate.training.methods import Batch, Method
from jax_translate.jobs.sweep import train_sweep

METHODS = ("cyclegan", "gan", "condgan", "l1")


@pytest.fixture(scope="module")
def train():
    return tiny_slices()


# cyclegan's and gan's vmapped sweeps against their members alone:
# test_member_axis_strategies_agree (the loop trains each member alone).
@pytest.mark.parametrize("method", ("condgan", "l1"))
def test_vmapped_sweep_equals_members_alone(method, train):
    cfg = tiny_config(method, target_tumor_ratios=(0.0, 0.5, 1.0), steps=4, steps_per_call=4)
    m = Method(cfg)
    shared, members = build_members(cfg, train)
    seeds = np.array([m.seed for m in cfg.members])
    states = engine.init_states(m, seeds, (16, 16))
    swept, swept_metrics = engine.SweepStep(m, 4, "vmap").compile(shared, states, members)(
        shared, states, members)

    alone = jax.jit(functools.partial(engine.member_steps, m, 4))
    fresh = engine.init_states(m, seeds, (16, 16))
    probe = jnp.asarray(train.flair[:4, ..., None] * 2 - 1)
    # Compare what the networks compute, not raw parameters: a conv bias
    # followed by instance norm has an exactly-zero gradient, so float noise in
    # it is amplified by Adam to +-lr without changing the function.
    translate = jax.jit(lambda g: m.translate(g, probe))
    for i in range(len(cfg.members)):
        pick = lambda tree: jax.tree_util.tree_map(lambda x: x[i], tree)  # noqa: E731
        state_i, metrics_i = alone(shared, pick(fresh), pick(members))
        chex.assert_trees_all_close(translate(state_i.generator), translate(pick(swept.generator)),
                                    atol=2e-4)
        chex.assert_trees_all_close(metrics_i, pick(swept_metrics), rtol=1e-4, atol=1e-5)
        for d in m.discriminators:
            score = jax.jit(lambda p: m.score(p, d, m.conditioned(probe, probe)))
            chex.assert_trees_all_close(score(state_i.discriminator), score(
                pick(swept.discriminator)), atol=2e-4)
        assert int(state_i.step) == 4
    # members with different data really trained differently
    outs = jax.vmap(translate)(swept.generator)
    assert float(jnp.abs(outs[0] - outs[-1]).max()) > 1e-3


def _logged_means(folder, cfg) -> list[dict]:
    """Per log row: each train/ metric over the members, as a sweep step returns it."""
    metrics = folder.metrics(cfg)
    logged = [metrics[member_name(member)] for member in cfg.members]
    assert [row["step"] for row in logged[0]] == list(range(cfg.log_every, cfg.steps + 1,
                                                            cfg.log_every))
    return [{key[len("train/"):]: np.array([rows[c][key] for rows in logged])
             for key in logged[0][c] if key.startswith("train/")} for c in range(len(logged[0]))]


# The loop at K=1 (the CPU's default: no scan) is the dropout case, on gan (a third of
# cyclegan's compile; dropout is the generator's, the same in every method), and
# batched-matmul convolutions (patches) are l1's (its generator holds every layer kind; a
# cyclegan step with patches compiles 3x longer), each against its own vmapped sweep of
# 2 members in one call of 2 steps; the others against the shared run.
@pytest.mark.parametrize("axis,k,conv_impl,dropout,method", [
    ("map", 2, "xla", 0.0, "cyclegan"), ("loop", 2, "xla", 0.0, "cyclegan"),
    ("vmap", 2, "patches", 0.0, "l1"), ("loop", 1, "xla", 0.5, "gan")])
def test_member_axis_strategies_agree(axis, k, conv_impl, dropout, method, tiny_run, train):
    """Each strategy trains the members as a vmapped sweep does: the same translations,
    discriminator scores and mean losses of every 2 steps (the shared run's logged ones)."""
    shared_run = not dropout and method == "cyclegan"
    cfg = tiny_run[0].cfg if shared_run else tiny_config(method, steps=2)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=dropout))
    m = Method(cfg)
    shared, members = build_members(cfg, train)
    seeds = np.asarray([m.seed for m in cfg.members])
    init = lambda: engine.init_states(m, seeds, (16, 16))  # noqa: E731
    if shared_run:  # it logged the mean losses of each call of 2 steps
        a, reference = tiny_run[0].states, _logged_means(RunFolder(tiny_run[1]), cfg)
    else:  # its own vmapped reference (lax.conv), one call of 2 steps
        a, metrics = engine.SweepStep(m, 2, "vmap").compile(shared, init(), members)(
            shared, init(), members)
        reference = [metrics]
    b = init()
    step = engine.SweepStep(Method(cfg, conv_impl=conv_impl), k, axis).compile(shared, b, members)
    # XLA's analyses answer for every member axis (loop: one member's program)
    assert step.memory_analysis().temp_size_in_bytes > 0
    assert step.cost_analysis()["flops"] > 0
    calls = []
    for _ in range(cfg.steps // k):
        b, metrics = step(shared, b, members)
        calls.append(metrics)
    probe = jnp.asarray(train.flair[:2, ..., None] * 2 - 1)
    translate = jax.jit(jax.vmap(lambda g: m.translate(g, probe)))
    chex.assert_trees_all_close(translate(a.generator), translate(b.generator), atol=2e-4)
    for d in m.discriminators:
        score = jax.jit(jax.vmap(lambda p: m.score(p, d, m.conditioned(probe, probe))))  # noqa: B023
        chex.assert_trees_all_close(score(a.discriminator), score(b.discriminator), atol=2e-4)
    per_ref = 2 // k  # calls per reference row
    assert len(calls) == per_ref * len(reference)
    for c, expected in enumerate(reference):
        mean = jax.tree_util.tree_map(lambda *x: np.mean(x, 0),
                                      *calls[c * per_ref:(c + 1) * per_ref])
        assert set(mean) == set(expected)
        for key in expected:
            np.testing.assert_allclose(mean[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_plan_decides_member_axis_conv_impl_and_steps_per_call():
    """engine.plan is the one place: what the config sets is kept, auto is the measured rule."""
    auto = tiny_config(member_axis="auto", conv_impl="auto", steps_per_call=0, steps=100)
    assert engine.plan(auto, "cpu", 1) == engine.Plan("loop", "xla", 1)
    assert engine.plan(auto, "cpu", 4) == engine.Plan("vmap", "xla", 1)   # vmap shards members
    assert engine.plan(auto, "gpu", 1) == engine.Plan("vmap", "patches", 50)
    assert engine.plan(auto, "tpu", 8) == engine.Plan("vmap", "patches", 50)
    fixed = dataclasses.replace(auto, member_axis="map", conv_impl="patches", steps_per_call=3)
    assert engine.plan(fixed, "gpu", 1) == engine.Plan("map", "patches", 3)
    loop = dataclasses.replace(auto, member_axis="loop")
    assert engine.plan(loop, "gpu", 1) == engine.Plan("loop", "xla", 50)
    short = dataclasses.replace(auto, steps=6)  # K never exceeds the run's steps
    assert engine.plan(short, "gpu", 1).steps_per_call == 6
    # the decided conv impl is an attribute of the networks the sweep step builds
    step = engine.Plan("vmap", "patches", 2).sweep_step(auto)
    assert step.method.generator_net.conv_impl == step.method.discriminator_net.conv_impl == "patches"
    assert (step.member_axis, step.n_steps) == ("vmap", 2)


def test_resume_equals_uninterrupted(tiny_run, tiny_run_half, tmp_path, tiny_splits):
    (straight, _), (first, half) = tiny_run, tiny_run_half
    assert first.steps_run == 2
    workdir = copy_run(half, tmp_path / "resumed")
    resumed = train_sweep(straight.cfg, workdir, tiny_splits, progress=False)
    assert resumed.steps_run == 2
    chex.assert_trees_all_equal(straight.states, resumed.states)
    # a finished run does nothing more when rerun
    again = train_sweep(straight.cfg, workdir, tiny_splits, progress=False)
    assert (again.steps_run, again.states, again.compile_seconds) == (0, None, 0.0)


def test_restored_states_lower_to_the_program_fresh_states_do(tiny_run_half, tiny_splits):
    """So a resumed run finds its step in the persistent compile cache: restored
    (committed) arrays once lowered with explicit shardings, another program text,
    and every resume recompiled."""
    cfg = shared_run_config(member_axis="loop")  # loop: lowering one member's program is cheap
    m = Method(cfg)
    fresh = engine.init_states(m, np.asarray([m.seed for m in cfg.members]), (16, 16))
    _, restored = checkpoints.restore_latest(RunFolder(tiny_run_half[1]).manager(), fresh)
    assert all(x.committed for x in jax.tree_util.tree_leaves(restored))
    shared, members = build_members(cfg, tiny_splits["train"])
    step = engine.SweepStep(m, cfg.steps_per_call, "loop")
    assert step.lower(shared, restored, members).as_text() == step.lower(
        shared, fresh, members).as_text()


def test_member_batches_have_its_tumor_ratio(train):
    ratios = (0.0, 0.3, 1.0)
    cfg = tiny_config("gan", target_tumor_ratios=ratios, n_target=10)
    shared, members = build_members(cfg, train)
    labels = np.asarray(shared.label)
    for i, ratio in enumerate(ratios):
        member = jax.tree_util.tree_map(lambda x: x[i], members)
        assert labels[np.asarray(member.target_index)].mean() == pytest.approx(ratio)
        keys = jax.random.split(jax.random.PRNGKey(i), 2000)
        draw = jax.jit(jax.vmap(lambda k: sample_batch(shared, member, k, cfg, jnp.int32(0))[1]))
        sampled = labels[np.asarray(draw(keys)).ravel()]
        assert abs(sampled.mean() - ratio) < 0.04
        # and the source domain stays at 50% whatever the target ratio
        assert labels[np.asarray(member.source_index)].mean() == pytest.approx(0.5)


def test_loss_formulas_by_hand():
    scores = jnp.array([0.5, 1.5, -1.0])
    assert losses.lsgan_loss(scores, True) == pytest.approx((0.25 + 0.25 + 4.0) / 3)
    assert losses.lsgan_loss(scores, False) == pytest.approx((0.25 + 2.25 + 1.0) / 3)
    logits = jnp.array([0.0, 2.0])
    expected = (np.log(2) + np.log1p(np.exp(-2.0))) / 2
    assert losses.vanilla_gan_loss(logits, True) == pytest.approx(expected, rel=1e-5)
    assert losses.l1_loss(jnp.ones(4), jnp.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_generator_loss_matches_hand_computation(method):
    cfg = tiny_config(method)
    m = Method(cfg)
    state = m.init(jax.random.PRNGKey(3), (16, 16))
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.uniform(-1, 1, (1, 16, 16, 1)), jnp.float32) for _ in range(2))
    loss, (metrics, _) = m.generator_loss(state.generator, state.discriminator, Batch(a, b))
    G = lambda name, x: np.asarray(m.translate(state.generator, x, name))  # noqa: E731
    D = lambda name, x: np.asarray(  # noqa: E731
        m.discriminator_net.apply({"params": state.discriminator[name]}, x))
    fake_b = G("ab", a)
    if method == "l1":
        expected = np.abs(fake_b - np.asarray(b)).mean()
    elif method == "gan":
        expected = ((D("b", fake_b) - 1) ** 2).mean()
    elif method == "condgan":
        logits = D("b", np.concatenate([a, fake_b], -1))
        expected = np.mean(np.log1p(np.exp(-logits)))  # BCE with label 1
    else:
        fake_a = G("ba", b)
        adv = ((D("b", fake_b) - 1) ** 2).mean() + ((D("a", fake_a) - 1) ** 2).mean()
        cycle = np.abs(G("ba", fake_b) - a).mean() + np.abs(G("ab", fake_a) - b).mean()
        identity = np.abs(G("ab", b) - b).mean() + np.abs(G("ba", a) - a).mean()
        expected = adv + 10 * cycle + 0.5 * 10 * identity
    assert float(loss) == pytest.approx(float(expected), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("method,metric", [("l1", "l1_loss"), ("cyclegan", "cycle_loss")])
def test_loss_goes_down(method, metric, train):
    cfg = tiny_config(method, target_tumor_ratios=(0.5,), steps=60, learning_rate=2e-3,
                      decay_fraction=0.0)
    m = Method(cfg)
    shared, members = build_members(cfg, train)
    states = engine.init_states(m, np.zeros(1, int), (16, 16))
    # One step per call: on the CPU a scan of steps runs its convolutions ~8x slower.
    step = engine.SweepStep(m, 1, "vmap").compile(shared, states, members)
    history = []
    for _ in range(cfg.steps):
        states, metrics = step(shared, states, members)
        history.append(float(metrics[metric][0]))
    first, last = np.mean(history[:10]), np.mean(history[-10:])
    assert last < 0.7 * first, (first, last)


def test_diverging_member_is_frozen_and_isolated(tiny_run, tiny_run_half, tmp_path, tiny_splits):
    """A member whose parameters turn non-finite (poisoned here in its checkpoint)
    is frozen and flagged; the other members train exactly as without it."""
    base, _ = tiny_run
    folder = RunFolder(copy_run(tiny_run_half[1], tmp_path / "bad"))
    mngr = folder.manager()
    _, states = checkpoints.restore_latest(mngr, base.states)
    poison = lambda x: x.at[1].set(jnp.nan) if x.dtype == jnp.float32 else x  # noqa: E731
    poisoned = states.replace(generator=jax.tree_util.tree_map(poison, states.generator))
    mngr.delete(2)
    checkpoints.save(mngr, 2, poisoned)
    mngr.wait_until_finished()
    bad = train_sweep(base.cfg, folder.path, tiny_splits, progress=False)

    n = len(base.cfg.members)
    assert list(np.asarray(bad.states.diverged)) == [i == 1 for i in range(n)]
    for i in set(range(n)) - {1}:
        pick = lambda t: jax.tree_util.tree_map(lambda x: x[i], t)  # noqa: E731
        chex.assert_trees_all_equal(pick(base.states), pick(bad.states))
    # the diverged member is frozen where it was: its step and optimizer did not move
    assert int(bad.states.step[1]) == 2
    chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda x: x[1], poisoned.generator_opt),
                                jax.tree_util.tree_map(lambda x: x[1], bad.states.generator_opt))


def test_image_pool_follows_the_reference_rule():
    pool = image_pool.init_pool(2, (1,))
    key = jax.random.PRNGKey(0)
    pool, out = image_pool.query_pool(pool, jnp.array([[1.0], [2.0]]), key)
    np.testing.assert_array_equal(out, [[1.0], [2.0]])  # filling: returned as is
    assert int(pool["count"]) == 2
    seen = set()
    for i in range(40):
        before = set(np.asarray(pool["images"]).ravel().tolist())
        pool, out = image_pool.query_pool(pool, jnp.array([[100.0 + i]]), jax.random.PRNGKey(i))
        after = set(np.asarray(pool["images"]).ravel().tolist())
        value = float(out[0, 0])
        if value == 100.0 + i:   # new image returned: pool unchanged
            assert after == before
        else:                    # an old image returned and replaced by the new one
            assert value in before and 100.0 + i in after
            seen.add("swap")
    assert seen == {"swap"}


def test_out_of_device_memory_is_one_clear_error_and_keeps_checkpoints(tmp_path, tiny_splits,
                                                                        monkeypatch, tiny_run):
    cfg = shared_run_config(member_axis="loop")
    real_call, calls = engine.CompiledSweepStep.__call__, []

    def failing_second_call(*args):  # every compiled sweep step is called through it
        calls.append(1)
        if len(calls) == 2:
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory")
        return real_call(*args)

    monkeypatch.setattr(engine.CompiledSweepStep, "__call__", failing_second_call)
    from jax_translate.errors import UsageError
    with pytest.raises(UsageError, match="out of device memory.*--conv-impl xla.*steps: 2"):
        train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    monkeypatch.setattr(engine.CompiledSweepStep, "__call__", real_call)
    resumed = train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    assert resumed.steps_run == 2  # resumed from the step-2 checkpoint
    # and the host loop trained the members as the shared run's vmap did
    m, probe = Method(cfg), jnp.asarray(tiny_splits["holdout"].flair[:2, ..., None] * 2 - 1)
    translate = jax.jit(jax.vmap(lambda g: m.translate(g, probe)))
    outs = [translate(s.generator) for s in (resumed.states, tiny_run[0].states)]
    chex.assert_trees_all_close(outs[0], outs[1], atol=2e-4)


def test_gridded_vmapped_sweep_equals_its_members_trained_alone(train):
    """A grid's members (learning rates crossed with ratios) train in one vmapped program as
    each trains alone from a config that holds its knob as the run's own value."""
    cfg = tiny_config("l1", steps=4, steps_per_call=4, grid=(("learning_rate", (1e-4, 2e-3)),))
    assert [member.name for member in cfg.members] == [
        "ratio=0/seed=0/learning_rate=0.0001", "ratio=0/seed=0/learning_rate=0.002",
        "ratio=1/seed=0/learning_rate=0.0001", "ratio=1/seed=0/learning_rate=0.002"]
    m = Method(cfg)
    shared, members = build_members(cfg, train)
    seeds = np.array([member.seed for member in cfg.members])
    states = engine.init_states(m, seeds, (16, 16))
    swept, swept_metrics = engine.SweepStep(m, 4, "vmap").compile(shared, states, members)(
        shared, states, members)
    fresh = engine.init_states(m, seeds, (16, 16))
    probe = jnp.asarray(train.flair[:4, ..., None] * 2 - 1)
    translate = jax.jit(lambda g: m.translate(g, probe))
    for i, member in enumerate(cfg.members):
        pick = lambda tree: jax.tree_util.tree_map(lambda x: x[i], tree)  # noqa: E731
        alone_cfg = tiny_config("l1", steps=4, steps_per_call=4,
                                target_tumor_ratios=(member.target_tumor_ratio,),
                                **dict(member.knobs))
        alone_member = pick(members).replace(hparams=hparams.for_config(alone_cfg))
        alone = jax.jit(functools.partial(engine.member_steps, Method(alone_cfg), 4))
        state_i, metrics_i = alone(shared, pick(fresh), alone_member)
        chex.assert_trees_all_close(translate(state_i.generator), translate(pick(swept.generator)),
                                    atol=2e-4)
        chex.assert_trees_all_close(metrics_i, pick(swept_metrics), rtol=1e-4, atol=1e-5)
    # the knob matters: the two rates at the same ratio and seed trained apart
    outs = jax.vmap(translate)(swept.generator)
    assert float(jnp.abs(outs[0] - outs[1]).max()) > 1e-3


def test_resume_of_a_gridded_sweep_equals_an_uninterrupted_one(tmp_path, tiny_splits):
    # fields out of alphabetical order: the saved config keeps the grid's (the members') order
    cfg = tiny_config("l1", steps=4, steps_per_call=2, checkpoint_every=2, log_every=2,
                      grid=(("learning_rate", (1e-4, 2e-3)), ("discriminator_learning_rate", (1e-4,))))
    straight = train_sweep(cfg, tmp_path / "straight", tiny_splits, progress=False)
    assert train_sweep(cfg, tmp_path / "resumed", tiny_splits, progress=False,
                       stop_after=2).steps_run == 2
    resumed = train_sweep(cfg, tmp_path / "resumed", tiny_splits, progress=False)
    assert resumed.steps_run == 2
    chex.assert_trees_all_equal(straight.states, resumed.states)
    logged = [RunFolder(tmp_path / name).metrics(cfg) for name in ("straight", "resumed")]
    assert logged[0] == logged[1] and len(logged[0]) == 4


def test_logged_losses_are_means_over_the_log_window(tiny_run, tmp_path, tiny_splits):
    """One step per call (the CPU's default) and a row every 2 steps: each row is the mean
    of its 2 steps, as the shared run's calls of 2 steps return it, not the last step's."""
    cfg = shared_run_config(steps_per_call=1, member_axis="loop")
    train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    got = _logged_means(RunFolder(tmp_path / "run"), cfg)
    expected = _logged_means(RunFolder(tiny_run[1]), tiny_run[0].cfg)
    assert len(got) == len(expected) == 2
    for row, reference in zip(got, expected):
        assert set(row) == set(reference)
        for key in reference:
            np.testing.assert_allclose(row[key], reference[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_ctrl_c_saves_the_states_at_their_own_step(tiny_run, tmp_path, tiny_splits, monkeypatch):
    """An interrupt after a call returned, before the loop moved on (here: in the ETA timer
    after the second call), saves those states under their step, 4, not the loop's 2."""
    from jax_translate.runtime import eta

    real, calls = eta.FirstCallsTimer.after_call, []

    def interrupted_second(self, states, done):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, states, done)

    monkeypatch.setattr(eta.FirstCallsTimer, "after_call", interrupted_second)
    cfg = shared_run_config(checkpoint_every=4)  # no checkpoint before the interrupt
    with pytest.raises(KeyboardInterrupt):
        train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    mngr = RunFolder(tmp_path / "run").manager()
    _, saved = checkpoints.restore_latest(mngr, tiny_run[0].states)
    assert mngr.latest_step() == 4 and set(np.asarray(saved.step).tolist()) == {4}
    chex.assert_trees_all_equal(saved, tiny_run[0].states)  # what the shared run trained


def test_ctrl_c_inside_the_loops_call_saves_no_donated_buffers(tmp_path, tiny_splits,
                                                                monkeypatch):
    """Under the loop member axis the first member's program donates the stacked states; an
    interrupt before the last member's leaves nothing valid to save: the last checkpoint
    (none here) stands, the interrupt is not turned into another error, and a rerun trains."""
    real, calls = engine.CompiledSweepStep.__call__, []

    def interrupted_after_first_member(self, shared, states, members):
        calls.append(1)
        if len(calls) < 2:
            return real(self, shared, states, members)
        self.compiled(shared, states, members, jax.device_put(np.int32(0)))  # member 0 only
        assert any(x.is_deleted() for x in jax.tree_util.tree_leaves(states))  # donated
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.CompiledSweepStep, "__call__", interrupted_after_first_member)
    cfg = shared_run_config(member_axis="loop", checkpoint_every=4)
    with pytest.raises(KeyboardInterrupt):
        train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False)
    assert RunFolder(tmp_path / "run").manager().latest_step() is None
    monkeypatch.setattr(engine.CompiledSweepStep, "__call__", real)
    assert train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False).steps_run == 4
