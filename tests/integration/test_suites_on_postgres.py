"""Unit suites whose point is PostgreSQL's own behaviour, run on real PostgreSQL.

The reports: percentile_cont and the planner settings, not the SQLite
aggregate. The scoring claim: row locks and READ COMMITTED re-checks, which
SQLite (one writer at a time) never shows. Those tests skip on SQLite.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from tests.harness.processes import REPO_ROOT, clean_env

SUITES = {
    "reports": (
        "tests/worklist/test_reports_turnaround.py",
        "tests/worklist/test_reports_views.py",
        "tests/worklist/test_reports_ai.py",
    ),
    "scoring claims": ("tests/inference/test_claim_race_postgres.py",),
}


@pytest.mark.parametrize("suite", list(SUITES))
def test_the_suite_passes_on_postgresql(suite: str, database_url: str) -> None:
    env = clean_env(DATABASE_URL=database_url, SECRET_KEY=secrets.token_urlsafe(50))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            *SUITES[suite],
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    # Nothing skipped there: every PostgreSQL-only test ran.
    assert "skipped" not in result.stdout, result.stdout[-4000:]
