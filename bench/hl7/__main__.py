"""Messages per second and ACK latency through the HL7 listener.

    .venv/bin/python -m bench.hl7 [--studies N] [--repeat N] [--postgres]

Starts ``manage.py hl7_listener`` (embedded mode: SQLite in a temporary folder;
with ``--postgres`` a fresh PostgreSQL database on BENCH_POSTGRES_URL or
TEST_POSTGRES_URL, dropped afterwards) and, as the baseline,
python-hl7's own asyncio MLLP server answering each message with the library's
ACK and storing nothing (bench/hl7/echo_server.py). Both are fed by python-hl7's
asyncio MLLP client the same traffic: per study an ORM^O01 then an ORU^R01, on
one connection and on four at once, each message waiting for its ACK (original
mode, as interface engines send). Printed per target: messages/s, ACK latency
p50/p95 (measured at the client: from the frame sent to its ACK read, which
bounds receive-to-ACK from above), and the ratio listener/baseline. Targets:
>= 500 messages/s on one connection, ACK p95 < 20 ms.

The listener runs the product's own handlers: each study's images are in the
database before the bench starts (as when the RIS reports on what was
imaged), so the ORM links the order to its study and sets its order context,
and the ORU stores the report, ends reading and labels findings. The figures
are framing, parsing, storing (one transaction) and applying with the outcome
(a second one). ``--no-op`` swaps in handlers that apply nothing
(bench/hl7/handlers.py), which isolates the transport's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hl7.mllp import open_hl7_connection

from bench._postgres import create_database, drop_database
from tests.harness.processes import Processes, clean_env, free_port, run_manage
from tests.triage import hl7_samples as samples

TARGET_RATE = 500.0
TARGET_P95_MS = 20.0
WARM_UP_STUDIES = 50


@dataclass(frozen=True)
class Figures:
    rate: float
    p50_ms: float
    p95_ms: float
    answered: int
    accepted: int


def _accession(run: str, i: int) -> str:
    return f"B{run}{i:06d}"


#: Makes the studies the reports are of (the images "arrived"), one per line
#: of standard input: accession numbers.
_MAKE_STUDIES = """
import sys
from triage.models import Patient, Study
patient, _ = Patient.objects.get_or_create(
    patient_id="MRN12345", issuer_of_patient_id="GENHOSP"
)
for index, accession in enumerate(sys.stdin.read().split()):
    Study.objects.create(
        study_instance_uid=f"2.25.{9000000 + index}",
        patient=patient,
        accession_number=accession,
        modalities="CT",
    )
