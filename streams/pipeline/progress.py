"""Which input offsets a stateful stage has applied: the stage owns its progress.

Faust acknowledges, and so commits, events it skips during a rebalance (a stale
generation, or flow control paused: `Stream.__aiter__` acks them in a `finally`, and
`take_events` acks a whole yielded batch). Its committed offset can therefore pass
records that were never counted; the next owner starts after them and they are lost
(issue 9: 2,080 of 60,000 reports in one join under load).

So a stage never trusts the position it is handed. Its durable state records, per
input partition, the last offset whose effects it holds; on recovery that becomes
`applied`. Every record offered to the stage is then checked against it:

- at or below `applied`: already in the state (a replay): dropped;
- the next offset: applied, in order;
- beyond it: the records in between were skipped by someone; the stage reads that range
  itself (`streams/kafka/offsets.py::read_range`) and applies it first.

Records of partitions the stage does not own are dropped. A partition whose high
watermark stays ahead of `applied` with no record arriving (the skipped records were the
last ones) is found by `behind`, and the stage reads that tail itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple


class Record(NamedTuple):
    """One record of a stage's input topic."""

    partition: int
    offset: int
    value: bytes


class Gap(NamedTuple):
    """Offsets [start, end) of a partition that must be applied before `end`."""

    partition: int
    start: int
    end: int


class Plan(NamedTuple):
    gaps: list[Gap]
    fresh: list[Record]
    replayed: int
    foreign: int


class Progress:
    """Per owned input partition: the last offset applied (-1: none yet)."""

    def __init__(self) -> None:
        self.applied: dict[int, int] = {}

    def reset(self, owned: Iterable[int], applied: Mapping[int, int]) -> None:
        """After a recovery: own `owned`, each applied up to what the state says."""
        self.applied = {p: applied.get(p, -1) for p in owned}

    def clear(self) -> None:
        self.applied = {}

    def plan(self, records: Sequence[Record]) -> Plan:
        """Split records (in arrival order) into the gaps to read first and the fresh
        records to apply; count replays and records of partitions not owned."""
        expected = {p: o + 1 for p, o in self.applied.items()}  # next offset per partition
        gaps: list[Gap] = []
        fresh: list[Record] = []
        replayed = foreign = 0
        for r in records:
            nxt = expected.get(r.partition)
            if nxt is None:
                foreign += 1
                continue
            if r.offset < nxt:
                replayed += 1
                continue
            if r.offset > nxt:
                gaps.append(Gap(r.partition, nxt, r.offset))
            fresh.append(r)
            expected[r.partition] = r.offset + 1
        return Plan(gaps, fresh, replayed, foreign)

    def advance(self, records: Iterable[Record]) -> None:
        """Records now applied (their effects durable or about to be, in order)."""
        for r in records:
            if r.offset > self.applied.get(r.partition, r.offset):
                self.applied[r.partition] = r.offset

    def skip(self, partition: int, through: int) -> None:
        """Offsets up to `through` hold nothing left to apply (the broker no longer has
        them): what is applied moves past them, as records' would."""
        if partition in self.applied and through > self.applied[partition]:
            self.applied[partition] = through

    def behind(self, highwaters: Mapping[int, int]) -> list[Gap]:
        """Owned partitions whose end (high watermark) is beyond what is applied."""
        return [
            Gap(p, self.applied[p] + 1, hw)
            for p, hw in sorted(highwaters.items())
            if p in self.applied and hw > self.applied[p] + 1
        ]
