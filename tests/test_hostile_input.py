"""No stall on hostile input: dead letters are bounded whatever the input, one record that
fails to process is dead-lettered while the batch goes on, and the HTTP API answers a
hostile body with a 400 or a per-item rejection, never a 500. Without a broker: the
ingest stage and the API run against stand-ins that refuse what a real producer refuses."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import RejectReason
from schemas.dead_letter import (
    MAX_DEAD_LETTER_BYTES,
    MAX_ERRORS,
    MAX_KEY_BYTES,
    MAX_ORIGINAL_BYTES,
    UNCONVERTED_HEADER,
    DeadLetter,
    dead_letter,
    dead_letter_key,
)
from schemas.report import Report
from schemas.validation import FieldError, Rejection, validate_report
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.intake import Rejected, route
from streams.pipeline.ingest import Ingest
from streams.pipeline.packs import unpack
from streams.web.api import Api
from tests.fakes import KAFKA_LIMIT, FakeBatch

pytestmark = pytest.mark.timeout(60)

NOW = datetime.now(UTC)
#: aiokafka's default max_request_size: a larger message is refused by `send` itself.
CLASSIFIER = Classifier(ZoneCatalogue.load(), Gazetteer.load())


def report(i: int, **changes: Any) -> bytes:
    doc = {
        "report_id": f"r-{i}",
        "source": "pkf-op-12",
        "source_type": "observation_post",
        "occurred_at": NOW.isoformat(),
        "location": {"lat": 39.758, "lon": 46.748},
        "category": "small_arms_fire",
    }
    return json.dumps(doc | changes).encode()


def letter(raw: bytes, rejection: Rejection, key: bytes | None = None) -> tuple[bytes, DeadLetter]:
    value = dead_letter(
        raw, rejection, topic="ceasefire.reports", partition=3, offset=7, key=key, received_at=NOW
    )
    return value, DeadLetter.model_validate_json(value)


# -- bounded dead letters --------------------------------------------------------------------
@pytest.mark.parametrize("size", [450 * 1024, 5 * 1024 * 1024])
def test_a_huge_input_gives_a_dead_letter_under_the_limit(size: int) -> None:
    # Before: the record copied the input twice (base64 + text), 2.3x its size, and any
    # input over ~450 KB made a dead letter the producer refused: ingest retried forever.
    raw = b'{"description": "' + b"x" * size + b'"}'
    rejection = validate_report(raw)
    assert isinstance(rejection, Rejection) and rejection.reason is RejectReason.TOO_LARGE
    value, record = letter(raw, rejection, key=b"k")
    assert len(value) <= MAX_DEAD_LETTER_BYTES < KAFKA_LIMIT
    assert DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k", value, []) < KAFKA_LIMIT
    assert record.original_truncated and record.original_size == len(raw)
    assert record.original() == raw[:MAX_ORIGINAL_BYTES]
    assert record.original_text is None


def test_a_small_input_is_copied_whole_with_its_text() -> None:
    raw = "{ünknown".encode()
    _, record = letter(raw, Rejection(RejectReason.INVALID_JSON, "not JSON"))
    assert record.original() == raw and record.original_text == raw.decode()
    assert record.original_size == len(raw) and not record.original_truncated
    _, binary = letter(b"\xff\xfe", Rejection(RejectReason.INVALID_ENCODING, "not UTF-8"))
    assert binary.original() == b"\xff\xfe" and binary.original_text is None


def test_text_that_escapes_past_the_bound_is_left_to_the_base64_copy() -> None:
    raw = b"\x01" * (200 * 1024)  # UTF-8, within the bound, but six-fold as JSON text
    value, record = letter(raw, Rejection(RejectReason.INVALID_JSON, "not JSON"))
    assert len(value) <= MAX_DEAD_LETTER_BYTES
    assert record.original() == raw and not record.original_truncated
    assert record.original_text is None


def test_hostile_rejections_and_keys_are_bounded_too() -> None:
    nasty = "\x01\ud800" * 5000  # escapes six-fold; a lone surrogate cannot be encoded
    rejection = Rejection(
        RejectReason.UNKNOWN_FIELD,
        nasty,
        tuple(FieldError(nasty, nasty, nasty) for _ in range(500)),
    )
    key = b"\x01" * (2 * 1024 * 1024)
    value, record = letter(b"\x01" * (5 * 1024 * 1024), rejection, key=key)
    assert len(value) <= MAX_DEAD_LETTER_BYTES
    assert len(record.errors) == MAX_ERRORS
    assert "500 field errors" in record.message
    assert record.key is not None and len(record.key.encode()) <= MAX_KEY_BYTES
    dlq_key = dead_letter_key(key)
    assert dlq_key is not None and len(dlq_key) == MAX_KEY_BYTES
    assert DefaultRecordBatchBuilder.estimate_size_in_bytes(dlq_key, value, []) < KAFKA_LIMIT
    assert dead_letter_key(b"short") == b"short" and dead_letter_key(None) is None


@settings(max_examples=100, deadline=5000)
@given(
    st.binary(min_size=1, max_size=200),
    st.integers(min_value=0, max_value=2 * MAX_ORIGINAL_BYTES),
    st.text(max_size=3000),
    st.lists(st.tuples(st.text(max_size=300), st.text(max_size=500)), max_size=80),
    st.one_of(st.none(), st.binary(max_size=3000)),
)
def test_any_dead_letter_is_bounded_and_readable(
    seed: bytes, size: int, message: str, errors: list[tuple[str, str]], key: bytes | None
) -> None:
    # Hypothesis draws at most a few KiB per example: an original past the truncation
    # bound is built from a short drawn seed repeated to a drawn size.
    raw = (seed * (size // len(seed) + 1))[:size]
    rejection = Rejection(
        RejectReason.INVALID_VALUE, message, tuple(FieldError(f, "t", m) for f, m in errors)
    )
    value, record = letter(raw, rejection, key=key)
    assert len(value) <= MAX_DEAD_LETTER_BYTES
    assert record.original() == raw[:MAX_ORIGINAL_BYTES]
    assert record.original_size == len(raw)


# -- one record, whatever happens to it, is dead-lettered and the stream goes on --------------
class ExplodingClassifier(Classifier):
    """A classifier with a bug that strikes one report."""

    def fields(self, report: Report, received_at: datetime) -> dict[str, Any]:
        if report.report_id == "r-boom":  # what `classify` and ingest both call
            raise ZeroDivisionError("a bug in classification")
        return super().fields(report, received_at)


EXPLODING = ExplodingClassifier(CLASSIFIER.zones, CLASSIFIER.gazetteer)


def record(
    offset: int,
    value: bytes | None,
    key: bytes | None = b"k",
    timestamp: int = 0,
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="ceasefire.reports",
        partition=0,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers or [],
    )


def test_a_bug_on_one_record_dead_letters_it_as_internal_error() -> None:
    routed = route(record(5, report(0, report_id="r-boom")), EXPLODING)
    assert isinstance(routed, Rejected) and routed.reason is RejectReason.INTERNAL_ERROR
    dead = DeadLetter.model_validate_json(routed.value)
    assert dead.reason is RejectReason.INTERNAL_ERROR
    assert "ZeroDivisionError: a bug in classification" in dead.message
    assert dead.original() == report(0, report_id="r-boom") and dead.source_offset == 5
    accepted = route(record(6, report(1)), EXPLODING)
    assert isinstance(accepted, tuple) and accepted[0] == b"pkf-op-12\x1fr-1"


def test_records_the_producer_could_not_stamp_are_routed() -> None:
    # A producer may stamp any int64; datetime cannot hold year 146,138,514.
    routed = route(record(1, report(2), timestamp=2**62), CLASSIFIER)
    assert isinstance(routed, tuple)
    tombstone = route(record(2, None, key=None), CLASSIFIER)
    assert isinstance(tombstone, Rejected) and tombstone.reason is RejectReason.INVALID_JSON


def dead_letter_of(routed: tuple[bytes, bytes] | Rejected) -> DeadLetter:
    assert isinstance(routed, Rejected), routed
    return DeadLetter.model_validate_json(routed.value)


def test_a_csv_row_the_feed_could_not_convert_is_dead_lettered_with_why() -> None:
    row = b"AZE2,bad-date,Battles,Armed clash,,,,,,,39.9,46.93,,,,"
    why = [(UNCONVERTED_HEADER, b"event_date 'bad-date' is not a date")]
    dead = dead_letter_of(route(record(3, row, headers=[("other", b"x"), *why]), CLASSIFIER))
    assert dead.reason is RejectReason.INVALID_JSON and dead.original() == row
    assert dead.message.startswith(
        "a CSV row the feed could not convert (event_date 'bad-date' is not a date), sent as "
        "its text: "
    ), dead.message
    plain = dead_letter_of(route(record(4, row), CLASSIFIER))
    assert plain.reason is RejectReason.INVALID_JSON and "CSV" not in plain.message
    assert dead.message.endswith(plain.message)
    # A reason of any length or bytes stays bounded; a valid report ignores the header.
    long = [(UNCONVERTED_HEADER, b"\xff" + b"x" * 10_000)]
    dead = dead_letter_of(route(record(5, row, headers=long), CLASSIFIER))
    assert "\ufffd" in dead.message and len(dead.message) < 1000
    assert isinstance(route(record(6, report(1), headers=why), CLASSIFIER), tuple)


class FakeProducer:
    """Refuses what aiokafka refuses (over max_request_size, at `send`); `broken` fails
    every delivery, as a broker that is gone does."""

    def __init__(self, broken: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.broken = broken

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        if DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []) > KAFKA_LIMIT:
            raise MessageSizeTooLargeError("larger than max_request_size")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broken:
            future.set_exception(KafkaConnectionError("broker gone"))
        else:
            self.sent.append((topic, value, key))
            future.set_result(None)
        return future

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(
        self, batch: FakeBatch, topic: str, partition: int
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broken:
            future.set_exception(KafkaConnectionError("broker gone"))
        else:
            self.sent.extend(
                (topic, v, k) for k, v in batch.records if v is not None
            )  # no tombstones
            future.set_result(None)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}


class FakeConsumer:
    def __init__(self) -> None:
        self.committed: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))


HOSTILE = [
    report(0),
    report(1, report_id="r-boom"),  # classification bug
    b"x" * (5 * 1024 * 1024),  # too large, and its dead letter once was too
    b'{"specversion":"1.0","id":"e","source":"s","type":"t","datacontenttype":"application/json",'
    b'"data":{"report_id":"r-9","source":"pkf-op-12","description":"\\ud800"}}',
    b'{"specversion":"1.0","data":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    report(2, location={"lat": "NaN", "lon": 46.7}).replace(b'"NaN"', b"NaN"),
    None,
    report(3),
]


async def test_hostile_records_in_a_batch_are_dead_lettered_and_the_batch_commits() -> None:
    ingest = Ingest(Settings(), EXPLODING)
    producer, consumer = FakeProducer(), FakeConsumer()
    ingest.shared.producer, ingest.consumer = producer, consumer  # type: ignore[assignment]
    tp = TopicPartition("ceasefire.reports", 0)
    batch = [
        record(100 + i, v, key=b"x" * 2_000_000 if i == 2 else b"k") for i, v in enumerate(HOSTILE)
    ]
    await asyncio.wait_for(ingest._process({tp: batch}), timeout=30)

    assert consumer.committed == [{tp: 100 + len(HOSTILE)}]
    dead = [DeadLetter.model_validate_json(v) for t, v, _ in producer.sent if t.endswith(".dlq")]
    assert [(d.source_offset, d.reason) for d in dead] == [
        (101, RejectReason.INTERNAL_ERROR),
        (102, RejectReason.TOO_LARGE),
        (103, RejectReason.INVALID_ENCODING),
        (104, RejectReason.TOO_DEEP),
        (105, RejectReason.INVALID_VALUE),
        (106, RejectReason.INVALID_JSON),
    ]
    packs = [v for t, v, _ in producer.sent if t.endswith(".accepted")]
    incidents = [json.loads(doc) for pack in packs for doc in unpack(pack)]
    assert sorted(i["report_id"] for i in incidents) == ["r-0", "r-3"]


async def test_a_broker_failure_still_fails_the_batch_for_a_retry() -> None:
    ingest = Ingest(Settings(), CLASSIFIER)
    consumer = FakeConsumer()
    ingest.shared.producer = FakeProducer(broken=True)  # type: ignore[assignment]
    ingest.consumer = consumer  # type: ignore[assignment]
    tp = TopicPartition("ceasefire.reports", 0)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(ingest._process({tp: [record(0, report(0))]}), timeout=10)
    assert consumer.committed == []  # not committed: `_run` rewinds and retries it


def test_the_dead_letter_of_a_truncated_original_still_identifies_it() -> None:
    raw = b"y" * (MAX_ORIGINAL_BYTES + 1)
    value, dead = letter(raw, Rejection(RejectReason.TOO_LARGE, "big"))
    doc = json.loads(value)
    assert doc["original_size"] == len(raw) and doc["original_truncated"] is True
    assert base64.b64decode(doc["original_base64"]) == raw[:-1]
    assert dead.source_topic == "ceasefire.reports" and dead.source_offset == 7


# -- the HTTP API ---------------------------------------------------------------------------
async def test_the_api_answers_hostile_bodies_without_a_server_error() -> None:
    producer = FakeProducer()
    monitor = SimpleNamespace(
        settings=Settings(), producer=SimpleNamespace(producer=producer), ready=True
    )
    monitor.classifier = CLASSIFIER
    monitor.zones = CLASSIFIER.zones
    api = Api(monitor)  # type: ignore[arg-type]
    async with TestClient(TestServer(api.web)) as client:

        async def post(body: bytes) -> tuple[int, Any]:
            headers = {"Content-Type": "application/json"}
            response = await client.post("/api/v1/reports", data=body, headers=headers)
            return response.status, await response.json()

        for body, reason in (
            (b"{" * 30_000 + b"}" * 30_000, "too_deep"),  # was a RecursionError: 500
            (b"\xff\xfe", "invalid_encoding"),
            (b"", "invalid_json"),
        ):
            status, answer = await post(body)
            assert (status, answer["reason"]) == (400, reason), answer
        # an array is a batch: its one item is rejected, the request is answered
        status, answer = await post(b"[" * 30_000 + b"]" * 30_000)
        assert status == 202 and answer["rejected"][0]["reason"] == "too_deep", answer
        status, answer = await post(b"x" * (5 * 1024 * 1024))  # over the body limit
        assert status == 413, answer
        surrogate = report(7, description="?").replace(b'"?"', b'"\\ud800"')
        nan = report(8, location={"lat": "?", "lon": 46.7}).replace(b'"?"', b"NaN")
        status, answer = await post(b"[" + b",".join([report(6), surrogate, nan]) + b"]")
        assert status == 202
        assert [a["index"] for a in answer["accepted"]] == [0]
        assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
            (1, "invalid_encoding"),
            (2, "invalid_value"),
        ]
    dead = [DeadLetter.model_validate_json(v) for t, v, _ in producer.sent if t.endswith(".dlq")]
    assert len(dead) == 6
    assert all(d.original_size is not None for d in dead)
    assert [d.reason.value for d in dead][:4] == [
        "too_deep",
        "invalid_encoding",
        "invalid_json",
        "too_deep",
    ]
    assert b"\\ud800" in dead[4].original()  # the item as sent, its escape intact
