"""`./run`: production commands never install; `install` records what it did.

Each test runs the real script in a temporary copy of the project whose
``.venv/bin/python`` is a stand-in that logs its arguments, so nothing is
installed and a pip call would show in the log.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_COMMANDS = [
    "web",
    "worker",
    "beat",
    "listener",
    "hl7-listener",
    "serve",
    "migrate",
    "manage",
]
FAKE_PYTHON = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../calls.log"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of ``run`` and the lock files, without any environment."""
    shutil.copy2(ROOT / "run", tmp_path / "run")
    for lock in ROOT.glob("requirements*.txt"):
        shutil.copy2(lock, tmp_path / lock.name)
    return tmp_path


def _fake_venv(project: Path) -> Path:
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    for tool in ("uvicorn", "celery"):
        (bin_dir / tool).symlink_to("python")
    return project / ".venv"


def _stamp(venv: Path, lock: str, digest: str) -> None:
    (venv / ".radtriage-installed").write_text(f"{lock} {digest}\n")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RADTRIAGE_", "VIRTUAL_ENV"))
    }
    return subprocess.run(
        [str(project / "run"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _calls(venv: Path) -> str:
    log = venv / "calls.log"
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("command", PRODUCTION_COMMANDS)
def test_production_command_without_environment_refuses_and_installs_nothing(
    project: Path, command: str
) -> None:
    result = _run(project, command)
    assert result.returncode == 3
    assert ".venv is missing" in result.stderr
    assert "./run install" in result.stderr
    assert not (project / ".venv").exists()


@pytest.mark.parametrize("command", PRODUCTION_COMMANDS)
def test_production_command_with_stale_environment_refuses_and_installs_nothing(
    project: Path, command: str
) -> None:
    venv = _fake_venv(project)
    _stamp(venv, "requirements-cpu.txt", "0" * 64)
    result = _run(project, command)
    assert result.returncode == 3
    assert "older than the requirements" in result.stderr
    assert "./run install" in result.stderr
    assert _calls(venv) == ""


def test_production_command_without_install_stamp_refuses(project: Path) -> None:
    venv = _fake_venv(project)
    result = _run(project, "web")
    assert result.returncode == 3
    assert "./run install" in result.stderr
    assert _calls(venv) == ""


def test_production_command_with_current_environment_starts(project: Path) -> None:
    venv = _fake_venv(project)
    _stamp(venv, "requirements.txt", _sha256(project / "requirements.txt"))
    result = _run(project, "manage", "check")
    assert result.returncode == 0, result.stderr
    assert _calls(venv) == "manage.py check\n"


def test_dev_environment_counts_as_installed_for_production_commands(
    project: Path,
) -> None:
    venv = _fake_venv(project)
    _stamp(venv, "requirements-dev.txt", _sha256(project / "requirements-dev.txt"))
    result = _run(project, "worker")
    assert result.returncode == 0, result.stderr
    assert "-A radtriage worker -Q urgent,routine" in _calls(venv)


@pytest.mark.parametrize(
    ("variant", "lock"),
    [("cpu", "requirements-cpu.txt"), ("gpu", "requirements.txt")],
)
def test_install_installs_the_variant_lock_with_hashes_and_stamps_it(
    project: Path, variant: str, lock: str
) -> None:
    venv = _fake_venv(project)
    result = _run(project, "install", variant)
    assert result.returncode == 0, result.stderr
    assert (
        f"install --quiet --disable-pip-version-check --require-hashes -r {lock}"
        in (_calls(venv))
    )
    stamp = (venv / ".radtriage-installed").read_text().split()
    assert stamp == [lock, _sha256(project / lock)]
    # Installed and current: a second install does nothing.
    (venv / "calls.log").unlink()
    assert _run(project, "install", variant).returncode == 0
    assert _calls(venv) == ""


def test_install_switching_builds_removes_the_other_onnxruntime(
    project: Path,
) -> None:
    venv = _fake_venv(project)
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "onnxruntime_gpu-1.31.1.dist-info").mkdir(parents=True)
    result = _run(project, "install", "cpu")
    assert result.returncode == 0, result.stderr
    calls = _calls(venv).splitlines()
    assert calls[0] == "-m pip uninstall --quiet --yes onnxruntime onnxruntime-gpu"
    assert "-r requirements-cpu.txt" in calls[1]


def test_install_refuses_an_unknown_variant(project: Path) -> None:
    _fake_venv(project)
    result = _run(project, "install", "tpu")
    assert result.returncode == 2
    assert "unknown install variant" in result.stderr


def test_every_lock_pins_every_package_with_hashes() -> None:
    for lock in sorted(ROOT.glob("requirements*.txt")):
        requirement = ""
        for line in [*lock.read_text().splitlines(), ""]:
            if line.startswith((" ", "\t")):
                requirement += line
                continue
            if requirement:
                assert "==" in requirement, (lock.name, requirement)
                assert "--hash=sha256:" in requirement, (lock.name, requirement)
            requirement = "" if line.startswith("#") else line
