"""A rejected input as it lands on `ceasefire.reports.dlq`: enough to see why and to replay it.

Every record is bounded (MAX_DEAD_LETTER_BYTES) whatever the input, its key or the
rejection say (`dead_letter`): the dead-letter send must never be refused as too large, or
the input partition would retry the record forever. Text copied into the record is cut and
made encodable (a lone surrogate in an exception message would fail serialisation).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.codes import RejectReason
from schemas.validation import Rejection

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


#: Ceiling of an encoded dead letter, well under the 1 MiB default message limit of Kafka
#: producers and brokers. The bounds below keep the worst case (every character escaped
#: six-fold in JSON) under it: 256 KiB of original in base64 is 342 KiB, errors at most
#: 50 * 530 * 6 = 159 KiB, message and key 18 KiB.
MAX_DEAD_LETTER_BYTES = 640 * 1024
MAX_ERRORS = 50
MAX_FIELD_CHARS = 200
MAX_TYPE_CHARS = 30
MAX_ERROR_CHARS = 300
MAX_MESSAGE_CHARS = 2000
#: Longest key kept, in the record and as the dead letter's own Kafka key.
MAX_KEY_BYTES = 1024


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of an input's dead letter: its own key, cut to MAX_KEY_BYTES."""
    return key if key is None or len(key) <= MAX_KEY_BYTES else key[:MAX_KEY_BYTES]


def dead_letter(
    raw: bytes,
    rejection: Rejection,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    received_at: datetime,
    size: int | None = None,
) -> bytes:
    """The encoded DeadLetter of `raw`, at most MAX_DEAD_LETTER_BYTES long. `size`: of the
    original when `raw` is already only its first bytes (an HTTP item cut before this)."""
    b64, text, truncated = DeadLetter.encode_original(raw)
    if size is not None and size > len(raw):
        text, truncated = None, True  # no text copy of a part, as for a part cut here
    errors = [
        DeadLetterError(
            field=_text(e.field, MAX_FIELD_CHARS),
            type=_text(e.type, MAX_TYPE_CHARS),
            message=_text(e.message, MAX_ERROR_CHARS),
        )
        for e in rejection.errors[:MAX_ERRORS]
    ]
    message = _text(rejection.message, MAX_MESSAGE_CHARS)
    if len(rejection.errors) > MAX_ERRORS:
        note = f" ({len(rejection.errors)} field errors, the first {MAX_ERRORS} kept)"
        message = _text(message, MAX_MESSAGE_CHARS - len(note)) + note
    record = DeadLetter(
        reason=rejection.reason,
        message=message,
        errors=errors,
        source_topic=_text(topic, MAX_FIELD_CHARS),
        source_partition=partition,
        source_offset=offset,
        key=key[:MAX_KEY_BYTES].decode("utf-8", "replace") if key is not None else None,
        original_base64=b64,
        original_text=text,
        original_size=len(raw) if size is None else max(size, len(raw)),
        original_truncated=truncated,
        received_at=received_at,
        rejected_at=datetime.now(UTC),
    )
    encoded = record.model_dump_json().encode()
    if len(encoded) > MAX_DEAD_LETTER_BYTES:
        # Only the text copy can push it over (control characters escape six-fold in
        # JSON); the base64 copy holds the same bytes.
        encoded = record.model_copy(update={"original_text": None}).model_dump_json().encode()
    return encoded


def _text(value: str, limit: int) -> str:
    """`value` cut to `limit` characters and made UTF-8 encodable."""
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from an exception message or a decoded key
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value
