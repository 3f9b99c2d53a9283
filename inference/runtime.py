"""ONNX Runtime sessions: one per model file per process, on the provider that runs.

Plain Python (no Django): the inference app hands the settings over with
``configure``, so the scorer, site validation, the training script and the
benches open a model the same way. The device plan is worked out once per
process without touching a CUDA context (a forked worker may still use the GPU
afterwards): which ONNX Runtime build is installed, whether an NVIDIA GPU and
driver are present, and whether the CUDA provider's libraries load. Each
session then reports the provider that really runs it, read from
``InferenceSession.get_providers()``, never assumed.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference.manifest import Manifest
from inference.preprocess import F32, chunks, network_input

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
# What a result's provenance records, by the provider that ran it.
DEVICE_NAMES = {CUDA: "cuda", CPU: "cpu"}


class InferenceDeviceError(RuntimeError):
    """RADTRIAGE_INFERENCE_DEVICE is cuda and CUDA cannot be used here."""


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """How sessions are made: the settings of the same names.

    Attributes:
        device: ``auto`` (the GPU when usable, else the CPU), ``cpu`` or
            ``cuda`` (the GPU or nothing).
        intra_op_threads: ONNX Runtime's threads within an operator (0: its
            default).
        inter_op_threads: Threads across operators.
        spin: Whether idle intra-op threads spin (ONNX Runtime's default) or
            sleep.
    """

    device: str = "auto"
    intra_op_threads: int = 2
    inter_op_threads: int = 1
    spin: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"inference device must be one of {', '.join(DEVICES)}")


_config = RuntimeConfig()


def configure(config: RuntimeConfig) -> None:
    """Use ``config`` for the sessions made from now on (drops the cached ones)."""
    global _config
    _config = config
    clear_sessions()


def current_config() -> RuntimeConfig:
    """The configuration sessions are made with."""
    return _config


class Situation(StrEnum):
    """Why a process runs its models where it does."""

    CPU_CHOSEN = "cpu chosen"  # RADTRIAGE_INFERENCE_DEVICE=cpu
    CPU_ONLY_BUILD = "cpu-only onnxruntime build"
    NO_GPU = "no gpu"
    CUDA_UNUSABLE = "gpu present, cuda provider unusable"
    CUDA = "cuda"


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """The providers this process asks for, and why not the GPU.

    Attributes:
        device: The setting (auto, cpu or cuda).
        situation: What was found on this machine.
        providers: Execution providers to ask for, best first.
        reason: Why the GPU is not asked for; empty when it is.
    """

    device: str
    situation: Situation
    providers: tuple[str, ...]
    reason: str

    def require(self) -> None:
        """Raise when the setting demands CUDA and this machine cannot give it.

        Raises:
            InferenceDeviceError: device is cuda and CUDA is not usable.
        """
        if self.device == "cuda" and self.situation is not Situation.CUDA:
            raise InferenceDeviceError(
                "RADTRIAGE_INFERENCE_DEVICE=cuda, but CUDA cannot be used: "
                f"{self.reason}. Fix the GPU installation, or set "
                "RADTRIAGE_INFERENCE_DEVICE=auto (the CPU when the GPU is not "
                "usable) or cpu."
            )


def _gpu_absent() -> str | None:
    """Why no NVIDIA GPU is visible to this process, or None when one is."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "CUDA_VISIBLE_DEVICES hides every GPU"
    if not Path("/dev/nvidiactl").exists() and not Path("/proc/driver/nvidia").exists():
        return "no NVIDIA GPU or driver on this machine"
    return None


def _build_cuda_major() -> int | None:
    """The CUDA major version the installed onnxruntime-gpu was built for."""
    try:
        from onnxruntime.capi import build_and_package_info as info
    except ImportError:
        return None
    version = str(getattr(info, "cuda_version", "") or "")
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _preload_cuda_libraries() -> str:
    """Load CUDA and cuDNN from the nvidia-* wheels, where the build offers it.

    ``onnxruntime.preload_dlls()`` (1.21+) finds the libraries that the
    ``onnxruntime-gpu[cuda,cudnn]`` extras install under site-packages/nvidia,
    then the system's; it prints what it could not load: returned, not shown.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            preload()
        except (OSError, RuntimeError) as exc:
            # A missing library is named again by the provider's own load.
            printed.write(f"{type(exc).__name__}: {exc}")
    return printed.getvalue().strip()


def _cuda_provider_library() -> Path:
    """The CUDA provider's shared library, as onnxruntime-gpu installs it."""
    return Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"


def _cuda_problem() -> str | None:
    """Why the CUDA provider cannot load here, or None when it can.

    Loads libraries only (dlopen); no CUDA context is created, so a process
    that forks workers afterwards can still hand them the GPU.
    """
    if sys.platform != "linux":
        return None  # left to ONNX Runtime; the session says what ran
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return f"the NVIDIA driver library cannot be loaded ({exc})"
    needed = _build_cuda_major()
    version = ctypes.c_int(0)
    if needed is not None and libcuda.cuDriverGetVersion(ctypes.byref(version)) == 0:
        have = version.value // 1000
        if have < needed:
            return (
                f"the NVIDIA driver supports CUDA {have}.{version.value % 1000 // 10}, "
                f"this onnxruntime-gpu needs CUDA {needed} (update the driver)"
            )
    printed = _preload_cuda_libraries()
    provider = _cuda_provider_library()
    if provider.is_file():
        try:
            ctypes.CDLL(str(provider))
        except OSError as exc:
            hint = " (install onnxruntime-gpu[cuda,cudnn])"
            missing = str(exc).split(":", 1)[0]
            detail = f"{missing} is missing{hint}" if ".so" in missing else str(exc)
            if printed:
                logger.debug("onnxruntime.preload_dlls: %s", printed)
            return f"the CUDA provider's libraries do not load: {detail}"
    return None


def _make_plan(device: str) -> DevicePlan:
    if device == "cpu":
        return DevicePlan(
            device, Situation.CPU_CHOSEN, (CPU,), "RADTRIAGE_INFERENCE_DEVICE is cpu"
        )
    if CUDA not in ort.get_available_providers():
        return DevicePlan(
            device,
            Situation.CPU_ONLY_BUILD,
            (CPU,),
            f"the installed ONNX Runtime {ort.__version__} is a CPU-only build "
            "(install onnxruntime-gpu[cuda,cudnn] for the GPU)",
        )
    absent = _gpu_absent()
    if absent is not None:
        return DevicePlan(device, Situation.NO_GPU, (CPU,), absent)
    problem = _cuda_problem()
    if problem is not None:
        return DevicePlan(
            device, Situation.CUDA_UNUSABLE, (CPU,), f"a GPU is present but {problem}"
        )
    return DevicePlan(device, Situation.CUDA, (CUDA, CPU), "")


_plans: dict[str, DevicePlan] = {}
_plans_lock = threading.Lock()
_announced: set[str] = set()


def device_plan(device: str | None = None) -> DevicePlan:
    """This process's device plan for ``device`` (default: the configured one).

    Worked out once per process and device setting.
    """
    wanted = device or _config.device
    plan = _plans.get(wanted)
    if plan is None:
        with _plans_lock:
            plan = _plans.get(wanted)
            if plan is None:
                plan = _make_plan(wanted)
                _plans[wanted] = plan
    return plan


def check_device() -> DevicePlan:
    """The start-up check of a process that runs models (worker, serve, bench).

    Logs once per process where models will run and, when a GPU is present but
    cannot be used, why not.

    Raises:
        InferenceDeviceError: RADTRIAGE_INFERENCE_DEVICE is cuda and CUDA is not
            usable; the process must not start.
    """
    plan = device_plan()
    plan.require()
    with _plans_lock:
        first = plan.device not in _announced
        _announced.add(plan.device)
    if first:
        if plan.situation is Situation.CUDA:
            logger.info("inference device %s: CUDA requested", plan.device)
        elif plan.situation is Situation.CUDA_UNUSABLE:
            logger.warning(
                "inference device %s: on the CPU, %s", plan.device, plan.reason
            )
        else:
            logger.info("inference device %s: on the CPU, %s", plan.device, plan.reason)
    return plan


def providers() -> list[str]:
    """The execution providers to ask for, best first."""
    return list(device_plan().providers)


def session_options(config: RuntimeConfig | None = None) -> ort.SessionOptions:
    """ONNX Runtime options: threads, optimisation, quiet logs."""
    config = config or _config
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning idle intra-op threads (ONNX Runtime's default) hold the cores
    # that reading, drawing and writing need right after a run: off unless set.
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if config.spin else "0"
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
    """A loaded model: its ONNX Runtime session, manifest and real provider.

    Attributes:
        provider: The execution provider that runs the model (the first of the
            session's providers: CUDA places on the CPU only what it lacks).
        device: ``cuda`` or ``cpu``: what a result's provenance records.
        reason: Why the model is not on the GPU; empty when it is.
    """

    def __init__(
        self,
        manifest: Manifest,
        model_path: Path,
        config: RuntimeConfig | None = None,
    ) -> None:
        config = config or _config
        plan = device_plan(config.device)
        plan.require()
        self.manifest = manifest
        self.providers = list(plan.providers)
        self.session = ort.InferenceSession(
            str(model_path),
            sess_options=session_options(config),
            providers=self.providers,
        )
        running = list(self.session.get_providers())
        self.provider = running[0] if running else CPU
        self.device = DEVICE_NAMES.get(self.provider, self.provider.lower()[:16])
        self.reason = plan.reason
        if CUDA in plan.providers and self.provider != CUDA:
            # The libraries loaded but the provider did not start (no usable
            # device, out of memory...): ONNX Runtime fell back to the CPU.
            self.reason = (
                "a GPU is present but ONNX Runtime could not start the CUDA "
                "provider for this model (its log on stderr says why)"
            )
            if config.device == "cuda":
                raise InferenceDeviceError(
                    f"RADTRIAGE_INFERENCE_DEVICE=cuda, but model {manifest.model_id} "
                    f"runs on {self.provider}: {self.reason}"
                )
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

    def score(self, pixels: F32, *, batch: int) -> ModelOutputs:
        """Run the model on a decoded series exactly as the scorer does.

        Args:
            pixels: (slices, 1, rows, columns) float32 in the model's pixel space,
                as ``preprocess.read_series`` returns them; models whose
                preprocessing is not in the graph get their network input made
                here.
            batch: Most slices per run (the scorer: RADTRIAGE_INFERENCE_BATCH).
        """
        if not self.manifest.input.in_graph:
            pixels = network_input(pixels, self.manifest.input)
        return self.run(pixels, batch=batch)


_sessions: dict[tuple[str, str, str], Session] = {}
_sessions_lock = threading.Lock()


def get_session(manifest: Manifest, model_path: Path) -> Session:
    """Return this process's session for a model file, creating it once.

    Keyed by model id, version and file hash, so a new version loads anew.
    Logs, once per session, the provider the model really runs on.

    Raises:
        InferenceDeviceError: device cuda, and the model cannot run on CUDA.
    """
    key = (manifest.model_id, manifest.version, manifest.sha256)
    session = _sessions.get(key)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(key)
            if session is None:
                session = Session(manifest, model_path)
                _sessions[key] = session
                if session.reason and session.provider != CUDA:
                    logger.info(
                        "model %s %s runs on %s: %s",
                        manifest.model_id,
                        manifest.version,
                        session.provider,
                        session.reason,
                    )
                else:
                    logger.info(
                        "model %s %s runs on %s",
                        manifest.model_id,
                        manifest.version,
                        session.provider,
                    )
    return session


@dataclass(frozen=True, slots=True)
class ModelDevice:
    """Where one model runs, for /readyz.

    Attributes:
        model_id: The model.
        version: Its version.
        provider: The execution provider.
        loaded: True when read from this process's session; False when the
            model is not loaded here and ``provider`` is the plan's choice.
        reason: Why not the GPU; empty when on it.
    """

    model_id: str
    version: str
    provider: str
    loaded: bool
    reason: str


def model_devices(manifests: list[Manifest]) -> list[ModelDevice]:
    """Where each model runs in this process (its session), else would run."""
    plan = device_plan()
    by_key = {key[:2]: s for key, s in list(_sessions.items())}
    devices = []
    for manifest in manifests:
        session = by_key.get((manifest.model_id, manifest.version))
        if session is not None:
            devices.append(
                ModelDevice(
                    manifest.model_id,
                    manifest.version,
                    session.provider,
                    True,
                    "" if session.provider == CUDA else session.reason,
                )
            )
        else:
            devices.append(
                ModelDevice(
                    manifest.model_id,
                    manifest.version,
                    plan.providers[0],
                    False,
                    plan.reason,
                )
            )
    return devices


def clear_sessions() -> None:
    """Drop every cached session (tests; a reload of the model folder)."""
    with _sessions_lock:
        _sessions.clear()


def clear_device_plans() -> None:
    """Forget the device plans and start logs (tests; a changed machine)."""
    with _plans_lock:
        _plans.clear()
        _announced.clear()
