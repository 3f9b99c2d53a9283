"""Ingest throughput: RadTriage against Orthanc and storescp, in one run.

    ./run bench ingest [--slices 200] [--size 512] [--repeat 3]
    (or .venv/bin/python -m bench.ingest ...)

Sends the same synthetic CT head study (200 slices of 512 x 512 by default) with
dcmtk's storescu to

* RadTriage's ``manage.py dicom_listener`` in the production setup (PostgreSQL,
  a fresh database; Redis), success only after fsync and commit;
* Orthanc (default SQLite index, its storage fsynced), on loopback;
* dcmtk's ``storescp +B`` (writes the stream as received: the ceiling);

then stores the same files by STOW-RS, one multipart request, to RadTriage's web
process (uvicorn) and to Orthanc's DICOMweb plugin. Every dcmtk program runs with
TCP_NODELAY=1. Each receiver, once started, first stores a small other study
(untimed): a receiver in service is warm (connections, caches, prepared
statements), and the figure is its steady state. Prints instances/s and MB/s
(median of the repeats), the ratios, and the listener's peak memory while
receiving.

Needs PostgreSQL (``--postgres-url``, default $BENCH_POSTGRES_URL,
$TEST_POSTGRES_URL or the local server) and Redis (``--redis-url``), and the
Debian packages dcmtk, orthanc and orthanc-dicomweb.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from bench._postgres import ADMIN_URL, create_database, drop_database
from tests.harness.dicomweb import stow_body
from tests.harness.processes import ManagedProcess, clean_env, free_port, run_manage
from tests.harness.web import web_command

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / "bench" / "out"
DCMTK_ENV = {"TCP_NODELAY": "1"}
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
TARGET_RATIO = 1.0
TARGET_PEAK_MB = 300
WARMUP_SLICES = 5


@dataclass
class Run:
    seconds: list[float]

    def median(self) -> float:
        return statistics.median(self.seconds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=ADMIN_URL,
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    programs = {
        name: shutil.which(name) for name in ("storescu", "storescp", "Orthanc")
    }
    missing = [name for name, path in programs.items() if path is None]
    if missing or not DICOMWEB_PLUGIN.exists():
        if not DICOMWEB_PLUGIN.exists():
            missing.append(str(DICOMWEB_PLUGIN))
        print(f"missing: {', '.join(missing)}")
        print("install the Debian packages dcmtk, orthanc and orthanc-dicomweb")
        return 2

    files = study_files(args.seed, args.slices, args.size)
    warmup = study_files(args.seed + 1, WARMUP_SLICES, args.size)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    count = len(files)
    print(
        f"study: {count} CT slices of {args.size}x{args.size}, {megabytes:.1f} MB "
        f"(seed {args.seed}); {args.repeat} repeats, medians shown\n"
    )
    work = Path(tempfile.mkdtemp(prefix="radtriage-bench-ingest-"))
    runs = {
        name: Run([])
        for name in (
            "storescp",
            "orthanc",
            "radtriage",
            "stow-orthanc",
            "stow-radtriage",
        )
    }
    peaks: list[float] = []
    try:
        with radtriage(args.postgres_url, args.redis_url, work) as target:
            for repeat in range(args.repeat):
                with storescp(work / f"storescp-{repeat}") as port:
                    storescu(port, "ANY", warmup)
                    runs["storescp"].seconds.append(storescu(port, "ANY", files))
                with orthanc(work / f"orthanc-{repeat}") as (port, http_url):
                    storescu(port, "ORTHANC", warmup)
                    runs["orthanc"].seconds.append(storescu(port, "ORTHANC", files))
                with orthanc(work / f"orthanc-stow-{repeat}") as (port, http_url):
                    stow(f"{http_url}/dicom-web/studies", warmup, {})
                    runs["stow-orthanc"].seconds.append(
                        stow(f"{http_url}/dicom-web/studies", files, {})
                    )
                target.reset()
                with target.listener() as (port, peak):
                    storescu(port, "RADTRIAGE", warmup)
                    runs["radtriage"].seconds.append(storescu(port, "RADTRIAGE", files))
                    target.check_stored(len(warmup) + count)
                peaks.append(peak())
                target.reset()
                with target.web() as base_url:
                    token = {"Authorization": f"Token {target.token}"}
                    stow(f"{base_url}/dicomweb/studies", warmup, token)
                    runs["stow-radtriage"].seconds.append(
                        stow(f"{base_url}/dicomweb/studies", files, token)
                    )
                    target.check_stored(len(warmup) + count)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(runs, count, megabytes, max(peaks))
    return 0


def study_files(seed: int, slices: int, size: int) -> list[Path]:
    """The synthetic study as Part 10 files, generated once and cached."""
    folder = CACHE / f"ingest-ct-{seed}-{slices}x{size}"
    if not (folder / "complete").exists():
        sys.path.insert(0, str(REPO_ROOT))
        from demo.synthetic import make_ct_head_study, write_study

        print(f"generating the synthetic study in {folder} ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        write_study(make_ct_head_study(seed, slices=slices, size=size), folder)
        (folder / "complete").touch()
    return sorted(folder.glob("*.dcm"))


@contextmanager
def process(
    args: list[str], log: Path, env: dict[str, str], port: int
) -> Iterator[ManagedProcess]:
    """A receiver, started and listening on ``port``; stopped on the way out."""
    with ManagedProcess.start(log.stem, args, env=env, log_path=log) as receiver:
        receiver.wait_for_port(port)
        yield receiver


def storescu(port: int, called_ae: str, files: list[Path]) -> float:
    """Seconds to send every file on one association, as a modality does."""
    command = ["storescu", "-aec", called_ae, "127.0.0.1", str(port), *map(str, files)]
    started = time.perf_counter()
    result = subprocess.run(
        command, env={**os.environ, **DCMTK_ENV}, capture_output=True, timeout=600
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or b"Failed" in result.stderr:
        raise SystemExit(f"storescu to {called_ae} failed:\n{result.stderr.decode()}")
    return elapsed


def stow(url: str, files: list[Path], headers: dict[str, str]) -> float:
    """Seconds to store every file in one STOW-RS request."""
    boundary = secrets.token_hex(16)
    body = stow_body(files, boundary)
    started = time.perf_counter()
    response = requests.post(
        url,
        data=body,
        headers={
            **headers,
            "Content-Type": f'multipart/related; type="application/dicom"; '
            f"boundary={boundary}",
            "Accept": "application/dicom+json",
        },
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(
            f"STOW-RS to {url}: {response.status_code} {response.text[:500]}"
        )
    return elapsed


@contextmanager
def storescp(folder: Path) -> Iterator[int]:
    folder.mkdir(parents=True)
    port = free_port()
    env = {**os.environ, **DCMTK_ENV}
    with process(
        ["storescp", "+B", "-od", str(folder), str(port)], folder / "log", env, port
    ):
        yield port


@contextmanager
def orthanc(folder: Path) -> Iterator[tuple[int, str]]:
    folder.mkdir(parents=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAlwaysAllowStore": True,
        "DicomCheckCalledAet": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    env = {**os.environ, **DCMTK_ENV}
    with process(
        ["Orthanc", str(folder / "orthanc.json")], folder / "log", env, http_port
    ) as receiver:
        receiver.wait_for_port(dicom_port)
        yield dicom_port, f"http://127.0.0.1:{http_port}"


class RadTriage:
    """RadTriage in the production setup on a fresh PostgreSQL database."""

    def __init__(self, postgres_url: str, redis_url: str, work: Path) -> None:
        self.admin_url = postgres_url
        self.name = ""
        self.database_url = ""
        self.work = work
        self.storage = work / "radtriage-dicom"
        self.env = clean_env(
            DATABASE_URL="",  # set by create()
            REDIS_URL=redis_url,
            SECRET_KEY=secrets.token_urlsafe(50),
            RADTRIAGE_VAR_DIR=str(work / "radtriage-var"),
            RADTRIAGE_STORAGE_DIR=str(self.storage),
            LOG_LEVEL="WARNING",
        )
        self.token = ""

    def create(self) -> None:
        self.name, self.database_url = create_database(admin_url=self.admin_url)
        self.env["DATABASE_URL"] = self.database_url
        self.manage("migrate", "--noinput")
        self.token = self.manage("set_integration_user", "bench").strip()

    def drop(self) -> None:
        if self.name:
            drop_database(self.name, self.admin_url)

    def manage(self, *args: str) -> str:
        return run_manage(self.env, *args)

    def reset(self) -> None:
        """Forget every study: the next send starts from an empty archive."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(
                "TRUNCATE triage_instance, triage_series, triage_studyevent, "
                "triage_study, triage_patient CASCADE"
            )
        shutil.rmtree(self.storage, ignore_errors=True)

    def check_stored(self, count: int) -> None:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM triage_instance").fetchone()
        files = [p for p in self.storage.rglob("*.dcm")]
        if row is None or row[0] != count or len(files) != count:
            raise SystemExit(
                f"expected {count} instances, found {row} rows, {len(files)} files"
            )

    @contextmanager
    def listener(self) -> Iterator[tuple[int, Callable[[], float]]]:
        port = free_port()
        env = {**self.env, "RADTRIAGE_DICOM_PORT": str(port)}
        with process(
            [sys.executable, "manage.py", "dicom_listener"],
            self.work / "listener.log",
            env,
            port,
        ) as listener:
            sampler = PeakMemory(listener.popen.pid)
            sampler.start()
            try:
                yield port, sampler.peak_megabytes
            finally:
                sampler.stop()

    @contextmanager
    def web(self) -> Iterator[str]:
        port = free_port()
        with process(
            web_command(port, log_level="warning"),
            self.work / "web.log",
            self.env,
            port,
        ):
            yield f"http://127.0.0.1:{port}"


