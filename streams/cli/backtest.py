"""`backtest`: a file of reports through classification and the rules, offline."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from streams.cli import common
from streams.cli.common import CliError, notice, settings_from, wide_console

if TYPE_CHECKING:
    from streams.tools.feed import LineChecker, Version


def cmd_backtest(args: argparse.Namespace) -> int:
    """Run a file of reports through classification and the rules offline, in event time.

    Every line is checked as `feed` checks it (`LineChecker`: the schema, a CSV or ACLED
    row's conversion, a place the gazetteer lacks, a conflicting revision); what is
    rejected is shown by reason with the first examples, as `feed` shows it, before the
    alerts. A file of which nothing is accepted (another format, d/m/y dates, a misspelt
    field on every line) is an error, not "no alerts". Progress on stderr when it is a
    terminal: reading, replaying, writing the table."""
    from rich.markup import escape

    from alerting.backtest import backtest, render_backtest
    from alerting.rules import RuleFileError, load_rules
    from schemas.report import Report
    from streams.classify.classifier import Classifier
    from streams.classify.gazetteer import Gazetteer, GazetteerError
    from streams.classify.zones import CatalogueError, ZoneCatalogue
    from streams.tools.feed import FeedSummary, LineChecker, progress_bar, render_checked
    from streams.tools.replay import latest_revisions

    settings = settings_from(args)
    try:
        zones = ZoneCatalogue.load(settings.zones)
        gazetteer = Gazetteer.load(settings.gazetteer)
        rules = load_rules(args.rules or settings.rules, known_zones=zones.ids)
    except (RuleFileError, CatalogueError, GazetteerError) as exc:
        raise CliError(str(exc)) from exc
    classifier = Classifier(zones, gazetteer)
    shown = common.console.is_terminal  # progress, on stderr
    checked = FeedSummary()
    versions = _backtest_read(args.file, args.format, LineChecker(checked, gazetteer), shown=shown)
    rows = "lines" if args.format == "jsonl" else "rows"
    where = "standard input" if args.file == "-" else args.file
    if not checked.lines:
        raise CliError(f"{where} holds no reports ({args.format}): nothing to replay")
    if checked.rejected_total:
        render_checked(checked, common.console, f"backtest input: {checked.lines:,} {rows} read")
    if not checked.accepted:
        line_no, _reason, message = checked.examples[0]
        hint = (
            "; a CSV file is --format csv, an ACLED export --format acled"
            if args.format == "jsonl" and set(checked.rejected) == {"invalid_json"}
            else ""
        )
        raise CliError(
            f"all {checked.lines:,} {rows} of {where} were rejected "
            f"({_by_reason(checked.rejected)}), nothing to replay: line {line_no}: "
            f"{' '.join(message.split())}{hint}"
        )
    latest = latest_revisions(versions)  # what the worker would end up counting
    reports = latest.reports
    unplaced: list[Report] = []  # the checker's gazetteer check should leave none
    with progress_bar(common.console, disable=not shown) as progress:
        task = progress.add_task(
            "replaying in event-time order", total=len(reports), lines=0, unit="reports"
        )
        events = backtest(
            reports,
            _counted(classifier.classify, lambda n: progress.update(task, completed=n, lines=n)),
            rules,
            link=settings.link_rule(),
            on_error=lambda report, _exc: unplaced.append(report),
        )
    _backtest_render(events, render_backtest, shown=shown)
    rejected = checked.rejected_total + latest.conflicts + len(unplaced)
    notice(
        f"{len(reports) - len(unplaced)} reports replayed in event-time order, "
        f"{rejected} rejected; "
        f"of the rest, {latest.withdrawn} withdrawn, "
        f"{latest.superseded + latest.stale} replaced by another revision, "
        f"{latest.duplicates} duplicates"
    )
    if rejected:
        notice(
            f"[yellow]warning:[/] {rejected:,} of {checked.lines:,} {rows} of {escape(where)} "
            f"were rejected and not replayed ({_by_reason(checked.rejected)}): the alerts "
            "above are of the rest; the reasons and examples are before them"
        )
    return 0


def _by_reason(rejected: dict[str, int]) -> str:
    """Rejections by reason, most first: "invalid_json 20, unknown_place 1"."""
    ranked = sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{reason} {n:,}" for reason, n in ranked)


def _backtest_read(path: str, fmt: str, checker: LineChecker, *, shown: bool) -> list[Version]:
    """The reports and withdrawals of `path` that `checker` (a `LineChecker`) accepts, in
    file order; a progress bar of the bytes read when `shown`, as `feed`'s."""
    from streams.tools.feed import (
        PROGRESS_EVERY,
        PROGRESS_SECONDS,
        check_input_file,
        progress_bar,
    )
    from streams.tools.formats import ByteMeter, HeaderError, read_lines

    check_input_file(path, "backtest")  # as feed says it
    total = os.path.getsize(path) if path != "-" else None
    meter = ByteMeter()
    unconverted: dict[int, str] = {}  # line -> why its CSV row was not converted
    versions: list[Version] = []
    name = "stdin" if path == "-" else os.path.basename(path)
    with progress_bar(common.console, disable=not shown) as progress:
        task = progress.add_task(f"reading {name}", total=total, lines=0)
        lines = read_lines(path, fmt, meter, unconverted)
        next_update = time.monotonic()
        while True:
            try:
                line_no, raw = next(lines)
            except StopIteration:
                break
            except HeaderError as exc:
                raise CliError(str(exc)) from exc
            _key, version = checker.checked(line_no, raw, unconverted.pop(line_no, None))
            if version is not None:
                versions.append(version)
            read = checker.summary.lines
            if shown and (read % PROGRESS_EVERY == 0 or time.monotonic() >= next_update):
                progress.update(task, completed=meter.read, lines=read)
                next_update = time.monotonic() + PROGRESS_SECONDS
    return versions


def _counted(classify: Callable[..., Any], done: Callable[[int], None]) -> Callable[..., Any]:
    """`classify`, calling `done` with how many reports it has classified (the backtest
    classifies each once, in event-time order) every few hundred or quarter second."""
    from streams.tools.feed import PROGRESS_EVERY, PROGRESS_SECONDS

    count = 0
    next_update = time.monotonic()

    def counted(report: Any, at: datetime) -> Any:
        nonlocal count, next_update
        count += 1
        if count % PROGRESS_EVERY == 0 or time.monotonic() >= next_update:
            done(count)
            next_update = time.monotonic() + PROGRESS_SECONDS
        return classify(report, at)

    return counted


def _backtest_render(events: list[Any], render: Callable[..., None], *, shown: bool) -> None:
    """The alert table on stdout. With progress `shown`, the table (seconds for thousands
    of events) is drawn first under a spinner on stderr, then written."""
    from streams.tools.feed import progress_bar

    wide = wide_console()
    if not shown:
        render(events, wide)
        return
    with progress_bar(common.console) as progress:
        progress.add_task("writing the table", total=None, lines=len(events), unit="alert events")
        with wide.capture() as captured:
            render(events, wide)
    wide.file.write(captured.get())
    wide.file.flush()
