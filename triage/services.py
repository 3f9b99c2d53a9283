"""State changes of the base layer. Every write to a study goes through here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, User
from django.db import transaction
from django.utils import timezone

from triage.ingest.errors import UidConflict
from triage.ingest.header import InstanceHeader
from triage.models import (
    AuditEvent,
    Instance,
    OrderPriority,
    Patient,
    Series,
    Study,
    StudyEvent,
    WorkerHeartbeat,
)
from triage.roles import Role


@transaction.atomic
def record_worker_heartbeat(hostname: str, *, now: datetime) -> None:
    """Note that the worker ``hostname`` ran a task at ``now``."""
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:255], defaults={"seen_at": now}
    )


def record_audit(
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    action: str,
    object_type: str,
    now: datetime,
    object_id: str = "",
    remote_addr: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row to the audit trail (who accessed or changed what, when)."""
    actor = user if isinstance(user, User) and user.is_authenticated else None
    return AuditEvent.objects.create(
        at=now,
        user=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        remote_addr=remote_addr,
        detail=detail or {},
    )


class StoreResult(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What happened to one received instance."""

    result: StoreResult
    study_id: int
    instance_id: int


_ORDER_PRIORITY_FROM_DICOM = {
    "STAT": OrderPriority.STAT,
    "HIGH": OrderPriority.URGENT,
    "MEDIUM": OrderPriority.ROUTINE,
    "ROUTINE": OrderPriority.ROUTINE,
    "LOW": OrderPriority.ROUTINE,
}


@transaction.atomic
def record_instance(
    header: InstanceHeader,
    *,
    storage_path: str,
    size_bytes: int,
    sha256: str,
    now: datetime,
    place_file: Callable[[], None],
) -> StoreOutcome:
    """Record a received instance and its patient, study and series.

    The same SOP instance with the same bytes is a duplicate and changes nothing;
    with other bytes the newest is kept and the replacement recorded. A study that
    was stable is reopened by a new or replaced instance.

    Args:
        header: the instance's checked header.
        storage_path: where its bytes go, relative to the storage root.
        size_bytes: the stream's size in bytes.
        sha256: hex digest of the stream as received.
        now: the time of receipt.
        place_file: moves the flushed bytes into place; called inside the
            transaction so that a file exists only with its row.
    """
    existing = (
        Instance.objects.select_for_update()
        .select_related("series")
        .filter(sop_instance_uid=header.sop_instance_uid)
        .first()
    )
    if existing is not None and existing.sha256 == sha256:
        return StoreOutcome(
            StoreResult.DUPLICATE, existing.series.study_id, existing.pk
        )

    study = _lock_study(header, now)
    series = _lock_series(header, study, now)
    if existing is not None:
        if existing.series_id != series.pk:
            raise UidConflict("the instance was stored before under another series")
        existing.sha256 = sha256
        existing.size_bytes = size_bytes
        existing.transfer_syntax_uid = header.transfer_syntax_uid
        existing.storage_path = storage_path
        existing.replaced_at = now
        existing.replacement_count += 1
        existing.received_at = now
        existing.save(
            update_fields=[
                "sha256",
                "size_bytes",
                "transfer_syntax_uid",
                "storage_path",
                "replaced_at",
                "replacement_count",
                "received_at",
            ]
        )
        instance = existing
        result = StoreResult.REPLACED
        StudyEvent.objects.create(
            study=study,
            kind=StudyEvent.Kind.INSTANCE_REPLACED,
            at=now,
            detail={"instance_id": instance.pk},
        )
    else:
        instance = Instance.objects.create(
            sop_instance_uid=header.sop_instance_uid,
            series=series,
            sop_class_uid=header.sop_class_uid,
            transfer_syntax_uid=header.transfer_syntax_uid,
            instance_number=header.instance_number,
            slice_position=header.slice_position,
            rows=header.rows,
            columns=header.columns,
            storage_path=storage_path,
            size_bytes=size_bytes,
            sha256=sha256,
            received_at=now,
        )
        result = StoreResult.STORED
        series.instance_count += 1
        study.instance_count += 1
    series.last_instance_received_at = now
    series.save(update_fields=["instance_count", "last_instance_received_at"])
    _note_arrival(study, header, now)
    place_file()
    return StoreOutcome(result, study.pk, instance.pk)


def _lock_study(header: InstanceHeader, now: datetime) -> Study:
    patient, _ = Patient.objects.get_or_create(
        patient_id=header.patient_id,
        issuer_of_patient_id=header.issuer_of_patient_id,
        defaults={
            "patient_name": header.patient_name,
            "patient_birth_date": header.patient_birth_date,
            "patient_sex": header.patient_sex,
        },
    )
    study, created = Study.objects.get_or_create(
        study_instance_uid=header.study_instance_uid,
        defaults={
            "patient": patient,
            "accession_number": header.accession_number,
            "body_part_examined": header.body_part_examined,
            "study_description": header.study_description,
            "study_date": header.study_date,
            "study_time": header.study_time,
            "acquired_at": _acquired_at(header),
            "order_priority": _ORDER_PRIORITY_FROM_DICOM.get(
                header.requested_procedure_priority, OrderPriority.ROUTINE
            ),
            "first_instance_received_at": now,
        },
    )
    study = Study.objects.select_for_update().get(pk=study.pk)
    if created:
        StudyEvent.objects.create(study=study, kind=StudyEvent.Kind.RECEIVED, at=now)
    elif study.patient_id != patient.pk:
        raise UidConflict("the study was stored before under another patient")
    return study


def _lock_series(header: InstanceHeader, study: Study, now: datetime) -> Series:
    series, _ = Series.objects.get_or_create(
        series_instance_uid=header.series_instance_uid,
        defaults={
            "study": study,
            "modality": header.modality,
            "series_number": header.series_number,
            "series_description": header.series_description,
            "body_part_examined": header.body_part_examined,
            "manufacturer": header.manufacturer,
            "manufacturer_model_name": header.manufacturer_model_name,
            "first_instance_received_at": now,
        },
    )
    series = Series.objects.select_for_update().get(pk=series.pk)
    if series.study_id != study.pk:
        raise UidConflict("the series was stored before under another study")
    return series


def _note_arrival(study: Study, header: InstanceHeader, now: datetime) -> None:
    modalities = study.modality_list
    if header.modality and header.modality not in modalities:
        modalities.append(header.modality)
    study.modalities = "\\".join(modalities)
    if not study.body_part_examined and header.body_part_examined:
        study.body_part_examined = header.body_part_examined
    study.last_instance_received_at = now
    if study.stable_at is not None:
        # Late instances: the study must settle again and be rescored.
        StudyEvent.objects.create(
            study=study,
            kind=StudyEvent.Kind.REOPENED,
            at=now,
            detail={"was_stable_at": study.stable_at.isoformat()},
        )
        study.stable_at = None
    study.version += 1
    study.save(
        update_fields=[
            "modalities",
            "body_part_examined",
            "last_instance_received_at",
            "stable_at",
            "instance_count",
            "version",
            "updated_at",
        ]
    )


def _acquired_at(header: InstanceHeader) -> datetime | None:
    if header.study_date is None:
        return None
    # DICOM dates and times are the site's local time.
    local = datetime.combine(header.study_date, header.study_time or time())
    return timezone.make_aware(local, timezone.get_default_timezone())


@transaction.atomic
def set_role_user(username: str, role: Role, password: str) -> AbstractBaseUser:
    """Create or update a user holding exactly ``role``, with ``password``.

    Administrators also get Django admin access (staff, not superuser: their
    group's permissions say what they may change).
    """
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_staff = role is Role.ADMINISTRATOR
    user.is_active = True
    user.save()
    user.groups.set([Group.objects.get(name=role.value)])
    return user
