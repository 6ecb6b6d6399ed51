"""Dead-letter records for rejected inputs: building them, and sending those of the
internal topics (`InternalDeadLetters`).

Every record is bounded (MAX_DEAD_LETTER_BYTES) whatever the input, its key or the
rejection say: the dead-letter send must never be refused as too large, or the input
partition would retry the record forever. Text copied into the record is cut and
made encodable (a lone surrogate in an exception message would fail serialisation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.codes import RejectReason
from schemas.dead_letter import DeadLetter, DeadLetterError
from schemas.validation import Rejection
from streams import metrics
from streams.config import Settings
from streams.kafka.offsets import read_records
from streams.kafka.producer import SharedProducer

log = logging.getLogger(__name__)

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


class InternalDeadLetters:
    """Sends records of an internal topic that a stage cannot take to the dead-letter topic,
    through a process's shared producer. Called as `dead_letter` in a stage's `Ports`."""

    def __init__(self, settings: Settings, producer: SharedProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def __call__(
        self,
        topic: str,
        records: Sequence[tuple[int, int, bytes, str]],
        reason: str = RejectReason.INVALID_VALUE.value,
        keys: Sequence[bytes | None] | None = None,
    ) -> None:
        """Records (partition, offset, value, error) to the dead-letter topic with `reason`,
        never silently dropped. `invalid_value`: not what this monitor writes there.
        `keys`: of each record, its dead letter's key (none: no key)."""
        producer = await self.producer.started()
        code = RejectReason(reason)
        sends = []
        # A record this monitor did not write there is a fault to look into; a conflict of
        # revisions is the sender's data, counted in the metric and answered on the DLQ.
        level = logging.ERROR if code is RejectReason.INVALID_VALUE else logging.WARNING
        for n, (partition, offset, raw, error) in enumerate(records):
            key = None if keys is None else dead_letter_key(keys[n])
            log.log(
                level,
                "dead-lettering a record at %s[%d]@%d (%s): %s",
                topic,
                partition,
                offset,
                code.value,
                error,
            )
            message = (
                f"not a record this monitor writes to its internal topic {topic}: {error}"
                if code is RejectReason.INVALID_VALUE
                else error
            )
            value = dead_letter(
                raw,
                Rejection(code, message),
                topic=topic,
                partition=partition,
                offset=offset,
                key=key,
                received_at=datetime.now(UTC),
            )
            sends.append(await producer.send(self.settings.dlq_topic, value, key=key))
        await asyncio.gather(*sends)
        # counted once acknowledged: a step whose dead letters failed sends them again
        metrics.REJECTED.labels(code.value).inc(len(sends))


async def input_reader(
    settings: Settings, wanted: set[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The input topic's records at (partition, offset), those still there: the reports as
    sent, for a revision conflict's dead letter (`Ports.read_input`)."""
    return await read_records(
        settings.bootstrap(),
        settings.reports_topic,
        wanted,
        timeout=10.0,
        **settings.kafka_security(),
    )
