"""`feed`: send every line of a file to the input topic, with progress, and say how many
lines the schema will reject and why. A bad line never stops the feed: it is sent too,
and the worker records it in the dead-letter topic."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from schemas.validation import Rejection, validate_report
from streams.config import Settings
from streams.tools.formats import read_lines
from streams.tools.kafka_io import producer_for


@dataclass
class FeedSummary:
    sent: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    failed_sends: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)  # line, reason, message


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def run_feed(
    settings: Settings,
    path: str,
    *,
    fmt: str = "jsonl",
    rate: float | None = None,
    console: Console,
) -> FeedSummary:
    if path != "-" and not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    producer = producer_for(settings)
    summary = FeedSummary()
    seen: set[tuple[str, str]] = set()
    total = _count_lines(path) if fmt == "jsonl" else None
    errors: list[Exception] = []
    started = time.monotonic()
    now = datetime.now(UTC)

    def failed(exc: Exception) -> None:
        errors.append(exc)

    with Progress(
        TextColumn("feeding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("feed", total=total)
        for line_no, raw in read_lines(path, fmt):
            result = validate_report(raw, now=now)
            key: bytes | None = None
            if isinstance(result, Rejection):
                summary.rejected[result.reason.value] += 1
                if len(summary.examples) < 10:
                    summary.examples.append((line_no, result.reason.value, result.message[:160]))
            else:
                summary.accepted += 1
                ident = (result.source, result.report_id)
                if ident in seen:
                    summary.duplicates += 1
                seen.add(ident)
                key = f"{result.source}\x1f{result.report_id}".encode()
            producer.send(settings.reports_topic, raw, key=key).add_errback(failed)
            summary.sent += 1
            progress.advance(task)
            if rate:
                ahead = summary.sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    producer.flush(timeout=60)
    producer.close(timeout=10)
    summary.failed_sends = len(errors)
    render(summary, settings, console, errors)
    return summary


def render(
    summary: FeedSummary, settings: Settings, console: Console, errors: list[Exception]
) -> None:
    console.print(
        f"sent {summary.sent} lines to {settings.reports_topic}: "
        f"{summary.accepted} valid ({summary.duplicates} re-sent duplicates, counted once), "
        f"{sum(summary.rejected.values())} the schema will reject"
    )
    if summary.rejected:
        table = Table(title="lines the schema will reject (they go to the dead-letter topic)")
        table.add_column("reason")
        table.add_column("lines", justify="right")
        for reason, n in summary.rejected.most_common():
            table.add_row(reason, str(n))
        console.print(table)
        for line_no, reason, message in summary.examples:
            console.print(f"  line {line_no}: {reason}: {message}")
    if errors:
        console.print(f"[bold red]{len(errors)} lines could not be sent[/]: {errors[0]}")
