"""Plain SQL for the ingest hot path, used by :mod:`triage.services` only.

An instance is recorded once per slice, hundreds per study: the ORM's query
building costs more CPU than the database spends on these few statements, and
on PostgreSQL the common case (one more instance of a series already being
received) is a single statement, committed on its own. Table names come from
the models; every value is a query parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection
from psycopg.types.string import StrDumper

from triage.ingest.header import InstanceHeader
from triage.models import Instance, Patient, Series, Study

_STUDY = Study._meta.db_table
_SERIES = Series._meta.db_table
_INSTANCE = Instance._meta.db_table
_PATIENT = Patient._meta.db_table
_INSTANCE_COLUMNS = (
    "sop_instance_uid, series_id, sop_class_uid, transfer_syntax_uid,"
    " instance_number, slice_position, plane, rows, columns, pixel_layout,"
    " storage_path,"
    " size_bytes, sha256, received_at, replaced_at, replacement_count"
)

_LOCK_ARRIVAL = (
    "SELECT st.id, pa.patient_id, pa.issuer_of_patient_id, st.modalities,"  # noqa: S608
    " st.body_part_examined, st.stable_at IS NOT NULL,"
    " se.id, se.study_id, it.id, it.sha256, it.series_id, it.storage_path"
    f" FROM {_STUDY} st JOIN {_PATIENT} pa ON pa.id = st.patient_id"
    f" LEFT JOIN {_SERIES} se ON se.series_instance_uid = %s"
    f" LEFT JOIN {_INSTANCE} it ON it.sop_instance_uid = %s"
    " WHERE st.study_instance_uid = %s"
)
# ON CONFLICT: a concurrent sender of the same instance is no error for the
# server to log (with the statement's values).
_INSERT_INSTANCE = (
    f"INSERT INTO {_INSTANCE} ({_INSTANCE_COLUMNS})"  # noqa: S608
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 0)"
    " ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING id"
)
# Advisory lock namespaces (the first key of pg_advisory_xact_lock(int, int)).
_LOCK_NEW_STUDY = 0x5254_0001
_LOCK_NEW_PATIENT = 0x5254_0002
_COUNT_IN_SERIES = (
    f"UPDATE {_SERIES} SET instance_count = instance_count + %s,"  # noqa: S608
    " last_instance_received_at = %s, stable_at = NULL WHERE id = %s"
)
_COUNT_IN_STUDY = (
    f"UPDATE {_STUDY} SET modalities = %s, body_part_examined = %s,"  # noqa: S608
    " last_instance_received_at = %s, stable_at = NULL,"
    " instance_count = instance_count + %s, updated_at = %s WHERE id = %s"
)
# PostgreSQL: lock the study (only if receiving, same patient, modality and body
# part already noted), find the series in it, insert the instance unless its UID
# is known, count it in series and study. No row back: not the common case.
_RECORD_NEXT_INSTANCE = f"""
WITH study AS (
    SELECT st.id FROM {_STUDY} st JOIN {_PATIENT} pa ON pa.id = st.patient_id
    WHERE st.study_instance_uid = %(study_uid)s
      AND st.stable_at IS NULL
      AND pa.patient_id = %(patient_id)s
      AND pa.issuer_of_patient_id = %(issuer)s
      AND (%(modality)s = ''
           OR %(modality)s = ANY (string_to_array(st.modalities, chr(92))))
      AND (st.body_part_examined <> '' OR %(body_part)s = '')
    FOR UPDATE OF st
), series AS (
    SELECT se.id FROM {_SERIES} se JOIN study ON se.study_id = study.id
    WHERE se.series_instance_uid = %(series_uid)s
), inserted AS (
    INSERT INTO {_INSTANCE} ({_INSTANCE_COLUMNS})
    SELECT %(sop_uid)s, series.id, %(sop_class_uid)s, %(transfer_syntax_uid)s,
           %(instance_number)s, %(slice_position)s, %(plane)s, %(rows)s,
           %(columns)s, %(pixel_layout)s, %(storage_path)s, %(size_bytes)s,
           %(sha256)s, %(now)s, NULL, 0
    FROM series
    WHERE NOT EXISTS (SELECT 1 FROM {_INSTANCE} WHERE sop_instance_uid = %(sop_uid)s)
    ON CONFLICT (sop_instance_uid) DO NOTHING
    RETURNING id, series_id
), counted AS (
    UPDATE {_SERIES} SET instance_count = instance_count + 1,
        last_instance_received_at = %(now)s, stable_at = NULL
    WHERE id = (SELECT series_id FROM inserted)
)
UPDATE {_STUDY} SET last_instance_received_at = %(now)s,
    instance_count = instance_count + 1, updated_at = %(now)s
WHERE id = (SELECT id FROM study) AND EXISTS (SELECT 1 FROM inserted)
RETURNING id, (SELECT id FROM inserted)
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class Arrival:
    """A study locked for an arriving instance, with what the instance meets."""

    study_id: int
    patient_key: tuple[str, str]  # PatientID, IssuerOfPatientID
    modalities: str
    body_part_examined: str
    was_stable: bool
    series_id: int | None
    series_study_id: int | None
    instance_id: int | None
    instance_sha256: str | None
    instance_series_id: int | None
    instance_storage_path: str | None


