"""pynetdicom's acceptor, tuned for one instance after another on an association.

A modality sends the next instance only once the previous one is answered, so
every moment between the last PDU of an instance and its answer is lost
throughput, and on a busy machine every millisecond of CPU is one too. Stock
pynetdicom polls: its association thread sleeps 1 ms before each look at the
message queue, and its upper-layer (DUL) thread sleeps between looks at the
socket and at the answers to send; loaded, each sleep lasts a millisecond or
two, several times per instance. Here:

- both threads wait for the event itself (:class:`UpperLayer`,
  :class:`AcceptorAssociation`), and the association thread sends a C-STORE's
  answer itself rather than handing it over;
- a C-STORE-RSP is encoded by hand, byte for byte as pynetdicom would;
- a received P-DATA-TF is read in place, not copied once per slicing;
- pynetdicom's logging handlers, which decode and copy every message even when
  nothing is logged, are left out;
- each association's presentation contexts are copied cheaply.

Reads are bounded (PS3.8 9.3.1): a PDU may declare up to 4 GiB, so its length
is checked before anything is read, against a hard cap while no association
exists (:data:`ASSOCIATION_PDU_LIMIT`) and against the maximum PDU length the
listener offered once one does; a PDU over its bound aborts the association.
The body is then read as it arrives, never allocated whole up front, and a
message (a C-STORE's data set) larger than the instance cap is discarded as it
arrives and refused (:class:`OversizedDataSet`).

The protocol handling stays pynetdicom's. Written against pynetdicom 3.0
(pinned): the two reactor loops follow pynetdicom's own, with only the waiting
replaced; tests/triage/test_transport.py checks the bytes against pynetdicom's.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from pynetdicom import _handlers, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE, DimsePrimitiveType
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

logger = logging.getLogger(__name__)

#: The largest PDU read before an association is established (an A-ASSOCIATE-RQ)
#: and the largest non-data PDU after. A request proposing the protocol's
#: maximum of 128 presentation contexts, each with a dozen 64-character
#: transfer syntaxes, is about 110 KB; real senders (storescu proposing every
#: storage class) send 10 to 30 KB. 256 KiB leaves room for a large user
#: identity item and is a quarter of dcmtk's own limit
#: (dcmAssociatePDUSizeLimit, 1 MB). Bytes are held only as they arrive.
ASSOCIATION_PDU_LIMIT = 256 * 1024
# The first buffer of a PDU's read; it grows (doubling) only as data arrives.
_FIRST_READ_BYTES = 1 << 20
_PDU_TYPES = frozenset(range(0x01, 0x08))
_P_DATA_TF = 0x04
# States in which a P-DATA-TF is valid: established, or awaiting release (PS3.8 9.2).
_DATA_STATES = frozenset({"Sta6", "Sta7"})

# With every wake-up explicit, these only bound how late a thread notices what
# nothing signals (a kill, a timer, a release or abort request): pynetdicom's
# own 1 ms poll would cost idle associations CPU for nothing.
_IDLE_WAIT_SECONDS = 0.005


class Socket(AssociationSocket):
    """pynetdicom's socket, reading each PDU with a few large reads.

    The stock ``recv`` reads 4 KiB at a time: over a hundred system calls and
    buffer copies for one 512 x 512 CT slice.
    """

    def recv(self, nr_bytes: int) -> bytearray:
        return self.recv_after(b"", nr_bytes)

    def recv_after(self, prefix: bytes | bytearray, nr_bytes: int) -> bytearray:
        """``prefix`` followed by up to ``nr_bytes`` read (fewer if the peer closed).

        At most 1 MiB is allocated up front; past that the buffer grows
        (doubling) only as bytes arrive, so a peer that declares much and
        sends little makes the listener hold little.
        """
        raw = self.socket
        if raw is None:
            return bytearray(prefix)
        start, end = len(prefix), len(prefix) + nr_bytes
        buffer = bytearray(start + min(nr_bytes, _FIRST_READ_BYTES))
        buffer[:start] = prefix
        received = start
        while received < end:
            if received == len(buffer):
                buffer.extend(bytes(min(len(buffer), end - len(buffer))))
            with memoryview(buffer) as view:
                count = raw.recv_into(view[received:], len(buffer) - received)
            if count == 0:  # the peer closed: what came so far, as pynetdicom does
                break
            received += count
        del buffer[received:]
        return buffer


class UpperLayer(DULServiceProvider):
    """The DUL thread, asleep until the peer sends or the association answers.

    Instead of sleeping a fixed delay whenever it finds nothing to do, it
    waits in ``select`` on the peer's socket and on one end of a socket pair
    that :meth:`send_pdu` writes to after queueing a primitive.
    """

    _wake_reader: socket.socket
    _wake_writer: socket.socket
    _send_lock: threading.Lock
    #: The largest P-DATA-TF PDU accepted: the maximum length the listener
    #: offered (PS3.8 D.1: the peer must not send more).
    data_pdu_limit: int = ASSOCIATION_PDU_LIMIT

    def setup_wakeup(self) -> None:
        """Create the wake-up pair; called before the thread starts."""
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        # Whole PDUs only: the association thread may send one itself.
        self._send_lock = threading.Lock()

    def _send(self, pdu: Any) -> None:
        with self._send_lock:
            super()._send(pdu)

    def send_data_now(self, encoded_pdu: bytes) -> bool:
        """Send an encoded P-DATA-TF from the calling thread; False if not now.

        Handing an answer to this thread costs a wake-up and a turn of its loop
        per instance. Sending a P-DATA-TF leaves the state machine where it is
        (DT-1: Sta6 to Sta6), so the association thread may send it itself
        while the association is established and nothing is queued before it.
        """
        if (
            self.state_machine.current_state != "Sta6"
            or not self.to_provider_queue.empty()
            or self.assoc.get_handlers(evt.EVT_PDU_SENT)
            or self.assoc.get_handlers(evt.EVT_DATA_SENT)
            or self.socket is None
        ):
            return False
        with self._send_lock:
            self.socket.send(encoded_pdu)
        return True

    def send_pdu(self, primitive: object) -> None:
        super().send_pdu(primitive)  # type: ignore[arg-type]
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def _wake(self) -> None:
        # Full: a wake-up is pending anyway. Closed: the thread has ended.
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\x00")

    def _read_pdu_data(self) -> None:
        """pynetdicom's PDU read (``DULServiceProvider._read_pdu_data``), bounded.

        The declared length is checked before the body is read: over the
        bound for the PDU's type and the association's state, the PDU is
        invalid (Evt19: A-ABORT, then the connection closes) and its body is
        never read.
        """
        sock = cast("AssociationSocket", self.socket)
        try:
            header = sock.recv(6)
        except (OSError, TimeoutError):
            self.event_queue.put("Evt17")  # transport connection closed
            return
        if len(header) < 6:
            self.event_queue.put("Evt17")
            return
        pdu_type, _, pdu_length = struct.unpack(">BBL", header)
        if pdu_type not in _PDU_TYPES:
            logger.warning("unknown PDU type 0x%02X received; aborting", pdu_type)
            self.event_queue.put("Evt19")  # unrecognised or invalid PDU
            return
        limit = self._pdu_limit(pdu_type)
        if pdu_length > limit:
            logger.warning(
                "PDU of type 0x%02X declares %d bytes, over the %d allowed; aborting",
                pdu_type,
                pdu_length,
                limit,
            )
            self.event_queue.put("Evt19")
            return
        try:
            if isinstance(sock, Socket):
                bytestream = sock.recv_after(header, pdu_length)
            else:
                bytestream = bytearray(header) + sock.recv(pdu_length)
        except (OSError, TimeoutError):
            self.event_queue.put("Evt17")
            return
        if len(bytestream) != 6 + pdu_length:
            self.event_queue.put("Evt17")  # closed before the PDU's end
            return
        try:
            pdu, event = self._decode_pdu(bytestream)
        except Exception:  # noqa: BLE001 - any malformed PDU is Evt19, as pynetdicom
            logger.warning("a malformed PDU of type 0x%02X; aborting", pdu_type)
            self.event_queue.put("Evt19")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(pdu)

    def _pdu_limit(self, pdu_type: int) -> int:
        if pdu_type == _P_DATA_TF and self.state_machine.current_state in _DATA_STATES:
            return self.data_pdu_limit
        return ASSOCIATION_PDU_LIMIT

    def _decode_pdu(self, bytestream: bytearray) -> tuple[Any, str]:
        if bytestream[:1] != b"\x04" or self._pdu_handlers_bound():
            return super()._decode_pdu(bytestream)
        return DataTransfer(bytestream), "Evt10"  # Evt10: P-DATA-TF received

    def _pdu_handlers_bound(self) -> bool:
        return bool(
            self.assoc.get_handlers(evt.EVT_DATA_RECV)
            or self.assoc.get_handlers(evt.EVT_PDU_RECV)
        )

    def _wait(self) -> None:
        """Wait until the peer sent data, a primitive was queued, or idle time."""
        raw = self.socket.socket if self.socket is not None else None
        readable = [self._wake_reader] if raw is None else [raw, self._wake_reader]
        try:
            ready, _, _ = select.select(readable, [], [], _IDLE_WAIT_SECONDS)
        except (OSError, ValueError):
            # A closed socket: the loop's own check reports it (Evt17).
            time.sleep(self._run_loop_delay)
            return
        if self._wake_reader in ready:
            with contextlib.suppress(OSError):  # BlockingIOError: drained
                while self._wake_reader.recv(4096):
                    pass

    def run(self) -> None:
        # Thread.__init__ bound pynetdicom's loop as the target: run ours.
        self.run_reactor()

    def run_reactor(self) -> None:
        """pynetdicom's DUL loop (``DULServiceProvider.run_reactor``), waiting."""
        try:
            self._run_reactor()
        finally:
            self._wake_writer.close()
            self._wake_reader.close()

    def _run_reactor(self) -> None:
        self._idle_timer.start()
        self.socket = cast("AssociationSocket", self.socket)
        wait = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if wait:
                self._wait()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # One primitive to send or one PDU to read per turn, as pynetdicom,
                # but no PDU read while an event waits: the next read may
                # block, and an invalid PDU's abort (Evt19) must go out first.
                if self._process_recv_primitive():
                    pass
                elif self.event_queue.empty() and self._is_transport_event():
                    self._idle_timer.restart()
            except Exception:
                logger.exception("the DUL failed; aborting the association")
                # As pynetdicom: bypass the state machine, which may be broken.
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                with self._send_lock:
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                wait = True
                continue
            self.state_machine.do_action(event)
            wait = False
            if self.to_user_queue.qsize():
                # A release or abort request for the association thread, which
                # otherwise notices it only after its idle wait.
                self._notify_association()

    def _notify_association(self) -> None:
        messages = self.assoc.dimse.msg_queue
        with messages.not_empty:
            messages.not_empty.notify_all()


