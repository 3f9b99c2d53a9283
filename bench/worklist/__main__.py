"""Time the worklist API and its live fan-out on 100,000 studies.

    .venv/bin/python -m bench.worklist [--studies N] [--open N] [--clients N]

Creates a fresh PostgreSQL database (BENCH_POSTGRES_URL or TEST_POSTGRES_URL,
default postgresql://postgres@127.0.0.1:5432/postgres) and uses Redis database 13
(BENCH_REDIS_URL), migrates, bulk-loads studies by COPY (20,000 not final), starts
a real web process (uvicorn, production settings: PostgreSQL + channels_redis) and:

- times the first page of ``GET /api/studies/`` over HTTP, without and with
  filters (p50/p95; target p95 < 50 ms);
- connects 200 websocket clients to ``/ws/worklist/`` and times a priority change
  from its commit to its delta's receipt by every client, beside a bare
  channels_redis ``group_send`` of the same payload to the same clients,
  interleaved in the same run (target: p95 < 150 ms and within 2x the bare one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import redis
import requests
import websockets

from bench._copy import copy_rows
from bench._postgres import create_database, drop_database
from tests.harness.processes import Processes, clean_env, free_port
from tests.harness.web import log_in, web_command

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
NULL = "\\N"
PASSWORD = secrets.token_urlsafe(16)
API_TARGET_P95_MS = 50.0
FANOUT_TARGET_P95_MS = 150.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: dict[str, list[str]]
) -> None:
    names = list(columns)
    copy_rows(conn, table, names, zip(*columns.values(), strict=True), batch=5000)


def load(url: str, n: int, n_open: int, reader_id: int) -> None:
    """COPY ``n`` studies, ``n_open`` of them not final, with worklist entries."""
    rng = np.random.default_rng(7)
    patients = max(n // 5, 1)
    now = np.datetime64("2026-03-02T09:00:00", "us")
    with psycopg.connect(url) as conn:
        _copy(
            conn,
            "triage_patient",
            {
                "patient_id": [f"P{i:07d}" for i in range(patients)],
                "issuer_of_patient_id": [""] * patients,
                "patient_name": [f"BENCH^PATIENT{i}" for i in range(patients)],
                "patient_sex": ["O"] * patients,
                "created_at": ["2026-01-01 00:00:00+00"] * patients,
            },
        )
        first_patient = conn.execute("SELECT min(id) FROM triage_patient").fetchone()
        assert first_patient is not None
        base_patient = int(first_patient[0])
        # As in production, rows arrive in time order: the studies still open
        # are the last days' (and so sit together at the end of the table).
        received = np.sort(
            now
            - (rng.uniform(3 * 86400, 365 * 86400, n) * 1e6).astype("timedelta64[us]")
        )
        received[n - n_open :] = np.sort(
            now - (rng.uniform(0, 3 * 86400, n_open) * 1e6).astype("timedelta64[us]")
        )
        open_mask = np.zeros(n, dtype=bool)
        open_mask[n - n_open :] = True
        stamps = [f"{t}+00" for t in np.datetime_as_string(received, unit="us")]
        modalities = rng.choice(
            ["CT", "CR", "MR", "US", "DX", "CT\\\\SR"],
            n,
            p=[0.4, 0.25, 0.15, 0.1, 0.05, 0.05],
        )
        classes = rng.choice(
            ["emergency", "inpatient", "outpatient", "unknown"],
            n,
            p=[0.3, 0.25, 0.4, 0.05],
        )
        open_status = rng.choice(
            ["ready", "awaiting_ai", "in_progress", "preliminary"],
            n,
            p=[0.7, 0.1, 0.15, 0.05],
        )
        status = np.where(open_mask, open_status, "final")
        claimed = [
            str(reader_id)
            if s in ("in_progress", "preliminary") and i % 4 == 0
            else NULL
            for i, s in enumerate(status)
        ]
        scores = np.round(rng.gamma(2.0, 20.0, n), 2)
        components = json.dumps(
            [{"code": "order", "points": 20.0, "reason": "urgent order"}]
        )
        _copy(
            conn,
            "triage_study",
            {
                "study_instance_uid": [f"1.2.826.0.1.3680043.99.{i}" for i in range(n)],
                "patient_id": [str(base_patient + i % patients) for i in range(n)],
                "accession_number": [f"A{i:08d}" for i in range(n)],
                "modalities": list(modalities),
                "body_part_examined": [
                    "HEAD" if m.startswith("CT") else "CHEST" for m in modalities
                ],
                "study_description": ["BENCH STUDY"] * n,
                "patient_class": list(classes),
                "order_priority": ["routine"] * n,
                "instance_count": ["1"] * n,
                "first_instance_received_at": stamps,
                "last_instance_received_at": stamps,
                "stable_at": stamps,
                "created_at": stamps,
                "updated_at": stamps,
            },
        )
        # COPY keeps the order: the new studies' ids, as their rows came.
        study_ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM triage_study WHERE study_instance_uid LIKE %s "
                "ORDER BY id",
                ("1.2.826.0.1.3680043.99.%",),
            )
        ]
        _copy(
            conn,
            "inference_studyscoring",
            {
                "study_id": study_ids,
                "ai_status": ["scored"] * n,
                "ai_status_reason": [""] * n,
            },
        )
        _copy(
            conn,
            "worklist_worklistentry",
            {
                "study_id": study_ids,
                "reading_status": list(status),
                "claimed_by_id": claimed,
                "priority_score": [str(s) for s in scores],
                "priority_components": [components] * n,
                "version": ["1"] * n,
                "shown_digest": [""] * n,
                "ai_flagged": [
                    "true" if int(i) % 10 == 0 else "false" for i in study_ids
                ],
                "finalized_at": [
                    NULL if o else s for o, s in zip(open_mask, stamps, strict=True)
                ],
            },
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def time_api(
    base: str, session: requests.Session, repeat: int
) -> dict[str, list[float]]:
    queries = {
        "no filter": "",
        "modality=CT": "modality=CT",
        "emergency + AI flagged": "patient_class=emergency&ai_flagged=true",
        "in progress + mine": "status=in_progress&mine=true",
    }
    results: dict[str, list[float]] = {}
    for name, query in queries.items():
        url = f"{base}/api/studies/?{query}"
        for _ in range(5):  # warm
            session.get(url, timeout=30).raise_for_status()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = session.get(url, timeout=30)
            times.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
        results[name] = times
    return results


async def fan_out(
    base: str, cookie: str, clients: int, rounds: int, study_ids: list[int]
) -> tuple[list[float], list[float]]:
    """Per-client latencies (ms): commit -> receipt, and bare group_send -> receipt."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from django.db import transaction
    from django.utils import timezone

    from triage import services as triage_services
    from triage.vocabulary import OrderPriority, PatientClass
    from worklist import broadcast

    ws_url = base.replace("http://", "ws://") + "/ws/worklist/"
    received: list[list[float]] = [[] for _ in range(clients)]
    sockets = []
    for _ in range(clients):
        sockets.append(
            await websockets.connect(
                ws_url,
                additional_headers={"Cookie": cookie, "Origin": base},
                max_queue=None,
            )
        )

    async def reader(index: int, socket: Any) -> None:
        async for message in socket:
            if json.loads(message).get("type") == "worklist.delta":
                received[index].append(time.time())

    readers = [asyncio.create_task(reader(i, s)) for i, s in enumerate(sockets)]
    await asyncio.sleep(1.0)
    layer = get_channel_layer()
    assert layer is not None

    def commit_change(study_id: int, flip: bool) -> float:
        marks: list[float] = []
        with transaction.atomic():
            # Registered first, so it runs first at commit: the commit's time.
            transaction.on_commit(lambda: marks.append(time.time()))
            triage_services.set_order_context(
                study_id,
                patient_class=PatientClass.EMERGENCY,
                order_priority=OrderPriority.STAT if flip else OrderPriority.URGENT,
                now=timezone.now(),
            )
        return marks[0]

    async def bare_send(study_id: int) -> float:
        seq, epoch = await sync_to_async(broadcast.worklist_deltas.next_seq)()
        delta = {
            "type": "worklist.delta",
            "seq": seq,
            "epoch": epoch,
            "upserted": [{"id": study_id, "version": 1, "priority_score": 99.0}],
            "removed": [],
        }
        start = time.time()
        await layer.group_send("worklist", {"type": "worklist.delta", "delta": delta})
        return start

    async def wait_all(count: int) -> None:
        deadline = time.monotonic() + 10
        while any(len(r) < count for r in received):
            if time.monotonic() > deadline:
                missing = sum(1 for r in received if len(r) < count)
                raise RuntimeError(f"{missing} clients missed a delta")
            await asyncio.sleep(0.002)

    committed: list[float] = []
    bare: list[float] = []
    expected = 0
    for i in range(rounds):
        study_id = study_ids[i % len(study_ids)]
        start = await sync_to_async(commit_change, thread_sensitive=False)(
            study_id, i % 2 == 0
        )
        expected += 1
        await wait_all(expected)
        committed += [(r[expected - 1] - start) * 1000 for r in received]
        await asyncio.sleep(0.05)
        start = await bare_send(study_id)
        expected += 1
        await wait_all(expected)
        bare += [(r[expected - 1] - start) * 1000 for r in received]
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    for socket in sockets:
        await socket.close()
    return committed, bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worklist")
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database (its URL is printed)"
    )
    args = parser.parse_args(argv)

    name, url = create_database()
    work = Path("/tmp") / name
    processes = Processes(work)
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
        env = clean_env(
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            SECRET_KEY=secrets.token_urlsafe(50),
            RADTRIAGE_VAR_DIR=str(work),
            DATABASE_POOL_MAX="20",
        )
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "radtriage.settings"
        import django

        django.setup()
        from django.core.management import call_command

        from triage import services
        from triage.roles import Role

        call_command("migrate", "--noinput", verbosity=0)
        reader = services.set_role_user("bench_reader", Role.RADIOLOGIST, PASSWORD)
        start = time.perf_counter()
        load(url, args.studies, args.open, int(reader.pk))
        print(
            f"loaded {args.studies:,} studies ({args.open:,} not final) "
            f"in {time.perf_counter() - start:.1f} s"
        )

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web = processes.start("web", web_command(port, log_level="warning"), env=env)
        web.wait_for_http(f"{base}/healthz")
        session = log_in(base, "bench_reader", PASSWORD)

        api = time_api(base, session, args.requests)
        print("\nFirst page of GET /api/studies/ (50 rows, HTTP, ms):")
        print(f"  {'query':<28} {'p50':>7} {'p95':>7}")
        api_ok = True
        for query, times in api.items():
            p95 = percentile(times, 95)
            api_ok &= p95 < API_TARGET_P95_MS
            print(f"  {query:<28} {percentile(times, 50):7.1f} {p95:7.1f}")
        print(
            f"  target p95 < {API_TARGET_P95_MS:.0f} ms: "
            f"{'met' if api_ok else 'NOT met'}"
        )

        from worklist.queries import not_final

        study_ids = list(not_final().order_by("pk").values_list("pk", flat=True)[:50])
        cookie = f"sessionid={session.cookies['sessionid']}"
        committed, bare = asyncio.run(
            fan_out(base, cookie, args.clients, args.rounds, study_ids)
        )
        c50, c95 = percentile(committed, 50), percentile(committed, 95)
        b50, b95 = percentile(bare, 50), percentile(bare, 95)
        print(
            f"\nFan-out to {args.clients} websocket clients via channels_redis "
            f"({args.rounds} rounds each, ms):"
        )
        print(f"  {'path':<36} {'p50':>7} {'p95':>7} {'max':>7}")
        print(
            f"  {'priority change, commit -> receipt':<36} {c50:7.1f} {c95:7.1f} "
            f"{max(committed):7.1f}"
        )
        print(
            f"  {'bare group_send -> receipt':<36} {b50:7.1f} {b95:7.1f} "
            f"{max(bare):7.1f}"
        )
        ratio = c95 / b95 if b95 else float("inf")
        fan_ok = c95 < FANOUT_TARGET_P95_MS and ratio <= 2.0
        print(
            f"  p95 ratio to bare: {ratio:.2f}x; target p95 < "
            f"{FANOUT_TARGET_P95_MS:.0f} ms and <= 2x: {'met' if fan_ok else 'NOT met'}"
        )
        return 0 if api_ok and fan_ok else 1
    finally:
        # SIGTERM, then SIGKILL after a grace period: never raises, never hangs.
        processes.stop_all()
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"database kept: {url}")
        else:
            drop_database(name)


if __name__ == "__main__":
    sys.exit(main())
