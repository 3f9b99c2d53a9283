"""Model manifests: what a model is, what it applies to, and how to feed it.

Plain Python (no Django): a manifest is read from JSON into frozen dataclasses and
checked at once, so that a malformed manifest or a model file whose SHA-256 does
not match is a clear error for that one model and never reaches the scorer.
Applicability is decided here too, from typed series facts, with reasons.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar

from triage.vocabulary import Severity

MANIFEST_FILE: Final = "manifest.json"
SCHEMA_VERSION: Final = 1
_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
_CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_E = TypeVar("_E", bound="StrEnum")


class ManifestError(ValueError):
    """A manifest is malformed, or its model file is missing or altered."""


class Task(StrEnum):
    """What one row of the model's output describes."""

    PER_SLICE = "per_slice"  # one probability per slice of a series (CT)
    PER_IMAGE = "per_image"  # one probability per image (radiographs)


class PixelSpace(StrEnum):
    """Units of the values the model's input tensor carries."""

    HU = "hu"  # CT Hounsfield units (RescaleSlope/Intercept applied)
    PRESENTATION = "presentation"  # rescaled values, MONOCHROME2 sense (bright = dense)


class Normalization(StrEnum):
    """How pixel values become network inputs (in the graph or in numpy)."""

    WINDOW = "window"  # each channel: clip((x - (c - w/2)) / w, 0, 1)
    STANDARDIZE = "standardize"  # per image: (x - mean) / std


class Aggregation(StrEnum):
    """How per-slice probabilities become the study's probability."""

    MAX = "max"
    TOP_K_MEAN = "top_k_mean"


@dataclass(frozen=True, slots=True)
class Window:
    """An intensity window: centre and width in the input's units (HU for CT)."""

    center: float
    width: float

    @property
    def low(self) -> float:
        """Lowest value shown (maps to 0)."""
        return self.center - self.width / 2


@dataclass(frozen=True, slots=True)
class Channel:
    """One input channel: a window of the slice at ``slice_offset`` from the current.

    Attributes:
        name: Short label, e.g. "brain", "subdural", "bone", "brain-1".
        window: The window, or None when the normalization is STANDARDIZE.
        slice_offset: -1 for the slice below, 0 for the current, +1 above.
    """

    name: str
    window: Window | None
    slice_offset: int


@dataclass(frozen=True, slots=True)
class Finding:
    """A finding the model reports, with its operating threshold.

    Attributes:
        code: Short stable code, e.g. "ICH".
        display: Name shown to readers.
        severity: Clinical severity when positive.
        threshold: Operating threshold on the probability, in [0, 1].
        report_terms: Words a radiology report names the finding by (its
            display name when the manifest gives none); the AI monitoring
            labels reports with them (:mod:`inference.report_labels`).
    """

    code: str
    display: str
    severity: Severity
    threshold: float
    report_terms: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        return self.report_terms or (self.display,)


@dataclass(frozen=True, slots=True)
class Applicability:
    """Which series a model may score.

    Attributes:
        modalities: DICOM Modality values accepted (upper case).
        body_parts: BodyPartExamined values accepted (upper case); empty: any.
        series_description_patterns: Regexes, one must match when given.
        exclude_series_description_patterns: Regexes, none may match.
        min_slices: Fewest instances in the series.
        max_slices: Most instances in the series.
        axial_only: Whether the series must be axial (CT).
    """

    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    series_description_patterns: tuple[str, ...]
    exclude_series_description_patterns: tuple[str, ...]
    min_slices: int
    max_slices: int
    axial_only: bool


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How the model's input tensor is built.

    Attributes:
        name: Input name in the ONNX graph.
        layout: Always "NCHW".
        height: Network input height (pixels) after the resize.
        width: Network input width (pixels) after the resize.
        pixel_space: Units of the values fed.
        channels: The network's channels, in order.
        normalization: How values become network inputs.
        in_graph: True when windowing, resize and slice context are inside the
            ONNX graph: the runtime then feeds (N, 1, rows, columns) float32 pixel
            values of consecutive slices at their own resolution and the graph
            does the rest (on the GPU when there is one). False: the runtime feeds
            (N, channels, height, width) ready network inputs.
        square_pad: Pad non-square images to a square (centred) before resizing.
    """

    name: str
    layout: str
    height: int
    width: int
    pixel_space: PixelSpace
    channels: tuple[Channel, ...]
    normalization: Normalization
    in_graph: bool
    square_pad: bool

    @property
    def context(self) -> int:
        """Slices needed on each side of a slice (0 without slice context)."""
        return max((abs(c.slice_offset) for c in self.channels), default=0)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """The graph's outputs.

    Attributes:
        probabilities: Output of shape (N, findings), probabilities in [0, 1].
        heatmap: Optional output of shape (N, findings, h, w), values in [0, 1].
    """

    probabilities: str
    heatmap: str | None


@dataclass(frozen=True, slots=True)
class AggregationSpec:
    """How slice probabilities make the study probability."""

    method: Aggregation
    k: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A checked model manifest (see ``inference/demo_models/*/manifest.json``)."""

    model_id: str
    version: str
    name: str
    file: str
    sha256: str
    task: Task
    findings: tuple[Finding, ...]
    applicability: Applicability
    input: InputSpec
    outputs: OutputSpec
    aggregation: AggregationSpec
    description: str

    def finding(self, code: str) -> Finding:
        """Return the finding with ``code``; KeyError when the model has none."""
        for finding in self.findings:
            if finding.code == code:
                return finding
        raise KeyError(code)


