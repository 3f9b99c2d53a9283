"""Moving study state to its owners loses nothing on a populated database.

The reading state, claim, priority and version move from the study row to
worklist.WorklistEntry; AI status and the scoring timeline to
inference.StudyScoring. Forty studies in every state are written with the
schema before the move, migrated forward and back, on real PostgreSQL.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.harness.processes import ManagedProcess

#: The last migrations before the move, per app.
BEFORE = (("triage", "0009"), ("worklist", "0002"), ("inference", "0003"))
STATUSES = ("awaiting_images", "awaiting_ai", "ready", "in_progress", "final")
AI = ("pending", "queued", "scoring", "scored", "not_applicable", "failed")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ENTRY_COLUMNS = (
    "reading_status",
    "claimed_by_id",
    "priority_score",
    "priority_components",
    "version",
    "first_opened_at",
    "claimed_at",
    "preliminary_at",
    "finalized_at",
)
SCORING_COLUMNS = (
    "ai_status",
    "ai_status_reason",
    "scoring_queued_at",
    "early_scoring_queued_at",
    "scoring_started_at",
    "scored_at",
)


def _old_study(i: int, reader: int) -> dict[str, object]:
    """Study i's state as the old schema kept it, all on the study row."""
    at = T0 + timedelta(minutes=i)
    status = STATUSES[i % len(STATUSES)]
    claimed = status in ("in_progress", "final") and i % 2 == 0
    return {
        "reading_status": status,
        "claimed_by_id": reader if claimed else None,
        "priority_score": round(i * 2.5, 2),
        "priority_components": json.dumps(
            [{"code": "order", "points": float(i), "reason": f"case {i}"}]
        ),
        "version": i * 3,
        "first_opened_at": at if i % 3 == 0 else None,
        "claimed_at": at if claimed else None,
        "preliminary_at": at if i % 7 == 0 else None,
        "finalized_at": at if status == "final" else None,
        "ai_status": AI[i % len(AI)],
        "ai_status_reason": f"reason {i}" if i % 4 == 0 else "",
        "scoring_queued_at": at if i % 2 else None,
        "early_scoring_queued_at": at if i % 5 == 0 else None,
        "scoring_started_at": at if i % 3 else None,
        "scored_at": at if AI[i % len(AI)] == "scored" else None,
    }


def _insert_reader_and_patient(conn: psycopg.Connection) -> tuple[int, int]:
    [(reader,)] = conn.execute(
        "INSERT INTO auth_user (password, is_superuser, username, first_name,"
        " last_name, email, is_staff, is_active, date_joined)"
        " VALUES ('', false, 'reader', '', '', '', false, true, now())"
        " RETURNING id"
    ).fetchall()
    [(patient,)] = conn.execute(
        "INSERT INTO triage_patient (patient_id, issuer_of_patient_id,"
        " patient_name, patient_sex, created_at)"
        " VALUES ('P1', '', '', '', now()) RETURNING id"
    ).fetchall()
    return reader, patient


def _migrate_to_before_the_move(manage: Callable[..., str]) -> None:
    manage("migrate", "--noinput")
    for app, name in BEFORE:
        manage("migrate", app, name, "--noinput")


def _values(row: tuple[object, ...]) -> tuple[object, ...]:
    # JSON comes back parsed from jsonb; compare it as data.
    return tuple(
        json.loads(v) if isinstance(v, str) and v[:1] == "[" else v for v in row
    )


