"""Real child processes for integration tests, with their logs kept."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @classmethod
    def start(
        cls,
        name: str,
        args: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        log_path: Path,
    ) -> ManagedProcess:
        log = log_path.open("wb")
        popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return cls(name, popen, log_path, log)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_port(self, port: int, *, timeout: float = 60.0) -> None:
        """Wait until the process accepts TCP connections on ``port``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}):\n{self.log_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(
            f"{self.name} did not listen on {port}:\n{self.log_text()}"
        )

    def wait_for_log(self, text: str, *, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the process's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never logged {text!r}:\n{self.log_text()}")

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def celery_worker(hostname: str, *, concurrency: int) -> list[str]:
    """The command line of a real Celery worker on both queues (threads pool)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "radtriage",
        "worker",
        "-Q",
        "urgent,routine",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--hostname",
        hostname,
        "--loglevel",
        "INFO",
    ]
