"""A record the Kafka client cannot unpack (a header name that is not UTF-8, a batch failing
its CRC check) stalled its input partition forever: aiokafka raised out of `getmany` before
`route` saw the record, and the loop rewound to the committed offset again and again. Now it
is dead-lettered (`invalid_encoding`) and the partition goes on, with nothing lost and
nothing counted twice. The batches are made by aiokafka's own builder and read by its own
parser (the C one, as in production); the broker is an in-memory log (on a real broker:
tests/test_hostile_input_broker.py)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.codec import gzip_encode, lz4_encode, snappy_encode, zstd_encode
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.errors import CorruptRecordException, KafkaError, OffsetOutOfRangeError
from aiokafka.protocol.fetch import (
    FetchRequest_v4,
    FetchRequest_v11,
    FetchResponse_v4,
    FetchResponse_v11,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c

from schemas.dead_letter import DeadLetter
from streams.config import Settings
from streams.kafka.raw_records import (
    RAW_FETCH_BYTES,
    RAW_FETCH_WAIT_MS,
    Unreadable,
    fetch_raw,
    read_raw,
)
from streams.metrics import REGISTRY
from streams.pipeline import ingest as ingest_module
from streams.pipeline.ingest import Ingest
from streams.pipeline.packs import unpack
from tests.test_hostile_input import CLASSIFIER, NOW, FakeProducer, report

pytestmark = pytest.mark.timeout(30)

TOPIC = "ceasefire.reports"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
#: The records' Kafka timestamp: their arrival, at which the reports' times are judged.
STAMP = int(NOW.timestamp() * 1000)
#: A header name that is not UTF-8, as a librdkafka or kcat producer may send one.
BAD_NAME = b"\xff\xfe"
#: Stands for BAD_NAME while the batch is built (the builder takes names as text).
MARK = "ZZ"


#: Kafka's codecs by the number a batch's attributes give them.
ENCODERS: dict[int, Callable[[bytes], bytes]] = {
    1: gzip_encode,
    2: snappy_encode,
    3: lz4_encode,
    4: zstd_encode,
}
GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4


def build(
    base: int,
    values: Sequence[bytes],
    *,
    bad: Sequence[int] = (),
    codec: int = 0,
    corrupt: bool = False,
) -> bytes:
    """A record batch of `values` from offset `base`, as a broker stores it; the records at
    the indexes `bad` carry a header named BAD_NAME; `codec`: compressed by Kafka's codec of
    that number (an unknown one leaves the records as they are); `corrupt`: one byte of a
    record changed after its CRC was computed."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i, value in enumerate(values):
        headers = [(MARK, b"x")] if i in bad else [("trace", b"t")]
        builder.append(i, timestamp=STAMP + i, key=b"k%d" % i, value=value, headers=headers)
    buf = bytearray(builder.build())
    struct.pack_into(">q", buf, 0, base)  # the broker's offset (outside the CRC)
    buf = bytearray(bytes(buf).replace(MARK.encode(), BAD_NAME))
    if codec:
        encode = ENCODERS.get(codec, bytes)
        buf = buf[:61] + encode(bytes(buf[61:]))
        struct.pack_into(">i", buf, 8, len(buf) - 12)
        attributes = struct.unpack_from(">h", buf, 21)[0]
        struct.pack_into(">h", buf, 21, attributes | codec)
    struct.pack_into(">I", buf, 17, calc_crc32c(bytes(buf[21:])))
    if corrupt:
        buf[-3] ^= 0x01
    return bytes(buf)


