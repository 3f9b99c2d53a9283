"""Sign-in events written to the audit trail: failures, lockouts, logins, logouts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.utils import timezone

from triage.services import record_audit

_USERNAME_CHARS = 150


def _remote_addr(request: HttpRequest | None) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def _account_id(username: str) -> str:
    user_model = get_user_model()
    pk = (
        user_model.objects.filter(**{user_model.USERNAME_FIELD: username})
        .values_list("pk", flat=True)
        .first()
    )
    return str(pk) if pk is not None else ""


def login_failed(
    sender: Any,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    """A wrong password or unknown user (Django's ``user_login_failed``)."""
    username = str(credentials.get("username", ""))[:_USERNAME_CHARS]
    record_audit(
        user=None,
        action="login_failed",
        object_type="user",
        object_id=_account_id(username),
        now=timezone.now(),
        remote_addr=_remote_addr(request),
        detail={"username": username},
    )


def locked_out(
    sender: Any,
    request: HttpRequest | None = None,
    username: str | None = None,
    ip_address: str | None = None,
    **kwargs: Any,
) -> None:
    """Too many failures: django-axes refuses this user from this address."""
    name = str(username or "")[:_USERNAME_CHARS]
    record_audit(
        user=None,
        action="login_locked_out",
        object_type="user",
        object_id=_account_id(name),
        now=timezone.now(),
        remote_addr=ip_address or _remote_addr(request),
        detail={"username": name},
    )


def logged_in(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    """A successful sign-in."""
    record_audit(
        user=user,
        action="login",
        object_type="user",
        object_id=str(user.pk),
        now=timezone.now(),
        remote_addr=_remote_addr(request),
    )


def logged_out(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    """A sign-out (its open websockets are closed by the worklist app)."""
    if user is None:
        return
    record_audit(
        user=user,
        action="logout",
        object_type="user",
        object_id=str(user.pk),
        now=timezone.now(),
        remote_addr=_remote_addr(request),
    )
