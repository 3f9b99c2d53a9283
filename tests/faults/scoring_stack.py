"""The production stack a fault test breaks: listener, beat, workers, and what
the database says of a study afterwards."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pydicom.uid import CTImageStorage
from pynetdicom import AE

from demo.synthetic import SyntheticStudy
from tests.harness.processes import ManagedProcess
from tests.integration.dicom_peers import Listener

# Quick stability so a test waits on its fault, not on quiet periods; the
# lease, reclaim and follow-up knobs keep their production defaults (15 s,
# 5 s, 5 s, 5 s grace): the bounds below are those users get.
FAST = {
    "RADTRIAGE_STABILITY_SECONDS": "CT=1,*=1",
    "RADTRIAGE_STABILITY_SWEEP_SECONDS": "0.5",
}


def celery_args(hostname: str, *, pool: str = "prefork") -> list[str]:
    """A worker on both queues, one pool process, started quickly."""
    return [
        "-A",
        "radtriage",
        "worker",
        "-Q",
        "urgent,routine",
        "--pool",
        pool,
        "--concurrency",
        "1",
        "--hostname",
        hostname,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def start_beat(
    start_process: Callable[..., ManagedProcess], tmp_path: Path, env: dict[str, str]
) -> ManagedProcess:
    return start_process(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "radtriage",
            "beat",
            "--schedule",
            str(tmp_path / "beat-schedule"),
            "--loglevel",
            "INFO",
        ],
        extra_env=env,
    )


def send(study: SyntheticStudy, listener: Listener) -> None:
    """C-STORE every instance of the study to the real listener."""
    ae = AE(ae_title="FAULT-SENDER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="RADTRIAGE")
    assert assoc.is_established
    try:
        for ds in study.datasets:
            status = assoc.send_c_store(ds)
            assert status.Status == 0x0000
    finally:
        assoc.release()


@dataclass(frozen=True)
class StudyState:
    """What the database holds of one study, for the exactly-once checks."""

    ai_status: str
    reading_status: str
    scored_events: int  # "scored" timeline events
    results: int  # score results of the bleed model
    findings: int  # ICH findings
    positive: bool
    alerts: int
    alerts_raised: int  # "alert.raised" audit rows
    followups_pending: int

    @property
    def recovered(self) -> bool:
        """Scored, alerted and nothing left to follow up."""
        return (
            self.ai_status == "scored"
            and self.alerts >= 1
            and self.followups_pending == 0
            and self.reading_status == "ready"
        )


def study_state(database_url: str, study_instance_uid: str) -> StudyState | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT s.id, c.ai_status, e.reading_status FROM triage_study s"
            " JOIN inference_studyscoring c ON c.study_id = s.id"
            " JOIN worklist_worklistentry e ON e.study_id = s.id"
            " WHERE s.study_instance_uid = %s",
            (study_instance_uid,),
        ).fetchone()
        if row is None:
            return None
        study_id, ai_status, reading_status = row

        def count(sql: str) -> int:
            value = conn.execute(sql, {"id": study_id}).fetchone()
            assert value is not None
            return int(value[0])

        return StudyState(
            ai_status=ai_status,
            reading_status=reading_status,
            scored_events=count(
                "SELECT count(*) FROM triage_studyevent"
                " WHERE study_id = %(id)s AND kind = 'scored'"
            ),
            results=count(
                "SELECT count(*) FROM inference_scoreresult r"
                " JOIN inference_registeredmodel m ON m.id = r.model_id"
                " WHERE r.study_id = %(id)s AND m.model_id = 'demo-ich-ct'"
            ),
            findings=count(
                "SELECT count(*) FROM inference_finding"
                " WHERE study_id = %(id)s AND code = 'ICH'"
            ),
            positive=bool(
                count(
                    "SELECT count(*) FROM inference_finding"
                    " WHERE study_id = %(id)s AND code = 'ICH' AND positive"
                )
            ),
            alerts=count("SELECT count(*) FROM worklist_alert WHERE study_id = %(id)s"),
            alerts_raised=count(
                "SELECT count(*) FROM triage_auditevent WHERE action = 'alert.raised'"
                " AND (detail->>'study_id')::int = %(id)s"
            ),
            followups_pending=count(
                "SELECT count(*) FROM inference_scoringfollowup WHERE study_id = %(id)s"
            ),
        )


def assert_scored_and_alerted_once(state: StudyState | None) -> None:
    """One result, one finding, positive, one alert raised once, nothing left."""
    assert state is not None
    assert state.recovered, state
    assert state.scored_events == 1, state
    assert state.results == 1, state
    assert state.findings == 1, state
    assert state.positive, state
    assert state.alerts == 1, state
    assert state.alerts_raised == 1, state