def lock_arrival(header: InstanceHeader) -> Arrival | None:
    """Lock the instance's study; None when the study is new.

    One query: the study row (locked), its patient's identifiers, and whatever
    already exists under the series and SOP instance UIDs, wherever it is.
    """
    sql = _LOCK_ARRIVAL
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF st"  # SQLite: its transactions are exclusive
    parameters = [
        header.series_instance_uid,
        header.sop_instance_uid,
        header.study_instance_uid,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        row = cursor.fetchone()
    if row is None:
        return None
    return Arrival(
        study_id=row[0],
        patient_key=(row[1], row[2]),
        modalities=row[3],
        body_part_examined=row[4],
        was_stable=bool(row[5]),
        series_id=row[6],
        series_study_id=row[7],
        instance_id=row[8],
        instance_sha256=row[9],
        instance_series_id=row[10],
        instance_storage_path=row[11],
    )


_PIXEL_LAYOUT_FIELD = Instance._meta.get_field("pixel_layout")


def pixel_layout_value(header: InstanceHeader) -> Any:
    """The header's pixel layout as the database driver takes it (JSON)."""
    layout = header.pixel_layout
    return _PIXEL_LAYOUT_FIELD.get_db_prep_value(
        layout.to_json() if layout is not None else None, connection
    )


def lock_new_study(header: InstanceHeader) -> None:
    """Serialise the creation of a study and of its patient (PostgreSQL).

    Parts of one STOW-RS request (or associations) racing to create the same
    study or patient would otherwise both insert it, and the loser's unique
    violation puts the whole INSERT, name and birth date included, in the
    server's log. Held until the transaction ends, these locks make the
    second creator wait for the first and then find its rows. A hash
    collision only makes two creations wait for each other. SQLite's
    transactions are exclusive already.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # Study first, then patient: every creator takes them in this order.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s)),"
            " pg_advisory_xact_lock(%s, hashtext(%s))",
            [
                _LOCK_NEW_STUDY,
                header.study_instance_uid,
                _LOCK_NEW_PATIENT,
                f"{header.issuer_of_patient_id}\\{header.patient_id}",
            ],
        )


def insert_instance(
    header: InstanceHeader,
    *,
    series_id: int,
    storage_path: str,
    size_bytes: int,
    sha256: str,
    now: datetime,
) -> int:
    """Insert a new instance row; returns its ID.

    Raises:
        IntegrityError: another transaction has just inserted the same SOP
            instance UID (the caller tries again and finds it).
    """
    parameters: list[Any] = [
        header.sop_instance_uid,
        series_id,
        header.sop_class_uid,
        header.transfer_syntax_uid,
        header.instance_number,
        header.slice_position,
        header.plane,
        header.rows,
        header.columns,
        pixel_layout_value(header),
        storage_path,
        size_bytes,
        sha256,
        connection.ops.adapt_datetimefield_value(now),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_INSTANCE, parameters)
        row = cursor.fetchone()
    if row is None:
        raise IntegrityError("the instance was inserted concurrently")
    return int(row[0])


def count_arrival(
    *,
    study_id: int,
    series_id: int,
    modalities: str,
    body_part_examined: str,
    added: int,
    now: datetime,
) -> None:
    """Count an arrival in its series and study, reopening both."""
    received_at = connection.ops.adapt_datetimefield_value(now)
    study_parameters = [
        modalities,
        body_part_examined,
        received_at,
        added,
        received_at,
        study_id,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_IN_SERIES, [added, received_at, series_id])
        cursor.execute(_COUNT_IN_STUDY, study_parameters)


def can_record_in_one_statement() -> bool:
    """Whether :func:`record_next_instance` may run: PostgreSQL, autocommit."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def record_next_instance(
    header: InstanceHeader,
    *,
    storage_path: str,
    size_bytes: int,
    sha256: str,
    now: datetime,
) -> tuple[int, int] | None:
    """Record one more instance of a series being received, in one statement.

    Runs in autocommit: the statement is its own transaction, so the instance's
    file must be in place before the call.

    Returns:
        (study ID, instance ID), or None when this is not the common case (new
        study or series, a known SOP instance UID, a stable study, another
        patient, a new modality): the caller then takes the general path.
    """
    parameters: dict[str, Any] = {
        "study_uid": header.study_instance_uid,
        "series_uid": header.series_instance_uid,
        "sop_uid": header.sop_instance_uid,
        "patient_id": header.patient_id,
        "issuer": header.issuer_of_patient_id,
        "modality": header.modality,
        "body_part": header.body_part_examined,
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "instance_number": header.instance_number,
        "slice_position": header.slice_position,
        "plane": header.plane,
        "rows": header.rows,
        "columns": header.columns,
        "pixel_layout": pixel_layout_value(header),
        "storage_path": storage_path,
        "size_bytes": size_bytes,
        "sha256": sha256,
        "now": now,
    }
    connection.ensure_connection()
    try:
        # Prepared (so bound on the server): planning this statement took
        # longer than running it, once per instance. Strings go as text, not
        # "unknown": a UID used twice would be deduced two types.
        with (
            connection.wrap_database_errors,
            psycopg.Cursor(connection.connection) as cursor,
        ):
            cursor.adapters.register_dumper(str, StrDumper)
            cursor.execute(_RECORD_NEXT_INSTANCE, parameters, prepare=True)
            row = cursor.fetchone()
    except IntegrityError:
        return None  # the same instance, inserted just now by another sender
    if row is None:
        return None
    return int(row[0]), int(row[1])
