"""Receiving an HL7 message: store it, apply it once, answer it.

The order of work is what makes the feed lossless and idempotent:

1. the raw message is stored in a transaction of its own (``pending``), before
   anything is applied or acknowledged, and flushed to disk: a crash after
   this leaves a row that ``hl7_replay`` (and the listener, when it starts)
   applies;
2. it is applied in a second transaction that locks its row, runs the handler
   and records the outcome together: the handler's writes and the outcome
   commit at once, so a replay after a crash applies it exactly once. This
   commit does not wait for the disk (``recoverable_transaction``): a power
   cut can lose it only with the handler's writes, and leaves the row pending;
3. the ACK is built from the recorded outcome.

A control id (MSH-10) seen before from the same sending application and
facility gets a ``duplicate`` row and the original's ACK code; nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from radtriage.db import recoverable_transaction
from triage.hl7 import dispatch
from triage.hl7.dispatch import AckCode, NotApplicable, build_ack
from triage.hl7.messages import (
    ERR_APPLICATION_INTERNAL,
    MessageError,
    MessageHeader,
    UnsupportedMessage,
    check_supported,
    parse_er7,
    parse_header,
    parse_message,
)
from triage.models import HL7Message

logger = logging.getLogger(__name__)

Outcome = HL7Message.Outcome

_ACK_OUTCOMES = {
    Outcome.APPLIED: AckCode.ACCEPT,
    Outcome.REFUSED: AckCode.ERROR,
    Outcome.REJECTED: AckCode.REJECT,
}

INTERNAL_ERROR_TEXT = "internal error: the message is kept and will be replayed"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one received frame: its stored row and the ACK to send."""

    message_id: int
    outcome: str
    ack_code: AckCode
    ack: str


def site_zone() -> tzinfo:
    """The site's zone, for HL7 timestamps sent without an offset."""
    return ZoneInfo(settings.TIME_ZONE)


def _log_safe(text: str) -> str:
    # A control id is an opaque token, but it comes off the wire: no control
    # characters (log injection), bounded length.
    return "".join(c if c.isprintable() else "?" for c in text[:64])


def _log(row: HL7Message) -> None:
    logger.info(
        "hl7 message #%s %s^%s control id %s: %s (%s)",
        row.pk,
        row.message_type or "?",
        row.trigger_event or "?",
        _log_safe(row.control_id) or "-",
        row.outcome,
        row.ack_code or "-",
    )


def _header_fields(header: MessageHeader | None) -> dict[str, str]:
    if header is None:
        return {}
    return {
        "message_type": header.message_type[:16],
        "trigger_event": header.trigger_event[:16],
        "control_id": header.control_id[:199],
        "sending_application": header.sending_application[:227],
        "sending_facility": header.sending_facility[:227],
    }


def _ack_for(source: Any | None, row: HL7Message, now: datetime) -> Receipt:
    code = AckCode(row.ack_code)
    text = row.outcome_detail if code is not AckCode.ACCEPT else ""
    # A duplicate answers with what its original said.
    if row.outcome == Outcome.DUPLICATE and row.duplicate_of is not None:
        text = row.duplicate_of.outcome_detail if code is not AckCode.ACCEPT else ""
        error_code = row.duplicate_of.error_code
    else:
        error_code = row.error_code
    ack = build_ack(source, code, now=now, text=text, error_code=error_code)
    return Receipt(row.pk, row.outcome, code, ack)


def receive_message(
    raw: str, *, remote_host: str, now: datetime, zone: tzinfo | None = None
) -> Receipt:
    """Store, apply and answer one message received as ``raw`` ER7 text.

    Args:
        raw: the frame's content, decoded.
        remote_host: the peer's address (host only), kept with the message.
        now: when it was received (aware).
        zone: the site's zone for timestamps without an offset (default:
            ``TIME_ZONE``).

    Returns:
        The stored row's id, its outcome and the ACK to send.

    Raises:
        DatabaseError: the message could not be stored; send no ACK, so that
            the sender sends it again.
    """
    zone = zone or site_zone()
    source: Any | None = None
    header: MessageHeader | None = None
    try:
        source = parse_er7(raw)
        header = parse_header(source)
        key = (header.message_type, header.trigger_event)
        check_supported(header)
        if dispatch.handler_for(*key) is None:
            # Checked before storing as pending: what nothing can apply is
            # refused at once, not left for a replay that cannot succeed.
            raise UnsupportedMessage(f"no handler for {key[0]}^{key[1]}")
    except MessageError as exc:
        # Unreadable, unsupported, or no MSH to be idempotent on: AR. (A
        # readable MSH over an unreadable body is refused with AE, below.)
        return _reject(raw, remote_host, now, source, header, exc)
    try:
        with transaction.atomic():
            row = HL7Message.objects.create(
                raw=raw,
                received_at=now,
                remote_host=remote_host[:255],
                outcome=Outcome.PENDING,
                **_header_fields(header),
            )
    except IntegrityError:
        return _acknowledge_duplicate(raw, remote_host, now, source, header, zone)
    try:
        row = apply_stored(row.pk, now=now, zone=zone, message=source)
    except Exception as exc:  # noqa: BLE001 - answered, and kept for replay
        # A handler's bug or a lost database: the row stays pending for
        # hl7_replay. The exception's text may quote the message; its type not.
        logger.error(
            "hl7 message #%s left pending for replay after %s",
            row.pk,
            type(exc).__name__,
        )
        ack = build_ack(
            source,
            AckCode.ERROR,
            now=now,
            text=INTERNAL_ERROR_TEXT,
            error_code=ERR_APPLICATION_INTERNAL,
        )
        return Receipt(row.pk, Outcome.PENDING, AckCode.ERROR, ack)
    _log(row)
    return _ack_for(source, row, now)


