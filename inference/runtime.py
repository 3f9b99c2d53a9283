"""ONNX Runtime sessions: one per model file per process, on the GPU when usable.

The CUDA execution provider is asked for only when the onnxruntime build offers
it *and* the machine really has an NVIDIA device and driver, probed quietly, so a
CPU-only machine prints no CUDA errors. Thread counts come from settings.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from django.conf import settings

from inference.manifest import Manifest
from inference.preprocess import F32, chunks

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@cache
def gpu_usable() -> bool:
    """Whether an NVIDIA GPU and its driver are present (probed once, silently)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if not Path("/dev/nvidiactl").exists() and not Path("/proc/driver/nvidia").exists():
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def providers() -> list[str]:
    """The execution providers to ask for, best first."""
    wanted = str(getattr(settings, "RADTRIAGE_INFERENCE_DEVICE", "auto")).lower()
    available = ort.get_available_providers()
    if wanted != "cpu" and CUDA in available and gpu_usable():
        return [CUDA, CPU]
    return [CPU]


def session_options() -> ort.SessionOptions:
    """ONNX Runtime options from settings: threads, optimisation, quiet logs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.RADTRIAGE_ONNX_INTRA_OP_THREADS
    options.inter_op_num_threads = settings.RADTRIAGE_ONNX_INTER_OP_THREADS
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning idle intra-op threads (ONNX Runtime's default) hold the cores
    # that reading, drawing and writing need right after a run: off unless set.
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if settings.RADTRIAGE_ONNX_SPIN else "0"
    )
    # Quiet: ONNX Runtime warns at level 2 about provider placement.
    options.log_severity_level = 3
    return options


@dataclass(frozen=True, slots=True, eq=False)
class ModelOutputs:
    """What a model said about a series, slices in the order fed.

    Attributes:
        probabilities: float32 (slices, findings).
        heatmaps: float32 (slices, findings, h, w), or None.
    """

    probabilities: F32
    heatmaps: F32 | None


class Session:
    """A loaded model: its ONNX Runtime session and manifest."""

    def __init__(self, manifest: Manifest, model_path: Path) -> None:
        self.manifest = manifest
        self.providers = providers()
        self.session = ort.InferenceSession(
            str(model_path), sess_options=session_options(), providers=self.providers
        )
        self.device = "cuda" if CUDA in self.session.get_providers() else "cpu"
        self._lock = threading.Lock()

    def run_raw(self, batch: F32) -> list[np.ndarray]:
        """Run the graph on one ready batch; returns the outputs as named."""
        names = [self.manifest.outputs.probabilities]
        if self.manifest.outputs.heatmap:
            names.append(self.manifest.outputs.heatmap)
        # One run at a time per session: threads of the embedded worker share it.
        with self._lock:
            result = self.session.run(names, {self.manifest.input.name: batch})
        return list(result)

    def run(self, pixels: F32, *, batch: int) -> ModelOutputs:
        """Run the model over a whole series, in batches with slice context.

        Args:
            pixels: (slices, 1, rows, columns) float32 in the model's pixel space
                (in-graph models) or ready network input (others).
            batch: Most slices per run.
        """
        context = self.manifest.input.context if self.manifest.input.in_graph else 0
        probabilities: list[F32] = []
        heatmaps: list[F32] = []
        for chunk in chunks(pixels.shape[0], batch, context):
            outputs = self.run_raw(
                np.ascontiguousarray(pixels[chunk.start : chunk.stop])
            )
            lo = chunk.keep_start - chunk.start
            hi = lo + (chunk.keep_stop - chunk.keep_start)
            probabilities.append(np.asarray(outputs[0], np.float32)[lo:hi])
            if len(outputs) > 1:
                heatmaps.append(np.asarray(outputs[1], np.float32)[lo:hi])
        return ModelOutputs(
            probabilities=np.concatenate(probabilities, axis=0),
            heatmaps=np.concatenate(heatmaps, axis=0) if heatmaps else None,
        )


_sessions: dict[tuple[str, str, str], Session] = {}
_sessions_lock = threading.Lock()


def get_session(manifest: Manifest, model_path: Path) -> Session:
    """Return this process's session for a model file, creating it once.

    Keyed by model id, version and file hash, so a new version loads anew.
    """
    key = (manifest.model_id, manifest.version, manifest.sha256)
    session = _sessions.get(key)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(key)
            if session is None:
                session = Session(manifest, model_path)
                _sessions[key] = session
                logger.info(
                    "loaded model %s %s on %s",
                    manifest.model_id,
                    manifest.version,
                    session.device,
                )
    return session


def clear_sessions() -> None:
    """Drop every cached session (tests; a reload of the model folder)."""
    with _sessions_lock:
        _sessions.clear()
