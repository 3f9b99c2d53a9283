"""`manage.py seed_demo`: users per role, synthetic studies, safe to repeat."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from demo import orders, seed
from demo.seed import DEMO_USERNAMES
from triage.models import HL7Message, Instance, Order, Study
from triage.roles import Role
from triage.vocabulary import IntakeSource, PatientClass

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = io.StringIO()
    call_command(
        "seed_demo", studies=3, slices=4, password="demo-password-123", stdout=out
    )
    return out.getvalue()


def test_seed_demo_prints_one_login_per_role_and_sends_studies() -> None:
    output = _seed()
    for role in Role:
        username = DEMO_USERNAMES[role]
        assert f"{role.value}: {username} / demo-password-123" in output
        user = authenticate(username=username, password="demo-password-123")
        assert user is not None
        assert list(user.groups.values_list("name", flat=True)) == [role.value]
    assert Study.objects.count() == 3
    first = Study.objects.order_by("pk").first()
    assert first is not None
    assert first.patient_class == PatientClass.EMERGENCY
    assert first.instance_count == 4
    # Acquired minutes before arrival, so the demo's turnaround figures look real.
    assert first.acquired_at is not None
    assert first.first_instance_received_at is not None
    lead = first.first_instance_received_at - first.acquired_at
    assert 0 <= lead.total_seconds() <= 600


def test_seed_demo_twice_duplicates_nothing() -> None:
    _seed()
    instances = Instance.objects.count()
    _seed()
    assert Study.objects.count() == 3
    assert Instance.objects.count() == instances


def test_seed_demo_sends_each_order_by_hl7_some_after_the_images() -> None:
    _seed()
    messages = HL7Message.objects.order_by("pk")
    assert [(m.message_type, m.outcome) for m in messages] == [("ORM", "applied")] * 3
    studies = list(Study.objects.order_by("pk"))
    for study in studies:
        order = Order.objects.get(study=study)
        assert order.source == IntakeSource.HL7
        assert order.reason_for_study
        assert order.patient_class == study.patient_class


def test_one_order_in_three_arrives_after_its_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_order, real_study = orders.send_order, seed.send_study

    def order(*args: Any, **kwargs: Any) -> None:
        calls.append("order")
        real_order(*args, **kwargs)

    def study(*args: Any, **kwargs: Any) -> int:
        calls.append("images")
        return real_study(*args, **kwargs)

    monkeypatch.setattr(orders, "send_order", order)
    monkeypatch.setattr(seed, "send_study", study)
    _seed()
    assert calls == ["order", "images", "order", "images", "images", "order"]
    late = Study.objects.order_by("pk")[2]
    assert Order.objects.get(study=late).patient_class == late.patient_class
