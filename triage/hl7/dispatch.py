"""Which handler applies which HL7 message, and the ACK that answers it.

Plain Python (no Django). Handlers are registered per (message type, trigger
event) through :func:`register`: the order and report services register theirs
where they are wired in, tests register fakes, and a deployment may name modules
that register handlers in ``RADTRIAGE_HL7_HANDLER_MODULES``. A message whose
type has no handler is refused with AR, as an unsupported type is.

Batches (BHS/FHS) are refused with AR and a reason: one message per MLLP frame
is what interface engines send by default, and a batch ACK would hide which of
its messages failed.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import hl7

from triage.hl7.messages import ERR_APPLICATION_INTERNAL, ParsedMessage

Handler = Callable[[Any], None]
"""Applies one typed message (an ``OrderMessage``, ``ReportMessage``...).

Returns nothing when applied; raises :class:`NotApplicable` when the message
is well-formed but cannot be applied (the sender gets AE). Runs inside the
transaction that records the outcome, so its writes and the outcome commit
together or not at all.
"""

# Who we say we are when the sender left MSH-5 (receiving application) empty.
RECEIVING_APPLICATION = "RADTRIAGE"

_HANDLERS: dict[tuple[str, str], Handler] = {}


class AckCode(StrEnum):
    """MSA-1 (HL7 table 0008, original mode)."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class NotApplicable(Exception):
    """A well-formed message that cannot be applied (unknown accession, ...).

    ``reason`` goes into MSA-3 and ERR-8 and the stored outcome: name what is
    wrong, never a patient's name or identifier. ``code`` is HL7 table 0357's.
    """

    def __init__(self, reason: str, code: int = ERR_APPLICATION_INTERNAL) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def register(
    message_type: str, trigger_event: str, handler: Handler, *, replace: bool = False
) -> None:
    """Make ``handler`` apply messages of ``message_type^trigger_event``.

    Raises:
        ValueError: a handler is registered for that pair already and
            ``replace`` is false (two services silently competing for one
            message type would be a wiring bug).
    """
    key = (message_type.upper(), trigger_event.upper())
    if key in _HANDLERS and not replace and _HANDLERS[key] is not handler:
        raise ValueError(f"a handler for {key[0]}^{key[1]} is registered already")
    _HANDLERS[key] = handler


def unregister(message_type: str, trigger_event: str) -> None:
    """Forget the handler of ``message_type^trigger_event``, if any."""
    _HANDLERS.pop((message_type.upper(), trigger_event.upper()), None)


def handler_for(message_type: str, trigger_event: str) -> Handler | None:
    """The handler registered for the pair, or None."""
    return _HANDLERS.get((message_type.upper(), trigger_event.upper()))


def registered() -> frozenset[tuple[str, str]]:
    """The (type, trigger) pairs that have a handler now."""
    return frozenset(_HANDLERS)


def load_handler_modules(modules: Iterable[str]) -> None:
    """Import each named module, whose import registers its handlers."""
    for name in modules:
        importlib.import_module(name)


def apply(message: ParsedMessage) -> None:
    """Run the registered handler of ``message``'s type.

    Raises:
        LookupError: no handler is registered for its type.
        NotApplicable: the handler could not apply it.
    """
    header = message.header
    handler = handler_for(header.message_type, header.trigger_event)
    if handler is None:
        raise LookupError(
            f"no handler for {header.message_type}^{header.trigger_event}"
        )
    handler(message)


# ---- acknowledgements ---------------------------------------------------------

# Answers frames that are not a readable message: the synthetic "source" puts
# us in the sending fields once the ACK swaps them.
_NO_SOURCE = f"MSH|^~\\&|||{RECEIVING_APPLICATION}||||ACK^^ACK||P|2.5"


def build_ack(
    source: Any | None,
    code: AckCode,
    *,
    now: datetime,
    text: str = "",
    error_code: int | None = None,
) -> str:
    """An original-mode ACK for ``source`` as ER7 text (CR-separated).

    MSH swaps the sender and receiver of ``source``; MSA-1 is ``code``, MSA-2
    the source's control id (MSH-10), MSA-3 ``text``. With ``error_code`` (HL7
    table 0357) an ERR segment follows: ERR-3 the code, ERR-4 severity E,
    ERR-8 ``text``.

    Args:
        source: the python-hl7 message answered; None when the frame was not
            one (then MSA-2 is empty).
        code: AA, AE or AR.
        now: the ACK's MSH-7 time (aware).
        text: why, for AE and AR; no PHI.
        error_code: the table 0357 code, for an ERR segment.
    """
    ack = _create_ack(source, code)
    msh = ack.segment("MSH")
    msh.assign_field(now.strftime("%Y%m%d%H%M%S%z"), 7)
    msa = ack.segment("MSA")
    if text:
        msa.assign_field(ack.escape(text), 3)
    if error_code is not None:
        err = ack.create_segment([ack.create_field(["ERR"])])
        err.assign_field(str(error_code), 3, 1, 1)
        err.assign_field(ack.escape(_ERROR_NAMES.get(error_code, "")), 3, 1, 2)
        err.assign_field("HL70357", 3, 1, 3)
        err.assign_field("E", 4)
        if text:
            err.assign_field(ack.escape(text), 8)
        ack.append(err)
    return str(ack)


def _create_ack(source: Any | None, code: AckCode) -> Any:
    if source is not None:
        msh = source.segment("MSH")
        application = str(msh(5)) if len(msh) > 5 and str(msh(5)) else None
        try:
            return source.create_ack(
                str(code), application=application or RECEIVING_APPLICATION
            )
        except (TypeError, IndexError, KeyError, AttributeError):
            pass  # an MSH too short for the library's ACK: answer as for garbage
    ack = hl7.parse(_NO_SOURCE).create_ack(str(code))
    if source is not None:
        # Still name the message answered, where its MSH-10 can be read.
        with contextlib.suppress(TypeError, IndexError, KeyError, AttributeError):
            control_id = str(source.segment("MSH").extract_field(1, 10))
            ack.segment("MSA").assign_field(control_id, 2)
    return ack


_ERROR_NAMES: dict[int, str] = {
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    207: "Application internal error",
}
