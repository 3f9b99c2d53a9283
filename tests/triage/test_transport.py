"""The listener's tuned pynetdicom acceptor: same bytes, same protocol."""

from __future__ import annotations

import copy
import struct
from typing import cast

import pytest
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.presentation import PresentationContext

from triage.ingest.transport import (
    DataTransfer,
    SupportedContexts,
    encode_c_store_response,
    encode_data_transfer,
)


def store_response(status: int, *, class_uid: str, instance_uid: str) -> C_STORE:
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 7
    response.AffectedSOPClassUID = class_uid
    response.AffectedSOPInstanceUID = instance_uid
    response.Status = status
    return response


@pytest.mark.parametrize("status", [0x0000, 0x0110, 0xA700, 0xA900, 0xC000])
@pytest.mark.parametrize(
    ("class_uid", "instance_uid"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5"),  # odd lengths: padded
        ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.56"),  # even lengths
    ],
)
def test_a_c_store_response_is_encoded_as_pynetdicom_encodes_it(
    status: int, class_uid: str, instance_uid: str
) -> None:
    response = store_response(status, class_uid=class_uid, instance_uid=instance_uid)
    message = C_STORE_RSP()
    message.primitive_to_message(response)
    expected = cast("bytes", encode(message.command_set, True, True))

    assert encode_c_store_response(response) == expected


def test_a_response_with_an_error_comment_is_left_to_pynetdicom() -> None:
    response = store_response(
        0xC000, class_uid="1.2.840.10008.5.1.4.1.1.2", instance_uid="1.2.3"
    )
    response.ErrorComment = "refused"  # type: ignore[assignment]

    assert encode_c_store_response(response) is None


def test_a_response_pdu_is_encoded_as_pynetdicom_encodes_it() -> None:
    value = b"\x03" + b"\x00\x00\x00\x00\x04\x00\x00\x00\x10\x00\x00\x00" * 3
    primitive = P_DATA()
    primitive.presentation_data_value_list.append((5, value))

    assert encode_data_transfer(5, value) == P_DATA_TF(primitive).encode()


def test_received_data_values_are_split_as_pynetdicom_splits_them() -> None:
    primitive = P_DATA()
    primitive.presentation_data_value_list.extend(
        [(1, b"\x03" + b"command" * 3), (3, b"\x00" + bytes(range(256)) * 40)]
    )
    pdu = bytearray(P_DATA_TF(primitive).encode())
    expected = P_DATA_TF()
    expected.decode(bytes(pdu))

    values = DataTransfer(pdu).to_primitive().presentation_data_value_list

    assert [(cid, bytes(value)) for cid, value in values] == [
        (cid, bytes(value))
        for cid, value in expected.to_primitive().presentation_data_value_list
    ]


def test_a_truncated_data_value_item_fails_while_reading() -> None:
    pdu = bytearray(b"\x04\x00\x00\x00\x00\x03\x00\x00\x00")

    with pytest.raises(struct.error):
        DataTransfer(pdu)


def test_each_association_gets_its_own_presentation_contexts() -> None:
    context = PresentationContext()
    context.abstract_syntax = "1.2.840.10008.5.1.4.1.1.2"
    context.transfer_syntax = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]
    contexts = SupportedContexts([context])

    copied = copy.deepcopy(contexts)
    copied[0].context_id = 9
    copied[0].transfer_syntax.append(UID("1.2.840.10008.1.2.5"))

    assert context.context_id is None
    assert context.transfer_syntax == ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]
    assert copied[0].abstract_syntax == context.abstract_syntax
