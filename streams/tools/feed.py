"""`feed`: send every line of a file to the input topic as it is, with progress, and say
how many lines the schema will reject and why.

Lines that repeat a report of the file are told apart as the worker will (SPEC.md
`revision`): the same revision and content is a duplicate (counted once), the same
revision with other content a `revision_conflict` (dead-lettered; the first counts), a
higher revision a correction (it replaces the earlier one), a lower one stale (ignored).
What the worker already holds from earlier feeds is beyond what a file can tell.

A bad line never stops the feed: it is sent too (the worker records it in the
dead-letter topic), and it is counted here by reason, with the first few examples.
Lines are checked locally with the same validator the worker uses; the worker's
gazetteer check of `location.place` is the one rejection this cannot foresee.
Delivery is checked: every line the broker did not acknowledge is counted in
`failed_sends` (the command then exits non-zero).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka.errors import KafkaError, KafkaTimeoutError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from schemas.codes import RejectReason
from schemas.report import Report, WithdrawnReport
from schemas.validation import Rejection, validate_report
from streams.config import Settings
from streams.kafka.topics import BrokerUnavailable, unreachable
from streams.tools.formats import FORMATS, count_records, read_lines

__all__ = ["BrokerUnavailable", "FeedSummary", "LineChecker", "render_summary", "run_feed"]

#: Examples kept per rejection reason, and in all.
EXAMPLES_PER_REASON = 3
MAX_EXAMPLES = 20


@dataclass
class FeedSummary:
    """What a feed did. `sent` counts lines the broker acknowledged."""

    sent: int = 0
    accepted: int = 0  # lines the schema will accept (all of those below included)
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> lines
    duplicates: int = 0  # an earlier line's report again: same revision, same content
    revisions: int = 0  # a higher revision of an earlier line's report: replaces it
    stale: int = 0  # a lower revision than an earlier line's: ignored
    withdrawals: int = 0  # lines that withdraw a report
    failed_sends: int = 0
    #: (line number, reason code, message) of the first few rejected lines
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    lines: int = 0  # lines read
    send_errors: list[str] = field(default_factory=list)  # first few delivery errors
    aborted: str | None = None  # why the feed stopped before the end, if it did
    topic: str = ""
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class LineChecker:
    """Validates lines as the worker will, and keeps the tallies of a `FeedSummary`."""

    def __init__(self, summary: FeedSummary) -> None:
        self.summary = summary
        # identity -> (highest revision so far, digest of its content)
        self._seen: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._reasons: Counter[str] = Counter()

    def check(self, line_no: int, raw: bytes) -> bytes | None:
        """Tally one line; returns its message key (source, US, report_id) or None."""
        s = self.summary
        s.lines += 1
        result = validate_report(raw)
        if isinstance(result, Rejection):
            self._reject(line_no, result.reason.value, result.message)
            return _key_of_object(raw)
        key = f"{result.source}\x1f{result.report_id}".encode()
        ident = (result.source, result.report_id)
        digest = _content_digest(result)
        seen = self._seen.get(ident)
        if seen is not None and result.revision == seen[0] and digest != seen[1]:
            self._reject(
                line_no,
                RejectReason.REVISION_CONFLICT.value,
                f"revision {result.revision} of {result.source}/{result.report_id} differs "
                "from an earlier line at the same revision (the first counts)",
            )
            return key
        s.accepted += 1
        if isinstance(result, WithdrawnReport):
            s.withdrawals += 1
        if seen is None or result.revision > seen[0]:
            self._seen[ident] = (result.revision, digest)
            if seen is not None:
                s.revisions += 1
        elif result.revision < seen[0]:
            s.stale += 1
        else:
            s.duplicates += 1
        return key

    def _reject(self, line_no: int, reason: str, message: str) -> None:
        s = self.summary
        s.rejected[reason] = s.rejected.get(reason, 0) + 1
        if self._reasons[reason] < EXAMPLES_PER_REASON and len(s.examples) < MAX_EXAMPLES:
            self._reasons[reason] += 1
            s.examples.append((line_no, reason, message[:200]))


def _content_digest(result: Report | WithdrawnReport) -> bytes:
    """What tells a re-send from a conflicting line at one revision: the validated content
    (so field order, spacing and envelopes do not matter). Withdrawals at one revision say
    the same thing, whatever else they carry."""
    if isinstance(result, WithdrawnReport):
        return b"withdrawn"
    return hashlib.blake2b(result.model_dump_json().encode(), digest_size=8).digest()


def _key_of_object(raw: bytes) -> bytes | None:
    """The key of a rejected line that still names its source and report_id."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and "specversion" in doc:
        doc = doc["data"]
    if isinstance(doc, dict):
        source, report_id = doc.get("source"), doc.get("report_id")
        if isinstance(source, str) and isinstance(report_id, str) and source and report_id:
            return f"{source}\x1f{report_id}".encode()
    return None


