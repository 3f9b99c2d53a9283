"""Plain rules of alerting: escalation timeouts and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

#: Minutes an alert may stay unacknowledged, per finding severity.
DEFAULT_ESCALATION_MINUTES = "critical=10,urgent=30,non-urgent=120"
SEVERITIES = ("critical", "urgent", "non-urgent")
SIGNATURE_HEADER = "X-RadTriage-Signature"


def parse_escalation_minutes(text: str) -> dict[str, float]:
    """Parse ``"critical=10,urgent=30"`` into minutes per severity.

    Args:
        text: comma-separated ``severity=minutes`` pairs; minutes > 0, may be
            fractional (0.05 is three seconds, for tests).

    Returns:
        Minutes per severity; severities not named keep their defaults.

    Raises:
        ValueError: an unknown severity, a malformed pair or minutes <= 0.
    """
    minutes: dict[str, float] = {}
    for pair in (DEFAULT_ESCALATION_MINUTES + "," + text).split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        name = name.strip().lower()
        if not sep or name not in SEVERITIES:
            raise ValueError(f"expected severity=minutes, got {pair.strip()!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"minutes must be a number in {pair.strip()!r}") from None
        if number <= 0:
            raise ValueError(f"minutes must be positive in {pair.strip()!r}")
        minutes[name] = number
    return minutes


def sign(body: bytes, secret: str) -> str:
    """The signature header value of a webhook body: ``sha256=<hex HMAC>``.

    Receivers recompute HMAC-SHA256 of the raw body with the shared secret and
    compare in constant time.
    """
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_valid(body: bytes, secret: str, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret``."""
    return hmac.compare_digest(sign(body, secret), header)
