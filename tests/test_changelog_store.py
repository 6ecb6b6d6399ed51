"""The changelog store's write path (streams/store/changelog.py, batches.py) on an in-memory
producer whose batches succeed or fail one by one, as aiokafka's do: the input offset a
write covers (`\\x00applied`) is never on the broker without every entry before it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.store.batches import send_to_partition
from streams.store.changelog import APPLIED_KEY, ChangelogStore

pytestmark = pytest.mark.timeout(10)

TOPIC = "stage-changelog"


class Batch:
    """A batch that holds at most `limit` records."""

    def __init__(self, limit: int) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.limit = limit

    def append(self, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        if len(self.records) >= self.limit:
            return None
        self.records.append((key, value))
        return object()


class OneByOne:
    """A producer whose batches are acknowledged or failed one at a time, later: the first
    `failing` batches fail (their partition had no leader until they expired), the rest
    land. `events` says in what order batches were sent and settled."""

    def __init__(self, *, limit: int, failing: int = 0, max_request_size: int = 1_048_576) -> None:
        self.limit = limit
        self.failing = failing
        self._max_request_size = max_request_size  # as aiokafka's producer keeps it
        self.landed: list[tuple[bytes | None, bytes | None]] = []
        self.events: list[str] = []
        self._sent = 0

    def create_batch(self) -> Batch:
        return Batch(self.limit)

    async def send_batch(self, batch: Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        n = self._sent
        self._sent += 1
        self.events.append(f"sent {n}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle() -> None:
            if n < self.failing:
                self.events.append(f"failed {n}")
                future.set_exception(ConnectionError("not leader for the partition"))
            else:
                self.events.append(f"landed {n}")
                self.landed.extend(batch.records)
                future.set_result(None)

        asyncio.get_running_loop().call_later(0.01, settle)
        return future


def store_on(producer: OneByOne) -> ChangelogStore:
    async def get() -> Any:
        return producer

    return ChangelogStore(TOPIC, Settings(), get)


ENTRIES = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]


def test_applied_is_written_last_after_the_entries_are_acknowledged() -> None:
    producer = OneByOne(limit=4)
    asyncio.run(store_on(producer).write(0, ENTRIES, applied=41))
    assert producer.landed == [*ENTRIES, (APPLIED_KEY, b"41")]
    # three batches: the last (with applied) sent only once the first two had landed
    assert producer.events.index("sent 2") > producer.events.index("landed 1")


def test_a_failed_batch_keeps_applied_off_the_broker() -> None:
    """The first batch failed while the second, holding applied, landed: the heir recovered
    an applied offset covering entries it never saw, and dropped their input as replays."""
    producer = OneByOne(limit=4, failing=1)
    with pytest.raises(ConnectionError):
        asyncio.run(store_on(producer).write(0, ENTRIES, applied=41))
    assert all(key != APPLIED_KEY for key, _ in producer.landed)


def test_a_write_lands_as_a_prefix_of_its_records() -> None:
    """Batch by batch, each acknowledged before the next is sent, with or without an input
    offset: sent together, a later batch of a backlog's step landed while an earlier one
    failed, and the step's replay skipped what had landed (an incident version published
    lower than one already out; one event counted as two incidents)."""
    for applied in (None, 41):
        producer = OneByOne(limit=4)
        asyncio.run(store_on(producer).write(0, ENTRIES, applied=applied))
        assert producer.events == [e for n in range(3) for e in (f"sent {n}", f"landed {n}")]
        producer = OneByOne(limit=4, failing=1)
        with pytest.raises(ConnectionError):
            asyncio.run(store_on(producer).write(0, ENTRIES, applied=applied))
        assert producer.events == ["sent 0", "failed 0"] and producer.landed == []


def test_one_batch_goes_out_at_once_with_its_applied() -> None:
    producer = OneByOne(limit=100)
    asyncio.run(store_on(producer).write(0, ENTRIES, applied=7))
    assert producer.events == ["sent 0", "landed 0"]
    assert producer.landed[-1] == (APPLIED_KEY, b"7")


#: A closed day's unit part as the changelog keys it, over a producer limit of 1,000 bytes.
BIG = (b"ushusha\x0019676\x001", b"x" * 1000)
REFUSED = (
    r"a record of 1,1\d\d bytes for stage-changelog partition 3 \(key "
    r"b'ushusha\\x0019676\\x001'\) is larger than the producer's max_request_size \(1,000\)"
)


def test_a_record_over_the_request_limit_is_refused_unsent() -> None:
    """aiokafka takes a record alone in an empty batch whatever its size, and `send_batch`
    checks none: a closed day's unit of 1.5 MB went out, Apache Kafka refused it (past
    `message.max.bytes`), and the sweep only logged that. Refused here, named."""
    producer = OneByOne(limit=4, max_request_size=1000)
    with pytest.raises(ValueError, match=REFUSED):
        asyncio.run(store_on(producer).write(3, [BIG, *ENTRIES], applied=41))
    assert producer.events == []  # nothing of the write sent
    # Starting a third batch: the first, full before it, went (a failed write, as one of a
    # batch failing is); the second, the record, what follows and the offset did not.
    producer = OneByOne(limit=4, max_request_size=1000)
    with pytest.raises(ValueError, match=REFUSED):
        asyncio.run(store_on(producer).write(3, [*ENTRIES[:8], BIG, *ENTRIES[8:]], applied=41))
    assert producer.events == ["sent 0"]
    # Within the limit: sent.
    producer = OneByOne(limit=4, max_request_size=1200)
    asyncio.run(store_on(producer).write(3, [BIG, *ENTRIES], applied=41))
    assert producer.landed == [BIG, *ENTRIES, (APPLIED_KEY, b"41")]


def test_aiokafkas_producer_says_its_request_limit() -> None:
    """The limit is the producer's own (`max_request_size`), read before anything is sent:
    an unstarted producer is never asked to send."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", max_request_size=1000)
        try:
            await send_to_partition(producer, "stage-changelog", 3, [BIG])
        finally:
            await producer.stop()

    with pytest.raises(ValueError, match=REFUSED):
        asyncio.run(send())