"""


def _runs(args: argparse.Namespace) -> list[str]:
    return [f"l{c}{r}" for r in range(args.repeat) for c in (1, 4)]


def _messages(run: str, studies: int) -> list[str]:
    out = []
    for i in range(studies):
        accession = _accession(run, i)
        out.append(
            samples.orm(control_id=f"O{run}{i:06d}").replace("ACC3003", accession)
        )
        out.append(
            samples.oru(control_id=f"R{run}{i:06d}").replace("ACC3003", accession)
        )
    return out


async def _connection(port: int, texts: list[str], latencies: list[float]) -> int:
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    accepted = 0
    try:
        for text in texts:
            frame = text.encode()
            start = time.perf_counter()
            writer.writeblock(frame)
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), 30)
            latencies.append(time.perf_counter() - start)
            accepted += str(ack.segment("MSA")(1)) == "AA"
    finally:
        writer.close()
    return accepted


async def _feed(port: int, texts: list[str], connections: int) -> Figures:
    # Each connection carries whole studies (ORM then ORU), in order.
    pairs = [texts[i : i + 2] for i in range(0, len(texts), 2)]
    shares = [
        [m for pair in pairs[c::connections] for m in pair] for c in range(connections)
    ]
    latencies: list[float] = []
    start = time.perf_counter()
    accepted = await asyncio.gather(
        *(_connection(port, share, latencies) for share in shares)
    )
    elapsed = time.perf_counter() - start
    ms = sorted(v * 1000 for v in latencies)
    return Figures(
        rate=len(latencies) / elapsed,
        p50_ms=statistics.median(ms),
        p95_ms=ms[min(len(ms) - 1, int(0.95 * len(ms)))],
        answered=len(latencies),
        accepted=sum(accepted),
    )


def _best(figures: list[Figures]) -> Figures:
    # The median run by rate: one figure per target that a hiccup does not set.
    return sorted(figures, key=lambda f: f.rate)[len(figures) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument(
        "--no-op", action="store_true", help="handlers that apply nothing"
    )
    args = parser.parse_args()
    if args.postgres:
        with _postgres_database() as url:
            _run(args, url)
    else:
        _run(args, "")


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    name, url = create_database("radtriage_bench_hl7")
    try:
        yield url
    finally:
        drop_database(name)


def _run(args: argparse.Namespace, database_url: str) -> None:

    work = Path(tempfile.mkdtemp(prefix="bench-hl7-"))
    listener_port, echo_port = free_port(), free_port()
    env = clean_env(
        RADTRIAGE_VAR_DIR=str(work / "var"),
        RADTRIAGE_HL7_PORT=str(listener_port),
        PYTHONUNBUFFERED="1",
    )
    if args.no_op:
        env["RADTRIAGE_HL7_HANDLER_MODULES"] = "bench.hl7.handlers"
    if database_url:
        env["DATABASE_URL"] = database_url
        env["SECRET_KEY"] = secrets.token_urlsafe(50)
    database = "PostgreSQL" if database_url else "SQLite (embedded mode)"
    run_manage(env, "migrate", "--noinput", timeout=600)
    accessions = [
        _accession(run, i)
        for run, count in [("Wl", WARM_UP_STUDIES)]
        + [(run, args.studies) for run in _runs(args)]
        for i in range(count)
    ]
    run_manage(
        env, "shell", "-c", _MAKE_STUDIES, input_text="\n".join(accessions), timeout=900
    )
    print(
        f"HL7 bench: {args.studies} studies (ORM^O01 + ORU^R01 each), "
        f"{args.repeat} repeats, database {database}",
        flush=True,
    )
    print(
        "handlers: "
        + (
            "no-op (bench/hl7/handlers.py): the transport alone"
            if args.no_op
            else "the product's (orders, reports) on studies already imaged"
        ),
        flush=True,
    )
    results: dict[tuple[str, int], list[Figures]] = {}
    with Processes(work, env) as processes:
        listener = processes.start(
            "hl7-listener", [sys.executable, "manage.py", "hl7_listener"]
        )
        echo = processes.start(
            "echo", [sys.executable, "-m", "bench.hl7.echo_server", str(echo_port)]
        )
        listener.wait_for_log("HL7 listener started", timeout=120)
        echo.wait_for_log("echo server on", timeout=60)
        targets = {"listener": listener_port, "python-hl7 echo": echo_port}
        for name, port in targets.items():
            asyncio.run(_feed(port, _messages(f"W{name[0]}", WARM_UP_STUDIES), 1))
        for repeat in range(args.repeat):
            for connections in (1, 4):
                # Interleaved per repeat, so both see the same machine load.
                for name, port in targets.items():
                    run = f"{name[0]}{connections}{repeat}"
                    figures = asyncio.run(
                        _feed(port, _messages(run, args.studies), connections)
                    )
                    results.setdefault((name, connections), []).append(figures)
    for connections in (1, 4):
        ours = _best(results[("listener", connections)])
        base = _best(results[("python-hl7 echo", connections)])
        print(f"\n{connections} connection(s):")
        for name, fig in (("listener", ours), ("python-hl7 echo", base)):
            print(
                f"  {name:16} {fig.rate:8.0f} msg/s   ACK p50 {fig.p50_ms:6.2f} ms"
                f"   p95 {fig.p95_ms:6.2f} ms   ({fig.accepted}/{fig.answered} AA)"
            )
        print(f"  ratio listener/echo: {ours.rate / base.rate:.2f}")
    one = _best(results[("listener", 1)])
    print(
        f"\ntargets: >= {TARGET_RATE:.0f} msg/s on one connection: "
        f"{'met' if one.rate >= TARGET_RATE else 'NOT met'} ({one.rate:.0f}); "
        f"ACK p95 < {TARGET_P95_MS:.0f} ms: "
        f"{'met' if one.p95_ms < TARGET_P95_MS else 'NOT met'} ({one.p95_ms:.2f} ms)"
    )
    if one.accepted != one.answered:
        print("some messages were not accepted (AA): see the listener log", flush=True)


if __name__ == "__main__":
    main()
