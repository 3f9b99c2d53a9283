"""Run the whole product in one process: the embedded mode.

Web (uvicorn), DICOM listener, Celery worker and scheduler share this process,
its in-memory broker and its channel layer. Production runs each separately.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import uvicorn
from celery.beat import EmbeddedService
from celery.worker import state as worker_state
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from radtriage import access_log
from radtriage.celery import app as celery_app
from triage.ingest.scp import start_listener
from worklist.demo import feed_demo

WORKER_START_TIMEOUT_SECONDS = 30
WORKER_STOP_TIMEOUT_SECONDS = 120


class Command(BaseCommand):
    help = "Run web, DICOM listener, worker and scheduler in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.RADTRIAGE_WEB_HOST)
        parser.add_argument("--port", type=int, default=settings.RADTRIAGE_WEB_PORT)
        parser.add_argument(
            "--no-listener", action="store_true", help="do not start the DICOM listener"
        )
        parser.add_argument(
            "--demo-feed",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="send a synthetic study through the ingest path every SECONDS "
            "(the demo; 0, the default, sends none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED:
            raise CommandError(
                "serve is the embedded mode; with REDIS_URL set run web, worker, "
                "beat and listener as separate processes (see README)"
            )
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
        feed_stop = threading.Event()
        if options["demo_feed"] > 0:
            threading.Thread(
                target=feed_demo,
                args=(feed_stop,),
                kwargs={"interval_seconds": options["demo_feed"], "slices": 16},
                name="demo-feed",
                daemon=True,
            ).start()

        # uvicorn re-raises the signal after its graceful stop, which would kill
        # the worker mid-task; a no-op handler installed first prevents that.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        self.stdout.write(
            f"RadTriage serving on http://{options['host']}:{options['port']}/",
        )
        self.stdout.flush()
        config = uvicorn.Config(
            "radtriage.asgi:application",
            host=options["host"],
            port=options["port"],
            log_level="info",
            lifespan="off",
        )
        # After uvicorn configured its loggers: no query strings in the log.
        access_log.install()
        uvicorn.Server(config).run()

        feed_stop.set()
        beat.stop()
        if listener is not None:
            listener.shutdown()
        # Warm stop: finish running tasks first.
        worker_state.should_stop = 0  # type: ignore[assignment]
        worker_thread.join(WORKER_STOP_TIMEOUT_SECONDS)
        self.stdout.write("RadTriage stopped")
