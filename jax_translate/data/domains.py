"""Biased domains: which slices each member of a sweep trains and is tested on.

The paper's protocol (docs/paper_protocol.md): an unpaired source domain (Flair)
at 50% tumor and a target domain (T1) whose tumor share is the bias setting;
for paired methods, the same slices as (Flair, T1) pairs at that share; and a
holdout set at 50% tumor from holdout patients. Counts are exact:
``round(ratio * n)`` tumor slices.

Two protocols for the unpaired domains. Ours (:func:`unpaired_domains`,
"disjoint") takes source and target from disjoint patients and redraws the
source for every ratio. The reference code's (:func:`reference_domains`)
draws the source once per seed, the same for every ratio, and both domains
from all training patients, so they may share patients and even slices.
Paired domains are the same in both. A third, for paired methods only
("outside_targets", :func:`outside_target_pairs`), draws the pairs from the
source group's patients, outside every target domain of the seed: a
translator's pretraining before it is adapted to a biased site.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jax_translate.data.slices import HEALTHY, TUMOR
from jax_translate.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DomainSizes:
    n_source: int = 700
    n_target: int = 700
    n_holdout: int = 350


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0:
        raise UsageError(f"target tumor ratio {ratio} is outside [0, 1]")
    return ratio


def _draw(labels: np.ndarray, candidates: np.ndarray, n_tumor: int, n_healthy: int,
          rng: np.random.Generator, what: str) -> np.ndarray:
    """Exactly n_tumor tumor and n_healthy healthy indices from candidates, sorted."""
    picked = []
    for label, count, name in ((TUMOR, n_tumor, "tumor"), (HEALTHY, n_healthy, "healthy")):
        pool = candidates[labels[candidates] == label]
        if count > len(pool):
            raise UsageError(
                f"{what} needs {count} {name} slices but only {len(pool)} exist; "
                "ask for fewer slices or simulate more patients")
        picked.append(rng.choice(pool, size=count, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int32)


def split_patients(labels: np.ndarray, patient_id: np.ndarray, sizes: DomainSizes,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint source and target patient groups, independent of the ratio.

    Patients are shuffled by ``seed`` and given to the source group until it
    holds enough tumor and healthy slices for a 50% source domain; the rest
    form the target group. The split does not depend on the ratio, so every
    bias setting of a seed draws its target from the same patients.
    """
    rng = np.random.default_rng([seed, 1])
    patients = rng.permutation(np.unique(patient_id))
    need_tumor = round(0.5 * sizes.n_source)
    need_healthy = sizes.n_source - need_tumor
    tumor = healthy = 0
    for cut, patient in enumerate(patients, start=1):
        own = labels[patient_id == patient]
        tumor += int((own == TUMOR).sum())
        healthy += int((own == HEALTHY).sum())
        if tumor >= need_tumor and healthy >= need_healthy:
            return np.sort(patients[:cut]), np.sort(patients[cut:])
    raise UsageError(
        f"the source domain needs {need_tumor} tumor and {need_healthy} healthy slices "
        f"but all training patients together have {tumor} and {healthy}")


def unpaired_domains(labels: np.ndarray, patient_id: np.ndarray, target_tumor_ratio: float,
                     sizes: DomainSizes = DomainSizes(), seed: int = 0,
                     split=split_patients) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) indices into the training split, from disjoint patients.

    ``split(labels, patient_id, sizes, seed)`` gives the (source, target)
    patient groups: :func:`split_patients` unless an experiment hands in another.
    """
    ratio = check_ratio(target_tumor_ratio)
    source_patients, target_patients = split(labels, patient_id, sizes, seed)
    rng = np.random.default_rng([seed, 2, round(ratio * 1_000_000)])
    in_source = np.flatnonzero(np.isin(patient_id, source_patients))
    in_target = np.flatnonzero(np.isin(patient_id, target_patients))
    n_source_tumor = round(0.5 * sizes.n_source)
    n_target_tumor = round(ratio * sizes.n_target)
    source = _draw(labels, in_source, n_source_tumor, sizes.n_source - n_source_tumor,
                   rng, "the source domain")
    target = _draw(labels, in_target, n_target_tumor, sizes.n_target - n_target_tumor,
                   rng, f"the target domain at ratio {ratio:g}")
    return source, target


def reference_domains(labels: np.ndarray, target_tumor_ratio: float,
                      sizes: DomainSizes = DomainSizes(), seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) indices as the reference code built them.

    The source (50% tumor) depends on the seed only, not on the ratio; both
    domains are drawn from every training slice and may overlap.
    """
    ratio = check_ratio(target_tumor_ratio)
    everyone = np.arange(len(labels))
    n_source_tumor = round(0.5 * sizes.n_source)
    n_target_tumor = round(ratio * sizes.n_target)
    source = _draw(labels, everyone, n_source_tumor, sizes.n_source - n_source_tumor,
                   np.random.default_rng([seed, 5]), "the source domain")
    target = _draw(labels, everyone, n_target_tumor, sizes.n_target - n_target_tumor,
                   np.random.default_rng([seed, 6, round(ratio * 1_000_000)]),
                   f"the target domain at ratio {ratio:g}")
    return source, target


def paired_domain(labels: np.ndarray, target_tumor_ratio: float,
                  sizes: DomainSizes = DomainSizes(), seed: int = 0) -> np.ndarray:
    """Indices of (Flair, T1) training pairs whose tumor share is the ratio."""
    ratio = check_ratio(target_tumor_ratio)
    rng = np.random.default_rng([seed, 3, round(ratio * 1_000_000)])
    n_tumor = round(ratio * sizes.n_target)
    return _draw(labels, np.arange(len(labels)), n_tumor, sizes.n_target - n_tumor,
                 rng, f"the paired domain at ratio {ratio:g}")


def outside_target_pairs(labels: np.ndarray, patient_id: np.ndarray, target_tumor_ratio: float,
                         sizes: DomainSizes = DomainSizes(), seed: int = 0) -> np.ndarray:
    """Indices of (source, target) training pairs from patients outside every target
    domain of ``seed``: its source group (:func:`split_patients`), ``sizes.n_source``
    pairs whose tumor share is the ratio. What a translator is pretrained on before it
    is adapted to a biased site (``cyclegan-adapt``): paired data the site's target
    images never come from."""
    ratio = check_ratio(target_tumor_ratio)
    source_patients, _ = split_patients(labels, patient_id, sizes, seed)
    rng = np.random.default_rng([seed, 7, round(ratio * 1_000_000)])
    n_tumor = round(ratio * sizes.n_source)
    return _draw(labels, np.flatnonzero(np.isin(patient_id, source_patients)), n_tumor,
                 sizes.n_source - n_tumor, rng,
                 f"the pretraining pairs at ratio {ratio:g} (patients outside every target)")


def holdout_indices(labels: np.ndarray, sizes: DomainSizes = DomainSizes(),
                    seed: int = 0) -> np.ndarray:
    """The test set: 50% tumor slices of the holdout split."""
    rng = np.random.default_rng([seed, 4])
    n_tumor = round(0.5 * sizes.n_holdout)
    return _draw(labels, np.arange(len(labels)), n_tumor, sizes.n_holdout - n_tumor,
                 rng, "the holdout set")


def holdout_set(cfg, holdout):
    """The holdout slices every member of a sweep config is evaluated on (a SliceSet)."""
    sizes = DomainSizes(cfg.n_source, cfg.n_target, cfg.n_holdout)
    return holdout.take(holdout_indices(holdout.label, sizes, seed=cfg.data_seed))
