"""`manage.py hl7_listener` as a real process, fed by python-hl7's MLLP client.

Embedded mode (SQLite in a temporary folder), so no services are needed. The
handlers are tests/triage/hl7_fake_handlers.py, named in the listener's
environment as a deployment would name its own.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from tests.harness.processes import (
    ManagedProcess,
    Processes,
    clean_env,
    free_port,
    run_manage,
    wait_until,
)
from tests.triage import hl7_samples as samples
from tests.triage.hl7_fake_names import APPLIED_ACTION, BLOCK_FILE_ENV

MAX_KB = 64
ACK_TIMEOUT = 20.0


class Listener:
    def __init__(self, processes: Processes, env: dict[str, str], port: int) -> None:
        self.processes, self.env, self.port = processes, env, port
        self.database = Path(env["RADTRIAGE_VAR_DIR"]) / "radtriage.sqlite3"
        self.process: ManagedProcess | None = None

    def start(self) -> ManagedProcess:
        self.process = self.processes.start(
            "hl7-listener", [sys.executable, "manage.py", "hl7_listener"]
        )
        self.process.wait_for_log("HL7 listener started", timeout=90)
        return self.process

    def rows(self) -> list[tuple[str, str, str]]:
        """(control id, outcome, ack code) of every stored message, in order."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            return [
                (str(c), str(o), str(a))
                for c, o, a in db.execute(
                    "SELECT control_id, outcome, ack_code FROM triage_hl7message "
                    "ORDER BY id"
                )
            ]

    def applied_count(self, control_id: str) -> int:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            [(count,)] = db.execute(
                "SELECT count(*) FROM triage_auditevent WHERE action = ? "
                "AND object_id = ?",
                (APPLIED_ACTION, control_id),
            )
            return int(count)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    port = free_port()
    env = clean_env(
        RADTRIAGE_VAR_DIR=str(tmp_path / "var"),
        RADTRIAGE_HL7_PORT=str(port),
        RADTRIAGE_HL7_MAX_MESSAGE_KB=str(MAX_KB),
        RADTRIAGE_HL7_HANDLER_MODULES="tests.triage.hl7_fake_handlers",
        **{BLOCK_FILE_ENV: str(tmp_path / "block")},
        PYTHONUNBUFFERED="1",
    )
    run_manage(env, "migrate", "--noinput")
    with Processes(tmp_path, env) as processes:
        yield Listener(processes, env, port)


async def _send(port: int, text: str) -> hl7.Message:
    """One message on a connection of its own; the parsed ACK."""
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        writer.writemessage(hl7.parse(text))
        await writer.drain()
        return await asyncio.wait_for(reader.readmessage(), ACK_TIMEOUT)
    finally:
        writer.close()


def _msa(ack: hl7.Message) -> tuple[str, str]:
    segment = ack.segment("MSA")
    return str(segment(1)), str(segment(2))


def _noise(size: int) -> bytes:
    # Random bytes with no MLLP framing bytes in them: a stream that is not HL7.
    rng = random.Random(15)  # noqa: S311 - reproducible noise, not a secret
    return bytes(b for b in rng.randbytes(size) if b not in (0x0B, 0x1C, 0x0D))