class _Future(Protocol):
    def add_callback(self, f: Any, *args: Any, **kwargs: Any) -> Any: ...
    def add_errback(self, f: Any, *args: Any, **kwargs: Any) -> Any: ...


class _Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...
    def flush(self, timeout: float | None = ...) -> Any: ...
    def close(self, timeout: float | None = ...) -> Any: ...


class _Deliveries:
    """Counts acknowledgements and failures reported by the producer's I/O thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.errors: list[str] = []

    def track(self, future: _Future, line_no: int) -> None:
        future.add_callback(self._ok)
        future.add_errback(self._failed, line_no)

    def _ok(self, _metadata: Any) -> None:
        with self._lock:
            self.ok += 1

    def _failed(self, line_no: int, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(f"line {line_no}: {type(exc).__name__}: {exc}")

    def sync_failure(self, line_no: int, exc: BaseException) -> None:
        self._failed(line_no, exc)


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
    if path != "-" and not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    total = count_records(path, fmt)
    own_producer = producer is None
    if producer is None:
        producer = _kafka_producer(settings)

    topic = settings.reports_topic
    summary = FeedSummary(topic=topic)
    checker = LineChecker(summary)
    deliveries = _Deliveries()
    started = time.monotonic()
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn(f"feeding {'stdin' if path == '-' else os.path.basename(path)} → {topic}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("feed", total=total)
            for line_no, raw in read_lines(path, fmt):
                key = checker.check(line_no, raw)
                try:
                    future = producer.send(topic, raw, key=key)
                except KafkaTimeoutError as exc:  # no metadata: the broker is gone
                    deliveries.sync_failure(line_no, exc)
                    summary.aborted = (
                        f"stopped at line {line_no}: the broker stopped answering ({exc})"
                    )
                    break
                except KafkaError as exc:  # this line only, e.g. larger than the broker takes
                    deliveries.sync_failure(line_no, exc)
                else:
                    deliveries.track(future, line_no)
                progress.advance(task)
                if rate:
                    ahead = (summary.lines / rate) - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
    finally:
        try:
            producer.flush(timeout=60)
        except KafkaError as exc:
            summary.send_errors.append(f"flush: {type(exc).__name__}: {exc}")
        finally:
            if own_producer:
                producer.close(timeout=10)
    summary.seconds = time.monotonic() - started
    summary.sent = deliveries.ok
    # every line read was meant to be sent: what the broker did not acknowledge failed
    summary.failed_sends = summary.lines - deliveries.ok
    summary.send_errors = deliveries.errors + summary.send_errors
    render_summary(summary, console)
    return summary


def _kafka_producer(settings: Settings) -> _Producer:
    from streams.tools.kafka_io import producer_for

    try:
        producer: _Producer = producer_for(settings)  # creates the topics first if missing
        return producer
    except BrokerUnavailable:
        raise
    except KafkaError as exc:  # NoBrokersAvailable, timeouts, connection errors
        raise unreachable(settings) from exc


def render_summary(summary: FeedSummary, console: Console) -> None:
    """The end-of-feed report: a headline, a table of counts, examples of rejections."""
    s = summary
    rejected = s.rejected_total
    console.print(
        f"sent {s.sent} lines to {s.topic or 'the input topic'} in {s.seconds:.1f} s: "
        f"{s.accepted} valid ({s.duplicates} re-sent duplicates, counted once), "
        f"{rejected} will be rejected"
    )
    table = Table(title="feed summary", title_justify="left", show_header=True)
    table.add_column("lines")
    table.add_column("count", justify="right")
    table.add_row("read", str(s.lines))
    table.add_row("sent (acknowledged by the broker)", str(s.sent))
    table.add_row("[green]will be accepted[/]", str(s.accepted))
    if s.duplicates:
        table.add_row("  of which repeat an earlier line (counted once)", str(s.duplicates))
    if s.revisions:
        table.add_row("  of which correct an earlier line (higher revision)", str(s.revisions))
    if s.stale:
        table.add_row("  of which are older than an earlier line (ignored)", str(s.stale))
    if s.withdrawals:
        table.add_row("  of which withdraw a report", str(s.withdrawals))
    table.add_row("[yellow]will be rejected (dead-letter topic)[/]", str(rejected))
    for reason, n in sorted(s.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"  {reason}", str(n))
    style = "bold red" if s.failed_sends else ""
    table.add_row(f"[{style}]failed to send[/]" if style else "failed to send", str(s.failed_sends))
    console.print(table)
    if s.examples:
        examples = Table(title="first rejected lines", title_justify="left")
        examples.add_column("line", justify="right")
        examples.add_column("reason")
        examples.add_column("message", overflow="fold")
        for line_no, reason, message in s.examples:
            examples.add_row(str(line_no), reason, message)
        console.print(examples)
    if s.aborted:
        console.print(f"[bold red]feed stopped early:[/] {s.aborted}")
    if s.failed_sends:
        console.print(f"[bold red]{s.failed_sends} lines were not delivered[/]")
        for error in s.send_errors:
            console.print(f"  {error}")
