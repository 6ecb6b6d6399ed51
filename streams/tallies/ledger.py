"""The changelog entry: one per partition per processed batch, holding the reports that
batch counted. Replaying a partition's entries in order rebuilds its `PartitionTally`."""

from __future__ import annotations

import json
from collections.abc import Sequence

from streams.tallies.counted import Counted

FORMAT_VERSION = 1


#: Reports per entry: ~90 bytes each keeps an entry far below Kafka's 1 MB message limit.
ENTRY_SIZE = 1000


def entry_key(partition: int, last_offset: int, chunk: int = 0) -> str:
    # The batch's last source offset (and the chunk within the batch) make keys unique
    # and ordered within a partition.
    return f"{partition}:{last_offset:015d}:{chunk:05d}"


def chunks(reports: Sequence[Counted]) -> list[Sequence[Counted]]:
    """A batch's counted reports in entries of at most ENTRY_SIZE."""
    return [reports[i : i + ENTRY_SIZE] for i in range(0, len(reports), ENTRY_SIZE)]


def entry_partition(key: str) -> int:
    return int(key.split(":", 1)[0])


def encode_entry(reports: Sequence[Counted]) -> bytes:
    return json.dumps(
        {"v": FORMAT_VERSION, "r": [list(c) for c in reports]}, separators=(",", ":")
    ).encode()


def decode_entry(raw: bytes) -> list[Counted]:
    doc = json.loads(raw)
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown ledger entry version {doc.get('v')!r}")
    return [Counted(*row) for row in doc["r"]]
