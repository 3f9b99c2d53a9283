"""State changes of the base layer: what arrived (patients, studies, series,
instances, order context, the arrival timeline). Every write to those goes
through here; the layers above keep their own state (``inference.StudyScoring``,
``worklist.WorklistEntry``) and hear of changes through ``triage.signals``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import (
    AbstractBaseUser,
    AnonymousUser,
    Group,
    Permission,
    User,
)
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.authtoken.models import Token

from radtriage.db import insert_rows
from triage import ingest_sql
from triage.ingest.errors import UidConflict
from triage.ingest.header import InstanceHeader
from triage.models import (
    AuditEvent,
    Instance,
    Patient,
    Series,
    Study,
    StudyEvent,
    WorkerHeartbeat,
)
from triage.roles import SUBMIT_ORDERS, USE_DICOMWEB, Role
from triage.signals import series_stable, study_changed, study_stable
from triage.stability import (
    Arrivals,
    StabilityRules,
    becomes_stable,
    is_stable,
    split_modalities,
    stable_by,
)
from triage.vocabulary import OrderPriority, PatientClass

logger = logging.getLogger(__name__)


@transaction.atomic
def record_worker_heartbeat(hostname: str, *, now: datetime) -> None:
    """Note that the worker ``hostname`` ran a task at ``now``."""
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:255], defaults={"seen_at": now}
    )


def record_study_event(
    study_id: int,
    kind: str,
    *,
    at: datetime,
    actor: AbstractBaseUser | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event to a study's timeline (``StudyEvent``).

    The timeline is triage's; every layer records its own transitions here
    (queued, scored, claimed, final), so the reports read one history.
    """
    record_study_events(
        [
            {
                "study_id": study_id,
                "kind": kind,
                "at": at,
                "actor_id": actor.pk if actor is not None else None,
                "detail": detail or {},
            }
        ]
    )


def record_study_events(rows: list[dict[str, Any]]) -> None:
    """Append events to studies' timelines in one insert (the scoring hot path).

    Each row has ``study_id``, ``kind``, ``at`` and optionally ``actor_id``
    and ``detail``.
    """
    insert_rows(StudyEvent, [{"actor_id": None, "detail": {}, **row} for row in rows])


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
    """What happened to one received instance.

    ``replaced_storage_path`` names the file of the version a replacement
    superseded, for the caller to remove once the transaction has committed.
    """

    result: StoreResult
    study_id: int
    instance_id: int
    replaced_storage_path: str | None = None


_ORDER_PRIORITY_FROM_DICOM = {
    "STAT": OrderPriority.STAT,
    "HIGH": OrderPriority.URGENT,
    "MEDIUM": OrderPriority.ROUTINE,
    "ROUTINE": OrderPriority.ROUTINE,
    "LOW": OrderPriority.ROUTINE,
}


def is_storage_path_recorded(storage_path: str) -> bool:
    """Whether an instance row names this file (relative to the storage root)."""
    return Instance.objects.filter(storage_path=storage_path).exists()


def can_record_next_instance() -> bool:
    """Whether :func:`record_next_instance` can be tried here."""
    return ingest_sql.can_record_in_one_statement()


def record_next_instance(
    header: InstanceHeader,
    *,
    storage_path: str,
    size_bytes: int,
    sha256: str,
    now: datetime,
) -> StoreOutcome | None:
    """Record the common case of :func:`record_instance` in one statement.

    One more instance of a series whose study is receiving, on PostgreSQL: one
    round trip, committed on its own (hence no ``transaction.atomic``; the
    statement locks the study row like the general path). The instance's file
    must already be in place.

    Returns:
        The outcome (always STORED), or None when this is not the common case
        or not PostgreSQL: call :func:`record_instance` then.
    """
    if not ingest_sql.can_record_in_one_statement():
        return None
    ids = ingest_sql.record_next_instance(
        header,
        storage_path=storage_path,
        size_bytes=size_bytes,
        sha256=sha256,
        now=now,
    )
    return None if ids is None else StoreOutcome(StoreResult.STORED, *ids)


