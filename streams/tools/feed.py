"""`feed`: send every line of a file to the input topic as it is, with progress, and say
how many lines the schema will reject and why.

Lines that repeat a report of the file are told apart as the worker will (SPEC.md
`revision`): the same revision and content is a duplicate (counted once), the same
revision with other content a `revision_conflict` (dead-lettered; the first counts), a
higher revision a correction (it replaces the earlier one), a lower one stale (ignored).
What the worker already holds from earlier feeds is beyond what a file can tell.

A bad line never stops the feed: it is sent too (the worker records it in the
dead-letter topic), and it is counted here by reason, with the first few examples. The
first line that is not UTF-8 is also warned of at once, with how to convert the file
(`not_utf8_warning`). A file of which no line will be accepted is sent all the same; the
command then exits 1 (`streams.cli.tools.nothing_valid`).
Lines are checked locally with the same validator the worker uses; the worker's
gazetteer check of `location.place` is the one rejection this cannot foresee.
Delivery is checked: every line the broker did not acknowledge is counted in
`failed_sends` (the command then exits non-zero).

Speed (a backfill is millions of rows): the file is read once (the progress bar follows
the bytes read, not a row count taken first, and is updated every `PROGRESS_EVERY` lines or
`PROGRESS_SECONDS`, whichever comes first); the producer batches up to `BATCH_BYTES` per
partition with a compiled CRC (`native_crc32c`); sends are checked in chunks, oldest
first, never waited on one by one. What is sent and unacknowledged is bounded
(`MAX_PENDING_RECORDS`, `MAX_PENDING_BYTES`): kafka-python has no memory bound of its own,
and a batch that waits longer than its delivery timeout fails.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka.errors import KafkaError, KafkaTimeoutError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from schemas.codes import RejectReason
from schemas.dead_letter import MAX_UNCONVERTED_CHARS, UNCONVERTED_HEADER
from schemas.report import Report, WithdrawnReport
from schemas.validation import MAX_MESSAGE_BYTES, Rejection, validate_report
from streams.classify.classifier import UnknownPlace
from streams.classify.gazetteer import Gazetteer
from streams.config import Settings
from streams.kafka.topics import BrokerUnavailable, ensure_topics, unreachable
from streams.record.documents import report_digest
from streams.tools.formats import FORMATS, NOT_UTF8_HINT, ByteMeter, check_header, read_lines
from streams.tools.kafka_io import DELIVERY

__all__ = [
    "BrokerUnavailable",
    "FeedSummary",
    "LineChecker",
    "progress_bar",
    "render_checked",
    "render_summary",
    "run_feed",
]

#: Examples kept per rejection reason, and in all.
EXAMPLES_PER_REASON = 3
MAX_EXAMPLES = 20

#: The producer's limits. A produce request carries at most `MAX_REQUEST_BYTES` of batches
#: (kafka-python counts them uncompressed), under the 1 MiB that Kafka brokers and clients
#: take by default, with room for the request's own header. `BATCH_BYTES` per partition:
#: four partitions' batches fill one request.
MAX_REQUEST_BYTES = 1_000_000
#: Longest line sent to the input topic as it is (with its key, under the request limit).
#: A longer one would be refused by the client and reach no topic: the feed writes its dead
#: letter itself (`too_large`, its first 256 KiB kept), as the HTTP API does for its items.
MAX_LINE_SENT = MAX_REQUEST_BYTES - 8 * 1024
#: `source_topic` of the dead letters the feed writes itself.
FEED_SOURCE = "feed"
BATCH_BYTES = 256 * 1024
LINGER_MS = 50
#: Sends not yet acknowledged (nor failed), and their bytes, past which the feed waits
#: for the broker (down to half). kafka-python bounds neither.
MAX_PENDING_RECORDS = 50_000
MAX_PENDING_BYTES = 16 * 2**20
#: How long the feed waits without a single acknowledgement before it stops (beyond
#: kafka-python's delivery timeout, 120 s, after which every pending send has failed).
STALL_SECONDS = 180.0
#: Lines between two updates of the progress bar (rich takes a lock per update), and the
#: most seconds between two: at `--rate 1`, 500 lines are 8 minutes of a bar at 0%.
PROGRESS_EVERY = 500
PROGRESS_SECONDS = 0.25
#: Off a terminal, where no bar is drawn: a progress line this often.
PROGRESS_LINE_SECONDS = 10.0


@dataclass
class FeedSummary:
    """What a feed did. `sent` counts lines the broker acknowledged (on either topic)."""

    sent: int = 0
    accepted: int = 0  # lines the schema will accept (all of those below included)
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> lines
    duplicates: int = 0  # an earlier line's report again: same revision, same content
    revisions: int = 0  # a higher revision of an earlier line's report: replaces it
    stale: int = 0  # a lower revision than an earlier line's: ignored
    withdrawals: int = 0  # lines that withdraw a report
    #: lines too large for the broker, whose dead letters the feed wrote itself
    dead_lettered: int = 0
    #: of `sent`, those dead letters: acknowledged on the dead-letter topic, not the input
    dead_letters_sent: int = 0
    failed_sends: int = 0
    #: (line number, reason code, message) of the first few rejected lines
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    lines: int = 0  # lines read
    send_errors: list[str] = field(default_factory=list)  # first few delivery errors
    #: (line number, first byte that is not UTF-8) of the first line rejected for bytes
    #: that are not UTF-8: the feed warns once, saying how to convert the file
    not_utf8: tuple[int, int] | None = None
    aborted: str | None = None  # why the feed stopped before the end, if it did
    interrupted: bool = False  # by Ctrl-C: what was sent is still flushed and summed up
    topic: str = ""
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


#: What an accepted line holds.
Version = Report | WithdrawnReport
#: How often (in lines) the checker reads the clock for the future-time check: reading it
#: per line was a third of the validation's cost; the worker checks later still.
CLOCK_EVERY = 256
_DIGEST_BITS = 64
_DIGEST_MASK = (1 << _DIGEST_BITS) - 1
#: The digest of every withdrawal: one value beyond any report's.
_WITHDRAWN = 1 << _DIGEST_BITS


class LineChecker:
    """Validates lines as the worker will, and keeps the tallies of a `FeedSummary`.

    Memory: one entry per report identity of the file (a multi-million-row file holds
    millions), so an entry is small: the message key (the bytes object that is sent) to
    one int, the highest revision so far and the digest of its content packed together."""

    def __init__(self, summary: FeedSummary, gazetteer: Gazetteer | None = None) -> None:
        """`gazetteer`: the worker's, to tell a place it will not find (`unknown_place`)."""
        self.summary = summary
        self.gazetteer = gazetteer
        # key -> revision << (_DIGEST_BITS + 1) | digest of its content
        self._seen: dict[bytes, int] = {}
        self._reasons: Counter[str] = Counter()
        self._now = datetime.now(UTC)

    def check(self, line_no: int, raw: bytes, unconverted: str | None = None) -> bytes | None:
        """Tally one line; returns its message key (source, US, report_id) or None.
        `unconverted`: why a CSV row is sent as its text (`read_lines`), which the summary
        gives rather than the schema's `invalid_json` message. Never raises: a line this
        check fails on is counted as `internal_error`, and sent all the same."""
        return self.checked(line_no, raw, unconverted)[0]

    def checked(
        self, line_no: int, raw: bytes, unconverted: str | None = None
    ) -> tuple[bytes | None, Version | None]:
        """`check`, and the report or withdrawal the line holds when it will be accepted
        (None when it is counted as rejected): what `backtest` replays, checked once."""
        s = self.summary
        s.lines += 1
        try:
            return self._check(line_no, raw, unconverted)
        except Exception as exc:  # one bad line must not stop the feed
            self._reject(
                line_no,
                RejectReason.INTERNAL_ERROR.value,
                f"the feed's check failed: {type(exc).__name__}: {exc}",
            )
            return None, None

    def _check(
        self, line_no: int, raw: bytes, unconverted: str | None
    ) -> tuple[bytes | None, Version | None]:
        s = self.summary
        if s.lines % CLOCK_EVERY == 0:
            self._now = datetime.now(UTC)
        result = validate_report(raw, now=self._now)
        if isinstance(result, Rejection):
            # the reason is the schema's, as the worker's; the message the conversion's
            message = result.message
            if unconverted is not None:
                message = f"CSV row not converted: {unconverted}"
            if result.reason is RejectReason.INVALID_ENCODING and s.not_utf8 is None:
                self._not_utf8(line_no, raw)
            self._reject(line_no, result.reason.value, message)
            return _key_of_object(raw), None  # None for a key it lacks: counted once, above
        key = f"{result.source}\x1f{result.report_id}".encode()
        if isinstance(result, Report) and self._unknown_place(line_no, result):
            return key, None
        digest = _content_digest(result)
        packed = self._seen.get(key)
        if packed is None:
            self._seen[key] = (result.revision << (_DIGEST_BITS + 1)) | digest
            s.accepted += 1
            if isinstance(result, WithdrawnReport):
                s.withdrawals += 1
            return key, result
        revision = packed >> (_DIGEST_BITS + 1)
        if result.revision == revision and digest != packed & (_WITHDRAWN | _DIGEST_MASK):
            self._reject(
                line_no,
                RejectReason.REVISION_CONFLICT.value,
                f"revision {result.revision} of {result.source}/{result.report_id} differs "
                "from an earlier line at the same revision (the first counts)",
            )
            return key, None
        s.accepted += 1
        # one count per line, as the worker's outcome: a withdrawal that takes effect is a
        # withdrawal, not also a correction; a re-sent or older one a duplicate or stale
        if result.revision > revision:
            self._seen[key] = (result.revision << (_DIGEST_BITS + 1)) | digest
            if isinstance(result, WithdrawnReport):
                s.withdrawals += 1
            else:
                s.revisions += 1
        elif result.revision < revision:
            s.stale += 1
        else:
            s.duplicates += 1
        return key, result

    def _not_utf8(self, line_no: int, raw: bytes) -> None:
        """Notes the first line that is not UTF-8 (not one that is, with a lone surrogate
        escape, `invalid_encoding` too)."""
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.summary.not_utf8 = (line_no, raw[exc.start])

    def _unknown_place(self, line_no: int, report: Report) -> bool:
        """Whether the worker will reject `report` for a place its gazetteer lacks (it
        classifies after the schema: the schema alone called such a line accepted)."""
        place = report.location.place
        if self.gazetteer is None or report.location.lat is not None or place is None:
            return False
        if self.gazetteer.resolve(place) is not None:
            return False
        self._reject(line_no, RejectReason.UNKNOWN_PLACE.value, str(UnknownPlace(place)))
        return True

    def _reject(self, line_no: int, reason: str, message: str) -> None:
        s = self.summary
        s.rejected[reason] = s.rejected.get(reason, 0) + 1
        if self._reasons[reason] < EXAMPLES_PER_REASON and len(s.examples) < MAX_EXAMPLES:
            self._reasons[reason] += 1
            s.examples.append((line_no, reason, message[:200]))


