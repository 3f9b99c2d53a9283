"""The DICOM listener killed (SIGKILL) in the middle of an association.

A sender is storing a study when the listener dies; it is started again (as
systemd or compose would) and the sender resends the study, as modalities do
after a broken association. Nothing may be lost, recorded twice or half
recorded: every instance has one row and that row's file is there and whole.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from demo.synthetic import write_study
from tests.harness.processes import ManagedProcess, free_port, wait_until
from tests.integration.dicom_peers import query, require_program, run_dcmtk
from tests.triage.dicom_data import ct_study

SLICES = 24
# A restarted listener must take associations again within this: its start is
# Django's set-up and a sweep of temporary files, a few seconds here; the rest
# is headroom for a loaded CI machine.
RESTART_BOUND_SECONDS = 30.0


def _instance_rows(database_url: str) -> list[tuple[str, str]]:
    return [
        (str(uid), str(path))
        for uid, path in query(
            database_url, "SELECT sop_instance_uid, storage_path FROM triage_instance"
        )
    ]


def test_a_listener_killed_mid_association_loses_and_duplicates_nothing(
    database_url: str,
    migrated: None,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
    manage: Callable[..., str],
    tmp_path: Path,
) -> None:
    storescu = require_program("storescu", "dcmtk")
    port = free_port()
    command = [sys.executable, "manage.py", "dicom_listener"]
    extra_env = {"RADTRIAGE_DICOM_PORT": str(port)}
    listener = start_process("listener", command, extra_env=extra_env)
    listener.wait_for_port(port)

    study = ct_study(21, slices=SLICES)
    datasets = list(study.datasets)
    statuses: list[int] = []

    def send_all() -> None:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="RADTRIAGE")
        assert assoc.is_established
        for ds in datasets:
            try:
                status = assoc.send_c_store(ds)
            except RuntimeError:  # the association is gone
                break
            if "Status" not in status:  # no answer: the peer went away
                break
            statuses.append(int(status.Status))
        if assoc.is_established:
            assoc.abort()

    sender = threading.Thread(target=send_all, name="sender")
    sender.start()
    wait_until(
        lambda: len(_instance_rows(database_url)) >= SLICES // 3,
        timeout=60,
        what="a third of the study recorded",
        interval=0.01,
    )
    listener.popen.kill()  # SIGKILL, with the association still sending
    listener.popen.wait(10)
    sender.join(30)
    assert not sender.is_alive()
    stored_before_kill = len(_instance_rows(database_url))
    assert stored_before_kill < SLICES, "the kill came too late to test anything"
    assert statuses == [0x0000] * len(statuses)  # nothing refused before the kill

    killed_at = time.monotonic()
    restarted = start_process("listener-restarted", command, extra_env=extra_env)
    restarted.wait_for_port(port, timeout=RESTART_BOUND_SECONDS)
    echoscu = require_program("echoscu", "dcmtk")
    assert (
        run_dcmtk([echoscu, "-aec", "RADTRIAGE", "127.0.0.1", str(port)]).returncode
        == 0
    )
    recovered_in = time.monotonic() - killed_at
    print(f"listener answering again {recovered_in:.1f} s after the kill")
    assert recovered_in < RESTART_BOUND_SECONDS

    # The modality resends the whole study after the broken association.
    paths = write_study(study, tmp_path / "resend")
    result = run_dcmtk(
        [storescu, "-aec", "RADTRIAGE", "127.0.0.1", str(port), *map(str, paths)]
    )
    assert result.returncode == 0, result.stderr

    rows = _instance_rows(database_url)
    assert sorted(uid for uid, _ in rows) == sorted(
        ds.SOPInstanceUID for ds in datasets
    )  # each instance once
    [(count,)] = query(database_url, "SELECT instance_count FROM triage_study")
    assert count == SLICES
    storage = Path(production_env["RADTRIAGE_STORAGE_DIR"])
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for uid, storage_path in rows:
        # Nothing half recorded: each row's file is there and holds the image sent.
        stored = pydicom.dcmread(storage / storage_path)
        assert stored.SOPInstanceUID == uid
        assert stored.PixelData == by_uid[uid].PixelData

    # A file renamed into place whose commit the kill prevented is recorded by
    # no row; the storage audit finds and removes it, and nothing else.
    report = manage("audit_storage", "--remove", "--older-than-minutes", "0")
    orphans = int(report.rsplit(" stored files checked, ", 1)[1].split(" ", 1)[0])
    assert orphans <= 1  # at most the one instance in flight at the kill
    after = manage("audit_storage", "--older-than-minutes", "0")
    assert f"{SLICES} stored files checked, 0 recorded by no instance" in after
    assert study.patient_id not in listener.log_text() + restarted.log_text()
