"""A rejected input as it lands on `ceasefire.reports.dlq`: enough to see why and to replay it."""

from __future__ import annotations

import base64

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.codes import RejectReason

#: Most bytes of the original a dead letter copies. Base64 makes them 4/3 as many, and the
#: record must stay well under Kafka's default 1 MiB message limit whatever the input
#: size: a dead letter the producer refuses would stall its input partition.
MAX_ORIGINAL_BYTES = 256 * 1024

#: A record header `ceasefire-monitor feed` puts on a CSV row it could not convert and sends
#: as its text: why (UTF-8). Ingest adds it to that row's dead-letter message, which would
#: otherwise give only the JSON parser's complaint about CSV text.
UNCONVERTED_HEADER = "ceasefire-unconverted"
#: Most characters of that reason a dead letter repeats.
MAX_UNCONVERTED_CHARS = 300


class DeadLetterError(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    type: str
    message: str


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: RejectReason
    message: str
    errors: list[DeadLetterError] = []
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    #: The input's key as text (undecodable bytes replaced), at most its first 1 KiB.
    key: str | None = None
    #: The original bytes, base64-encoded: they may not be UTF-8 or JSON at all. Only the
    #: first MAX_ORIGINAL_BYTES when `original_truncated`.
    original_base64: str
    #: The same bytes as text, for reading at a glance: only when the whole original is
    #: UTF-8, was not truncated and the record stays within its size bound.
    original_text: str | None = None
    #: Size of the whole original in bytes (None in records written before it existed).
    original_size: int | None = None
    #: True when `original_base64` holds only the first MAX_ORIGINAL_BYTES of the original.
    original_truncated: bool = False
    received_at: AwareDatetime
    rejected_at: AwareDatetime

    @classmethod
    def encode_original(cls, raw: bytes) -> tuple[str, str | None, bool]:
        """(base64 of at most MAX_ORIGINAL_BYTES, text when whole and UTF-8, truncated)."""
        truncated = len(raw) > MAX_ORIGINAL_BYTES
        kept = raw[:MAX_ORIGINAL_BYTES] if truncated else raw
        text: str | None = None
        if not truncated:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        return base64.b64encode(kept).decode("ascii"), text, truncated

    def original(self) -> bytes:
        """The original bytes (their first MAX_ORIGINAL_BYTES when `original_truncated`)."""
        return base64.b64decode(self.original_base64)