def _content_digest(result: Report | WithdrawnReport) -> int:
    """What tells a re-send from a conflicting line at one revision: the worker's own digest
    of the report as sent (`report_digest`, 64 bits), so that the forecast is the worker's
    (an offset, `reported_at`, no casualties or zero are no other content). Withdrawals at
    one revision say the same thing, whatever else they carry."""
    if isinstance(result, WithdrawnReport):
        return _WITHDRAWN
    return int.from_bytes(report_digest(result)) & _DIGEST_MASK


def _key_of_object(raw: bytes) -> bytes | None:
    """The key of a rejected line that still names its source and report_id. A line over
    the schema's size limit (`too_large`) is not parsed whole: a 100 MB line took 700 MB
    of objects to read two fields; its first `MAX_MESSAGE_BYTES` tell them (`_prefix_doc`)."""
    doc: Any
    if len(raw) > MAX_MESSAGE_BYTES:
        doc = _prefix_doc(raw[:MAX_MESSAGE_BYTES])
    else:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # too deep: json recurses
            return None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and "specversion" in doc:
        doc = doc["data"]
    if isinstance(doc, dict):
        source, report_id = doc.get("source"), doc.get("report_id")
        if isinstance(source, str) and isinstance(report_id, str) and source and report_id:
            try:
                return f"{source}\x1f{report_id}".encode()
            except UnicodeEncodeError:  # a lone surrogate escape ("\ud800"): no UTF-8 key
                return None
    return None


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]+")