@dataclass(frozen=True, slots=True)
class LoadedManifest:
    """A manifest with the folder it came from and its verified model path."""

    manifest: Manifest
    folder: Path
    model_path: Path


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A model folder that could not be loaded, and why."""

    folder: Path
    model_id: str
    error: str


# ----------------------------------------------------------------- parsing helpers


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{where} must be an object")
    return value


def _str(
    data: Mapping[str, Any], key: str, where: str, default: str | None = None
) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ManifestError(f"{where}.{key} must be a non-empty string")
    return value


def _num(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    default: float | None = None,
    low: float | None = None,
    high: float | None = None,
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where}.{key} must be a number")
    number = float(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ManifestError(f"{where}.{key} must be within [{low}, {high}]")
    return number


def _int(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    default: int | None = None,
    low: int | None = None,
) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"{where}.{key} must be an integer")
    if low is not None and value < low:
        raise ManifestError(f"{where}.{key} must be at least {low}")
    return value


def _bool(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ManifestError(f"{where}.{key} must be true or false")
    return value


def _strs(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{where}.{key} must be a list of strings")
    return tuple(value)


def _enum(
    kind: type[_E], data: Mapping[str, Any], key: str, where: str, default: str | None
) -> _E:
    raw = data.get(key, default)
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ManifestError(f"{where}.{key} must be one of {allowed}") from None


def _patterns(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    for pattern in values:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ManifestError(f"{where}: bad pattern {pattern!r}: {exc}") from None
    return values


def _finding(raw: object, index: int) -> Finding:
    where = f"findings[{index}]"
    data = _obj(raw, where)
    code = _str(data, "code", where)
    if not _CODE_PATTERN.match(code):
        raise ManifestError(f"{where}.code {code!r} is not a short code")
    return Finding(
        code=code,
        display=_str(data, "display", where),
        severity=_enum(Severity, data, "severity", where, None),
        threshold=_num(data, "threshold", where, low=0.0, high=1.0),
        report_terms=_strs(data, "report_terms", where),
    )


def _applicability(raw: object) -> Applicability:
    where = "applicability"
    data = _obj(raw, where)
    modalities = tuple(m.upper() for m in _strs(data, "modalities", where))
    if not modalities:
        raise ManifestError(f"{where}.modalities must name at least one modality")
    min_slices = _int(data, "min_slices", where, default=1, low=1)
    max_slices = _int(data, "max_slices", where, default=100_000, low=1)
    if max_slices < min_slices:
        raise ManifestError(f"{where}.max_slices is below min_slices")
    return Applicability(
        modalities=modalities,
        body_parts=tuple(b.upper() for b in _strs(data, "body_parts", where)),
        series_description_patterns=_patterns(
            _strs(data, "series_description_patterns", where), where
        ),
        exclude_series_description_patterns=_patterns(
            _strs(data, "exclude_series_description_patterns", where), where
        ),
        min_slices=min_slices,
        max_slices=max_slices,
        axial_only=_bool(data, "axial_only", where, False),
    )


def _input(raw: object) -> InputSpec:
    where = "input"
    data = _obj(raw, where)
    layout = _str(data, "layout", where, "NCHW")
    if layout != "NCHW":
        raise ManifestError(f"{where}.layout must be NCHW")
    size = data.get("size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        or not all(8 <= v <= 4096 for v in size)
    ):
        raise ManifestError(f"{where}.size must be [height, width] in pixels")
    normalization = _enum(Normalization, data, "normalization", where, "window")
    channels_raw = data.get("channels")
    if not isinstance(channels_raw, list) or not channels_raw:
        raise ManifestError(f"{where}.channels must be a non-empty list")
    channels = []
    for i, item in enumerate(channels_raw):
        cw = f"{where}.channels[{i}]"
        cdata = _obj(item, cw)
        window = None
        if "window" in cdata:
            wdata = _obj(cdata["window"], f"{cw}.window")
            window = Window(
                center=_num(wdata, "center", f"{cw}.window"),
                width=_num(wdata, "width", f"{cw}.window", low=1e-6),
            )
        elif normalization is Normalization.WINDOW:
            raise ManifestError(f"{cw}.window is needed with window normalization")
        offset = _int(cdata, "slice_offset", cw, default=0)
        if abs(offset) > 4:
            raise ManifestError(f"{cw}.slice_offset must be within [-4, 4]")
        channels.append(
            Channel(name=_str(cdata, "name", cw), window=window, slice_offset=offset)
        )
    return InputSpec(
        name=_str(data, "name", where),
        layout=layout,
        height=size[0],
        width=size[1],
        pixel_space=_enum(PixelSpace, data, "pixel_space", where, None),
        channels=tuple(channels),
        normalization=normalization,
        in_graph=_bool(data, "in_graph", where, False),
        square_pad=_bool(data, "square_pad", where, False),
    )


def parse_manifest(data: object) -> Manifest:
    """Check a manifest's JSON document and return it typed.

    Args:
        data: The decoded JSON document.

    Returns:
        The manifest.

    Raises:
        ManifestError: Naming the first field that is missing or wrong.
    """
    root = _obj(data, "manifest")
    if root.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ManifestError(f"manifest.schema_version must be {SCHEMA_VERSION}")
    model_id = _str(root, "id", "manifest")
    if not _ID_PATTERN.match(model_id):
        raise ManifestError(
            f"manifest.id {model_id!r} must be lower-case letters, digits, . _ -"
        )
    sha256 = _str(root, "sha256", "manifest").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ManifestError("manifest.sha256 must be 64 hex digits")
    findings_raw = root.get("findings")
    if not isinstance(findings_raw, list) or not findings_raw:
        raise ManifestError("manifest.findings must be a non-empty list")
    findings = tuple(_finding(f, i) for i, f in enumerate(findings_raw))
    if len({f.code for f in findings}) != len(findings):
        raise ManifestError("manifest.findings repeat a code")
    outputs = _obj(root.get("outputs"), "outputs")
    agg = _obj(root.get("aggregation", {"method": "max"}), "aggregation")
    file_name = _str(root, "file", "manifest", "model.onnx")
    if Path(file_name).name != file_name:
        raise ManifestError("manifest.file must be a file name in the model folder")
    heatmap = outputs.get("heatmap")
    if heatmap is not None and not isinstance(heatmap, str):
        raise ManifestError("outputs.heatmap must be an output name or null")
    return Manifest(
        model_id=model_id,
        version=_str(root, "version", "manifest"),
        name=_str(root, "name", "manifest"),
        file=file_name,
        sha256=sha256,
        task=_enum(Task, root, "task", "manifest", None),
        findings=findings,
        applicability=_applicability(root.get("applicability")),
        input=_input(root.get("input")),
        outputs=OutputSpec(
            probabilities=_str(outputs, "probabilities", "outputs"),
            heatmap=heatmap,
        ),
        aggregation=AggregationSpec(
            method=_enum(Aggregation, agg, "method", "aggregation", "max"),
            k=_int(agg, "k", "aggregation", default=1, low=1),
        ),
        description=str(root.get("description", "")),
    )


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: Path) -> LoadedManifest:
    """Read and check ``folder/manifest.json`` and verify its model file.

    Raises:
        ManifestError: When the manifest is missing, malformed, or the model file
            is missing or its SHA-256 differs from the manifest's.
    """
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{MANIFEST_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_FILE} cannot be read: {exc}") from None
    manifest = parse_manifest(data)
    model_path = folder / manifest.file
    if not model_path.is_file():
        raise ManifestError(f"model file {manifest.file} is missing")
    actual = file_sha256(model_path)
    if actual != manifest.sha256:
        raise ManifestError(
            f"model file {manifest.file} has sha256 {actual[:12]}…, the manifest "
            f"says {manifest.sha256[:12]}…"
        )
    return LoadedManifest(manifest=manifest, folder=folder, model_path=model_path)


def discover(models_dir: Path) -> tuple[list[LoadedManifest], list[LoadFailure]]:
    """Load every model folder under ``models_dir`` (one folder per model).

    A broken folder becomes a ``LoadFailure`` and never stops the others.
    """
    loaded: list[LoadedManifest] = []
    failures: list[LoadFailure] = []
    if not models_dir.is_dir():
        return loaded, failures
    seen: set[str] = set()
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        if not (folder / MANIFEST_FILE).exists() and not any(folder.glob("*.onnx")):
            continue  # not a model folder (e.g. __pycache__)
        try:
            item = load_manifest(folder)
        except ManifestError as exc:
            failures.append(LoadFailure(folder, _guess_id(folder), str(exc)))
            continue
        if item.manifest.model_id in seen:
            failures.append(
                LoadFailure(folder, item.manifest.model_id, "duplicate model id")
            )
            continue
        seen.add(item.manifest.model_id)
        loaded.append(item)
    return loaded, failures


def _guess_id(folder: Path) -> str:
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        model_id = data.get("id") if isinstance(data, dict) else None
        if isinstance(model_id, str) and _ID_PATTERN.match(model_id):
            return model_id
    except (OSError, ValueError):
        pass
    return folder.name.lower()[:64]


# ----------------------------------------------------------------- applicability


@dataclass(frozen=True, slots=True)
class SeriesFacts:
    """What applicability looks at in one series (no PHI).

    Attributes:
        series_id: Internal primary key.
        modality: DICOM Modality.
        body_part: BodyPartExamined of the series or, failing that, the study.
        series_description: SeriesDescription.
        instance_count: Number of instances stored.
        axial: Whether the series is axial (None when unknown).
    """

    series_id: int
    modality: str
    body_part: str
    series_description: str
    instance_count: int
    axial: bool | None


@dataclass(frozen=True, slots=True)
class Applicable:
    """The series a model will score."""

    series_id: int


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """Why a model scores none of a study's series."""

    reason: str


