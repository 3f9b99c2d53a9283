"""Manifests: checked at load, errors per model, applicability with reasons."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from inference import manifest as mf
from triage.vocabulary import Severity

MODEL_BYTES = b"not really onnx, but hashed all the same"


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "id": "test-ich",
        "version": "1.2.3",
        "name": "Test hemorrhage",
        "file": "model.onnx",
        "sha256": hashlib.sha256(MODEL_BYTES).hexdigest(),
        "task": "per_slice",
        "findings": [
            {
                "code": "ICH",
                "display": "Intracranial hemorrhage",
                "severity": "critical",
                "threshold": 0.5,
            }
        ],
        "applicability": {
            "modalities": ["CT"],
            "body_parts": ["HEAD"],
            "series_description_patterns": [],
            "exclude_series_description_patterns": ["(?i)\\bbone\\b"],
            "min_slices": 8,
            "max_slices": 300,
            "axial_only": True,
        },
        "input": {
            "name": "pixels",
            "size": [128, 128],
            "pixel_space": "hu",
            "normalization": "window",
            "in_graph": True,
            "channels": [
                {"name": "brain", "window": {"center": 40, "width": 80}},
                {
                    "name": "below",
                    "window": {"center": 40, "width": 80},
                    "slice_offset": -1,
                },
            ],
        },
        "outputs": {"probabilities": "probability", "heatmap": "heatmap"},
        "aggregation": {"method": "top_k_mean", "k": 2},
    }
    doc.update(changes)
    return doc


def write_model(folder: Path, doc: dict[str, Any], data: bytes = MODEL_BYTES) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(doc))
    return folder


def test_a_valid_manifest_is_read_into_typed_values() -> None:
    m = mf.parse_manifest(document())
    assert m.model_id == "test-ich"
    assert m.findings[0].severity is Severity.CRITICAL
    assert m.input.context == 1
    assert m.input.channels[1].window == mf.Window(40.0, 80.0)
    assert m.aggregation == mf.AggregationSpec(mf.Aggregation.TOP_K_MEAN, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Bad Id!"}, "manifest.id"),
        ({"sha256": "abc"}, "sha256"),
        ({"task": "per_voxel"}, "manifest.task"),
        ({"findings": []}, "findings"),
        ({"file": "../elsewhere.onnx"}, "manifest.file"),
    ],
)
def test_a_malformed_manifest_names_the_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(mf.ManifestError, match=message):
        mf.parse_manifest(document(**change))


def test_a_threshold_outside_zero_to_one_is_refused() -> None:
    doc = document()
    doc["findings"][0]["threshold"] = 1.5
    with pytest.raises(mf.ManifestError, match="threshold"):
        mf.parse_manifest(doc)


def test_a_window_channel_needs_a_window() -> None:
    doc = copy.deepcopy(document())
    del doc["input"]["channels"][0]["window"]
    with pytest.raises(mf.ManifestError, match="window"):
        mf.parse_manifest(doc)


def test_a_sha256_mismatch_is_an_error_for_that_model(tmp_path: Path) -> None:
    write_model(tmp_path / "good", document())
    write_model(tmp_path / "altered", document(id="altered"), b"tampered bytes")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    loaded, failures = mf.discover(tmp_path)
    assert [item.manifest.model_id for item in loaded] == ["test-ich"]
    errors = {f.model_id: f.error for f in failures}
    assert "sha256" in errors["altered"]
    assert "cannot be read" in errors["broken"]


def test_a_missing_model_file_is_reported(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", document())
    (folder / "model.onnx").unlink()
    with pytest.raises(mf.ManifestError, match="missing"):
        mf.load_manifest(folder)


def ct(series_id: int = 1, **changes: Any) -> mf.SeriesFacts:
    values: dict[str, Any] = {
        "series_id": series_id,
        "modality": "CT",
        "body_part": "HEAD",
        "series_description": "AXIAL 5MM BRAIN",
        "instance_count": 32,
        "axial": True,
    }
    values.update(changes)
    return mf.SeriesFacts(**values)


def test_the_largest_fitting_series_is_chosen() -> None:
    rules = mf.parse_manifest(document()).applicability
    choice = mf.choose_series(
        rules,
        [
            ct(1, instance_count=20),
            ct(2, instance_count=40),
            ct(3, series_description="AXIAL BONE", instance_count=90),
        ],
    )
    assert choice == mf.Applicable(2)


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (ct(modality="MR"), "modality MR is not CT"),
        (ct(body_part="CHEST"), "body part CHEST is not HEAD"),
        (ct(series_description="AXIAL BONE"), "excluded"),
        (ct(instance_count=3), "3 images, fewer than 8"),
        (ct(instance_count=301), "more than 300"),
        (ct(axial=False), "not axial"),
    ],
)
def test_a_series_that_does_not_fit_says_why(
    facts: mf.SeriesFacts, reason: str
) -> None:
    rules = mf.parse_manifest(document()).applicability
    choice = mf.choose_series(rules, [facts])
    assert isinstance(choice, mf.NotApplicable)
    assert reason in choice.reason
