"""The radiologist's worklist in a real browser, changing without a reload."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect
from pynetdicom import AE

from demo.synthetic import HemorrhageType, SyntheticStudy, make_ct_head_study
from tests.browser.conftest import DEMO_PASSWORD, RunningServer

SECOND_READER = "radiologist2"


@pytest.fixture(scope="module")
def seeded(server: RunningServer) -> Iterator[RunningServer]:
    """Three demo studies without findings (one STAT from the emergency
    department) and a second radiologist."""
    server.manage(
        "shell",
        "-c",
        "from django.utils import timezone; "
        "from triage import services; from triage.roles import Role; "
        "from demo.seed import DEMO_CASES, seed_case; "
        f"services.set_role_user({SECOND_READER!r}, Role.RADIOLOGIST, "
        f"{DEMO_PASSWORD!r}); "
        "[seed_case(DEMO_CASES[i], slices=4, now=timezone.now()) for i in (1, 3, 5)]",
    )
    yield server


def send_over_dicom(port: int, study: SyntheticStudy) -> None:
    """C-STORE every instance of ``study`` to the real listener."""
    ae = AE(ae_title="BROWSERTEST")
    for dataset in study.datasets:
        ae.add_requested_context(
            dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID
        )
    assoc = ae.associate("127.0.0.1", port, ae_title="RADTRIAGE")
    assert assoc.is_established
    try:
        for dataset in study.datasets:
            status = assoc.send_c_store(dataset)
            assert status.Status == 0x0000
    finally:
        assoc.release()


def test_radiologist_sees_the_worklist_and_why_each_study_is_there(
    seeded: RunningServer, logged_in_page: Callable[[str], Page]
) -> None:
    page = logged_in_page("radiologist")
    assert page.url.endswith("/worklist/")
    rows = page.locator("#worklist-rows tr.study")
    expect(rows).to_have_count(3)
    expect(page.locator("#live-status")).to_have_text("Live")
    # Keyboard: j focuses the first row and shows its reasons.
    page.keyboard.press("j")
    first = rows.first
    expect(first).to_be_focused()
    expect(first.locator(".reasons")).to_be_visible()
    expect(first.locator(".reasons")).to_contain_text("order")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_be_focused()
    page.keyboard.press("k")
    expect(first).to_be_focused()
    # Labels, not colour alone.
    assert first.locator(".band-label").inner_text() in {
        "Critical",
        "High",
        "Medium",
        "Routine",
    }


def test_a_claim_in_one_browser_shows_in_another_within_a_second(
    seeded: RunningServer, logged_in_page: Callable[[str], Page]
) -> None:
    watcher = logged_in_page(SECOND_READER)
    reader = logged_in_page("radiologist")
    expect(watcher.locator("#live-status")).to_have_text("Live")
    expect(reader.locator("#live-status")).to_have_text("Live")
    row = reader.locator("#worklist-rows tr.study:has(button.claim)").first
    study_id = row.get_attribute("data-id")
    watched = watcher.locator(f"#study-{study_id} .status")
    expect(watched).not_to_contain_text("In progress")

    started = time.monotonic()
    row.focus()
    reader.keyboard.press("c")  # claim from the keyboard
    expect(watched).to_contain_text("In progress · radiologist", timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    expect(reader.locator(f"#study-{study_id} .status")).to_contain_text("(you)")
    # And the watcher may no longer claim it.
    expect(watcher.locator(f"#study-{study_id} button.claim")).to_have_count(0)


def test_a_study_sent_to_the_listener_appears_without_a_reload(
    seeded: RunningServer, logged_in_page: Callable[[str], Page]
) -> None:
    page = logged_in_page("radiologist")
    expect(page.locator("#live-status")).to_have_text("Live")
    before = page.locator("#worklist-rows tr.study").count()
    page.evaluate("window.__notReloaded = true")
    send_over_dicom(seeded.dicom_port, make_ct_head_study(4141, slices=4))
    # It appears once stable (CT: 10 s quiet), pushed by the server.
    expect(page.locator("#worklist-rows tr.study")).to_have_count(
        before + 1, timeout=30_000
    )
    assert page.evaluate("window.__notReloaded") is True


def test_a_critical_study_sent_to_the_listener_appears_at_the_top_unreloaded(
    seeded: RunningServer, logged_in_page: Callable[[str], Page]
) -> None:
    page = logged_in_page("radiologist")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.evaluate("window.__notReloaded = true")
    send_over_dicom(
        seeded.dicom_port,
        make_ct_head_study(4242, slices=16, hemorrhage=HemorrhageType.SUBDURAL),
    )
    # Stable after 10 s quiet, then scored by the demo ICH model: a confident
    # critical finding outranks even the STAT emergency study without one.
    top = page.locator("#worklist-rows tr.study").first
    expect(top.locator(".ai-finding")).to_contain_text("suspected", timeout=45_000)
    expect(top.locator(".band-label")).to_have_text("Critical")
    assert page.evaluate("window.__notReloaded") is True
