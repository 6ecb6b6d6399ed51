"""Resolved alerts as every worker answers for them (`alert_history.py`): without a broker,
but for the read to the end of the alert topic, on the real one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from schemas.alert import AlertEvent
from schemas.codes import Severity
from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.pipeline.alert_history import KEPT, LOOKBACK_SECONDS, ResolvedHistory

NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000


def event(i: int, status: str = "resolved") -> bytes:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    return (
        AlertEvent(
            alert_id=f"a-{i}",
            fingerprint=f"f-{i}",
            status=status,  # type: ignore[arg-type]
            rule="zone-surge",
            severity=Severity.HIGH,
            labels={"zone": "shusha"},
            value=12,
            threshold=10,
            window="1h",
            starts_at=at,
            ends_at=at if status == "resolved" else None,
            summary="s",
        )
        .model_dump_json()
        .encode()
    )


def test_only_resolved_events_published_within_the_look_back_are_answered() -> None:
    """A long-running worker (or one on a broker that cannot seek by time) answered
    resolutions published weeks before; the API says the past 7 days."""
    history = ResolvedHistory(Settings())
    history._add(event(1), NOW_MS - 8 * DAY_MS)  # too old
    history._add(event(2), NOW_MS - LOOKBACK_SECONDS * 1000)  # at the edge: kept
    history._add(event(3), NOW_MS - DAY_MS)
    history._add(event(4, "firing"), NOW_MS)  # firing: from the zones' state, not here
    history._add(b"not an alert", NOW_MS)
    history._add(None, NOW_MS)
    assert [e.alert_id for e in history.latest(NOW_MS)] == ["a-2", "a-3"]
    # a week on, the same events have aged out
    assert history.latest(NOW_MS + 8 * DAY_MS) == []


def test_the_latest_kept_are_bounded() -> None:
    history = ResolvedHistory(Settings())
    for i in range(KEPT + 10):
        history._add(event(i), NOW_MS)
    answered = history.latest(NOW_MS)
    assert len(answered) == KEPT
    assert "a-0" not in {e.alert_id for e in answered}


def test_the_latest_kept_are_the_latest_published_whatever_the_order_read() -> None:
    """The partitions are read one after another: the older resolutions of a partition
    read second pushed out the newest of the first (of the 300 most recent, 100 were
    answered)."""
    history = ResolvedHistory(Settings())
    for i in range(300):  # partition 0: the most recent
        history._add(event(i), NOW_MS - i * 1000)
    for i in range(300, 700):  # partition 1: older
        history._add(event(i), NOW_MS - DAY_MS - i * 1000)
    history._add(event(5), NOW_MS - 5 * 1000)  # published again (an outbox settled)
    answered = {e.alert_id for e in history.latest(NOW_MS)}
    assert len(answered) == KEPT
    assert {f"a-{i}" for i in range(300)} <= answered
    assert answered == {f"a-{i}" for i in range(KEPT)}


def test_an_event_published_twice_is_answered_once() -> None:
    history = ResolvedHistory(Settings())
    history._add(event(1), NOW_MS - DAY_MS)
    history._add(event(1), NOW_MS - 1000)
    history._add(event(2), NOW_MS)
    assert [e.alert_id for e in history.latest(NOW_MS)] == ["a-1", "a-2"]
    for i in range(3, 3 * KEPT):  # the replaced copy's place is dropped in time
        history._add(event(i), NOW_MS)
    assert len(history._oldest) <= 2 * KEPT + 1
    assert len(history.latest(NOW_MS)) == KEPT


def test_a_fingerprint_s_resolutions_come_in_the_order_published_whatever_their_clocks() -> None:
    """Two episodes of one fingerprint resolved by two owners of its zone, the first with a
    clock ahead: by timestamp the older resolution came last, and it was the one posted to
    Alertmanager again (`to_repost` takes the last), over the newer one."""
    first = AlertEvent.model_validate_json(event(1)).model_copy(update={"fingerprint": "f"})
    second = AlertEvent.model_validate_json(event(2)).model_copy(update={"fingerprint": "f"})
    history = ResolvedHistory(Settings())
    history._add(first.model_dump_json().encode(), NOW_MS + 60_000)  # its owner's clock ahead
    history._add(second.model_dump_json().encode(), NOW_MS)  # read after it: published after
    assert [e.alert_id for e in history.published_since(NOW_MS - 1)] == ["a-1", "a-2"]


@pytest.mark.timeout(60)
def test_the_history_is_known_complete_only_once_read_to_the_end(
    broker: EmbeddedBroker,
) -> None:
    """A starting worker answered the resolved alerts it had read so far, with 200, and
    posted to Alertmanager an episode's older resolution where it had not yet read the
    newer one. Now it says when it has read every partition up to its end (on the broker
    whose ListOffsets answer is short of it): records in several batches, a partition
    empty."""
    settings = Settings(broker=broker.url)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(settings.alerts_topic, 3, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
    count = 0
    for _ in range(30):
        for partition in (0, 1):
            for _ in range(20):
                producer.send(settings.alerts_topic, event(count), partition=partition)
                count += 1
        producer.flush()
    producer.close()

    async def run() -> None:
        history = ResolvedHistory(settings)
        assert not history.caught_up
        task = asyncio.create_task(history.follow())
        try:
            deadline = time.monotonic() + 30
            while not history.caught_up:
                assert time.monotonic() < deadline, f"not caught up: {len(history.events)}"
                await asyncio.sleep(0.005)
            # known complete: every record is read (the latest KEPT of them kept)
            assert len(history.events) == KEPT
            assert f"a-{count - 1}" in history.events
            assert f"a-{count - 21}" in history.events  # partition 0's last
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())


@pytest.mark.timeout(90)
def test_a_topic_created_again_is_read_anew(tmp_path: Path) -> None:
    """The embedded broker restarted empty: the history kept answering the resolutions of
    the lost topic, and read none of the new one below its old positions."""
    port = free_port()

    def broker_with(log: str, first: int, n: int) -> EmbeddedBroker:
        broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / log).start()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(settings.alerts_topic, 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for i in range(first, first + n):
            producer.send(settings.alerts_topic, event(i))
        producer.flush()
        producer.close()
        return broker

    settings = Settings(broker=f"kafka://127.0.0.1:{port}")
    broker = broker_with("first.log", 0, 10)

    async def run() -> None:
        nonlocal broker
        history = ResolvedHistory(settings)
        task = asyncio.create_task(history.follow())
        try:
            await wait(lambda: history.caught_up and len(history.events) == 10)
            broker.stop()
            broker = broker_with("second.log", 100, 3)
            await wait(lambda: set(history.events) == {"a-100", "a-101", "a-102"})
            await wait(lambda: history.caught_up)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(run())
    finally:
        broker.stop()


async def wait(condition: Callable[[], bool], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


class _Record:
    def __init__(self, value: bytes) -> None:
        self.value = value
        self.timestamp = NOW_MS


class _ResettingConsumer:
    """A consumer of one partition as aiokafka behaves on Apache Kafka when the topic is
    created again under it: the fetch beyond the new end is out of range, and the consumer
    resets to the start of the new topic (auto_offset_reset) with no error."""

    #: (records, position after them) of each getmany, shared by every consumer made
    script: list[tuple[list[bytes], int]] = []

    def __init__(self, **_: object) -> None:
        self.at = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: list[object]) -> None: ...

    async def offsets_for_times(self, query: dict[object, int]) -> dict[object, None]:
        return dict.fromkeys(query)  # nothing that recent: read from the end

    async def seek_to_end(self, tp: object) -> None:
        self.at = 0

    async def getmany(self, **_: object) -> dict[str, list[_Record]]:
        if not self.script:
            await asyncio.sleep(0.01)
            return {}
        values, self.at = self.script.pop(0)
        return {"tp": [_Record(v) for v in values]}

    async def position(self, tp: object) -> int:
        return self.at

    def highwater(self, tp: object) -> int:
        return self.at


@pytest.mark.timeout(10)
def test_a_topic_created_again_on_apache_kafka_is_read_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Apache Kafka the consumer, fetching beyond the new topic's end, is reset to its
    start with no error: the history kept the lost topic's resolutions beside the new
    one's (only Tansu's way, a position left beyond the end, was seen)."""
    from streams.pipeline import alert_history

    lost = [event(i) for i in range(10)]
    new = [event(i) for i in range(100, 103)]
    _ResettingConsumer.script = [(lost, 10), (new, 3), (new, 3)]
    monkeypatch.setattr(alert_history, "AIOKafkaConsumer", _ResettingConsumer)

    async def run() -> None:
        history = ResolvedHistory(Settings())
        task = asyncio.create_task(history.follow())
        try:
            await wait(lambda: not _ResettingConsumer.script, timeout=5)
            await asyncio.sleep(0.05)
            assert set(history.events) == {"a-100", "a-101", "a-102"}
            assert history.caught_up
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
