"""Receiving HL7 messages: storage, the ACK codes, idempotence and replay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import hl7
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from tests.triage import hl7_samples as samples
from triage.hl7 import dispatch
from triage.hl7.dispatch import AckCode, NotApplicable, build_ack
from triage.hl7.messages import ERR_UNKNOWN_KEY, OrderMessage, ReportMessage
from triage.hl7.services import INTERNAL_ERROR_TEXT, receive_message, replay_pending
from triage.models import AuditEvent, HL7Message
from triage.roles import Role
from triage.services import record_audit

NOW = datetime(2026, 12, 4, 10, 16, tzinfo=UTC)
PHI = ("MRN12345", "DOE", "JANE", "19700315")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty handler registry for this test only."""
    monkeypatch.setattr(dispatch, "_HANDLERS", {})
    yield


@pytest.fixture
def applied(registry: None) -> list[Any]:
    """Registers an ORM handler that records what it applied (and audits it)."""
    seen: list[Any] = []

    def handle(message: OrderMessage) -> None:
        record_audit(
            user=None,
            action="test_applied",
            object_type="control_id",
            object_id=message.header.control_id,
            now=NOW,
        )
        seen.append(message)

    dispatch.register("ORM", "O01", handle)
    return seen


def receive(text: str) -> tuple[hl7.Message, HL7Message]:
    receipt = receive_message(text, remote_host="10.0.0.5", now=NOW)
    return hl7.parse(receipt.ack), HL7Message.objects.get(pk=receipt.message_id)


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    segment = ack.segment("MSA")
    # extract_field unescapes (\S\ is ^), as a receiver reads the text.
    return tuple(str(segment.extract_field(1, n)) for n in (1, 2, 3))  # type: ignore[return-value]


def err_code(ack: hl7.Message) -> str:
    return str(ack.segment("ERR").extract_field(1, 3, 1, 1))


def no_phi(*texts: str) -> None:
    for text in texts:
        for value in PHI:
            assert value not in text


@pytest.mark.django_db
def test_an_applied_order_is_stored_and_answered_aa(applied: list[Any]) -> None:
    ack, row = receive(samples.orm())
    assert msa(ack) == ("AA", "MSG00001", "")
    msh = ack.segment("MSH")
    # Sender and receiver swapped.
    assert (str(msh(3)), str(msh(4)), str(msh(5)), str(msh(6))) == (
        "RADTRIAGE",
        "RADIOLOGY",
        "RIS",
        "GENHOSP",
    )
    assert str(msh(9)) == "ACK^O01^ACK"
    assert row.outcome == HL7Message.Outcome.APPLIED
    assert row.ack_code == "AA"
    assert row.applied_at == NOW
    assert row.raw == samples.orm()
    assert row.remote_host == "10.0.0.5"
    assert (row.message_type, row.trigger_event, row.control_id) == (
        "ORM",
        "O01",
        "MSG00001",
    )
    assert (row.sending_application, row.sending_facility) == ("RIS", "GENHOSP")
    assert [m.accession_number for m in applied] == ["ACC3003"]


@pytest.mark.django_db
def test_a_repeated_control_id_is_acknowledged_again_and_changes_nothing(
    applied: list[Any],
) -> None:
    first_ack, first = receive(samples.orm())
    again_ack, again = receive(samples.orm())
    assert msa(again_ack) == msa(first_ack) == ("AA", "MSG00001", "")
    assert again.outcome == HL7Message.Outcome.DUPLICATE
    assert again.duplicate_of == first
    assert len(applied) == 1
    assert AuditEvent.objects.filter(action="test_applied").count() == 1


@pytest.mark.django_db
def test_the_same_control_id_from_another_sender_is_another_message(
    applied: list[Any],
) -> None:
    receive(samples.orm())
    other = samples.orm().replace("|RIS|GENHOSP|", "|RIS|NORTHCLINIC|")
    ack, row = receive(other)
    assert msa(ack)[0] == "AA"
    assert row.outcome == HL7Message.Outcome.APPLIED
    assert len(applied) == 2


@pytest.mark.django_db
def test_a_message_the_handler_cannot_apply_is_answered_ae_with_the_reason(
    registry: None,
) -> None:
    def refuse(message: ReportMessage) -> None:
        record_audit(user=None, action="half_done", object_type="x", now=NOW)
        raise NotApplicable("no study has this accession number", ERR_UNKNOWN_KEY)

    dispatch.register("ORU", "R01", refuse)
    ack, row = receive(samples.oru())
    assert msa(ack) == ("AE", "ORU00001", "no study has this accession number")
    assert err_code(ack) == "204"
    assert str(ack.segment("ERR")(4)) == "E"
    assert row.outcome == HL7Message.Outcome.REFUSED
    assert row.outcome_detail == "no study has this accession number"
    # The refusal undid what the handler had written.
    assert not AuditEvent.objects.filter(action="half_done").exists()

    again_ack, again = receive(samples.oru())
    assert msa(again_ack) == msa(ack)  # the same AE, for a duplicate
    assert err_code(again_ack) == "204"
    assert again.outcome == HL7Message.Outcome.DUPLICATE


