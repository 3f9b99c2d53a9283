"""`manage.py demo_serve`: `serve` plus the demo's seeding and feed, via its hook."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from demo.management.commands import demo_serve
from demo.seed import format_logins
from triage.roles import Role
from worklist.management.commands import serve

LOGINS = {Role.RADIOLOGIST: ("radiologist", "pw")}


def _options(command: serve.Command, *args: str) -> dict[str, Any]:
    return vars(command.create_parser("manage.py", "x").parse_args(args))


def test_plain_serve_knows_nothing_of_the_demo() -> None:
    command = serve.Command()
    options = _options(command)
    assert "seed_demo" not in options
    assert "demo_feed" not in options
    assert command.start_extras(options) == serve.Extras()


def test_demo_serve_seeds_and_announces_the_logins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_serve, "seed_demo", lambda **kwargs: LOGINS)
    command = demo_serve.Command()
    extras = command.start_extras(_options(command, "--seed-demo", "--no-listener"))
    assert extras.announce == tuple(format_logins(LOGINS))


def test_demo_serve_without_seeding_announces_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_serve, "seed_demo", pytest.fail)
    command = demo_serve.Command()
    assert command.start_extras(_options(command)).announce == ()


def test_the_feed_thread_stops_when_serve_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = threading.Event()
    stopped = threading.Event()

    def feed(stop: threading.Event, *, interval_seconds: float, slices: int) -> None:
        assert interval_seconds == 30
        started.set()
        stop.wait()
        stopped.set()

    monkeypatch.setattr(demo_serve, "feed_demo", feed)
    command = demo_serve.Command()
    extras = command.start_extras(_options(command, "--demo-feed", "30"))
    assert started.wait(5)
    assert extras.stop is not None
    extras.stop()
    assert stopped.wait(5)
