"""Simulated brain-MRI patients with one tumor each: the default data.

The paper used BRATS2013's synthetic patients (TumorSim). We make our own
from the MNI152 template of :mod:`jax_translate.data.anatomy`, with numpy and
scipy only, so the project needs no download. A patient is the template under
a random affine and a smooth elastic warp, pushed aside by a tumor (mass
effect), with a necrotic centre, an enhancing rim and an edema halo, imaged
in Flair, T1, T2 and T1c with partial volumes, a bias field and Rician noise.

Everything is computed on the output grid: each output voxel is mapped back
to the template once (affine, then mass effect, then elastic warp) and every
tissue map is sampled with one ``scipy.ndimage.map_coordinates`` call, so a
64 x 64 patient costs a fraction of a second.

Image rows run anterior (top) to posterior, columns run from the patient's
left to right (x of the RAS template), slices inferior to superior, 1 mm
apart. The same (seed, patient) gives the same patient in every geometry.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage, special
from scipy.spatial.transform import Rotation

from jax_translate.data.anatomy import blurred_anatomy, brain_center_mm, tumor_sites_mm

MODALITIES = ("flair", "t1", "t2", "t1c")
# Labels of PatientVolume.tissue; the tumor parts follow BraTS.
BACKGROUND, CSF, GREY_MATTER, WHITE_MATTER, EDEMA, ENHANCING, NECROTIC = range(7)
TISSUE_NAMES = ("background", "csf", "gm", "wm", "edema", "enhancing", "necrotic")


@dataclasses.dataclass(frozen=True)
class SliceGeometry:
    """The in-plane grid of the axial slices; pixels are square."""

    height: int  # rows, anterior -> posterior
    width: int  # columns, left -> right
    hemisphere: bool  # only the right hemisphere, midline at the left edge
    fov_mm: float = 224.0  # anterior-posterior extent of the image

    @property
    def pixel_mm(self) -> float:
        return self.fov_mm / self.height

    @property
    def blur_mm(self) -> float:
        """In-plane anti-aliasing blur: a Gaussian about one pixel wide
        (FWHM), less the template's own 1 mm."""
        return 0.42 * float(np.sqrt(max(self.pixel_mm ** 2 - 1.0, 0.0)))


GEOMETRIES = {
    "64": SliceGeometry(64, 64, False),
    "128": SliceGeometry(128, 128, False),
    # The paper's crop: 224 x 112 mm of the right hemisphere.
    "256x128": SliceGeometry(256, 128, True),
}

# The template brain spans z = -72..82 mm; the margins leave room for a
# larger, tilted, shifted patient. Slices 1 mm apart, like BraTS volumes.
SLICE_MM = 1.0
Z_RANGE_MM = (-80.0, 100.0)

# Mean intensity per tissue in the order csf, gm, wm, edema, enhancing,
# necrotic (arbitrary units). Chosen for the contrasts radiologists expect:
# T1 WM > GM > CSF with a dark tumor; Flair suppresses CSF and lights up
# edema and tumor; T2 is bright for fluid; T1c is T1 with an enhancing rim.
TISSUE_MEANS = {
    "flair": (0.10, 0.52, 0.37, 0.80, 0.70, 0.60),
    "t1": (0.20, 0.50, 0.75, 0.34, 0.38, 0.18),
    "t2": (0.90, 0.50, 0.35, 0.80, 0.60, 0.85),
    "t1c": (0.20, 0.50, 0.75, 0.34, 0.95, 0.18),
}
INTENSITY_JITTER = 0.05  # per patient, tissue and modality, uniform +-
BIAS_SD, BIAS_LIMIT = 0.05, 0.12  # log of the multiplicative bias field
NOISE_SIGMA = 0.02  # of the modality's scale
# Every modality is divided by the largest noiseless value it can take, a
# fixed constant, as the paper divides by each modality's global maximum
# (without letting one patient's brightest voxel rescale its whole volume).
MODALITY_SCALE = {m: max(means) * (1 + INTENSITY_JITTER) * np.exp(BIAS_LIMIT)
                  for m, means in TISSUE_MEANS.items()}

