"""Stability in the production setup: beat, workers, listener, PostgreSQL, Redis.

Two beat schedulers and two workers run on purpose, as a mis-deployed site
would: every sweep runs more than once, and each stability is still recorded
exactly once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from demo.synthetic import write_study
from tests.harness.processes import ManagedProcess, celery_worker, wait_until
from tests.integration.dicom_peers import Listener, query, require_program, run_dcmtk
from tests.triage.dicom_data import ct_study

pytest_plugins = ["tests.integration.dicom_peers"]

FAST_STABILITY = {
    "RADTRIAGE_STABILITY_SECONDS": "*=2",
    "RADTRIAGE_STABILITY_SWEEP_SECONDS": "0.5",
}


def study_events(database_url: str) -> list[str]:
    """The study's arrival and stability events (scoring adds its own)."""
    rows = query(
        database_url,
        "SELECT kind FROM triage_studyevent "
        "WHERE kind IN ('received', 'stable', 'reopened') ORDER BY at, id",
    )
    return [str(row[0]) for row in rows]


def test_stability_is_declared_once_per_quiet_period_by_duplicate_sweepers(
    start_listener: Callable[..., Listener],
    start_process: Callable[..., ManagedProcess],
    database_url: str,
    tmp_path: Path,
) -> None:
    storescu = require_program("storescu", "dcmtk")
    listener = start_listener(**FAST_STABILITY)
    celery = [sys.executable, "-m", "celery", "-A", "radtriage"]
    for n in (1, 2):
        worker = start_process(
            f"worker{n}",
            celery_worker(f"w{n}@localhost", concurrency=2),
            extra_env=FAST_STABILITY,
        )
        worker.wait_for_log(f"w{n}@localhost ready", timeout=60)
        start_process(
            f"beat{n}",
            [*celery, "beat", "--schedule", str(tmp_path / f"beat{n}"), "-l", "INFO"],
            extra_env=FAST_STABILITY,
        )
    study = ct_study(21, slices=6)
    paths = write_study(study, tmp_path / "study")
    send = [storescu, "-aec", "RADTRIAGE", "127.0.0.1", str(listener.port)]

    for path in paths[:5]:  # instances arrive over time, never 2 s apart
        assert run_dcmtk([*send, str(path)]).returncode == 0
        time.sleep(0.5)
    wait_until(
        lambda: "stable" in study_events(database_url),
        timeout=30,
        what="the study to become stable",
    )
    time.sleep(3)  # many more sweeps by both schedulers
    assert study_events(database_url) == ["received", "stable"]

    assert run_dcmtk([*send, str(paths[5])]).returncode == 0  # a late instance
    wait_until(
        lambda: study_events(database_url).count("stable") == 2,
        timeout=30,
        what="the reopened study to become stable again",
    )
    time.sleep(3)
    assert study_events(database_url) == ["received", "stable", "reopened", "stable"]
    [(reading_status,)] = query(
        database_url, "SELECT reading_status FROM worklist_worklistentry"
    )
    assert reading_status != "awaiting_images"
