"""The synthetic head phantom: an analytic 3D head, labelled slice by slice.

Coordinates are mm in the head's frame: x to the patient's left, y posterior, z up
from the foramen magnum. Internal to ``demo.synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
from numpy.typing import NDArray

from demo.synthetic._shared import Floats, Mask, blur121, box_blur

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

CT_FIELD_OF_VIEW_MM: Final = 230.0
CT_HEAD_COVERAGE_MM: Final = 160.0  # foramen magnum to vertex


class Tissue(IntEnum):
    """Tissue labels of the head phantom; each maps to one HU value per case."""

    AIR = 0
    FAT = 1
    SOFT = 2
    BONE = 3
    DIPLOE = 4
    BASE_BONE = 5
    CSF = 6
    VENT = 7
    GREY = 8
    WHITE = 9
    DEEP_GREY = 10
    BRAINSTEM = 11
    CEREBELLUM = 12
    FALX = 13
    CALC = 14
    GLOBE = 15
    LENS = 16
    HEADREST = 17
    BLOOD = 18
    OEDEMA = 19


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps image pixels to the head's frame (mm): x to patient left, y posterior."""

    row_mm: Floats
    col_mm: Floats
    centre_row_mm: float
    centre_col_mm: float
    cos: float
    sin: float


@dataclass(frozen=True, slots=True, eq=False)
class _Field:
    """A smooth 3D random field of unit variance, sampled on axial slices.

    A sum of plane waves whose in-plane part factorises into (rows x n) @ (n x cols),
    so a 512 x 512 slice costs one small matrix product.
    """

    rows: NDArray[np.complex64]  # (rows, n)
    cols: F32  # (2n, cols): real parts stacked over imaginary parts
    kz: F64

    def at(self, z_mm: float) -> F32:
        """The field on the slice at height ``z_mm``."""
        left = self.rows * np.exp(1j * self.kz * z_mm).astype(np.complex64)
        # Re(A @ B) = [Re A, -Im A] @ [Re B; Im B]: one real product, float32 out.
        out: F32 = np.hstack([left.real, -left.imag]) @ self.cols
        return out