# Random fields are Gaussian bumps on a fixed lattice of control points over
# this patient-space box (mm, x y z), so their random draws, and hence the
# patient, do not depend on the output geometry.
_FIELD_BOX = ((-120.0, 120.0), (-150.0, 120.0), (-90.0, 110.0))
ELASTIC_SPACING_MM, ELASTIC_SD_MM = 32.0, 2.5
BIAS_SPACING_MM = 64.0
# The edema's radius is scaled by EDEMA_REACH[0] + EDEMA_REACH[1] * P(WM).
EDEMA_REACH = (0.75, 0.45)
MAX_REACH = sum(EDEMA_REACH)


@dataclasses.dataclass(frozen=True, eq=False)
class PatientVolume:
    """One simulated patient; every array is (Z, H, W)."""

    flair: np.ndarray  # float32 in [0, 1]
    t1: np.ndarray
    t2: np.ndarray
    t1c: np.ndarray
    tumor: np.ndarray  # uint8 whole tumor: edema + enhancing + necrotic
    brain: np.ndarray  # uint8, tumor included
    tissue: np.ndarray  # uint8 labels, see TISSUE_NAMES
    # Where the tumor core's centre lies, as fractional (z, row, column);
    # the few-mm elastic warp is left out.
    tumor_center: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class _Blob:
    """An irregular ball: an ellipsoid whose radius wobbles with direction."""

    center: np.ndarray  # (3,) mm
    radius: float
    stretch: np.ndarray  # (3, 3), maps offsets into the unit-ball frame
    lobe_directions: np.ndarray  # (K, 3) unit vectors
    lobe_frequencies: np.ndarray  # (K,)
    lobe_phases: np.ndarray  # (K,)
    lobe_amplitudes: np.ndarray  # (K,)

    def fraction(self, points: np.ndarray, reach: np.ndarray | None = None,
                 edge_mm: float = 1.5) -> np.ndarray:
        """Soft membership (N,) of points (3, N); 1/2 on the surface.

        reach (N,), in [0, MAX_REACH], scales the radius point by point.
        """
        # Only points that can be inside are worth the trigonometry.
        extent = (self.radius * MAX_REACH * (1.0 + self.lobe_amplitudes.sum())
                  / np.linalg.svd(self.stretch, compute_uv=False).min() + 8 * edge_mm)
        near = np.all((points >= (self.center - extent)[:, None])
                      & (points <= (self.center + extent)[:, None]), axis=0)
        result = np.zeros(points.shape[1], np.float32)
        result[near] = self._fraction(
            points[:, near], 1.0 if reach is None else reach[near], edge_mm)
        return result

    def _fraction(self, points: np.ndarray, reach, edge_mm: float) -> np.ndarray:
        offsets = self.stretch @ (points - self.center[:, None].astype(np.float32))
        distance = np.sqrt(np.einsum("in,in->n", offsets, offsets))
        directions = offsets / np.maximum(distance, 1e-3)
        # Low frequencies of the direction only, so the surface has a few
        # lobes, not spikes.
        angles = (self.lobe_frequencies[:, None] * np.pi) * (self.lobe_directions @ directions)
        wobble = self.lobe_amplitudes @ np.cos(angles + self.lobe_phases[:, None])
        surface = self.radius * (1.0 + wobble) * reach
        return special.expit((surface - distance) / edge_mm).astype(np.float32)


