"""Done-when #1 of AI scoring, end to end with real processes.

Synthetic head CTs are sent by C-STORE to the real ``dicom_listener``; the real
``celery beat`` runs the stability sweep, the real ``celery worker`` declares the
studies stable and scores them from PostgreSQL and Redis. The one with a bleed
comes out positive with its key slice within two slices of the bleed's centre;
the normal one comes out negative.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from pydicom.uid import CTImageStorage
from pynetdicom import AE

from demo.synthetic import HemorrhageType, SyntheticStudy, make_ct_head_study
from tests.harness.processes import ManagedProcess, celery_worker, wait_until
from tests.integration.dicom_peers import (  # noqa: F401 - fixtures
    Listener,
    listener,
    start_listener,
)

QUICK = {
    "RADTRIAGE_STABILITY_SECONDS": "CT=2,*=2",
    "RADTRIAGE_STABILITY_SWEEP_SECONDS": "0.5",
}


def send(study: SyntheticStudy, port: int) -> None:
    ae = AE(ae_title="IT-SENDER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADTRIAGE")
    assert assoc.is_established
    try:
        for ds in study.datasets:
            status = assoc.send_c_store(ds)
            assert status.Status == 0x0000
    finally:
        assoc.release()


def test_a_head_ct_sent_to_the_listener_is_scored_once_stable(
    database_url: str,
    start_listener: Callable[..., Listener],  # noqa: F811
    start_process: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    dicom = start_listener(**QUICK)
    worker = start_process(
        "worker",
        celery_worker("it-scorer@localhost", concurrency=2),
        extra_env=QUICK,
    )
    worker.wait_for_log("it-scorer@localhost ready", timeout=90)
    start_process(
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
        extra_env=QUICK,
    )
    bleed = make_ct_head_study(
        301, slices=24, size=256, hemorrhage=HemorrhageType.INTRAPARENCHYMAL
    )
    normal = make_ct_head_study(302, slices=24, size=256)
    assert bleed.hemorrhage is not None
    send(bleed, dicom.port)
    send(normal, dicom.port)

    def status(uid: str) -> str:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT c.ai_status FROM inference_studyscoring c"
                " JOIN triage_study s ON s.id = c.study_id"
                " WHERE s.study_instance_uid = %s",
                (uid,),
            ).fetchone()
        return str(row[0]) if row else "absent"

    def both_scored() -> bool:
        done = {status(s.study_instance_uid) for s in (bleed, normal)}
        assert not done & {"failed", "not_applicable"}, done
        return done == {"scored"}

    try:
        wait_until(both_scored, timeout=120, what="both studies to be scored")
    except AssertionError:
        raise AssertionError(worker.log_text()[-5000:]) from None

    def finding(uid: str) -> tuple[bool, float, int]:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT f.positive, f.probability, f.key_slice_index "
                "FROM inference_finding f JOIN triage_study s ON s.id = f.study_id "
                "JOIN inference_scoreresult r ON r.id = f.result_id "
                "WHERE s.study_instance_uid = %s AND f.code = 'ICH' "
                "AND r.is_current AND NOT f.shadow",
                (uid,),
            ).fetchone()
        assert row is not None
        return bool(row[0]), float(row[1]), int(row[2])

    positive, probability, key = finding(bleed.study_instance_uid)
    assert positive, probability
    # Within two slices of the bleed: of a slice that holds blood (its centre
    # slice is reported as well, for a failing run).
    nearest = min(
        abs(key - i) for i, blood in enumerate(bleed.hemorrhage.slice_labels) if blood
    )
    assert nearest <= 2, (key, bleed.hemorrhage.centre_slice)
    negative, probability, _ = finding(normal.study_instance_uid)
    assert not negative, probability
    with psycopg.connect(database_url) as conn:
        queues = conn.execute(
            "SELECT e.detail->>'queue' FROM triage_studyevent e "
            "WHERE e.kind = 'scoring_queued'"
        ).fetchall()
    assert {q[0] for q in queues} == {"routine"}