class DataTransfer:
    """A received P-DATA-TF PDU whose values are read in place.

    pynetdicom copies a PDU four times on its way to the message being
    assembled (once per slicing); for a 512 x 512 slice that is megabytes of
    copying per instance. Here each presentation data value is a view of the
    received buffer, copied once, into the message. Items are split exactly as
    pynetdicom splits them (PS3.8 9.3.5.1), malformed ones included.
    """

    def __init__(self, bytestream: bytearray) -> None:
        # Split now, as pynetdicom does while decoding: a malformed PDU then
        # fails in the DUL's read (Evt19, an abort), not in the state machine.
        view = memoryview(bytestream)
        self.values: list[tuple[int, memoryview]] = []
        offset, end = 6, len(view)
        while offset < end:
            item_length, context_id = struct.unpack_from(">IB", view, offset)
            self.values.append(
                (context_id, view[offset + 5 : offset + 4 + item_length])
            )
            offset += 4 + item_length

    def to_primitive(self) -> P_DATA:
        """The P-DATA indication, as ``P_DATA_TF.to_primitive`` makes it."""
        primitive = P_DATA()
        # pynetdicom's DIMSE reads these as bytes; a view reads the same.
        primitive.presentation_data_value_list.extend(self.values)  # type: ignore[arg-type]
        return primitive


