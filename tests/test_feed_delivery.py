"""`feed` at backfill speed, without a broker: one read of the file, the producer's limits,
the compiled CRC handed to kafka-python, and delivery checked in chunks with a bound on
what is pending (sends that complete late, fail, or never)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import kafka.record.default_records as batches
import kafka.record.util as kafka_util
import pytest
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from rich.console import Console
from rich.progress import Progress

import streams.tools.feed as feed
from streams.config import Settings
from streams.tools.formats import ByteMeter, read_lines

GOOD = {
    "report_id": "f1",
    "source": "pkf-op-3",
    "source_type": "patrol",
    "occurred_at": "2021-05-01T10:00:00Z",
    "location": {"place": "Hadrut"},
    "category": "mine_incident",
}
ONE_MIB = 1024 * 1024


def jsonl(tmp_path: Path, n: int, *, refused: frozenset[int] = frozenset()) -> str:
    path = tmp_path / "in.jsonl"
    lines = [
        json.dumps({**GOOD, "report_id": "refused" if i in refused else f"r{i}"}) for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


class LateFuture:
    """A send the broker answers when the feed first waits on it, or never (`hang`)."""

    def __init__(self, error: Exception | None, hang: bool) -> None:
        self.is_done = False
        self.exception: BaseException | None = None
        self._error = error
        self._hang = hang

    def complete(self) -> None:
        if not self._hang:
            self.is_done, self.exception = True, self._error

    def get(self, timeout: float | None = None) -> str:
        self.complete()
        if not self.is_done:
            raise KafkaTimeoutError("no answer")
        if self.exception is not None:
            raise self.exception
        return "metadata"


class LateProducer:
    """Answers nothing until waited on (or flushed); records the most sends pending."""

    def __init__(self, *, hang: bool = False) -> None:
        self.futures: list[LateFuture] = []
        self.hang = hang
        self.most_pending = 0

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> LateFuture:
        assert value is not None
        error = KafkaError("broker said no") if b"refused" in value else None
        future = LateFuture(error, self.hang)
        self.futures.append(future)
        self.most_pending = max(self.most_pending, sum(not f.is_done for f in self.futures))
        return future

    def flush(self, timeout: float | None = None) -> None:
        for future in self.futures:
            future.complete()

    def close(self, timeout: float | None = None) -> None:
        pass


def console() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_pending_sends_are_bounded_and_all_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "MAX_PENDING_RECORDS", 10)
    path = jsonl(tmp_path, 100, refused=frozenset({7, 42}))
    producer = LateProducer()
    summary = feed.run_feed(Settings(), path, console=console(), producer=producer)
    assert producer.most_pending <= 11  # waited down to half past 10
    assert summary.lines == 100 and summary.aborted is None
    assert summary.sent == 98 and summary.failed_sends == 2
    assert [e.split(":")[0] for e in summary.send_errors] == ["line 8", "line 43"]


def test_pending_bytes_are_bounded_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "MAX_PENDING_BYTES", 1000)  # about 7 lines of 140 bytes
    producer = LateProducer()
    summary = feed.run_feed(Settings(), jsonl(tmp_path, 50), console=console(), producer=producer)
    assert producer.most_pending <= 8
    assert summary.sent == 50 and summary.failed_sends == 0


def test_a_broker_that_never_answers_stops_the_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "MAX_PENDING_RECORDS", 4)
    monkeypatch.setattr(feed, "STALL_SECONDS", 0.0)
    out = console()
    summary = feed.run_feed(
        Settings(), jsonl(tmp_path, 20), console=out, producer=LateProducer(hang=True)
    )
    assert summary.aborted is not None and "acknowledged nothing" in summary.aborted
    assert summary.lines == 5 and summary.sent == 0 and summary.failed_sends == 5
    assert "feed stopped early" in out.file.getvalue()  # type: ignore[attr-defined]


def test_the_file_is_read_once_and_its_bytes_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = jsonl(tmp_path, 30)
    opened: list[str] = []
    real_open = open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == path:
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    summary = feed.run_feed(Settings(), path, console=console(), producer=LateProducer())
    assert summary.lines == 30 and opened == [path]
    meter = ByteMeter()
    assert len(list(read_lines(path, "jsonl", meter))) == 30
    assert meter.read == os.path.getsize(path)


def test_the_producer_stays_under_the_request_limit_with_the_same_partitioner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: dict[str, Any] = {}

    class Recorder:
        def __init__(self, **config: Any) -> None:
            made.update(config)

    monkeypatch.setattr("kafka.KafkaProducer", Recorder)
    monkeypatch.setattr(feed, "ensure_topics", lambda settings, **_: [])
    monkeypatch.setattr(feed, "native_crc32c", lambda: True)
    feed._kafka_producer(Settings())
    assert made["max_request_size"] < ONE_MIB - 4096  # room for the request's own header
    assert made["batch_size"] <= made["max_request_size"]
    assert made["acks"] == "all" and made["compression_type"] is None
    assert "partitioner" not in made  # kafka-python's default: murmur2 of the key, as before
    monkeypatch.setattr(feed, "native_crc32c", lambda: False)
    feed._kafka_producer(Settings())
    assert made["compression_type"] == "gzip"


def test_the_compiled_crc_gives_kafka_pythons_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    pure = kafka_util.calc_crc32c
    monkeypatch.setattr(batches, "calc_crc32c", pure)  # restored after the test
    if kafka_util.crc32c_c is None:
        assert feed.native_crc32c()
        assert batches.calc_crc32c is not pure
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=ONE_MIB,
    )  # fmt: skip
    for i in range(50):
        builder.append(i, timestamp=None, key=b"acled\x1fAZE%d" % i, value=b"x" * i, headers=[])
    data = builder.build()
    batch = DefaultRecordBatch(bytes(data))
    assert batch.validate_crc()
    assert batch.crc == pure(memoryview(bytes(data))[DefaultRecordBatchBuilder.ATTRIBUTES_OFFSET :])


def test_a_broker_that_only_refuses_stops_the_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "MAX_PENDING_RECORDS", 4)
    monkeypatch.setattr(feed, "STALL_SECONDS", 0.0)
    path = jsonl(tmp_path, 20, refused=frozenset(range(20)))
    summary = feed.run_feed(Settings(), path, console=console(), producer=LateProducer())
    assert summary.aborted is not None and "acknowledged nothing" in summary.aborted
    assert summary.lines == 5 and summary.sent == 0 and summary.failed_sends == 5


class FakeClock:
    """`feed`'s clock: `sleep` moves it on, nothing else does."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def updates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The line counts the feed's progress bar is updated with, in order."""
    seen: list[int] = []

    class Recording(Progress):
        def update(self, task_id: Any, **fields: Any) -> None:
            if "lines" in fields:
                seen.append(fields["lines"])
            super().update(task_id, **fields)

    monkeypatch.setattr(feed, "Progress", Recording)
    return seen


def test_the_progress_bar_moves_at_a_slow_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At `--rate 1` the bar stayed at 0% and "0 lines": it was updated every 500 lines."""
    monkeypatch.setattr(feed, "time", FakeClock())
    seen = updates(monkeypatch)
    path = jsonl(tmp_path, 5)
    summary = feed.run_feed(Settings(), path, rate=1, console=console(), producer=LateProducer())
    assert summary.lines == 5 and summary.sent == 5
    assert seen[:5] == [1, 2, 3, 4, 5]  # a line a second: each one shown


