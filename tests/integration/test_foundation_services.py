"""The production setup on real PostgreSQL and Redis, with real processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import psycopg
import pytest
import websockets

from tests.harness.processes import ManagedProcess, celery_worker, free_port, wait_until
from tests.harness.web import log_in, web_command


def test_migrations_apply_and_reverse_on_postgresql(
    manage: Callable[..., str], database_url: str
) -> None:
    manage("migrate", "--noinput")
    with psycopg.connect(database_url) as conn:
        groups = {row[0] for row in conn.execute("SELECT name FROM auth_group")}
        assert groups == {
            "radiologist",
            "charge technologist",
            "department head",
            "administrator",
        }
        conn.execute(
            "INSERT INTO triage_patient (patient_id, issuer_of_patient_id, "
            "patient_name, patient_sex, created_at) VALUES ('P1', '', '', '', now())"
        )
        insert_study = (
            "INSERT INTO triage_study (study_instance_uid, patient_id, "
            "accession_number, modalities, body_part_examined, study_description, "
            "patient_class, order_priority, instance_count, created_at, "
            "updated_at) SELECT '1.2.3', id, '', 'CT', '', '', 'unknown', "
            "'routine', 0, now(), now() FROM triage_patient"
        )
        conn.execute(insert_study)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert_study)
    manage("migrate", "triage", "zero", "--noinput")
    manage("migrate", "--noinput")


def test_celery_task_runs_on_a_real_worker_through_redis(
    manage: Callable[..., str],
    migrated: None,
    database_url: str,
    start_process: Callable[..., ManagedProcess],
) -> None:
    worker = start_process(
        "worker",
        celery_worker("it-worker@localhost", concurrency=1),
    )
    worker.wait_for_log("it-worker@localhost ready", timeout=60)
    manage(
        "shell",
        "-c",
        "from triage.tasks import record_worker_heartbeat as task; "
        "task.apply_async(queue='urgent')",
    )

    def heartbeat_recorded() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT hostname FROM triage_workerheartbeat").fetchone()
        return row is not None and row[0] == "it-worker@localhost"

    wait_until(heartbeat_recorded, timeout=30, what="the worker to run the task")


def test_channels_redis_group_message_reaches_a_real_consumer(
    manage: Callable[..., str],
    migrated: None,
    start_process: Callable[..., ManagedProcess],
) -> None:
    password = "integration-password-1"
    manage("set_role_user", "reader", "radiologist", input_text=password + "\n")
    port = free_port()
    web = start_process("web", web_command(port))
    web.wait_for_port(port)
    base_url = f"http://127.0.0.1:{port}"
    session = log_in(base_url, "reader", password)
    cookie = f"sessionid={session.cookies['sessionid']}"

    async def exchange() -> dict[str, object]:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/worklist/",
            additional_headers={"Cookie": cookie, "Origin": base_url},
        ) as socket:
            # The consumer has joined its group once the handshake completed.
            await asyncio.to_thread(
                manage,
                "shell",
                "-c",
                "from worklist.broadcast import send_study_changed; "
                "send_study_changed(7, 3, 42.0)",
            )
            message = await asyncio.wait_for(socket.recv(), timeout=15)
            return dict(json.loads(message))

    payload = asyncio.run(exchange())
    assert payload["type"] == "worklist.delta"
    assert payload["upserted"] == [{"id": 7, "version": 3, "priority_score": 42.0}]
    assert payload["removed"] == []

    async def refused(headers: dict[str, str]) -> bool:
        try:
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/worklist/", additional_headers=headers
            ) as socket:
                await asyncio.wait_for(socket.recv(), timeout=5)
        except (websockets.InvalidStatus, websockets.ConnectionClosed):
            return True
        return False

    assert asyncio.run(refused({"Origin": base_url}))  # anonymous
    assert asyncio.run(refused({"Cookie": cookie, "Origin": "http://evil.example"}))
