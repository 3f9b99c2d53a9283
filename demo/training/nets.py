"""Small convolutional networks for the demo models (torch, training only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class EvidenceNet(nn.Module):
    """A CNN whose last layer is a per-position logit map (the heatmap).

    The image logit is a log-sum-exp pooling of the map (a smooth maximum), so
    the map says where the evidence is and the score follows the strongest spot.
    """

    def __init__(
        self,
        in_channels: int,
        stem: int,
        stages: Sequence[tuple[int, int, int]],
        findings: int = 1,
        sharpness: float = 5.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, stem, 3, 2, padding=1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        ]
        previous = stem
        for width, stride, dilation in stages:
            layers.append(_block(previous, width, stride, dilation))
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(previous, findings, 1)
        self.sharpness = sharpness

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        evidence = self.head(self.body(x))
        flat = evidence.flatten(2) * self.sharpness
        positions = flat.shape[-1]
        pooled = (torch.logsumexp(flat, dim=2) - math.log(positions)) / self.sharpness
        return pooled, evidence
