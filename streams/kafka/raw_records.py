"""Record batches read raw, for the records the Kafka client cannot unpack.

aiokafka unpacks a fetched record batch record by record from its start, and raises out of
`getmany` on a record it cannot unpack (a header name that is not UTF-8, which librdkafka
producers such as kcat allow; a batch failing its CRC check): it cannot hand that record
over, nor any after it in its batch, whatever offset the consumer seeks to, so the
partition would stall there for good. Nor has it a public call to fetch a partition's
bytes. So such a partition's batches are fetched here with one Fetch request through the
consumer's own client (`fetch_raw`) and read leniently (`read_raw`): every record the
client could have read, as it would have given it, and the others as `Unreadable`, with
what could be read of them. What to do with those (ingest dead-letters them) is the
caller's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from aiokafka.errors import CorruptRecordException, KafkaError, UnsupportedCodecError
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.util import calc_crc32c, decode_varint_py

#: What aiokafka raises out of `getmany` when it cannot unpack a record it fetched: a header
#: name that is not UTF-8 (its C parser raises UnicodeDecodeError, its Python parser
#: CorruptRecordException), a batch that fails its CRC check or is malformed. It unpacks a
#: batch record by record from its start, so no record after the bad one in its batch can be
#: read through it either, whatever offset the consumer seeks to. Also a batch compressed by
#: a codec Kafka does not define (snappy, lz4 and zstd are read: cramjam is a dependency).
UNREADABLE_ERRORS = (UnicodeDecodeError, CorruptRecordException, UnsupportedCodecError)
#: Most bytes of a partition read raw (`fetch_raw`): the consumer's
#: `max_partition_fetch_bytes` (aiokafka's default), so the read holds the record its fetch
#: failed on.
RAW_FETCH_BYTES = 1 << 20
#: How long the broker may hold a raw fetch before it answers: the consumer's
#: `fetch_max_wait_ms` (aiokafka's default). With records there it answers at once (it is
#: asked for one byte at least); the wait is not 0 because Tansu answers a Fetch that may
#: not wait with no partition at all, records there or not.
RAW_FETCH_WAIT_MS = 500
#: A record batch's header (magic 2) through its count of records; its CRC covers the bytes
#: from the attributes on.
_BATCH = struct.Struct(">qiibIhiqqqhii")
_CRC_FROM = 21
_CODEC, _LOG_APPEND_TIME, _CONTROL = 0x07, 0x08, 0x20
_DECOMPRESS: dict[int, Callable[[bytes], bytes]] = {
    1: gzip_decode,
    2: snappy_decode,
    3: lz4_decode,
    4: zstd_decode,
}


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record the Kafka client cannot unpack, as read raw (`read_raw`): where it is, and
    what could be read of it."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # -1: not known
    key: bytes | None
    value: bytes  # b"": not even its bytes could be read
    why: str  # what is wrong with it, to tell whoever reads its dead letter


#: A record read raw: as the Kafka client would have given it, or one it cannot unpack.
RawRecord: TypeAlias = ConsumerRecord[bytes, bytes] | Unreadable


async def fetch_raw(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bytes:
    """The record batches of `tp` from the one holding `offset` on (at least one batch,
    RAW_FETCH_BYTES at most), as the broker sends them: one Fetch request through the
    consumer's own client (aiokafka has no public call for it; its connection, credentials
    and metadata are the consumer's), of the version the client and broker agreed on.
    Read uncommitted: the consumer's default, as ingest's."""
    client = consumer._client
    node = client.cluster.leader_for_partition(tp)
    if node is None or node < 0:
        raise KafkaError(f"no leader known for {tp}")
    wanted = [(tp.topic, [(tp.partition, offset, RAW_FETCH_BYTES)])]
    request = FetchRequest(RAW_FETCH_WAIT_MS, 1, RAW_FETCH_BYTES, 0, wanted)
    response = await client.send(node, request)
    code = getattr(response, "error_code", 0)  # the whole answer's, from version 7 on
    if code:
        raise kafka_errors.for_code(code)(f"fetching {tp} from offset {offset}")
    for topic, partitions in response.topics:
        # (partition, error code, high watermark, ..., records): what lies between
        # differs from version to version
        for partition, code, _highwater, *data in partitions:
            if (topic, partition) != (tp.topic, tp.partition):
                continue
            error = kafka_errors.for_code(code)
            if error is not kafka_errors.NoError:
                raise error(f"fetching {tp} from offset {offset}")
            return bytes(data[-1] or b"")
    raise KafkaError(f"the broker's answer held nothing of {tp}")


def read_raw(data: bytes, tp: TopicPartition, start: int) -> tuple[list[RawRecord], int] | None:
    """The records of `tp` from offset `start` in `data` (record batches, as a fetch answers
    them) through the first batch the Kafka client cannot unpack, and the offset after that
    batch; None when the client can read every batch in `data` (or one this does not read:
    cut off by the fetch size, or of the old formats, which have no headers).

    Read leniently: a record whose header name is not UTF-8 is `Unreadable`, with its key and
    value; a batch failing its CRC check, or whose records cannot be parsed, gives an
    `Unreadable` without bytes for each of its offsets not parsed. Its batch's other records
    are records as the client would have given them."""
    taken: list[RawRecord] = []
    pos = 0
    while len(data) - pos > 16:
        length: int = struct.unpack_from(">i", data, pos + 8)[0]
        end = pos + 12 + length
        if end > len(data) or end - pos < _BATCH.size or data[pos + 16] < 2:
            return None
        records, unreadable, next_offset = _read_batch(memoryview(data)[pos:end], tp, start)
        if records is None:
            return None  # its header cannot be trusted: no offsets to dead-letter
        taken.extend(records)
        if unreadable:
            return taken, next_offset
        pos = end
    return None


def _read_batch(
    batch: memoryview, tp: TopicPartition, start: int
) -> tuple[list[RawRecord] | None, bool, int]:
    """A batch's records from offset `start` (None: its offsets are not known), whether the
    Kafka client cannot unpack it, and the offset after it."""
    (base, length, _, _, crc, attributes, last_delta, first_ts, max_ts, *_, count) = (
        _BATCH.unpack_from(batch)
    )
    next_offset = base + last_delta + 1
    if not 0 <= last_delta < length:  # a record takes more than a byte
        return None, True, next_offset

    def lost(first: int, why: str) -> list[RawRecord]:
        message = (
            f"the record batch holding offsets {base}..{next_offset - 1} {why}: "
            "this record could not be read"
        )
        return [
            Unreadable(tp.topic, tp.partition, o, -1, None, b"", message)
            for o in range(max(first, start), next_offset)
        ]

    if calc_crc32c(bytes(batch[_CRC_FROM:])) != crc:
        return lost(base, "failed its CRC check"), True, next_offset
    if attributes & _CONTROL:
        return [], False, next_offset  # a transaction marker: no record of the stream
    appended = max_ts if attributes & _LOG_APPEND_TIME else None
    records: list[RawRecord] = []
    unreadable = False
    try:
        body = bytes(batch[_BATCH.size :])
        codec = attributes & _CODEC
        if codec:
            if codec not in _DECOMPRESS:
                raise ValueError(f"unknown compression codec {codec}")
            body = bytes(_DECOMPRESS[codec](body))
        at = 0
        for _ in range(count):
            record, at = _read_record(body, at, base, first_ts, appended, tp)
            unreadable = unreadable or isinstance(record, Unreadable)
            records.append(record)
        if at != len(body):
            raise ValueError(f"{len(body) - at} bytes after its last record")
    except Exception as exc:  # malformed (the CRC holds: as its producer wrote it)
        after = records[-1].offset + 1 if records else base
        records.extend(lost(after, f"could not be parsed from offset {after} on ({exc})"))
        unreadable = True
    return [r for r in records if r.offset >= start], unreadable, next_offset


def _read_record(
    body: bytes, at: int, base: int, first_ts: int, appended: int | None, tp: TopicPartition
) -> tuple[RawRecord, int]:
    """The record at `at` of a batch's records (Kafka's record format, magic 2), and where
    the next one begins."""
    length, at = decode_varint_py(body, at)
    end = at + length
    at += 1  # attributes: none defined
    delta_ts, at = decode_varint_py(body, at)
    delta_offset, at = decode_varint_py(body, at)
    key, at = _sized(body, at)
    value, at = _sized(body, at)
    count, at = decode_varint_py(body, at)
    if count < 0:
        raise ValueError(f"{count} headers")
    headers: list[tuple[bytes, bytes | None]] = []
    for _ in range(count):
        name, at = _sized(body, at)
        if name is None:
            raise ValueError("a header without a name")
        header_value, at = _sized(body, at)
        headers.append((name, header_value))
    if at != end:
        raise ValueError(f"a record of {length} bytes holding {at - end + length}")
    offset = base + delta_offset
    timestamp = first_ts + delta_ts if appended is None else appended
    try:
        named = tuple((name.decode("utf-8"), v) for name, v in headers)
    except UnicodeDecodeError:
        odd = next(name for name, _ in headers if not _is_utf8(name))
        why = (
            f"a header name of this record is not UTF-8 ({odd[:40]!r}): the Kafka client "
            "could not read the record (its key and value here were read from the raw batch)"
        )
        return Unreadable(tp.topic, tp.partition, offset, timestamp, key, value or b"", why), end
    kind = 0 if appended is None else 1
    sizes = (len(key) if key is not None else -1, len(value) if value is not None else -1)
    record = ConsumerRecord(
        tp.topic, tp.partition, offset, timestamp, kind, key, value, None, *sizes, named
    )
    return record, end


def _sized(body: bytes, at: int) -> tuple[bytes | None, int]:
    """Kafka's varint-sized bytes at `at` (a negative size: null)."""
    size, at = decode_varint_py(body, at)
    if size < 0:
        return None, at
    if at + size > len(body):
        raise ValueError("a field running past its batch")
    return body[at : at + size], at + size


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
