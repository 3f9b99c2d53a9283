"""Time-to-notification, end to end: from the last instance of a head CT with a
hemorrhage, sent by dcmtk's storescu, to its alert on the charge technologists'
board in a real headless Chromium.

    .venv/bin/python -m bench.notification [--studies 20] [--slices 40] [--stability 2]

Starts the embedded one-process server (web, DICOM listener, worker, beat on
SQLite) with a CT stability window of ``--stability`` seconds, logs in as the
demo charge technologist, then sends the studies one after another. Prints
p50/p95 of the browser-observed time and the share of each stage from the
alert's own stamps (quiet period, scoring, alerting, delivery to the board).
Target on the CPU: p95 <= the stability window + 5 s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from playwright.sync_api import sync_playwright

from demo.synthetic import HemorrhageType, make_ct_head_study
from demo.synthetic.dicom import write_study
from tests.harness.processes import ManagedProcess, clean_env, free_port, run_manage

CHROMIUM = Path(os.environ.get("RADTRIAGE_TEST_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = secrets.token_urlsafe(12)
STAGES = ("quiet period", "scoring", "alerting", "delivery")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--stability", type=float, default=2.0)
    parser.add_argument("--sweep", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-notification-"))
    web_port, dicom_port = free_port(), free_port()
    env = clean_env(
        RADTRIAGE_VAR_DIR=str(work / "var"),
        RADTRIAGE_WEB_PORT=str(web_port),
        RADTRIAGE_DICOM_PORT=str(dicom_port),
        RADTRIAGE_HL7_PORT=str(free_port()),
        RADTRIAGE_STABILITY_SECONDS=f"CT={args.stability},*=15",
        RADTRIAGE_STABILITY_SWEEP_SECONDS=str(args.sweep),
        PYTHONUNBUFFERED="1",
    )
    print(f"writing {args.studies} head CTs of {args.slices} slices ...", flush=True)
    folders = []
    for i in range(args.studies):
        study = make_ct_head_study(
            7000 + i,
            slices=args.slices,
            size=args.size,
            hemorrhage=HemorrhageType.SUBDURAL,
        )
        folders.append(write_study(study, work / f"study-{i}"))
    run_manage(env, "migrate", "--noinput", timeout=600)
    run_manage(env, "seed_demo", "--studies", "0", "--password", PASSWORD, timeout=600)
    observed: list[float] = []
    missed = 0
    with ManagedProcess.start(
        "serve",
        [sys.executable, "manage.py", "serve"],
        env=env,
        log_path=work / "serve.log",
    ) as server:
        server.wait_for_port(web_port, timeout=120)
        server.wait_for_port(dicom_port, timeout=120)
        base = f"http://127.0.0.1:{web_port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
            )
            page = browser.new_page()
            page.goto(f"{base}/accounts/login/")
            page.fill("#id_username", "chargetech")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/alerts/")
            page.wait_for_function(
                "document.getElementById('live-status').dataset.state === 'live'"
            )
            for i, files in enumerate(folders):
                result = subprocess.run(
                    [
                        "storescu",
                        "-aec",
                        "RADTRIAGE",
                        "127.0.0.1",
                        str(dicom_port),
                        *map(str, files),
                    ],
                    env={**env, "TCP_NODELAY": "1"},
                    capture_output=True,
                    timeout=600,
                    check=False,
                )
                sent = time.monotonic()
                if result.returncode != 0:
                    raise SystemExit(f"storescu failed:\n{result.stderr.decode()}")
                try:
                    page.wait_for_function(
                        "n => document.querySelectorAll("
                        "'article.alert-card[data-status=open]').length >= n",
                        arg=i + 1 - missed,
                        timeout=60_000,
                        polling="raf",
                    )
                except Exception:  # noqa: BLE001 (a study the model missed)
                    missed += 1
                    print(f"  study {i + 1}: no alert within 60 s", flush=True)
                    continue
                observed.append(time.monotonic() - sent)
                print(f"  study {i + 1}: {observed[-1]:.2f} s", flush=True)
            time.sleep(1.0)  # the last receipt reaches the server
            browser.close()
        stamps = json.loads(
            run_manage(
                env,
                "shell",
                "-c",
                "import json; from worklist.alerts.models import Alert; "
                "print(json.dumps([[None if t is None else t.isoformat() for t in "
                "(a.last_instance_received_at, a.stable_at, a.scored_at, a.raised_at,"
                " a.delivered_at)] for a in Alert.objects.order_by('pk')]))",
            )
            .strip()
            .splitlines()[-1]
        )
    report(args, observed, missed, stamps)


def report(
    args: argparse.Namespace,
    observed: list[float],
    missed: int,
    stamps: list[list[str | None]],
) -> None:
    print()
    print(
        f"bench/notification: {len(observed)} of {args.studies} studies alerted "
        f"({args.slices} slices, {args.size}px, CT stability {args.stability} s, "
        f"stability sweep {args.sweep} s), {missed} missed"
    )
    if not observed:
        return
    target = args.stability + 5.0
    p50, p95 = percentile(observed, 50), percentile(observed, 95)
    print(
        "last instance sent -> alert on the board (browser): "
        f"p50 {p50:.2f} s  p95 {p95:.2f} s  max {max(observed):.2f} s  "
        f"target p95 <= {target:.1f} s: {'met' if p95 <= target else 'NOT met'}"
    )
    totals = {stage: 0.0 for stage in STAGES}
    chains: list[float] = []
    for row in stamps:
        if any(t is None for t in row):
            continue
        times = [datetime.fromisoformat(t) for t in row if t is not None]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        for stage, gap in zip(STAGES, gaps, strict=True):
            totals[stage] += gap
        chains.append((times[-1] - times[0]).total_seconds())
    if chains:
        whole = sum(totals.values()) or 1.0
        print(
            "server stamps, last instance received -> first browser receipt: "
            f"p50 {statistics.median(chains):.2f} s  p95 {percentile(chains, 95):.2f} s"
        )
        print(
            "share of each stage: "
            + ", ".join(f"{s} {100 * totals[s] / whole:.0f}%" for s in STAGES)
        )
        print(
            "mean per stage (s): "
            + ", ".join(f"{s} {totals[s] / len(chains):.2f}" for s in STAGES)
        )


if __name__ == "__main__":
    main()