def series_rejection(rules: Applicability, series: SeriesFacts) -> str | None:
    """Say why ``series`` does not fit ``rules``, or None when it fits."""
    modality = series.modality.upper()
    if modality not in rules.modalities:
        return f"modality {modality or 'unknown'} is not {'/'.join(rules.modalities)}"
    body = series.body_part.upper()
    if rules.body_parts and body not in rules.body_parts:
        return f"body part {body or 'unknown'} is not {'/'.join(rules.body_parts)}"
    description = series.series_description
    if rules.series_description_patterns and not any(
        re.search(p, description) for p in rules.series_description_patterns
    ):
        return "series description does not match"
    if any(
        re.search(p, description) for p in rules.exclude_series_description_patterns
    ):
        return "series description is excluded"
    if series.instance_count < rules.min_slices:
        return f"{series.instance_count} images, fewer than {rules.min_slices}"
    if series.instance_count > rules.max_slices:
        return f"{series.instance_count} images, more than {rules.max_slices}"
    if rules.axial_only and series.axial is False:
        return "series is not axial"
    return None


def choose_series(
    rules: Applicability, series: Iterable[SeriesFacts]
) -> Applicable | NotApplicable:
    """Pick the series a model should score: the fitting one with most images.

    Args:
        rules: The model's applicability.
        series: The study's series.

    Returns:
        The chosen series, or the reason none fits (the first series' reason
        when there is only one, else a summary).
    """
    fitting: list[SeriesFacts] = []
    reasons: list[str] = []
    for item in series:
        reason = series_rejection(rules, item)
        if reason is None:
            fitting.append(item)
        else:
            reasons.append(reason)
    if fitting:
        best = max(fitting, key=lambda s: (s.instance_count, -s.series_id))
        return Applicable(best.series_id)
    if not reasons:
        return NotApplicable("the study has no series")
    if len(set(reasons)) == 1:
        return NotApplicable(reasons[0])
    return NotApplicable("no series fits: " + "; ".join(sorted(set(reasons))))
