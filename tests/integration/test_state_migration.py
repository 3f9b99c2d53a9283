"""Moving study state to its owners loses nothing on a populated database.

The reading state, claim, priority and version move from the study row to
worklist.WorklistEntry; AI status and the scoring timeline to
inference.StudyScoring. Forty studies in every state are written with the
schema before the move, migrated forward and back, on real PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

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


def _values(row: tuple[object, ...]) -> tuple[object, ...]:
    # JSON comes back parsed from jsonb; compare it as data.
    return tuple(
        json.loads(v) if isinstance(v, str) and v[:1] == "[" else v for v in row
    )


def test_the_state_move_keeps_every_studys_state_both_ways(
    manage: Callable[..., str], database_url: str
) -> None:
    manage("migrate", "--noinput")
    for app, name in BEFORE:
        manage("migrate", app, name, "--noinput")
    columns = (*ENTRY_COLUMNS, *SCORING_COLUMNS)
    expected: dict[str, tuple[object, ...]] = {}
    with psycopg.connect(database_url) as conn:
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
