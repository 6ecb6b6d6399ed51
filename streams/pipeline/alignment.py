"""Which input partitions ingest takes from next: the ones furthest behind in record time.

A consumer drains its partitions at uneven speeds (fetch responses differ in size and
timing), so during a backlog one partition can run ahead of another. Every later stage then
sees a wider band of event time at once, and the incident book keeps the band open in memory
(docs/record.md, "Retention: closed days"). Measured, one run each of a million reports of
three years fed oldest first: the worker's highest RSS while draining was 1,320 MiB without
this and 1,184 MiB with it (docs/operations.md, "State held").

So ingest takes, while a backlog lasts, only from the partitions whose last record is within
`skew_ms` of the earliest last record among the partitions still behind their end, as
Kafka Streams does with `max.task.idle.ms`: the others keep their fetched records buffered
until the slow ones catch up. Record time is the Kafka record timestamp (when a feed sent
the report), which for an import is the order of the export; it costs nothing to read.
A timestamp after the wall clock (a producer may stamp any int64) or none (<= 0) says
nothing of where its partition stands: the partition takes no part in the alignment until
a record gives it a time again. Clamped to the clock instead, one record stamped in 2100
still held its partition back for the rest of a backlog, every other partition's records
being older than the clock.

It never stalls ingest: a partition not behind its end is always taken from (live reports
are never held back by a backlog elsewhere), and when the partitions it waits for yield
nothing for `patience` seconds (a partition the broker does not serve, say) it takes from
all. Pure: the stage feeds it what it consumed and the ends it knows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class Alignment:
    """Per partition: the timestamp (ms) of the last record taken. `choose` names the
    partitions to take from next (None: all of them)."""

    skew_ms: int = 100
    patience: float = 1.0
    last_ts: dict[int, int] = field(default_factory=dict)
    #: partitions waited for in vain: not waited for again until they yield a record
    absent: set[int] = field(default_factory=set)
    #: partitions whose last record's time is not known (none, or after the clock): taken
    #: from, neither waited for nor held back, until a record gives them one
    untimed: set[int] = field(default_factory=set)
    _waiting: set[int] = field(default_factory=set)
    _idle_since: float | None = None

    def taken(self, partition: int, timestamp_ms: int, now_ms: int | None = None) -> None:
        """The partition yielded records, the last stamped `timestamp_ms`; `now_ms`: the wall
        clock (default: read here)."""
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        self.absent.discard(partition)
        if 0 < timestamp_ms <= now_ms:
            self.last_ts[partition] = timestamp_ms
            self.untimed.discard(partition)
        else:
            self.last_ts.pop(partition, None)
            self.untimed.add(partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions no longer owned (a rebalance): their history does not hold others."""
        for p in partitions:
            self.last_ts.pop(p, None)
            self.absent.discard(p)
            self.untimed.discard(p)

    def choose(
        self, behind: Mapping[int, int], owned: Iterable[int], now: float
    ) -> set[int] | None:
        """`behind`: records left per owned partition (end minus position, where known).
        Returns the partitions to take from, or None for all."""
        if self._idle_since is not None and now - self._idle_since >= self.patience:
            self.absent |= self._waiting  # they did not come: stop waiting for them
            self._idle_since = None
        owned = list(owned)
        free = self.absent | self.untimed  # taken from, never waited for
        lagging = [p for p in owned if behind.get(p, 0) > 0 and p not in free]
        unread = {p for p in lagging if p not in self.last_ts}
        if unread:
            # a partition not yet read from: where it stands is unknown, so read it first
            chosen = unread
        elif len(lagging) < 2:
            self._waiting = set()
            return None  # nothing to align
        else:
            limit = min(self.last_ts[p] for p in lagging) + self.skew_ms
            chosen = {p for p in lagging if self.last_ts[p] <= limit}
        self._waiting = chosen
        # partitions not behind are always taken from: live reports are never held back
        chosen = chosen | {p for p in owned if behind.get(p, 0) <= 0 or p in free}
        if len(chosen) == len(owned):
            self._waiting = set()
            return None
        return chosen

    def yielded(self, anything: bool, now: float) -> None:
        """What the last choice gave: nothing starts the patience clock."""
        if anything:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
