"""The committed demo models: intact, small, documented, and accurate on
held-out synthetic sets regenerated here from fixed seeds (never trained on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.training import data
from inference import evaluation
from inference.manifest import load_manifest

DEMO_MODELS = Path(__file__).resolve().parents[2] / "inference" / "demo_models"
MODELS = ("demo-ich-ct", "demo-fracture-xr")


@pytest.mark.parametrize("model_id", MODELS)
def test_a_demo_model_is_intact_small_and_documented(model_id: str) -> None:
    model = load_manifest(DEMO_MODELS / model_id)  # checks the sha256 too
    assert model.manifest.model_id == model_id
    assert model.model_path.stat().st_size <= 10 * 1024 * 1024
    card = (DEMO_MODELS / model_id / "MODEL_CARD.md").read_text()
    assert "Not for clinical use" in card
    metrics = json.loads((DEMO_MODELS / model_id / "metrics.json").read_text())
    assert metrics["held_out_synthetic"]["study_auc"] >= 0.95


def test_the_hemorrhage_card_states_the_real_image_auc() -> None:
    metrics = json.loads((DEMO_MODELS / "demo-ich-ct" / "metrics.json").read_text())
    real = metrics["real_pictures"]
    assert real is not None and real["cases"] == 100
    card = (DEMO_MODELS / "demo-ich-ct" / "MODEL_CARD.md").read_text()
    assert f"ROC AUC **{real['study_auc']:.3f}**" in card


def test_the_hemorrhage_model_separates_held_out_phantoms() -> None:
    model = load_manifest(DEMO_MODELS / "demo-ich-ct")
    session = evaluation.cpu_session(model)
    results = data.score_held_out_hemorrhage(session, model, 40, size=256)
    metrics = evaluation.summarise(results, model.manifest.findings[0].threshold)
    assert 15 <= metrics.positives <= 25
    assert metrics.study_auc is not None and metrics.study_auc >= 0.95, metrics
    # The key slice holds the bleed, or nearly (within two slices).
    assert metrics.key_slice_near_bleed is not None
    assert metrics.key_slice_near_bleed >= 0.9, metrics


def test_the_fracture_model_separates_held_out_radiographs() -> None:
    model = load_manifest(DEMO_MODELS / "demo-fracture-xr")
    session = evaluation.cpu_session(model)
    results = [
        evaluation.score_volume(session, model, pixels, label=label)
        for pixels, label in data.held_out_fracture(40)
    ]
    metrics = evaluation.summarise(results, model.manifest.findings[0].threshold)
    assert 10 <= metrics.positives <= 30
    assert metrics.study_auc is not None and metrics.study_auc >= 0.95, metrics
