"""Intake: one input record -> a classified document for the keyed topic, or its dead
letter. Pure but for the clock (no broker, no I/O): ingest (`streams/pipeline/ingest.py`)
runs it on every record it consumes, and the HTTP API checks each posted report's place
with `classify_report` before it sends the report on (`streams/web/report_intake.py`).

The steps: validate (`schemas/validation.py`), classify (`streams/classify/`), and take the
document's content digests (`streams/record/documents.py`); a record that fails any of them,
or that the Kafka client could not even unpack (`unreadable_rejected`), becomes a bounded
dead letter (`schemas/dead_letter.py`). `route` never raises on account of a record:
whatever goes wrong with one (hostile input, a bug in classification or serialisation)
dead-letters it as `internal_error`, so one record never stalls a partition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.codes import RejectReason
from schemas.dead_letter import (
    MAX_UNCONVERTED_CHARS,
    UNCONVERTED_HEADER,
    dead_letter,
    dead_letter_key,
)
from schemas.incident import encode_fields
from schemas.report import Report, WithdrawnReport, report_key
from schemas.validation import FieldError, Rejection, validate_report
from streams.classify.classifier import Classifier, UnknownPlace
from streams.record.documents import document_digest, report_digest

log = logging.getLogger(__name__)


class InputRecord(Protocol):
    """What `route` reads of a record of the input topic (an aiokafka `ConsumerRecord`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class UnreadableRecord(Protocol):
    """What `unreadable_rejected` reads of a record the Kafka client cannot unpack
    (`streams/kafka/raw_records.py::Unreadable`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def why(self) -> str: ...


def process_record(
    raw: bytes,
    received_at: datetime,
    classifier: Classifier,
    origin: tuple[int, int] | None = None,
    keep_sent: bool = True,
) -> tuple[str, bytes] | Rejection:
    """Pure step of the stage: bytes -> (report key, incident JSON) or a rejection. A
    report's times must not be after `received_at` (its arrival, not the time it is
    processed: the verdict on a record must not depend on how far behind the stage is, nor
    change when it is read again); `origin`: the input record's (partition, offset), kept in
    the document (`Incident.input`); `keep_sent`: as `classify_report`."""
    result = validate_report(raw, now=received_at)
    if isinstance(result, Rejection):
        return result
    return classify_report(result, received_at, classifier, origin, keep_sent)


def classify_report(
    report: Report | WithdrawnReport,
    received_at: datetime,
    classifier: Classifier,
    origin: tuple[int, int] | None = None,
    keep_sent: bool = True,
) -> tuple[str, bytes] | Rejection:
    """A validated report -> (report key, its classified document) or a rejection.
    `keep_sent`: the document carries the digest of the report as sent (`sent_digest`);
    False for workers before internal format 3, whose strict models refuse the field."""
    key = report_key(report.source, report.report_id)
    if isinstance(report, WithdrawnReport):
        withdrawal = classifier.withdrawal(report, received_at).model_dump_json().encode()
        if origin is not None:  # `input` last, as in a report's document
            withdrawal = withdrawal[:-1] + b',"input":[%d,%d]}' % origin
        return key, withdrawal
    try:
        fields = classifier.fields(report, received_at)
    except UnknownPlace as exc:
        # a field error as for any rejection: the dead letter and the HTTP item name the field
        error = FieldError("location.place", RejectReason.UNKNOWN_PLACE.value, str(exc))
        return Rejection(RejectReason.UNKNOWN_PLACE, str(exc), (error,))
    fields["digest"] = document_digest(fields).hex()
    if keep_sent:
        fields["sent_digest"] = report_digest(report).hex()
    if origin is not None:
        fields["input"] = origin
    return key, encode_fields(fields)


def arrival_time(record: InputRecord, now: datetime | None = None) -> datetime:
    return stamped_time(record.timestamp, now or datetime.now(UTC))


def stamped_time(timestamp_ms: int | None, now: datetime) -> datetime:
    """A record's Kafka timestamp as an arrival time: `now` when it has none, or one ahead."""
    if timestamp_ms and timestamp_ms > 0:
        try:
            stamped = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        except (OverflowError, ValueError, OSError):  # a producer may stamp any int64
            return now
        return min(stamped, now)  # a producer clock ahead of ours is not an arrival time
    return now


@dataclass(frozen=True, slots=True)
class Rejected:
    """A dead letter to send for one input record."""

    reason: RejectReason
    key: bytes | None
    value: bytes


def route(
    record: InputRecord,
    classifier: Classifier,
    now: datetime | None = None,
    keep_origin: bool = False,
    keep_sent: bool = True,
) -> tuple[bytes, bytes] | Rejected:
    """One input record -> (report key, incident JSON) for the keyed topic, or its dead
    letter. Never raises on account of the record: whatever fails while processing it
    dead-letters it as `internal_error`, and the stream goes on. `now`: the clock, read
    once per batch by the stage; the record arrived at its Kafka timestamp, or `now` when it
    has none or one ahead (`arrival_time`). `keep_origin`: the document names the record's
    partition and offset (`Incident.input`); `keep_sent`: as `classify_report`."""
    raw: bytes = record.value if record.value is not None else b""
    now = now or datetime.now(UTC)
    received = arrival_time(record, now)
    origin = (record.partition, record.offset) if keep_origin else None
    try:
        outcome = process_record(raw, received, classifier, origin, keep_sent)
        if not isinstance(outcome, Rejection):
            key, value = outcome
            return key.encode("utf-8"), value
    except Exception as exc:
        log.exception(
            "processing %s[%d]@%d failed; dead-lettering it as internal_error",
            record.topic,
            record.partition,
            record.offset,
        )
        outcome = Rejection(
            RejectReason.INTERNAL_ERROR,
            f"the monitor failed on this record (a bug; replay it once fixed): "
            f"{type(exc).__name__}: {exc}",
        )
    # whatever the reason (the row's text may be JSON, `12345`, or too large), a row the feed
    # could not convert says why
    outcome = _with_conversion_reason(outcome, record.headers)
    value = dead_letter(
        raw,
        outcome,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        received_at=received,
    )
    return Rejected(outcome.reason, dead_letter_key(record.key), value)


def _with_conversion_reason(rejection: Rejection, headers: Any) -> Rejection:
    """The rejection, whatever its reason, of a CSV row the feed sent as its text, saying
    why it could not be converted (`UNCONVERTED_HEADER`); that of any other record as it is."""
    why = next((v for k, v in headers or () if k == UNCONVERTED_HEADER and v), None)
    if not isinstance(why, bytes):
        return rejection
    said = why.decode("utf-8", "replace")[:MAX_UNCONVERTED_CHARS]
    return Rejection(
        rejection.reason,
        f"a CSV row the feed could not convert ({said}), sent as its text: {rejection.message}",
        rejection.errors,
    )


# -- records the Kafka client cannot read (`streams/kafka/raw_records.py`) ---------------------
def unreadable_rejected(record: UnreadableRecord, now: datetime) -> Rejected:
    """A record the Kafka client cannot unpack, dead-lettered as `invalid_encoding` with
    what could be read of it."""
    rejection = Rejection(RejectReason.INVALID_ENCODING, record.why)
    value = dead_letter(
        record.value,
        rejection,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        received_at=stamped_time(record.timestamp, now),
    )
    return Rejected(rejection.reason, dead_letter_key(record.key), value)
