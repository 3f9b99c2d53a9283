"""The HL7 listener on PostgreSQL: hostile frames, and a kill between store and apply.

The embedded-mode twins are in tests/triage/test_hl7_listener.py; here the
database is the production one, where a NUL byte cannot be stored in text and
the apply transaction's row lock is PostgreSQL's.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import hl7
import psycopg
import pytest
from hl7.mllp import open_hl7_connection

from tests.harness.processes import ManagedProcess, free_port, run_manage, wait_until
from tests.triage import hl7_samples as samples
from tests.triage.hl7_fake_names import APPLIED_ACTION, BLOCK_FILE_ENV


def _rows(database_url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(database_url) as conn:
        return [
            (str(c), str(o), str(a))
            for c, o, a in conn.execute(
                "SELECT control_id, outcome, ack_code FROM triage_hl7message "
                "ORDER BY id"
            )
        ]


def _applied(database_url: str, control_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM triage_auditevent WHERE action = %s "
            "AND object_id = %s",
            (APPLIED_ACTION, control_id),
        ).fetchall()
        return int(count)


async def _exchange(port: int, frames: list[bytes]) -> list[str]:
    """Send each frame on one connection; MSA-1 of each answer."""
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    codes = []
    try:
        for frame in frames:
            writer.writeblock(frame)
            await writer.drain()
            ack: hl7.Message = await asyncio.wait_for(reader.readmessage(), 20)
            codes.append(str(ack.segment("MSA")(1)))
    finally:
        writer.close()
    return codes


@pytest.mark.asyncio
async def test_hl7_on_postgresql_survives_hostile_frames_and_a_kill_mid_apply(
    database_url: str,
    migrated: None,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    port = free_port()
    block = tmp_path / "block"
    extra_env = {
        "RADTRIAGE_HL7_PORT": str(port),
        "RADTRIAGE_HL7_HANDLER_MODULES": "tests.triage.hl7_fake_handlers",
        BLOCK_FILE_ENV: str(block),
    }
    command = [sys.executable, "manage.py", "hl7_listener"]
    listener = start_process("hl7-listener", command, extra_env=extra_env)
    listener.wait_for_log("HL7 listener started", timeout=90)

    codes = await _exchange(
        port,
        [
            b"not \x00 HL7",
            samples.orm(control_id="P1").replace("Fall", "Fa\x00ll").encode(),
            samples.orm(control_id="P2").encode(),
            samples.orm(control_id="P2").encode(),
        ],
    )
    assert codes == ["AR", "AA", "AA", "AA"]
    assert _rows(database_url) == [
        ("", "rejected", "AR"),
        ("P1", "applied", "AA"),
        ("P2", "applied", "AA"),
        ("P2", "duplicate", "AA"),
    ]

    block.touch()
    sender = asyncio.create_task(
        _exchange(port, [samples.orm(control_id="K").encode()])
    )
    await asyncio.to_thread(
        wait_until,
        lambda: ("K", "pending", "") in _rows(database_url),
        timeout=30,
        what="the message stored as pending",
    )
    listener.popen.kill()
    listener.popen.wait(10)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await sender
    block.unlink()
    assert _applied(database_url, "K") == 0
    replay_env = {**production_env, **extra_env}
    assert ": applied (AA)" in run_manage(replay_env, "hl7_replay")
    assert _rows(database_url)[-1] == ("K", "applied", "AA")
    assert _applied(database_url, "K") == 1
    assert "0 message(s) replayed" in run_manage(replay_env, "hl7_replay")
