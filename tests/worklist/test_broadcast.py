"""The one broadcaster: its shared sequence and epoch, and its failures."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from tests.harness.services import redis_url  # noqa: F401 - fixture
from worklist import broadcast
from worklist.alerts import broadcast as alert_broadcast
from worklist.broadcast import Broadcaster


def _alert_broadcaster() -> Broadcaster:
    """A second process's alert broadcaster: the same keys, its own state."""
    return Broadcaster(
        group=alert_broadcast.ALERTS_GROUP,
        event_type="alerts.delta",
        seq_key=alert_broadcast.SEQUENCE_KEY,
        epoch_key=alert_broadcast.EPOCH_KEY,
    )


def test_the_embedded_mode_counts_per_process(settings: Any) -> None:
    settings.REDIS_URL = ""
    first, second = _alert_broadcaster(), _alert_broadcaster()
    assert [first.next_seq()[0] for _ in range(3)] == [1, 2, 3]
    assert second.next_seq()[0] == 1
    assert len({first.next_seq()[1], second.next_seq()[1]}) == 2


def test_a_failed_send_is_logged_by_internal_id_and_not_raised(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: the sequence cannot be read.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    sent = _alert_broadcaster().send(lambda seq, epoch: {"seq": seq}, ref="alert_id=7")
    assert sent is None
    [record] = [r for r in caplog.records if r.name == "worklist.broadcast"]
    assert record.getMessage() == "sending alerts.delta failed alert_id=7"


@pytest.mark.integration
def test_two_processes_share_one_sequence_and_epoch(
    settings: Any,
    redis_url: str,  # noqa: F811 - fixture
) -> None:
    settings.REDIS_URL = redis_url
    first, second = _alert_broadcaster(), _alert_broadcaster()
    seen = [first.next_seq(), second.next_seq(), first.next_seq()]
    assert [seq for seq, _ in seen] == [1, 2, 3]
    assert len({epoch for _, epoch in seen}) == 1


@pytest.mark.integration
def test_a_flushed_redis_restarts_the_count_in_a_new_epoch(
    settings: Any,
    redis_url: str,  # noqa: F811 - fixture
) -> None:
    settings.REDIS_URL = redis_url
    first, second = _alert_broadcaster(), _alert_broadcaster()
    _, before = first.next_seq()
    first.next_seq()
    redis.Redis.from_url(redis_url).flushdb()
    seq, after = second.next_seq()
    assert seq == 1
    assert after != before
    assert first.next_seq() == (2, after)


@pytest.mark.integration
def test_a_lost_counter_alone_also_starts_a_new_epoch(
    settings: Any,
    redis_url: str,  # noqa: F811 - fixture
) -> None:
    # Same epoch, lower number would read as stale deltas, dropped until the
    # count caught up; a new epoch makes readers resync instead.
    settings.REDIS_URL = redis_url
    broadcaster = _alert_broadcaster()
    _, before = broadcaster.next_seq()
    redis.Redis.from_url(redis_url).delete(alert_broadcast.SEQUENCE_KEY)
    seq, after = broadcaster.next_seq()
    assert (seq, after != before) == (1, True)


@pytest.mark.integration
def test_alert_deltas_take_their_seq_and_epoch_from_redis(
    settings: Any,
    redis_url: str,  # noqa: F811 - fixture
) -> None:
    settings.REDIS_URL = redis_url
    client = redis.Redis.from_url(redis_url)
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(alert_broadcast.ALERTS_GROUP, channel)
    try:
        delta = alert_broadcast.send_alert_changed(3, 9, 2, "open", False)
        message = async_to_sync(layer.receive)(channel)
    finally:
        async_to_sync(layer.group_discard)(alert_broadcast.ALERTS_GROUP, channel)
    assert delta is not None
    assert message == {"type": "alerts.delta", "delta": delta}
    assert client.get(alert_broadcast.SEQUENCE_KEY) == str(delta["seq"]).encode()
    assert client.get(alert_broadcast.EPOCH_KEY) == delta["epoch"].encode()
    # Another web process's next alert continues the same sequence.
    assert _alert_broadcaster().next_seq() == (delta["seq"] + 1, delta["epoch"])


@pytest.mark.integration
def test_worklist_and_alert_deltas_count_apart_in_redis(
    settings: Any,
    redis_url: str,  # noqa: F811 - fixture
) -> None:
    settings.REDIS_URL = redis_url
    alert = alert_broadcast.send_alert_changed(3, 9, 2, "open", False)
    worklist = broadcast.send_delta(
        [{"id": 9, "version": 4, "priority_score": 12.5}], []
    )
    assert alert is not None
    assert worklist is not None
    assert (alert["seq"], worklist["seq"]) == (1, 1)
    assert alert["epoch"] != worklist["epoch"]
    client = redis.Redis.from_url(redis_url)
    assert client.get(broadcast.SEQUENCE_KEY) == b"1"
    assert client.get(broadcast.EPOCH_KEY) == worklist["epoch"].encode()