class AcceptorAssociation(Association):
    """The association thread, asleep until a message or request has arrived."""

    def run(self) -> None:
        # Thread.__init__ bound pynetdicom's reactor as the target: run ours.
        self.run_reactor()

    def run_reactor(self) -> None:
        """pynetdicom's, after waiting for the request only while one can come.

        pynetdicom waits the whole ACSE timeout (30 s) for an A-ASSOCIATE-RQ
        even once the connection was aborted for a bad PDU; meanwhile the
        dead connection counts against the association limit, so a few bad
        connections would lock every modality out.
        """
        if self.is_acceptor and not self._started_dul:
            self.dul.start()
            self._started_dul = True
            self._dul_ready.wait()
            if not self._request_arrives():
                # The socket first: the DUL thread may be blocked reading the
                # rest of a PDU, and kill() waits for that thread to end.
                sock = self.dul.socket
                if self._server and sock is not None and sock.socket:
                    self._server.shutdown_request(sock.socket)
                self.kill()
                return
        super().run_reactor()

    def _request_arrives(self) -> bool:
        """Whether a request waits for this thread (left in the queue for it)."""
        timeout = self.acse_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        dul = self.dul
        while dul.to_user_queue.empty():
            sock = dul.socket
            if (
                sock is None
                or sock.socket is None
                or dul.state_machine.current_state == "Sta13"
                or not dul.is_alive()
            ):
                return False  # aborted or closed: no request will come
            if deadline is not None and time.monotonic() > deadline:
                return False  # timed out, as pynetdicom's own wait would
            time.sleep(_IDLE_WAIT_SECONDS)
        return True

    def _run_reactor(self) -> None:
        """pynetdicom's acceptor loop (``Association._run_reactor``), waiting."""
        self._is_paused = False
        messages = self.dimse.msg_queue
        while not self._kill:
            # pynetdicom sleeps 1 ms here before looking; waiting on the queue's
            # condition wakes as soon as the DUL thread completes a message.
            with messages.not_empty:
                if not messages._qsize():  # under the condition's own lock
                    messages.not_empty.wait(_IDLE_WAIT_SECONDS)

            # The requestor side may pause the reactor to use send_*() itself.
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast("int", context_id))

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                logger.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                logger.info("Association Aborted")
                self.dul.receive_pdu(wait=False)  # so EVT_ACSE_RECV fires
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                logger.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