@contextmanager
def radtriage(postgres_url: str, redis_url: str, work: Path) -> Iterator[RadTriage]:
    target = RadTriage(postgres_url, redis_url, work)
    target.create()
    try:
        yield target
    finally:
        target.drop()


class PeakMemory(threading.Thread):
    """Samples a process's resident memory; the kernel's high-water mark too."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.peak_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.sample()

    def sample(self) -> None:
        try:
            for line in self.status.read_text().splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        self.sample()
        self.done.set()
        self.join()

    def peak_megabytes(self) -> float:
        return self.peak_kb / 1024


def report(runs: dict[str, Run], count: int, megabytes: float, peak_mb: float) -> None:
    def rate(name: str) -> tuple[float, float]:
        seconds = runs[name].median()
        return count / seconds, megabytes / seconds

    rows = [
        ("C-STORE", "storescp +B (ceiling)", "storescp"),
        ("C-STORE", "Orthanc", "orthanc"),
        ("C-STORE", "RadTriage (PostgreSQL)", "radtriage"),
        ("STOW-RS", "Orthanc DICOMweb", "stow-orthanc"),
        ("STOW-RS", "RadTriage (PostgreSQL)", "stow-radtriage"),
    ]
    print(f"{'':8} {'receiver':26} {'instances/s':>12} {'MB/s':>8}   seconds")
    for kind, label, name in rows:
        per_second, mb_per_second = rate(name)
        seconds = ", ".join(f"{s:.2f}" for s in runs[name].seconds)
        print(
            f"{kind:8} {label:26} {per_second:12.1f} {mb_per_second:8.1f}   {seconds}"
        )
    c_store = rate("radtriage")[0] / rate("orthanc")[0]
    ceiling = rate("radtriage")[0] / rate("storescp")[0]
    stow_ratio = rate("stow-radtriage")[0] / rate("stow-orthanc")[0]
    print()
    print(f"C-STORE RadTriage / Orthanc:   {c_store:.2f}x (target >= {TARGET_RATIO})")
    print(f"C-STORE RadTriage / storescp:  {ceiling:.2f}x (storescp +B writes only)")
    print(
        f"STOW-RS RadTriage / Orthanc:   {stow_ratio:.2f}x (target >= {TARGET_RATIO})"
    )
    print(
        f"listener peak memory:          {peak_mb:.0f} MB (target < {TARGET_PEAK_MB})"
    )


if __name__ == "__main__":
    sys.exit(main())