async def test_a_listener_fed_garbage_keeps_answering_valid_messages(
    listener: Listener,
) -> None:
    process = listener.start()
    port = listener.port

    # Noise, then a valid frame, in one write on one connection: answered.
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    writer.write(_noise(3000) + b"\x0b" + samples.orm(control_id="C1").encode())
    writer.write(b"\x1c\r")
    await writer.drain()
    assert _msa(await asyncio.wait_for(reader.readmessage(), ACK_TIMEOUT)) == (
        "AA",
        "C1",
    )
    # A frame with no MSH (and a NUL), then a valid one on the same connection.
    writer.writeblock(b"hello, this is \x00not HL7")
    await writer.drain()
    assert _msa(await asyncio.wait_for(reader.readmessage(), ACK_TIMEOUT)) == (
        "AR",
        "",
    )
    writer.writemessage(hl7.parse(samples.orm(control_id="C2")))
    await writer.drain()
    assert _msa(await asyncio.wait_for(reader.readmessage(), ACK_TIMEOUT)) == (
        "AA",
        "C2",
    )
    writer.close()

    # An oversize frame: AR, then the listener closes that connection.
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    writer.writeblock(samples.orm(control_id="BIG").encode() + b"X" * (MAX_KB * 1024))
    await writer.drain()
    ack = await asyncio.wait_for(reader.readmessage(), ACK_TIMEOUT)
    assert _msa(ack)[0] == "AR"
    assert "longer than" in str(ack.segment("MSA")(3))
    assert await asyncio.wait_for(reader.read(), ACK_TIMEOUT) == b""  # closed
    writer.close()

    # Half a frame, then the peer goes away.
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    writer.write(b"\x0b" + samples.orm(control_id="HALF").encode()[:80])
    await writer.drain()
    writer.close()

    # Noise alone on a connection that then closes.
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    writer.write(os.urandom(5000))
    await writer.drain()
    writer.close()

    # A new connection after all that: answered and stored.
    assert _msa(await _send(port, samples.orm(control_id="C3"))) == ("AA", "C3")
    # And a duplicate of it: acknowledged again, applied once.
    assert _msa(await _send(port, samples.orm(control_id="C3"))) == ("AA", "C3")

    assert process.popen.poll() is None
    assert process.stop() == 0  # SIGTERM: a clean stop
    assert "HL7 listener stopped" in process.log_text()
    assert listener.rows() == [
        ("C1", "applied", "AA"),
        ("", "rejected", "AR"),
        ("C2", "applied", "AA"),
        ("C3", "applied", "AA"),
        ("C3", "duplicate", "AA"),
    ]
    assert [listener.applied_count(c) for c in ("C1", "C2", "C3")] == [1, 1, 1]
    log = process.log_text()
    for value in ("MRN12345", "DOE", "JANE", "19700315"):
        assert value not in log


async def _kill_while_applying(listener: Listener, control_id: str) -> None:
    """Send an order and SIGKILL the listener once it is stored, mid-apply."""
    block = Path(listener.env[BLOCK_FILE_ENV])
    block.touch()  # the order handler waits while this exists
    process = listener.start()
    text = samples.orm(control_id=control_id)
    sender = asyncio.create_task(_send(listener.port, text))
    await asyncio.to_thread(
        wait_until,
        lambda: listener.rows() == [(control_id, "pending", "")],
        timeout=30,
        what="the message stored as pending",
    )
    process.popen.kill()  # SIGKILL: stored, being applied, not acknowledged
    process.popen.wait(10)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await sender  # the sender got no ACK
    assert listener.rows() == [(control_id, "pending", "")]
    assert listener.applied_count(control_id) == 0
    block.unlink()


async def test_a_listener_killed_after_storing_leaves_the_message_for_replay(
    listener: Listener,
) -> None:
    await _kill_while_applying(listener, "K1")
    out = run_manage(listener.env, "hl7_replay")
    assert ": applied (AA)" in out
    assert listener.rows() == [("K1", "applied", "AA")]
    assert listener.applied_count("K1") == 1
    assert "0 message(s) replayed" in run_manage(listener.env, "hl7_replay")

    # The sender resends (it never had an ACK): AA, and nothing applied twice.
    listener.start()
    assert _msa(await _send(listener.port, samples.orm(control_id="K1"))) == (
        "AA",
        "K1",
    )
    assert listener.rows() == [("K1", "applied", "AA"), ("K1", "duplicate", "AA")]
    assert listener.applied_count("K1") == 1


async def test_an_unsupported_message_and_a_refused_one_get_ar_and_ae(
    listener: Listener,
) -> None:
    listener.start()
    port = listener.port
    siu = samples.er7(samples.msh("SIU^S12", "S1"), samples.PID)
    assert _msa(await _send(port, siu)) == ("AR", "S1")
    ack = await _send(port, samples.oru(control_id="R1"))
    assert _msa(ack) == ("AE", "R1")
    assert str(ack.segment("ERR").extract_field(1, 3, 1, 1)) == "204"
    assert listener.rows() == [("S1", "rejected", "AR"), ("R1", "refused", "AE")]


async def test_a_restarted_listener_applies_what_a_kill_left_pending(
    listener: Listener,
) -> None:
    await _kill_while_applying(listener, "K2")
    process = listener.start()
    assert listener.rows() == [("K2", "applied", "AA")]  # before it listens
    assert listener.applied_count("K2") == 1
    assert "1 pending message(s) replayed at start" in process.log_text()


def test_a_listener_whose_port_is_taken_says_so(listener: Listener) -> None:
    import socket

    with socket.create_server(("127.0.0.1", listener.port)):
        process = listener.processes.start(
            "hl7-listener-taken", [sys.executable, "manage.py", "hl7_listener"]
        )
        assert process.wait_exit(timeout=90) != 0
    log = process.log_text()
    assert f"cannot listen on 127.0.0.1:{listener.port}" in log
    assert "Traceback" not in log
