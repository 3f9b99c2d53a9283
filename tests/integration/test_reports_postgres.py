"""The report aggregates on real PostgreSQL: percentile_cont, not the SQLite one."""

from __future__ import annotations

import secrets
import subprocess
import sys

from tests.harness.processes import REPO_ROOT, clean_env


def test_turnaround_figures_match_the_hand_computed_fixture_on_postgresql(
    database_url: str,
) -> None:
    env = clean_env(DATABASE_URL=database_url, SECRET_KEY=secrets.token_urlsafe(50))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/worklist/test_reports_turnaround.py",
            "tests/worklist/test_reports_views.py",
            "tests/worklist/test_reports_ai.py",
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
