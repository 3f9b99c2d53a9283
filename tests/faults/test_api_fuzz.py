"""schemathesis against /api/schema/: every REST operation, fuzzed in process.

Each operation gets requests generated from the OpenAPI schema, valid ones and
invalid ones, sent through the real WSGI stack with a radiologist's token;
every answer must be no 500 and conform to the schema (documented status
code, content type, body shape). Bounded for CI: RADTRIAGE_FUZZ_EXAMPLES
requests per operation and mode (25), which ``./run fuzz`` raises.

schemathesis's own pytest plugin does not run under pytest 9, so the test
drives its per-operation Hypothesis strategies itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import ignored_auth

from tests.factories import StudyFactory
from triage.roles import Role
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

FUZZ_EXAMPLES = int(os.environ.get("RADTRIAGE_FUZZ_EXAMPLES", "25"))


@pytest.fixture
def token(make_user: Callable[..., AbstractBaseUser]) -> str:
    user = make_user(Role.RADIOLOGIST, "fuzzer")
    assert isinstance(user, User)
    # A few real studies, so that generated IDs sometimes hit one.
    for _ in range(3):
        StudyFactory.create(reading_status=ReadingStatus.READY)
    return str(Token.objects.create(user=user).key)


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        # Every request carries our token, over whatever auth was generated:
        # refusing bad credentials is tested elsewhere (tests/triage).
        case.call_and_validate(headers=headers, excluded_checks=[ignored_auth])

    run()


def test_api_answers_conform_and_never_fail(token: str) -> None:
    headers = {"Authorization": f"Token {token}"}
    # No NUL characters: every text input refuses them with 400, which the
    # schema cannot say (tests/faults/test_web_hostile_input.py covers them).
    config = SchemathesisConfig.from_dict({"generation": {"allow-x00": False}})
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        get_wsgi_application(),
        config=config,
        headers=headers,
    )
    started = time.monotonic()
    labels: list[str] = []
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err raises
        labels.append(operation.label)
        for mode in GenerationMode:
            try:
                _fuzz(operation, mode, headers)
            except Unsatisfiable:
                continue  # nothing invalid to send (an operation without inputs)
            except (AssertionError, BaseExceptionGroup) as exc:  # try every one
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(labels)} operations in {elapsed:.1f} s")
    assert "POST /api/studies/{id}/claim/" in labels
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
