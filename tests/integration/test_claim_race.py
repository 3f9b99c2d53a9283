"""Two radiologists claim the same study at once on PostgreSQL: exactly one wins.

Two real web processes (as behind a load balancer) share one fresh PostgreSQL
database; each reader's request goes to its own process, released together.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable

import psycopg
import requests

from tests.harness.processes import ManagedProcess, free_port

STUDIES = 8

SETUP = """
import json
from rest_framework.authtoken.models import Token
from triage import services
from triage.models import Patient, Study
from triage.roles import Role
from worklist.models import WorklistEntry
tokens = {}
for name in ("reader_a", "reader_b"):
    user = services.set_role_user(name, Role.RADIOLOGIST, "race-password-123")
    tokens[name] = Token.objects.get_or_create(user=user)[0].key
patient = Patient.objects.create(patient_id="RACE")
ids = [
    Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.99.{i}", patient=patient
    ).pk
    for i in range(%d)
]
WorklistEntry.objects.filter(study_id__in=ids).update(reading_status="ready")
print(json.dumps({"tokens": tokens, "ids": ids}))
"""


def _web(start_process: Callable[..., ManagedProcess], name: str) -> str:
    port = free_port()
    web = start_process(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "radtriage.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    )
    web.wait_for_port(port)
    return f"http://127.0.0.1:{port}"


def _race(
    sessions: dict[str, requests.Session], urls: dict[str, str], study_id: int
) -> dict[str, int]:
    """Both readers claim ``study_id`` at once; their status codes."""
    barrier = threading.Barrier(len(sessions))
    outcomes: dict[str, int] = {}

    def claim(reader: str) -> None:
        barrier.wait()
        response = sessions[reader].post(
            f"{urls[reader]}/api/studies/{study_id}/claim/", timeout=30
        )
        outcomes[reader] = response.status_code

    threads = [threading.Thread(target=claim, args=(r,)) for r in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_concurrent_claims_on_postgresql_have_exactly_one_winner(
    manage: Callable[..., str],
    migrated: None,
    database_url: str,
    start_process: Callable[..., ManagedProcess],
) -> None:
    setup = json.loads(manage("shell", "-c", SETUP % STUDIES).strip().splitlines()[-1])
    tokens: dict[str, str] = setup["tokens"]
    urls = {
        "reader_a": _web(start_process, "web-a"),
        "reader_b": _web(start_process, "web-b"),
    }
    sessions = {}
    for reader, token in tokens.items():
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        # Warm each process, so the race is not against a cold start.
        assert session.get(f"{urls[reader]}/api/studies/", timeout=30).ok
        sessions[reader] = session

    for study_id in setup["ids"]:
        outcomes = _race(sessions, urls, study_id)
        assert sorted(outcomes.values()) == [200, 409], outcomes
        winner = next(r for r, code in outcomes.items() if code == 200)

        with psycopg.connect(database_url) as conn:
            claimed_by = conn.execute(
                "SELECT u.username FROM worklist_worklistentry e JOIN auth_user u "
                "ON u.id = e.claimed_by_id WHERE e.study_id = %s",
                (study_id,),
            ).fetchone()
            claims = conn.execute(
                "SELECT count(*) FROM triage_studyevent "
                "WHERE study_id = %s AND kind = 'claimed'",
                (study_id,),
            ).fetchone()
        assert claimed_by == (winner,)
        assert claims == (1,)