def _skip(text: str, pos: int) -> int:
    """The first position from `pos` on that is no JSON whitespace."""
    space = _SPACE.match(text, pos)
    return pos if space is None else space.end()


def _prefix_doc(prefix: bytes) -> dict[str, Any] | None:
    """The members of the JSON object that `prefix` (the start of a line) begins, as far as
    they are whole in it; None if it begins no object or is no UTF-8. As for a whole line,
    a repeated name keeps its last value, and `data` is read as an envelope's when
    `specversion` comes before the cut."""
    try:
        # not final: a character cut at the end of the prefix is left out, not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(prefix, final=False)
    except UnicodeDecodeError:
        return None
    start = _skip(text, 0)
    if not text.startswith("{", start):
        return None
    return _object_prefix(text, start, envelope=True)


def _object_prefix(text: str, start: int, *, envelope: bool) -> dict[str, Any]:
    """The whole members of the object at `text[start]` ("{"), up to the first that is not
    (cut off, or malformed); with `envelope`, a `data` object cut off gives its own."""
    members: dict[str, Any] = {}
    pos = _skip(text, start + 1)
    try:
        while text.startswith('"', pos):
            name, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if not text.startswith(":", pos):
                break
            pos = _skip(text, pos + 1)
            try:
                members[name], pos = _DECODER.raw_decode(text, pos)
            except (ValueError, RecursionError):
                if envelope and name == "data" and text.startswith("{", pos):
                    members[name] = _object_prefix(text, pos, envelope=False)
                break
            pos = _skip(text, pos)
            if not text.startswith(",", pos):
                break
            pos = _skip(text, pos + 1)
    except (ValueError, RecursionError):  # a name cut off
        pass
    return members


