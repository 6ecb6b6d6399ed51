"""Hostile input on a real broker with a real worker (the unit-level cases, without a
broker, are in test_hostile_input.py; test_integration.py dead-letters a few alongside
its counting scenario).

One broker serves the module, and one worker its hostile-record tests (`hostile_worker`;
the backlog test starts its own, after its backlog is there); each test checks that the
stream goes on and that nothing is lost or counted twice. The broker (Tansu 0.6.0)
enforces no record size limit (records of 200 MiB were stored and served in a probe),
so a 5 MB input reaches the worker as it would from any producer allowed to send it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.util import calc_crc32c
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.harness import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

#: CJK Extension B: four bytes each in UTF-8, twelve as JSON escapes.
WIDE = "𠀀"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedBroker, Path]]:
    tmp = tmp_path_factory.mktemp("hostile")
    broker = EmbeddedBroker("127.0.0.1", free_port(), log=tmp / "tansu.log")
    broker.start()
    try:
        yield broker, tmp
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def hostile_worker(stack: tuple[EmbeddedBroker, Path]) -> Iterator[Worker]:
    """The worker of the hostile-record tests: each counts in its own zone, and measures
    what it adds to the rejection counts and tallies."""
    broker, tmp = stack
    worker = Worker(broker, tmp, name="hostile").start(ready_timeout=90)
    try:
        yield worker
    finally:
        worker.stop()


def maximal_report(i: int) -> dict[str, Any]:
    """A valid report with every string at its limit, in a non-Latin script."""
    rid = f"{i:06d}"
    return {
        "report_id": rid + WIDE * (128 - len(rid)),
        "source": WIDE * 63 + str(i % 3),
        "source_type": "observation_post",
        # over the past 23 hours at one place, about a minute apart: they link into one
        # component of 1,200 reports, a chain, which links within two-hour blocks (before
        # the chain limit, its linking grew as its square: docs/record.md, "A chain")
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=60 + 69 * i)).isoformat(),
        "location": {"lat": 39.795, "lon": 47.113},  # Martuni: loc-south
        "category": "small_arms_fire",
        "perpetrator": WIDE * 128,
        "target": WIDE * 128,
        "casualties": {"killed": 0, "wounded": 0, "civilian": False},
        "description": "д" * 2000 + WIDE * 2000,
    }


def test_a_backlog_of_maximal_non_latin_reports_is_counted_exactly(
    stack: tuple[EmbeddedBroker, Path],
) -> None:
    broker, tmp = stack
    n = 1200
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20, acks="all")
    for i in range(n):
        value = json.dumps(maximal_report(i), ensure_ascii=False).encode()
        assert len(value) > 12_000
        producer.send("ceasefire.reports", value)
    producer.flush(timeout=60)
    producer.close()
    # the backlog is there before the worker starts: it gets it in full batches
    worker = Worker(broker, tmp, name="maximal").start(ready_timeout=90)
    try:

        def counted() -> bool:
            # loc-south only: the module's other tests count elsewhere (shusha)
            rows = worker.tallies(window="24h", by="zone")
            return rows is not None and zone_reports(rows, "loc-south") == n

        wait_for(counted, timeout=120, what=f"{n} maximal reports counted")
        assert worker.metric("ceasefire_reports_rejected_total") == 0
        assert worker.metric("ceasefire_partition_stalled") == 0
    finally:
        worker.stop()


# -- hostile records among valid ones --------------------------------------------------------
SHUSHA = {"lat": 39.758, "lon": 46.748}
#: Over the 1 MiB that Kafka clients and Apache Kafka brokers allow by default.
FIVE_MB = 5 * 1024 * 1024


def zone_reports(rows: list[dict[str, Any]], zone: str) -> int:
    return sum(int(r["reports"]) for r in rows if r["zone"] == zone)


def shusha_report(report_id: str, **changes: Any) -> dict[str, Any]:
    doc = {
        "report_id": report_id,
        "source": "hostile-test",
        "source_type": "observation_post",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "location": SHUSHA,
        "category": "small_arms_fire",
    }
    return doc | changes


def encoded(doc: dict[str, Any]) -> bytes:
    # allow_nan: json writes NaN, Infinity and -Infinity, which JSON itself does not have
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode()


def blob_reason(blob: bytes) -> str:
    """A random blob's reason, decided without the monitor's code."""
    try:
        blob.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_encoding"
    return "invalid_json"


def hostile_inputs() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(case, Kafka key, value, the reason it must be dead-lettered with)."""
    rng = random.Random(9)
    blobs = [rng.randbytes(n) for n in (1, 16, 4096, 60_000)]
    spliced = encoded(shusha_report("h-utf8", description="@@"))
    cases: list[tuple[str, bytes | None, bytes | None, str]] = [
        *((f"random {len(b)} bytes", None, b, blob_reason(b)) for b in blobs),
        # 100,000 deep is 200 KB at least: over the 64 KiB message limit before any parse
        ("array nested 100,000 deep", None, b"[" * 100_000 + b"]" * 100_000, "too_large"),
        (
            "object nested 100,000 deep",
            None,
            b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
            "too_large",
        ),
        # within the size limit, the depth is what is refused
        ("array nested 30,000 deep", None, b"[" * 30_000 + b"]" * 30_000, "too_deep"),
        (
            "a 5 MB JSON report",
            None,
            encoded(shusha_report("h-5mb", description="x" * FIVE_MB)),
            "too_large",
        ),
        (
            "lat NaN",
            None,
            encoded(shusha_report("h-nan", location={"lat": float("nan"), "lon": 46.7})),
            "invalid_value",
        ),
        (
            "lon Infinity",
            None,
            encoded(shusha_report("h-inf", location={"lat": 39.7, "lon": float("inf")})),
            "invalid_value",
        ),
        (
            "lat -Infinity",
            None,
            encoded(shusha_report("h-minf", location={"lat": float("-inf"), "lon": 46.7})),
            "invalid_value",
        ),
        (
            "killed NaN",
            None,
            encoded(shusha_report("h-nank", casualties={"killed": float("nan")})),
            "invalid_type",
        ),
        ("byte 0xff", None, spliced.replace(b"@@", b"\xff\xfe"), "invalid_encoding"),
        ("overlong UTF-8", None, spliced.replace(b"@@", b"\xc0\xaf"), "invalid_encoding"),
        ("UTF-8 of a surrogate", None, spliced.replace(b"@@", b"\xed\xa0\x80"), "invalid_encoding"),
        ("empty value", b"k", b"", "invalid_json"),
        ("null value (tombstone)", b"k", None, "invalid_json"),
        ("blank value", None, b" \n", "invalid_json"),
        ("empty object", None, b"{}", "missing_field"),
        ("empty key alone", None, b'{"": 1}', "unknown_field"),
        ("empty key in a report", b"", encoded(shusha_report("h-key") | {"": 1}), "unknown_field"),
        ('report_id ""', None, encoded(shusha_report("")), "invalid_value"),
        ('source ""', None, encoded(shusha_report("h-src", source="")), "invalid_value"),
        ('category ""', None, encoded(shusha_report("h-cat", category="")), "invalid_value"),
        (
            'place ""',
            None,
            encoded(shusha_report("h-place", location={"place": ""})),
            "invalid_value",
        ),
    ]
    return cases