@transaction.atomic
def record_instance(
    header: InstanceHeader,
    *,
    storage_path: str,
    size_bytes: int,
    sha256: str,
    now: datetime,
    place_file: Callable[[], None],
    file_intact: Callable[[str], bool] | None = None,
) -> StoreOutcome:
    """Record a received instance and its patient, study and series.

    The same SOP instance with the same bytes is a duplicate and changes nothing;
    with other bytes the newest is kept and the replacement recorded. A study that
    was stable is reopened by a new or replaced instance.

    Every write to a study's series and instances happens under the study's row
    lock, taken first; the common case (another instance of a known series) costs
    one locking read, one insert and two updates.

    Args:
        header: the instance's checked header.
        storage_path: where its bytes go, relative to the storage root.
        size_bytes: the stream's size in bytes.
        sha256: hex digest of the data set as received (file meta excluded).
        now: the time of receipt.
        place_file: moves the flushed bytes into place; called inside the
            transaction so that a file exists only with its row.
        file_intact: tells whether the file a recorded instance names is still
            there; a duplicate whose file is not (a crash between commit and
            the file's name reaching the disk) is stored again.

    Raises:
        UidConflict: a UID was stored before under another parent.
    """
    arrival = ingest_sql.lock_arrival(header)
    if arrival is None:
        _create_study(header, now)
        arrival = ingest_sql.lock_arrival(header)
        if arrival is None:  # pragma: no cover - the row was just created
            raise RuntimeError("the study vanished while being created")
    if arrival.patient_key != (header.patient_id, header.issuer_of_patient_id):
        raise UidConflict("the study was stored before under another patient")
    if (
        arrival.instance_id is not None
        and arrival.instance_sha256 == sha256
        and (file_intact is None or file_intact(arrival.instance_storage_path or ""))
    ):
        return StoreOutcome(
            StoreResult.DUPLICATE, arrival.study_id, arrival.instance_id
        )

    series_id = arrival.series_id
    if series_id is None:
        series_id = _create_series(header, arrival.study_id, now)
    elif arrival.series_study_id != arrival.study_id:
        raise UidConflict("the series was stored before under another study")

    replaced: str | None = None
    if arrival.instance_id is None:
        instance_id = ingest_sql.insert_instance(
            header,
            series_id=series_id,
            storage_path=storage_path,
            size_bytes=size_bytes,
            sha256=sha256,
            now=now,
        )
        result, added = StoreResult.STORED, 1
    else:
        if arrival.instance_series_id != series_id:
            raise UidConflict("the instance was stored before under another series")
        instance_id = arrival.instance_id
        layout = header.pixel_layout
        Instance.objects.filter(pk=instance_id).update(
            sha256=sha256,
            size_bytes=size_bytes,
            transfer_syntax_uid=header.transfer_syntax_uid,
            # The new bytes may say other things than the old ones did.
            instance_number=header.instance_number,
            slice_position=header.slice_position,
            plane=header.plane,
            rows=header.rows,
            columns=header.columns,
            pixel_layout=layout.to_json() if layout is not None else None,
            storage_path=storage_path,
            replaced_at=now,
            replacement_count=F("replacement_count") + 1,
            received_at=now,
        )
        StudyEvent.objects.create(
            study_id=arrival.study_id,
            kind=StudyEvent.Kind.INSTANCE_REPLACED,
            at=now,
            detail={"instance_id": instance_id},
        )
        result, added = StoreResult.REPLACED, 0
        replaced = arrival.instance_storage_path
    _note_arrival(arrival, header, series_id, added, now)
    place_file()
    return StoreOutcome(result, arrival.study_id, instance_id, replaced)


def _create_study(header: InstanceHeader, now: datetime) -> None:
    ingest_sql.lock_new_study(header)
    patient, _ = Patient.objects.get_or_create(
        patient_id=header.patient_id,
        issuer_of_patient_id=header.issuer_of_patient_id,
        defaults={
            "patient_name": header.patient_name,
            "patient_birth_date": header.patient_birth_date,
            "patient_sex": header.patient_sex,
        },
    )
    # get_or_create: a concurrent first instance of the same study may win.
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
    if created:
        StudyEvent.objects.create(study=study, kind=StudyEvent.Kind.RECEIVED, at=now)
        # Imported here: triage.orders builds on this module's services.
        from triage.orders import link_order_to_new_study

        # In the study's own transaction, so its scoring queue and first
        # priority already see the order that came before the images.
        link_order_to_new_study(study, now=now)


