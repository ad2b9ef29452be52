"""How much of the target does a dataset's source hold? The information ceiling of a
dataset and a (source, target) pair of its modalities (Flair -> T1 by default).

A translator maps Flair to T1. If a voxel's T1 is not a function of the Flair
around it (two tissue mixtures with one Flair value and different T1s), no
translator can render it, however well trained, and a fidelity gate set above
that level cannot be passed. So every dataset and pair gets a *ceiling*: the
fidelity r of the best paired map from a k x k source patch to the target pixel
at its centre, fitted on the training split and scored as the gate scores a
translator (`quality.pearson_in_brain`, mean over healthy holdout slices).

The map is a random-feature regression (random ReLU features of the
standardised patch plus the patch itself, ridge least squares): a universal
approximator that fits in seconds on a CPU, so the ceiling is a lower bound
of what a perfectly trained local translator could reach. Next to it:

- the floor, the source itself used as the target (no translation at all;
  1 for the identity task, e.g. Flair -> Flair);
- a quadratic map of the same patch (squares and the centre's cube: the
  estimator of issue 22's first measurement, for comparison: it misses mixtures that a nonlinear map sorts
  out, so it underestimates the ceiling).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jax_translate.evaluation.quality import pearson_in_brain
from jax_translate.images import MODALITY_NAMES
from jax_translate.io_utils import atomic_write_json

PATCH = 3  # the patch the ceiling is stated for
N_FEATURES = 1024
MAX_TRAIN_PIXELS = 200_000
MAX_HOLDOUT_SLICES = 150
# Ridge, relative to the mean diagonal of the features' Gram matrix: enough to keep
# the float32 Gram of ~1000 overlapping random features well posed.
RIDGE = 1e-3


@dataclasses.dataclass(frozen=True)
class Ceiling:
    patch: int             # k of the k x k source patch
    local_map_r: float     # r of the random-feature map of the patch: the ceiling
    quadratic_r: float     # r of a quadratic map of the same patch
    source_r: float        # r of the source itself: the floor
    holdout_slices: int    # healthy holdout slices scored
    train_pixels: int      # brain pixels fitted
    source: str = "flair"
    target: str = "t1"

    def line(self) -> str:
        source, target = MODALITY_NAMES[self.source], MODALITY_NAMES[self.target]
        return (f"information ceiling: r {self.local_map_r:.3f} (best paired map of a "
                f"{self.patch}x{self.patch} {source} patch; quadratic {self.quadratic_r:.3f}), "
                f"floor r {self.source_r:.3f} ({source} as {target}), {self.holdout_slices} "
                "healthy holdout slices")


def _patches(images: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W) -> (N, H, W, k*k) patches, mirrored at the edges."""
    p = k // 2
    padded = np.pad(images, ((0, 0), (p, p), (p, p)), mode="reflect")
    h, w = images.shape[1:]
    return np.stack([padded[:, i:i + h, j:j + w] for i in range(k) for j in range(k)], -1)


class _RandomFeatures:
    def __init__(self, k: int, n_features: int, sample: np.ndarray, rng: np.random.Generator):
        self.mean, self.scale = sample.mean(0), sample.std(0) + 1e-6
        self.weights = (rng.standard_normal((k * k, n_features)) / k).astype(np.float32)
        self.bias = rng.uniform(-2.0, 2.0, n_features).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return np.concatenate([np.maximum(z @ self.weights + self.bias, 0.0), z,
                               np.ones((len(x), 1), np.float32)], axis=1)


def _quadratic(x: np.ndarray) -> np.ndarray:
    centre = x[:, x.shape[1] // 2:x.shape[1] // 2 + 1]
    return np.concatenate([x, x * x, centre ** 3, np.ones((len(x), 1), np.float32)], axis=1)


def _ridge(features: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    gram = (features.T @ features).astype(np.float64)  # float32 BLAS, float64 solve
    gram[np.diag_indices_from(gram)] += ridge * np.mean(np.diag(gram))
    return np.linalg.solve(gram, (features.T @ target).astype(np.float64)).astype(np.float32)


def _predict(featurize, weights, flair: np.ndarray, k: int, chunk: int = 16) -> np.ndarray:
    out = np.empty(flair.shape, np.float32)
    for start in range(0, len(flair), chunk):
        x = _patches(flair[start:start + chunk], k)
        out[start:start + chunk] = (featurize(x.reshape(-1, k * k)) @ weights).reshape(x.shape[:3])
    return out


def information_ceiling(train, holdout, patch: int = PATCH, seed: int = 0,
                        source: str = "flair", target: str = "t1") -> Ceiling:
    """The ceiling of ``source`` -> ``target`` from a dataset's two splits
    (`dataset.SliceSet`s)."""
    rng = np.random.default_rng(seed)
    brain = train.brain_mask > 0
    x = _patches(train.image(source), patch)[brain]
    y = train.image(target)[brain]
    if len(x) > MAX_TRAIN_PIXELS:
        keep = rng.choice(len(x), MAX_TRAIN_PIXELS, replace=False)
        x, y = x[keep], y[keep]
    healthy = np.flatnonzero(holdout.label == 0)[:MAX_HOLDOUT_SLICES]
    if len(healthy) == 0:
        raise ValueError("the holdout split has no healthy slice to score a ceiling on")
    inputs = holdout.image(source)[healthy]
    real, mask = holdout.image(target)[healthy], holdout.brain_mask[healthy]
    score = lambda image: float(np.nanmean(pearson_in_brain(image, real, mask)))  # noqa: E731

    featurize = _RandomFeatures(patch, N_FEATURES, x, rng)
    local = _predict(featurize, _ridge(featurize(x), y, RIDGE), inputs, patch)
    quadratic = _predict(_quadratic, _ridge(_quadratic(x), y, 1e-9), inputs, patch)
    return Ceiling(patch=patch, local_map_r=score(local), quadratic_r=score(quadratic),
                   source_r=score(inputs), holdout_slices=len(healthy), train_pixels=len(x),
                   source=source, target=target)


CEILING_FILE = "ceiling.json"  # Flair -> T1's, in the dataset's folder, next to its records


def ceiling_file(source: str = "flair", target: str = "t1") -> str:
    """The record of a pair; Flair -> T1's keeps the name it had before pairs existed."""
    paper = (source, target) == ("flair", "t1")
    return CEILING_FILE if paper else f"ceiling_{source}_{target}.json"


def recorded(folder: Path, splits: dict, patch: int = PATCH, source: str = "flair",
             target: str = "t1") -> tuple[Ceiling, bool]:
    """The ceiling of ``source`` -> ``target`` recorded with a dataset, measured (and
    recorded) on first use.

    Returns (ceiling, measured_now). A record that cannot be read, or that is
    of another patch, pair or layout, is measured again and replaced: it is
    derived from the dataset, so nothing is lost.
    """
    path = Path(folder) / ceiling_file(source, target)
    try:
        raw = json.loads(path.read_text())
        if "flair_r" in raw:  # written before pairs existed: Flair -> T1's floor
            raw["source_r"] = raw.pop("flair_r")
        found = Ceiling(**raw)
        if (found.patch, found.source, found.target) == (patch, source, target):
            return found, False
    except (OSError, ValueError, TypeError):
        pass
    ceiling = information_ceiling(splits["train"], splits["holdout"], patch, source=source,
                                  target=target)
    atomic_write_json(path, dataclasses.asdict(ceiling))
    return ceiling, True
