"""MODEL_CARD.md text for the demo models, filled from their metrics."""

from __future__ import annotations

from typing import Any


def _f(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _metrics_table(m: dict[str, Any]) -> str:
    rows = [
        ("cases", m["cases"]),
        ("positives", m["positives"]),
        ("study-level ROC AUC", m["study_auc"]),
        ("slice-level ROC AUC", m.get("slice_auc")),
        ("sensitivity at the threshold", m["sensitivity"]),
        ("specificity at the threshold", m["specificity"]),
        ("key slice within 2 slices of the bleed centre", m.get("key_slice_within_2")),
        (
            "key slice within 2 slices of a slice with blood",
            m.get("key_slice_near_bleed"),
        ),
    ]
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {_f(value)} |" for name, value in rows if value is not None]
    return "\n".join(lines)


_COMMON = """
## Intended use

**Demonstration only. Not for clinical use.** This model exists to show RadTriage's
scoring pipeline end to end (applicability, decoding, pre-processing, inference,
key slice, heatmap, priority). It was trained only on synthetic phantoms from
`demo/synthetic/`; it has never seen a patient's image during training and must
never be used to make or support a clinical decision.

## Reproduce

`./run train-demo-models` (installs `requirements-train.txt`: torch and onnx, which
are training-only extras) redraws the training set from its seed, trains on the
CPU, exports to ONNX, evaluates and rewrites this card, `manifest.json` (with the
file's SHA-256) and `metrics.json`; `--evaluate-only` re-evaluates the committed
files. On 2 cores the step rate measured while the machine was otherwise idle
puts both models at about 15-20 minutes; the committed files took 35 minutes
(hemorrhage) and 20 minutes (fracture) on a 2-core machine shared with other
heavy jobs. CPU floating point is not bit-identical across machines, so a retrain
may move the figures slightly.
"""


def hemorrhage_card(metrics: dict[str, Any]) -> str:
    """The hemorrhage model's card."""
    t = metrics["training"]
    real = metrics.get("real_pictures")
    real_text = (
        f"""ROC AUC **{real["study_auc"]:.3f}** on the {real["cases"]} real labelled
head CT slices ({real["positives"]} with hemorrhage) in
`../shared/data/head-ct-hemorrhage/` (the public "Head CT - hemorrhage" pictures,
brain window, 8-bit, many sizes, some with burned-in letters). They are used for
evaluation only: never for training, tuning or threshold choice, and never copied
into the project. Each picture goes in through `gray8_to_pixels` (grey values read
back onto the 40/80 brain window, padded square) as a one-slice series.

{_metrics_table(real)}

This is the figure that says whether the model learnt hemorrhage or only our
phantoms; read it with the synthetic figures above. Sensitivity and specificity
use the manifest threshold (0.5), which was not tuned on these pictures."""
        if real
        else "The real pictures were not available when this card was written."
    )
    return f"""# Model card: demo-ich-ct 1.0.0 (intracranial hemorrhage, head CT)

Per-slice probability of acute intracranial hemorrhage on a non-contrast axial
head CT, aggregated to the study by the maximum over slices; the key slice is the
highest-scoring slice, and a 16x16 evidence map gives the heatmap.

## Model

- ONNX, opset 18, one file (`model.onnx`) with its pre-processing inside: input
  `pixels` float32 (slices, 1, rows, columns) in HU at the series' own resolution;
  the graph resizes to 128x128 (antialiased), builds five channels (brain 40/80,
  subdural 80/200 and bone 600/2800 windows of the slice; brain window of the slice
  below and above, repeated at the ends of the batch) and runs a 10-layer CNN
  (about 0.5 M parameters) whose last layer is an evidence map, pooled by
  log-sum-exp. Outputs `probability` (slices, 1) and `heatmap` (slices, 1, 16, 16).
- Operating threshold 0.5 (site-overridable in the admin).

## Training data

Synthetic only: {t["volumes"]} phantom head CTs ({t["slices"]} slices,
{t["slices_with_blood"]} with blood) from `demo.synthetic.ct_head_volume_hu`,
55 % with one bleed, the five types in turn (intraparenchymal, subdural, epidural,
subarachnoid, intraventricular), 24-40 slices, drawn at 256 px and stored at
160 px. Labels: a slice is positive when it holds any blood voxel; the blood mask
also supervises the evidence map. Seed {t["seed"]}, {t["steps"]} steps of {t["batch"]}.

Augmentation: gain/offset and noise, rotation ±20°, zoom 0.85-1.45 (tight crops of
the skull), shift, left-right flips, blur, calcified dots (150-600 HU) that are
not blood, single slices without neighbours; and, for 35 % of each batch, what an
8-bit brain-window picture keeps: window level 28-50 and width 65-140, gamma
0.7-1.4, downsampling, blur, burned-in letters and rulers, 8-bit quantisation,
read back as HU on the nominal 40/80 window with no neighbouring slices.

## Held-out synthetic evaluation

A fresh set of phantom studies (seeds never trained on, 512 px as the scanner
writes them, the whole pipeline from HU array to study score):

{_metrics_table(metrics["held_out_synthetic"])}

## Real images

{real_text}
{_COMMON}"""


def fracture_card(metrics: dict[str, Any]) -> str:
    """The fracture model's card."""
    t = metrics["training"]
    return f"""# Model card: demo-fracture-xr 1.0.0 (long-bone fracture, radiographs)

Probability that a limb radiograph (DX or CR; forearm, leg or humerus) shows a
long-bone fracture; a 16x12 evidence map gives the heatmap.

## Model

- ONNX, opset 18, one file (`model.onnx`) with its pre-processing inside: input
  `pixels` float32 (images, 1, rows, columns) of presentation values (MONOCHROME1
  already inverted, so bone is bright); the graph resizes to 256x192 (antialiased)
  and standardises each image, then runs a 9-layer CNN. Outputs `probability`
  (images, 1) and `heatmap` (images, 1, 16, 12).
- Operating threshold 0.5 (site-overridable in the admin).

## Training data

Synthetic only: {t["radiographs"]} limb radiographs from
`demo.synthetic.radiograph_pixels` (half with a transverse or oblique fracture,
displaced or not), drawn at 512x384 and stored at 256x192. Seed {t["seed"]},
{t["steps"]} steps of {t["batch"]}: the first 60 % on 128x128 crops
(around the fracture line, or on intact bone), the rest on whole images. A mask
of the bone around the fracture line supervises the evidence map. Augmentation:
gamma, contrast range, noise, rotation ±8°, zoom, shift, flips.

## Held-out synthetic evaluation

Fresh radiographs (seeds never trained on) at 1024x768, through the whole
pipeline from presentation values to the image score:

{_metrics_table(metrics["held_out_synthetic"])}
{_COMMON}"""