def encode_c_store_response(response: C_STORE) -> bytes | None:
    """A C-STORE-RSP's command set, byte for byte as pynetdicom encodes it.

    Implicit VR little endian (PS3.7 6.3.1), elements in tag order (PS3.7
    9.3.1.2). None for a response that carries more than a status (an error
    comment, an offending element): pynetdicom encodes those.
    """
    status = response.Status
    message_id = response.MessageIDBeingRespondedTo
    if (
        status is None
        # Typed None by pynetdicom, set by handlers that return a data set.
        or getattr(response, "ErrorComment", None) is not None
        or getattr(response, "OffendingElement", None) is not None
    ):
        return None
    elements = [
        _element(0x0002, _uid(response.AffectedSOPClassUID)),
        _element(0x0100, struct.pack("<H", 0x8001)),  # C-STORE-RSP
        _element(0x0120, struct.pack("<H", message_id)),
        _element(0x0800, struct.pack("<H", 0x0101)),  # no data set
        _element(0x0900, struct.pack("<H", status)),
        _element(0x1000, _uid(response.AffectedSOPInstanceUID)),
    ]
    body = b"".join(element for element in elements if element)
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _uid(value: object) -> bytes | None:
    if value is None:
        return None
    raw = str(value).encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _element(element: int, value: bytes | None) -> bytes:
    if value is None:
        return b""  # pynetdicom leaves out what the primitive does not set
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


class OversizedDataSet(BytesIO):
    """A message's data set that grew past the cap: counted, not kept.

    Stands in for the received bytes once their total passes the cap, so the
    rest of the message is read and dropped and the request can be refused
    with a status rather than the association aborted.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        #: How many bytes of data set arrived, those dropped included.
        self.size = size

    def write(self, data: Any, /) -> int:
        count = len(memoryview(data))
        self.size += count
        return count


class MessageService(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, answering C-STOREs without pydicom.

    Building a response as a pydicom data set and encoding it twice (once for
    its group length) costs more than the rest of the answer; the command set
    is a few fixed elements.

    A message's data set is kept up to :attr:`message_limit` bytes; past that
    it becomes an :class:`OversizedDataSet`. A command set larger than any
    DIMSE command (:data:`ASSOCIATION_PDU_LIMIT`) aborts the association.
    """

    #: The largest data set kept in memory (the instance cap).
    message_limit: int = 1 << 30

    def receive_primitive(self, primitive: P_DATA) -> None:
        if self.message is None:
            self.message = DIMSEMessage()
        message = self.message
        command_bytes = data_bytes = 0
        for _, value in _values(primitive):
            if len(value) and value[0] & 1:  # a command fragment (PS3.8 E.2)
                command_bytes += len(value) - 1
            else:
                data_bytes += max(len(value) - 1, 0)
        if message.encoded_command_set.tell() + command_bytes > ASSOCIATION_PDU_LIMIT:
            logger.warning(
                "a DIMSE command set over %d bytes; aborting", ASSOCIATION_PDU_LIMIT
            )
            self.message = None
            self.dul.event_queue.put("Evt19")  # invalid: A-ABORT
            return
        data_set = message.data_set
        if (
            isinstance(data_set, BytesIO)
            and not isinstance(data_set, OversizedDataSet)
            and data_set.tell() + data_bytes > self.message_limit
        ):
            # Drop what came so far; the rest is counted as it arrives.
            message.data_set = OversizedDataSet(data_set.tell())
        super().receive_primitive(primitive)

    def send_msg(self, primitive: DimsePrimitiveType, context_id: int) -> None:
        encoded = None
        if (
            isinstance(primitive, C_STORE)
            and primitive.MessageIDBeingRespondedTo is not None
            and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT)
            and (self.maximum_pdu_size == 0 or self.maximum_pdu_size > 512)
        ):
            encoded = encode_c_store_response(primitive)
        if encoded is None:
            super().send_msg(primitive, context_id)
            return
        # One PDV: command (bit 0), last fragment (bit 1) (PS3.8 E.2).
        value = b"\x03" + encoded
        dul = self.dul
        if isinstance(dul, UpperLayer) and dul.send_data_now(
            encode_data_transfer(context_id, value)
        ):
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, value))
        dul.send_pdu(pdata)


