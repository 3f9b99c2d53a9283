"""Where models run: the provider choice per setting and machine, the refusal of
``cuda`` without CUDA, one start log, and the provider that really ran recorded.

No GPU here: onnxruntime's build, the machine and the session's providers are
faked; everything else (settings, sessions on the CPU, scoring) is real.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import onnxruntime as ort
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from demo.synthetic import HemorrhageType, make_ct_head_study
from inference import runtime, services, startup
from inference.models import ScoreResult, ScoreStatus
from triage.models import Study

CUDA, CPU = runtime.CUDA, runtime.CPU
S = runtime.Situation
MISSING_CUDNN = "libcudnn.so.9: cannot open shared object file: No such file"

# Each situation: the build's providers, why no GPU is visible (None: one is),
# why the CUDA provider cannot load (None: it can).
MACHINES: dict[str, tuple[list[str], str | None, str | None]] = {
    "cpu-only build": ([CPU], None, None),
    "no gpu": ([CUDA, CPU], "no NVIDIA GPU or driver on this machine", None),
    "gpu, cuda unusable": (
        [CUDA, CPU],
        None,
        "the CUDA provider's libraries do not load: libcudnn.so.9 is missing",
    ),
    "gpu, cuda usable": ([CUDA, CPU], None, None),
}


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make this process see one of MACHINES."""

    def become(name: str) -> None:
        available, absent, problem = MACHINES[name]
        monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
        monkeypatch.setattr(runtime, "_gpu_absent", lambda: absent)
        monkeypatch.setattr(runtime, "_cuda_problem", lambda: problem)
        runtime.clear_device_plans()

    return become


class ReportingSession(ort.InferenceSession):  # type: ignore[misc]
    """A real CPU session that reports the providers a GPU machine would."""

    reported: ClassVar[list[str]] = [CUDA, CPU]
    asked: ClassVar[list[Any]] = []

    def __init__(self, path: str, sess_options: Any = None, **kwargs: Any) -> None:
        ReportingSession.asked = list(kwargs.get("providers") or [])
        super().__init__(path, sess_options=sess_options, providers=[CPU])

    def get_providers(self) -> list[str]:
        return list(self.reported)


@pytest.fixture
def reporting(monkeypatch: pytest.MonkeyPatch) -> type[ReportingSession]:
    monkeypatch.setattr(ort, "InferenceSession", ReportingSession)
    ReportingSession.reported = [CUDA, CPU]
    return ReportingSession


EXPECTED = {
    # (setting, machine): (situation, providers asked for); None: refused.
    ("auto", "cpu-only build"): (S.CPU_ONLY_BUILD, (CPU,)),
    ("auto", "no gpu"): (S.NO_GPU, (CPU,)),
    ("auto", "gpu, cuda unusable"): (S.CUDA_UNUSABLE, (CPU,)),
    ("auto", "gpu, cuda usable"): (S.CUDA, (CUDA, CPU)),
    ("cpu", "cpu-only build"): (S.CPU_CHOSEN, (CPU,)),
    ("cpu", "no gpu"): (S.CPU_CHOSEN, (CPU,)),
    ("cpu", "gpu, cuda unusable"): (S.CPU_CHOSEN, (CPU,)),
    ("cpu", "gpu, cuda usable"): (S.CPU_CHOSEN, (CPU,)),
    ("cuda", "cpu-only build"): None,
    ("cuda", "no gpu"): None,
    ("cuda", "gpu, cuda unusable"): None,
    ("cuda", "gpu, cuda usable"): (S.CUDA, (CUDA, CPU)),
}


