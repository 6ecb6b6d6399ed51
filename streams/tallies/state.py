"""Event-time tally state of one partition, and queries over several.

A report is counted once: `PartitionTally.add` ignores a key it has seen within
retention. Counts live in hourly buckets by event time, so a report that arrives
days late lands in the bucket of when it happened. A window query sums whole
buckets from their totals and scans only the two edge buckets report by report,
which makes answers exact to the second at any `as_of`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.tallies.counted import FIELD_INDEX, Cell, Counted
from streams.tallies.windows import grouping, window_seconds

BUCKET_SECONDS = 3600

#: [incidents, reports, killed, wounded]
Totals = list[int]


@dataclass(slots=True)
class Bucket:
    totals: dict[Cell, Totals] = field(default_factory=dict)
    reports: list[Counted] = field(default_factory=list)

    def add(self, c: Counted) -> None:
        self.reports.append(c)
        cell = (c.zone, c.party, c.category)
        t = self.totals.get(cell)
        if t is None:
            self.totals[cell] = [1, 1, c.killed, c.wounded]
        else:
            t[0] += 1
            t[1] += 1
            t[2] += c.killed
            t[3] += c.wounded


@dataclass(slots=True)
class PartitionTally:
    """Counts of the reports of one partition of the keyed topic."""

    #: report key -> event time, for de-duplication and for forgetting by retention
    seen: dict[str, float] = field(default_factory=dict)
    buckets: dict[int, Bucket] = field(default_factory=dict)

    def is_new(self, key: str) -> bool:
        return key not in self.seen

    def add(self, c: Counted) -> bool:
        """Count a report; False (and nothing counted) when its key was seen before."""
        if c.key in self.seen:
            return False
        self.seen[c.key] = c.occurred
        b = int(c.occurred // BUCKET_SECONDS)
        bucket = self.buckets.get(b)
        if bucket is None:
            bucket = self.buckets[b] = Bucket()
        bucket.add(c)
        return True

    def forget_before(self, cutoff: float) -> int:
        """Drop reports that happened before `cutoff` (retention). Returns how many."""
        old = [b for b in self.buckets if (b + 1) * BUCKET_SECONDS <= cutoff]
        dropped = 0
        for b in old:
            for c in self.buckets.pop(b).reports:
                self.seen.pop(c.key, None)
                dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self.seen)


Row = dict[str, str | int]


def query(partitions: Iterable[PartitionTally], *, window: str, by: str, as_of: float) -> list[Row]:
    """Rows of {<by keys>, incidents, reports, killed, wounded} for reports with
    occurred_at in (as_of - window, as_of], summed over `partitions`."""
    keys = grouping(by)
    end = as_of
    start = as_of - window_seconds(window)
    first = int(start // BUCKET_SECONDS)
    last = int(end // BUCKET_SECONDS)
    picks = tuple(FIELD_INDEX[k] for k in keys)
    acc: dict[tuple[str, ...], Totals] = defaultdict(lambda: [0, 0, 0, 0])
    for part in partitions:
        for b in range(first, last + 1):
            bucket = part.buckets.get(b)
            if bucket is None:
                continue
            if b * BUCKET_SECONDS > start and (b + 1) * BUCKET_SECONDS <= end:
                for cell, t in bucket.totals.items():
                    # cell is (zone, party, category) == Counted fields 2..4
                    row = acc[tuple(cell[i - 2] for i in picks)]
                    row[0] += t[0]
                    row[1] += t[1]
                    row[2] += t[2]
                    row[3] += t[3]
            else:
                for c in bucket.reports:
                    if start < c.occurred <= end:
                        row = acc[tuple(str(c[i]) for i in picks)]
                        row[0] += 1
                        row[1] += 1
                        row[2] += c.killed
                        row[3] += c.wounded
    return _rows(keys, acc)


def merge_rows(parts: Iterable[list[Row]], keys: tuple[str, ...]) -> list[Row]:
    """Sum row lists answered by several workers for the same query."""
    acc: dict[tuple[str, ...], Totals] = defaultdict(lambda: [0, 0, 0, 0])
    for rows in parts:
        for r in rows:
            t = acc[tuple(str(r[k]) for k in keys)]
            for i, name in enumerate(("incidents", "reports", "killed", "wounded")):
                value = r[name]
                t[i] += int(value)
    return _rows(keys, acc)


def _rows(keys: tuple[str, ...], acc: dict[tuple[str, ...], Totals]) -> list[Row]:
    return [
        {
            **dict(zip(keys, group, strict=True)),
            "incidents": t[0],
            "reports": t[1],
            "killed": t[2],
            "wounded": t[3],
        }
        for group, t in sorted(acc.items())
    ]
