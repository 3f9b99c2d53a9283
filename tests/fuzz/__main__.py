"""``python -m tests.fuzz [--seconds N] [--target ingest|listener|all]``.

Runs the DICOM fuzzers for a while (``./run fuzz``), on a throwaway SQLite
database and storage folder, with fresh random cases each batch; prints how
many cases each tried and exits 1 on the first failure, with its case. Runs
under an address-space cap (``--memory-mb``): a case that exhausts memory is
a failure with its case, not a machine taken down by the kernel's OOM killer.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

_BATCH = 200


def _setup(root: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radtriage.settings")
    for name in list(os.environ):
        if name.startswith(("DATABASE_", "REDIS_")):
            del os.environ[name]
    os.environ["RADTRIAGE_VAR_DIR"] = str(root / "var")
    os.environ["RADTRIAGE_STORAGE_DIR"] = str(root / "dicom")
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _run(
    name: str, check: Callable[[], Callable[[], None]], seconds: float
) -> tuple[int, float]:
    """Batches of the property until ``seconds`` have passed: (cases, seconds)."""
    counted = [0]
    test = check()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        before = counted[0]
        test.counter = counted  # type: ignore[attr-defined]
        test()
        if counted[0] == before:  # pragma: no cover - nothing generated
            break
        print(f"{name}: {counted[0]} cases, {time.monotonic() - started:.0f} s")
    return counted[0], time.monotonic() - started


def _ingest() -> Callable[[], None]:
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz.ingest import check_ingest, ingest_inputs

    @settings(
        max_examples=_BATCH,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=ingest_inputs())
    def test(data: bytes) -> None:
        test.counter[0] += 1  # type: ignore[attr-defined]
        check_ingest(data)

    return test


def _listener() -> Callable[[], None]:
    from django.conf import settings as django_settings
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz.listener import check_listener, pdu_sequences
    from triage.ingest.scp import start_listener

    django_settings.RADTRIAGE_DICOM_HOST = "127.0.0.1"
    django_settings.RADTRIAGE_DICOM_PORT = 0
    server = start_listener(block=False)
    assert server is not None
    host, port = server.server_address[:2]
    address = (str(host), int(port))

    @settings(
        max_examples=_BATCH,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(pdus=pdu_sequences())
    def test(pdus: list[bytes]) -> None:
        test.counter[0] += 1  # type: ignore[attr-defined]
        check_listener(address, pdus)

    return test


def _cap_memory(limit: int) -> None:
    """Lower the address-space limit to ``limit`` bytes, never raising it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or limit < soft:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=300.0, help="per target")
    parser.add_argument(
        "--target", choices=("ingest", "listener", "all"), default="all"
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=4096,
        help="address-space cap for the run (0: the inherited limit)",
    )
    options = parser.parse_args()
    if options.memory_mb:
        _cap_memory(options.memory_mb << 20)
    warnings.simplefilter("ignore")  # pydicom warns of every odd value it reads
    with tempfile.TemporaryDirectory(prefix="radtriage-fuzz-") as folder:
        _setup(Path(folder))
        targets = {"ingest": _ingest, "listener": _listener}
        chosen = list(targets) if options.target == "all" else [options.target]
        results = {}
        for name in chosen:
            results[name] = _run(name, targets[name], options.seconds)
        for name, (cases, seconds) in results.items():
            print(f"{name}: {cases} cases in {seconds:.0f} s, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
