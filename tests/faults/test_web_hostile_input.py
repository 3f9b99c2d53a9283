"""Hostile requests to every web route answer a clean 4xx, never a 500.

Built for the class, not the instance: every URL pattern is walked, each of its
captured parts replaced by a non-numeric id, a number past 2**63, a NUL and a
very long value, and sent by GET and POST as a user who may do everything, so
the request reaches the deepest code behind each route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import StudyFactory
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

HOSTILE_PARTS = ("abc", str(2**64), "9" * 40, "-1", "%00", "1%00", "x" * 300)
# Routes whose parts are not ours to parse (Django's admin catch-alls, static).
SKIPPED_PREFIXES = ("admin/", "static/")


def _walk(resolvers: list[Any], prefix: str = "") -> Iterator[str]:
    for entry in resolvers:
        pattern = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + pattern)
        elif isinstance(entry, URLPattern):
            yield prefix + pattern


def _paths_with_parts() -> list[str]:
    """Each routed pattern that captures something, as a format string."""
    found: set[str] = set()
    for raw in _walk(get_resolver().url_patterns):
        if raw.startswith(SKIPPED_PREFIXES):
            continue
        # <int:x>, <slug:x>, <x> (path()) and (?P<x>...) (re_path) become {}.
        text = re.sub(r"\(\?P<\w+>[^)]*\)", "{}", raw)
        text = re.sub(r"<(?:\w+:)?\w+>", "{}", text)
        if "{}" not in text:
            continue
        text = text.replace("^", "").replace("$", "").replace("/?", "/")
        text = text.replace("\\.", ".").replace("\\", "")
        found.add("/" + text)
    return sorted(found)


@pytest.fixture
def everyone(db: None) -> Client:
    user = User.objects.create_superuser("root", password="x" * 20)
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def test_routes_with_parts_are_found() -> None:
    paths = _paths_with_parts()
    assert "/api/studies/{}/claim/" in paths
    assert "/worklist/studies/{}/feedback/" in paths
    assert "/dicomweb/studies/{}/" in paths


@pytest.mark.parametrize("template", _paths_with_parts())
def test_hostile_route_parts_answer_4xx(everyone: Client, template: str) -> None:
    StudyFactory.create(reading_status=ReadingStatus.READY)
    for part in HOSTILE_PARTS:
        url = template.replace("{}", part)
        for method in ("get", "post"):
            response = getattr(everyone, method)(url)
            assert response.status_code < 500, (method, url, response.status_code)


@pytest.mark.parametrize(
    "url",
    [
        f"/dicomweb/studies?offset={2**63}",
        f"/dicomweb/studies?offset={10**30}",
        f"/dicomweb/studies?limit={10**30}",
        "/dicomweb/studies?offset=\u00b2",
        "/dicomweb/studies?PatientID=%00",
        "/dicomweb/studies?AccessionNumber=A%00",
        "/dicomweb/studies?PatientID=*%00*",
        "/dicomweb/studies?ModalitiesInStudy=%00",
        "/dicomweb/studies?StudyDate=00000101",
        "/dicomweb/studies?StudyDate=%00",
        "/reports/ai/?start=0001-01-01&end=9999-12-31",
        "/reports/ai/?start=9999-12-31&end=9999-12-31",
        "/reports/ai/?start=0001-01-01&end=0001-01-01",
        "/reports/?start=0001-01-01&end=9999-12-31",
        "/reports/?start=0001-01-01&end=0001-01-01",
        "/reports/?start=9999-12-31&end=9999-12-31",
        "/reports/turnaround.csv?start=9999-12-31&end=9999-12-31",
        "/reports/turnaround/print/?start=0001-01-01&end=0001-01-01",
        "/alerts/?days=abc",
        f"/alerts/?days={10**30}",
        "/alerts/cards/?days=%00",
        "/api/studies/?page_size=abc",
        f"/api/studies/?page_size={10**30}",
        "/api/studies/?cursor=%00",
        "/api/studies/?modality=%00",
        f"/api/studies/?priority_min={10**400}",
        "/worklist/?modality=%00",
        "/worklist/rows/?modality=%00",
    ],
)
def test_hostile_query_strings_answer_4xx(everyone: Client, url: str) -> None:
    StudyFactory.create(reading_status=ReadingStatus.READY)
    response = everyone.get(url)
    assert response.status_code < 500, (url, response.status_code)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "url",
    [
        "/api/studies/{pk}/feedback/",
        "/api/worklist/filters/",
    ],
)
def test_json_nested_100000_deep_is_refused_cleanly(everyone: Client, url: str) -> None:
    made = StudyFactory.create(reading_status=ReadingStatus.READY)
    method = everyone.put if url.endswith("filters/") else everyone.post
    body = '{"finding_code": ' + _deep(100_000) + "}"
    response = method(
        url.format(pk=made.pk), data=body, content_type="application/json"
    )
    assert 400 <= response.status_code < 500, response.status_code


def test_json_with_nul_in_a_string_is_refused_cleanly(everyone: Client) -> None:
    made = StudyFactory.create(reading_status=ReadingStatus.READY)
    response = everyone.post(
        f"/api/studies/{made.pk}/feedback/",
        data=json.dumps({"finding_code": "ich\x00", "verdict": "agree"}),
        content_type="application/json",
    )
    assert 400 <= response.status_code < 500
