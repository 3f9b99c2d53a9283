"""Plain SQL for the scoring hot path, private to :mod:`inference.services`.

The reads of every study scored (its series and instances in slice order) and
its scoring lease: the ORM's query building costs more CPU than the database
spends on them (the same case as :mod:`triage.ingest_sql`). The claim itself is
a rule (``claims``), kept in one place as a query. Table and column names come
from the models; every value is a query parameter. PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from inference.models import ScoringLease
from triage.models import Instance, Series

_SERIES = Series._meta.db_table
_INSTANCE = Instance._meta.db_table
_LEASE = ScoringLease._meta.db_table

_TAKE_LEASE = (
    f"INSERT INTO {_LEASE} (study_id, started_at, expires_at)"  # noqa: S608
    " VALUES (%s, %s, %s) ON CONFLICT (study_id) DO UPDATE"
    " SET started_at = excluded.started_at, expires_at = excluded.expires_at"
)
_SERIES_OF_STUDY = (
    "SELECT id, modality, body_part_examined, series_description,"  # noqa: S608
    f" stable_at FROM {_SERIES} WHERE study_id = %s ORDER BY id"
)
# In slice order, as the ORM's order_by() would give it on the same database.
_INSTANCES_OF_STUDY = (
    "SELECT i.series_id, i.plane, i.id, i.storage_path, i.sha256,"  # noqa: S608
    " i.pixel_layout, i.slice_position, i.instance_number, i.sop_instance_uid"
    f" FROM {_INSTANCE} i JOIN {_SERIES} s ON s.id = i.series_id"
    " WHERE s.study_id = %s"
    " ORDER BY i.series_id, i.slice_position, i.instance_number, i.id"
)


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """The columns of a series row that scoring reads."""

    pk: int
    modality: str
    body_part_examined: str
    series_description: str
    stable: bool


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """The columns of an instance row that scoring reads, in slice order."""

    series_id: int
    plane: str
    pk: int
    storage_path: str
    sha256: str
    pixel_layout: Any  # as stored (a JSON object or None)
    slice_position: float | None
    instance_number: int | None
    sop_instance_uid: str


def take_lease(study_id: int, *, started_at: datetime, expires_at: datetime) -> None:
    """Set the study's scoring lease to one run's (see inference.scoring_lease)."""
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_LEASE, [study_id, adapt(started_at), adapt(expires_at)])


def series_of_study(study_id: int) -> list[SeriesRow]:
    """The study's series, in the order they were first received."""
    with connection.cursor() as cursor:
        cursor.execute(_SERIES_OF_STUDY, [study_id])
        return [
            SeriesRow(int(pk), modality, body_part, description, stable_at is not None)
            for pk, modality, body_part, description, stable_at in cursor.fetchall()
        ]


def instances_of_study(study_id: int) -> list[InstanceRow]:
    """The study's instances, by series and in slice order."""
    with connection.cursor() as cursor:
        cursor.execute(_INSTANCES_OF_STUDY, [study_id])
        rows = cursor.fetchall()
    return [
        InstanceRow(
            int(series_id),
            plane,
            int(pk),
            storage_path,
            sha256,
            _json(pixel_layout),
            position,
            number,
            uid,
        )
        for (
            series_id,
            plane,
            pk,
            storage_path,
            sha256,
            pixel_layout,
            position,
            number,
            uid,
        ) in rows
    ]


def _json(value: Any) -> Any:
    # SQLite gives JSON columns back as text; so does Django's psycopg setup.
    return json.loads(value) if isinstance(value, str) else value
