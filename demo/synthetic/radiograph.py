"""Synthetic limb radiographs (forearm, leg, humerus) with fracture ground truth.

A limb is soft tissue around one or two tubular bones, projected through a
monoenergetic attenuation model, with quantum noise, detector processing and
collimator shutters. Rows run along the limb, proximal end on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from demo.synthetic._shared import BLUR121_NOISE_GAIN, blur121, box_blur, check_seed
from demo.synthetic.values import (
    FracturePattern,
    FractureTruth,
    Radiograph,
    RadiographBodyPart,
)

RADIOGRAPH_MAX_VALUE: Final = 4095  # 12 bits stored
# Independent random streams of one seed (see head_ct).
_ANATOMY, _FRACTURE, _NOISE = 10, 11, 12

_BONE_T: Final = (0.0, 0.12, 0.5, 0.82, 1.0)  # knots along the limb, top to bottom


@dataclass(frozen=True, slots=True)
class _Bone:
    """A long bone as a tube: values at ``_BONE_T`` (mm, across the limb)."""

    centre_mm: tuple[float, ...]
    radius_mm: tuple[float, ...]
    cortex_mm: tuple[float, ...]
    fracture_t: tuple[float, float]  # where along the limb a fracture may sit
    fracture_weight: float


@dataclass(frozen=True, slots=True)
class _Limb:
    field_of_view_mm: float  # along the rows
    soft_t: tuple[float, ...]
    soft_half_width_mm: tuple[float, ...]
    bones: tuple[_Bone, ...]


_LIMBS: Final = {
    RadiographBodyPart.FOREARM: _Limb(
        320,
        (0, 0.3, 0.7, 1),
        (46, 40, 31, 27),
        (
            _Bone(
                (-7, -10, -14, -14, -13),
                (8.5, 6.5, 6.5, 9, 15),
                (1.2, 2.0, 2.6, 1.6, 1.0),
                (0.3, 0.9),
                0.65,
            ),
            _Bone(
                (9, 10, 11, 11.5, 10),
                (13, 8.5, 5.8, 5, 6.5),
                (1.3, 2.4, 2.4, 1.8, 1.2),
                (0.3, 0.85),
                0.35,
            ),
        ),
    ),
    RadiographBodyPart.LEG: _Limb(
        430,
        (0, 0.3, 0.75, 1),
        (62, 56, 40, 36),
        (
            _Bone(
                (-6, -5, -4, -4, -3),
                (32, 17, 13.5, 16, 24),
                (1.5, 3.5, 5, 2.5, 1.2),
                (0.3, 0.85),
                0.75,
            ),
            _Bone(
                (30, 27, 22, 22, 25),
                (10, 6.5, 6, 6.5, 10),
                (1.2, 2, 2.2, 1.8, 1.2),
                (0.3, 0.8),
                0.25,
            ),
        ),
    ),
    RadiographBodyPart.HUMERUS: _Limb(
        360,
        (0, 0.3, 0.7, 1),
        (55, 50, 46, 50),
        (
            _Bone(
                (0, 0, 0, 0, 2),
                (25, 13, 11, 13, 26),
                (1.5, 3.5, 4, 3, 1.3),
                (0.25, 0.8),
                1.0,
            ),
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class _FracturePlan:
    bone: int
    s_mm: float  # along the limb axis
    u_mm: float  # across it: the bone's centre at the fracture
    angle_rad: float
    pattern: FracturePattern
    shift_mm: float
    angulation_rad: float
    width_mm: float


def _plan_fracture(
    rng: np.random.Generator, limb: _Limb, scale: float, length_mm: float
) -> _FracturePlan:
    weights = np.array([b.fracture_weight for b in limb.bones])
    index = int(rng.choice(len(limb.bones), p=weights / weights.sum()))
    bone = limb.bones[index]
    t = float(rng.uniform(*bone.fracture_t))
    radius = float(np.interp(t, _BONE_T, bone.radius_mm)) * scale
    transverse = rng.random() < 0.55
    angle = (
        rng.uniform(-12, 12)
        if transverse
        else rng.choice([-1, 1]) * rng.uniform(30, 55)
    )
    displaced = rng.random() < 0.6
    shift = (
        float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.5) * radius)
        if displaced
        else 0.0
    )
    return _FracturePlan(
        bone=index,
        s_mm=(t - 0.5) * length_mm,
        u_mm=float(np.interp(t, _BONE_T, bone.centre_mm)) * scale,
        angle_rad=float(np.deg2rad(angle)),
        pattern=FracturePattern.TRANSVERSE if transverse else FracturePattern.OBLIQUE,
        shift_mm=shift,
        angulation_rad=float(np.deg2rad(rng.uniform(-6, 6))) if displaced else 0.0,
        width_mm=float(rng.uniform(0.3, 0.8) + (0.4 if displaced else 0.0)),
    )


def _trabecular_texture(
    rng: np.random.Generator, shape: tuple[int, int], pixel_mm: float, axis_rad: float
) -> NDArray[np.float32]:
    """Unit-variance band-pass noise, streaked along the limb's axis."""
    spectrum = np.fft.rfft2(rng.standard_normal(shape))
    fy = np.fft.fftfreq(shape[0], d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=pixel_mm)[None, :]
    along = fx * np.sin(axis_rad) + fy * np.cos(axis_rad)
    across = fx * np.cos(axis_rad) - fy * np.sin(axis_rad)
    radial = np.hypot(2.5 * along, across)  # slow along the axis: streaks
    peak = min(0.6, 0.3 / pixel_mm)  # cycles/mm: ~1.7 mm trabecular spacing
    texture = np.fft.irfft2(
        spectrum * np.exp(-(((radial - peak) / (0.4 * peak)) ** 2)), s=shape
    )
    return (texture / max(float(texture.std()), 1e-6)).astype(np.float32)