def dead_letters(bootstrap: str) -> list[dict[str, Any]]:
    """Every record on the dead-letter topic, read to the high watermark of each partition
    (the fetch's, exact; Tansu's ListOffsets answer can fall short of the last record)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        topic = "ceasefire.reports.dlq"
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20

        def at_end(tp: TopicPartition) -> bool:
            hw = consumer.highwater(tp)
            return hw is not None and consumer.position(tp) >= hw

        while not all(at_end(tp) for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError("could not read the dead-letter topic to its end")
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(json.loads(r.value) for r in batch)
        return records
    finally:
        consumer.close()


def test_hostile_records_are_dead_lettered_once_and_the_stream_goes_on(
    stack: tuple[EmbeddedBroker, Path], hostile_worker: Worker
) -> None:
    broker, _ = stack
    worker = hostile_worker
    # kafka-python refuses a request over 1 MiB by default; Tansu takes 5 MB records
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", max_request_size=2 * FIVE_MB
    )
    try:
        parts = sorted(
            wait_for(
                lambda: producer.partitions_for("ceasefire.reports"),
                timeout=20,
                what="the input topic",
            )
        )

        def send(value: bytes | None, key: bytes | None, partition: int) -> tuple[int, int]:
            meta = producer.send("ceasefire.reports", value, key=key, partition=partition)
            result = meta.get(timeout=60)
            return result.partition, result.offset

        def shusha() -> int | None:
            rows = worker.tallies(window="24h", by="zone")
            return None if rows is None else zone_reports(rows, "shusha")

        # a known set of valid reports, counted
        for i in range(12):
            send(encoded(shusha_report(f"ok-{i}")), None, parts[i % len(parts)])
        wait_for(lambda: shusha() == 12, timeout=60, what="12 valid reports counted")
        bys = ("zone", "party", "category")
        before = {by: worker.tallies(window="7d", by=by) for by in bys}
        assert all(rows for rows in before.values()), before
        cases = hostile_inputs()
        reasons = Counter(reason for _, _, _, reason in cases)
        rejected_before = {
            r: worker.metric("ceasefire_reports_rejected_total", {"reason": r}) for r in reasons
        }
        total_before = worker.metric("ceasefire_reports_rejected_total")

        # every partition gets hostile records, the 5 MB one among them
        expected: dict[tuple[int, int], tuple[str, str, int]] = {}
        for i, (case, key, value, reason) in enumerate(cases):
            where = send(value, key, parts[i % len(parts)])
            expected[where] = (case, reason, len(value or b""))

        def dead_lettered() -> list[dict[str, Any]]:
            return [
                d
                for d in dead_letters(broker.bootstrap)
                if d["source_topic"] == "ceasefire.reports"
                and (d["source_partition"], d["source_offset"]) in expected
            ]

        wait_for(
            lambda: (
                {(d["source_partition"], d["source_offset"]) for d in dead_lettered()}
                == expected.keys()
            ),
            timeout=90,
            interval=1.0,
            what="every hostile record dead-lettered",
        )
        # the rejections are counted, and nothing else is
        wait_for(
            lambda: worker.metric("ceasefire_reports_rejected_total") >= total_before + len(cases),
            timeout=10,
            what="the rejections counted",
        )
        assert {by: worker.tallies(window="7d", by=by) for by in bys} == before

        # one valid report per partition after the hostile ones: no partition is stalled
        for p in parts:
            send(encoded(shusha_report(f"after-{p}")), None, p)
        wait_for(
            lambda: shusha() == 12 + len(parts),
            timeout=60,
            what="the reports sent after the hostile ones counted",
        )

        # each hostile record is on the dead-letter topic once, with its reason
        mine = dead_lettered()
        seen = Counter((d["source_partition"], d["source_offset"]) for d in mine)
        assert seen == Counter(expected.keys()), "each dead-lettered exactly once"
        for dead in mine:
            case, reason, size = expected[(dead["source_partition"], dead["source_offset"])]
            assert dead["reason"] == reason, (case, dead["reason"], dead["message"])
            assert dead["original_size"] == size, case
            assert dead["original_truncated"] == (size > 256 * 1024), case
        assert worker.metric("ceasefire_reports_rejected_total") == total_before + len(cases)
        for reason, n in reasons.items():
            counted = worker.metric("ceasefire_reports_rejected_total", {"reason": reason})
            assert counted == rejected_before[reason] + n, reason

        # the tallies gained the valid reports only; the worker is up, ready, unstalled
        grown = {r["zone"]: r for r in before["zone"] or []}
        row = grown["shusha"]
        grown["shusha"] = row | {k: row[k] + len(parts) for k in ("incidents", "reports")}
        after = worker.tallies(window="7d", by="zone")
        assert {r["zone"]: r for r in after or []} == grown
        assert worker.proc is not None and worker.proc.poll() is None
        assert worker.get("/readyz")[0] == 200
        assert worker.metric("ceasefire_partition_stalled") == 0
    finally:
        producer.close(timeout=10)


# -- a record the Kafka client cannot unpack ----------------------------------------------------
LOC_EAST = {"lat": 39.993, "lon": 46.930}
#: A header name that is not UTF-8, as a librdkafka or kcat producer may send one: aiokafka's
#: parser raises UnicodeDecodeError on it, for every record of its batch.
BAD_NAME = b"\xff\xfe"
#: Stands for BAD_NAME while the batch is built (aiokafka's builder takes names as text).
MARK = "ZZ"


async def produce_with_unreadable_header(
    bootstrap: str, partition: int, others: list[int]
) -> tuple[int, list[str]]:
    """To `partition` of the input topic: three valid reports, then one record batch of a
    valid report, a record whose header name is BAD_NAME (its value a valid report too: it
    must not be counted) and a valid report, then two valid reports; one valid report to
    each of `others` after it. The bad record's offset, and the ids of the valid reports."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        ids: list[str] = []

        async def send(report_id: str, p: int) -> None:
            ids.append(report_id)
            value = encoded(shusha_report(report_id, location=LOC_EAST))
            await producer.send_and_wait("ceasefire.reports", value, partition=p)

        for i in range(3):
            await send(f"ue-before-{i}", partition)
        batch = producer.create_batch()
        for i, report_id in enumerate(["ue-in-0", "ue-bad", "ue-in-2"]):
            headers = [(MARK if i == 1 else "trace", b"x")]
            value = encoded(shusha_report(report_id, location=LOC_EAST))
            assert batch.append(timestamp=None, key=b"k-%d" % i, value=value, headers=headers)
        ids += ["ue-in-0", "ue-in-2"]
        # the batch as it is sent, its header name patched and its CRC made right again
        # (the CRC covers the bytes from the attributes, at 21, on; it is at 17)
        built = bytes(batch._build())
        assert built.count(MARK.encode()) == 1
        patched = bytearray(built.replace(MARK.encode(), BAD_NAME))
        patched[17:21] = calc_crc32c(bytes(patched[21:])).to_bytes(4, "big")
        batch._buffer = patched
        sent = await (await producer.send_batch(batch, "ceasefire.reports", partition=partition))
        for i in range(2):
            await send(f"ue-after-{i}", partition)
        for p in others:
            await send(f"ue-other-{p}", p)
        return sent.offset + 1, ids
    finally:
        await producer.stop()


