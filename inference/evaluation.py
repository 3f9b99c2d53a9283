"""Model evaluation: ROC AUC on held-out synthetic sets and on labelled pictures.

Plain Python (ONNX Runtime, numpy, OpenCV; no Django): used by the training
script to write the model cards, and by the tests to check the committed models.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from inference.manifest import LoadedManifest
from inference.preprocess import F32, chunks, gray8_to_pixels
from inference.preprocess import aggregate as aggregate


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half).

    Args:
        labels: True for positives.
        scores: Higher means more likely positive.

    Returns:
        AUC in [0, 1]; NaN when one class is missing.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives, negatives = s[y], s[~y]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    ranks = np.empty(order.size, dtype=np.float64)
    ranks[order] = np.arange(1, order.size + 1)
    # Average the ranks of ties.
    values = np.concatenate([positives, negatives])
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    u = ranks[: positives.size].sum() - positives.size * (positives.size + 1) / 2
    return float(u / (positives.size * negatives.size))


def open_session(model: LoadedManifest, threads: int = 2) -> ort.InferenceSession:
    """A CPU session for evaluation (reproducible figures on any machine)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model.model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def run_series(
    session: ort.InferenceSession, model: LoadedManifest, pixels: F32, batch: int = 64
) -> tuple[F32, F32 | None]:
    """Run an in-graph model over (slices, 1, rows, columns) pixel values."""
    manifest = model.manifest
    names = [manifest.outputs.probabilities]
    if manifest.outputs.heatmap:
        names.append(manifest.outputs.heatmap)
    probabilities, heatmaps = [], []
    for chunk in chunks(pixels.shape[0], batch, manifest.input.context):
        out = session.run(
            names, {manifest.input.name: pixels[chunk.start : chunk.stop]}
        )
        lo = chunk.keep_start - chunk.start
        hi = lo + chunk.keep_stop - chunk.keep_start
        probabilities.append(np.asarray(out[0], np.float32)[lo:hi])
        if len(out) > 1:
            heatmaps.append(np.asarray(out[1], np.float32)[lo:hi])
    return (
        np.concatenate(probabilities),
        np.concatenate(heatmaps) if heatmaps else None,
    )


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
    study_auc: float
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
    session: ort.InferenceSession,
    model: LoadedManifest,
    pixels: F32,
    *,
    label: bool,
    centre_slice: int = -1,
    slice_labels: Sequence[bool] = (),
) -> SeriesResult:
    """Score one series and aggregate it as the scorer does."""
    probabilities, _ = run_series(session, model, pixels)
    column = probabilities[:, 0]
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
    session: ort.InferenceSession, model: LoadedManifest, folder: Path
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