@pytest.mark.django_db
def test_a_missing_required_field_is_answered_ae_naming_the_field_only(
    applied: list[Any],
) -> None:
    text = samples.orm(pid="PID|1||^^^GENHOSP||DOE^JANE||19700315|F")
    ack, row = receive(text)
    code, control_id, reason = msa(ack)
    assert (code, control_id) == ("AE", "MSG00001")
    assert "PID-3" in reason
    assert err_code(ack) == "101"
    assert row.outcome == HL7Message.Outcome.REFUSED
    no_phi(reason, row.outcome_detail)
    assert applied == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        (samples.er7(samples.msh("ADT^A01"), samples.PID), "201", "ADT^A01"),
        (samples.er7(samples.msh("SIU^S12"), samples.PID), "200", "SIU^S12"),
        (samples.oru(), "200", "no handler for ORU^R01"),
        ("BHS|^~\\&|RIS\r" + samples.orm() + "BTS|1\r", "200", "batches"),
    ],
    ids=["unsupported trigger", "unsupported type", "no handler", "batch"],
)
def test_what_cannot_be_applied_here_is_answered_ar(
    applied: list[Any], text: str, error: str, reason: str
) -> None:
    ack, row = receive(text)
    assert msa(ack)[0] == "AR"
    assert reason in msa(ack)[2]
    assert err_code(ack) == error
    assert row.outcome == HL7Message.Outcome.REJECTED
    assert row.raw == text
    assert applied == []


@pytest.mark.django_db
def test_an_unreadable_frame_is_stored_rejected_and_answered_ar(
    applied: list[Any],
) -> None:
    ack, row = receive("this is not an HL7 message at all")
    assert msa(ack) == ("AR", "", "not an HL7 message (no MSH segment first)")
    assert str(ack.segment("MSH")(3)) == "RADTRIAGE"
    assert row.outcome == HL7Message.Outcome.REJECTED
    assert row.control_id == ""


@pytest.mark.django_db
def test_a_rejected_message_resent_under_its_control_id_is_read_anew(
    registry: None,
) -> None:
    receive(samples.oru())  # AR: nothing handles reports yet
    seen: list[Any] = []
    dispatch.register("ORU", "R01", seen.append)
    ack, row = receive(samples.oru())
    assert msa(ack)[0] == "AA"
    assert row.outcome == HL7Message.Outcome.APPLIED
    assert len(seen) == 1


@pytest.mark.django_db
def test_a_failing_handler_leaves_the_message_pending_and_replay_applies_it_once(
    registry: None,
) -> None:
    calls: list[str] = []
    broken = True

    def handle(message: OrderMessage) -> None:
        record_audit(user=None, action="test_applied", object_type="x", now=NOW)
        calls.append(message.header.control_id)
        if broken:
            raise RuntimeError("database went away")

    dispatch.register("ORM", "O01", handle)
    ack, row = receive(samples.orm())
    assert msa(ack) == ("AE", "MSG00001", INTERNAL_ERROR_TEXT)
    assert err_code(ack) == "207"
    assert row.outcome == HL7Message.Outcome.PENDING
    assert not AuditEvent.objects.filter(action="test_applied").exists()

    broken = False
    [replayed] = replay_pending()
    assert replayed.outcome == HL7Message.Outcome.APPLIED
    assert replay_pending() == []
    assert AuditEvent.objects.filter(action="test_applied").count() == 1
    assert calls == ["MSG00001", "MSG00001"]  # one failed try, one applied


@pytest.mark.django_db
def test_a_resend_of_a_message_left_pending_applies_the_stored_one(
    registry: None,
) -> None:
    seen: list[Any] = []
    broken = True

    def handle(message: OrderMessage) -> None:
        if broken:
            raise RuntimeError("not yet")
        seen.append(message)

    dispatch.register("ORM", "O01", handle)
    _, original = receive(samples.orm())
    broken = False
    ack, again = receive(samples.orm())  # the sender resends after no AA
    assert msa(ack)[0] == "AA"
    assert again.outcome == HL7Message.Outcome.DUPLICATE
    original.refresh_from_db()
    assert original.outcome == HL7Message.Outcome.APPLIED
    assert len(seen) == 1


