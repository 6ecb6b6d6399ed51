"""Settling an outbox: which of the alert events a previous owner committed to publish are
not on the alert topic yet. Shared by the alert stage and the theatre stage, whose
recoveries publish only those (docs/alerting.md, "Once, and never lost")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import TopicPartition

from schemas.alert import AlertEvent
from streams.config import Settings
from streams.kafka.offsets import read_partitions


class Unpublished(Exception):
    """Some alert events of a publish were not acknowledged: `events`, in their order.
    The others are on the topic: a retry sends only these (one that sent them all again
    put the acknowledged ones on the topic twice)."""

    def __init__(self, events: list[AlertEvent], cause: BaseException) -> None:
        super().__init__(f"{len(events)} alert events not acknowledged: {cause!r}")
        self.events = events
        self.ids = {id(e) for e in events}


def unpublished_only(events: list[AlertEvent], failed: Unpublished) -> list[AlertEvent]:
    """`events` less those a failed publish got onto the topic, in order."""
    return [e for e in events if id(e) in failed.ids]


#: How far before an outbox was written the alert topic is read for its events: they were
#: stamped after it by the same worker's clock; this only absorbs rounding.
OUTBOX_LOOKBACK_MS = 60_000


def identity_of(value: bytes) -> tuple[str, str] | None:
    """(alert id, status) of an alert event as published; None for anything else."""
    try:
        doc = json.loads(value)
        return str(doc["alert_id"]), str(doc["status"])
    except (ValueError, KeyError, TypeError):
        return None  # not an alert event: nothing to match


async def not_on_alert_topic(
    settings: Settings,
    partitions_of: Callable[[str], Awaitable[list[int]]],
    events: Sequence[AlertEvent],
    written_ms: int,
) -> list[AlertEvent]:
    """The `events` of an outbox written at `written_ms` that the alert topic does not hold
    (by alert id and status), in their order."""
    if not events:
        return []
    topic = settings.alerts_topic
    published = await read_partitions(
        settings.bootstrap(),
        [TopicPartition(topic, p) for p in await partitions_of(topic)],
        since_ms=written_ms - OUTBOX_LOOKBACK_MS,
        **settings.kafka_security(),
    )
    on_topic = {identity_of(v) for rows in published.values() for _, v in rows if v}
    return [e for e in events if (e.alert_id, e.status) not in on_topic]
