"""The demo: one user per role and a handful of synthetic studies.

Every study goes through the real ingest path, exactly as if a modality had
sent it, so the demo exercises what production runs.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydicom import dcmwrite

from demo import orders
from demo.synthetic import (
    HemorrhageType,
    RadiographModality,
    SyntheticStudy,
    make_ct_head_study,
    make_radiograph_study,
)
from triage import services
from triage.ingest.core import store_instance
from triage.roles import Role
from triage.vocabulary import OrderPriority, PatientClass

DEMO_USERNAMES: dict[Role, str] = {
    Role.RADIOLOGIST: "radiologist",
    Role.CHARGE_TECHNOLOGIST: "chargetech",
    Role.DEPARTMENT_HEAD: "depthead",
    Role.ADMINISTRATOR: "admin",
}


@dataclass(frozen=True, slots=True)
class DemoCase:
    """One seeded study: what it shows and how it was ordered."""

    seed: int
    kind: str  # "ct-head" or a radiograph modality
    finding: HemorrhageType | bool | None
    patient_class: PatientClass
    order_priority: OrderPriority


# A department's morning: mostly normal studies, a few urgent findings.
DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase(
        101,
        "ct-head",
        HemorrhageType.SUBDURAL,
        PatientClass.EMERGENCY,
        OrderPriority.STAT,
    ),
    DemoCase(102, "ct-head", None, PatientClass.EMERGENCY, OrderPriority.STAT),
    DemoCase(
        103,
        "ct-head",
        HemorrhageType.INTRAPARENCHYMAL,
        PatientClass.INPATIENT,
        OrderPriority.URGENT,
    ),
    DemoCase(104, "ct-head", None, PatientClass.OUTPATIENT, OrderPriority.ROUTINE),
    DemoCase(
        105,
        "ct-head",
        HemorrhageType.EPIDURAL,
        PatientClass.EMERGENCY,
        OrderPriority.URGENT,
    ),
    DemoCase(106, "ct-head", None, PatientClass.INPATIENT, OrderPriority.ROUTINE),
    DemoCase(
        107,
        "ct-head",
        HemorrhageType.SUBARACHNOID,
        PatientClass.OUTPATIENT,
        OrderPriority.ROUTINE,
    ),
    DemoCase(108, "DX", True, PatientClass.EMERGENCY, OrderPriority.URGENT),
    DemoCase(109, "DX", False, PatientClass.OUTPATIENT, OrderPriority.ROUTINE),
    DemoCase(110, "CR", True, PatientClass.INPATIENT, OrderPriority.ROUTINE),
    DemoCase(111, "CR", False, PatientClass.OUTPATIENT, OrderPriority.ROUTINE),
    DemoCase(
        112,
        "ct-head",
        HemorrhageType.INTRAVENTRICULAR,
        PatientClass.INPATIENT,
        OrderPriority.ROUTINE,
    ),
)


ACQUISITION_LEAD = timedelta(minutes=4)
# The order was placed this long before the scan.
ORDER_LEAD = timedelta(minutes=20)


def make_demo_users(password: str | None = None) -> dict[Role, tuple[str, str]]:
    """Create (or reset) one user per role; returns username and password."""
    logins: dict[Role, tuple[str, str]] = {}
    for role, username in DEMO_USERNAMES.items():
        chosen = password or secrets.token_urlsafe(9)
        services.set_role_user(username, role, chosen)
        logins[role] = (username, chosen)
    return logins


def synthesize(case: DemoCase, *, slices: int, acquired_at: datetime) -> SyntheticStudy:
    """Build the case's study with the synthetic generator, acquired at a time."""
    if case.kind == "ct-head":
        hemorrhage = case.finding if isinstance(case.finding, HemorrhageType) else None
        return make_ct_head_study(
            case.seed, slices=slices, hemorrhage=hemorrhage, acquired_at=acquired_at
        )
    return make_radiograph_study(
        case.seed,
        modality=RadiographModality(case.kind),
        fracture=bool(case.finding),
        acquired_at=acquired_at,
    )


def send_study(study: SyntheticStudy, *, now: datetime) -> int:
    """Ingest every instance of ``study``; returns the study's id."""
    study_id = 0
    for dataset in study.datasets:
        buffer = io.BytesIO()
        dcmwrite(buffer, dataset, enforce_file_format=True)
        study_id = store_instance(buffer.getvalue(), now=now).study_id
    return study_id


def seed_case(
    case: DemoCase, *, slices: int, now: datetime, order_first: bool = True
) -> int:
    """Send one demo case with its order by HL7; returns the study id.

    ``order_first``: the order arrives before the images (as usual), else
    after them: the intake matches them whichever comes second.
    """
    # The scan happened a few minutes before it reached us, as at a real site.
    acquired_at = now - ACQUISITION_LEAD
    study = synthesize(case, slices=slices, acquired_at=acquired_at)
    message = orders.order_message(
        study,
        kind=case.kind,
        patient_class=case.patient_class,
        order_priority=case.order_priority,
        control_id=f"DEMO-{study.accession_number}",
        at=acquired_at - ORDER_LEAD,
    )
    if order_first:
        orders.send_order(message, now=now)
    study_id = send_study(study, now=now)
    if not order_first:
        orders.send_order(message, now=now)
    return study_id


def seed_demo(
    *, password: str | None, studies: int, slices: int, now: datetime
) -> dict[Role, tuple[str, str]]:
    """Create (or reset) the demo users and send the first ``studies`` demo cases.

    Returns each role's username and password (random unless ``password``).
    """
    logins = make_demo_users(password)
    for index, case in enumerate(DEMO_CASES[: max(0, studies)]):
        # Every third order comes after its images, as late orders do.
        seed_case(case, slices=slices, now=now, order_first=index % 3 != 2)
    return logins


def format_logins(logins: dict[Role, tuple[str, str]]) -> list[str]:
    """The lines that show the demo logins, one per role."""
    return ["Demo logins (role: username / password):"] + [
        f"  {role.value}: {username} / {password}"
        for role, (username, password) in logins.items()
    ]
