"""Fuzzing the listener's PDU handling, briefly (``./run fuzz`` runs longer)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.listener import check_listener, echo_answers, pdu_sequences
from tests.harness.processes import free_port
from triage.ingest.scp import start_listener

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def address(settings: Any) -> Iterator[tuple[str, int]]:
    settings.RADTRIAGE_DICOM_HOST = "127.0.0.1"
    settings.RADTRIAGE_DICOM_PORT = free_port()
    server = start_listener(block=False)
    assert server is not None
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()


def test_the_fuzzer_s_valid_request_and_echo_are_answered(
    address: tuple[str, int],
) -> None:
    assert echo_answers(address)


@settings(
    max_examples=60,
    deadline=timedelta(seconds=10),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pdus=pdu_sequences())
def test_the_listener_survives_malformed_pdus_and_keeps_answering(
    address: tuple[str, int], pdus: list[bytes]
) -> None:
    check_listener(address, pdus)
