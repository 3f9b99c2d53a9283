"""The embedded `serve` runs the HL7 listener too, unless told not to."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from tests.harness.processes import (
    Processes,
    clean_env,
    free_port,
    port_open,
    run_manage,
)
from tests.triage import hl7_samples as samples


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env(
        RADTRIAGE_VAR_DIR=str(tmp_path / "var"),
        RADTRIAGE_WEB_PORT=str(free_port()),
        RADTRIAGE_DICOM_PORT=str(free_port()),
        RADTRIAGE_HL7_PORT=str(free_port()),
        RADTRIAGE_HL7_HANDLER_MODULES="tests.triage.hl7_fake_handlers",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    run_manage(env, "migrate", "--noinput")
    return env


async def _send(port: int, text: str) -> hl7.Message:
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        writer.writemessage(hl7.parse(text))
        await writer.drain()
        return await asyncio.wait_for(reader.readmessage(), 20)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "enabled", [True, False], ids=["on", "RADTRIAGE_HL7_IN_SERVE=0"]
)
def test_serve_answers_hl7_unless_disabled(tmp_path: Path, enabled: bool) -> None:
    env = _env(tmp_path, RADTRIAGE_HL7_IN_SERVE="1" if enabled else "0")
    hl7_port = int(env["RADTRIAGE_HL7_PORT"])
    with Processes(tmp_path, env) as processes:
        serve = processes.start("serve", [sys.executable, "manage.py", "serve"])
        serve.wait_for_port(int(env["RADTRIAGE_WEB_PORT"]), timeout=120)
        if not enabled:
            assert not port_open(hl7_port)
            return
        serve.wait_for_port(hl7_port, timeout=30)
        ack = asyncio.run(_send(hl7_port, samples.orm(control_id="S1")))
        assert str(ack.segment("MSA")(1)) == "AA"
        assert serve.stop() == 0  # SIGTERM: the HL7 listener stops with the rest
    assert "RadTriage stopped" in serve.log_text()
