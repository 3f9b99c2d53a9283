"""Synthetic non-contrast head CT volumes in HU, with haemorrhage ground truth."""

from __future__ import annotations

import numpy as np

from demo.synthetic._shared import BLUR121_NOISE_GAIN, blur121, check_seed
from demo.synthetic.hemorrhage import hemorrhage_truth, paint_bleed, plan_bleed
from demo.synthetic.phantom import (
    CT_FIELD_OF_VIEW_MM,
    CT_HEAD_COVERAGE_MM,
    Tissue,
    make_head,
    paint_anatomy,
    render_hu,
)
from demo.synthetic.values import CtHeadVolume, HemorrhageType

# Independent random streams of one seed: changing the bleed leaves the anatomy
# and the noise alone, so a case with and without blood differ only there.
_ANATOMY, _BLEED, _NOISE = 0, 1, 2


def ct_head_volume_hu(
    seed: int,
    *,
    slices: int = 32,
    size: int = 512,
    hemorrhage: HemorrhageType | str | None = None,
    noise_hu: float | None = None,
    slice_thickness_mm: float | None = None,
) -> CtHeadVolume:
    """Synthesise a non-contrast head CT volume in HU, with its ground truth.

    The slab is centred on the head; the default covers skull base to vertex
    (160 mm). Anatomy, pose, noise and the bleed are independent random streams
    of ``seed``: the same seed with and without a haemorrhage differs only on the
    slices that show blood (the bleed, its oedema and mass effect).

    Args:
        seed: Non-negative case number; equal arguments give identical volumes.
        slices: Number of axial slices.
        size: Rows and columns per slice; the field of view is always 230 mm.
        hemorrhage: Kind of acute bleed to add, or None for a normal head.
        noise_hu: Standard deviation of the quantum noise (HU); None draws 3-6 HU
            from the seed, 0 gives the noise-free phantom.
        slice_thickness_mm: Slice spacing and thickness (mm); None gives 5 mm, or
            less where ``slices`` x 5 mm would pass the 160 mm head coverage.

    Returns:
        The volume (int16 HU, slice 0 most inferior), blood mask and truth.

    Raises:
        ValueError: On a negative seed, a tiny size, or a slab so thin that it
            misses the requested bleed.
    """
    check_seed(seed)
    if slices < 1 or size < 32:
        raise ValueError(f"need slices >= 1 and size >= 32, got {slices}, {size}")
    kind = HemorrhageType(hemorrhage) if hemorrhage is not None else None
    head = make_head(np.random.default_rng([seed, _ANATOMY]), size)
    noise_rng = np.random.default_rng([seed, _NOISE])
    drawn_noise = float(noise_rng.uniform(3, 6))
    sigma = drawn_noise if noise_hu is None else float(noise_hu)
    spacing = slice_thickness_mm or min(5.0, CT_HEAD_COVERAGE_MM / slices)
    first = head.z_start_mm + (CT_HEAD_COVERAGE_MM - (slices - 1) * spacing) / 2
    z_mm = [first + spacing * i for i in range(slices)]
    bleed = None
    lut = head.hu.copy()
    if kind is not None:
        rng = np.random.default_rng([seed, _BLEED])
        bleed = plan_bleed(rng, head, kind, (z_mm[0], z_mm[-1]))
        lut[Tissue.BLOOD] = bleed.hu

    hu = np.empty((slices, size, size), np.int16)
    blood = np.zeros((slices, size, size), np.bool_)
    # Filtered back-projection noise is correlated over about a pixel: blur white
    # noise with the scanner's kernel and restore its standard deviation.
    noise_gain = np.float32(sigma / BLUR121_NOISE_GAIN)
    for i, z in enumerate(z_mm):
        anatomy = paint_anatomy(head, z, None)
        if bleed is not None:
            here = paint_bleed(bleed, head, anatomy)
            # Mass effect only where the bleed shows: a slice without blood stays
            # identical to the same seed without a bleed, so negatives are clean.
            shift = bleed.midline_shift_mm(head.y, z) if here.any() else None
            if shift is not None:
                anatomy = paint_anatomy(head, z, shift)
                here = paint_bleed(bleed, head, anatomy)
            blood[(i, *head.box)] = here
        image = render_hu(head, anatomy, lut)
        # Drawn even when unused, so the noise stream never depends on noise_hu.
        white = noise_rng.standard_normal((size, size), dtype=np.float32)
        if sigma > 0:
            image += noise_gain * blur121(white)
        hu[i] = np.clip(np.rint(image), -1024, 3071)

    pixel = CT_FIELD_OF_VIEW_MM / size
    truth = None
    if kind is not None:
        if not blood.any():
            raise ValueError("the slab misses the bleed: use more or thicker slices")
        truth = hemorrhage_truth(kind, blood, pixel * pixel * spacing / 1000)
    return CtHeadVolume(
        hu=hu,
        blood_mask=blood,
        slice_labels=tuple(bool(v) for v in np.asarray(blood.any(axis=(1, 2)))),
        hemorrhage=truth,
        pixel_spacing_mm=pixel,
        slice_spacing_mm=float(spacing),
        slice_z_mm=tuple(round(z, 3) for z in z_mm),
        noise_hu=sigma,
    )
