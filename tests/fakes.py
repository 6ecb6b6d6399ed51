"""In-memory stand-ins for aiokafka objects, shared by the stage tests."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

#: The producer's request limit (max_request_size), which a batch must stay under.
KAFKA_LIMIT = 1024 * 1024


class FakeBatch:
    """aiokafka's BatchBuilder as far as the stages use it: full past KAFKA_LIMIT."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.size = 0

    def append(self, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        if self.records and self.size + size > KAFKA_LIMIT:
            return None
        self.records.append((key, value))
        self.size += size
        return object()