def _make_field(
    rng: np.random.Generator,
    frame: _Frame,
    waves: int,
    wavelength_mm: tuple[float, float],
) -> _Field:
    direction = rng.normal(size=(waves, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = direction * (2 * np.pi / rng.uniform(*wavelength_mm, waves))[:, None]
    kx, ky, kz = k[:, 0], k[:, 1], k[:, 2]
    # Rotate the wave vectors instead of the coordinates: the field stays separable.
    k_col = kx * frame.cos - ky * frame.sin
    k_row = kx * frame.sin + ky * frame.cos
    phase = (
        rng.uniform(0, 2 * np.pi, waves)
        - k_col * frame.centre_col_mm
        - k_row * frame.centre_row_mm
    )
    amplitude = np.sqrt(2.0 / waves)
    rows = amplitude * np.exp(1j * (np.outer(frame.row_mm, k_row) + phase))
    cols = np.exp(1j * np.outer(k_col, frame.col_mm))
    stacked = np.vstack([cols.real, cols.imag]).astype(np.float32)
    return _Field(rows.astype(np.complex64), stacked, kz)


@dataclass(frozen=True, slots=True, eq=False)
class _Gyri:
    """Sulcal pattern around the head: waves in the polar angle, drifting with z.

    Its zero crossings run radially, as sulci do from the brain's surface.
    """

    theta_index: NDArray[np.intp]  # per pixel, into ``grid``
    grid: F64  # polar angles (rad)
    orders: F64  # cycles per turn
    kz: F64  # rad/mm
    phase: F64

    def at(self, z_mm: float) -> F32:
        """The pattern on the slice at height ``z_mm`` (unit variance)."""
        waves = np.cos(np.outer(self.grid, self.orders) + self.kz * z_mm + self.phase)
        table = waves.sum(axis=1) * np.sqrt(2.0 / len(self.orders))
        out: F32 = table.astype(np.float32)[self.theta_index]
        return out


def _make_gyri(rng: np.random.Generator, x: Floats, y: Floats, waves: int) -> _Gyri:
    grid = np.linspace(-np.pi, np.pi, 2048, endpoint=False)
    index = ((np.arctan2(y, x) + np.pi) * (2048 / (2 * np.pi))).astype(np.intp) % 2048
    return _Gyri(
        theta_index=index,
        grid=grid,
        orders=rng.uniform(7, 18, waves).round(),
        kz=2 * np.pi / rng.uniform(25, 45, waves) * rng.choice([-1, 1], waves),
        phase=rng.uniform(0, 2 * np.pi, waves),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Head:
    """One seed's head: size, pose, tissue values and the static per-pixel maps."""

    a_mm: float  # lateral semi-axis of the outer table
    b_mm: float  # anteroposterior semi-axis
    c_mm: float  # height of the vertex above the widest level
    zc_mm: float  # height of the widest level
    skull_mm: float
    scalp_mm: float
    atrophy: float  # 0 young, 1 old: wider sulci and ventricles
    cortex_mm: float
    sulcal_depth_mm: float
    sulcus_width: float  # in units of the sulcal field
    cupping_hu: float
    hu: F32  # by tissue label
    texture: F32  # HU per unit of the sulcal field, by tissue label
    choroid_calcified: bool
    pineal_calcified: bool
    headrest: bool
    z_start_mm: float
    size: int  # pixels per side of the whole image
    # The per-pixel maps below cover only ``box``, the image around the head;
    # ``core`` (within the box) holds the deep structures, ``band`` the midline.
    box: tuple[slice, slice]
    core: tuple[slice, slice]
    band: tuple[slice, slice]
    x: Floats
    y: Floats
    r: Floats
    ray_mm: Floats  # radius of the outer table's ellipse along each pixel's ray
    cos4: Floats
    sin2: Floats
    floor_mm: Floats  # height of the cranial floor under each pixel
    tentorium_mm: Floats  # below it and behind the petrous ridges: posterior fossa
    base_bone_mm: Floats  # thickness of the skull base under the cranial floor
    holder: Mask  # the head holder, over the whole image
    sulci: _Field
    shape: _Field
    gyri: _Gyri


def _bounding_box(mask: Mask) -> tuple[slice, slice]:
    """Smallest (rows, cols) slices holding every set pixel, or all if none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return slice(None), slice(None)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _tissue_values(rng: np.random.Generator) -> tuple[F32, F32]:
    """HU by tissue label for one case, and the texture amplitude (HU) of each."""
    grey = rng.uniform(34, 40)
    white = grey - rng.uniform(7, 11)
    csf = rng.uniform(3, 10)
    values = {
        Tissue.AIR: -1000.0,
        Tissue.FAT: rng.uniform(-100, -80),
        Tissue.SOFT: rng.uniform(35, 50),
        Tissue.BONE: rng.uniform(1300, 1750),  # cortical tables
        Tissue.DIPLOE: rng.uniform(450, 700),
        Tissue.BASE_BONE: rng.uniform(900, 1200),
        Tissue.CSF: csf,
        Tissue.VENT: csf,
        Tissue.GREY: grey,
        Tissue.WHITE: white,
        Tissue.DEEP_GREY: grey - 2,
        Tissue.BRAINSTEM: white + 3,
        Tissue.CEREBELLUM: grey - 1,
        Tissue.FALX: rng.uniform(45, 70),
        Tissue.CALC: rng.uniform(150, 400),
        Tissue.GLOBE: rng.uniform(5, 15),
        Tissue.LENS: rng.uniform(90, 130),
        Tissue.HEADREST: rng.uniform(100, 250),
        Tissue.BLOOD: 0.0,  # set per bleed
        Tissue.OEDEMA: white - rng.uniform(7, 11),
    }
    hu = np.array([values[t] for t in Tissue], np.float32)
    texture = np.zeros(len(Tissue), np.float32)
    for tissue, amplitude in (
        (Tissue.SOFT, 3),
        (Tissue.BONE, 90),
        (Tissue.DIPLOE, 130),
        (Tissue.BASE_BONE, 120),
        (Tissue.BLOOD, 3),
    ):
        texture[tissue] = amplitude
    return hu, texture


def level_scale(head: Head, z: float, offset_mm: float) -> float:
    """Shrink factor of the axial cross-section of a skull layer at height ``z``."""
    c = head.c_mm + offset_mm
    dz = (z - head.zc_mm) / c if z >= head.zc_mm else (head.zc_mm - z) / (2.2 * c)
    return float(np.sqrt(max(0.0, 1.0 - dz * dz)))


def make_head(rng: np.random.Generator, size: int) -> Head:
    """Draw one head: size, pose, tissue HU and the maps shared by all its slices.

    Args:
        rng: The anatomy stream of the case's seed.
        size: Matrix size (pixels); the field of view is 230 mm.
    """
    spacing = CT_FIELD_OF_VIEW_MM / size
    axis = (np.arange(size) - (size - 1) / 2) * spacing
    rotation = np.deg2rad(rng.uniform(-8, 8))
    centre_row, centre_col = float(rng.uniform(-8, 8)), float(rng.uniform(-6, 6))
    cos, sin = float(np.cos(rotation)), float(np.sin(rotation))
    a, b = float(rng.uniform(66, 77)), float(rng.uniform(86, 99))
    sx, sy = a / 72, b / 92

    def head_frame(rows: Floats, cols: Floats) -> tuple[Floats, Floats]:
        col = (cols[None, :] - centre_col).astype(np.float32)
        row = (rows[:, None] - centre_row).astype(np.float32)
        return cos * col + sin * row, -sin * col + cos * row

    # Work only on the box around the head (scalp and temporalis included).
    x, y = head_frame(axis, axis)
    box = _bounding_box(np.hypot(x / (a + 35), y / (b + 35)) < 1)
    frame = _Frame(axis[box[0]], axis[box[1]], centre_row, centre_col, cos, sin)
    x, y = head_frame(frame.row_mm, frame.col_mm)
    core = _bounding_box((np.abs(x) < 85 * sx) & (np.abs(y) < 58 * sy))
    band = _bounding_box(np.abs(x) < 14)
    r = np.hypot(x, y)
    # Egg-shaped: the parietal eminences make the back of the head wider.
    q = np.hypot(x / (a * (1 + 0.07 * np.clip(y / b, -1, 1))), y / b)
    ray = (r + 1e-4) / (q + 1e-4 / a)  # -> a at the centre instead of 0 / 0
    rs = np.maximum(r, 1e-3)

    # Skull base, in the frame of a reference head (a = 72 mm, b = 92 mm).
    xs, ys = x / sx, y / sy
    ax = np.abs(xs)
    ridge_y = np.where(ax > 14, -10 + (ax - 14) * 0.6, -12)
    posterior = ys > ridge_y
    bowl = -2 + 0.0025 * xs**2 + 0.0012 * np.maximum(ys - 20, 0) ** 2
    clivus = np.clip(30 - 2.5 * (ys + 12), -20, 30)
    bowl = np.where(ax < 14, np.maximum(bowl, clivus), bowl)
    middle = 10 + 0.006 * (ax - 40) ** 2
    # The sphenoid ridge curves forwards laterally: the temporal poles reach
    # further forward than the midline floor.
    sphenoid_ridge = -32 - 0.008 * xs**2
    # Domed orbital roofs either side of the low cribriform plate, rising forwards.
    anterior = (
        28
        + 7 * np.exp(-(((ax - 30) / 14) ** 2))
        + 0.25 * np.maximum(sphenoid_ridge - ys, 0)
    )
    floor = np.where(
        posterior,
        bowl,
        np.where(ys < sphenoid_ridge, anterior, np.where(ax < 15, 28.0, middle)),
    )
    # Petrous ridges: a bony wall from the apex (x = ±14) out and back to the mastoid.
    t = np.clip((ax - 14) / 48, 0, 1)
    ridge_dist = np.hypot(ax - (14 + 48 * t), ys - (-10 + 28.8 * t))
    crest = (34 - 6 * t) * np.exp(-((ridge_dist / 8) ** 2))
    floor = np.maximum(floor, crest)
    # The skull base is a thin plate, except the sphenoid body and clivus in the
    # middle and the solid petrous bones.
    base_bone = 4 + 10 * np.exp(-((xs / 14) ** 4)) * (ys > -45) * (ys < 10)
    base_bone = np.maximum(base_bone, 30 * (ridge_dist < 9) * (ax < 60))
    floor = np.where(xs**2 + (ys - 10) ** 2 < 15**2, -60.0, floor)  # foramen magnum
    blur_px = max(1, round(4 / spacing))
    floor = box_blur(box_blur(floor.astype(np.float32), blur_px), blur_px)
    # The tentorium: a tent over the posterior fossa, highest at the incisura.
    tent = 52 - 20 * ((xs / 42) ** 2 + ((ys - 28) / 48) ** 2)
    tentorium = np.where(posterior, tent, -1e3).astype(np.float32)

    image_r = np.hypot(axis[None, :], axis[:, None])
    holder_r = b + rng.uniform(10, 18)
    holder = (np.abs(image_r - holder_r) < 1.5) & (axis[:, None] > 25)

    hu, texture = _tissue_values(rng)
    atrophy = float(rng.uniform(0, 1))
    return Head(
        a_mm=a,
        b_mm=b,
        c_mm=float(rng.uniform(86, 96)),
        zc_mm=float(rng.uniform(58, 66)),
        skull_mm=float(rng.uniform(5, 7.5)),
        scalp_mm=float(rng.uniform(4, 7)),
        atrophy=atrophy,
        cortex_mm=float(rng.uniform(2.5, 3.3)),
        sulcal_depth_mm=float(rng.uniform(10, 16) + 5 * atrophy),
        sulcus_width=float(0.1 + 0.15 * atrophy),
        cupping_hu=float(rng.uniform(1, 4)),
        hu=hu,
        texture=texture,
        choroid_calcified=bool(rng.random() < 0.5),
        pineal_calcified=bool(rng.random() < 0.4),
        headrest=bool(rng.random() < 0.8),
        z_start_mm=float(rng.uniform(-4, 4)),
        size=size,
        box=box,
        core=core,
        band=band,
        x=x,
        y=y,
        r=r,
        ray_mm=ray,
        cos4=(x / rs) ** 4,
        sin2=(y / rs) ** 2,
        floor_mm=floor,
        tentorium_mm=tentorium,
        base_bone_mm=base_bone.astype(np.float32),
        holder=holder,
        sulci=_make_field(rng, frame, 16, (18, 30)),
        shape=_make_field(rng, frame, 10, (90, 200)),
        gyri=_make_gyri(rng, x, y, 10),
    )


def _ellipse(
    xa: Floats,
    ys: Floats,
    z: float,
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> Mask | None:
    """Inside an axis-aligned ellipsoid (reference-head mm), or None off its levels."""
    ez = 1.0 - ((z - centre[2]) / radii[2]) ** 2
    if ez <= 0:
        return None
    return ((xa - centre[0]) / radii[0]) ** 2 + ((ys - centre[1]) / radii[1]) ** 2 < ez


def _segment_distance(
    xa: Floats, ys: Floats, p: tuple[float, float], q: tuple[float, float]
) -> tuple[Floats, Floats]:
    """Distance (mm) to the segment pq, and the fraction along it (0 at p)."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    t = np.clip(((xa - p[0]) * dx + (ys - p[1]) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xa - (p[0] + t * dx), ys - (p[1] + t * dy)), t


@dataclass(frozen=True, slots=True, eq=False)
class SliceAnatomy:
    """One axial slice of the phantom as tissue labels, before HU and noise.

    Bleeds paint into ``labels``; the other arrays locate them.
    """

    z_mm: float
    labels: NDArray[np.uint8]  # Tissue values
    field: F32  # the sulcal field (unit variance), reused as texture
    xs: Floats  # reference-head x (mm / scale), midline shift applied
    ys: Floats  # reference-head y
    inner_table_depth_mm: Floats  # in-plane depth below the skull's inner table
    cavity: Mask  # inside the cranial cavity


def paint_anatomy(
    head: Head, z: float, midline_shift_mm: Floats | None
) -> SliceAnatomy:
    """Label the tissues of the slice at height ``z`` (mm).

    ``midline_shift_mm`` moves the midline structures (falx, ventricles, deep
    nuclei) sideways per pixel: the mass effect of a large bleed.
    """
    f = head.sulci.at(z)
    g = head.shape.at(z)
    x, y, r = head.x, head.y, head.r
    at = head.atrophy
    ray = head.ray_mm * (1 + 0.03 * g)
    thick = (
        head.skull_mm
        + 1.6 * head.sin2
        - 0.45 * head.skull_mm * head.cos4 * np.exp(-(((z - 45) / 25) ** 2))
        + 0.6 * g
    )
    # Temporalis muscles thicken the soft tissue over the temples.
    scalp = head.scalp_mm + 7 * head.cos4 * np.exp(-(((z - 55) / 22) ** 2))
    gap = 1 + 2 * at
    r_scalp = (ray + scalp) * level_scale(head, z, head.scalp_mm)
    r_out = ray * level_scale(head, z, 0)
    r_in = (ray - thick) * level_scale(head, z, -head.skull_mm)
    r_brain = (ray - thick - gap) * level_scale(head, z, -head.skull_mm - gap)

    lab = np.zeros(x.shape, np.uint8)
    lab[r < r_scalp] = Tissue.SOFT
    lab[(r < r_scalp - 1.2) & (r > r_scalp - 3.2)] = Tissue.FAT
    bone = r < r_out
    lab[bone] = Tissue.BONE
    cortical = 0.28 * thick
    lab[bone & (r < r_out - cortical) & (r > r_in + cortical)] = Tissue.DIPLOE
    vault = r < r_in
    cavity = vault & (z > head.floor_mm)
    below = vault & ~cavity
    if below.any():
        _paint_skull_base(head, lab, below, r < r_out, f, z)
    lab[cavity] = Tissue.CSF
    d_brain = r_brain - r
    brain = cavity & (d_brain > 0) & (z > head.floor_mm + 1.5)
    lab[brain] = Tissue.GREY
    # Sulci: zero crossings of a radial pattern bent by the 3D field; their depth
    # varies around the head with the slow shape field.
    af = np.abs(0.75 * head.gyri.at(z) + 0.65 * f)
    sulcal_depth = head.sulcal_depth_mm * (0.75 + 0.35 * g)
    deep = (d_brain > head.cortex_mm) & (z > head.floor_mm + 1.5 + head.cortex_mm)
    gyral = (af < head.sulcus_width + 0.7) & (d_brain < sulcal_depth + head.cortex_mm)
    lab[brain & deep & ~gyral] = Tissue.WHITE
    lab[brain & (af < head.sulcus_width) & (d_brain < sulcal_depth)] = Tissue.CSF
    infra = brain & (z < head.tentorium_mm)
    if infra.any():
        lab[infra] = Tissue.CEREBELLUM
        # Folia: fine fissures, seen mostly near the cerebellar surface.
        folia = np.abs(np.sin(2.4 * f)) < 0.1 + 0.1 * at
        lab[infra & folia & (d_brain < 12)] = Tissue.CSF
    supra = brain & ~infra
    if infra.any():
        # Cortex lines the brain's face on the tentorium.
        lab[supra & (z - head.tentorium_mm < 4)] = Tissue.GREY

    xm = x if midline_shift_mm is None else x - midline_shift_mm
    xs, ys = xm / (head.a_mm / 72), y / (head.b_mm / 92)
    c = head.core
    _paint_midline(head, lab[c], z, f[c], xs[c], ys[c], cavity[c], brain[c], supra[c])
    if z > 40:
        m = head.band
        _paint_fissure(lab[m], z, xm[m], ys[m], supra[m], at)
    return SliceAnatomy(z, lab, f, xs, ys, r_in - r, cavity)


def render_hu(head: Head, anatomy: SliceAnatomy, lut: F32) -> F32:
    """Noise-free HU of a labelled slice, blurred by the scanner's point spread.

    Args:
        head: The head the slice belongs to.
        anatomy: Its labels (bleeds included).
        lut: HU per tissue label (``head.hu`` with the bleed's blood value).
    """
    lab, f = anatomy.labels, anatomy.field
    inner = lut[lab] + head.texture[lab] * f
    # Beam hardening: brain next to the skull reads a few HU high (cupping).
    depth = np.clip(anatomy.inner_table_depth_mm, 0, 40)
    inner += (head.cupping_hu * np.exp(-depth / 5)) * anatomy.cavity
    hu = np.full((head.size, head.size), lut[Tissue.AIR], np.float32)
    if head.headrest and anatomy.z_mm < head.zc_mm + 45:
        hu[head.holder] = lut[Tissue.HEADREST]
    hu[head.box] = np.where(lab == Tissue.AIR, hu[head.box], inner)
    return blur121(hu)


def _paint_skull_base(
    head: Head, lab: NDArray[np.uint8], below: Mask, skull: Mask, f: F32, z: float
) -> None:
    depth = head.floor_mm - z
    lab[below] = Tissue.SOFT
    lab[below & (depth < head.base_bone_mm)] = Tissue.BASE_BONE
    sx, sy = head.a_mm / 72, head.b_mm / 92
    xa, ys = np.abs(head.x) / sx, head.y / sy
    cells = np.sin(3 * f) > -0.3  # air cells between thin bony septa
    for centre, radii, septa in (
        ((0.0, -24.0, 14.0), (13.0, 12.0, 10.0), False),  # sphenoid sinus
        ((0.0, -58.0, 22.0), (11.0, 14.0, 12.0), True),  # ethmoid cells
        ((25.0, -58.0, -6.0), (13.0, 16.0, 14.0), False),  # maxillary sinuses
        ((54.0, 16.0, 8.0), (9.0, 12.0, 12.0), True),  # mastoid air cells
    ):
        m = _ellipse(xa, ys, z, centre, radii)
        if m is not None:
            lab[below & m & (depth > 2)] = Tissue.BASE_BONE
            inner = _ellipse(
                xa, ys, z, centre, (radii[0] - 1.5, radii[1] - 1.5, radii[2])
            )
            if inner is not None:
                air = below & inner & (depth > 3)
                lab[air & cells if septa else air] = Tissue.AIR
    if 6 < z < 38:
        # Orbits sit in the face, in front of the cranial cavity: fat, globe, lens.
        orbit = skull & (lab != Tissue.AIR)  # in the bony face, not in a sinus
        globe_y = -(0.98 * head.b_mm - 12)
        ox = np.abs(head.x) - 31 * head.a_mm / 72
        oy = head.y - globe_y
        dz = z - 22
        fat = (ox / 14) ** 2 + ((oy - 10) / 18) ** 2 + (dz / 13) ** 2 < 1
        globe = ox**2 + oy**2 + dz**2 < 11.5**2
        lens = (ox / 4) ** 2 + ((oy + 9.5) / 1.8) ** 2 + (dz / 4) ** 2 < 1
        lab[fat & orbit] = Tissue.FAT
        lab[globe & orbit] = Tissue.GLOBE
        lab[lens & orbit] = Tissue.LENS


def _paint_midline(
    head: Head,
    lab: NDArray[np.uint8],
    z: float,
    f: F32,
    xs: Floats,
    ys: Floats,
    cavity: Mask,
    brain: Mask,
    supra: Mask,
) -> None:
    """Deep grey nuclei, brainstem, cisterns, Sylvian fissures and ventricles."""
    xa = np.abs(xs)
    at = head.atrophy
    for centre, radii in (
        ((23.0, -3.0, 56.0), (5.5, 15.0, 13.0)),  # putamen
        ((10.0, 8.0, 57.0), (8.0, 12.0, 10.0)),  # thalamus
        ((13.0, -22.0, 70.0), (5.0, 8.0, 14.0)),  # caudate head
    ):
        m = _ellipse(xa, ys, z, centre, radii)
        if m is not None:
            lab[supra & m] = Tissue.DEEP_GREY
    if z < 54:
        stem_r = float(np.interp(z, [-20, 12, 18, 36, 42, 54], [8, 9, 13, 13, 11, 10]))
        d2 = xs**2 + (ys - 6) ** 2
        # Cisterns: wide in front of the pons, a thin ambient rim at the sides.
        front = np.clip(-(ys - 6) / stem_r, 0, 1)
        lab[cavity & (np.sqrt(d2) < stem_r + 0.3 + 1.5 * at + 4 * front)] = Tissue.CSF
        lab[cavity & (d2 < stem_r**2)] = Tissue.BRAINSTEM
        if 12 < z < 32:
            m = ((xs / (5 + 2 * at)) ** 2 + ((ys - 6 - stem_r - 2.5) / 3) ** 2) < 1
            lab[cavity & m] = Tissue.VENT
    if 38 < z < 50:
        # Suprasellar cistern: a rounded star, here a rounded diamond.
        radius = 8 + 2 * at
        star = (np.abs(xs) / radius) ** 1.3 + (np.abs(ys + 16) / radius) ** 1.3 < 1
        lab[cavity & star] = Tissue.CSF
    if 42 < z < 56:
        lab[cavity & ((xs / 7) ** 2 + ((ys - 20) / 4) ** 2 < 1)] = Tissue.CSF
    if 44 < z < 64:
        lab[brain & (xa < 1.2 + 1.8 * at) & (ys > -12) & (ys < 8)] = Tissue.VENT
    if 36 < z < 52:
        m = ((xa - 30) / (1.5 + 2 * at)) ** 2 + ((ys + 8) / 8) ** 2 < 1
        lab[supra & m] = Tissue.VENT  # temporal horns
    if 36 < z < 68:
        d, along = _segment_distance(xa, ys, (33.0, -20.0), (66.0, -12.0))
        d = d + 1.5 * f  # a wavy cleft, widening towards the surface
        width = (0.8 + 1.5 * at) * (0.6 + 0.8 * along)
        lab[supra & (d < width + 3)] = Tissue.GREY  # insular cortex
        lab[supra & (d < width)] = Tissue.CSF
    envelope = 1 - ((z - 79) / 21) ** 2
    if envelope > 0:
        # Lateral ventricles: frontal horns near the midline, diverging backwards
        # to the atria; occipital horns reach further back on the lower levels.
        width = (4.5 + 4 * at) * np.sqrt(envelope)
        back = 30 + 16 * float(np.clip((76 - z) / 10, 0, 1))
        middle, half = (back - 32) / 2, (back + 32) / 2
        u = (ys - middle) / half
        # Septum pellucidum in front; the atria diverge; the frontal horns flare.
        medial = (
            1.5
            + 0.5 * at
            + 12 * np.clip(u - 0.15, 0, None) ** 1.5
            + 6 * np.clip(-u - 0.6, 0, None)
        )
        w = (
            width
            * (1 + 0.6 * np.exp(-(((u + 0.65) / 0.25) ** 2)))
            * (1 + 0.5 * np.exp(-(((u - 0.55) / 0.25) ** 2)))
            * np.sqrt(np.clip(1 - u**8, 0, 1))
        )
        lab[supra & (xa > medial) & (xa < medial + w) & (np.abs(u) < 1)] = Tissue.VENT
        if head.choroid_calcified and 64 < z < 74:
            cy = middle + 0.55 * half
            cx = 1.5 + 0.5 * at + 12 * 0.4**1.5 + 0.6 * width
            lab[supra & ((xa - cx) ** 2 + (ys - cy) ** 2 < 2.5**2)] = Tissue.CALC
    if head.pineal_calcified and 52 < z < 57:
        lab[cavity & (xs**2 + (ys - 14) ** 2 < 2.5**2)] = Tissue.CALC


def _paint_fissure(
    lab: NDArray[np.uint8],
    z: float,
    xm: Floats,
    ys: Floats,
    supra: Mask,
    atrophy: float,
) -> None:
    """Interhemispheric fissure and falx, above the corpus callosum or around it."""
    fissure = supra if z > 95 else supra & ((ys < -34) | (ys > 38))
    lab[fissure & (np.abs(xm) < 0.8 + 1.2 * atrophy)] = Tissue.CSF
    lab[fissure & (np.abs(xm) < 0.45)] = Tissue.FALX
