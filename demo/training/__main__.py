"""``python -m demo.training``: reproduce the demo models from a seed.

Draws synthetic training sets, trains both networks on the CPU, exports them to
ONNX with their pre-processing inside, evaluates them on held-out synthetic sets
(and the hemorrhage model on the real labelled pictures when the folder exists)
and writes manifest.json, metrics.json and MODEL_CARD.md beside each model.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demo.training import data, export, modelcard, train
from inference import evaluation
from inference.manifest import file_sha256, load_manifest

REPO = Path(__file__).resolve().parents[2]
HEMORRHAGE_ID = "demo-ich-ct"
FRACTURE_ID = "demo-fracture-xr"
VERSION = "1.0.0"
REAL_PICTURES = REPO.parent / "shared" / "data" / "head-ct-hemorrhage"


def _log(message: str) -> None:
    print(message, flush=True)


def hemorrhage_manifest(sha256: str) -> dict[str, Any]:
    """The hemorrhage model's manifest document."""
    return {
        "schema_version": 1,
        "id": HEMORRHAGE_ID,
        "version": VERSION,
        "name": "Demo intracranial hemorrhage (synthetic phantoms)",
        "description": "Demonstration only, not for clinical use. Per-slice "
        "probability of acute intracranial hemorrhage on non-contrast head CT.",
        "file": "model.onnx",
        "sha256": sha256,
        "task": "per_slice",
        "findings": [
            {
                "code": "ICH",
                "display": "Intracranial hemorrhage",
                "severity": "critical",
                "threshold": 0.5,
                "report_terms": [
                    "intracranial hemorrhage",
                    "hemorrhage",
                    "haemorrhage",
                    "hematoma",
                    "haematoma",
                    "bleed",
                ],
            }
        ],
        "applicability": {
            "modalities": ["CT"],
            "body_parts": ["HEAD", "BRAIN", "SKULL", ""],
            "series_description_patterns": [],
            "exclude_series_description_patterns": [
                "(?i)\\b(bone|lung|scout|localizer|topogram|cta|angio|perfusion)\\b"
            ],
            "min_slices": 8,
            "max_slices": 400,
            "axial_only": True,
        },
        "input": {
            "name": "pixels",
            "layout": "NCHW",
            "size": [train.HEM_INPUT, train.HEM_INPUT],
            "pixel_space": "hu",
            "normalization": "window",
            "in_graph": True,
            "square_pad": True,
            "channels": [
                {"name": name, "window": {"center": c, "width": w}, "slice_offset": o}
                for name, c, w, o in train.HEM_CHANNELS
            ],
        },
        "outputs": {"probabilities": "probability", "heatmap": "heatmap"},
        "aggregation": {"method": "max", "k": 1},
    }


def fracture_manifest(sha256: str) -> dict[str, Any]:
    """The fracture model's manifest document."""
    return {
        "schema_version": 1,
        "id": FRACTURE_ID,
        "version": VERSION,
        "name": "Demo long-bone fracture (synthetic radiographs)",
        "description": "Demonstration only, not for clinical use. Probability that "
        "a limb radiograph shows a long-bone fracture.",
        "file": "model.onnx",
        "sha256": sha256,
        "task": "per_image",
        "findings": [
            {
                "code": "FX",
                "display": "Fracture",
                "severity": "urgent",
                "threshold": 0.5,
                "report_terms": ["fracture"],
            }
        ],
        "applicability": {
            "modalities": ["DX", "CR"],
            "body_parts": [],
            "series_description_patterns": [],
            "exclude_series_description_patterns": ["(?i)\\b(chest|abdomen|skull)\\b"],
            "min_slices": 1,
            "max_slices": 8,
            "axial_only": False,
        },
        "input": {
            "name": "pixels",
            "layout": "NCHW",
            "size": list(train.XR_INPUT),
            "pixel_space": "presentation",
            "normalization": "standardize",
            "in_graph": True,
            "square_pad": False,
            "channels": [{"name": "image", "slice_offset": 0}],
        },
        "outputs": {"probabilities": "probability", "heatmap": "heatmap"},
        "aggregation": {"method": "max", "k": 1},
    }


