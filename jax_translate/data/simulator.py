"""Simulated brain-MRI patients with one tumor each: the default data.

The paper used BRATS2013's synthetic patients (TumorSim). We make our own
from the MNI152 template of :mod:`jax_translate.data.anatomy`, with numpy and
scipy only, so the project needs no download. A patient is the template under
a random affine and a smooth elastic warp, pushed aside by a tumor (mass
effect), with a necrotic centre, an enhancing rim and an edema halo, imaged
in Flair, T1, T2 and T1c with partial volumes, a bias field and Rician noise.

Each sampled point is mapped back to the template once (affine, then mass
effect, then elastic warp) and every tissue map is sampled with one
``scipy.ndimage.map_coordinates`` call. Version 2 (the default, `VERSIONS`)
gives every patient a crisp anatomy of their own (one tissue per point, from
the template's probabilities perturbed by the patient's smooth fields),
sampled at most `FINE_MM` apart under the pixels near the brain and averaged
over each pixel: partial volume comes only from that averaging. Version 1 put
the template's population-average mixture, blurred per pixel, in every voxel.
A 64 x 64 patient costs ~0.5 s in version 1 and ~2-4 s in version 2.

Image rows run anterior (top) to posterior, columns run from the patient's
left to right (x of the RAS template), slices inferior to superior, 1 mm
apart. The same (seed, patient) gives the same patient in every geometry.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage, special
from scipy.spatial.transform import Rotation

from jax_translate.data.anatomy import (blurred_anatomy, brain_center_mm, load_anatomy,
                                        tumor_sites_mm)

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
    "t1c": (0.20, 0.50, 0.75, 0.34, 1.05, 0.18),
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
# Simulator versions (a dataset records the one it was made with).
VERSIONS = {
    1: "the MNI152 population-average tissue mixture in every voxel, blurred per pixel",
    2: "each patient's own crisp anatomy; partial volume only from the pixel averaging",
}
LATEST_VERSION = 2
# Version 2: the anatomy is sampled at most FINE_MM apart in-plane (64x64: 3 x 3
# points a pixel, 128: 2 x 2, 256x128: 1), then
# averaged over each pixel. A patient's own anatomy is the template's
# log-probabilities plus ANATOMY_SD times smooth N(0, 1) fields on an
# ANATOMY_SPACING_MM lattice; ANATOMY_FLOOR keeps log(0) finite.
FINE_MM = 1.2
ANATOMY_SD, ANATOMY_SPACING_MM, ANATOMY_FLOOR = 0.8, 12.0, 1e-3
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
    # (3, Z, H, W) float32: the share of each pixel that is healthy CSF, GM and WM
    # (slices.TISSUE_SHARES' order), the tissue maps the images are rendered from; a pixel's
    # shares sum to its brain fraction less its tumor.
    tissue_shares: np.ndarray | None = None


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
                     mass_effect: bool = True, version: int = LATEST_VERSION,
                     renderer=None, _every_pixel: bool = False) -> PatientVolume:
    """Simulates one patient; a pure function of (seed, patient_index, version).

    version 2 (the default) gives each patient crisp anatomy of their own,
    imaged with the scanner's pixel averaging; version 1 is the template's
    population-average tissue mixture (see `VERSIONS`). mass_effect=False keeps
    the tumor but does not push tissue aside (for tests and ablations); every
    random draw stays the same. ``renderer(rng, fractions, axes_mm, average)``
    makes the images from the anatomy (default :func:`render`; an experiment
    hands in another, e.g. one that also keeps the anatomy). _every_pixel
    (tests) samples version 2's fine grid under every pixel, not only near the
    brain.
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown simulator version {version!r}; choose one of {sorted(VERSIONS)}")
    rng = np.random.default_rng([seed, patient_index])
    axes_mm = output_axes_mm(geometry)
    shape = tuple(len(a) for a in axes_mm)
    # Version 2 samples the anatomy on a grid `sub` times finer in-plane
    # (<= FINE_MM spacing) and averages it back to pixels, as a scanner does.
    sub = 1 if version == 1 else max(1, int(np.ceil(geometry.pixel_mm / FINE_MM - 0.01)))
    sample_axes = axes_mm if sub == 1 else _fine_axes(axes_mm, geometry.pixel_mm, sub)
    fine_shape = tuple(len(a) for a in sample_axes)

    def patient_mm(index):  # flat indices into the fine grid -> (3, n) mm, x y z
        z, y, x = np.unravel_index(index, fine_shape)
        return np.stack([sample_axes[2][x], sample_axes[1][y], sample_axes[0][z]]).astype(np.float32)

    # Head pose and size, about the brain centre: mostly in-plane rotation,
    # a little tilt (which changes the slicing angle).
    center = brain_center_mm()
    angles = rng.uniform(-1.0, 1.0, 3) * np.array([3.0, 3.0, 8.0])
    linear = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() @ np.diag(
        rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, 3))
    shift = rng.uniform(-4.0, 4.0, 3)

    def unposed_mm(index):  # the same points in the unposed (template-aligned) frame
        unposed = np.linalg.inv(linear).astype(np.float32) @ (
            patient_mm(index) - (center + shift)[:, None].astype(np.float32))
        unposed += center[:, None].astype(np.float32)
        return unposed

    elastic = ELASTIC_SD_MM * _smooth_fields(rng, 3, sample_axes, ELASTIC_SPACING_MM)
    tumor = _draw_tumor(rng)

    # Back to the template: undo the mass effect, then the elastic warp.
    def to_template(points, displacement):
        if mass_effect:
            points = _push_from(points, tumor.core.center, tumor.push_radius_mm,
                                tumor.push_reach_mm)
        return points + displacement

    elastic = elastic.reshape(3, -1)
    if version == 1:
        fine = _FineGrid.identity(shape)
        unposed = unposed_mm(np.arange(int(np.prod(shape))))
        source = to_template(unposed, elastic)
        csf, gm, wm = _sample_tissue(blurred_anatomy(round(geometry.blur_mm, 3)), source)
    else:
        fine = _FineGrid.near_brain(shape, sub, lambda i: to_template(unposed_mm(i), elastic[:, i]),
                                    geometry.pixel_mm, every_pixel=_every_pixel)
        unposed = unposed_mm(fine.points)
        source = to_template(unposed, elastic[:, fine.points])
        anatomy_fields = _smooth_fields(np.random.default_rng([seed, patient_index, version]),
                                        3, sample_axes, ANATOMY_SPACING_MM).reshape(3, -1)
        csf, gm, wm = _crisp_tissue(source, anatomy_fields[:, fine.points])
    # Linear interpolation is linear, so this is the warped brain mask.
    brain_fraction = csf + gm + wm

    # Edema spreads along white-matter tracts and much less into grey matter,
    # which gives it its fingers; the solid parts ignore the anatomy.
    whole = tumor.whole.fraction(unposed, reach=EDEMA_REACH[0] + EDEMA_REACH[1] * wm)
    core = np.minimum(tumor.core.fraction(unposed), whole)
    necrotic = np.minimum(tumor.necrotic.fraction(unposed), core)

    fractions = dict(csf=csf, gm=gm, wm=wm, brain=brain_fraction, whole=whole,
                     edema=whole - core, enhancing=core - necrotic, necrotic=necrotic)
    images = {modality: image.reshape(shape) for modality, image in
              (renderer or render)(rng, fractions, axes_mm,
                                   None if version == 1 else fine.average).items()}
    # The labels of what each pixel holds most of.
    parts = [fine.average(part) for part in (csf, gm, wm, whole, core, necrotic)]
    tissue = _tissue_labels(*parts).reshape(shape)
    shares = np.stack([fine.average(share) for share in _shares(fractions)[:3]])
    return PatientVolume(
        **images, tumor=(tissue >= EDEMA).astype(np.uint8),
        brain=(tissue > BACKGROUND).astype(np.uint8), tissue=tissue,
        tissue_shares=shares.reshape(3, *shape).astype(np.float32),
        tumor_center=_to_index(linear @ (tumor.core.center - center) + center + shift,
                               geometry))