class _Future(Protocol):
    """What the feed reads of kafka-python's `FutureRecordMetadata`."""

    is_done: bool
    exception: BaseException | None

    def get(self, timeout: float | None = ...) -> Any: ...


class _Producer(Protocol):
    def send(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        headers: list[tuple[str, bytes]] | None = ...,
    ) -> Any: ...
    def flush(self, timeout: float | None = ...) -> Any: ...
    def close(self, timeout: float | None = ...) -> Any: ...


class _Deliveries:
    """The sends not yet known to be delivered, oldest first, with their bytes; tallied as
    they complete. Read in chunks by the feeding thread: no callback per record (a bound
    callback and errback with their locks cost more than the check), and no record waited
    on alone. Futures complete in order within a partition, so the oldest is the one to wait
    for; later ones done meanwhile are tallied once it is."""

    def __init__(self) -> None:
        # (future, line, bytes, whether it is a dead letter the feed wrote)
        self._pending: deque[tuple[_Future, int, int, bool]] = deque()
        self.pending_bytes = 0
        self.ok = 0
        self.ok_dead_letters = 0  # of `ok`
        self.failed = 0
        self.errors: list[str] = []
        self._acked_at = time.monotonic()  # of the last acknowledgement seen (or the start)

    def track(self, future: _Future, line_no: int, size: int, *, dead_letter: bool) -> None:
        self._pending.append((future, line_no, size, dead_letter))
        self.pending_bytes += size

    @property
    def pending(self) -> int:
        return len(self._pending)

    def collect(self) -> None:
        """Tallies the sends completed, oldest first, up to the first still pending."""
        pending = self._pending
        ok = self.ok
        while pending and pending[0][0].is_done:
            future, line_no, size, dead_letter = pending.popleft()
            self.pending_bytes -= size
            if future.exception is None:
                self.ok += 1
                self.ok_dead_letters += dead_letter
            else:
                self._failed(line_no, future.exception)
        if self.ok != ok:
            self._acked_at = time.monotonic()

    def _failed(self, line_no: int, exc: BaseException) -> None:
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(f"line {line_no}: {type(exc).__name__}: {exc}")

    def sync_failure(self, line_no: int, exc: BaseException) -> None:
        self._failed(line_no, exc)

    def wait_below(self, records: int, size: int, stall: float) -> bool:
        """Waits until at most `records` sends and `size` bytes are pending; False once the
        broker has acknowledged nothing for `stall` seconds (sends that only fail, as after
        kafka-python's delivery timeout, are no progress: feeding on would fail them all)."""
        self.collect()
        while len(self._pending) > records or self.pending_bytes > size:
            # a failed or late send raises here; `collect` tallies it
            with contextlib.suppress(Exception):
                self._pending[0][0].get(timeout=1.0)
            self.collect()
            if time.monotonic() - self._acked_at > stall:
                return False
        return True