@pytest.mark.django_db
def test_hl7_replay_applies_pending_messages_by_id_or_all(
    registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pending = [
        HL7Message.objects.create(
            raw=samples.orm(control_id=f"C{i}"),
            received_at=NOW,
            message_type="ORM",
            trigger_event="O01",
            control_id=f"C{i}",
        )
        for i in range(3)
    ]
    seen: list[str] = []
    dispatch.register("ORM", "O01", lambda m: seen.append(m.header.control_id))

    call_command("hl7_replay", str(pending[1].pk))
    assert seen == ["C1"]
    call_command("hl7_replay")
    assert seen == ["C1", "C0", "C2"]
    call_command("hl7_replay", str(pending[1].pk))  # no longer pending
    assert seen == ["C1", "C0", "C2"]
    out = capsys.readouterr().out
    assert f"HL7 message #{pending[0].pk}: applied (AA)" in out
    no_phi(out)


def test_build_ack_escapes_its_text_and_adds_an_err_segment() -> None:
    source = hl7.parse(samples.orm())
    text = build_ack(
        source, AckCode.ERROR, now=NOW, text="field ORC-1 | bad ^ value", error_code=101
    )
    assert "\n" not in text
    ack = hl7.parse(text)
    assert msa(ack) == ("AE", "MSG00001", "field ORC-1 | bad ^ value")
    assert str(ack.segment("MSH")(7)) == "20261204101600+0000"
    assert str(ack.segment("ERR")(3)) == "101^Required field missing^HL70357"
    assert ack.segment("ERR").extract_field(1, 8) == "field ORC-1 | bad ^ value"


def test_an_aa_ack_has_no_err_segment() -> None:
    ack = hl7.parse(build_ack(hl7.parse(samples.orm()), AckCode.ACCEPT, now=NOW))
    assert [str(s[0]) for s in ack] == ["MSH", "MSA"]


def test_register_refuses_a_second_handler_for_one_type(registry: None) -> None:
    def first(message: Any) -> None:
        pass

    def second(message: Any) -> None:
        pass

    dispatch.register("ORM", "O01", first)
    dispatch.register("ORM", "O01", first)  # the same one again is harmless
    with pytest.raises(ValueError, match="ORM"):
        dispatch.register("orm", "o01", second)
    assert dispatch.handler_for("ORM", "O01") is first
    dispatch.register("ORM", "O01", second, replace=True)
    assert dispatch.handler_for("orm", "o01") is second


# ---- admin --------------------------------------------------------------------


@pytest.fixture
def stored_message(db: None) -> HL7Message:
    return HL7Message.objects.create(
        raw=samples.orm(),
        received_at=NOW,
        message_type="ORM",
        trigger_event="O01",
        control_id="MSG00001",
        outcome=HL7Message.Outcome.APPLIED,
        ack_code="AA",
    )


def _staff(make_user: Callable[..., Any], role: Role) -> User:
    user = make_user(role)
    assert isinstance(user, User)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def test_phi_roles_see_stored_messages_in_the_admin_and_each_view_is_audited(
    client: Client, make_user: Callable[..., Any], stored_message: HL7Message
) -> None:
    client.force_login(_staff(make_user, Role.RADIOLOGIST))
    listing = client.get("/admin/triage/hl7message/")
    assert listing.status_code == 200
    assert b"MRN12345" not in listing.content  # the list shows no content
    detail = client.get(f"/admin/triage/hl7message/{stored_message.pk}/change/")
    assert detail.status_code == 200
    assert b"MRN12345" in detail.content
    actions = list(
        AuditEvent.objects.filter(object_type="hl7_message")
        .order_by("pk")
        .values_list("action", "object_id")
    )
    assert actions == [
        ("list_hl7_messages", ""),
        ("view_hl7_message", str(stored_message.pk)),
    ]


def test_roles_without_phi_rights_cannot_open_stored_messages(
    client: Client, make_user: Callable[..., Any], stored_message: HL7Message
) -> None:
    client.force_login(_staff(make_user, Role.ADMINISTRATOR))
    assert client.get("/admin/triage/hl7message/").status_code == 403
    detail = client.get(f"/admin/triage/hl7message/{stored_message.pk}/change/")
    assert detail.status_code in (302, 403)
    assert b"MRN12345" not in detail.content
    assert not AuditEvent.objects.filter(object_type="hl7_message").exists()


def test_no_one_changes_or_deletes_a_stored_message(
    client: Client, make_user: Callable[..., Any], stored_message: HL7Message
) -> None:
    client.force_login(_staff(make_user, Role.RADIOLOGIST))
    url = f"/admin/triage/hl7message/{stored_message.pk}/"
    assert client.post(url + "change/", {"raw": "MSH|x"}).status_code == 403
    assert client.post(url + "delete/", {"post": "yes"}).status_code == 403
    stored_message.refresh_from_db()
    assert stored_message.raw == samples.orm()


@pytest.mark.django_db
def test_a_replay_without_the_handler_leaves_the_message_pending(
    registry: None,
) -> None:
    row = HL7Message.objects.create(
        raw=samples.orm(),
        received_at=NOW,
        message_type="ORM",
        trigger_event="O01",
        control_id="MSG00001",
    )
    with pytest.raises(CommandError, match="1 message\\(s\\) still pending"):
        call_command("hl7_replay")
    row.refresh_from_db()
    assert row.outcome == HL7Message.Outcome.PENDING  # not rejected for good
