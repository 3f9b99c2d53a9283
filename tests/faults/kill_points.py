"""A real Celery worker whose scoring process SIGKILLs itself at a named point.

Test-only, so product code carries no hooks: run as
``python -m tests.faults.kill_points <celery arguments>``. In each pool process
(``worker_process_init``) it wraps three functions of ``inference.services``,
each in the module that looks it up when a study is scored (``score_study``
calls ``scoring._claim`` and ``scoring._score_with``; ``scoring._store_results``
calls ``results.apply_results``):

- ``before-claim``: entering ``_claim`` (the task was received, nothing written);
- ``mid-inference``: entering ``_score_with`` (claimed, lease held, models
  about to run, no result recorded);
- ``after-commit``: first of the on-commit callbacks of the transaction that
  recorded the results (committed; priority and alerts not yet run), which is
  where the kernel's OOM killer struck in production.

``RADTRIAGE_TEST_KILL_AT`` names the point and ``RADTRIAGE_TEST_KILL_MARK`` a
file: the first process to reach the point creates it (holding the kill's
wall-clock time) and dies; every later one passes, so a test sees one kill.
With ``RADTRIAGE_TEST_KILL_WORKER=1`` the whole worker (the pool's parent) is
killed first, as a machine lost would be.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

POINTS = ("before-claim", "mid-inference", "after-commit")


def _kill_once(point: str) -> None:
    if os.environ.get("RADTRIAGE_TEST_KILL_AT") != point:
        return
    try:
        fd = os.open(
            os.environ["RADTRIAGE_TEST_KILL_MARK"], os.O_CREAT | os.O_EXCL | os.O_WRONLY
        )
    except FileExistsError:
        return
    os.write(fd, f"{time.time()}\n".encode())
    os.fsync(fd)
    os.close(fd)
    if os.environ.get("RADTRIAGE_TEST_KILL_WORKER") == "1":
        os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def install(**kwargs: Any) -> None:
    """Wrap the scoring functions at the kill points (in a pool process)."""
    from django.db import transaction

    from inference.services import results, scoring

    claim = scoring._claim
    score_with = scoring._score_with
    apply_results = results.apply_results

    def claim_then(study_id: int, now: Any) -> Any:
        _kill_once("before-claim")
        return claim(study_id, now)

    def score_with_then(*args: Any) -> Any:
        _kill_once("mid-inference")
        return score_with(*args)

    def apply_results_then(job: Any, outcomes: Any, *, now: Any) -> None:
        # The outer transaction is ours: our callback is the first to run
        # once it commits, before the ones apply_results registers.
        with transaction.atomic():
            transaction.on_commit(lambda: _kill_once("after-commit"))
            apply_results(job, outcomes, now=now)

    scoring._claim = claim_then
    scoring._score_with = score_with_then  # type: ignore[assignment]
    results.apply_results = apply_results_then


if __name__ == "__main__":
    assert os.environ.get("RADTRIAGE_TEST_KILL_AT") in POINTS
    from celery.__main__ import main
    from celery.signals import worker_process_init

    worker_process_init.connect(install, weak=False)
    sys.argv[0] = "celery"
    sys.exit(main())