@dataclasses.dataclass(frozen=True)
class _FineGrid:
    """Which points of the `sub`-times finer grid are sampled, and their pixels.

    Points of pixels far from any brain are skipped: they would only add
    zeros to their pixel's average.
    """

    n_pixels: int
    sub: int
    points: np.ndarray | slice  # flat indices into the fine grid (Z, H*sub, W*sub)
    pixel: np.ndarray | None  # flat pixel index of each point

    @classmethod
    def identity(cls, shape) -> "_FineGrid":
        return cls(int(np.prod(shape)), 1, slice(None), None)

    @classmethod
    def near_brain(cls, shape, sub: int, to_template, pixel_mm: float,
                   every_pixel: bool = False) -> "_FineGrid":
        """The fine points of pixels whose centre maps (`to_template`: fine
        indices -> template mm) within 1.5 pixels of the brain, and their
        in-plane neighbours."""
        n_slices, height, width = shape
        z, row, column = np.indices(shape).reshape(3, -1)
        if every_pixel:
            near = np.ones(shape, bool)
        else:
            # One sub-point near each pixel's centre stands in for the pixel.
            centre = (z * height * sub + row * sub + sub // 2) * (width * sub) + column * sub + sub // 2
            distance = ndimage.map_coordinates(
                _outside_distance_mm(), load_anatomy().mm_to_voxel(to_template(centre)),
                order=1, mode="nearest", prefilter=False)
            near = ndimage.binary_dilation((distance < 1.5 * pixel_mm).reshape(shape),
                                           structure=np.ones((1, 3, 3), bool))
        pixels = np.flatnonzero(near)
        z, row, column = np.unravel_index(pixels, shape)
        i, j = np.divmod(np.arange(sub * sub), sub)
        fine_row = (row[:, None] * sub + i[None, :]).ravel()
        fine_column = (column[:, None] * sub + j[None, :]).ravel()
        points = (np.repeat(z, sub * sub) * (height * sub) + fine_row) * (width * sub) + fine_column
        return cls(int(np.prod(shape)), sub, points, np.repeat(pixels, sub * sub))

    def average(self, values: np.ndarray) -> np.ndarray:
        """Values at the sampled points -> flat means over each pixel (0 where none)."""
        if self.pixel is None:
            return values
        sums = np.bincount(self.pixel, weights=values, minlength=self.n_pixels)
        return (sums / (self.sub * self.sub)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _outside_distance_mm() -> np.ndarray:
    """Distance (mm) of each template voxel to the brain; 0 inside it."""
    anatomy = load_anatomy()
    voxel_mm = np.sqrt((anatomy.affine[:3, :3] ** 2).sum(axis=0))
    distance = ndimage.distance_transform_edt(anatomy.brain < 0.5, sampling=voxel_mm)
    return distance.astype(np.float32)


def _fine_axes(axes_mm, pixel_mm: float, sub: int):
    """The slices' axes with rows and columns each split into `sub` sub-pixels."""
    z, y, x = axes_mm
    offsets = ((np.arange(sub) + 0.5) / sub - 0.5) * pixel_mm
    # Rows run from anterior (high y) down; columns from left (low x) up.
    return z, (y[:, None] - offsets[None, :]).ravel(), (x[:, None] + offsets[None, :]).ravel()


def _template_voxels(anatomy, source_mm: np.ndarray):
    """Template voxel coordinates of points (3, N), and the indices inside the brain's box."""
    voxels = anatomy.mm_to_voxel(source_mm)
    # Half the output grid maps outside the brain's box: no need to sample.
    low, high = anatomy.voxel_box
    in_box = np.flatnonzero(np.all((voxels > (low - 1)[:, None])
                                   & (voxels < (high + 1)[:, None]), axis=0))
    return voxels[:, in_box], in_box


def _sample_tissue(anatomy, source_mm: np.ndarray) -> np.ndarray:
    """Tissue fractions (3, N) csf, gm, wm of the template at points (3, N) in mm."""
    voxels, in_box = _template_voxels(anatomy, source_mm)
    sampled = np.zeros((3, source_mm.shape[1]), np.float32)
    for tissue_map, out in zip((anatomy.csf, anatomy.gm, anatomy.wm), sampled):
        out[in_box] = ndimage.map_coordinates(
            tissue_map, voxels, order=1, output=np.float32, mode="constant",
            cval=0.0, prefilter=False)
    return sampled


def _crisp_tissue(source_mm: np.ndarray, fields: np.ndarray) -> np.ndarray:
    """One patient's own anatomy: a hard tissue label (3, N) at each point (mm).

    The template's population-average probabilities, their log perturbed by
    this patient's smooth N(0, 1) fields (3, N) (gyri and sulci that differ
    from the average), decide one tissue per point: inside the brain the most
    probable one. So a point is pure CSF, GM or WM, and partial volume only
    comes from the pixel averaging that follows.
    """
    anatomy = load_anatomy()
    voxels, in_box = _template_voxels(anatomy, source_mm)
    probabilities = np.stack([ndimage.map_coordinates(
        tissue_map, voxels, order=1, output=np.float32, mode="constant", cval=0.0,
        prefilter=False) for tissue_map in (anatomy.csf, anatomy.gm, anatomy.wm)])
    brain = np.flatnonzero(probabilities.sum(axis=0) >= 0.5)
    logits = np.log(probabilities[:, brain] + np.float32(ANATOMY_FLOOR))
    logits += np.float32(ANATOMY_SD) * fields[:, in_box[brain]]
    crisp = np.zeros((3, source_mm.shape[1]), np.float32)
    crisp[np.argmax(logits, axis=0), in_box[brain]] = 1.0
    return crisp


def _tissue_labels(csf, gm, wm, whole, core, necrotic) -> np.ndarray:
    """Most probable tissue, overwritten by the tumor parts inside the brain."""
    tissue = np.where(wm >= np.maximum(gm, csf), WHITE_MATTER,
                      np.where(gm >= csf, GREY_MATTER, CSF)).astype(np.uint8)
    for label, fraction in ((EDEMA, whole), (ENHANCING, core), (NECROTIC, necrotic)):
        tissue[fraction >= 0.5] = label
    # The tumor is clipped to the brain with everything else.
    tissue[csf + gm + wm < 0.5] = BACKGROUND
    return tissue


def render(rng, fractions: dict[str, np.ndarray], axes_mm, average=None,
           tissue_means: dict[str, tuple] = TISSUE_MEANS) -> dict[str, np.ndarray]:
    """Flat images in [0, 1] of every modality from tissue fractions.

    The fractions may lie on a finer grid than the image: then `average` maps
    them to pixels (the scanner's partial volume), before the bias field and
    noise. ``tissue_means`` (by modality, `TISSUE_MEANS`' layout) sets each
    tissue's contrast: another one renders the same anatomy with another
    contrast (evaluation/known_cases.py swaps T1's GM and WM).
    """
    jitter = rng.uniform(1 - INTENSITY_JITTER, 1 + INTENSITY_JITTER, (len(MODALITIES), 6))
    log_bias = np.clip(BIAS_SD * _smooth_fields(rng, len(MODALITIES), axes_mm, BIAS_SPACING_MM),
                       -BIAS_LIMIT, BIAS_LIMIT).reshape(len(MODALITIES), -1)
    if average is None:
        brain = fractions["brain"]
        signal = lambda means: _signal(fractions, means)  # noqa: E731
    else:
        # A pixel's signal is linear in its tissues' shares: average the
        # shares once instead of each modality's fine image.
        brain = average(fractions["brain"])
        shares = np.stack([average(share) for share in _shares(fractions)])
        signal = lambda means: means @ shares  # noqa: E731
    # Signal and noise only where there is (some) brain: the background stays
    # 0, as in skull-stripped BraTS. The noise is still drawn for every voxel
    # so that it does not depend on the anatomy.
    inside = np.flatnonzero(brain > 0.01)
    n_voxels = brain.size
    images = {}
    for m, modality in enumerate(MODALITIES):
        means = (np.asarray(tissue_means[modality]) * jitter[m]).astype(np.float32)
        pixel_signal = signal(means)[inside]
        pixel_signal *= np.exp(log_bias[m, inside])
        # Rician: the magnitude of a complex signal with Gaussian noise.
        sigma = np.float32(NOISE_SIGMA * MODALITY_SCALE[modality])
        real = pixel_signal + sigma * rng.standard_normal(n_voxels, dtype=np.float32)[inside]
        imaginary = sigma * rng.standard_normal(n_voxels, dtype=np.float32)[inside]
        image = np.zeros(n_voxels, np.float32)
        image[inside] = np.clip(np.sqrt(real * real + imaginary * imaginary)
                                / np.float32(MODALITY_SCALE[modality]), 0.0, 1.0)
        images[modality] = image
    return images


def _signal(f: dict[str, np.ndarray], means: np.ndarray) -> np.ndarray:
    """Noiseless signal of tissue fractions, with tissue means (csf, gm, wm, edema,
    enhancing, necrotic)."""
    healthy = f["csf"] * means[0] + f["gm"] * means[1] + f["wm"] * means[2]
    lesion = f["edema"] * means[3] + f["enhancing"] * means[4] + f["necrotic"] * means[5]
    # Partial volumes: the tumor replaces its share of each voxel's brain.
    return (1.0 - f["whole"]) * healthy + f["brain"] * lesion


def _shares(f: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Each tissue's share of a voxel, in `_signal`'s order: `_signal` is their
    dot product with the means."""
    healthy = 1.0 - f["whole"]
    return ([healthy * f[name] for name in ("csf", "gm", "wm")]
            + [f["brain"] * f[name] for name in ("edema", "enhancing", "necrotic")])


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    direction = rng.standard_normal(3)
    return direction / np.linalg.norm(direction)


def _to_index(point_mm: np.ndarray, geometry: SliceGeometry) -> tuple[float, float, float]:
    """Patient-space mm (x, y, z) -> fractional (slice, row, column)."""
    z, y, x = output_axes_mm(geometry)
    pixel = geometry.pixel_mm
    return (float((point_mm[2] - z[0]) / SLICE_MM), float((y[0] - point_mm[1]) / pixel),
            float((point_mm[0] - x[0]) / pixel))