def _reject(
    raw: str,
    remote_host: str,
    now: datetime,
    source: Any | None,
    header: MessageHeader | None,
    error: MessageError,
) -> Receipt:
    with transaction.atomic():
        row = HL7Message.objects.create(
            raw=raw,
            received_at=now,
            remote_host=remote_host[:255],
            outcome=Outcome.REJECTED,
            ack_code=AckCode.REJECT,
            outcome_detail=error.reason[:255],
            error_code=error.code,
            **_header_fields(header),
        )
    _log(row)
    return _ack_for(source, row, now)


def _acknowledge_duplicate(
    raw: str,
    remote_host: str,
    now: datetime,
    source: Any | None,
    header: MessageHeader,
    zone: tzinfo,
) -> Receipt:
    fields = _header_fields(header)
    original = (
        HL7Message.objects.filter(
            sending_application=fields["sending_application"],
            sending_facility=fields["sending_facility"],
            control_id=fields["control_id"],
        )
        .exclude(outcome__in=[Outcome.DUPLICATE, Outcome.REJECTED])
        .get()
    )
    if original.outcome == Outcome.PENDING:
        # The sender's resend after a crash (ours, before the ACK): apply the
        # stored original now, or wait for whoever is applying it.
        original = apply_stored(original.pk, now=now, zone=zone)
    with transaction.atomic():
        row = HL7Message.objects.create(
            raw=raw,
            received_at=now,
            remote_host=remote_host[:255],
            outcome=Outcome.DUPLICATE,
            ack_code=original.ack_code,
            outcome_detail=f"duplicate of HL7 message #{original.pk}",
            duplicate_of=original,
            **fields,
        )
    _log(row)
    return _ack_for(source, row, now)


def apply_stored(
    message_id: int,
    *,
    now: datetime,
    zone: tzinfo | None = None,
    message: Any | None = None,
) -> HL7Message:
    """Apply a stored ``pending`` message once, recording its outcome.

    The row is locked for the transaction, which also holds the handler's
    writes; a row no longer pending is returned as it is (applied by someone
    else). Exceptions other than the message's own (:class:`MessageError`,
    :class:`NotApplicable`), a missing handler's ``LookupError`` included,
    roll everything back and leave the row pending.

    Args:
        message_id: the :class:`HL7Message` to apply.
        now: the time recorded as ``applied_at`` (aware).
        zone: the site's zone for timestamps without an offset.
        message: the row's raw text already parsed by python-hl7, if at hand.
    """
    zone = zone or site_zone()
    # The stored row is on disk already (its own, full commit); should a power
    # cut lose this commit, the row is pending again and the listener's
    # start-up replay applies it. So this commit need not wait for the disk.
    with recoverable_transaction():
        # The raw text (up to a megabyte) is read only when not parsed yet.
        row = HL7Message.objects.select_for_update().defer("raw").get(pk=message_id)
        if row.outcome != Outcome.PENDING:
            return row
        try:
            source = message if message is not None else parse_er7(row.raw)
            parsed = parse_message(source, zone)
            # No handler raises LookupError, which leaves the row pending: it
            # had one when it was stored, so this process is misconfigured
            # (a replay without the handler modules), not the message wrong.
            with transaction.atomic():  # a refusal undoes the handler's writes
                dispatch.apply(parsed)
        except UnsupportedMessage as exc:
            _record(row, Outcome.REJECTED, exc.reason, exc.code)
        except (MessageError, NotApplicable) as exc:
            _record(row, Outcome.REFUSED, exc.reason, exc.code)
        else:
            _record(row, Outcome.APPLIED, "", None)
            row.applied_at = now
        row.save(
            update_fields=[
                "outcome",
                "ack_code",
                "outcome_detail",
                "error_code",
                "applied_at",
            ]
        )
    return row


def _record(row: HL7Message, outcome: str, detail: str, code: int | None) -> None:
    row.outcome = outcome
    row.ack_code = _ACK_OUTCOMES[Outcome(outcome)]
    row.outcome_detail = detail[:255]
    row.error_code = code


def replay_pending(
    message_ids: Sequence[int] = (), *, zone: tzinfo | None = None
) -> list[HL7Message]:
    """Apply pending messages, oldest first: those named, or all.

    Rows named but no longer pending are returned unchanged (applying twice is
    what this must never do). A row whose applying fails (no handler, a
    handler's error) stays pending, and the others are still tried.

    Returns:
        The rows as they stand afterwards.
    """
    rows = HL7Message.objects.filter(outcome=Outcome.PENDING)
    if message_ids:
        rows = HL7Message.objects.filter(pk__in=message_ids)
    done = []
    for pk in rows.order_by("received_at", "pk").values_list("pk", flat=True):
        try:
            row = apply_stored(pk, now=timezone.now(), zone=zone)
        except Exception as exc:  # noqa: BLE001 - kept pending, the rest go on
            logger.error(
                "hl7 message #%s still pending after %s", pk, type(exc).__name__
            )
            row = HL7Message.objects.get(pk=pk)
        _log(row)
        done.append(row)
    return done