def check_input_file(path: str, command: str) -> None:
    """The file `command` reads is one ("-" is standard input): said in one line if not."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory: {command} takes a file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if not os.path.isfile(path):
        # a named pipe or /dev/fd/N: its header check would consume what it checks
        raise FileNotFoundError(
            f"{path} is not a regular file: {command} reads a file, or standard input with "
            f"`-` (e.g. `... | ceasefire-monitor {command} -`)"
        )


def run_feed(
    settings: Settings,
    path: str,
    *,
    fmt: str = "jsonl",
    rate: float | None = None,
    console: Console,
    producer: _Producer | None = None,
) -> FeedSummary:
    """Send every line of `path` ("-": stdin) to the input topic; returns the summary
    (also printed). Raises `BrokerUnavailable` when no broker answers, and
    `FileNotFoundError` / `ValueError` for a missing file or an unknown format.
    `producer` replaces the Kafka producer (tests)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    check_input_file(path, "feed")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    check_header(path, fmt)  # a file of another format: one line, before the broker
    total = os.path.getsize(path) if path != "-" else None
    own_producer = producer is None
    if producer is None:
        producer = _kafka_producer(settings)

    topic = settings.reports_topic
    summary = FeedSummary(topic=topic)
    checker = LineChecker(summary, Gazetteer.load(settings.gazetteer))
    deliveries = _Deliveries()
    meter = ByteMeter()
    unconverted: dict[int, str] = {}  # line -> why its CSV row is sent as its text
    started = time.monotonic()
    next_progress = started  # when the progress bar is next updated, whatever the lines
    next_line = started + PROGRESS_LINE_SECONDS  # off a terminal: the next progress line
    warned = False  # of a line that is not UTF-8: once
    try:
        with progress_bar(console) as progress:
            name = "stdin" if path == "-" else os.path.basename(path)
            task = progress.add_task(f"feeding {name} → {topic}", total=total, lines=0)
            for line_no, raw in read_lines(path, fmt, meter, unconverted):
                why = unconverted.pop(line_no, None)
                key = checker.check(line_no, raw, why)
                if not warned and summary.not_utf8 is not None:
                    warned = True
                    console.print(not_utf8_warning(path, summary.not_utf8), soft_wrap=True)
                # the worker's dead letter for the row says why, as the summary does (the
                # worker keeps no more of it than this)
                headers = (
                    None
                    if why is None
                    else [(UNCONVERTED_HEADER, why[:MAX_UNCONVERTED_CHARS].encode())]
                )
                to, value = topic, raw
                # the headers are part of the record the client measures against its limit
                if len(raw) + len(key or b"") + _size_of(headers) > MAX_LINE_SENT:
                    to, headers = settings.dlq_topic, None
                    value, key = _too_large(raw, key, why)
                    summary.dead_lettered += 1
                try:
                    future = producer.send(to, value, key=key, headers=headers)
                except KafkaTimeoutError as exc:  # no metadata: the broker is gone
                    deliveries.sync_failure(line_no, exc)
                    summary.aborted = (
                        f"stopped at line {line_no}: the broker stopped answering ({exc})"
                    )
                    break
                except KafkaError as exc:  # this line only, e.g. larger than the broker takes
                    deliveries.sync_failure(line_no, exc)
                else:
                    deliveries.track(future, line_no, len(value), dead_letter=to != topic)
                now = time.monotonic()
                if summary.lines % PROGRESS_EVERY == 0 or now >= next_progress:
                    progress.update(task, completed=meter.read, lines=summary.lines)
                    deliveries.collect()
                    next_progress = now + PROGRESS_SECONDS
                    if not console.is_terminal and now >= next_line:
                        # no bar off a terminal (a log, a pipe): a line now and then
                        console.print(
                            progress_line(name, summary, meter.read, total, now - started)
                        )
                        next_line = now + PROGRESS_LINE_SECONDS
                if (
                    deliveries.pending > MAX_PENDING_RECORDS
                    or deliveries.pending_bytes > MAX_PENDING_BYTES
                ) and not deliveries.wait_below(
                    MAX_PENDING_RECORDS // 2, MAX_PENDING_BYTES // 2, STALL_SECONDS
                ):
                    summary.aborted = (
                        f"stopped at line {line_no}: the broker acknowledged nothing "
                        f"for {STALL_SECONDS:.0f} s"
                    )
                    break
                if rate:
                    ahead = (summary.lines / rate) - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            progress.update(task, completed=meter.read, lines=summary.lines)
    except KeyboardInterrupt:
        # Ctrl-C: say how far it got (it ended silently, the user not told what was sent)
        summary.interrupted = True
        summary.aborted = (
            f"interrupted (Ctrl-C) after {summary.lines:,} lines read; "
            "the rest of the file was not sent"
        )
    finally:
        try:
            producer.flush(timeout=60)
        except KafkaError as exc:
            summary.send_errors.append(f"flush: {type(exc).__name__}: {exc}")
        finally:
            deliveries.collect()  # what is still pending now counts as failed below
            if own_producer:
                producer.close(timeout=10)
    summary.seconds = time.monotonic() - started
    summary.sent = deliveries.ok
    summary.dead_letters_sent = deliveries.ok_dead_letters
    # every line read was meant to be sent: what the broker did not acknowledge failed
    summary.failed_sends = summary.lines - deliveries.ok
    summary.send_errors = deliveries.errors + summary.send_errors
    render_summary(summary, console)
    return summary