def _draw_blob(rng, center, radius, roughness, n_lobes=5) -> _Blob:
    directions = rng.standard_normal((n_lobes, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    orientation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = rng.uniform(0.8, 1.25, 3)
    return _Blob(
        center=np.asarray(center, np.float64), radius=float(radius),
        stretch=(orientation @ np.diag(1.0 / axes) @ orientation.T).astype(np.float32),
        lobe_directions=directions.astype(np.float32),
        lobe_frequencies=rng.uniform(0.5, 2.5, n_lobes).astype(np.float32),
        lobe_phases=rng.uniform(0.0, 2 * np.pi, n_lobes).astype(np.float32),
        lobe_amplitudes=(rng.uniform(0.0, 2.0, n_lobes) * roughness / n_lobes).astype(np.float32))


def _smooth_fields(rng, n_fields, axes_mm, spacing_mm) -> np.ndarray:
    """n_fields smooth N(0, 1) fields (n, Z, H, W) on the grid zs x ys x xs.

    Sums of separable Gaussian bumps with random weights; each axis' basis
    rows have unit norm, so the field has unit variance everywhere.
    """
    bases = []
    for coords, (low, high) in zip(axes_mm, (_FIELD_BOX[2], _FIELD_BOX[1], _FIELD_BOX[0])):
        knots = np.arange(low - spacing_mm, high + 1.5 * spacing_mm, spacing_mm)
        weights = np.exp(-0.5 * ((coords[:, None] - knots[None, :]) / spacing_mm) ** 2)
        bases.append((weights / np.linalg.norm(weights, axis=1, keepdims=True)).astype(np.float32))
    basis_z, basis_y, basis_x = bases
    weights = rng.standard_normal(
        (n_fields, basis_z.shape[1], basis_y.shape[1], basis_x.shape[1])).astype(np.float32)
    # One axis at a time with tensordot (one BLAS call each, ~10x faster than
    # einsum); each appends its output axis, so the result is (n, z, y, x).
    fields = np.tensordot(weights, basis_z, axes=([1], [1]))  # (n, ky, kx, z)
    fields = np.tensordot(fields, basis_y, axes=([1], [1]))  # (n, kx, z, y)
    return np.tensordot(fields, basis_x, axes=([1], [1]))  # (n, z, y, x)


def _push_from(points, center, push_radius_mm, reach_mm) -> np.ndarray:
    """Where tissue at points (3, N) came from before a mass grew at center.

    A ball of radius a grown in incompressible tissue moves tissue at radius
    r_before to r = cbrt(r_before^3 + a^3); inverted, the source lies at
    cbrt(r^3 - a^3). The displacement is tapered with distance (the skull
    and the rest of the brain resist). The source radius still grows with r,
    so the warp never folds.
    """
    offsets = points - center[:, None].astype(np.float32)
    radius = np.sqrt(np.einsum("in,in->n", offsets, offsets))
    source = np.cbrt(np.maximum(radius ** 3 - np.float32(push_radius_mm) ** 3, 0.0))
    taper = np.exp(-((radius / np.float32(reach_mm)) ** 2))
    moved = radius - (radius - source) * taper
    return center[:, None].astype(np.float32) + offsets * (moved / np.maximum(radius, 1e-3))


def output_axes_mm(geometry: SliceGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-space mm of the slices (z), rows (y) and columns (x)."""
    center = brain_center_mm()
    pixel = geometry.pixel_mm
    z = np.arange(Z_RANGE_MM[0], Z_RANGE_MM[1], SLICE_MM)
    y = center[1] + geometry.fov_mm / 2 - (np.arange(geometry.height) + 0.5) * pixel
    x_start = 0.0 if geometry.hemisphere else -geometry.width * pixel / 2
    x = x_start + (np.arange(geometry.width) + 0.5) * pixel
    return z, y, x


@dataclasses.dataclass(frozen=True)
class _Tumor:
    whole: _Blob  # edema and everything inside it
    core: _Blob  # enhancing rim and necrosis
    necrotic: _Blob
    push_radius_mm: float  # of the ball that pushes tissue aside
    push_reach_mm: float  # how far the push reaches


def _draw_tumor(rng: np.random.Generator) -> _Tumor:
    """One tumor in the unposed (template-aligned) frame.

    The parts nest (necrosis inside the enhancing core inside the edema)
    around offset centres, each an irregular ball.
    """
    sites = tumor_sites_mm()
    whole_center = sites[rng.integers(len(sites))] + rng.uniform(-1.0, 1.0, 3)
    whole_radius = rng.uniform(15.0, 35.0)
    core_radius = whole_radius * rng.uniform(0.4, 0.7)
    necrotic_radius = core_radius * rng.uniform(0.3, 0.6)
    core_center = whole_center + _random_direction(rng) * rng.uniform(0.0, 0.2) * whole_radius
    necrotic_center = core_center + _random_direction(rng) * rng.uniform(0.0, 0.2) * core_radius
    return _Tumor(
        whole=_draw_blob(rng, whole_center, whole_radius, roughness=0.35),
        core=_draw_blob(rng, core_center, core_radius, roughness=0.25),
        necrotic=_draw_blob(rng, necrotic_center, necrotic_radius, roughness=0.2),
        push_radius_mm=float(core_radius * rng.uniform(0.8, 1.1)),
        push_reach_mm=2.5 * whole_radius)


def simulate_patient(patient_index: int, seed: int, geometry: SliceGeometry, *,
                     mass_effect: bool = True) -> PatientVolume:
    """Simulates one patient; a pure function of (seed, patient_index).

    mass_effect=False keeps the tumor but does not push tissue aside (for
    tests and ablations); every random draw stays the same.
    """
    anatomy = blurred_anatomy(round(geometry.blur_mm, 3))
    rng = np.random.default_rng([seed, patient_index])
    axes_mm = output_axes_mm(geometry)
    shape = tuple(len(a) for a in axes_mm)
    z, y, x = np.meshgrid(*axes_mm, indexing="ij")
    patient_points = np.stack([x.ravel(), y.ravel(), z.ravel()]).astype(np.float32)

    # Head pose and size, about the brain centre: mostly in-plane rotation,
    # a little tilt (which changes the slicing angle).
    center = brain_center_mm()
    angles = rng.uniform(-1.0, 1.0, 3) * np.array([3.0, 3.0, 8.0])
    linear = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() @ np.diag(
        rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, 3))
    shift = rng.uniform(-4.0, 4.0, 3)
    unposed = np.linalg.inv(linear).astype(np.float32) @ (
        patient_points - (center + shift)[:, None].astype(np.float32))
    unposed += center[:, None].astype(np.float32)
    elastic = ELASTIC_SD_MM * _smooth_fields(rng, 3, axes_mm, ELASTIC_SPACING_MM)
    tumor = _draw_tumor(rng)

    # Back to the template: undo the mass effect, then the elastic warp.
    source = unposed
    if mass_effect:
        source = _push_from(unposed, tumor.core.center, tumor.push_radius_mm,
                            tumor.push_reach_mm)
    voxels = anatomy.mm_to_voxel(source + elastic.reshape(3, -1))
    # Half the output grid maps outside the brain's box: no need to sample.
    low, high = anatomy.voxel_box
    in_box = np.flatnonzero(np.all((voxels > (low - 1)[:, None])
                                   & (voxels < (high + 1)[:, None]), axis=0))
    csf, gm, wm = np.zeros((3, source.shape[1]), np.float32)
    for tissue_map, sampled in zip((anatomy.csf, anatomy.gm, anatomy.wm), (csf, gm, wm)):
        sampled[in_box] = ndimage.map_coordinates(
            tissue_map, voxels[:, in_box], order=1, output=np.float32, mode="constant",
            cval=0.0, prefilter=False)
    # Linear interpolation is linear, so this is the warped brain mask.
    brain_fraction = csf + gm + wm

    # Edema spreads along white-matter tracts and much less into grey matter,
    # which gives it its fingers; the solid parts ignore the anatomy.
    whole = tumor.whole.fraction(unposed, reach=EDEMA_REACH[0] + EDEMA_REACH[1] * wm)
    core = np.minimum(tumor.core.fraction(unposed), whole)
    necrotic = np.minimum(tumor.necrotic.fraction(unposed), core)
    tissue = _tissue_labels(csf, gm, wm, whole, core, necrotic).reshape(shape)

    fractions = dict(csf=csf, gm=gm, wm=wm, brain=brain_fraction, whole=whole,
                     edema=whole - core, enhancing=core - necrotic, necrotic=necrotic)
    images = {modality: image.reshape(shape)
              for modality, image in _render(rng, fractions, axes_mm).items()}
    return PatientVolume(
        **images, tumor=(tissue >= EDEMA).astype(np.uint8),
        brain=(tissue > BACKGROUND).astype(np.uint8), tissue=tissue,
        tumor_center=_to_index(linear @ (tumor.core.center - center) + center + shift,
                               geometry))


def _tissue_labels(csf, gm, wm, whole, core, necrotic) -> np.ndarray:
    """Most probable tissue, overwritten by the tumor parts inside the brain."""
    tissue = np.where(wm >= np.maximum(gm, csf), WHITE_MATTER,
                      np.where(gm >= csf, GREY_MATTER, CSF)).astype(np.uint8)
    for label, fraction in ((EDEMA, whole), (ENHANCING, core), (NECROTIC, necrotic)):
        tissue[fraction >= 0.5] = label
    # The tumor is clipped to the brain with everything else.
    tissue[csf + gm + wm < 0.5] = BACKGROUND
    return tissue


def _render(rng, fractions: dict[str, np.ndarray], axes_mm) -> dict[str, np.ndarray]:
    """Flat images in [0, 1] of every modality from tissue fractions (N,)."""
    jitter = rng.uniform(1 - INTENSITY_JITTER, 1 + INTENSITY_JITTER, (len(MODALITIES), 6))
    log_bias = np.clip(BIAS_SD * _smooth_fields(rng, len(MODALITIES), axes_mm, BIAS_SPACING_MM),
                       -BIAS_LIMIT, BIAS_LIMIT).reshape(len(MODALITIES), -1)
    # Signal and noise only where there is (some) brain: the background stays
    # 0, as in skull-stripped BraTS. The noise is still drawn for every voxel
    # so that it does not depend on the anatomy.
    inside = np.flatnonzero(fractions["brain"] > 0.01)
    f = {name: fraction[inside] for name, fraction in fractions.items()}
    n_voxels = fractions["brain"].size
    images = {}
    for m, modality in enumerate(MODALITIES):
        means = (np.asarray(TISSUE_MEANS[modality]) * jitter[m]).astype(np.float32)
        healthy = f["csf"] * means[0] + f["gm"] * means[1] + f["wm"] * means[2]
        lesion = f["edema"] * means[3] + f["enhancing"] * means[4] + f["necrotic"] * means[5]
        # Partial volumes: the tumor replaces its share of each voxel's brain.
        signal = (1.0 - f["whole"]) * healthy + f["brain"] * lesion
        signal *= np.exp(log_bias[m, inside])
        # Rician: the magnitude of a complex signal with Gaussian noise.
        sigma = np.float32(NOISE_SIGMA * MODALITY_SCALE[modality])
        real = signal + sigma * rng.standard_normal(n_voxels, dtype=np.float32)[inside]
        imaginary = sigma * rng.standard_normal(n_voxels, dtype=np.float32)[inside]
        image = np.zeros(n_voxels, np.float32)
        image[inside] = np.clip(np.sqrt(real * real + imaginary * imaginary)
                                / np.float32(MODALITY_SCALE[modality]), 0.0, 1.0)
        images[modality] = image
    return images


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    direction = rng.standard_normal(3)
    return direction / np.linalg.norm(direction)


def _to_index(point_mm: np.ndarray, geometry: SliceGeometry) -> tuple[float, float, float]:
    """Patient-space mm (x, y, z) -> fractional (slice, row, column)."""
    z, y, x = output_axes_mm(geometry)
    pixel = geometry.pixel_mm
    return (float((point_mm[2] - z[0]) / SLICE_MM), float((y[0] - point_mm[1]) / pixel),
            float((point_mm[0] - x[0]) / pixel))