def test_the_state_move_keeps_every_studys_state_both_ways(
    manage: Callable[..., str], database_url: str
) -> None:
    _migrate_to_before_the_move(manage)
    columns = (*ENTRY_COLUMNS, *SCORING_COLUMNS)
    expected: dict[str, tuple[object, ...]] = {}
    with psycopg.connect(database_url) as conn:
        reader, patient = _insert_reader_and_patient(conn)
        for i in range(40):
            old = _old_study(i, reader)
            uid = f"1.2.826.0.1.3680043.10.99.{i}"
            names = ", ".join(old)
            marks = ", ".join(["%s"] * len(old))
            [(study_id,)] = conn.execute(
                "INSERT INTO triage_study (study_instance_uid, patient_id,"  # noqa: S608
                " accession_number, modalities, body_part_examined,"
                " study_description, patient_class, order_priority,"
                f" instance_count, created_at, updated_at, {names})"
                f" VALUES (%s, %s, '', 'CT', '', '', 'unknown', 'routine', 0,"
                f" now(), now(), {marks}) RETURNING id",
                (uid, patient, *old.values()),
            ).fetchall()
            if i % 4 == 1:  # some had a worklist entry already (the AI flag)
                conn.execute(
                    "INSERT INTO worklist_worklistentry (study_id, ai_flagged,"
                    " last_activity_at) VALUES (%s, true, %s)",
                    (study_id, T0),
                )
            expected[uid] = tuple(old[c] for c in columns)

    manage("migrate", "--noinput")
    with psycopg.connect(database_url) as conn:
        entry = ", ".join(f"e.{c}" for c in ENTRY_COLUMNS)
        scoring = ", ".join(f"c.{c}" for c in SCORING_COLUMNS)
        rows = conn.execute(
            f"SELECT s.study_instance_uid, {entry}, {scoring}, e.ai_flagged"  # noqa: S608
            " FROM triage_study s"
            " JOIN worklist_worklistentry e ON e.study_id = s.id"
            " JOIN inference_studyscoring c ON c.study_id = s.id"
        ).fetchall()
        moved = [
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'triage_study'"
            )
        ]
    assert len(rows) == 40  # every study has both rows
    assert {r[0]: _values(r[1:-1]) for r in rows} == {
        uid: _values(v) for uid, v in expected.items()
    }
    assert sum(1 for r in rows if r[-1]) == 10  # the AI flags survived
    assert not set(columns) & set(moved)  # the study row keeps none of it

    for app, name in BEFORE:
        manage("migrate", app, name, "--noinput")
    with psycopg.connect(database_url) as conn:
        back = conn.execute(
            f"SELECT study_instance_uid, {', '.join(columns)} FROM triage_study"  # noqa: S608
        ).fetchall()
    assert {r[0]: _values(r[1:]) for r in back} == {
        uid: _values(v) for uid, v in expected.items()
    }
    manage("migrate", "--noinput")


#: Studies for the kill test: enough that each copy runs for a few seconds.
MANY = 8_000
#: The fingerprint of every moved value, per study, in one string.
_FINGERPRINT = (
    "SELECT count(*), md5(string_agg(concat_ws('|', s.study_instance_uid, {values}),"
    " ',' ORDER BY s.study_instance_uid)) FROM triage_study s {joins}"
)


def _fingerprint(conn: psycopg.Connection, *, moved: bool) -> tuple[int, str]:
    """Every moved value of every study, read where the schema keeps it."""
    if moved:
        values = ", ".join(
            [f"e.{c}::text" for c in ENTRY_COLUMNS]
            + [f"c.{c}::text" for c in SCORING_COLUMNS]
        )
        joins = (
            "JOIN worklist_worklistentry e ON e.study_id = s.id"
            " JOIN inference_studyscoring c ON c.study_id = s.id"
        )
    else:
        values = ", ".join(f"s.{c}::text" for c in (*ENTRY_COLUMNS, *SCORING_COLUMNS))
        joins = ""
    [(count, digest)] = conn.execute(
        _FINGERPRINT.format(values=values, joins=joins)
    ).fetchall()
    return count, digest


