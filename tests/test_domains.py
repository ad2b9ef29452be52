"""The biased-domain sampler: exact counts, disjoint patients, clear errors."""

import numpy as np
import pytest

from jax_translate.data import domains, slices
from jax_translate.errors import UsageError


def fake_split(n_patients=30, per_patient=60, tumor_per_patient=25):
    labels = np.tile(np.r_[np.ones(tumor_per_patient), np.zeros(per_patient - tumor_per_patient)],
                     n_patients).astype(np.int32)
    patient_id = np.repeat(np.arange(n_patients), per_patient).astype(np.int32)
    return labels, patient_id


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.33, 0.5, 0.97, 1.0])
def test_unpaired_counts_and_disjoint_patients(ratio):
    labels, patient_id = fake_split()
    sizes = domains.DomainSizes(n_source=300, n_target=400, n_holdout=100)
    source, target = domains.unpaired_domains(labels, patient_id, ratio, sizes, seed=3)
    assert len(source) == 300 and len(np.unique(source)) == 300
    assert len(target) == 400 and len(np.unique(target)) == 400
    assert labels[source].sum() == 150
    assert labels[target].sum() == round(ratio * 400)
    assert not set(patient_id[source]) & set(patient_id[target])


def test_patient_groups_do_not_depend_on_ratio():
    labels, patient_id = fake_split()
    sizes = domains.DomainSizes(300, 400, 100)
    groups = [set(patient_id[domains.unpaired_domains(labels, patient_id, r, sizes, 1)[1]])
              for r in (0.0, 1.0)]
    source0 = set(patient_id[domains.unpaired_domains(labels, patient_id, 0.0, sizes, 1)[0]])
    assert groups[0] | groups[1] <= set(range(30)) - source0


def test_seeds_differ_and_repeat():
    labels, patient_id = fake_split()
    sizes = domains.DomainSizes(300, 400, 100)
    a = domains.unpaired_domains(labels, patient_id, 0.4, sizes, seed=1)
    b = domains.unpaired_domains(labels, patient_id, 0.4, sizes, seed=1)
    c = domains.unpaired_domains(labels, patient_id, 0.4, sizes, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("ratio", [0.0, 0.25, 1.0])
def test_paired_counts(ratio):
    labels, _ = fake_split()
    index = domains.paired_domain(labels, ratio, domains.DomainSizes(700, 700, 350), seed=0)
    assert len(index) == 700 and len(np.unique(index)) == 700
    assert labels[index].sum() == round(ratio * 700)


def test_holdout_is_half_tumor():
    labels, _ = fake_split(n_patients=20)
    index = domains.holdout_indices(labels, domains.DomainSizes(700, 700, 351))
    assert len(index) == 351 and labels[index].sum() == round(0.5 * 351)


def test_too_few_slices_says_how_many_exist():
    labels, patient_id = fake_split(n_patients=10, per_patient=20, tumor_per_patient=5)
    with pytest.raises(UsageError, match=r"needs 150 tumor slices but only \d+ exist"):
        domains.paired_domain(labels, 1.0, domains.DomainSizes(150, 150, 10))
    with pytest.raises(UsageError, match="but only"):
        domains.unpaired_domains(labels, patient_id, 1.0, domains.DomainSizes(20, 150, 10))


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_ratio_outside_unit_interval(ratio):
    labels, patient_id = fake_split()
    with pytest.raises(UsageError, match="outside"):
        domains.paired_domain(labels, ratio)


def test_label_rule_is_the_papers():
    brain = np.zeros((20, 20), np.uint8)
    brain[:10] = 1                      # 200 brain, 200 background -> ratio 1.0
    tumor = np.zeros_like(brain)
    tumor.flat[:2] = 1                  # 2 / 200 = 1.0% -> not above 1%: healthy
    assert slices.tumor_label(tumor, brain) == slices.HEALTHY
    tumor.flat[2] = 1                   # 1.5% -> tumor
    assert slices.tumor_label(tumor, brain) == slices.TUMOR
    assert slices.keep_slice(brain)
    small = np.zeros((20, 20), np.uint8)
    small.flat[:92] = 1                 # 92 / 308 = 0.299 -> dropped
    assert not slices.keep_slice(small)
    small.flat[92] = 1                  # 93 / 307 = 0.303 -> kept
    assert slices.keep_slice(small)