def _create_series(header: InstanceHeader, study_id: int, now: datetime) -> int:
    series, _ = Series.objects.get_or_create(
        series_instance_uid=header.series_instance_uid,
        defaults={
            "study_id": study_id,
            "modality": header.modality,
            "series_number": header.series_number,
            "series_description": header.series_description,
            "body_part_examined": header.body_part_examined,
            "manufacturer": header.manufacturer,
            "manufacturer_model_name": header.manufacturer_model_name,
            "first_instance_received_at": now,
        },
    )
    if series.study_id != study_id:
        raise UidConflict("the series was stored before under another study")
    return series.pk


def _note_arrival(
    arrival: ingest_sql.Arrival,
    header: InstanceHeader,
    series_id: int,
    added: int,
    now: datetime,
) -> None:
    """Count the instance in its series and study; a late one reopens both."""
    modalities = list(split_modalities(arrival.modalities))
    if header.modality and header.modality not in modalities:
        modalities.append(header.modality)
    if arrival.was_stable:
        # Late instances: the study must settle again and be rescored.
        was_stable_at = Study.objects.values_list("stable_at", flat=True).get(
            pk=arrival.study_id
        )
        StudyEvent.objects.create(
            study_id=arrival.study_id,
            kind=StudyEvent.Kind.REOPENED,
            at=now,
            detail={
                "was_stable_at": was_stable_at.isoformat() if was_stable_at else ""
            },
        )
        # Readers see it receiving again at once, not at the next refresh.
        transaction.on_commit(
            partial(study_changed.send, sender=Study, study_id=arrival.study_id),
            robust=True,
        )
    ingest_sql.count_arrival(
        study_id=arrival.study_id,
        series_id=series_id,
        modalities="\\".join(modalities)[:64],
        body_part_examined=arrival.body_part_examined or header.body_part_examined,
        added=added,
        now=now,
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


@transaction.atomic
def set_order_context(
    study_id: int,
    *,
    patient_class: PatientClass,
    order_priority: OrderPriority,
    now: datetime,
) -> None:
    """Record what the order says of a study: where the patient is, how urgent.

    Comes from the RIS order (HL7) or, for the demo, from the seed.
    """
    study = Study.objects.select_for_update().get(pk=study_id)
    study.patient_class = patient_class
    study.order_priority = order_priority
    study.save(update_fields=["patient_class", "order_priority", "updated_at"])
    StudyEvent.objects.create(
        study=study,
        kind=StudyEvent.Kind.ORDER_UPDATED,
        at=now,
        detail={"patient_class": patient_class, "order_priority": order_priority},
    )
    # A priority component changed: the worklist re-scores the study.
    transaction.on_commit(
        partial(study_changed.send, sender=Study, study_id=study.pk), robust=True
    )


def mark_stable_studies(now: datetime, *, limit: int = 500) -> list[int]:
    """Declare stable every study that has been quiet long enough.

    Not one transaction: each study is marked in its own (see
    :func:`mark_study_stable`), so a sweep never holds many locks and one
    failure spoils nothing else. Safe to run in several workers at once.

    Args:
        now: the time of the sweep.
        limit: at most this many studies per sweep, oldest arrivals first; the
            next sweep takes the rest.

    Returns:
        The IDs of the studies this call declared stable.
    """
    rules: StabilityRules = settings.RADTRIAGE_STABILITY
    # The partial index study_unstable_idx serves this: stable_at IS NULL, by
    # last arrival. Each candidate's own modalities then decide.
    candidates = (
        Study.objects.filter(
            stable_at__isnull=True,
            last_instance_received_at__lte=now - rules.shortest_quiet_period(),
        )
        .order_by("last_instance_received_at")
        .values_list("pk", "modalities", "last_instance_received_at")[:limit]
    )
    marked: list[int] = []
    for study_id, modalities, last in candidates:
        arrivals = Arrivals(split_modalities(modalities), last, None)
        if is_stable(arrivals, rules, now) and mark_study_stable(study_id, now=now):
            marked.append(study_id)
    return marked


@transaction.atomic
def mark_study_stable(study_id: int, *, now: datetime) -> bool:
    """Declare one study stable if its quiet period has passed.

    Sets ``stable_at``, records a STABLE event and, once committed, sends
    ``study_stable`` (and ``study_changed``). A study being written to right now
    (its row locked by an arriving instance or another sweep) is skipped: the
    next sweep sees it.

    Returns:
        Whether this call declared it stable; False when it is still receiving,
        already stable, locked or gone.
    """
    study = (
        Study.objects.select_for_update(skip_locked=True).filter(pk=study_id).first()
    )
    if study is None:
        return False
    rules: StabilityRules = settings.RADTRIAGE_STABILITY
    modalities = split_modalities(study.modalities)
    arrivals = Arrivals(modalities, study.last_instance_received_at, study.stable_at)
    if not becomes_stable(arrivals, rules, now):
        return False
    study.stable_at = now
    study.save(update_fields=["stable_at", "updated_at"])
    StudyEvent.objects.create(
        study=study,
        kind=StudyEvent.Kind.STABLE,
        at=now,
        detail={
            "instance_count": study.instance_count,
            "quiet_seconds": rules.quiet_period(modalities).total_seconds(),
        },
    )
    transaction.on_commit(partial(_announce_stable_study, study.pk), robust=True)
    return True


def _announce_stable_study(study_id: int) -> None:
    logger.info("study stable study_id=%s", study_id)
    study_stable.send(sender=Study, study_id=study_id)
    study_changed.send(sender=Study, study_id=study_id)


def mark_stable_series(now: datetime, *, limit: int = 500) -> list[int]:
    """Declare stable every series that has been quiet long enough.

    The content-aware shortcut: a series the scoring needs may be complete while
    its study still receives other series, after its own modality's quiet
    period or, once the study has moved on to another series, after the
    handover grace (see ``triage.stability.stable_by``). ``series_stable`` is
    sent only for such early series; in a study that is already stable,
    ``study_stable`` said it all and the series is marked quietly. Run after
    :func:`mark_stable_studies`. Safe to run in several workers at once.

    Returns:
        The IDs of the series this call declared stable.
    """
    rules: StabilityRules = settings.RADTRIAGE_STABILITY
    candidates = (
        Series.objects.filter(
            stable_at__isnull=True,
            last_instance_received_at__lte=now - rules.shortest_series_wait(),
        )
        .order_by("last_instance_received_at")
        .values_list(
            "pk",
            "modality",
            "last_instance_received_at",
            # The study's last arrival is the latest of its series' ones.
            "study__last_instance_received_at",
        )[:limit]
    )
    marked: list[int] = []
    for series_id, modality, last, study_last in candidates:
        arrivals = Arrivals((modality,), last, None, study_last)
        if is_stable(arrivals, rules, now) and mark_series_stable(series_id, now=now):
            marked.append(series_id)
    return marked


@transaction.atomic
def mark_series_stable(series_id: int, *, now: datetime) -> bool:
    """Declare one series stable if its quiet period or handover has passed.

    Once committed, sends ``series_stable`` when its study is still receiving.

    Returns:
        Whether this call declared it stable.
    """
    series = (
        Series.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("study")
        .filter(pk=series_id)
        .first()
    )
    if series is None:
        return False
    rules: StabilityRules = settings.RADTRIAGE_STABILITY
    arrivals = Arrivals(
        (series.modality,),
        series.last_instance_received_at,
        series.stable_at,
        series.study.last_instance_received_at,
    )
    if not becomes_stable(arrivals, rules, now):
        return False
    series.stable_at = now
    series.save(update_fields=["stable_at"])
    if series.study.stable_at is None:
        why = stable_by(arrivals, rules, now)
        transaction.on_commit(
            partial(_announce_stable_series, series.study_id, series.pk, str(why)),
            robust=True,
        )
    return True


def _announce_stable_series(study_id: int, series_id: int, why: str) -> None:
    logger.info(
        "series stable study_id=%s series_id=%s by=%s", study_id, series_id, why
    )
    series_stable.send(sender=Series, study_id=study_id, series_id=series_id)


@transaction.atomic
def set_integration_user(
    username: str, *, rotate_token: bool = False, submit_orders: bool = False
) -> str:
    """Create or update an integration account; returns its API token.

    An integration account is a machine peer (a PACS, a modality gateway, a
    RIS or interface engine, a script): it holds the ``use_dicomweb``
    permission and no role, has no password (it cannot log in to the pages),
    and authenticates with a DRF token (``Authorization: Token <key>``).

    Args:
        username: the account's name.
        rotate_token: replace an existing token with a new one.
        submit_orders: also let it post orders (``POST /api/orders/``, FHIR
            ``ServiceRequest``); never taken away by a call without it.
    """
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
    codenames = [USE_DICOMWEB, SUBMIT_ORDERS] if submit_orders else [USE_DICOMWEB]
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="triage", codename__in=codenames
        )
    )
    if rotate_token:
        Token.objects.filter(user=user).delete()
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)
