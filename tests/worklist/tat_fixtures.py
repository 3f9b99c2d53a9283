"""Six studies with known timestamps, and the figures they must give, by hand.

Minutes after 2026-03-02 08:00 UTC unless said. Stage by stage (minutes):
- transfer (acquired -> received): A 2, B 4, D 1, E 10; C has no acquisition
  time and F's modality clock runs 2 min ahead (negative: left out) -> 1, 2, 4, 10:
  median (h = 1.5) 2 + 0.5 * 2 = 3; p90 (h = 2.7) 4 + 0.7 * 6 = 8.2.
- arrival (received -> stable): 1, 1, 2, 1, 1, 1 -> median 1, p90 (h = 4.5) 1.5.
- scoring (stable -> scored): A 2, B 3, D 1, E 2, F 2 (C not applicable) ->
  median 2, p90 (h = 3.6) 2 + 0.6 * 1 = 2.6.
- waiting (scored -> opened): A 10, B 32, E 17, F 59 -> median 17 + 0.5 * 15 = 24.5,
  p90 32 + 0.7 * 27 = 50.9.
- reading (opened -> final): A 30, B 90, C 120, E 220, F 120 -> median 120,
  p90 120 + 0.6 * 100 = 180.
- total, the report turnaround and SLA clock (acquired, or received where the
  acquisition time is unknown, -> final): A 45, B 130, C 180 (from received),
  E 250, F 180 -> median 180, p90 180 + 0.6 * 70 = 222.
- SLA targets: emergency 60, inpatient 240, outpatient 1440 -> emergency A in,
  B out (1/2); inpatient C in, E out (1/2); outpatient F in, D not final (1/1).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)
DAY3 = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


def _at(base: dt.datetime, minutes: float | None) -> dt.datetime | None:
    return None if minutes is None else base + dt.timedelta(minutes=minutes)


@dataclass(frozen=True)
class FixtureStudy:
    name: str
    modalities: str
    patient_class: str
    order_priority: str
    base: dt.datetime
    # minutes after base: acquired, received, stable, scored, opened, final
    minutes: tuple[float | None, ...]
    radiologist: str = ""
    ai_flagged: bool | None = None  # None: no worklist entry

    def times(self) -> dict[str, dt.datetime | None]:
        fields = (
            "acquired_at",
            "first_instance_received_at",
            "stable_at",
            "scored_at",
            "first_opened_at",
            "finalized_at",
        )
        return {
            field: _at(self.base, m)
            for field, m in zip(fields, self.minutes, strict=True)
        }


STUDIES = (
    FixtureStudy(
        "A", "CT", "emergency", "stat", T0, (0, 2, 3, 5, 15, 45), "dr_a", True
    ),
    FixtureStudy(
        "B", "CT", "emergency", "stat", T0, (60, 64, 65, 68, 100, 190), "", False
    ),
    FixtureStudy(
        "C", "MR", "inpatient", "routine", T0, (None, 120, 122, None, 180, 300)
    ),
    FixtureStudy("D", "CR", "outpatient", "routine", DAY2, (0, 1, 2, 3, None, None)),
    FixtureStudy(
        "E", "CT", "inpatient", "urgent", DAY2, (60, 70, 71, 73, 90, 310), "dr_a", True
    ),
    FixtureStudy("F", "CT\\SR", "outpatient", "routine", DAY3, (0, -2, -1, 1, 60, 180)),
)
# Received after the report's range (2026-03-02 to 2026-03-04): never counted.
LATE = FixtureStudy(
    "late",
    "CT",
    "emergency",
    "stat",
    dt.datetime(2026, 3, 5, 0, 0, tzinfo=dt.UTC),
    (0, 1, 2, 3, 4, 5),
)

SLA_MINUTES = {
    "emergency": 60.0,
    "inpatient": 240.0,
    "outpatient": 1440.0,
    "unknown": 480.0,
}

# stage code -> (count, median minutes, p90 minutes)
EXPECTED_STAGES = {
    "transfer": (4, 3.0, 8.2),
    "arrival": (6, 1.0, 1.5),
    "scoring": (5, 2.0, 2.6),
    "waiting": (4, 24.5, 50.9),
    "reading": (5, 120.0, 180.0),
    "total": (5, 180.0, 222.0),
}
EXPECTED_REPORT_TAT = (5, 180.0, 222.0)
# class -> (finalized, within target)
EXPECTED_SLA = {
    "emergency": (2, 1),
    "inpatient": (2, 1),
    "outpatient": (1, 1),
    "unknown": (0, 0),
}
# day -> (studies, finalized, within, median minutes, p90 minutes)
EXPECTED_DAILY = {
    dt.date(2026, 3, 2): (3, 3, 2, 130.0, 170.0),
    dt.date(2026, 3, 3): (2, 1, 0, 250.0, 250.0),
    dt.date(2026, 3, 4): (1, 1, 1, 180.0, 180.0),
}
# Weeks are the days summed: counts only, no percentiles.
EXPECTED_WEEKLY = {dt.date(2026, 3, 2): (6, 5, 3, None, None)}
# AI flagged (A, E) against not (B; C, D, F have no worklist entry):
# (studies, received->opened median, p90, report TAT median, p90), minutes.
# Flagged: to open A 13, E 20; TAT A 45, E 250. Not flagged: to open B 36, C 60,
# F 62 (D never opened) -> median 60, p90 60 + 0.8 * 2; TAT B 130, C 180, F 180.
EXPECTED_BY_FLAG = {
    True: (2, 16.5, 19.3, 147.5, 229.5),
    False: (4, 60.0, 61.6, 180.0, 180.0),
}
# slowest first; C and F tie at 180 min and keep creation order.
EXPECTED_OUTLIERS = ("E", "C", "F", "B", "A")