def not_utf8_warning(path: str, first: tuple[int, int]) -> Text:
    """The feed's warning, once, at the first line with bytes that are not UTF-8 (`first`:
    its number and first such byte): the likely cause and how to convert the file. The
    feed goes on: lines that are UTF-8 are accepted, the others dead-lettered."""
    line_no, byte = first
    name = "standard input" if path == "-" else path
    said = (
        f"line {line_no:,} of {name} holds bytes that are not UTF-8 (0x{byte:02X}); every "
        "such line will be rejected (invalid_encoding), the feed goes on: "
        + NOT_UTF8_HINT.format(file="FILE" if path == "-" else path)
    )
    return Text("warning: ", style="bold yellow") + shown(said)


def progress_line(
    name: str, summary: FeedSummary, read: int, total: int | None, seconds: float
) -> str:
    """Where a feed stands, in one line for a log: lines sent, the share of the file read,
    the rate, and the lines the schema will reject so far."""
    share = f" ({100 * read / total:.0f}% of the file)" if total else ""
    rate = summary.lines / seconds if seconds > 0 else 0.0
    return (
        f"feeding {name}: {summary.lines:,} lines{share} in {seconds:.0f} s, "
        f"{rate:,.0f} lines/s, {summary.rejected_total:,} will be rejected so far"
    )


