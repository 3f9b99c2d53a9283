"""The charge technologists' board in a real browser: a critical study sent to
the real listener raises an alert; acknowledging it shows on the worklist live."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from demo.synthetic import HemorrhageType, make_ct_head_study
from tests.browser.conftest import RunningServer
from tests.browser.test_worklist import send_over_dicom


def test_critical_study_alerts_the_board_and_acknowledgement_reaches_the_worklist(
    server: RunningServer, logged_in_page: Callable[[str], Page]
) -> None:
    board = logged_in_page("chargetech")
    assert board.url.endswith("/alerts/")
    reader = logged_in_page("radiologist")
    expect(board.locator("#live-status")).to_have_text("Live")
    expect(reader.locator("#live-status")).to_have_text("Live")
    board.evaluate("window.__notReloaded = true")
    reader.evaluate("window.__notReloaded = true")

    send_over_dicom(
        server.dicom_port,
        make_ct_head_study(5151, slices=16, hemorrhage=HemorrhageType.SUBDURAL),
    )
    # Stable after its quiet period, scored by the demo ICH model, alerted.
    card = board.locator("article.alert-card[data-status='open']").first
    expect(card).to_contain_text("suspected", timeout=60_000)
    alert_id = card.get_attribute("data-id")
    study_row = reader.locator("#worklist-rows tr.study").first
    expect(study_row.locator(".alert-badge")).to_have_text("Alert open", timeout=10_000)

    card.locator("input[name=note]").fill("called the ED physician")
    card.locator("button", has_text="Acknowledge").click()
    acked = board.locator(f"#alert-{alert_id}")
    expect(acked).to_contain_text("Acknowledged by chargetech")
    expect(acked).to_contain_text("called the ED physician")
    expect(study_row.locator(".alert-badge")).to_have_text(
        "Alert acknowledged by chargetech", timeout=5_000
    )
    assert board.evaluate("window.__notReloaded") is True
    assert reader.evaluate("window.__notReloaded") is True
    # The board confirmed receipt: the delivery time is stamped.
    stamps = server.manage(
        "shell",
        "-c",
        "from worklist.alerts.models import Alert; "
        f"a = Alert.objects.get(pk={alert_id}); "
        "print(all([a.last_instance_received_at, a.stable_at, a.scored_at, "
        "a.raised_at, a.delivered_at, a.acknowledged_at]))",
    )
    assert stamps.strip().endswith("True")
