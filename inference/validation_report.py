"""Running a validation: read labelled cases, score them, write the HTML report.

A data folder holds ``labels.csv`` and the cases it names. The CSV's first column
names a case: a picture (PNG or JPEG, already windowed, as in public teaching
sets), a DICOM file, or a folder of one series' DICOM files. Its second column
(or the one named by ``label_column``) is the reference standard, 1 or 0; any
further columns (sex, age band, scanner...) become subgroups.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.template.loader import render_to_string

from inference import evaluation, runtime, validation
from inference.manifest import LoadedManifest
from inference.preprocess import F32, SliceRef, aggregate, gray8_to_pixels, read_series

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg"}
# Pictures collected from many sources differ most in size: a subgroup of its own.
LARGE_PICTURE_SIDE = 512


class ValidationDataError(ValueError):
    """The data folder or its labels cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: Path
    label: bool
    groups: dict[str, str] = field(default_factory=dict)


def read_cases(folder: Path, label_column: str | None = None) -> list[Case]:
    """The cases listed in ``folder/labels.csv``.

    Raises:
        ValidationDataError: no labels.csv, an unknown label column, a label that
            is not 0/1, or a case file that does not exist.
    """
    labels_path = folder / "labels.csv"
    if not labels_path.is_file():
        raise ValidationDataError(f"{folder} has no labels.csv")
    with labels_path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = list(reader.fieldnames or [])
        if len(columns) < 2:
            raise ValidationDataError(
                "labels.csv needs a case column and a label column"
            )
        case_column = columns[0]
        label_name = label_column or columns[1]
        if label_name not in columns:
            raise ValidationDataError(f"labels.csv has no column {label_name!r}")
        group_columns = [c for c in columns[1:] if c != label_name]
        cases = []
        for line, row in enumerate(reader, start=2):
            raw = (row.get(label_name) or "").strip().lower()
            if raw not in {"0", "1", "true", "false", "yes", "no"}:
                raise ValidationDataError(
                    f"labels.csv line {line}: label {raw!r} is not 0 or 1"
                )
            path = folder / (row.get(case_column) or "").strip()
            if not path.exists() or path == folder:
                raise ValidationDataError(
                    f"labels.csv line {line}: {path.name} not found"
                )
            cases.append(
                Case(
                    name=path.name,
                    path=path,
                    label=raw in {"1", "true", "yes"},
                    groups={
                        c: (row.get(c) or "").strip() or "unknown"
                        for c in group_columns
                    },
                )
            )
    if not cases:
        raise ValidationDataError("labels.csv lists no cases")
    return cases


def _case_pixels(case: Case, model: LoadedManifest) -> tuple[F32, dict[str, str]]:
    """The case's pixels in the model's pixel space, read as the scorer reads a
    series (``read_series``), and groups read from the case."""
    if case.path.suffix.lower() in PICTURE_SUFFIXES:
        picture = evaluation.read_picture(case.path)
        side = max(picture.shape[:2])
        size = "large (>= 512 px)" if side >= LARGE_PICTURE_SIDE else "small (< 512 px)"
        return gray8_to_pixels(picture), {"picture size": size}
    files = (
        sorted(p for p in case.path.rglob("*") if p.is_file())
        if case.path.is_dir()
        else [case.path]
    )
    volume = read_series(
        [SliceRef(i, p) for i, p in enumerate(files)], model.manifest.input.pixel_space
    )
    return volume.pixels, {}


@dataclass(frozen=True, slots=True)
class ScoredCases:
    names: tuple[str, ...]
    labels: tuple[bool, ...]
    scores: tuple[float, ...]
    groups: dict[str, tuple[str, ...]]
    # The execution provider that ran the model (as a result's provenance).
    provider: str = ""


def score_cases(
    model: LoadedManifest,
    cases: list[Case],
    finding_index: int,
    progress: Callable[[int, int, str], None] | None = None,
) -> ScoredCases:
    """Score every case exactly as the scorer does (study probability).

    The production runtime's session for the model (device, threads and batch
    from the settings), the scorer's preprocessing and its aggregation: a
    report describes what production runs.

    Args:
        finding_index: which of the model's outputs (findings) to validate.
        progress: called after each case with (done, total, case name).

    Raises:
        runtime.InferenceDeviceError: device cuda, and CUDA cannot be used.
    """
    session = runtime.get_session(model.manifest, model.model_path)
    names, labels, scores = [], [], []
    groups: dict[str, list[str]] = {}
    for done, case in enumerate(cases, start=1):
        pixels, derived = _case_pixels(case, model)
        outputs = session.score(pixels, batch=settings.RADTRIAGE_INFERENCE_BATCH)
        column = np.asarray(outputs.probabilities)[:, finding_index]
        aggregation = model.manifest.aggregation
        study = aggregate(column, aggregation.method, aggregation.k)
        names.append(case.name)
        labels.append(case.label)
        scores.append(float(study.probability))
        for key, value in {**case.groups, **derived}.items():
            groups.setdefault(key, []).append(value)
        if progress is not None:
            progress(done, len(cases), case.name)
    return ScoredCases(
        tuple(names),
        tuple(labels),
        tuple(scores),
        {k: tuple(v) for k, v in groups.items() if len(v) == len(cases)},
        provider=session.provider,
    )


@dataclass(frozen=True, slots=True)
class ReportContext:
    model_id: str
    model_version: str
    model_name: str
    finding_code: str
    finding_display: str
    data_folder: str
    threshold_source: str
    created_at: datetime
    provider: str = ""  # the execution provider that scored the cases


def render_report(context: ReportContext, result: validation.Validation) -> str:
    """The validation report as a self-contained HTML page (inline SVG plots)."""
    return render_to_string(
        "inference/validation_report.html",
        {
            "ctx": context,
            "v": result,
            "roc_points": validation.roc_polyline(result.roc),
            "calibration_points": validation.calibration_points(result.calibration),
            "size": validation.PLOT_SIZE,
            "origin": validation.plot_xy(0.0, 0.0),
            "corner": validation.plot_xy(1.0, 1.0),
            "ticks": [
                (t, validation.plot_xy(t, 0.0), validation.plot_xy(0.0, t))
                for t in (0.0, 0.25, 0.5, 0.75, 1.0)
            ],
            "current_xy": validation.plot_xy(
                1 - (result.current.specificity or 0.0),
                result.current.sensitivity or 0.0,
            ),
            "target_xy": None
            if result.at_target is None
            else validation.plot_xy(
                1 - (result.at_target.specificity or 0.0),
                result.at_target.sensitivity or 0.0,
            ),
        },
    )


def baseline_json(context: ReportContext, result: validation.Validation) -> str:
    """The score distribution on the validation cases: the drift baseline."""
    return json.dumps(
        {
            "model_id": context.model_id,
            "model_version": context.model_version,
            "finding": context.finding_code,
            "validated_at": context.created_at.isoformat(),
            "cases": result.cases,
            "histogram": list(result.histogram),
        },
        indent=2,
    )


def scores_csv(scored: ScoredCases) -> str:
    """Each case's label and score, to reproduce or audit the figures."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    group_names = sorted(scored.groups)
    writer.writerow(["case", "label", "score", *group_names])
    for index, name in enumerate(scored.names):
        writer.writerow(
            [
                name,
                int(scored.labels[index]),
                repr(scored.scores[index]),
                *(scored.groups[g][index] for g in group_names),
            ]
        )
    return buffer.getvalue()