class Log:
    """One partition as the broker holds it: record batches in offset order."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, bytes]] = []  # (base, next offset, bytes)

    def add(self, values: Sequence[bytes], **kwargs: Any) -> None:
        base = self.end
        self.batches.append((base, base + len(values), build(base, values, **kwargs)))

    @property
    def end(self) -> int:
        return self.batches[-1][1] if self.batches else 0

    def fetch(self, offset: int) -> bytes:
        """What a Fetch from `offset` answers: whole batches, from the one holding it."""
        return b"".join(data for _, after, data in self.batches if after > offset)


class LogConsumer:
    """An AIOKafkaConsumer over in-memory logs that hands records over as aiokafka does:
    unpacked by aiokafka's own parser, at most `per_call` a partition per call, partition 1
    before partition 0; a partition's position moves as its records are handed over, and a
    record that cannot be unpacked raises out of the call, dropping what the call had taken
    from the partitions before it."""

    def __init__(self, logs: dict[TopicPartition, Log], per_call: int = 2) -> None:
        self.logs = logs
        self.per_call = per_call
        self.pos = {tp: 0 for tp in logs}
        self.commits: dict[TopicPartition, int] = {}
        self.events: list[str] = []
        self.raised = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def highwater(self, tp: TopicPartition) -> int:
        return self.logs[tp].end

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp in sorted(tps or self.logs, key=lambda tp: -tp.partition):
            data = self.logs[tp].fetch(self.pos[tp])
            if not data:
                continue
            unpacked = PartitionRecords(
                tp, MemoryRecords(data), [], self.pos[tp], None, None, True, 0
            )
            got: list[ConsumerRecord[bytes, bytes]] = []
            try:
                for record in unpacked:
                    got.append(record)
                    if len(got) == self.per_call:
                        break
            except Exception:
                self.raised += 1
                raise
            self.pos[tp] = unpacked.next_fetch_offset
            out[tp] = got
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.update(offsets)
        self.events.extend(f"commit {tp.partition}:{o}" for tp, o in offsets.items())

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.commits.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.pos[tp] = 0


class LoggingProducer(FakeProducer):
    """Notes each dead letter's delivery in the consumer's events; fails the first
    `dlq_fails` of them (the dead-letter topic refusing writes for a moment)."""

    def __init__(self, events: list[str], dlq_fails: int = 0) -> None:
        super().__init__()
        self.events = events
        self.dlq_fails = dlq_fails

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        self.broken = topic.endswith(".dlq") and self.dlq_fails > 0
        if topic.endswith(".dlq"):
            self.dlq_fails -= 1
            self.events.append("dlq failed" if self.broken else "dlq sent")
        try:
            return await super().send(topic, value, key, partition)
        finally:
            self.broken = False


def rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value("ceasefire_reports_rejected_total", {"reason": reason})
    return value or 0.0


def accepted_ids(producer: FakeProducer) -> Counter[str]:
    packs = [v for t, v, _ in producer.sent if t.endswith(".accepted")]
    return Counter(json.loads(doc)["report_id"] for pack in packs for doc in unpack(pack))


def letters(producer: FakeProducer) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for t, v, _ in producer.sent if t.endswith(".dlq")]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "RETRY_FIRST_SECONDS", 0.01)
    monkeypatch.setattr(ingest_module, "RETRY_MAX_SECONDS", 0.05)


def ingest_over(
    consumer: LogConsumer, producer: FakeProducer
) -> tuple[Ingest, list[tuple[TopicPartition, int]]]:
    ingest = Ingest(Settings(), CLASSIFIER)
    ingest.shared.producer, ingest.consumer = producer, consumer  # type: ignore[assignment]
    ingest.joined.set()
    raw_reads: list[tuple[TopicPartition, int]] = []

    async def fetch(tp: TopicPartition, offset: int) -> bytes:
        raw_reads.append((tp, offset))
        return consumer.logs[tp].fetch(offset)

    ingest._fetch_raw = fetch  # type: ignore[method-assign]
    return ingest, raw_reads


async def run_until(ingest: Ingest, done: Callable[[], bool], timeout: float = 3) -> None:
    task = asyncio.create_task(ingest._supervise())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                assert not task.done(), task
                await asyncio.sleep(0.01)
    finally:
        ingest._stopping.set()
        await asyncio.wait_for(task, timeout=5)


def test_aiokafka_cannot_read_past_a_header_name_that_is_not_utf8() -> None:
    """Why seeking past the record is no way on: aiokafka unpacks a batch from its start, so
    every later record of the batch fails too."""
    data = build(0, [b"a", b"b", b"c"], bad=[1])
    for start in (0, 1, 2):
        unpacked = PartitionRecords(P0, MemoryRecords(data), [], start, None, None, True, 0)
        with pytest.raises(UnicodeDecodeError):
            list(unpacked)


@pytest.mark.parametrize("codec", [0, GZIP, SNAPPY, LZ4, ZSTD])
def test_read_raw_gives_the_batch_with_the_unreadable_record_dead_lettered(codec: int) -> None:
    values = [report(0), b'{"bad":1}', report(2)]
    data = build(0, values, bad=[1], codec=codec) + build(3, [report(3)])
    with pytest.raises(UnicodeDecodeError):  # aiokafka's own parser, compressed or not
        list(PartitionRecords(P0, MemoryRecords(data), [], 0, None, None, True, 0))
    read = read_raw(data, P0, 0)
    assert read is not None
    records, after = read
    assert after == 3  # the consumer goes on with the next batch, which it can read
    good = list(PartitionRecords(P0, MemoryRecords(build(0, values)), [], 0, None, None, True, 0))
    assert records[0] == good[0] and records[2] == good[2]  # as the client gives them
    bad = records[1]
    assert isinstance(bad, Unreadable)
    assert (bad.partition, bad.offset, bad.key, bad.value) == (0, 1, b"k1", b'{"bad":1}')
    assert bad.timestamp == STAMP + 1
    assert "header name" in bad.why and "not UTF-8" in bad.why
    # from a position inside the batch: only what is not taken yet
    assert [r.offset for r in read_raw(data, P0, 1)[0]] == [1, 2]  # type: ignore[index]
    assert read_raw(data, P0, 2) == ([records[2]], 3)  # the bad record was taken before
    assert read_raw(build(0, values), P0, 0) is None  # nothing the client cannot read


def test_read_raw_gives_each_offset_of_a_corrupt_batch_without_bytes() -> None:
    data = build(0, [b"a"]) + build(1, [b"b", b"c", b"d"], corrupt=True) + build(4, [b"e"])
    with pytest.raises(CorruptRecordException):
        list(PartitionRecords(P0, MemoryRecords(data), [], 1, None, None, True, 0))
    read = read_raw(data, P0, 2)
    assert read is not None
    records, after = read
    assert after == 4
    assert [r.offset for r in records] == [2, 3]
    for r in records:
        assert isinstance(r, Unreadable) and r.value == b"" and r.key is None
        assert "offsets 1..3 failed its CRC check" in r.why


async def test_a_header_name_not_utf8_is_dead_lettered_and_the_partition_goes_on() -> None:
    """Before: getmany raised on offset 2 of partition 0 each time, the loop rewound to the
    committed offset forever (backing off to 30 s), and partition 0 read nothing more."""
    logs = {P0: Log(), P1: Log()}
    logs[P0].add([report(0), report(1)])
    logs[P0].add([report(2), b'{"bad":1}', report(4), report(5)], bad=[1])
    logs[P0].add([report(6)])
    logs[P1].add([report(100 + i) for i in range(5)])
    consumer = LogConsumer(logs)
    producer = LoggingProducer(consumer.events)
    ingest, raw_reads = ingest_over(consumer, producer)
    before = rejected("invalid_encoding")

    await run_until(ingest, lambda: consumer.commits == {P0: 7, P1: 5})

    assert consumer.raised >= 1 and raw_reads  # aiokafka's parser failed; read raw
    ids = accepted_ids(producer)
    expected = [0, 1, 2, 4, 5, 6, 100, 101, 102, 103, 104]
    assert sorted(ids) == sorted(f"r-{i}" for i in expected)
    assert set(ids.values()) == {1}  # partition 1's records the failed call dropped: once
    (letter,) = letters(producer)
    assert letter.reason.value == "invalid_encoding"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (TOPIC, 0, 3)
    assert letter.original_text == '{"bad":1}' and letter.key == "k1"
    assert "header name" in letter.message and "not UTF-8" in letter.message
    assert rejected("invalid_encoding") - before == 1
    # the partition's offset passes the record only once its dead letter is acknowledged
    assert consumer.events.index("dlq sent") < consumer.events.index("commit 0:6")


async def test_a_dead_letter_not_delivered_holds_the_offset_and_is_counted_once() -> None:
    logs = {P0: Log()}
    logs[P0].add([report(0), b'{"bad":1}', report(2)], bad=[1])
    consumer = LogConsumer(logs, per_call=10)
    producer = LoggingProducer(consumer.events, dlq_fails=2)
    ingest, _ = ingest_over(consumer, producer)
    before = rejected("invalid_encoding")

    await run_until(ingest, lambda: consumer.commits.get(P0) == 3)

    assert consumer.events[:2] == ["dlq failed", "dlq failed"]
    assert [e for e in consumer.events if e.startswith("commit")] == ["commit 0:3"]
    assert consumer.events.index("dlq sent") < consumer.events.index("commit 0:3")
    assert rejected("invalid_encoding") - before == 1
    assert sorted(accepted_ids(producer)) == ["r-0", "r-2"]


async def test_a_corrupt_batch_is_dead_lettered_offset_by_offset() -> None:
    logs = {P0: Log()}
    logs[P0].add([report(0)])
    logs[P0].add([report(1), report(2)], corrupt=True)
    logs[P0].add([report(3)])
    consumer = LogConsumer(logs)
    producer = LoggingProducer(consumer.events)
    ingest, _ = ingest_over(consumer, producer)

    await run_until(ingest, lambda: consumer.commits.get(P0) == 4)

    assert [(d.source_offset, d.original_size) for d in letters(producer)] == [(1, 0), (2, 0)]
    assert all("CRC" in d.message for d in letters(producer))
    assert sorted(accepted_ids(producer)) == ["r-0", "r-3"]


@pytest.mark.parametrize("codec", [SNAPPY, LZ4, ZSTD])
async def test_batches_compressed_by_other_producers_are_read(codec: int) -> None:
    """`compression.type` snappy, lz4 or zstd (common with Java and librdkafka producers; an
    Apache Kafka broker stores the batches as sent): without the codec libraries (cramjam,
    aiokafka's extras) getmany raised UnsupportedCodecError at the batch for good, ingest
    stalled there and at the partitions read with it, and went not ready."""
    logs = {P0: Log(), P1: Log()}
    logs[P0].add([report(0), report(1)])
    logs[P0].add([report(2), report(3)], codec=codec)
    logs[P0].add([report(4)])
    logs[P1].add([report(100 + i) for i in range(3)])
    consumer = LogConsumer(logs)
    producer = LoggingProducer(consumer.events)
    ingest, raw_reads = ingest_over(consumer, producer)

    await run_until(ingest, lambda: consumer.commits == {P0: 5, P1: 3})

    assert consumer.raised == 0 and not raw_reads and not letters(producer)
    assert sorted(accepted_ids(producer)) == sorted(
        f"r-{i}" for i in (0, 1, 2, 3, 4, 100, 101, 102)
    )


async def test_a_batch_of_an_unknown_codec_is_dead_lettered_offset_by_offset() -> None:
    """A codec number Kafka does not define (a broken or future producer): aiokafka raises
    UnsupportedCodecError, which stalled the partition like a corrupt batch used to."""
    logs = {P0: Log(), P1: Log()}
    logs[P0].add([report(0)])
    logs[P0].add([report(1), report(2)], codec=5)
    logs[P0].add([report(3)])
    logs[P1].add([report(100)])
    consumer = LogConsumer(logs)
    producer = LoggingProducer(consumer.events)
    ingest, raw_reads = ingest_over(consumer, producer)

    await run_until(ingest, lambda: consumer.commits == {P0: 4, P1: 1})

    assert consumer.raised >= 1 and raw_reads
    assert [(d.source_offset, d.original_size) for d in letters(producer)] == [(1, 0), (2, 0)]
    assert all("unknown compression codec 5" in d.message for d in letters(producer))
    assert sorted(accepted_ids(producer)) == ["r-0", "r-100", "r-3"]


async def test_a_failure_not_found_again_is_retried_as_a_failed_batch() -> None:
    """getmany failed, but the raw read finds nothing the client cannot read (a fault of the
    moment): nothing is dead-lettered, and the batch is read again."""
    logs = {P0: Log()}
    logs[P0].add([report(0), report(1), report(2)])
    consumer = LogConsumer(logs)
    getmany = consumer.getmany
    failed = [False]

    async def fails_once(*tps: TopicPartition, timeout_ms: int) -> Any:
        if not failed[0]:
            failed[0] = True
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return await getmany(*tps, timeout_ms=timeout_ms)

    consumer.getmany = fails_once  # type: ignore[method-assign]
    producer = LoggingProducer(consumer.events)
    ingest, raw_reads = ingest_over(consumer, producer)
    await run_until(ingest, lambda: consumer.commits.get(P0) == 3)
    assert raw_reads == [(P0, 0)]
    assert letters(producer) == []
    assert sorted(accepted_ids(producer)) == ["r-0", "r-1", "r-2"]


@pytest.mark.parametrize("version", [4, 11])  # 11: what aiokafka and Tansu 0.6 agree on
async def test_fetch_raw_asks_the_partition_leader_for_the_batches_from_the_offset(
    version: int,
) -> None:
    """The request and the answer as aiokafka encodes and decodes them: the partition's
    fields between its error code and its records differ from version to version, and the
    whole answer has an error code of its own from version 7 on."""
    request_type = FetchRequest_v4 if version == 4 else FetchRequest_v11
    sent: list[tuple[int, Any]] = []
    answer: dict[str, Any] = {"code": 0, "data": build(7, [b"a"]), "empty": False}

    async def send(node: int, request: Any) -> Any:
        request.build(request_type).encode()  # a request the broker can be sent
        sent.append((node, request))
        data = answer["data"]
        if version == 4:
            partitions: list[Any] = [(0, answer["code"], 9, 9, [], data)]
            topics = [] if answer["empty"] else [(TOPIC, partitions)]
            encoded = FetchResponse_v4(0, topics).encode()
            return FetchResponse_v4.decode(io.BytesIO(encoded))
        partitions = [(0, answer["code"], 9, 9, 0, [], -1, data)]
        topics = [] if answer["empty"] else [(TOPIC, partitions)]
        encoded = FetchResponse_v11(0, 0, 0, topics).encode()
        return FetchResponse_v11.decode(io.BytesIO(encoded))

    client = SimpleNamespace(cluster=SimpleNamespace(leader_for_partition=lambda tp: 3), send=send)
    consumer: Any = SimpleNamespace(_client=client)
    assert await fetch_raw(consumer, P0, 7) == answer["data"]
    ((node, request),) = sent
    assert node == 3
    assert request.topics == [(TOPIC, [(0, 7, RAW_FETCH_BYTES)])]
    # Tansu answers a Fetch that may not wait (max_wait_time 0) with no partition at all
    struct_ = request.build(request_type)
    assert struct_.max_wait_time == RAW_FETCH_WAIT_MS > 0 and struct_.min_bytes == 1
    answer["code"] = 1  # OFFSET_OUT_OF_RANGE
    with pytest.raises(OffsetOutOfRangeError):
        await fetch_raw(consumer, P0, 7)
    answer["code"], answer["empty"] = 0, True
    with pytest.raises(KafkaError, match="held nothing"):
        await fetch_raw(consumer, P0, 7)
    client.cluster.leader_for_partition = lambda tp: None
    with pytest.raises(KafkaError, match="no leader"):
        await fetch_raw(consumer, P0, 7)
