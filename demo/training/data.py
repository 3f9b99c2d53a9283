"""Synthetic training sets for the demo models, drawn from ``demo.synthetic``.

Numpy only (no torch), so the held-out sets can be rebuilt by the tests. Every
set is a pure function of its seeds.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from demo.synthetic import (
    HemorrhageType,
    RadiographBodyPart,
    ct_head_volume_hu,
    radiograph_pixels,
)
from inference import evaluation, runtime
from inference.manifest import LoadedManifest

HEMORRHAGE_TYPES: Final = tuple(HemorrhageType)
BODY_PARTS: Final = tuple(RadiographBodyPart)
# Seed ranges kept apart, so a held-out case is never a training case.
TRAIN_SEED_BASE: Final = 1_000_000
HELD_OUT_SEED_BASE: Final = 9_000_000
CT_GENERATED_SIZE: Final = 256
CT_STORED_SIZE: Final = 160
XR_GENERATED_SIZE: Final = (512, 384)
XR_STORED_SIZE: Final = (256, 192)


@dataclass(frozen=True, slots=True)
class CtCase:
    """What to draw: a seed, a slice count and a bleed (or None)."""

    seed: int
    slices: int
    hemorrhage: HemorrhageType | None


@dataclass(frozen=True, slots=True, eq=False)
class CtVolume:
    """One drawn head CT, resized for training.

    Attributes:
        hu: int16 (slices, size, size).
        blood: bool (slices, size, size).
        labels: bool (slices,).
        centre_slice: Slice with most blood, or -1 when normal.
    """

    hu: NDArray[np.int16]
    blood: NDArray[np.bool_]
    labels: NDArray[np.bool_]
    centre_slice: int


def ct_cases(
    count: int, *, seed_base: int, positive_fraction: float = 0.55
) -> list[CtCase]:
    """Plan ``count`` head CTs: bleed types in turn, slice counts 24-40."""
    rng = np.random.default_rng(seed_base)
    cases = []
    for i in range(count):
        positive = rng.random() < positive_fraction
        kind = HEMORRHAGE_TYPES[i % len(HEMORRHAGE_TYPES)] if positive else None
        cases.append(CtCase(seed_base + i, int(rng.integers(24, 41)), kind))
    return cases


def draw_ct(
    case: CtCase, size: int = CT_GENERATED_SIZE, stored: int = CT_STORED_SIZE
) -> CtVolume:
    """Draw one case and resize it to ``stored`` pixels a side."""
    volume = ct_head_volume_hu(
        case.seed, slices=case.slices, size=size, hemorrhage=case.hemorrhage
    )
    if stored != size:
        hu = (
            np.stack(
                [
                    cv2.resize(
                        s.astype(np.float32),
                        (stored, stored),
                        interpolation=cv2.INTER_AREA,
                    )
                    for s in volume.hu
                ]
            )
            .round()
            .astype(np.int16)
        )
        blood = np.stack(
            [
                cv2.resize(
                    m.astype(np.uint8),
                    (stored, stored),
                    interpolation=cv2.INTER_NEAREST,
                )
                for m in volume.blood_mask
            ]
        ).astype(bool)
    else:
        hu, blood = volume.hu, volume.blood_mask
    truth = volume.hemorrhage
    return CtVolume(
        hu=hu,
        blood=blood,
        labels=np.asarray(volume.slice_labels, dtype=bool),
        centre_slice=truth.centre_slice if truth is not None else -1,
    )


def draw_many_ct(cases: Sequence[CtCase], processes: int = 2) -> list[CtVolume]:
    """Draw cases in ``processes`` worker processes, in order."""
    if processes <= 1:
        return [draw_ct(c) for c in cases]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(draw_ct, cases, chunksize=4)


@dataclass(frozen=True, slots=True)
class XrCase:
    """What to draw: a seed, a limb and whether it is broken."""

    seed: int
    body_part: RadiographBodyPart
    fracture: bool


def xr_cases(count: int, *, seed_base: int) -> list[XrCase]:
    """Plan ``count`` radiographs, half broken, limbs in turn."""
    rng = np.random.default_rng(seed_base + 1)
    return [
        XrCase(seed_base + i, BODY_PARTS[i % len(BODY_PARTS)], bool(rng.random() < 0.5))
        for i in range(count)
    ]


def draw_xr(
    case: XrCase,
    size: tuple[int, int] = XR_GENERATED_SIZE,
    stored: tuple[int, int] = XR_STORED_SIZE,
) -> tuple[NDArray[np.float32], bool, NDArray[np.bool_]]:
    """Draw one radiograph (presentation values) resized to ``stored``, with a
    mask of the bone around the fracture (empty when intact)."""
    image = radiograph_pixels(
        case.seed, body_part=case.body_part, fracture=case.fracture, size=size
    )
    pixels = image.pixels.astype(np.float32)
    mask: NDArray[np.uint8] = np.zeros(size, dtype=np.uint8)
    if image.fracture is not None:
        rows, cols = np.ogrid[: size[0], : size[1]]
        radius = 0.05 * size[0]
        near = (rows - image.fracture.centre_row) ** 2 + (
            cols - image.fracture.centre_col
        ) ** 2 <= radius**2
        mask = (near & (image.bone_labels > 0)).astype(np.uint8)
    if stored != size:
        pixels = np.asarray(
            cv2.resize(pixels, (stored[1], stored[0]), interpolation=cv2.INTER_AREA),
            dtype=np.float32,
        )
        mask = np.asarray(
            cv2.resize(mask, (stored[1], stored[0]), interpolation=cv2.INTER_NEAREST),
            dtype=np.uint8,
        )
    return pixels, image.label, mask.astype(bool)


def draw_many_xr(
    cases: Sequence[XrCase], processes: int = 2
) -> list[tuple[NDArray[np.float32], bool, NDArray[np.bool_]]]:
    """Draw radiographs in ``processes`` worker processes, in order."""
    if processes <= 1:
        return [draw_xr(c) for c in cases]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(draw_xr, cases, chunksize=8)


def held_out_hemorrhage(
    count: int = 60, *, size: int = 512
) -> list[tuple[NDArray[np.float32], CtVolumeTruth]]:
    """The held-out synthetic head CTs (fixed seeds, never trained on).

    Returns (pixels, truth) pairs: HU as float32 (slices, 1, size, size), as the
    scorer reads a stored series, and the volume's ground truth.
    """
    cases = ct_cases(count, seed_base=HELD_OUT_SEED_BASE, positive_fraction=0.5)
    out = []
    for case in cases:
        volume = ct_head_volume_hu(
            case.seed, slices=case.slices, size=size, hemorrhage=case.hemorrhage
        )
        truth = CtVolumeTruth(
            positive=volume.hemorrhage is not None,
            centre_slice=volume.hemorrhage.centre_slice if volume.hemorrhage else -1,
            slice_labels=volume.slice_labels,
        )
        out.append((volume.hu.astype(np.float32)[:, np.newaxis], truth))
    return out


def score_held_out_hemorrhage(
    session: runtime.Session, model: LoadedManifest, count: int, *, size: int = 512
) -> list[evaluation.SeriesResult]:
    """Score the held-out head CTs as the scorer would, each with its truth."""
    return [
        evaluation.score_volume(
            session,
            model,
            pixels,
            label=truth.positive,
            centre_slice=truth.centre_slice,
            slice_labels=truth.slice_labels,
        )
        for pixels, truth in held_out_hemorrhage(count, size=size)
    ]


@dataclass(frozen=True, slots=True)
class CtVolumeTruth:
    """Ground truth of a held-out head CT."""

    positive: bool
    centre_slice: int
    slice_labels: tuple[bool, ...]


def held_out_fracture(count: int = 120) -> list[tuple[NDArray[np.float32], bool]]:
    """The held-out synthetic radiographs (fixed seeds) at the generator's
    default 1024x768, as (presentation pixels (1, 1, rows, cols), label)."""
    out = []
    for case in xr_cases(count, seed_base=HELD_OUT_SEED_BASE):
        image = radiograph_pixels(
            case.seed, body_part=case.body_part, fracture=case.fracture
        )
        out.append(
            (image.pixels.astype(np.float32)[np.newaxis, np.newaxis], image.label)
        )
    return out
