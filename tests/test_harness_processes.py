"""The process harness that tests/integration and bench/ share (tests/harness)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.harness.processes import (
    HarnessError,
    ManagedProcess,
    Processes,
    free_port,
    port_open,
)

# Ignores SIGTERM, as a web process stuck in its graceful shutdown does, and
# leaves a grandchild that would outlive it; prints the grandchild's pid.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"ready {child.pid}", flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it has exited all the same.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _python(tmp_path: Path, name: str, code: str) -> ManagedProcess:
    return ManagedProcess.start(
        name,
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        log_path=tmp_path / f"{name}.log",
    )


def test_stop_kills_a_process_that_ignores_sigterm_and_its_children(
    tmp_path: Path,
) -> None:
    stubborn = _python(tmp_path, "stubborn", STUBBORN)
    stubborn.wait_for_log("ready", timeout=20)
    grandchild = int(stubborn.log_text().split()[1])

    started = time.monotonic()
    code = stubborn.stop(timeout=0.5)

    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert stubborn.stop() == code  # twice is harmless


def test_a_process_that_exits_on_sigterm_stops_with_its_code(tmp_path: Path) -> None:
    sleeper = _python(tmp_path, "sleeper", "import time; time.sleep(600)")
    assert sleeper.stop(timeout=10) == -signal.SIGTERM


def test_waiting_for_a_log_line_times_out_with_the_log_tail(tmp_path: Path) -> None:
    quiet = _python(
        tmp_path, "quiet", "print('booting', flush=True); import time; time.sleep(600)"
    )
    with Processes(tmp_path) as processes:
        processes.started.append(quiet)
        with pytest.raises(HarnessError, match=r"(?s)never.*booting"):
            quiet.wait_for_log("never", timeout=0.5)
    assert quiet.popen.poll() is not None


def test_waiting_for_a_port_fails_at_once_when_the_process_exits(
    tmp_path: Path,
) -> None:
    crash = _python(tmp_path, "crash", "print('no database'); raise SystemExit(3)")
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"(?s)exited \(3\).*no database"):
        crash.wait_for_port(free_port(), timeout=30)
    assert time.monotonic() - started < 15
    crash.stop()


def test_a_free_port_has_no_listener() -> None:
    assert not port_open(free_port())
