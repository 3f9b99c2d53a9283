"""Site validation runs what production runs: the scorer's session, its
preprocessing and its aggregation give the same probability for the same series."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from pydicom.filewriter import dcmwrite

from demo.synthetic import HemorrhageType, make_ct_head_study
from inference import runtime, services
from inference.models import Finding
from inference.preprocess import network_input
from triage.models import Study

pytestmark = pytest.mark.django_db


def test_validate_model_and_the_scorer_give_identical_probabilities(
    store_study: Callable[..., Study],
    tmp_path: Path,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.VAR_DIR = tmp_path / "var"
    # A batch smaller than the series: the chunking with slice context is shared.
    settings.RADTRIAGE_INFERENCE_BATCH = 5
    scored_by: list[int] = []
    production_score = runtime.Session.score

    def score(self: runtime.Session, pixels: Any, *, batch: int) -> Any:
        scored_by.append(id(self))
        return production_score(self, pixels, batch=batch)

    monkeypatch.setattr(runtime.Session, "score", score)
    cases = {
        "bleed": make_ct_head_study(
            31, slices=14, size=128, hemorrhage=HemorrhageType.SUBDURAL
        ),
        "normal": make_ct_head_study(32, slices=14, size=128),
    }
    data = tmp_path / "cases"
    production: dict[str, float] = {}
    for name, synthetic in cases.items():
        study = store_study(synthetic)
        assert services.score_study(study.pk, clock=timezone.now)
        finding = Finding.objects.get(study=study, code="ICH")
        production[name] = finding.probability
        folder = data / name
        folder.mkdir(parents=True)
        # Files named against the slice order: validation orders them itself.
        for index, ds in enumerate(reversed(synthetic.datasets)):
            dcmwrite(folder / f"{index:03d}.dcm", ds, enforce_file_format=True)
    (data / "labels.csv").write_text("case,ich\nbleed,1\nnormal,0\n")
    assert production["bleed"] != production["normal"]

    report = tmp_path / "report.html"
    out = io.StringIO()
    call_command(
        "validate_model",
        "demo-ich-ct",
        str(data),
        "--bootstrap",
        "20",
        "--out",
        str(report),
        stdout=out,
    )
    rows = list(csv.DictReader(report.with_suffix(".scores.csv").open()))
    validated = {row["case"]: float(row["score"]) for row in rows}
    assert validated == production  # exactly, not approximately
    # One session for the scorer and validation: the production runtime's.
    assert len(set(scored_by)) == 1 and len(scored_by) == 4
    assert f"on {runtime.CPU}" in out.getvalue()
    assert f'data-figure="provider">{runtime.CPU}<' in report.read_text()


def test_a_model_without_in_graph_preprocessing_gets_its_network_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = next(e for e in services.sync_registry() if e.model_id == "demo-ich-ct")
    assert loaded.loaded is not None
    manifest = loaded.loaded.manifest
    session = runtime.Session(manifest, loaded.loaded.model_path)
    session.manifest = replace(manifest, input=replace(manifest.input, in_graph=False))
    fed: list[np.ndarray] = []

    def run_raw(batch: np.ndarray) -> list[np.ndarray]:
        fed.append(batch)
        return [np.zeros((batch.shape[0], 1), np.float32)]

    monkeypatch.setattr(session, "run_raw", run_raw)
    pixels = np.random.default_rng(1).normal(40, 30, (3, 1, 64, 64)).astype(np.float32)
    session.score(pixels, batch=8)
    expected = network_input(pixels, session.manifest.input)
    assert np.array_equal(np.concatenate(fed), expected)
