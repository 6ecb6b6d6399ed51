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


#: Bytes per entry, bounded too: report keys of 193 astral-plane characters take 12
#: bytes each as JSON escapes, and 1,000 of them would exceed the message limit.
ENTRY_BYTES = 256 * 1024


def row_bytes(c: Counted) -> int:
    """An upper bound of a report's encoded row: codes and numbers take under 128 bytes;
    a key character at most 12 (an escaped surrogate pair), 2 when printable ASCII."""
    key = c.key
    per_char = 2 if key.isascii() and key.isprintable() else 12
    return 128 + per_char * len(key)


def chunks(reports: Sequence[Counted]) -> list[Sequence[Counted]]:
    """A batch's counted reports in entries of at most ENTRY_SIZE and ENTRY_BYTES."""
    out: list[Sequence[Counted]] = []
    start, size = 0, 0
    for i, c in enumerate(reports):
        n = row_bytes(c)
        if i > start and (i - start >= ENTRY_SIZE or size + n > ENTRY_BYTES):
            out.append(reports[start:i])
            start, size = i, 0
        size += n
    if start < len(reports):
        out.append(reports[start:])
    return out


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


def entry_offset(key: str) -> int | None:
    """The last source offset an entry's batch covered (None: not an entry key)."""
    parts = key.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])
