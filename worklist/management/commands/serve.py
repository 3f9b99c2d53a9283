"""Run the whole product in one process: the embedded mode.

Web (uvicorn), DICOM listener, Celery worker and scheduler share this process,
its in-memory broker and its channel layer. Production runs each separately.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import uvicorn
from celery.beat import EmbeddedService
from celery.worker import state as worker_state
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference import runtime, startup
from radtriage import access_log
from radtriage.celery import app as celery_app
from triage.hl7.listener import start_listener as start_hl7_listener
from triage.ingest.scp import start_listener

WORKER_START_TIMEOUT_SECONDS = 30
WORKER_STOP_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Extras:
    """What a command built on ``serve`` started (the demo's ``demo_serve``).

    ``announce`` is printed once the web server accepts connections; ``stop`` is
    called after it stopped, before the scheduler and the worker.
    """

    announce: tuple[str, ...] = ()
    stop: Callable[[], None] | None = None


class Command(BaseCommand):
    help = "Run web, DICOM listener, worker and scheduler in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.RADTRIAGE_WEB_HOST)
        parser.add_argument("--port", type=int, default=settings.RADTRIAGE_WEB_PORT)
        parser.add_argument(
            "--no-listener",
            action="store_true",
            help="do not start the DICOM and HL7 listeners",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED:
            raise CommandError(
                "serve is the embedded mode; with REDIS_URL set run web, worker, "
                "beat and listener as separate processes (see README)"
            )
        try:
            # Before any work is accepted: the models open here, in this process.
            startup.check_inference_device()
            startup.load_sessions()
        except runtime.InferenceDeviceError as exc:
            raise CommandError(str(exc)) from exc
        ready = threading.Event()
        worker = celery_app.WorkController(
            pool="threads",
            concurrency=settings.RADTRIAGE_EMBEDDED_WORKERS,
            hostname="embedded@localhost",
            queues=["urgent", "routine"],
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=lambda consumer: ready.set(),
        )
        worker_thread = threading.Thread(
            target=worker.start, name="celery-worker", daemon=True
        )
        worker_thread.start()
        if not ready.wait(WORKER_START_TIMEOUT_SECONDS):
            raise CommandError("the embedded Celery worker did not start")
        # In-memory schedule in a thread: a forked beat could not reach memory://.
        beat = EmbeddedService(
            celery_app, thread=True, scheduler_cls="celery.beat:Scheduler"
        )
        beat.start()  # type: ignore[union-attr]  # thread=True: a _Threaded
        listener = None if options["no_listener"] else start_listener(block=False)
        hl7_listener = (
            start_hl7_listener()
            if settings.RADTRIAGE_HL7_IN_SERVE and not options["no_listener"]
            else None
        )
        extras = self.start_extras(options)

        # uvicorn re-raises the signal after its graceful stop, which would kill
        # the worker mid-task; a no-op handler installed first prevents that.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(f"RadTriage serving on {url}")
        self.stdout.flush()
        server = uvicorn.Server(
            uvicorn.Config(
                "radtriage.asgi:application",
                host=options["host"],
                port=options["port"],
                log_level="info",
                lifespan="off",
            )
        )
        if extras.announce:
            # Printed once the server is up, after its start-up logs, so that
            # the URL and the logins are not lost among them.
            lines = [f"RadTriage is up on {url}", *extras.announce]
            threading.Thread(
                target=_announce_when_started,
                args=(server, lines, self.stdout),
                name="announce",
                daemon=True,
            ).start()
        # After uvicorn configured its loggers: no query strings in the log.
        access_log.install()
        server.run()

        if extras.stop is not None:
            extras.stop()
        beat.stop()
        if listener is not None:
            listener.shutdown()
        if hl7_listener is not None:
            hl7_listener.shutdown()
        # Warm stop: finish running tasks first.
        worker_state.should_stop = 0  # type: ignore[assignment]
        worker_thread.join(WORKER_STOP_TIMEOUT_SECONDS)
        self.stdout.write("RadTriage stopped")

    def start_extras(self, options: dict[str, Any]) -> Extras:
        """Start more work once the worker, scheduler and listener run.

        The hook of commands built on this one (the demo app's ``demo_serve``
        seeds and feeds studies here), so that production code never imports the
        demo. Plain ``serve`` starts nothing.
        """
        return Extras()


def _announce_when_started(
    server: uvicorn.Server, lines: list[str], out: TextIO
) -> None:
    """Write ``lines`` once ``server`` accepts connections (never if it fails)."""
    while not server.started:
        if server.should_exit:
            return
        threading.Event().wait(0.05)
    out.write("\n".join(lines) + "\n")
    out.flush()
