"""The counting stage: de-duplicate incidents and count them into event-time tallies.

State design (see docs/architecture.md):
- `TallyIndex` holds, per owned partition of the keyed topic, a `PartitionTally`
  (seen report keys and hourly event-time buckets). It is derived state.
- The durable state is the Faust table `tally-ledger`: one entry per partition per
  batch, holding the reports that batch counted, keyed `<partition>:<last offset>`.
  One changelog write per partition per batch, never one per report.
- After a rebalance or restart Faust recovers the table from its changelog and the
  index is rebuilt lazily from the entries of the partitions this worker owns.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from schemas.report import report_key
from streams import metrics
from streams.pipeline.packs import unpack
from streams.tallies.counted import Counted
from streams.tallies.ledger import decode_entry, entry_partition
from streams.tallies.state import PartitionTally


def counted_from(key: str, incident: Mapping[str, Any]) -> Counted:
    return Counted(
        key,
        datetime.fromisoformat(incident["occurred_at"]).timestamp(),
        incident["zone"],
        incident["perpetrator"],
        incident["category"],
        int(incident["killed"]),
        int(incident["wounded"]),
    )


class TallyIndex:
    """This worker's view of the counts of the partitions it owns."""

    def __init__(self, retention_seconds: float) -> None:
        self._retention = retention_seconds
        self.partitions: dict[int, PartitionTally] = {}

    def partition(self, p: int) -> PartitionTally:
        part = self.partitions.get(p)
        if part is None:
            part = self.partitions[p] = PartitionTally()
        return part

    def rebuild(self, entries: Mapping[int, Iterable[tuple[bytes, bytes | None]]]) -> int:
        """Replace the index with the given partitions' changelog entries; returns entries read."""
        self.partitions = {}
        cutoff = time.time() - self._retention
        count = 0
        for p, records in entries.items():
            latest: dict[str, bytes | None] = {}
            for raw_key, value in records:  # compacted topic: the last value of a key wins
                latest[raw_key.decode()] = value
            part = self.partition(p)
            for key in sorted(latest):
                raw = latest[key]
                if raw is None or entry_partition(key) != p:
                    continue
                count += 1
                for c in decode_entry(raw):
                    if c.occurred >= cutoff:
                        part.add(c)
        return count

    def forget_expired(self, now: float) -> int:
        return sum(part.forget_before(now - self._retention) for part in self.partitions.values())


#: What counting and its metrics read of an incident.
_NEEDED = (
    "source",
    "report_id",
    "source_type",
    "occurred_at",
    "received_at",
    "zone",
    "perpetrator",
    "category",
    "severity",
    "killed",
    "wounded",
)


class Decoded(NamedTuple):
    counted: Counted
    received: float  # epoch seconds
    incident: dict[str, Any]
    raw: bytes


class Undecodable(NamedTuple):
    """A record on the keyed topic that is not an incident of this monitor."""

    partition: int
    offset: int
    raw: bytes
    error: str


def decode_packs(
    packs: Iterable[tuple[int, int, bytes]],
) -> tuple[dict[int, list[Decoded]], list[Undecodable]]:
    """The incidents of a batch of (partition, offset, pack), grouped by partition, and
    the records that are not incidents (for the dead-letter topic)."""
    grouped: dict[int, list[Decoded]] = defaultdict(list)
    bad: list[Undecodable] = []
    for partition, offset, pack in packs:
        out = grouped[partition]
        for raw in unpack(pack):
            try:
                incident = json.loads(raw)
                missing = [k for k in _NEEDED if k not in incident]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
                key = report_key(incident["source"], incident["report_id"])
                received = datetime.fromisoformat(incident["received_at"]).timestamp()
                out.append(Decoded(counted_from(key, incident), received, incident, raw))
            except (ValueError, TypeError, AttributeError) as exc:
                bad.append(Undecodable(partition, offset, raw, str(exc) or repr(exc)))
    return grouped, bad


def observe(incident: Mapping[str, Any], occurred: float, received: float, now: float) -> None:
    """Metrics of one newly counted incident (times already parsed, in epoch seconds)."""
    zone, party = incident["zone"], incident["perpetrator"]
    metrics.REPORTS.labels(incident["source_type"]).inc()
    metrics.INCIDENTS.labels(zone, party, incident["category"], incident["severity"]).inc()
    if incident["killed"]:
        metrics.CASUALTIES.labels(zone, party, "killed").inc(incident["killed"])
    if incident["wounded"]:
        metrics.CASUALTIES.labels(zone, party, "wounded").inc(incident["wounded"])
    metrics.PROCESSING_SECONDS.observe(max(now - received, 0.0))
    metrics.EVENT_LAG_SECONDS.observe(max(received - occurred, 0.0))
    metrics.LAST_REPORT_TIMESTAMP.labels(incident["source_type"]).set(received)
