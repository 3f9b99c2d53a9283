"""Real child processes with their logs kept: one harness for tests and benches.

Plain Python, no pytest: ``bench/`` imports it too (benches run from the repository
root as ``python -m bench.NAME``). Each process starts in a process group of its
own, with stdout and stderr captured to a log file; every wait has a timeout and
fails with the process's log tail; :meth:`ManagedProcess.stop` sends SIGTERM,
waits, then SIGKILLs the whole group, so it never hangs and leaves no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# A deployment's own settings, which a test or bench process must not inherit.
DEPLOYMENT_PREFIXES = ("DJANGO_", "RADTRIAGE_", "DATABASE_", "REDIS_")
LOG_TAIL_CHARS = 6000
STOP_TIMEOUT_S = 20.0


class HarnessError(AssertionError):
    """A process exited early, a wait timed out, or a command failed.

    An ``AssertionError``, so pytest reports it as a failed expectation and the
    tests that add context to a timeout (``except AssertionError``) keep working.
    """


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment without a deployment's own settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DEPLOYMENT_PREFIXES)}
    env.update(overrides)
    return env


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; :class:`HarnessError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_manage(
    env: Mapping[str, str],
    *args: str,
    input_text: str | None = None,
    timeout: float = 300,
) -> str:
    """Run ``manage.py`` to completion; its stdout, or :class:`HarnessError`."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@dataclass
class ManagedProcess:
    """One child process in its own process group, its output in ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @classmethod
    def start(
        cls,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = REPO_ROOT,
    ) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("wb")
        try:
            # A group of its own: stop() can kill what it spawned (pool processes,
            # uvicorn's workers) with it, and a Ctrl-C at the terminal reaches only
            # the parent, whose shutdown then stops the children in order.
            popen = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,  # never the terminal of a bench
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        except BaseException:
            log.close()
            raise
        return cls(name, popen, log_path, log)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        text = self.log_text()
        return text if len(text) <= chars else "...\n" + text[-chars:]

    def _fail(self, what: str) -> HarnessError:
        return HarnessError(
            f"{self.name} {what}; its log ({self.log_path}):\n{self.log_tail()}"
        )

    def _check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise self._fail(f"exited ({self.popen.returncode})")

    def _wait(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            self._check_alive()
            if time.monotonic() >= deadline:
                raise self._fail(f"did not {what} within {timeout:.0f} s")
            time.sleep(0.05)

    def wait_for_port(self, port: int, *, timeout: float = 60.0) -> None:
        """Wait until the process accepts TCP connections on ``port``."""
        self._wait(lambda: port_open(port), timeout=timeout, what=f"listen on {port}")

    def wait_for_log(self, text: str, *, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the process's output."""
        self._wait(
            lambda: text in self.log_text(), timeout=timeout, what=f"log {text!r}"
        )

    def wait_for_http(self, url: str, *, timeout: float = 60.0) -> None:
        """Wait until a GET of ``url`` answers 2xx."""

        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    return 200 <= int(response.status) < 300
            except (OSError, urllib.error.URLError):
                return False

        self._wait(answers, timeout=timeout, what=f"answer {url}")

    def wait_exit(self, *, timeout: float) -> int:
        """Wait for a process that ends by itself (a sender); its exit code."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise self._fail(f"did not exit within {timeout:.0f} s") from None
        self.stop()  # its group too, and the log closed
        return code

    def stop(self, *, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the group; the exit code.

        Never raises for a slow or stuck process, and safe to call twice. The
        group is killed even after a clean exit: anything the process left
        behind (a pool child, a grandchild) goes with it.
        """
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s did not exit within %.0f s of SIGTERM; killing its group",
                    self.name,
                    timeout,
                )
        self._kill_group()
        if self.popen.poll() is None:
            # SIGKILL cannot be ignored; only a process stuck in the kernel
            # (uninterruptible I/O) outlives it, and waiting for it is pointless.
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                logger.warning("%s survived SIGKILL", self.name)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode

    def _kill_group(self) -> None:
        # ProcessLookupError: the group is already gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


@dataclass
class Processes:
    """Processes started together and stopped together, newest first.

    ``with Processes(log_dir, env) as processes: processes.start(...)``; the
    pytest fixture ``start_process`` and every bench use one of these.
    """

    log_dir: Path
    env: Mapping[str, str] = field(default_factory=clean_env)
    started: list[ManagedProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        args: Sequence[str],
        *,
        extra_env: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path = REPO_ROOT,
    ) -> ManagedProcess:
        """Start ``args``; ``env`` replaces the group's, ``extra_env`` adds to it."""
        process = ManagedProcess.start(
            name,
            args,
            env={**(self.env if env is None else env), **(extra_env or {})},
            log_path=log_path or self.log_dir / f"{name}.log",
            cwd=cwd,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()


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