@pytest.mark.parametrize(("device", "name"), list(EXPECTED))
def test_each_setting_on_each_machine_asks_for_the_right_provider(
    machine: Callable[[str], None], settings: Any, device: str, name: str
) -> None:
    machine(name)
    settings.RADTRIAGE_INFERENCE_DEVICE = device
    expected = EXPECTED[(device, name)]
    plan = runtime.device_plan()
    if expected is None:
        with pytest.raises(runtime.InferenceDeviceError) as refused:
            runtime.check_device()
        message = str(refused.value)
        assert message.startswith("RADTRIAGE_INFERENCE_DEVICE=cuda, but CUDA cannot")
        assert plan.reason in message
        assert "RADTRIAGE_INFERENCE_DEVICE=auto" in message
        return
    situation, providers = expected
    assert (plan.situation, plan.providers) == (situation, providers)
    assert runtime.check_device() == plan
    assert runtime.providers() == list(providers)
    assert bool(plan.reason) == (situation is not S.CUDA)


def test_the_reasons_tell_the_situations_apart(
    machine: Callable[[str], None],
) -> None:
    reasons = {}
    for name in MACHINES:
        machine(name)
        reasons[name] = runtime.device_plan("auto").reason
    assert "CPU-only build" in reasons["cpu-only build"]
    assert "no NVIDIA GPU" in reasons["no gpu"]
    assert reasons["gpu, cuda unusable"].startswith("a GPU is present but")
    assert "libcudnn.so.9" in reasons["gpu, cuda unusable"]
    assert reasons["gpu, cuda usable"] == ""


class _Driver:
    def __init__(self, version: int) -> None:
        self.version = version

    def cuDriverGetVersion(self, pointer: Any) -> int:
        pointer._obj.value = self.version
        return 0


def _fake_libraries(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    driver: int = 13000,
    missing: str | None = None,
) -> list[str]:
    """Fake dlopen: the driver, a provider library that needs ``missing``."""
    calls: list[str] = []
    provider = tmp_path / "libonnxruntime_providers_cuda.so"
    provider.write_bytes(b"")

    def cdll(name: str) -> Any:
        calls.append(Path(name).name)
        if name == "libcuda.so.1":
            return _Driver(driver)
        if missing and name == str(provider):
            raise OSError(missing)
        return object()

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(runtime, "_cuda_provider_library", lambda: provider)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(runtime, "_build_cuda_major", lambda: 13)

    def preload() -> None:
        calls.append("preload_dlls")
        print("Failed to load libcudnn.so.9")  # what onnxruntime prints

    monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)
    return calls


