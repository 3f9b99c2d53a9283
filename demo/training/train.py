"""Train the two demo models on synthetic phantoms and export them to ONNX.

Hemorrhage: per slice of a non-contrast head CT, channels = brain, subdural and
bone windows of the slice plus the brain window of the slices below and above.
A third of each training batch is turned into what an 8-bit brain-window picture
carries (window jitter, 8-bit quantisation, gamma, blur, zoom to the skull,
burned-in letters, calcified dots, no neighbours) and read back as HU, so the
same model scores real pictures through ``gray8_to_pixels``.

Fracture: one limb radiograph, standardised per image.

Windowing, resize and slice context go inside the ONNX graph (a small ONNX
pre-processing graph merged before the exported network), so they run on the
GPU where there is one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from demo.training.data import CtVolume
from demo.training.nets import EvidenceNet

HEM_INPUT: Final = 128
# (name, centre, width, slice offset): the manifest lists the same.
HEM_CHANNELS: Final = (
    ("brain", 40.0, 80.0, 0),
    ("subdural", 80.0, 200.0, 0),
    ("bone", 600.0, 2800.0, 0),
    ("brain-below", 40.0, 80.0, -1),
    ("brain-above", 40.0, 80.0, 1),
)
XR_INPUT: Final = (256, 192)


def hemorrhage_net() -> EvidenceNet:
    """The hemorrhage network: 128 px in, a 16x16 evidence map out."""
    return EvidenceNet(
        len(HEM_CHANNELS),
        24,
        [(32, 2, 1), (64, 2, 1), (96, 1, 2), (128, 1, 4)],
    )


def fracture_net() -> EvidenceNet:
    """The fracture network: 256x192 px in, a 16x12 evidence map out."""
    return EvidenceNet(1, 16, [(24, 2, 1), (32, 2, 1), (48, 2, 1), (64, 1, 2)])


def hu_to_channels(hu: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) HU of slices below/at/above -> (B, 5, H, W) windows."""
    out = []
    for _, centre, width, offset in HEM_CHANNELS:
        source = hu[:, 1 + offset]
        out.append(((source - (centre - width / 2)) / width).clamp(0, 1))
    return torch.stack(out, dim=1)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Per-image (x - mean) / std, as the fracture graph does."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6)


# ------------------------------------------------------------------ augmentation


def _affine(
    rng: np.random.Generator,
    batch: int,
    *,
    rotate_deg: float,
    zoom: tuple[float, float],
    shift: float,
    flip_lr: bool,
    flip_ud: bool = False,
) -> torch.Tensor:
    theta = np.zeros((batch, 2, 3), dtype=np.float32)
    for i in range(batch):
        angle = math.radians(rng.uniform(-rotate_deg, rotate_deg))
        scale = 1.0 / rng.uniform(*zoom)
        aspect = rng.uniform(0.93, 1.07)
        sx = scale * aspect * (-1 if flip_lr and rng.random() < 0.5 else 1)
        sy = scale / aspect * (-1 if flip_ud and rng.random() < 0.5 else 1)
        cos, sin = math.cos(angle), math.sin(angle)
        theta[i] = [
            [cos * sx, -sin * sy, rng.uniform(-shift, shift)],
            [sin * sx, cos * sy, rng.uniform(-shift, shift)],
        ]
    return torch.from_numpy(theta)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return x
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    kx = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    ky = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"), kx, groups=channels
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="replicate"), ky, groups=channels
    )


_LETTERS: Final = "ABLRSPIHF0123456789"


