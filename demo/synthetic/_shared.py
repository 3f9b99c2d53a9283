"""Array aliases, small filters and checks that the synthetic generators share."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.floating[Any]]
Mask = NDArray[np.bool_]


def box_blur(a: Floats, radius: int) -> NDArray[np.float32]:
    """Mean over a (2 radius + 1)² square of pixels, edges replicated."""
    out = np.asarray(a, dtype=np.float32)
    if radius < 1:
        return out
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        # Running sums make the cost independent of the radius.
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float64)
        n = out.shape[axis]
        hi = np.take(c, range(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(c, range(n), axis=axis)
        out = ((hi - lo) / (2 * radius + 1)).astype(np.float32)
    return out


def blur121(a: Floats) -> NDArray[np.float32]:
    """Separable [1, 2, 1] / 4 blur: a detector's point spread of about a pixel.

    White noise through it keeps 0.375 of its standard deviation.
    """
    p = np.pad(np.asarray(a, dtype=np.float32), 1, mode="edge")
    v = p[:-2] + 2 * p[1:-1] + p[2:]
    out: NDArray[np.float32] = ((v[:, :-2] + 2 * v[:, 1:-1] + v[:, 2:]) / 16).astype(
        np.float32
    )
    return out


BLUR121_NOISE_GAIN = 0.375


def check_seed(seed: int) -> None:
    """Reject seeds that numpy's SeedSequence cannot take."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
