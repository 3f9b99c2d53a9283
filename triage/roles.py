"""The four roles of RadTriage and what each may do.

A role is a Django group; its permissions are set by a data migration. Which
page a user lands on after login follows from the role.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A job in the department, as a group name."""

    RADIOLOGIST = "radiologist"
    CHARGE_TECHNOLOGIST = "charge technologist"
    DEPARTMENT_HEAD = "department head"
    ADMINISTRATOR = "administrator"


# Custom permissions, declared on triage.Study (codename, description).
READ_STUDIES = "read_studies"
VIEW_ALERT_BOARD = "view_alert_board"
ACKNOWLEDGE_ALERTS = "acknowledge_alerts"
VIEW_REPORTS = "view_reports"
CONFIGURE_AI = "configure_ai"
VIEW_PHI = "view_phi"
# Not a role's: held by integration accounts (a PACS, a modality gateway), which
# store instances by STOW-RS and search by QIDO-RS with an API token.
USE_DICOMWEB = "use_dicomweb"
# Not a role's either: held by the integration account of the RIS or interface
# engine, which posts orders (POST /api/orders/, FHIR ServiceRequest).
SUBMIT_ORDERS = "submit_orders"

STUDY_PERMISSIONS: tuple[tuple[str, str], ...] = (
    (READ_STUDIES, "Can claim, read and finalize studies"),
    (VIEW_ALERT_BOARD, "Can watch the critical-finding board"),
    (ACKNOWLEDGE_ALERTS, "Can acknowledge critical-finding alerts"),
    (VIEW_REPORTS, "Can read turnaround and AI-performance reports"),
    (CONFIGURE_AI, "Can enable models and override thresholds"),
    (VIEW_PHI, "Can see patient names and identifiers"),
    (USE_DICOMWEB, "Can store and search studies by DICOMweb (integrations)"),
    (SUBMIT_ORDERS, "Can submit imaging orders by REST or FHIR (integrations)"),
)

# Least privilege: each role gets only what its daily work needs.
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.RADIOLOGIST: (READ_STUDIES, VIEW_PHI),
    Role.CHARGE_TECHNOLOGIST: (VIEW_ALERT_BOARD, ACKNOWLEDGE_ALERTS, VIEW_PHI),
    Role.DEPARTMENT_HEAD: (VIEW_REPORTS, VIEW_ALERT_BOARD),
    # Plus account management and read access in the Django admin (see 0002_roles).
    Role.ADMINISTRATOR: (CONFIGURE_AI, VIEW_REPORTS, VIEW_ALERT_BOARD),
}

# When a user holds several roles, the first in this order picks the landing page.
LANDING_ORDER: tuple[Role, ...] = (
    Role.RADIOLOGIST,
    Role.CHARGE_TECHNOLOGIST,
    Role.DEPARTMENT_HEAD,
    Role.ADMINISTRATOR,
)
