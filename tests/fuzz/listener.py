"""Malformed PDUs against a running listener: it must survive each connection
and keep answering a valid C-ECHO."""

from __future__ import annotations

import contextlib
import socket
import struct
from functools import cache

from hypothesis import strategies as st
from pynetdicom import AE, build_context
from pynetdicom.dimse_messages import C_ECHO_RQ
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

_PDU_TYPES = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07)
# Variable items of an A-ASSOCIATE-RQ (PS3.8 9.3.2) and of its user information.
_ITEM_TYPES = (0x10, 0x20, 0x21, 0x30, 0x40, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55)


@cache
def association_request(called: str = "RADTRIAGE") -> bytes:
    """A valid A-ASSOCIATE-RQ proposing Verification, encoded by pynetdicom."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "FUZZER"
    primitive.called_ae_title = called
    context = build_context(Verification)
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    length = MaximumLengthNotification()
    length.maximum_length_received = 16384
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.7433.1"
    primitive.user_information = [length, implementation]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


@cache
def echo_request() -> bytes:
    """A valid P-DATA-TF carrying a C-ECHO-RQ on presentation context 1."""
    echo = C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = Verification
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    [primitive] = list(message.encode_msg(1, 16384))
    return bytes(P_DATA_TF(primitive).encode())


def _pdu(pdu_type: int, body: bytes, *, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return struct.pack(">BBI", pdu_type, 0, length) + body


@st.composite
def _broken_request(draw: st.DrawFn) -> bytes:
    """An A-ASSOCIATE-RQ with items made up, cut, lengthened or shuffled."""
    valid = association_request()
    fixed, items = valid[6:74], valid[74:]
    kind = draw(st.sampled_from(["items", "flip", "cut", "length"]))
    if kind == "items":
        made_up = b"".join(
            struct.pack(">BBH", item_type, 0, draw(st.integers(0, 0xFFFF)))
            + draw(st.binary(max_size=64))
            for item_type in draw(st.lists(st.sampled_from(_ITEM_TYPES), max_size=6))
        )
        body = fixed + (items + made_up if draw(st.booleans()) else made_up)
    elif kind == "flip":
        flipped = bytearray(fixed + items)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(flipped) - 1))
            flipped[at] = draw(st.integers(0, 255))
        body = bytes(flipped)
    elif kind == "cut":
        body = (fixed + items)[: draw(st.integers(0, len(fixed + items)))]
    else:
        body = fixed + items
        return _pdu(0x01, body, declared=draw(st.integers(0, 0xFFFFFFFF)))
    return _pdu(0x01, body)


@st.composite
def _broken_data(draw: st.DrawFn) -> bytes:
    """A P-DATA-TF whose value items lie about their lengths or contexts."""
    items = b"".join(
        struct.pack(">IB", draw(st.integers(0, 0xFFFFFFFF)), draw(st.integers(0, 255)))
        + draw(st.binary(max_size=64))
        for _ in range(draw(st.integers(0, 4)))
    )
    declared = draw(st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)))
    return _pdu(0x04, items, declared=declared)


_any_pdu = st.builds(
    lambda pdu_type, body: _pdu(pdu_type, body),
    st.sampled_from((*_PDU_TYPES, 0x00, 0x08, 0xFF)),
    st.binary(max_size=96),
)


@st.composite
def pdu_sequences(draw: st.DrawFn) -> list[bytes]:
    """What one connection sends: maybe a valid request first, then anything
    (broken requests, broken data, PDUs out of order, a valid echo, noise)."""
    sequence: list[bytes] = []
    if draw(st.booleans()):
        sequence.append(association_request())
    later = st.one_of(
        _broken_request(),
        _broken_data(),
        _any_pdu,
        st.just(echo_request()),
        st.just(association_request()),
        st.binary(min_size=1, max_size=64),
    )
    sequence.extend(draw(st.lists(later, min_size=1, max_size=5)))
    return sequence


def send_sequence(address: tuple[str, int], pdus: list[bytes]) -> None:
    """Send each PDU on one connection, reading whatever comes back."""
    with socket.create_connection(address, timeout=2) as sock:
        sock.settimeout(0.05)
        for pdu in pdus:
            try:
                sock.sendall(pdu)
            except OSError:
                return  # the listener closed: as it may
            with contextlib.suppress(OSError):
                sock.recv(65536)


def echo_answers(address: tuple[str, int]) -> bool:
    """Whether a fresh association's C-ECHO is answered with success."""
    ae = AE(ae_title="FUZZCHECK")
    ae.add_requested_context(Verification)
    assoc = ae.associate(*address, ae_title="RADTRIAGE")
    if not assoc.is_established:
        return False
    try:
        return int(assoc.send_c_echo().Status) == 0x0000
    finally:
        assoc.release()


def check_listener(address: tuple[str, int], pdus: list[bytes]) -> None:
    """Send ``pdus``; fail unless the listener still answers a C-ECHO."""
    send_sequence(address, pdus)
    assert echo_answers(address), "the listener stopped answering C-ECHO"
