"""Escalation: once after the timeout, by email and a signed webhook, retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth.models import AbstractBaseUser
from django.core import mail
from django.test import Client

from radtriage.celery import app as celery_app
from tests.worklist.alert_data import NOW, add_finding, scored_study
from triage.roles import Role
from worklist.alerts import services, tasks
from worklist.alerts.models import Alert, WebhookDelivery
from worklist.alerts.rules import SIGNATURE_HEADER, signature_valid

pytestmark = pytest.mark.django_db

SECRET = "test-webhook-secret"


@dataclass
class Receiver:
    """A real HTTP server in a thread that records what it is sent."""

    url: str
    answers: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", answers=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(
                ({k.lower(): v for k, v in self.headers.items()}, body)
            )
            code = state.answers.pop(0) if state.answers else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def escalation(settings: Any, receiver: Receiver) -> Iterator[Receiver]:
    """Three seconds to acknowledge; webhook to the receiver; tasks run inline."""
    settings.RADTRIAGE_ALERT_ESCALATION_MINUTES = {
        "critical": 0.05,
        "urgent": 1.0,
        "non-urgent": 1.0,
    }
    settings.RADTRIAGE_ALERT_EMAILS = ["head@example.org"]
    settings.RADTRIAGE_ALERT_WEBHOOK_URL = receiver.url
    settings.RADTRIAGE_ALERT_WEBHOOK_SECRET = SECRET
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield receiver
    finally:
        celery_app.conf.task_always_eager = eager


def raised_alert() -> Alert:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    return alert


def test_escalation_fires_once_after_the_timeout_with_email_and_signed_webhook(
    escalation: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    alert = raised_alert()
    assert services.escalate_overdue(now=NOW + timedelta(seconds=2)) == []
    with django_capture_on_commit_callbacks(execute=True):
        fired = services.escalate_overdue(now=NOW + timedelta(seconds=4))
    assert fired == [alert.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.escalate_overdue(now=NOW + timedelta(minutes=5)) == []
    alert.refresh_from_db()
    assert alert.escalated_at == NOW + timedelta(seconds=4)
    [message] = mail.outbox
    assert message.to == ["head@example.org"]
    assert f"alert #{alert.pk}" in message.subject
    # No PHI in the email.
    assert alert.study.patient.patient_name not in message.body
    assert alert.study.accession_number not in message.body
    [(headers, body)] = escalation.received
    assert signature_valid(body, SECRET, headers[SIGNATURE_HEADER.lower()])
    assert not signature_valid(body, "wrong", headers[SIGNATURE_HEADER.lower()])
    payload = json.loads(body)
    assert payload["alert_id"] == alert.pk
    assert payload["event"] == "alert.escalated"
    assert alert.study.study_instance_uid not in body.decode()
    assert WebhookDelivery.objects.get().succeeded


def test_an_acknowledged_alert_never_escalates(
    escalation: Receiver, make_user: Callable[..., AbstractBaseUser]
) -> None:
    alert = raised_alert()
    tech = make_user(Role.CHARGE_TECHNOLOGIST, "tech1")
    services.acknowledge_alert(alert.pk, tech, now=NOW + timedelta(seconds=1))
    assert services.escalate_overdue(now=NOW + timedelta(hours=1)) == []
    assert mail.outbox == []


def test_the_beat_task_escalates_overdue_alerts(
    escalation: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.escalate_overdue_alerts()
    alert.refresh_from_db()
    assert alert.escalated_at is not None
    assert len(mail.outbox) == 1


def test_a_failing_webhook_is_retried_and_listed_for_administrators(
    escalation: Receiver,
    django_capture_on_commit_callbacks: Any,
    login: Callable[..., Client],
) -> None:
    escalation.answers = [500, 503]
    alert = raised_alert()
    with django_capture_on_commit_callbacks(execute=True):
        services.escalate_overdue(now=NOW + timedelta(minutes=1))
    attempts = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(a.attempt, a.succeeded, a.status_code) for a in attempts] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]
    assert len(escalation.received) == 3
    # A delivered webhook is not sent again.
    tasks.deliver_alert_webhook.apply(args=(alert.pk,))
    assert len(escalation.received) == 3
    assert WebhookDelivery in admin_site._registry
    client = login(Role.ADMINISTRATOR)
    page = client.get("/admin/worklist/webhookdelivery/?succeeded__exact=0")
    assert page.status_code == 200
    assert "HTTP 500" in page.content.decode()


def test_an_unreachable_webhook_gives_up_after_its_retries(
    escalation: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.RADTRIAGE_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/closed"
    raised_alert()
    with django_capture_on_commit_callbacks(execute=True):
        services.escalate_overdue(now=NOW + timedelta(minutes=1))
    failures = WebhookDelivery.objects.filter(succeeded=False)
    retries = tasks.deliver_alert_webhook.max_retries
    assert retries is not None
    assert failures.count() == retries + 1
    assert all(f.error for f in failures)


def test_without_configured_recipients_the_department_heads_are_emailed(
    escalation: Receiver,
    settings: Any,
    make_user: Callable[..., AbstractBaseUser],
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.RADTRIAGE_ALERT_EMAILS = []
    head = make_user(Role.DEPARTMENT_HEAD, "head1")
    head.email = "head1@example.org"  # type: ignore[attr-defined]
    head.save()
    raised_alert()
    with django_capture_on_commit_callbacks(execute=True):
        services.escalate_overdue(now=NOW + timedelta(minutes=1))
    assert [m.to for m in mail.outbox] == [["head1@example.org"]]
