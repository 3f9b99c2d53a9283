"""Image plane geometry (plain Python)."""

from __future__ import annotations

import math

from triage.geometry import is_axial, slice_normal


def test_axial_is_told_from_the_orientation() -> None:
    assert is_axial([1, 0, 0, 0, 1, 0]) is True
    assert is_axial([0, 1, 0, 0, 0, -1]) is False  # sagittal
    assert is_axial([1, 0, 0, 0, 0, -1]) is False  # coronal
    assert is_axial(None) is None
    assert is_axial([1, 0, 0]) is None
    assert is_axial([0, 0, 0, 0, 0, 0]) is None


def test_a_gantry_tilt_within_twenty_degrees_stays_axial() -> None:
    for degrees, axial in ((15, True), (19, True), (21, False), (30, False)):
        tilt = math.radians(degrees)
        orientation = [1, 0, 0, 0, math.cos(tilt), math.sin(tilt)]
        assert is_axial(orientation) is axial, degrees


def test_the_slice_normal_is_the_cross_product() -> None:
    assert slice_normal([1, 0, 0, 0, 1, 0]) == (0, 0, 1)
    assert slice_normal([0, 1, 0, 0, 0, -1]) == (-1, 0, 0)