def progress_bar(console: Console, *, disable: bool = False) -> Progress:
    """The progress display of `feed` and `backtest`, on `console` and gone when done: per
    task its description (as it is: no markup), a bar, the share done, its `lines` (a task
    field: how many `unit`s, another field, "lines" unless given), the time taken and the
    time left.
    `disable`: shows nothing (`backtest` when its console is no terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=disable,
    )


class _CountColumn(ProgressColumn):
    """A task's `lines` and `unit` fields: "1,500 lines", "900 reports"."""

    def render(self, task: Task) -> Text:
        count = task.fields.get("lines", 0)
        return Text(f"{count:,} {task.fields.get('unit', 'lines')}")


def _size_of(headers: list[tuple[str, bytes]] | None) -> int:
    """The bytes of a record's headers (names and values)."""
    return sum(len(name.encode()) + len(value) for name, value in headers or ())


def _too_large(
    raw: bytes, key: bytes | None, unconverted: str | None = None
) -> tuple[bytes, bytes | None]:
    """The dead letter of a line no broker would take (`too_large`, bounded), and its key.
    `unconverted`: why a CSV row is sent as its text, said as the worker would have."""
    from schemas.dead_letter import dead_letter, dead_letter_key

    rejection = validate_report(raw)  # too_large, from its size alone
    assert isinstance(rejection, Rejection)
    note = "; the feed wrote this record itself: no topic takes a message this large"
    if unconverted is not None:
        said = unconverted[:MAX_UNCONVERTED_CHARS]
        note = f"; a CSV row the feed could not convert ({said}), sent as its text{note}"
    rejection = Rejection(rejection.reason, rejection.message + note, rejection.errors)
    letter = dead_letter(
        raw,
        rejection,
        topic=FEED_SOURCE,
        partition=None,
        offset=None,
        key=key,
        received_at=datetime.now(UTC),
    )
    return letter, dead_letter_key(key)


def native_crc32c() -> bool:
    """Makes kafka-python's record batches use a compiled CRC-32C; False if none is at hand.

    kafka-python computes the CRC of every batch it sends in pure Python (a fifth of the
    feed's time, profiled, before this) unless the `crc32c` package is installed, which it
    then uses by itself. Failing that, this hands it aiokafka's compiled one (aiokafka is a
    dependency: the worker's client), after checking that both give the same checksums."""
    import kafka.record.default_records as batches
    import kafka.record.util as kafka_util

    if kafka_util.crc32c_c is not None:
        return True
    if batches.calc_crc32c is not kafka_util.calc_crc32c:
        return True  # installed earlier in this process
    try:
        from aiokafka.record import util as aiokafka_util
    except ImportError:
        return False
    compiled = aiokafka_util.calc_crc32c
    if compiled is aiokafka_util.calc_crc32c_py:  # aiokafka without its extensions
        return False
    sample = memoryview(bytes(range(256)) * 5)[61:]  # as kafka-python passes it: a view
    if compiled(sample) != kafka_util.calc_crc32c(sample) or compiled(b"") != 0:
        return False
    batches.calc_crc32c = compiled
    return True


def _kafka_producer(settings: Settings) -> _Producer:
    """The feed's producer: as `kafka_io.producer_for`'s (`DELIVERY`, security; the
    default partitioner on the same keys), tuned for bulk (batches, request size). Batches
    are gzip-compressed only when the CRC is pure Python, which then runs over fewer bytes;
    with a compiled CRC, compression costs more CPU than it saves on a local network."""
    from kafka import KafkaProducer

    try:
        ensure_topics(settings, check_partitions=False)  # creates missing topics, any count
        producer: _Producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap(),
            linger_ms=LINGER_MS,
            batch_size=BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
            compression_type=None if native_crc32c() else "gzip",
            **DELIVERY,
            **settings.kafka_security(),
        )
        return producer
    except BrokerUnavailable:
        raise
    except KafkaError as exc:  # NoBrokersAvailable, timeouts, connection errors
        raise unreachable(settings) from exc


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: str) -> Text:
    """Text from a fed file as a table shows it: no markup, and control characters written
    out (`\\x1b`), so that a field name holding a terminal's escape sequence neither clears
    the operator's screen nor colours what it says."""
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def render_checked(summary: FeedSummary, console: Console, title: str) -> None:
    """What a `LineChecker` found in a file that is not sent (`backtest`): the table of the
    feed's summary without its sending rows (the lines read, accepted, rejected by reason)
    and the first rejected lines, as the feed shows them."""
    console.print(_counts(summary, title, sent=False))
    _render_examples(summary, console)


