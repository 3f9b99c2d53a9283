"""Acute intracranial haemorrhage for the synthetic head phantom.

Each kind has its own geometry in the head's frame (mm), so a bleed is consistent
across slices; ``paint_bleed`` labels it on one slice. Internal to
``demo.synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from demo.synthetic._shared import Floats, Mask
from demo.synthetic.phantom import Head, SliceAnatomy, Tissue, level_scale
from demo.synthetic.values import HemorrhageTruth, HemorrhageType


@dataclass(frozen=True, slots=True)
class Blob:
    """Intraparenchymal or subarachnoid bleed: an irregular ellipsoid (head frame)."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    angle_rad: float
    oedema_mm: float
    csf_only: bool


@dataclass(frozen=True, slots=True)
class Convexity:
    """Subdural or epidural bleed against the inner table of one side."""

    side: int  # +1 patient left, -1 right
    angle_rad: float  # direction from lateral, positive posterior
    z_mm: float
    half_angle_rad: float
    half_height_mm: float
    max_thickness_mm: float
    lens: bool  # epidural: biconvex; subdural: crescent


@dataclass(frozen=True, slots=True)
class Layering:
    """Intraventricular bleed layering behind a coronal level (patient supine)."""

    side: int  # +1 left, -1 right, 0 both
    level_mm: float


@dataclass(frozen=True, slots=True)
class Bleed:
    """A planned bleed: its shape, density and mass effect."""

    kind: HemorrhageType
    shape: Blob | Convexity | Layering
    hu: float
    shift_mm: float  # peak midline shift (mm), signed towards patient left
    shift_y_mm: float  # anteroposterior level of the peak shift
    shift_z_mm: float
    shift_half_height_mm: float

    def midline_shift_mm(self, y: Floats, z: float) -> Floats | None:
        """Sideways displacement of the midline structures on slice ``z``."""
        u = (z - self.shift_z_mm) / self.shift_half_height_mm
        peak = self.shift_mm * max(0.0, 1 - u * u)
        if abs(peak) < 0.05:
            return None
        shift: Floats = peak * np.exp(-(((y - self.shift_y_mm) / 60) ** 2))
        return shift


def plan_bleed(
    rng: np.random.Generator,
    head: Head,
    kind: HemorrhageType,
    z_range: tuple[float, float],
) -> Bleed:
    """Draw a bleed of ``kind`` for ``head``, centred within the slab ``z_range``.

    Args:
        rng: The bleed stream of the case's seed.
        head: The head it bleeds into.
        kind: Kind of haemorrhage.
        z_range: Heights (mm) of the first and last slice.
    """
    sx, sy = head.a_mm / 72, head.b_mm / 92
    side = 1 if rng.random() < 0.5 else -1
    lo, hi = z_range[0] + 5, z_range[1] - 5

    def within(z: float) -> float:
        return float(np.clip(z, lo, hi)) if lo < hi else (lo + hi) / 2

    shape: Blob | Convexity | Layering
    if kind is HemorrhageType.INTRAPARENCHYMAL:
        site = rng.choice(
            ["putamen", "thalamus", "lobar", "cerebellum"],
            p=np.array([4, 1.5, 3.5, 1]) / 10,
        )
        mean_r = rng.uniform(6, 24 if site == "lobar" else 17)
        if site == "lobar":
            phi, z = rng.uniform(0, 2 * np.pi), within(rng.uniform(70, 110))
            scale = 0.5 * level_scale(head, z, -head.skull_mm)
            centre = (
                np.cos(phi) * (head.a_mm - head.skull_mm) * scale,
                np.sin(phi) * (head.b_mm - head.skull_mm) * scale,
                z,
            )
        else:
            cx, cy, cz = {"putamen": (24, -3, 56), "thalamus": (11, 8, 58)}.get(
                str(site), (22, 48, 22)
            )
            centre = (side * cx * sx, cy * sy, within(cz))
        radii = tuple(float(mean_r * rng.uniform(0.7, 1.3)) for _ in range(3))
        shape = Blob(
            centre=(float(centre[0]), float(centre[1]), float(centre[2])),
            radii=(radii[0], radii[1], radii[2]),
            angle_rad=float(rng.uniform(0, np.pi)),
            oedema_mm=float(rng.uniform(1.5, 6)),
            csf_only=False,
        )
        shift = float(np.clip(0.4 * (mean_r - 8), 0, 8)) * (-np.sign(centre[0]) or 1)
        return Bleed(
            kind,
            shape,
            float(rng.uniform(55, 85)),
            shift,
            centre[1],
            centre[2],
            1.5 * radii[2],
        )
    if kind is HemorrhageType.SUBARACHNOID:
        choice = rng.integers(3)
        cx, cy, cz = [(0, -16, 45), (side * 45, -17, 52), (0, -50, 75)][choice]
        radius = float(rng.uniform(30, 55) if choice == 0 else rng.uniform(25, 42))
        shape = Blob((cx * sx, cy * sy, within(cz)), (radius,) * 3, 0.0, 0.0, True)
        return Bleed(kind, shape, float(rng.uniform(55, 75)), 0.0, 0.0, 0.0, 1.0)
    if kind is HemorrhageType.INTRAVENTRICULAR:
        which = int(rng.choice([-1, 0, 1], p=[0.35, 0.3, 0.35]))
        shape = Layering(which, float(rng.uniform(4, 16) * sy))
        return Bleed(kind, shape, float(rng.uniform(60, 85)), 0.0, 0.0, 0.0, 1.0)
    lens = kind is HemorrhageType.EPIDURAL
    if lens:
        thickness, half_angle = rng.uniform(8, 22), np.deg2rad(rng.uniform(18, 32))
        half_height, z = rng.uniform(14, 28), within(rng.uniform(45, 95))
        angle = np.deg2rad(rng.uniform(-40, 30))
    else:
        thickness, half_angle = rng.uniform(4, 14), np.deg2rad(rng.uniform(50, 80))
        half_height, z = rng.uniform(30, 50), within(rng.uniform(70, 105))
        angle = np.deg2rad(rng.uniform(-35, 35))
    shape = Convexity(
        side,
        float(angle),
        z,
        float(half_angle),
        float(half_height),
        float(thickness),
        lens,
    )
    shift = -side * float(np.clip((0.45 if not lens else 0.35) * thickness - 1, 0, 10))
    return Bleed(
        kind,
        shape,
        float(rng.uniform(60, 90) if lens else rng.uniform(55, 80)),
        shift,
        float(np.sin(angle) * head.b_mm * 0.8),
        z,
        float(half_height),
    )