def radiograph_pixels(
    seed: int,
    *,
    body_part: RadiographBodyPart | str = RadiographBodyPart.FOREARM,
    fracture: bool = False,
    size: tuple[int, int] = (1024, 768),
) -> Radiograph:
    """Synthesise a processed limb radiograph (12-bit, bright = bone).

    Soft tissue and one or two tubular bones (cortex brighter than medulla, with
    trabecular texture) are projected through a monoenergetic attenuation model,
    with quantum noise, edge enhancement and collimation. Anatomy, fracture and
    noise are independent streams of ``seed``.

    Args:
        seed: Non-negative case number; equal seeds give identical images.
        body_part: Limb to draw; its long axis runs down the rows, proximal on top.
        fracture: Whether to break one bone (a lucent line, maybe displaced).
        size: (rows, columns) in pixels; the rows always span the limb's field of
            view (320 mm forearm, 430 mm leg, 360 mm humerus).

    Returns:
        The pixels (uint16 in [0, 4095], MONOCHROME2 sense), bone map and truth.

    Raises:
        ValueError: On a negative seed or an image smaller than 64 x 48.
    """
    check_seed(seed)
    rows, cols = size
    if rows < 64 or cols < 48:
        raise ValueError(f"radiograph size must be at least 64 x 48, got {size}")
    part = RadiographBodyPart(body_part)
    limb = _LIMBS[part]
    rng = np.random.default_rng([seed, _ANATOMY])
    pixel = limb.field_of_view_mm / rows
    axis = np.deg2rad(rng.uniform(-6, 6))
    offset = rng.uniform(-0.08, 0.08) * cols * pixel
    scale = float(rng.uniform(0.88, 1.12))
    depth_ratio = rng.uniform(0.7, 0.9)  # limbs are flatter front to back
    mu_soft, mu_cortex, mu_marrow = 0.022, rng.uniform(0.1, 0.13), 0.04  # per mm
    xx = ((np.arange(cols) - (cols - 1) / 2) * pixel - offset)[None, :]
    yy = ((np.arange(rows) - (rows - 1) / 2) * pixel)[:, None]
    s = (xx * np.sin(axis) + yy * np.cos(axis)).astype(np.float32)
    u = (xx * np.cos(axis) - yy * np.sin(axis)).astype(np.float32)
    t = s / np.float32(rows * pixel) + np.float32(0.5)
    half = np.interp(t, limb.soft_t, limb.soft_half_width_mm).astype(np.float32) * scale
    att = mu_soft * 2 * depth_ratio * np.sqrt(np.clip(half**2 - u**2, 0, None))
    texture = _trabecular_texture(rng, (rows, cols), pixel, float(axis))
    ends = np.clip(np.abs(t - 0.5) * 2, 0, 1) ** 2  # metaphyses: coarser trabeculae
    marrow = mu_marrow * (1 + (0.12 + 0.2 * ends) * texture)
    labels = np.zeros((rows, cols), np.uint8)
    plan = None
    if fracture:
        plan = _plan_fracture(
            np.random.default_rng([seed, _FRACTURE]), limb, scale, rows * pixel
        )
    for i, bone in enumerate(limb.bones):
        ui = u
        gap = None
        if plan is not None and plan.bone == i:
            across = (s - plan.s_mm) * np.cos(plan.angle_rad) - (
                u - plan.u_mm
            ) * np.sin(plan.angle_rad)
            lever = plan.shift_mm + np.tan(plan.angulation_rad) * (s - plan.s_mm)
            ui = u - (across > 0) * lever  # the distal fragment moves
            gap = 1 - 0.9 * np.exp(-((across / plan.width_mm) ** 2))
        centre = np.interp(t, _BONE_T, bone.centre_mm).astype(np.float32) * scale
        outer_r = np.interp(t, _BONE_T, bone.radius_mm).astype(np.float32) * scale
        inner_r = (
            outer_r - np.interp(t, _BONE_T, bone.cortex_mm).astype(np.float32) * scale
        )
        du2 = (ui - centre) ** 2
        outer = 2 * np.sqrt(np.clip(outer_r**2 - du2, 0, None))
        inner = 2 * np.sqrt(np.clip(inner_r**2 - du2, 0, None))
        bone_att = (mu_cortex - mu_soft) * (outer - inner) + (marrow - mu_soft) * inner
        att += bone_att if gap is None else bone_att * gap
        labels[outer > 0] = i + 1

    noise_rng = np.random.default_rng([seed, _NOISE])
    photons = noise_rng.uniform(3000, 12000)  # per pixel, unattenuated
    white = noise_rng.standard_normal((rows, cols), dtype=np.float32)
    att += (
        blur121(white) / np.float32(BLUR121_NOISE_GAIN) * np.sqrt(np.exp(att) / photons)
    )
    # Detector processing: unsharp masking lifts edges and trabeculae.
    radius = max(1, round(4 / pixel))
    base = box_blur(box_blur(att.astype(np.float32), radius), radius)
    processed = att + noise_rng.uniform(0.5, 1.2) * (att - base)
    margins = noise_rng.uniform(0.02, 0.1, 4)
    top, bottom = round(margins[0] * rows), rows - round(margins[1] * rows)
    left, right = round(margins[2] * cols), cols - round(margins[3] * cols)
    lo, hi = np.percentile(processed[top:bottom, left:right], [0.5, 99.8])
    level = np.clip((processed - lo) / max(hi - lo, 1e-6), 0, 1) ** noise_rng.uniform(
        0.75, 1.0
    )
    value = 120 + 3700 * level
    # Collimator shutters: no exposure reads as white, with a soft penumbra.
    edge = max(1.0, 0.8 / pixel)
    r_idx, c_idx = np.arange(rows), np.arange(cols)
    open_rows = np.clip((r_idx - top) / edge, 0, 1) * np.clip(
        (bottom - r_idx) / edge, 0, 1
    )
    open_cols = np.clip((c_idx - left) / edge, 0, 1) * np.clip(
        (right - c_idx) / edge, 0, 1
    )
    opening = np.outer(open_rows, open_cols)
    value = opening * value + (1 - opening) * (3950 + 30 * white)
    pixels = np.clip(np.rint(value), 0, RADIOGRAPH_MAX_VALUE).astype(np.uint16)

    truth = None
    if plan is not None:
        x_mm = plan.s_mm * np.sin(axis) + plan.u_mm * np.cos(axis) + offset
        y_mm = plan.s_mm * np.cos(axis) - plan.u_mm * np.sin(axis)
        truth = FractureTruth(
            bone_index=plan.bone,
            centre_row=round(y_mm / pixel + (rows - 1) / 2),
            centre_col=round(x_mm / pixel + (cols - 1) / 2),
            pattern=plan.pattern,
            angle_deg=round(float(np.rad2deg(plan.angle_rad)), 1),
            displacement_mm=round(abs(plan.shift_mm), 2),
        )
    return Radiograph(
        pixels=pixels,
        bone_labels=labels,
        fracture=truth,
        body_part=part,
        pixel_spacing_mm=pixel,
    )