def _insert_many_old_studies(conn: psycopg.Connection, count: int) -> None:
    reader, patient = _insert_reader_and_patient(conn)
    statuses = "ARRAY['" + "','".join(STATUSES) + "']"
    ai = "ARRAY['" + "','".join(AI) + "']"
    conn.execute(
        "INSERT INTO triage_study (study_instance_uid, patient_id,"  # noqa: S608
        " accession_number, modalities, body_part_examined, study_description,"
        " patient_class, order_priority, instance_count, created_at, updated_at,"
        f" {', '.join((*ENTRY_COLUMNS, *SCORING_COLUMNS))})"
        " SELECT '1.2.826.0.1.3680043.10.98.' || i, %(patient)s, '', 'CT', '', '',"
        " 'unknown', 'routine', 0, now(), now(),"
        f" ({statuses})[1 + i %% 5],"
        " CASE WHEN i %% 2 = 0 THEN %(reader)s END,"
        " i * 0.25,"
        " jsonb_build_array(jsonb_build_object('code', 'order', 'points', i)),"
        " i * 3,"
        " CASE WHEN i %% 3 = 0 THEN %(t0)s + i * interval '1 second' END,"
        " CASE WHEN i %% 2 = 0 THEN %(t0)s + i * interval '2 seconds' END,"
        " CASE WHEN i %% 7 = 0 THEN %(t0)s + i * interval '3 seconds' END,"
        " CASE WHEN i %% 5 = 4 THEN %(t0)s + i * interval '4 seconds' END,"
        f" ({ai})[1 + i %% 6],"
        " CASE WHEN i %% 4 = 0 THEN 'reason ' || i ELSE '' END,"
        " CASE WHEN i %% 2 = 1 THEN %(t0)s + i * interval '5 seconds' END,"
        " CASE WHEN i %% 5 = 0 THEN %(t0)s + i * interval '6 seconds' END,"
        " CASE WHEN i %% 3 > 0 THEN %(t0)s + i * interval '7 seconds' END,"
        " CASE WHEN i %% 6 = 3 THEN %(t0)s + i * interval '8 seconds' END"
        " FROM generate_series(1, %(count)s) AS i",
        {"patient": patient, "reader": reader, "t0": T0, "count": count},
    )


def _applied(conn: psycopg.Connection, app: str, name: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM django_migrations WHERE app = %s AND name = %s",
            (app, name),
        ).fetchall()
    )


@pytest.mark.parametrize(
    ("app", "started_after", "killed_in"),
    [
        ("worklist", "0003_worklist_state", "0004_copy_reading_state"),
        ("inference", "0004_study_scoring", "0005_copy_scoring_state"),
    ],
)
def test_a_migrate_killed_while_copying_state_is_finished_by_the_next(
    manage: Callable[..., str],
    database_url: str,
    production_env: dict[str, str],
    tmp_path: Path,
    app: str,
    started_after: str,
    killed_in: str,
) -> None:
    """SIGKILL in the middle of a copy: nothing half-moved stays, and migrating
    again moves every value of every study."""
    _migrate_to_before_the_move(manage)
    with psycopg.connect(database_url) as conn:
        _insert_many_old_studies(conn, MANY)
    with psycopg.connect(database_url) as conn:
        before = _fingerprint(conn, moved=False)
    assert before[0] == MANY

    migrate = ManagedProcess.start(
        "migrate",
        [sys.executable, "manage.py", "migrate", "--noinput"],
        env=production_env,
        log_path=tmp_path / "migrate.log",
    )
    with migrate, psycopg.connect(database_url, autocommit=True) as watch:
        deadline = time.monotonic() + 120
        # The step before is committed, so the copy has begun: kill it there,
        # once its backend is at work.
        while not (
            _applied(watch, app, started_after)
            and watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state = 'active'"
            ).fetchall()
        ):
            assert migrate.popen.poll() is None, migrate.log_tail()
            assert time.monotonic() < deadline, migrate.log_tail()
            time.sleep(0.02)
        migrate.popen.kill()  # SIGKILL, in the middle of the copy
        assert migrate.wait_exit(timeout=30) != 0
        # The killed step was not recorded: the kill landed inside it.
        assert not _applied(watch, app, killed_in), migrate.log_tail()

    manage("migrate", "--noinput")
    with psycopg.connect(database_url) as conn:
        assert _fingerprint(conn, moved=True) == before
        entries, scorings = conn.execute(
            "SELECT (SELECT count(*) FROM worklist_worklistentry),"
            " (SELECT count(*) FROM inference_studyscoring)"
        ).fetchone() or (0, 0)
    assert (entries, scorings) == (MANY, MANY)  # one each, none twice