_PARENCHYMA: Final = np.isin(
    np.arange(len(Tissue)),
    [Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY, Tissue.CEREBELLUM, Tissue.BRAINSTEM],
)


def paint_bleed(bleed: Bleed, head: Head, anatomy: SliceAnatomy) -> Mask:
    """Paint the bleed (and its oedema) into ``anatomy.labels``.

    A slice without blood is left untouched.

    Returns:
        The slice's blood mask.
    """
    lab, z, f = anatomy.labels, anatomy.z_mm, anatomy.field
    x, y = head.x, head.y
    shape = bleed.shape
    blood: Mask
    if isinstance(shape, Blob):
        cx, cy, cz = shape.centre
        rx, ry, rz = shape.radii
        dz = ((z - cz) / rz) ** 2
        if dz > 1.6:
            return np.zeros(lab.shape, np.bool_)
        c, s = np.cos(shape.angle_rad), np.sin(shape.angle_rad)
        u, v = (x - cx) * c + (y - cy) * s, (y - cy) * c - (x - cx) * s
        # The sulcal field roughens the margin: clots are lobulated.
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2 + dz) + 0.15 * f
        if shape.csf_only:
            blood = anatomy.cavity & (lab == Tissue.CSF) & (rho < 1)
        else:
            blood = anatomy.cavity & (rho < 1)
            if blood.any():  # oedema only around blood seen on this slice
                rim = 1 + shape.oedema_mm / ((rx + ry + rz) / 3)
                lab[_PARENCHYMA[lab] & (rho < rim)] = Tissue.OEDEMA
    elif isinstance(shape, Convexity):
        dz = ((z - shape.z_mm) / shape.half_height_mm) ** 2
        if dz >= 1:
            return np.zeros(lab.shape, np.bool_)
        theta = np.arctan2(y, shape.side * x) - shape.angle_rad
        left = np.clip(1 - (theta / shape.half_angle_rad) ** 2 - dz, 0, None)
        # A lens ends abruptly (the dura is stuck at the sutures); a crescent tapers.
        profile = np.sqrt(left) if shape.lens else left**0.7
        depth = anatomy.inner_table_depth_mm
        blood = anatomy.cavity & (depth < shape.max_thickness_mm * profile)
    else:
        # Supine patient: blood settles in the dependent, posterior horns.
        blood = (lab == Tissue.VENT) & (anatomy.ys > shape.level_mm)
        if shape.side:
            blood &= anatomy.xs * shape.side > 0
    lab[blood] = Tissue.BLOOD
    return blood


def hemorrhage_truth(
    kind: HemorrhageType, blood: Mask, voxel_ml: float
) -> HemorrhageTruth:
    """Summarise a blood mask (slices, rows, cols) as ground truth.

    Args:
        kind: Kind of haemorrhage.
        blood: Blood voxels; at least one must be set.
        voxel_ml: Volume of one voxel (mL).
    """
    areas = blood.sum(axis=(1, 2))
    k = int(np.argmax(areas))
    m = blood[k]
    rows, cols = m.shape
    # Prefer pixels whose 3 x 3 neighbourhood is all blood: the centre must stay
    # blood after the scanner blur, even in a thin bleed.
    p = np.pad(m, 1).astype(np.int16)
    score = np.zeros((rows, cols), np.int16)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            score += p[dr : dr + rows, dc : dc + cols]
    score *= m
    best_r, best_c = np.nonzero(score == score.max())
    mean_r, mean_c = np.argwhere(m).mean(axis=0)
    j = int(np.argmin((best_r - mean_r) ** 2 + (best_c - mean_c) ** 2))
    return HemorrhageTruth(
        hemorrhage_type=kind,
        slice_labels=tuple(bool(v) for v in np.asarray(areas > 0)),
        centre_slice=k,
        centre_row=int(best_r[j]),
        centre_col=int(best_c[j]),
        volume_ml=float(areas.sum() * voxel_ml),
    )
