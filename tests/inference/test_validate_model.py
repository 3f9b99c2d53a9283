"""manage.py validate_model: figures against scikit-learn, report, baseline,
audited threshold override; and a run on the real labelled pictures."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from pydicom.filewriter import dcmwrite
from sklearn.metrics import recall_score, roc_auc_score

from demo.synthetic import make_ct_head_study
from inference import services, validation_report
from inference.manifest import PixelSpace
from inference.models import FindingSetting, RegisteredModel
from inference.validation_report import ScoredCases
from triage.models import AuditEvent

pytestmark = pytest.mark.django_db

RNG = np.random.default_rng(11)
LABELS = [bool(v) for v in RNG.random(60) < 0.5]
SCORES = [
    float(v) for v in np.clip(0.35 * np.asarray(LABELS) + RNG.random(60) * 0.6, 0, 1)
]
SEX = ["F" if i % 2 else "M" for i in range(60)]
REAL_DATA = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "head-ct-hemorrhage"
)


@dataclass(frozen=True)
class FakeFinding:
    code: str
    display: str
    threshold: float


@dataclass(frozen=True)
class FakeManifest:
    model_id: str
    version: str
    name: str
    findings: tuple[FakeFinding, ...]

    def finding(self, code: str) -> FakeFinding:
        return next(f for f in self.findings if f.code == code)


@dataclass(frozen=True)
class FakeLoaded:
    manifest: FakeManifest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cases"
    folder.mkdir()
    with (folder / "labels.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "hemorrhage", "sex"])
        for i, (label, sex) in enumerate(zip(LABELS, SEX, strict=True)):
            (folder / f"case{i:02d}.png").write_bytes(b"not scored in this test")
            writer.writerow([f"case{i:02d}.png", int(label), sex])
    return folder


@pytest.fixture
def fake_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any
) -> FakeLoaded:
    """A model whose scores on the cases are SCORES (scoring is not under test)."""
    loaded = FakeLoaded(
        FakeManifest("ich-test", "1.2", "Test ICH", (FakeFinding("ich", "ICH", 0.5),))
    )
    monkeypatch.setattr(services, "sync_registry", lambda: [])
    monkeypatch.setattr(services, "discover_models", lambda _dir: ([loaded], []))

    def score(model: Any, cases: Any, index: int, progress: Any) -> ScoredCases:
        assert index == 0
        for done, case in enumerate(cases, start=1):
            progress(done, len(cases), case.name)
        return ScoredCases(
            tuple(c.name for c in cases),
            tuple(c.label for c in cases),
            tuple(SCORES),
            {"sex": tuple(c.groups["sex"] for c in cases)},
        )

    monkeypatch.setattr(
        "inference.management.commands.validate_model.score_cases", score
    )
    settings.VAR_DIR = tmp_path / "var"
    return loaded


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("validate_model", *args, stdout=out)
    return out.getvalue()


def test_auc_and_sensitivity_match_scikit_learn(
    fake_model: FakeLoaded, data_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    output = _run("ich-test", str(data_dir), "--bootstrap", "200", "--out", str(report))
    auc = float(re.search(r"ROC AUC (\d\.\d+)", output).group(1))  # type: ignore[union-attr]
    assert auc == pytest.approx(roc_auc_score(LABELS, SCORES), abs=5e-4)
    sensitivity = float(re.search(r"sensitivity (\d+\.\d)%", output).group(1))  # type: ignore[union-attr]
    expected = recall_score(LABELS, np.asarray(SCORES) >= 0.5)
    assert sensitivity == pytest.approx(100 * expected, abs=0.05)
    assert "scored 60/60" in output and "95% CI" in output

    html = report.read_text()
    assert f'data-figure="auc">{roc_auc_score(LABELS, SCORES):.3f}<' in html
    assert 'data-plot="roc"' in html and 'data-plot="calibration"' in html
    assert '<polyline class="curve"' in html
    assert ">sex</td><td>F<" in html
    scores = list(csv.DictReader(report.with_suffix(".scores.csv").open()))
    assert [float(r["score"]) for r in scores] == SCORES
    baseline = (
        Path(django_settings.VAR_DIR) / "validation" / "ich-test-1.2-ich.baseline.json"
    )
    assert '"histogram"' in baseline.read_text()


def test_the_chosen_threshold_is_saved_as_an_audited_site_override(
    fake_model: FakeLoaded, data_dir: Path, tmp_path: Path
) -> None:
    model = RegisteredModel.objects.create(model_id="ich-test", version="1.2")
    setting = FindingSetting.objects.create(
        model=model,
        code="ich",
        display="ICH",
        severity="critical",
        default_threshold=0.5,
    )
    output = _run(
        "ich-test",
        str(data_dir),
        "--bootstrap",
        "50",
        "--target-sensitivity",
        "0.95",
        "--out",
        str(tmp_path / "r.html"),
        "--save-threshold",
    )
    setting.refresh_from_db()
    positives = sorted(
        (s for s, y in zip(SCORES, LABELS, strict=True) if y), reverse=True
    )
    k = int(np.ceil(0.95 * len(positives)))
    assert setting.threshold_override == positives[k - 1]
    assert "(audited)" in output
    audit = AuditEvent.objects.get(action="ai_model.threshold_changed")
    assert audit.detail["to"] == positives[k - 1]


def test_bad_inputs_are_refused_with_a_clear_message(
    fake_model: FakeLoaded, tmp_path: Path, data_dir: Path
) -> None:
    with pytest.raises(CommandError, match="no model 'nope'"):
        _run("nope", str(data_dir))
    with pytest.raises(CommandError, match=r"has no labels\.csv"):
        _run("ich-test", str(tmp_path))
    with pytest.raises(CommandError, match="no finding 'pe'"):
        _run("ich-test", str(data_dir), "--finding", "pe")


def test_labels_csv_is_checked(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("image,label\nmissing.png,1\n")
    with pytest.raises(validation_report.ValidationDataError, match="not found"):
        validation_report.read_cases(tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("image,label\na.png,maybe\n")
    with pytest.raises(validation_report.ValidationDataError, match="not 0 or 1"):
        validation_report.read_cases(tmp_path)


def _hemorrhage_model() -> str | None:
    loaded, _ = services.discover_models(Path(django_settings.RADTRIAGE_MODELS_DIR))
    for item in loaded:
        codes = {f.code.lower() for f in item.manifest.findings}
        if codes & {"ich", "hemorrhage", "haemorrhage"}:
            return item.manifest.model_id
    return None


def test_validate_model_runs_on_the_real_labelled_pictures(
    tmp_path: Path, settings: Any
) -> None:
    if not (REAL_DATA / "labels.csv").is_file():
        pytest.skip(f"the real labelled pictures are not at {REAL_DATA}")
    model_id = _hemorrhage_model()
    if model_id is None:
        pytest.skip("no hemorrhage model in RADTRIAGE_MODELS_DIR yet")
    settings.VAR_DIR = tmp_path
    report = tmp_path / "real.html"
    output = _run(model_id, str(REAL_DATA), "--bootstrap", "300", "--out", str(report))
    assert "scored 100/100" in output
    rows = list(csv.DictReader(report.with_suffix(".scores.csv").open()))
    labels = [r["label"] == "1" for r in rows]
    scores = [float(r["score"]) for r in rows]
    auc = float(re.search(r"ROC AUC (\d\.\d+)", output).group(1))  # type: ignore[union-attr]
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=5e-4)
    assert 'data-plot="roc"' in report.read_text()


def test_cases_may_be_dicom_series_folders_or_pictures(tmp_path: Path) -> None:
    series = tmp_path / "study1"
    series.mkdir()
    for i, ds in enumerate(make_ct_head_study(3, slices=6, size=64).datasets):
        dcmwrite(series / f"{i}.dcm", ds, enforce_file_format=True)
    cv2.imwrite(str(tmp_path / "slice.png"), np.full((300, 200, 3), 128, np.uint8))
    (tmp_path / "labels.csv").write_text(
        "case,label,scanner\nstudy1,1,GE\nslice.png,0,\n"
    )
    cases = validation_report.read_cases(tmp_path)
    assert [(c.name, c.label, c.groups) for c in cases] == [
        ("study1", True, {"scanner": "GE"}),
        ("slice.png", False, {"scanner": "unknown"}),
    ]
    model: Any = SimpleNamespace(
        manifest=SimpleNamespace(input=SimpleNamespace(pixel_space=PixelSpace.HU))
    )
    volume, groups = validation_report._case_pixels(cases[0], model)
    assert volume.shape == (6, 1, 64, 64) and groups == {}
    picture, groups = validation_report._case_pixels(cases[1], model)
    assert picture.shape == (1, 1, 300, 300)
    assert groups == {"picture size": "small (< 512 px)"}