def test_the_cuda_libraries_are_preloaded_before_the_provider_is_tried(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = _fake_libraries(monkeypatch, tmp_path)
    assert runtime._cuda_problem() is None
    assert calls == ["libcuda.so.1", "preload_dlls", "libonnxruntime_providers_cuda.so"]
    # What preload_dlls prints is kept off the terminal.
    assert capsys.readouterr().out == ""


def test_a_missing_cudnn_is_named_as_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_libraries(monkeypatch, tmp_path, missing=MISSING_CUDNN)
    problem = runtime._cuda_problem()
    assert problem is not None
    assert "libcudnn.so.9 is missing" in problem
    assert "onnxruntime-gpu[cuda,cudnn]" in problem


def test_a_driver_too_old_for_the_build_is_named_as_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _fake_libraries(monkeypatch, tmp_path, driver=12040)
    problem = runtime._cuda_problem()
    assert problem is not None
    assert "supports CUDA 12.4" in problem and "needs CUDA 13" in problem
    assert "preload_dlls" not in calls


def test_start_says_once_where_models_run_and_why_not_the_gpu(
    machine: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    machine("gpu, cuda unusable")
    with caplog.at_level(logging.INFO, logger="inference.runtime"):
        for _ in range(3):
            runtime.check_device()
    records = [r for r in caplog.records if r.name == "inference.runtime"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "on the CPU" in records[0].getMessage()
    assert "libcudnn.so.9" in records[0].getMessage()


def test_a_worker_with_cuda_required_and_no_gpu_refuses_to_start(
    machine: Callable[[str], None], settings: Any
) -> None:
    machine("no gpu")
    settings.RADTRIAGE_INFERENCE_DEVICE = "cuda"
    with pytest.raises(SystemExit) as refused:
        startup.on_worker_init(sender=None)
    assert "radtriage worker not started" in str(refused.value.code)
    assert "no NVIDIA GPU or driver" in str(refused.value.code)


def test_a_worker_in_auto_mode_starts_without_a_gpu(
    machine: Callable[[str], None], settings: Any
) -> None:
    machine("no gpu")
    settings.RADTRIAGE_INFERENCE_DEVICE = "auto"
    startup.on_worker_init(sender=None)  # no SystemExit


@pytest.mark.django_db
def test_serve_with_cuda_required_and_no_gpu_refuses_before_any_work(
    machine: Callable[[str], None], settings: Any
) -> None:
    machine("gpu, cuda unusable")
    settings.RADTRIAGE_INFERENCE_DEVICE = "cuda"
    with pytest.raises(CommandError, match=r"libcudnn\.so\.9"):
        call_command("serve", "--no-listener")


def _demo_ich() -> services.RegistryEntry:
    entry = next(e for e in services.sync_registry() if e.model_id == "demo-ich-ct")
    assert entry.loaded is not None
    return entry


@pytest.mark.django_db
def test_a_session_reports_the_provider_that_really_runs(
    machine: Callable[[str], None], reporting: type[ReportingSession]
) -> None:
    machine("gpu, cuda usable")
    loaded = _demo_ich().loaded
    assert loaded is not None
    session = runtime.get_session(loaded.manifest, loaded.model_path)
    assert reporting.asked == [CUDA, CPU]
    assert (session.provider, session.device, session.reason) == (CUDA, "cuda", "")
    runtime.clear_sessions()
    # The CUDA provider did not start: ONNX Runtime fell back to the CPU.
    reporting.reported = [CPU]
    session = runtime.get_session(loaded.manifest, loaded.model_path)
    assert (session.provider, session.device) == (CPU, "cpu")
    assert "could not start the CUDA provider" in session.reason


@pytest.mark.django_db
def test_with_cuda_required_a_fallback_to_the_cpu_is_refused(
    machine: Callable[[str], None],
    reporting: type[ReportingSession],
    settings: Any,
) -> None:
    machine("gpu, cuda usable")
    settings.RADTRIAGE_INFERENCE_DEVICE = "cuda"
    reporting.reported = [CPU]
    loaded = _demo_ich().loaded
    assert loaded is not None
    with pytest.raises(runtime.InferenceDeviceError, match="runs on CPUExecution"):
        runtime.get_session(loaded.manifest, loaded.model_path)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reported", "device"), [([CUDA, CPU], "cuda"), ([CPU], "cpu")]
)
def test_a_result_records_the_provider_that_really_ran(
    machine: Callable[[str], None],
    reporting: type[ReportingSession],
    store_study: Callable[..., Study],
    reported: list[str],
    device: str,
) -> None:
    machine("gpu, cuda usable")  # CUDA is asked for either way
    reporting.reported = reported
    study = store_study(
        make_ct_head_study(3, slices=8, size=128, hemorrhage=HemorrhageType.SUBDURAL)
    )
    assert services.score_study(study.pk, clock=timezone.now)
    result = ScoreResult.objects.get(study=study, model__model_id="demo-ich-ct")
    assert result.status == ScoreStatus.SCORED
    assert result.device == device


@pytest.mark.django_db
def test_readyz_reports_where_each_model_runs(
    machine: Callable[[str], None],
    reporting: type[ReportingSession],
    client: Any,
) -> None:
    machine("gpu, cuda unusable")
    body = client.get("/readyz").json()["inference"]
    assert body["device"] == "auto"
    assert body["providers"] == [CPU]
    assert "libcudnn.so.9" in body["reason"]
    ich = body["models"]["demo-ich-ct"]
    assert (ich["provider"], ich["loaded"]) == (CPU, False)
    assert "libcudnn.so.9" in ich["reason"]
    # A process that loaded the model (serve, a worker) reports its session.
    machine("gpu, cuda usable")
    startup.load_sessions()
    body = client.get("/readyz").json()["inference"]
    ich = body["models"]["demo-ich-ct"]
    assert (ich["provider"], ich["loaded"], ich["reason"]) == (CUDA, True, "")
    assert set(body["models"]) == {"demo-ich-ct", "demo-fracture-xr"}
