"""Sweeps that start from other runs' generators (--init-from), and evaluators in training."""

import chex
import jax
import numpy as np
import pytest

from conftest import tiny_config

from jax_translate import cli
from jax_translate.errors import UsageError
from jax_translate.jobs.run_folder import RunFolder
from jax_translate.jobs.sweep import train_sweep


@pytest.fixture(scope="module")
def l1_runs(tmp_path_factory, tiny_splits):
    """Finished tiny L1 sweeps both ways (2 seeds, one ratio), and their folders."""
    folders = {}
    for name, (source, target) in (("ab", ("flair", "t1")), ("ba", ("t1", "flair"))):
        cfg = tiny_config("l1", target_tumor_ratios=(0.5,), seeds=2, steps=3, source=source,
                          target=target, member_axis="loop")
        folders[name] = tmp_path_factory.mktemp(f"l1_{name}")
        train_sweep(cfg, folders[name], tiny_splits, progress=False)
    return folders


def _generator(folder, seed_index):
    states = RunFolder.existing(folder).restore_final()
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[seed_index], states.generator["ab"])


def test_each_member_starts_from_the_translator_of_its_seed(l1_runs, tiny_splits, tmp_path):
    cfg = tiny_config("cyclegan", target_tumor_ratios=(0.0, 1.0), seeds=2, steps=4,
                      member_axis="loop",
                      init_from=(("ab", str(l1_runs["ab"])), ("ba", str(l1_runs["ba"]))))
    start = train_sweep(cfg, tmp_path / "cg", tiny_splits, progress=False, stop_after=0).states
    for m, member in enumerate(cfg.members):
        for name in ("ab", "ba"):
            mine = jax.tree_util.tree_map(lambda x: np.asarray(x)[m], start.generator[name])
            chex.assert_trees_all_equal(mine, _generator(l1_runs[name], member.seed))
    # the seeds' translators differ, so the test could tell a wrong pick
    assert not np.allclose(*(jax.tree_util.tree_leaves(_generator(l1_runs["ab"], s))[0]
                             for s in (0, 1)))
    # a fresh run's discriminators: the same as a run that starts at random
    fresh = train_sweep(tiny_config("cyclegan", target_tumor_ratios=(0.0, 1.0), seeds=2,
                                    steps=4, member_axis="loop"),
                        tmp_path / "fresh", tiny_splits, progress=False, stop_after=0).states
    chex.assert_trees_all_equal(start.discriminator, fresh.discriminator)
    # and training goes on from there, resumably
    done = train_sweep(cfg, tmp_path / "cg", tiny_splits, progress=False)
    assert int(done.states.step[0]) == 4


def test_a_source_that_translates_the_other_way_is_refused(l1_runs, tiny_splits, tmp_path):
    cfg = tiny_config("cyclegan", target_tumor_ratios=(0.5,), seeds=1, steps=2,
                      init_from=(("ab", str(l1_runs["ba"])),))
    with pytest.raises(UsageError, match="translates t1 -> flair; generator ab translates "
                                         "flair -> t1"):
        train_sweep(cfg, tmp_path / "cg", tiny_splits, progress=False)


def test_a_seed_the_source_lacks_is_refused(l1_runs, tiny_splits, tmp_path):
    cfg = tiny_config("cyclegan", target_tumor_ratios=(0.5,), seeds=3, steps=2,
                      init_from=(("ab", str(l1_runs["ab"])),))
    with pytest.raises(UsageError, match="has no member for ratio=0.5/seed=2"):
        train_sweep(cfg, tmp_path / "cg", tiny_splits, progress=False)


def test_init_from_names_a_generator_the_method_has(tmp_path):
    with pytest.raises(UsageError, match="init_from names generator 'ba'; l1 has ab"):
        tiny_config("l1", init_from=(("ba", str(tmp_path)),))
    assert cli.main(["sweep", "--method", "cyclegan", "--preset", "tiny", "--init-from", "ab",
                     "--workdir", str(tmp_path / "x")]) == 2


def test_evaluators_see_the_states_at_each_multiple_of_their_period(tiny_splits, tmp_path):
    cfg = tiny_config("l1", target_tumor_ratios=(0.5,), seeds=1, steps=6, steps_per_call=1,
                      checkpoint_every=3, member_axis="loop")
    seen = []
    train_sweep(cfg, tmp_path / "run", tiny_splits, progress=False,
                evaluators=[(2, lambda step, states: seen.append((step, int(states.step[0]))))])
    assert seen == [(2, 2), (4, 4), (6, 6)]


def test_pretraining_pairs_come_from_patients_outside_every_target_domain(tiny_splits):
    from jax_translate.data import domains

    train = tiny_splits["train"]
    sizes = domains.DomainSizes(n_source=8, n_target=10, n_holdout=8)
    for seed in range(3):
        pairs = domains.outside_target_pairs(train.label, train.patient_id, 0.5, sizes, seed)
        assert len(pairs) == 8 and train.label[pairs].sum() == 4
        targets = np.concatenate([domains.unpaired_domains(
            train.label, train.patient_id, ratio, sizes, seed)[1] for ratio in (0.0, 0.5, 1.0)])
        assert not set(train.patient_id[pairs]) & set(train.patient_id[targets])


def test_cyclegan_adapt_starts_from_l1_pretrained_outside_the_targets(tiny_splits, tmp_path):
    from jax_translate.jobs import adapt

    cfg = tiny_config("cyclegan-adapt", target_tumor_ratios=(0.0, 1.0), seeds=1, steps=2,
                      member_axis="loop")
    assert cfg.lambda_identity == 0.0  # the method's own default: no identity term
    start = train_sweep(cfg, tmp_path / "adapt", tiny_splits, progress=False,
                        stop_after=0).states
    for name, pre in adapt.pretrain_configs(cfg).items():
        folder = adapt.folder(tmp_path / "adapt", name)
        saved = RunFolder.existing(folder).finished_config()
        assert saved == pre and saved.method == "l1"
        assert saved.domain_protocol == "outside_targets"
        assert (saved.source, saved.target) == (("flair", "t1") if name == "ab"
                                                else ("t1", "flair"))
        for m in range(len(cfg.members)):  # every ratio starts from the same seed's translator
            mine = jax.tree_util.tree_map(lambda x: np.asarray(x)[m], start.generator[name])
            chex.assert_trees_all_equal(mine, _generator(folder, 0))
    done = train_sweep(cfg, tmp_path / "adapt", tiny_splits, progress=False)
    assert int(done.states.step[0]) == 2