def _text_masks(rng: np.random.Generator, count: int, size: int) -> torch.Tensor:
    """Masks of burned-in letters, digits and rulers near the picture's edges."""
    masks = np.zeros((count, size, size), dtype=np.uint8)
    for i in range(count):
        for _ in range(int(rng.integers(1, 4))):
            text = "".join(rng.choice(list(_LETTERS), size=int(rng.integers(1, 4))))
            scale = rng.uniform(0.25, 0.7)
            x = int(
                rng.choice(
                    [rng.integers(0, size // 5), rng.integers(size * 3 // 4, size - 10)]
                )
            )
            y = int(
                rng.choice(
                    [rng.integers(10, size // 5), rng.integers(size * 4 // 5, size)]
                )
            )
            cv2.putText(
                masks[i],
                text,
                (x, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                255,
                int(rng.integers(1, 3)),
                cv2.LINE_AA,
            )
        if rng.random() < 0.2:  # a ruler along one edge
            edge = int(rng.integers(size - 12, size - 4))
            masks[i, edge, size // 4 : size * 3 // 4] = 255
            masks[i, edge - 3 : edge, size // 4 : size * 3 // 4 : 8] = 255
    return torch.from_numpy(masks.astype(np.float32) / 255)


@dataclass
class HemorrhageBatches:
    """Random augmented hemorrhage batches from drawn volumes."""

    volumes: list[CtVolume]
    rng: np.random.Generator
    picture_fraction: float = 0.5

    def __post_init__(self) -> None:
        self.index = [
            (v, s) for v, vol in enumerate(self.volumes) for s in range(vol.hu.shape[0])
        ]
        self.texts = _text_masks(self.rng, 256, HEM_INPUT)

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = self.rng
        picks = rng.integers(0, len(self.index), size=batch)
        hu = np.empty((batch, 3, *self.volumes[0].hu.shape[1:]), dtype=np.float32)
        blood = np.empty((batch, 1, *self.volumes[0].hu.shape[1:]), dtype=np.float32)
        labels = np.empty(batch, dtype=np.float32)
        for i, p in enumerate(picks):
            v, s = self.index[int(p)]
            vol = self.volumes[v]
            n = vol.hu.shape[0]
            for c, off in enumerate((-1, 0, 1)):
                hu[i, c] = vol.hu[min(max(s + off, 0), n - 1)]
            blood[i, 0] = vol.blood[s]
            labels[i] = float(vol.labels[s])
        x = torch.from_numpy(hu)
        m = torch.from_numpy(blood)
        # Intensity: scanner calibration and noise.
        gain = torch.from_numpy(
            rng.uniform(0.96, 1.04, (batch, 1, 1, 1)).astype(np.float32)
        )
        offset = torch.from_numpy(
            rng.uniform(-4, 4, (batch, 1, 1, 1)).astype(np.float32)
        )
        x = x * gain + offset
        # Calcified dots (pineal, choroid plexus, vessels): dense but not blood.
        self._calcifications(x)
        # Geometry: rotation, zoom (tight crops of the skull), shift, flip.
        theta = _affine(
            rng, batch, rotate_deg=20, zoom=(0.85, 1.45), shift=0.08, flip_lr=True
        )
        grid = F.affine_grid(
            theta, [batch, 3, HEM_INPUT, HEM_INPUT], align_corners=False
        )
        x = F.grid_sample(x + 1024, grid, align_corners=False) - 1024
        m = F.grid_sample(m, grid, align_corners=False)
        # Softer or coarser reconstructions.
        for sigma in (rng.uniform(0.3, 1.3),):
            chosen = torch.from_numpy(rng.random(batch) < 0.4)
            if chosen.any():
                x[chosen] = _gaussian_blur(x[chosen], float(sigma))
        x = x + torch.randn_like(x) * float(rng.uniform(0, 4))
        # No neighbours for some slices (thick single images).
        alone = torch.from_numpy(rng.random(batch) < 0.15)
        x[alone] = x[alone][:, 1:2].repeat(1, 3, 1, 1)
        pictures = torch.from_numpy(rng.random(batch) < self.picture_fraction)
        if pictures.any():
            x[pictures] = self._as_picture(x[pictures])
        return hu_to_channels(x), labels_tensor(labels), m

    def _calcifications(self, x: torch.Tensor) -> None:
        rng = self.rng
        size = x.shape[-1]
        centre = x[:, 1].numpy()
        for i in np.flatnonzero(rng.random(x.shape[0]) < 0.4):
            rows = rng.integers(size // 5, size * 4 // 5, 24)
            cols = rng.integers(size // 5, size * 4 // 5, 24)
            values = centre[i, rows, cols]
            inside = np.flatnonzero((values > 15) & (values < 60))[
                : int(rng.integers(1, 4))
            ]
            for j in inside:
                radius = int(rng.integers(1, 3))
                r0, c0 = int(rows[j]), int(cols[j])
                x[
                    i, :, r0 - radius + 1 : r0 + radius, c0 - radius + 1 : c0 + radius
                ] = float(rng.uniform(150, 600))

    def _as_picture(self, x: torch.Tensor) -> torch.Tensor:
        """What an 8-bit brain-window picture keeps of a slice, read back as HU."""
        rng = self.rng
        n = x.shape[0]
        centre = x[:, 1:2]
        level = torch.from_numpy(rng.uniform(28, 50, (n, 1, 1, 1)).astype(np.float32))
        width = torch.from_numpy(rng.uniform(65, 140, (n, 1, 1, 1)).astype(np.float32))
        y = ((centre - (level - width / 2)) / width).clamp(0, 1)
        gamma = torch.from_numpy(rng.uniform(0.7, 1.4, (n, 1, 1, 1)).astype(np.float32))
        y = y.clamp_min(1e-4) ** gamma
        # Resampled and compressed on the way to the web: lower resolution.
        if rng.random() < 0.5:
            factor = rng.uniform(0.45, 0.85)
            small = max(32, int(HEM_INPUT * factor))
            y = F.interpolate(y, size=(small, small), mode="bilinear", antialias=True)
            y = F.interpolate(y, size=(HEM_INPUT, HEM_INPUT), mode="bilinear")
        y = _gaussian_blur(y, float(rng.uniform(0, 0.9)))
        # Burned-in letters on some.
        texts = self.texts[torch.from_numpy(rng.integers(0, len(self.texts), n))]
        has_text = torch.from_numpy((rng.random(n) < 0.4).astype(np.float32)).view(
            n, 1, 1
        )
        y = torch.maximum(y, (texts * has_text).unsqueeze(1))
        y = torch.round(y * 255) / 255
        hu = y * 80.0  # read back assuming the nominal 40/80 window
        return hu.repeat(1, 3, 1, 1)


def labels_tensor(labels: NDArray[np.float32]) -> torch.Tensor:
    """Labels as a (B, 1) tensor."""
    return torch.from_numpy(labels).view(-1, 1)


@dataclass
class FractureBatches:
    """Random augmented radiograph batches."""

    images: NDArray[np.float32]  # (N, H, W)
    labels: NDArray[np.float32]
    masks: NDArray[np.bool_]  # (N, H, W): bone around the fracture
    rng: np.random.Generator

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = self.rng
        picks = rng.integers(0, len(self.images), size=batch)
        x = torch.from_numpy(self.images[picks]).unsqueeze(1)
        m = torch.from_numpy(self.masks[picks].astype(np.float32)).unsqueeze(1)
        y = labels_tensor(self.labels[picks])
        x, m = _radiograph_intensity(rng, x, m, XR_INPUT)
        return x, y, m


def _radiograph_intensity(
    rng: np.random.Generator,
    x: torch.Tensor,
    m: torch.Tensor,
    size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contrast, gamma, geometry and noise for radiographs; standardised."""
    batch = x.shape[0]
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    unit = (x - lo) / (hi - lo + 1e-3)
    gamma = torch.from_numpy(rng.uniform(0.7, 1.4, (batch, 1, 1, 1)).astype(np.float32))
    unit = unit.clamp_min(1e-4) ** gamma
    theta = _affine(
        rng,
        batch,
        rotate_deg=8,
        zoom=(0.9, 1.15),
        shift=0.06,
        flip_lr=True,
        flip_ud=True,
    )
    grid = F.affine_grid(theta, [batch, 1, *size], align_corners=False)
    unit = F.grid_sample(unit, grid, padding_mode="border", align_corners=False)
    m = F.grid_sample(m, grid, align_corners=False)
    unit = unit + torch.randn_like(unit) * float(rng.uniform(0, 0.02))
    scale = torch.from_numpy(
        rng.uniform(500, 4095, (batch, 1, 1, 1)).astype(np.float32)
    )
    return standardise(unit * scale), m


@dataclass
class FractureCrops:
    """Crops of radiographs: around the fracture line, or on intact bone.

    A thin line in a whole radiograph is a needle in a haystack for a small
    network trained from scratch; crops first teach it what the line looks like,
    then whole images (``FractureBatches``) teach it to find it.
    """

    images: NDArray[np.float32]
    labels: NDArray[np.float32]
    masks: NDArray[np.bool_]
    rng: np.random.Generator
    size: int = 128

    def __post_init__(self) -> None:
        self.bright: dict[int, NDArray[np.intp]] = {}

    def _centre(self, i: int) -> tuple[int, int]:
        rng = self.rng
        if self.labels[i] and rng.random() < 0.7:
            points = np.argwhere(self.masks[i])
        else:
            if i not in self.bright:
                image = self.images[i]
                self.bright[i] = np.argwhere(image > np.percentile(image, 70))
            points = self.bright[i]
        r, c = points[int(rng.integers(0, len(points)))]
        return int(r) + int(rng.integers(-24, 25)), int(c) + int(rng.integers(-24, 25))

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = self.rng
        s = self.size
        crops = np.empty((batch, 1, s, s), dtype=np.float32)
        masks = np.empty((batch, 1, s, s), dtype=np.float32)
        for k in range(batch):
            i = int(rng.integers(0, len(self.images)))
            rows, cols = self.images[i].shape
            r, c = self._centre(i)
            r0 = min(max(r - s // 2, 0), rows - s)
            c0 = min(max(c - s // 2, 0), cols - s)
            crops[k, 0] = self.images[i][r0 : r0 + s, c0 : c0 + s]
            masks[k, 0] = self.masks[i][r0 : r0 + s, c0 : c0 + s]
        x = torch.from_numpy(crops)
        m = torch.from_numpy(masks)
        x, m = _radiograph_intensity(rng, x, m, (s, s))
        # A crop shows a fracture when its (moved) mask still has some of it.
        y = (m.amax(dim=(1, 2, 3)) > 0.5).float().view(-1, 1)
        return x, y, m


# ------------------------------------------------------------------ training


def train(
    net: EvidenceNet,
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    *,
    steps: int,
    batch: int,
    lr: float,
    log: Callable[[str], None],
    mask_weight: float = 0.5,
) -> EvidenceNet:
    """AdamW with a one-cycle schedule; BCE on the pooled logit, plus BCE of the
    evidence map against the blood mask where one is given."""
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=steps, pct_start=0.15
    )
    net.train()
    started = time.monotonic()
    running = 0.0
    for step in range(1, steps + 1):
        x, y, mask = batches(batch)
        pooled, evidence = net(x)
        loss = F.binary_cross_entropy_with_logits(pooled, y)
        if mask is not None and mask_weight:
            target = F.adaptive_max_pool2d(mask, evidence.shape[-2:]).clamp(0, 1)
            loss = loss + mask_weight * F.binary_cross_entropy_with_logits(
                evidence, (target > 0.5).float()
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % 100 == 0 or step == steps:
            log(
                f"  step {step}/{steps} loss {running:.4f} "
                f"({time.monotonic() - started:.0f} s)"
            )
    net.eval()
    return net
