"""Where models run: the runtime configured from settings, checked at process start.

A process that runs models (a Celery worker, ``serve``, a bench) checks its
device before it takes work: with RADTRIAGE_INFERENCE_DEVICE=cuda it refuses to
start when CUDA cannot be used; with auto it says once where models run, and why
not on a GPU that is present. The web and listener processes run no model and
so do not check (they would hold GPU memory for nothing); /readyz still reports
the plan there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings

from inference import runtime

logger = logging.getLogger(__name__)

RUNTIME_SETTINGS = frozenset(
    {
        "RADTRIAGE_INFERENCE_DEVICE",
        "RADTRIAGE_ONNX_INTRA_OP_THREADS",
        "RADTRIAGE_ONNX_INTER_OP_THREADS",
        "RADTRIAGE_ONNX_SPIN",
    }
)


def runtime_config() -> runtime.RuntimeConfig:
    """The runtime configuration the settings ask for."""
    return runtime.RuntimeConfig(
        device=str(settings.RADTRIAGE_INFERENCE_DEVICE).lower(),
        intra_op_threads=settings.RADTRIAGE_ONNX_INTRA_OP_THREADS,
        inter_op_threads=settings.RADTRIAGE_ONNX_INTER_OP_THREADS,
        spin=settings.RADTRIAGE_ONNX_SPIN,
    )


def configure_runtime(**kwargs: Any) -> None:
    """Hand the settings to the runtime (at start; when a test changes one)."""
    setting = kwargs.get("setting")
    if setting is None or setting in RUNTIME_SETTINGS:
        runtime.configure(runtime_config())


def check_inference_device() -> runtime.DevicePlan:
    """The start-up check of a process that runs models.

    Raises:
        runtime.InferenceDeviceError: device cuda, and CUDA cannot be used.
    """
    return runtime.check_device()


def load_sessions() -> list[runtime.ModelDevice]:
    """Open every model of the models folder in this process, before any work.

    Each session logs the provider it really runs on; a broken model is left
    to the registry to report (it fails alone when scored).

    Raises:
        runtime.InferenceDeviceError: device cuda, and a model cannot run on
            CUDA.
    """
    from inference import services

    loaded, _ = services.discover_models(Path(settings.RADTRIAGE_MODELS_DIR))
    for item in loaded:
        try:
            runtime.get_session(item.manifest, item.model_path)
        except runtime.InferenceDeviceError:
            raise
        except Exception:
            logger.exception("model cannot be opened model=%s", item.manifest.model_id)
    return runtime.model_devices([item.manifest for item in loaded])


def on_worker_init(**kwargs: Any) -> None:
    """Celery ``worker_init``: refuse to start a worker that cannot run models.

    Runs in the main process before the pool forks: only libraries are loaded,
    no CUDA context is made. SystemExit, because Celery logs and swallows the
    other exceptions of signal receivers.
    """
    try:
        check_inference_device()
    except runtime.InferenceDeviceError as exc:
        logger.critical("%s", exc)
        raise SystemExit(f"radtriage worker not started: {exc}") from exc


def on_worker_process_init(**kwargs: Any) -> None:
    """Celery ``worker_process_init``: open the models in each pool process.

    After the fork, so each process makes its own CUDA context; the first study
    does not wait for the model to load.
    """
    try:
        load_sessions()
    except runtime.InferenceDeviceError:
        # The parent's check passed, yet this model cannot start on CUDA: it is
        # scored as failed, never silently on the CPU.
        logger.exception("a model cannot run on CUDA in this worker process")
