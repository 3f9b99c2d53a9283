"""The HL7 v2 listener over MLLP: python-hl7's asyncio server and streams.

One event loop frames every connection; storing and applying a message runs in
one of a few database threads (``RADTRIAGE_HL7_DATABASE_THREADS``), so a slow
database holds up only the connections whose messages wait for it. Messages on
one connection are answered in order, one at a time, as MLLP's original mode
expects.

What a hostile or broken peer can do and what happens:

* a frame that is not HL7 (no MSH, a batch, an unsupported type): stored as
  rejected and answered AR; the connection stays open for the next one;
* bytes outside any frame: dropped up to the next start block (the library's
  ``readblock`` would drop the next valid frame with them, so frames are cut
  here with its constants: everything before the last start block goes);
* a frame longer than ``RADTRIAGE_HL7_MAX_MESSAGE_KB``: answered AR, the
  connection closed (its end cannot be found without reading it all);
* a half frame and a disconnect: nothing to answer; nothing stored;
* a database that cannot store the message: no ACK, the connection closed, so
  that the sender sends it again (the library's default timeout and resend).

Logs name the stored row, control id, type and outcome, never message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone
from hl7.mllp import start_hl7_server
from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK

from triage.hl7 import dispatch
from triage.hl7.dispatch import AckCode, build_ack
from triage.hl7.messages import ERR_SEGMENT_SEQUENCE
from triage.hl7.services import Receipt, receive_message, replay_pending

logger = logging.getLogger(__name__)

FRAME_END = END_BLOCK + CARRIAGE_RETURN
SHUTDOWN_GRACE_SECONDS = 30.0


def _decode(block: bytes) -> str:
    # HL7 2.x is mostly ASCII; 2.8 prefers UTF-8; older sites send Latin-1,
    # which decodes any byte, so nothing received is refused for its charset.
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    # NUL is never HL7, and PostgreSQL cannot store it in text: a frame with
    # one would fail its storing, go unanswered and be resent for ever.
    return text.replace("\x00", "\ufffd")


def _receive(text: str, remote_host: str) -> Receipt:
    """Store and apply one message in a database thread.

    Each of the listener's few database threads keeps its connection from one
    message to the next (opening one per message cost more than the work); a
    connection that failed is closed, so the next message opens a fresh one.
    """
    try:
        return receive_message(text, remote_host=remote_host, now=timezone.now())
    except BaseException:
        connections.close_all()
        raise


def _replay_pending() -> int:
    try:
        return len(replay_pending())
    finally:
        connections.close_all()


class _OversizeFrame(Exception):
    pass


async def _read_frame(reader: Any) -> bytes | None:
    """The next frame's content; None for bytes that were not in a frame.

    Raises:
        asyncio.IncompleteReadError: the peer closed (mid-frame or not).
        _OversizeFrame: no frame end within the reader's limit.
    """
    try:
        block: bytes = await reader.readuntil(FRAME_END)
    except asyncio.LimitOverrunError:
        raise _OversizeFrame from None
    start = block.rfind(START_BLOCK)
    if start < 0:
        return None
    return block[start + 1 : -len(FRAME_END)]


class HL7Listener:
    """An MLLP server on ``host:port`` for the life of one event loop."""

    def __init__(
        self, host: str, port: int, *, max_bytes: int, database_threads: int = 4
    ) -> None:
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.database_threads = database_threads
        self._server: asyncio.Server | None = None
        # Bounded: each thread holds a database connection (a pool's share).
        self._database = ThreadPoolExecutor(
            max_workers=database_threads, thread_name_prefix="hl7-db"
        )
        self._idle: set[asyncio.Task[Any]] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Apply what a crash left pending, then bind and listen.

        Returns once connections are accepted.

        Raises:
            CommandError: the address cannot be listened on (in use, say): the
                listener's command, or ``serve``, stops with this message.
        """
        replayed = await asyncio.get_running_loop().run_in_executor(
            self._database, _replay_pending
        )
        if replayed:
            logger.info("HL7: %s pending message(s) replayed at start", replayed)
        try:
            self._server = await start_hl7_server(
                self._on_connection, self.host, self.port, limit=self.max_bytes
            )
        except OSError as exc:
            raise CommandError(
                f"the HL7 listener cannot listen on {self.host}:{self.port}: "
                f"{exc.strerror or exc} (RADTRIAGE_HL7_HOST, RADTRIAGE_HL7_PORT)"
            ) from exc
        logger.info("HL7 listener on %s:%s", self.host, self.port)

    async def close(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop accepting, answer the messages in flight, close every connection."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in list(self._idle):
            task.cancel()
        if self._busy:
            await asyncio.wait(list(self._busy), timeout=grace)
        for task in list(self._busy | self._idle):
            task.cancel()
        # Django's connections are per thread, so they are closed from the
        # pool's threads (best effort: a pool thread may take two of these).
        closing = [
            asyncio.get_running_loop().run_in_executor(
                self._database, connections.close_all
            )
            for _ in range(self.database_threads)
        ]
        await asyncio.wait(closing, timeout=5)
        self._database.shutdown(wait=False, cancel_futures=True)

    async def _on_connection(self, reader: Any, writer: Any) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - a callback of a running server
        peer = writer.get_extra_info("peername")
        remote_host = str(peer[0]) if peer else ""
        try:
            while not self._stopping:
                self._idle.add(task)
                try:
                    frame = await _read_frame(reader)
                finally:
                    self._idle.discard(task)
                if frame is None:
                    logger.info("HL7: bytes outside an MLLP frame discarded")
                    continue
                self._busy.add(task)
                try:
                    receipt = await asyncio.get_running_loop().run_in_executor(
                        self._database, _receive, _decode(frame), remote_host
                    )
                finally:
                    self._busy.discard(task)
                writer.writeblock(receipt.ack.encode("utf-8"))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the peer closed, perhaps in the middle of a frame
        except _OversizeFrame:
            logger.warning("HL7: frame over %s bytes refused", self.max_bytes)
            ack = build_ack(
                None,
                AckCode.REJECT,
                now=timezone.now(),
                text=f"message longer than {self.max_bytes} bytes",
                error_code=ERR_SEGMENT_SEQUENCE,
            )
            with contextlib.suppress(ConnectionError):
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # noqa: BLE001 - one connection's end, not the listener's
            # Unstored (a DatabaseError, most likely): no ACK, so that the sender
            # sends it again. The type only: a database error's text can quote
            # the values of the message.
            logger.error(
                "HL7: connection closed unanswered after %s", type(exc).__name__
            )
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


def configured_listener(
    host: str | None = None, port: int | None = None
) -> HL7Listener:
    """A listener from the settings, with the configured handler modules loaded."""
    dispatch.load_handler_modules(settings.RADTRIAGE_HL7_HANDLER_MODULES)
    return HL7Listener(
        host or settings.RADTRIAGE_HL7_HOST,
        port or settings.RADTRIAGE_HL7_PORT,
        max_bytes=settings.RADTRIAGE_HL7_MAX_MESSAGE_BYTES,
        database_threads=settings.RADTRIAGE_HL7_DATABASE_THREADS,
    )


class ThreadedListener:
    """The listener on an event loop of its own thread (the embedded ``serve``)."""

    def __init__(self, listener: HL7Listener) -> None:
        self.listener = listener
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hl7-listener", daemon=True
        )

    def start(self) -> None:
        """Start the thread and bind; raises what binding raised."""
        self._thread.start()
        try:
            started = asyncio.run_coroutine_threadsafe(
                self.listener.start(), self._loop
            )
            started.result(60)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            raise

    def shutdown(self) -> None:
        """Answer the messages in flight, then stop the thread."""
        future = asyncio.run_coroutine_threadsafe(self.listener.close(), self._loop)
        with contextlib.suppress(TimeoutError):
            future.result(SHUTDOWN_GRACE_SECONDS + 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def start_listener() -> ThreadedListener:
    """Start the configured listener in a thread of this process."""
    threaded = ThreadedListener(configured_listener())
    threaded.start()
    return threaded
