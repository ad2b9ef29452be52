"""Translations whose verdict is known: the cases the quality gate is calibrated on.

A gate says whether a translator renders its input's anatomy with the target's
contrast, whatever its texture. It is calibrated on cases whose answer is known,
made from healthy slices of the validation split (the holdout is read once, for
the numbers reported):

- **pass**: the real target; the same anatomy rendered again with a fresh noise,
  bias field and tissue jitter (what a second scan would show); paired L1 (a
  trained generator, handed in); the pixel lookup E[target | source] fitted on
  the training split, with the target's texture added back (a sample of each
  pixel's conditional: what a perfect posterior sampler of a pixel map renders);
- **fail**: the source as it is; a monotone quantile map of the source onto the
  target's histogram (the source's tissue order in the target's intensities); the
  target rendered with GM and WM swapped; the target's brain pixels shuffled into
  a speckle with its histogram; a copy with a lesion-like disc over 30% of the
  brain; another patient's real target, the slice whose brain outline is most like
  this one's (a plausible image of the right contrast and the wrong anatomy: what a
  translator that ignores its input paints);
- **report**, no verdict fixed in advance: the target blurred by 1 and 1.5 px.

Re-rendering needs the simulator's anatomy, so those cases exist for simulated
patients only (:func:`simulated_variants`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
from scipy import ndimage

from jax_translate.data import simulator, slices
from jax_translate.data.dataset import SliceSet

PASS, FAIL, REPORT = "pass", "fail", "report"
# Every case, its expected verdict, in the order tables list them.
EXPECTED = {
    "real target": PASS,
    "re-rendered": PASS,
    "paired L1": PASS,
    "lookup + texture": PASS,
    "source": FAIL,
    "quantile map": FAIL,
    "GM/WM swapped": FAIL,
    "shuffled": FAIL,
    "painted disc 30%": FAIL,
    "another patient's slice": FAIL,
    "blur 1 px": REPORT,
    "blur 1.5 px": REPORT,
}
DISC_SHARE = 0.30
# The painted disc: the simulated T1 lesion's darkness (its necrosis over WM, 0.18 / 0.75
# of TISSUE_MEANS) at the brain's WM level, and the "slight noise" of the copy.
COPY_NOISE = 0.01
LOOKUP_BINS = 64


# ------------------------------------------------------------ simulated variants


def _rendered_three_ways(rng, fractions, axes_mm, average=None, *, out):
    """A renderer (simulator.simulate_patient's seam) that renders the anatomy three
    ways and returns the first: as the dataset does, with T1's GM and WM means
    swapped (the same noise), and with a fresh noise, bias field and jitter."""
    swapped_means = dict(simulator.TISSUE_MEANS)
    csf, gm, wm, *lesion = swapped_means["t1"]
    swapped_means["t1"] = (csf, wm, gm, *lesion)
    same = copy.deepcopy(rng)  # the dataset's own draws are left untouched
    fresh = np.random.default_rng(copy.deepcopy(rng).integers(1 << 62))
    out["swapped"] = simulator.render(same, fractions, axes_mm, average, swapped_means)
    out["fresh"] = simulator.render(fresh, fractions, axes_mm, average)
    return simulator.render(rng, fractions, axes_mm, average)


def simulated_variants(patients, seed: int = 0, size: str = "64", version: int = 2
                       ) -> dict[str, SliceSet]:
    """SliceSets of simulated ``patients`` (ids, as the dataset numbers them; the
    dataset's own ``seed`` and simulator ``version``): ``"dataset"`` (the slices as the
    dataset holds them), ``"re-rendered"`` (fresh noise, bias field and jitter) and
    ``"GM/WM swapped"`` (T1's GM and WM means exchanged). The same slices in each."""
    parts: dict[str, list[SliceSet]] = {"dataset": [], "re-rendered": [], "GM/WM swapped": []}
    for patient in patients:
        extra: dict = {}
        volume = simulator.simulate_patient(
            int(patient), seed, simulator.GEOMETRIES[size], version=version,
            renderer=functools.partial(_rendered_three_ways, out=extra))
        shape = volume.t1.shape
        for name, images in (("dataset", None), ("re-rendered", extra["fresh"]),
                             ("GM/WM swapped", extra["swapped"])):
            modalities = {m: getattr(volume, m) if images is None else images[m].reshape(shape)
                          for m in simulator.MODALITIES}
            examples = [e for _, e in slices.volume_examples(
                int(patient), modalities, volume.tumor, volume.brain, volume.tissue_shares)]
            parts[name].append(_slice_set(examples))
    return {name: _concat(sets) for name, sets in parts.items()}


def _slice_set(examples: list[dict]) -> SliceSet:
    stack = lambda key, dtype=None: np.asarray([e[key] for e in examples], dtype)  # noqa: E731
    return SliceSet(flair=stack("flair"), t1=stack("t1"), t2=stack("t2"), t1c=stack("t1c"),
                    tumor_mask=stack("tumor_mask"), brain_mask=stack("brain_mask"),
                    tissue=stack("tissue"), label=stack("label", np.int32),
                    patient_id=stack("patient_id", np.int32),
                    slice_index=stack("slice_index", np.int32))


def _concat(sets: list[SliceSet]) -> SliceSet:
    return SliceSet(**{f.name: np.concatenate([getattr(s, f.name) for s in sets])
                       for f in dataclasses.fields(SliceSet)})


# ----------------------------------------------------------------- pixel maps


@dataclasses.dataclass(frozen=True)
class PixelLookup:
    """E[target | source] and the target's spread around it, per bin of the source's
    intensity, fitted on brain pixels of paired training slices."""

    edges: np.ndarray  # (B + 1,)
    mean: np.ndarray   # (B,)
    std: np.ndarray    # (B,)

    @classmethod
    def fit(cls, train: SliceSet, source: str = "flair", target: str = "t1",
            bins: int = LOOKUP_BINS) -> "PixelLookup":
        brain = train.brain_mask > 0
        x, y = train.image(source)[brain], train.image(target)[brain]
        edges = np.quantile(x, np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
        count = np.maximum(np.bincount(which, minlength=bins), 1)
        mean = np.bincount(which, y, bins) / count
        std = np.sqrt(np.maximum(np.bincount(which, y * y, bins) / count - mean**2, 0.0))
        return cls(edges, mean, std)

    def __call__(self, source_images: np.ndarray, brain: np.ndarray,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        """The lookup of each brain pixel; with ``rng``, plus a draw of N(0, std) of its
        bin: the target's texture, added back pixel by pixel."""
        which = np.clip(np.searchsorted(self.edges, source_images, side="right") - 1, 0,
                        len(self.mean) - 1)
        out = self.mean[which]
        if rng is not None:
            out = out + self.std[which] * rng.standard_normal(out.shape)
        return np.where(brain > 0, np.clip(out, 0, 1), 0.0).astype(np.float32)


def quantile_map(train: SliceSet, source_images: np.ndarray, brain: np.ndarray,
                 source: str = "flair", target: str = "t1") -> np.ndarray:
    """Each brain pixel of ``source_images`` sent to the target intensity of the same
    quantile (histograms of the training split's brain pixels): monotone, so the
    source's tissue order survives in the target's intensities."""
    mask = train.brain_mask > 0
    levels = np.linspace(0, 1, 1001)
    x_q = np.quantile(train.image(source)[mask], levels)
    y_q = np.quantile(train.image(target)[mask], levels)
    mapped = np.interp(source_images, x_q, y_q)
    return np.where(brain > 0, mapped, 0.0).astype(np.float32)


def shuffled(real: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image's brain pixels in a random order: its histogram, no anatomy."""
    out = np.array(real, np.float32)
    for i in range(len(out)):
        inside = np.flatnonzero(brain[i].ravel() > 0)
        flat = out[i].reshape(-1)
        flat[inside] = flat[rng.permutation(inside)]
    return out


def painted_disc(real: np.ndarray, brain: np.ndarray, rng: np.random.Generator,
                 share: float = DISC_SHARE, noise: float = COPY_NOISE) -> np.ndarray:
    """A copy with slight noise and, in each image, a disc of lesion-like darkness
    (T1 necrosis against WM) over ``share`` of the brain, centred on the brain's
    centre of mass."""
    out = np.array(real, np.float32) + noise * rng.standard_normal(np.shape(real))
    rows, cols = np.indices(real.shape[1:])
    for i in range(len(out)):
        inside = brain[i] > 0
        if not inside.any():
            continue
        cy, cx = ndimage.center_of_mass(inside)
        distance = np.hypot(rows - cy, cols - cx)[inside]
        radius = np.quantile(distance, share)  # the disc covers `share` of the brain
        wm = np.quantile(real[i][inside], 0.9)
        disc = inside & (np.hypot(rows - cy, cols - cx) <= radius)
        means = simulator.TISSUE_MEANS["t1"]
        out[i][disc] = wm * means[5] / means[2]
    return np.where(brain > 0, np.clip(out, 0, 1), 0.0).astype(np.float32)


def another_patients(real: np.ndarray, brain: np.ndarray, patient_id: np.ndarray) -> np.ndarray:
    """Each image replaced by another patient's: the slice whose brain outline overlaps
    its own best (Dice), inside its own brain; where the other brain does not reach,
    the other slice's median brain intensity."""
    mask = np.asarray(brain) > 0
    flat = mask.reshape(len(mask), -1).astype(np.float32)
    sizes = flat.sum(1)
    dice = 2 * (flat @ flat.T) / np.maximum(sizes[:, None] + sizes[None, :], 1)
    out = np.zeros(np.shape(real), np.float32)
    for i in range(len(out)):
        others = np.flatnonzero(patient_id != patient_id[i])
        if not len(others):
            raise ValueError("another patient's slice needs slices of two patients or more")
        j = others[np.argmax(dice[i, others])]
        filled = np.where(mask[j], real[j], np.median(real[j][mask[j]]))
        out[i] = np.where(mask[i], filled, 0.0)
    return out


def blurred(real: np.ndarray, brain: np.ndarray, sigma: float) -> np.ndarray:
    """The target blurred by a Gaussian of ``sigma`` px within the brain."""
    from jax_translate.evaluation.quality import blur_in_mask

    return blur_in_mask(real, brain, sigma).astype(np.float32)


def cases(variants: dict[str, SliceSet], train: SliceSet, seed: int = 0,
          paired_l1: np.ndarray | None = None, source: str = "flair", target: str = "t1"
          ) -> dict[str, np.ndarray]:
    """Every case of `EXPECTED` as translations of ``variants["dataset"]``'s healthy
    slices (:func:`simulated_variants`), ``paired_l1`` (its translations of those
    slices) if given; fitted maps are fitted on ``train``."""
    rng = np.random.default_rng(seed)
    data = variants["dataset"]
    healthy = data.label == slices.HEALTHY
    real, brain = data.image(target)[healthy], data.brain_mask[healthy]
    source_images = data.image(source)[healthy]
    out = {
        "real target": real,
        "re-rendered": variants["re-rendered"].image(target)[healthy],
        "paired L1": paired_l1,
        "lookup + texture": PixelLookup.fit(train, source, target)(source_images, brain, rng),
        "source": source_images,
        "quantile map": quantile_map(train, source_images, brain, source, target),
        "GM/WM swapped": variants["GM/WM swapped"].image(target)[healthy],
        "shuffled": shuffled(real, brain, rng),
        "painted disc 30%": painted_disc(real, brain, rng),
        "another patient's slice": another_patients(real, brain, data.patient_id[healthy]),
        "blur 1 px": blurred(real, brain, 1.0),
        "blur 1.5 px": blurred(real, brain, 1.5),
    }
    return {name: images for name, images in out.items() if images is not None}
