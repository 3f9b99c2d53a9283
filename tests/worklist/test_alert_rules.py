"""The plain alerting rules: escalation minutes per severity, signatures."""

from __future__ import annotations

import pytest

from worklist.alerts.rules import parse_escalation_minutes, sign, signature_valid


def test_escalation_minutes_default_per_severity() -> None:
    assert parse_escalation_minutes("") == {
        "critical": 10.0,
        "urgent": 30.0,
        "non-urgent": 120.0,
    }


def test_escalation_minutes_override_one_severity() -> None:
    minutes = parse_escalation_minutes("critical=0.05")
    assert minutes["critical"] == pytest.approx(0.05)
    assert minutes["urgent"] == 30.0


@pytest.mark.parametrize("text", ["critical", "stat=5", "critical=0", "urgent=x"])
def test_bad_escalation_minutes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"=|minutes"):
        parse_escalation_minutes(text)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
    body = b"The quick brown fox jumps over the lazy dog"
    assert sign(body, "key") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )
    assert signature_valid(body, "key", sign(body, "key"))
    assert not signature_valid(body + b" ", "key", sign(body, "key"))
