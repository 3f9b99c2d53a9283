"""Model evaluation: ROC AUC on held-out synthetic sets and on labelled pictures.

Plain Python (ONNX Runtime, numpy, OpenCV; no Django): used by the training
script to write the model cards, and by the tests to check the committed models.
Models run through the production runtime (``inference.runtime``), aggregated as
the scorer aggregates; the AUC is site validation's (``validation.roc_auc``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from inference import runtime
from inference.manifest import LoadedManifest
from inference.preprocess import F32, gray8_to_pixels
from inference.preprocess import aggregate as aggregate
from inference.validation import roc_auc

# Slices per run, as RADTRIAGE_INFERENCE_BATCH's default.
BATCH = 64


def cpu_session(model: LoadedManifest, threads: int = 2) -> runtime.Session:
    """The production runtime's session on the CPU (figures reproducible on any
    machine); the scorer's own sessions come from ``runtime.get_session``."""
    config = runtime.RuntimeConfig(device="cpu", intra_op_threads=threads)
    return runtime.Session(model.manifest, model.model_path, config)


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """One evaluated series: truth, study probability and key slice."""

    label: bool
    probability: float
    key_index: int
    centre_slice: int
    slice_labels: tuple[bool, ...]
    slice_probabilities: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Figures for a model card."""

    cases: int
    positives: int
    study_auc: float | None  # None: one class only (no AUC is defined)
    slice_auc: float | None
    sensitivity: float
    specificity: float
    key_slice_within_2: float | None
    key_slice_near_bleed: float | None


def summarise(results: Sequence[SeriesResult], threshold: float) -> Metrics:
    """Study and slice AUC, sensitivity and specificity at ``threshold``."""
    labels = [r.label for r in results]
    probs = [r.probability for r in results]
    positives = [r for r in results if r.label]
    negatives = [r for r in results if not r.label]
    slice_labels = [v for r in results for v in r.slice_labels]
    slice_probs = [v for r in results for v in r.slice_probabilities]
    per_slice = len(slice_labels) > len(results)
    located = [
        abs(r.key_index - r.centre_slice) <= 2 for r in positives if r.centre_slice >= 0
    ]
    near = [
        min(abs(r.key_index - i) for i, blood in enumerate(r.slice_labels) if blood)
        <= 2
        for r in positives
        if r.centre_slice >= 0 and any(r.slice_labels)
    ]
    return Metrics(
        cases=len(results),
        positives=len(positives),
        study_auc=roc_auc(labels, probs),
        slice_auc=roc_auc(slice_labels, slice_probs) if per_slice else None,
        sensitivity=float(np.mean([r.probability >= threshold for r in positives]))
        if positives
        else float("nan"),
        specificity=float(np.mean([r.probability < threshold for r in negatives]))
        if negatives
        else float("nan"),
        key_slice_within_2=float(np.mean(located)) if located else None,
        key_slice_near_bleed=float(np.mean(near)) if near else None,
    )


def score_volume(
    session: runtime.Session,
    model: LoadedManifest,
    pixels: F32,
    *,
    label: bool,
    centre_slice: int = -1,
    slice_labels: Sequence[bool] = (),
) -> SeriesResult:
    """Score one series and aggregate it as the scorer does."""
    column = session.score(pixels, batch=BATCH).probabilities[:, 0]
    study = aggregate(
        column, model.manifest.aggregation.method, model.manifest.aggregation.k
    )
    return SeriesResult(
        label=label,
        probability=study.probability,
        key_index=study.key_index,
        centre_slice=centre_slice,
        slice_labels=tuple(slice_labels) or (label,),
        slice_probabilities=tuple(float(v) for v in column),
    )


def read_picture(path: Path) -> NDArray[np.uint8]:
    """Read a PNG/JPEG picture as uint8 grey, RGB or RGBA (RGB order)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path.name} cannot be read as a picture")
    if image.dtype != np.uint8:
        image = (image / max(1, int(image.max())) * 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA), dtype=np.uint8)
    if image.ndim == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return np.asarray(image, dtype=np.uint8)


def evaluate_pictures(
    session: runtime.Session, model: LoadedManifest, folder: Path
) -> list[SeriesResult]:
    """Score every picture listed in ``folder/labels.csv`` (image, label columns).

    Each picture is a single brain-windowed slice: it goes in through
    ``gray8_to_pixels`` as a one-slice series.
    """
    results = []
    with (folder / "labels.csv").open(newline="") as stream:
        rows = list(csv.reader(stream))
    for name, label in rows[1:]:
        pixels = gray8_to_pixels(read_picture(folder / name))
        results.append(score_volume(session, model, pixels, label=label.strip() == "1"))
    return results