def test_the_progress_bar_is_not_updated_per_line_of_a_fast_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "time", FakeClock())  # no time passes between lines
    seen = updates(monkeypatch)
    summary = feed.run_feed(
        Settings(), jsonl(tmp_path, 1200), console=console(), producer=LateProducer()
    )
    assert summary.lines == 1200
    assert seen == [1, 500, 1000, 1200]


def test_off_a_terminal_progress_is_a_line_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fed with its output to a log, 200,000 lines printed nothing for 38 s, then the
    summary: no bar is drawn off a terminal, so a plain line says where the feed stands."""
    monkeypatch.setattr(feed, "PROGRESS_LINE_SECONDS", 0.0)
    monkeypatch.setattr(feed, "PROGRESS_EVERY", 10)
    out = console()
    assert not out.is_terminal
    feed.run_feed(
        Settings(),
        jsonl(tmp_path, 30, refused=frozenset({3})),
        console=out,
        producer=LateProducer(),
    )
    lines = [x for x in out.file.getvalue().splitlines() if x.startswith("feeding in.jsonl: ")]  # type: ignore[attr-defined]
    assert lines, out.file.getvalue()  # type: ignore[attr-defined]
    assert "lines/s" in lines[-1] and "% of the file" in lines[-1]
    assert lines[-1].endswith("will be rejected so far")


def test_progress_line_says_lines_share_rate_and_rejections() -> None:
    summary = feed.FeedSummary()
    summary.lines = 12_345
    assert feed.progress_line("big.jsonl", summary, 500, 1000, 10.0) == (
        "feeding big.jsonl: 12,345 lines (50% of the file) in 10 s, 1,234 lines/s, "
        "0 will be rejected so far"
    )