def _values(primitive: P_DATA) -> list[tuple[int, Any]]:
    return cast("list[tuple[int, Any]]", primitive.presentation_data_value_list)


def encode_data_transfer(context_id: int, value: bytes) -> bytes:
    """A P-DATA-TF PDU of one presentation data value (PS3.8 9.3.5)."""
    item = struct.pack(">IB", len(value) + 1, context_id) + value
    return struct.pack(">BBI", 0x04, 0x00, len(item)) + item


# pynetdicom's standard handlers log every message and PDU; building those
# lines decodes each command set again and copies each data set, even when
# nothing is logged, and they would name SOP instance UIDs in our logs.
_STANDARD_HANDLERS = (
    (evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, _handlers.standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, _handlers.standard_pdu_sent_handler),
)


class AcceptorRequestHandler(RequestHandler):
    """Makes each accepted association use the classes above."""

    def _create_association(self) -> Association:
        association = super()._create_association()
        if type(association) is Association:
            association.__class__ = AcceptorAssociation
        for event, handler in _STANDARD_HANDLERS:
            association.unbind(event, handler)
        limits = cast("Limits", getattr(self.server, "radtriage_limits", Limits()))
        if type(association.dimse) is DIMSEServiceProvider:
            association.dimse.__class__ = MessageService
            cast(
                "MessageService", association.dimse
            ).message_limit = limits.message_bytes
        dul = association.dul
        if type(dul) is DULServiceProvider:
            dul.__class__ = UpperLayer
            upper = cast("UpperLayer", dul)
            upper.setup_wakeup()
            upper.data_pdu_limit = limits.data_pdu_bytes
        if type(dul.socket) is AssociationSocket:
            dul.socket.__class__ = Socket
        return association


class SupportedContexts(list[PresentationContext]):
    """The server's presentation contexts, copied cheaply for each association.

    pynetdicom gives each association a ``deepcopy`` of them: for every storage
    class in every transfer syntax, about 40 ms, paid before a modality can
    send its first instance. A context holds immutable UIDs, flags and one
    list; copying that list is all a deep copy achieves.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> list[PresentationContext]:
        return [_copy_context(context) for context in self]


def _copy_context(context: PresentationContext) -> PresentationContext:
    duplicate = copy.copy(context)
    duplicate._transfer_syntax = list(context._transfer_syntax)
    return duplicate


@dataclass(frozen=True, slots=True)
class Limits:
    """What one association may make the listener hold, in bytes.

    Attributes:
        data_pdu_bytes: the largest P-DATA-TF PDU: the maximum PDU length
            the listener offers.
        message_bytes: the largest data set kept (the instance cap).
    """

    data_pdu_bytes: int = 1 << 20
    message_bytes: int = 1 << 30


def tune_server(server: ThreadedAssociationServer, limits: Limits) -> None:
    """Make a started server accept associations with the classes above."""
    server.radtriage_limits = limits  # type: ignore[attr-defined]
    server.contexts = SupportedContexts(server.contexts)
    # socketserver makes one handler per connection from this class.
    server.RequestHandlerClass = AcceptorRequestHandler
