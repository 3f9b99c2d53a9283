"""Orders from the hospital, end to end with real processes (issue 15, done-when 1).

An ORM^O01 for an emergency STAT head CT arrives over MLLP at the real
``hl7_listener``; the images follow by dcmtk's storescu into the real
``dicom_listener``; the real worker and beat score them from PostgreSQL and
Redis. The ordered study is queued on the urgent lane and sits above a routine
outpatient study, with "STAT order, emergency" among its reasons. The other way
round (images first, then the order), a radiologist's open websocket gets the
study's delta when the order lands.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hl7
import psycopg
import pytest
import websockets
from hl7.mllp import open_hl7_connection

from demo.synthetic import HemorrhageType, SyntheticStudy, make_ct_head_study
from tests.harness.processes import ManagedProcess, celery_worker, free_port, wait_until
from tests.harness.web import log_in, web_command
from tests.integration.dicom_peers import (  # noqa: F401 - fixtures
    Listener,
    require_program,
    run_dcmtk,
    start_listener,
)
from tests.triage import hl7_samples as samples

QUICK = {
    "RADTRIAGE_STABILITY_SECONDS": "CT=2,*=2",
    "RADTRIAGE_STABILITY_SWEEP_SECONDS": "0.5",
}
PASSWORD = "integration-password-1"
STAT_ACCESSION = "ACC3003"  # samples.orm(): STAT, emergency (PV1-2 E)
ROUTINE_ACCESSION = "ACC-ROUTINE-1"


def routine_outpatient_order(control_id: str) -> str:
    return samples.er7(
        samples.msh("ORM^O01", control_id),
        "PID|1||MRN555^^^GENHOSP^MR||ROE^RICHARD||19600101|M",
        "PV1|1|O|CLINIC2",
        "ORC|NW|PLC55|FIL55||SC||^^^20261204090000^^R",
        "OBR|1|PLC55|FIL55|CTHEAD^CT head^L|||20261204090000||||||||^^^^|"
        f"1^GP^GEORGE|(217)555-0100|{ROUTINE_ACCESSION}||||||CT|||^^^^^R||||"
        "^Chronic headache",
    )


async def _mllp(port: int, text: str) -> str:
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        writer.writemessage(hl7.parse(text))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), 20)
    finally:
        writer.close()
    return str(ack.segment("MSA")(1))


def send_hl7(port: int, text: str) -> str:
    return asyncio.run(_mllp(port, text))


def storescu(study: SyntheticStudy, port: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(study.datasets):
        path = folder / f"{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    tool = require_program("storescu", "dcmtk")
    result = run_dcmtk([tool, "-aec", "RADTRIAGE", "127.0.0.1", str(port), *paths])
    assert result.returncode == 0, result.stderr


def _row(database_url: str, accession: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT s.id, c.ai_status, e.priority_score, e.priority_components,"
            " s.patient_class, s.order_priority"
            " FROM triage_study s"
            " JOIN inference_studyscoring c ON c.study_id = s.id"
            " JOIN worklist_worklistentry e ON e.study_id = s.id"
            " WHERE s.accession_number = %s",
            (accession,),
        ).fetchone()
    if row is None:
        return None
    keys = ("id", "ai_status", "score", "components", "patient_class", "priority")
    return dict(zip(keys, row, strict=True))


def _queues(database_url: str, study_id: int) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT detail->>'queue' FROM triage_studyevent"
            " WHERE study_id = %s AND kind = 'scoring_queued'",
            (study_id,),
        ).fetchall()
    return {str(r[0]) for r in rows}


class Site:
    """The production processes of one department, on the real services."""

    def __init__(
        self,
        listener_of: Callable[..., Listener],
        start_process: Callable[..., ManagedProcess],
        tmp_path: Path,
    ) -> None:
        self.dicom = listener_of(**QUICK)
        self.hl7_port = free_port()
        hl7_listener = start_process(
            "hl7-listener",
            [sys.executable, "manage.py", "hl7_listener"],
            extra_env={"RADTRIAGE_HL7_PORT": str(self.hl7_port), **QUICK},
        )
        self.worker = start_process(
            "worker",
            celery_worker("it-orders@localhost", concurrency=2),
            extra_env=QUICK,
        )
        start_process(
            "beat",
            [
                sys.executable, "-m", "celery", "-A", "radtriage", "beat",
                "--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "INFO",
            ],
            extra_env=QUICK,
        )  # fmt: skip
        self.web_port = free_port()
        web = start_process("web", web_command(self.web_port), extra_env=QUICK)
        hl7_listener.wait_for_log("HL7 listener started", timeout=90)
        self.worker.wait_for_log("it-orders@localhost ready", timeout=90)
        web.wait_for_port(self.web_port)
        self.base_url = f"http://127.0.0.1:{self.web_port}"


@pytest.fixture
def site(
    manage: Callable[..., str],
    start_listener: Callable[..., Listener],  # noqa: F811
    start_process: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> Site:
    manage("set_role_user", "reader", "radiologist", input_text=PASSWORD + "\n")
    return Site(start_listener, start_process, tmp_path)


def _wait_scored(database_url: str, site: Site, accession: str) -> dict[str, Any]:
    def scored() -> bool:
        row = _row(database_url, accession)
        assert row is None or row["ai_status"] not in ("failed", "not_applicable")
        return row is not None and row["ai_status"] == "scored"

    try:
        wait_until(scored, timeout=150, what=f"study {accession} to be scored")
    except AssertionError:
        raise AssertionError(site.worker.log_text()[-5000:]) from None
    row = _row(database_url, accession)
    assert row is not None
    return row


def _reasons(row: dict[str, Any]) -> str:
    return ", ".join(c["reason"] for c in row["components"])


def test_a_stat_emergency_order_then_its_images_go_to_the_urgent_lane_and_top(
    database_url: str, site: Site, tmp_path: Path
) -> None:
    assert send_hl7(site.hl7_port, samples.orm(control_id="E2E-STAT")) == "AA"
    assert send_hl7(site.hl7_port, routine_outpatient_order("E2E-ROUTINE")) == "AA"
    routine = make_ct_head_study(
        411, slices=24, size=256, patient_id="MRN555",
        accession_number=ROUTINE_ACCESSION,
    )  # fmt: skip
    bleed = make_ct_head_study(
        412, slices=24, size=256, hemorrhage=HemorrhageType.INTRAPARENCHYMAL,
        patient_id="MRN12345", accession_number=STAT_ACCESSION,
    )  # fmt: skip
    storescu(routine, site.dicom.port, tmp_path / "routine")
    storescu(bleed, site.dicom.port, tmp_path / "bleed")

    stat_row = _wait_scored(database_url, site, STAT_ACCESSION)
    routine_row = _wait_scored(database_url, site, ROUTINE_ACCESSION)
    assert (stat_row["patient_class"], stat_row["priority"]) == ("emergency", "stat")
    assert _reasons(stat_row).startswith("STAT order, emergency"), _reasons(stat_row)
    assert _queues(database_url, stat_row["id"]) == {"urgent"}
    assert _queues(database_url, routine_row["id"]) == {"routine"}
    assert stat_row["score"] > routine_row["score"]

    # The radiologist's worklist shows it above the routine outpatient study.
    session = log_in(site.base_url, "reader", PASSWORD)
    listed = session.get(f"{site.base_url}/api/studies/", timeout=10)
    assert listed.status_code == 200
    ids = [row["id"] for row in listed.json()["results"]]
    assert ids.index(stat_row["id"]) < ids.index(routine_row["id"])


def test_an_order_after_the_images_reprioritises_the_study_live(
    database_url: str, site: Site, tmp_path: Path
) -> None:
    normal = make_ct_head_study(
        421, slices=24, size=256, patient_id="MRN12345",
        accession_number=STAT_ACCESSION,
    )  # fmt: skip
    storescu(normal, site.dicom.port, tmp_path / "study")
    before = _wait_scored(database_url, site, STAT_ACCESSION)
    assert before["patient_class"] == "unknown"
    session = log_in(site.base_url, "reader", PASSWORD)
    cookie = f"sessionid={session.cookies['sessionid']}"

    async def order_while_watching() -> dict[str, Any]:
        async with websockets.connect(
            f"ws://127.0.0.1:{site.web_port}/ws/worklist/",
            additional_headers={"Cookie": cookie, "Origin": site.base_url},
        ) as socket:
            code = await _mllp(site.hl7_port, samples.orm(control_id="E2E-LATE"))
            assert code == "AA"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = json.loads(
                    await asyncio.wait_for(socket.recv(), deadline - time.monotonic())
                )
                for upserted in message.get("upserted", []):
                    if upserted["id"] == before["id"]:
                        return dict(upserted)
            raise AssertionError("no delta for the study after its order")

    delta = asyncio.run(order_while_watching())
    after = _row(database_url, STAT_ACCESSION)
    assert after is not None
    assert (after["patient_class"], after["priority"]) == ("emergency", "stat")
    assert delta["priority_score"] == pytest.approx(after["score"], abs=0.5)
    assert after["score"] > before["score"]
    assert _reasons(after).startswith("STAT order, emergency")