def test_a_record_the_kafka_client_cannot_unpack_is_dead_lettered_and_the_partition_goes_on(
    stack: tuple[EmbeddedBroker, Path], hostile_worker: Worker
) -> None:
    """Before, aiokafka raised out of `getmany` on the record each time ingest fetched its
    batch, ingest rewound to the committed offset and fetched it again, forever: the reports
    after it in its partition (those in its batch too) were never counted."""
    broker, _ = stack
    worker = hostile_worker
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        parts = sorted(
            wait_for(
                lambda: consumer.partitions_for_topic("ceasefire.reports"),
                timeout=20,
                what="the input topic",
            )
        )
    finally:
        consumer.close()

    def east() -> int | None:
        rows = worker.tallies(window="24h", by="zone")
        return None if rows is None else zone_reports(rows, "loc-east")

    def metric(name: str, **labels: str) -> float:
        return worker.metric(name, labels or None)

    east_before = wait_for(east, timeout=20, what="the tallies")  # 0 is an answer
    duplicates_before = metric("ceasefire_reports_duplicate_total")
    invalid_before = metric("ceasefire_reports_rejected_total", reason="invalid_encoding")
    rejected_before = metric("ceasefire_reports_rejected_total")

    bad_offset, ids = asyncio.run(
        produce_with_unreadable_header(broker.bootstrap, parts[0], parts[1:])
    )
    assert len(ids) == 7 + len(parts) - 1

    # every valid report counted: those before the record, in its batch and after it
    wait_for(
        lambda: east() == east_before + len(ids),
        timeout=60,
        what=f"{len(ids)} valid reports around the unreadable record counted",
        explain=lambda: (
            f"loc-east counts {east()}, was {east_before}; log:\n" + worker.log_tail(20)
        ),
    )

    def mine() -> list[dict[str, Any]]:
        return [
            d
            for d in dead_letters(broker.bootstrap)
            if d["source_topic"] == "ceasefire.reports"
            and (d["source_partition"], d["source_offset"]) == (parts[0], bad_offset)
        ]

    (letter,) = wait_for(
        lambda: mine() or None, timeout=30, what="the unreadable record dead-lettered"
    )
    assert letter["reason"] == "invalid_encoding", letter
    assert "not UTF-8" in letter["message"], letter["message"]
    assert letter["key"] == "k-1"
    assert json.loads(letter["original_text"])["report_id"] == "ue-bad"
    # once, and nothing else rejected; nothing ingested twice (a replayed batch is counted
    # as duplicates); the tally holds them all once (it grew by exactly their number)
    assert metric("ceasefire_reports_rejected_total", reason="invalid_encoding") == (
        invalid_before + 1
    )
    assert metric("ceasefire_reports_rejected_total") == rejected_before + 1
    assert metric("ceasefire_reports_duplicate_total") == duplicates_before
    assert east() == east_before + len(ids)
    # read raw, not by the client (the broker stored and served the name as sent)
    assert "the Kafka client cannot read the record batch" in worker.log_path.read_text(
        errors="replace"
    )
    # ingest stays ready, nothing stalled
    assert worker.proc is not None and worker.proc.poll() is None
    status, body = worker.get("/readyz")
    assert status == 200, body
    assert worker.metric("ceasefire_partition_stalled") == 0
