"""Time the turnaround report on one year of 500,000 synthetic studies.

    .venv/bin/python -m bench.reports [--studies N] [--keep]

Creates a fresh PostgreSQL database (from BENCH_POSTGRES_URL or TEST_POSTGRES_URL,
default postgresql://postgres@127.0.0.1:5432/postgres), migrates it, bulk-loads
patients and studies with every timeline timestamp by COPY, then times the
whole-year report and one month with filters. The baseline, measured in the same
run, fetches the year's timestamps and computes the same stage figures in Python.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench._copy import copy_rows
from bench._postgres import create_database, drop_database

YEAR = 2025
RADIOLOGISTS = 20
TARGET_SECONDS = 2.0
NULL = "\\N"


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(first, median of the rest or first) wall seconds, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    rest = times[1:] or times
    return times[0], statistics.median(rest), result


def _stamps(base: np.ndarray, offset_s: np.ndarray, present: np.ndarray) -> list[str]:
    values = base + (offset_s * 1e6).astype("timedelta64[us]")
    text = np.datetime_as_string(values, unit="us")
    return [f"{t}+00" if ok else NULL for t, ok in zip(text, present, strict=True)]


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds a local PostgreSQL backend has used, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _database_cpu(run: Callable[[], Any]) -> tuple[float | None, list[float]]:
    """Database CPU seconds of ``run`` (and per query), whatever the load.

    Wall time on a busy machine says little; the backend's own CPU time is what
    the queries cost. Inside a transaction the report runs its queries one after
    another on this connection, so one backend does all the work.
    """
    from django.db import connection, transaction

    from worklist.reports.turnaround import SETTINGS_STATEMENT

    per_query: list[float] = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = int(cursor.fetchone()[0])
        start = _backend_cpu(pid)
        if start is None:
            return None, []

        def measure(
            execute: Any, sql: str, params: Any, many: bool, context: Any
        ) -> Any:
            if sql.startswith(SETTINGS_STATEMENT):
                return execute(sql, params, many, context)
            before = _backend_cpu(pid) or 0.0
            try:
                return execute(sql, params, many, context)
            finally:
                per_query.append((_backend_cpu(pid) or 0.0) - before)

        with connection.execute_wrapper(measure):
            run()
        end = _backend_cpu(pid) or start
    return end - start, per_query


def synthesise(
    n: int, patients: int, user_ids: list[int], rng: np.random.Generator
) -> dict[str, list[str]]:
    """Column name -> COPY text values for ``n`` studies over one year."""
    year_start = np.datetime64(f"{YEAR}-01-01T00:00:00", "us")
    received = year_start + (rng.uniform(0, 365 * 86400, n) * 1e6).astype(
        "timedelta64[us]"
    )
    received.sort()
    classes = rng.choice(
        ["emergency", "inpatient", "outpatient", "unknown"], n, p=[0.3, 0.25, 0.4, 0.05]
    )
    priorities = rng.choice(["stat", "urgent", "routine"], n, p=[0.15, 0.2, 0.65])
    modalities = rng.choice(
        ["CT", "CR", "MR", "US", "DX", "CT\\\\SR"],
        n,
        p=[0.4, 0.25, 0.15, 0.1, 0.05, 0.05],
    )
    zero = np.zeros(n)
    transfer = rng.lognormal(np.log(120), 0.6, n)  # acquired before received
    arrival = rng.uniform(30, 120, n)
    scored = np.isin(modalities, ["CT", "MR", "CT\\\\SR"]) & (rng.random(n) > 0.03)
    scoring = rng.lognormal(np.log(60), 0.5, n)
    wait_median = np.select(
        [classes == "emergency", classes == "inpatient", classes == "outpatient"],
        [600.0, 3600.0, 18000.0],
        7200.0,
    )
    waiting = rng.lognormal(np.log(wait_median), 0.8)
    reading = rng.lognormal(np.log(1200), 0.7, n)
    opened = rng.random(n) > 0.01
    final = opened & (rng.random(n) > 0.01)
    stable_s = arrival
    scored_s = stable_s + scoring
    opened_s = np.where(scored, scored_s, stable_s) + waiting
    final_s = opened_s + reading
    has_acquired = rng.random(n) > 0.03
    claimed = opened
    rad = rng.choice(np.array(user_ids), n)
    ai_status = np.where(scored, "scored", "not_applicable")
    reading_status = np.where(final, "final", np.where(opened, "in_progress", "ready"))
    uid_prefix = f"2.25.{secrets.randbits(64)}."
    return {
        "id": [str(i) for i in range(1, n + 1)],
        "study_instance_uid": [f"{uid_prefix}{i}" for i in range(n)],
        "patient_id": [str(p) for p in rng.integers(1, patients + 1, n)],
        "accession_number": [f"B{i:08d}" for i in range(n)],
        "modalities": modalities.tolist(),
        "patient_class": classes.tolist(),
        "order_priority": priorities.tolist(),
        "reading_status": reading_status.tolist(),
        "claimed_by_id": [
            str(r) if c else NULL for r, c in zip(rad, claimed, strict=True)
        ],
        "study_date": np.datetime_as_string(received, unit="D").tolist(),
        "acquired_at": _stamps(received, -transfer, has_acquired),
        "first_instance_received_at": _stamps(received, zero, np.ones(n, bool)),
        "last_instance_received_at": _stamps(received, stable_s - 20, np.ones(n, bool)),
        "stable_at": _stamps(received, stable_s, np.ones(n, bool)),
        "first_opened_at": _stamps(received, opened_s, opened),
        "claimed_at": _stamps(received, opened_s, claimed),
        "finalized_at": _stamps(received, final_s, final),
        "ai_status": ai_status.tolist(),
        "scoring_queued_at": _stamps(received, stable_s + 0.1, scored),
        "scoring_started_at": _stamps(received, stable_s + 0.5, scored),
        "scored_at": _stamps(received, scored_s, scored),
        "created_at": _stamps(received, zero, np.ones(n, bool)),
        "updated_at": _stamps(received, final_s, np.ones(n, bool)),
    }


#: What synthesise() makes that the worklist keeps (its WorklistEntry).
ENTRY_COLUMNS = (
    "reading_status",
    "claimed_by_id",
    "first_opened_at",
    "claimed_at",
    "finalized_at",
)

#: ... and what the scoring layer keeps (its StudyScoring).
SCORING_COLUMNS = (
    "ai_status",
    "scoring_queued_at",
    "scoring_started_at",
    "scored_at",
)

_FILL = {
    "text": "",
    "character varying": "",
    "integer": "0",
    "bigint": "0",
    "smallint": "0",
    "double precision": "0",
    "boolean": "f",
    "jsonb": "[]",
}


def _missing_columns(
    conn: psycopg.Connection[Any], table: str, given: set[str]
) -> dict[str, str]:
    """NOT NULL columns without a default that we do not supply, with a filler.

    Keeps the bench loading while other issues add columns to the table.
    """
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL "
        "AND column_name <> 'id'",
        (table,),
    ).fetchall()
    missing = {}
    for name, data_type in rows:
        if name in given:
            continue
        if data_type not in _FILL:
            raise SystemExit(f"bench: cannot fill {table}.{name} ({data_type})")
        missing[name] = _FILL[data_type]
    return missing


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: dict[str, list[str]], n: int
) -> None:
    filler = _missing_columns(conn, table, set(columns))
    names = [*columns, *filler]
    values = [*columns.values(), *([v] * n for v in filler.values())]
    copy_rows(conn, table, names, zip(*values, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args(argv)
    n: int = args.studies
    name, url = create_database()
    try:
        return _run(url, n)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(name)
        else:
            print(f"kept database {url}")


def _run(url: str, n: int) -> int:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radtriage.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from worklist.reports.turnaround import (
        MILESTONE_FIELDS,
        TurnaroundFilters,
        turnaround_report,
    )
    from worklist.reports.views import sla_targets
    from worklist.tat import STAGES, Timeline, stage_seconds, summarise

    print(f"PostgreSQL database {url.rsplit('/', 1)[-1]}: migrating ...", flush=True)
    call_command("migrate", "--noinput", verbosity=0)
    users = User.objects.bulk_create(
        [User(username=f"bench_rad_{i}") for i in range(RADIOLOGISTS)]
    )
    rng = np.random.default_rng(20250101)
    patients = max(1, n // 5)
    start = time.perf_counter()
    columns = synthesise(n, patients, [u.pk for u in users], rng)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        now = dt.datetime.now(dt.UTC).isoformat()
        _copy(
            conn,
            "triage_patient",
            {
                "id": [str(i) for i in range(1, patients + 1)],
                "patient_id": [f"BP{i:07d}" for i in range(1, patients + 1)],
                "created_at": [now] * patients,
            },
            patients,
        )
        entry = {name: columns.pop(name) for name in ENTRY_COLUMNS}
        scoring = {name: columns.pop(name) for name in SCORING_COLUMNS}
        _copy(conn, "triage_study", columns, n)
        scoring["study_id"] = columns["id"]
        _copy(conn, "inference_studyscoring", scoring, n)
        # The AI raised about one scored study in six in the worklist.
        flagged = (rng.random(n) < 0.15) & (np.array(scoring["ai_status"]) == "scored")
        entry["study_id"] = columns["id"]
        entry["ai_flagged"] = ["t" if f else "f" for f in flagged]
        _copy(conn, "worklist_worklistentry", entry, n)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('triage_study', 'id'), %s)", (n,)
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        # As a year-old table would be: statistics, visibility map, hint bits.
        conn.execute("VACUUM (FREEZE, ANALYZE) triage_study")
        conn.execute("VACUUM (FREEZE, ANALYZE) worklist_worklistentry")
        conn.execute("VACUUM (FREEZE, ANALYZE) inference_studyscoring")
    loaded = time.perf_counter() - start
    print(
        f"{n:,} studies synthesised in {generated:.1f} s, "
        f"loaded by COPY in {loaded:.1f} s"
    )

    targets = sla_targets()
    year = TurnaroundFilters(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))
    month = TurnaroundFilters(
        dt.date(YEAR, 6, 1),
        dt.date(YEAR, 6, 30),
        modality="CT",
        patient_class="emergency",
    )
    first, year_s, report = _timed(lambda: turnaround_report(year, targets), 4)
    m_first, month_s, m_report = _timed(lambda: turnaround_report(month, targets), 4)

    def python_baseline() -> list[Any]:
        from triage.models import Study

        fields = list(MILESTONE_FIELDS.values())
        rows = Study.objects.filter(first_instance_received_at__year=YEAR).values_list(
            *fields
        )
        per_stage: dict[str, list[float]] = {s.code: [] for s in STAGES}
        for row in rows.iterator(chunk_size=20000):
            timeline = Timeline(dict(zip(MILESTONE_FIELDS, row, strict=True)))
            for stage in STAGES:
                seconds = stage_seconds(timeline, stage)
                if seconds is not None:
                    per_stage[stage.code].append(seconds)
        return [summarise(v) for v in per_stage.values()]

    cpu_total, cpu_queries = _database_cpu(lambda: turnaround_report(year, targets))
    base_first, _, baseline = _timed(python_baseline, 1)
    for row, check in zip(report.stages, baseline, strict=True):
        assert row.summary.count == check.count, row.stage.code
        assert (
            abs((row.summary.median_seconds or 0) - (check.median_seconds or 0)) < 0.01
        )

    print()
    print(f"turnaround report, whole year ({report.studies:,} studies):")
    print(
        f"  first run {first:.3f} s, then median {year_s:.3f} s "
        f"(target < {TARGET_SECONDS:.0f} s)"
    )
    print(
        f"one month with filters (June, CT, emergency; {m_report.studies:,} studies):"
    )
    print(f"  first run {m_first:.3f} s, then median {month_s:.3f} s")
    if cpu_total is not None:
        per_query = ", ".join(f"{c:.2f}" for c in cpu_queries)
        print(
            f"  PostgreSQL CPU time for the year: {cpu_total:.2f} s in "
            f"{len(cpu_queries)} queries ({per_query} s); they run concurrently, "
            f"so an idle machine with {len(cpu_queries)}+ cores needs about "
            f"{max(cpu_queries):.2f} s"
        )
    print(
        "baseline: the year's stage figures computed in Python over rows: "
        f"{base_first:.3f} s"
    )
    print(
        f"  database aggregates are {base_first / year_s:.1f}x faster than the baseline"
    )
    print()
    print("year figures (minutes): stage  count  median  p90")
    for row in report.stages:
        s = row.summary
        print(
            f"  {row.stage.code:<9} {s.count:>8,} {(s.median_seconds or 0) / 60:8.1f}"
            f" {(s.p90_seconds or 0) / 60:8.1f}"
        )
    for sla in report.sla:
        share = "-" if sla.share is None else f"{sla.share:.1%}"
        print(
            f"  SLA {sla.patient_class:<10} {sla.finalized:>8,} final, "
            f"{share} within {sla.target_minutes:.0f} min"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
    ok = year_s < TARGET_SECONDS
    print(
        f"\n{'PASS' if ok else 'FAIL'}: whole-year report {year_s:.3f} s "
        f"against {TARGET_SECONDS:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