def _counts(s: FeedSummary, title: str, *, sent: bool) -> Table:
    """The lines read, accepted (of which repeats, corrections, stale, withdrawals) and
    rejected by reason; with `sent`, also those sent and dead-lettered by the feed."""
    table = Table(title=title, title_justify="left", show_header=True)
    table.add_column("lines")
    table.add_column("count", justify="right")
    table.add_row("read", str(s.lines))
    if sent:
        table.add_row("sent (acknowledged by the broker)", str(s.sent))
    table.add_row("[green]will be accepted[/]" if sent else "[green]accepted[/]", str(s.accepted))
    if s.duplicates:
        table.add_row("  of which repeat an earlier line (counted once)", str(s.duplicates))
    if s.revisions:
        table.add_row("  of which correct an earlier line (higher revision)", str(s.revisions))
    if s.stale:
        table.add_row("  of which are older than an earlier line (ignored)", str(s.stale))
    if s.withdrawals:
        table.add_row("  of which withdraw a report", str(s.withdrawals))
    rejected = (
        "[yellow]will be rejected (dead-letter topic)[/]"
        if sent
        else "[yellow]rejected (a worker would dead-letter them)[/]"
    )
    table.add_row(rejected, str(s.rejected_total))
    if sent and s.dead_lettered:
        table.add_row(
            "  of which too large for the broker: dead letter written by the feed",
            str(s.dead_lettered),
        )
    for reason, n in sorted(s.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"  {reason}", str(n))
    return table


def _render_examples(s: FeedSummary, console: Console) -> None:
    """The first rejected lines (`EXAMPLES_PER_REASON` of each reason): line, reason, why."""
    if not s.examples:
        return
    examples = Table(title="first rejected lines", title_justify="left")
    examples.add_column("line", justify="right")
    examples.add_column("reason")
    examples.add_column("message", overflow="fold")
    for line_no, reason, message in s.examples:
        examples.add_row(str(line_no), reason, shown(message))
    console.print(examples)


def render_summary(summary: FeedSummary, console: Console) -> None:
    """The end-of-feed report: a headline, a table of counts, examples of rejections."""
    s = summary
    rejected = s.rejected_total
    # a line the feed dead-lettered itself never reached the input topic: said apart
    own = f" and {s.dead_letters_sent} dead letters" if s.dead_letters_sent else ""
    lines = s.sent - s.dead_letters_sent
    # valid and rejected count the lines read, delivered or not: a failed send is said apart
    lost = f"; {s.failed_sends} not delivered (below)" if s.failed_sends else ""
    console.print(
        f"sent {lines} line{'' if lines == 1 else 's'} to {s.topic or 'the input topic'}{own} "
        f"in {s.seconds:.1f} s: of {s.lines} read, "
        f"{s.accepted} valid ({s.duplicates} re-sent duplicates, counted once), "
        f"{rejected} will be rejected{lost}"
    )
    table = _counts(s, "feed summary", sent=True)
    style = "bold red" if s.failed_sends else ""
    table.add_row(f"[{style}]failed to send[/]" if style else "failed to send", str(s.failed_sends))
    console.print(table)
    _render_examples(s, console)
    if s.aborted:
        console.print(f"[bold red]feed stopped early:[/] {s.aborted}")
    if s.failed_sends:
        console.print(f"[bold red]{s.failed_sends} lines were not delivered[/]")
        for error in s.send_errors:
            console.print(f"  {error}")