def _write(folder: Path, document: dict[str, Any]) -> None:
    (folder / "manifest.json").write_text(json.dumps(document, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--out", type=Path, default=REPO / "inference" / "demo_models")
    parser.add_argument("--ct-volumes", type=int, default=360)
    parser.add_argument("--hemorrhage-steps", type=int, default=2200)
    parser.add_argument("--radiographs", type=int, default=2000)
    parser.add_argument("--fracture-steps", type=int, default=900)
    parser.add_argument("--held-out", type=int, default=60)
    parser.add_argument("--only", choices=["hemorrhage", "fracture"], default=None)
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="re-evaluate the models in --out without training",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.evaluate_only:
        _evaluate_only(args)
        return
    started = time.monotonic()
    if args.only in (None, "hemorrhage"):
        _hemorrhage(args)
        _log(f"hemorrhage done at {time.monotonic() - started:.0f} s")
    if args.only in (None, "fracture"):
        _fracture(args)
        _log(f"fracture done at {time.monotonic() - started:.0f} s")


def _hemorrhage(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    _log(f"drawing {args.ct_volumes} synthetic head CTs ...")
    volumes = data.draw_many_ct(
        data.ct_cases(
            args.ct_volumes, seed_base=data.TRAIN_SEED_BASE + args.seed % 1000
        ),
        processes=args.threads,
    )
    slices = sum(v.hu.shape[0] for v in volumes)
    positives = int(sum(v.labels.sum() for v in volumes))
    _log(f"  {slices} slices, {positives} with blood")
    net = train.train(
        train.hemorrhage_net(),
        train.HemorrhageBatches(volumes, rng, picture_fraction=0.35),
        steps=args.hemorrhage_steps,
        batch=48,
        lr=3e-3,
        log=_log,
    )
    del volumes
    folder = args.out / HEMORRHAGE_ID
    export.export(
        net,
        export.window_pre_graph(train.HEM_INPUT, train.HEM_INPUT, train.HEM_CHANNELS),
        torch.zeros(2, len(train.HEM_CHANNELS), train.HEM_INPUT, train.HEM_INPUT),
        folder / "model.onnx",
        description="RadTriage demo ICH model; not for clinical use",
    )
    _write(folder, hemorrhage_manifest(file_sha256(folder / "model.onnx")))
    training = {
        "seed": args.seed,
        "volumes": args.ct_volumes,
        "slices": slices,
        "slices_with_blood": positives,
        "steps": args.hemorrhage_steps,
        "batch": 48,
    }
    _evaluate_hemorrhage(folder, args.held_out, training)


def _evaluate_hemorrhage(folder: Path, held_out: int, training: dict[str, Any]) -> None:
    model = load_manifest(folder)
    session = evaluation.cpu_session(model)
    results = data.score_held_out_hemorrhage(session, model, held_out)
    synthetic = evaluation.summarise(results, 0.5)
    _log(f"  held-out synthetic: {synthetic}")
    real = None
    if (REAL_PICTURES / "labels.csv").exists():
        real = evaluation.summarise(
            evaluation.evaluate_pictures(session, model, REAL_PICTURES), 0.5
        )
        _log(f"  real pictures: {real}")
    metrics = {
        "held_out_synthetic": asdict(synthetic),
        "real_pictures": asdict(real) if real else None,
        "training": training,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / "MODEL_CARD.md").write_text(modelcard.hemorrhage_card(metrics))


def _fracture(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 1)
    _log(f"drawing {args.radiographs} synthetic radiographs ...")
    drawn = data.draw_many_xr(
        data.xr_cases(
            args.radiographs, seed_base=data.TRAIN_SEED_BASE + args.seed % 1000
        ),
        processes=args.threads,
    )
    images = np.stack([d[0] for d in drawn]).astype(np.float32)
    labels = np.asarray([d[1] for d in drawn], dtype=np.float32)
    masks = np.stack([d[2] for d in drawn])
    # Crops first (what a fracture line looks like), then whole images.
    crop_steps = args.fracture_steps * 3 // 5
    net = train.train(
        train.fracture_net(),
        train.FractureCrops(images, labels, masks, rng),
        steps=crop_steps,
        batch=32,
        lr=2e-3,
        log=_log,
    )
    net = train.train(
        net,
        train.FractureBatches(images, labels, masks, rng),
        steps=args.fracture_steps - crop_steps,
        batch=32,
        lr=1e-3,
        log=_log,
    )
    folder = args.out / FRACTURE_ID
    export.export(
        net,
        export.standardise_pre_graph(*train.XR_INPUT),
        torch.zeros(2, 1, *train.XR_INPUT),
        folder / "model.onnx",
        description="RadTriage demo fracture model; not for clinical use",
    )
    _write(folder, fracture_manifest(file_sha256(folder / "model.onnx")))
    training = {
        "seed": args.seed,
        "radiographs": args.radiographs,
        "steps": args.fracture_steps,
        "batch": 32,
    }
    _evaluate_fracture(folder, args.held_out * 2, training)


def _evaluate_fracture(folder: Path, held_out: int, training: dict[str, Any]) -> None:
    model = load_manifest(folder)
    session = evaluation.cpu_session(model)
    results = [
        evaluation.score_volume(session, model, pixels, label=label)
        for pixels, label in data.held_out_fracture(held_out)
    ]
    synthetic = evaluation.summarise(results, 0.5)
    _log(f"  held-out synthetic: {synthetic}")
    metrics = {"held_out_synthetic": asdict(synthetic), "training": training}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / "MODEL_CARD.md").write_text(modelcard.fracture_card(metrics))


def _evaluate_only(args: argparse.Namespace) -> None:
    """Re-evaluate the committed models; their training section is kept."""
    for model_id, evaluate, count in (
        (HEMORRHAGE_ID, _evaluate_hemorrhage, args.held_out),
        (FRACTURE_ID, _evaluate_fracture, args.held_out * 2),
    ):
        folder = args.out / model_id
        if args.only and not model_id.startswith(
            {"hemorrhage": "demo-ich", "fracture": "demo-fracture"}[args.only]
        ):
            continue
        training = json.loads((folder / "metrics.json").read_text())["training"]
        evaluate(folder, count, training)


if __name__ == "__main__":
    main()
