"""`simulate`, `feed`, `schema` and `bench`: reports made up, sent from a file, their
format, and the benchmarks (streams/tools/, streams/bench.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from streams.cli import common
from streams.cli.common import CliError, settings_from

if TYPE_CHECKING:
    from streams.config import Settings
    from streams.tools.acled_deletions import Deletions
    from streams.tools.feed import FeedSummary


def cmd_schema(args: argparse.Namespace) -> int:
    from schemas.report import report_json_schema

    common.out.print_json(json.dumps(report_json_schema()))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.tools.simulate import run_simulation, write_simulation

    if args.output is not None:  # to a file: no broker
        if args.duration is not None:
            raise CliError("--duration is for Kafka; with --output, --count says how many")
        count = args.count or 1000
        if args.output == "-":
            written = write_simulation(
                sys.stdout.buffer, count=count, rate=args.rate, seed=args.seed
            )
        else:
            with open(args.output, "wb") as f:
                written = write_simulation(f, count=count, rate=args.rate, seed=args.seed)
        # plain text: the path is the user's, and `out[/].jsonl` crashed after the write
        common.console.print(
            f"wrote {written} reports to {args.output}", markup=False, soft_wrap=True
        )
        return 0
    if args.count is not None:
        raise CliError("--count is for --output; to Kafka, --duration bounds the run")
    settings = settings_from(args)
    sent = run_simulation(
        settings, rate=args.rate, duration=args.duration, seed=args.seed, console=common.console
    )
    common.console.print(f"sent {sent} reports to {settings.reports_topic}", soft_wrap=True)
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from streams.classify.gazetteer import Gazetteer
    from streams.kafka.topics import TopicMismatch
    from streams.tools.feed import run_feed
    from streams.tools.formats import HeaderError

    settings = settings_from(args)
    Gazetteer.load(settings.gazetteer)  # a bad one is one line (`main`), before the broker
    try:
        # what to withdraw is known (or refused) before anything is sent
        withdrawals = _deleted_events(args) if args.withdraw_missing_from else None
        summary = run_feed(
            settings, args.file, fmt=args.format, rate=args.rate, console=common.console
        )
        if summary.interrupted:
            return 130  # as a shell reports SIGINT
        if summary.lines and not summary.accepted:
            # Sent all the same (SPEC: every line as it is; the worker dead-letters them),
            # but a nightly import of nothing valid (d/m/y dates, the wrong --format) must
            # fail; and withdraw nothing after it.
            raise CliError(nothing_valid(summary, args.file, args.format))
        failed = summary.failed_sends
        if withdrawals is not None and not summary.aborted:
            withdrawn = _withdraw(settings, args, withdrawals)
            if withdrawn is not None:
                if withdrawn.interrupted:
                    return 130
                failed += withdrawn.failed_sends
    except (HeaderError, TopicMismatch) as exc:  # TopicMismatch: one line, not its class name
        raise CliError(str(exc)) from exc
    return 1 if failed else 0


def _deleted_events(args: argparse.Namespace) -> Deletions:
    from streams.tools.acled_deletions import PartialExport, deletions
    from streams.tools.feed import check_input_file

    if args.format != "acled":
        raise CliError("--withdraw-missing-from compares ACLED exports: use it with --format acled")
    if args.file == "-":
        raise CliError("--withdraw-missing-from reads the new export twice: give it as a file")
    check_input_file(args.withdraw_missing_from, "feed")
    try:
        return deletions(args.withdraw_missing_from, args.file)
    except PartialExport as exc:
        raise CliError(str(exc)) from exc


def _withdraw(settings: Settings, args: argparse.Namespace, found: Deletions) -> FeedSummary | None:
    """Feed a withdrawal of each deleted event (JSONL, from a file of its own so that its
    summary is its own); None when there is none."""
    import os
    import tempfile
    import time

    from rich.markup import escape

    from streams.tools.acled_deletions import withdrawal_lines
    from streams.tools.feed import run_feed

    previous, new = os.path.basename(args.withdraw_missing_from), os.path.basename(args.file)
    said = found.said(previous, new)
    if not found.ids:
        common.console.print(escape(f"{said}: nothing to withdraw"), soft_wrap=True)
        return None
    first = ", ".join(found.ids[:5]) + (", ..." if len(found.ids) > 5 else "")
    common.console.print(escape(f"{said}: withdrawing them ({first})"), soft_wrap=True)
    # one above the version the previous export held: ACLED stamps a row when it changes
    # it, so an export that brings the event back changed (or moved) reinstates it
    lines = withdrawal_lines(found, now=int(time.time()))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"withdrawals-missing-from-{new}.jsonl")
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        return run_feed(settings, path, fmt="jsonl", rate=args.rate, console=common.console)


def nothing_valid(summary: FeedSummary, path: str, fmt: str) -> str:
    """The error of a feed of which no line will be accepted: how many, by reason, and
    the first one's line and why (as `backtest` says it of such a file)."""
    ranked = sorted(summary.rejected.items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in ranked)
    where = "standard input" if path == "-" else path
    rows = "lines" if fmt == "jsonl" else "rows"
    said = (
        f"nothing valid was sent: all {summary.lines:,} {rows} of {where} will be rejected "
        f"({reasons}; the workers dead-letter them)"
    )
    if summary.examples:
        line_no, _reason, message = summary.examples[0]
        said += f": line {line_no}: {' '.join(message.split())}"
    if fmt == "jsonl" and set(summary.rejected) == {"invalid_json"}:
        said += "; a CSV file is --format csv, an ACLED export --format acled"
    return said


def cmd_bench(args: argparse.Namespace) -> int:
    if args.state is not None:
        from streams.tools.state_bench import run_state_bench

        if args.broker:
            raise CliError("bench --state runs its own embedded broker; drop --broker")
        run_state_bench(
            args.state, days=args.days, console=common.out, in_time_order=not args.random_order
        )
        return 0
    if args.membership:
        from streams.tools.membership_bench import run_membership_bench

        if args.broker:
            raise CliError("bench --membership runs its own embedded brokers; drop --broker")
        n = 10_000 if args.n is None else args.n
        run_membership_bench(states=[0, n] if n else [0], repeat=args.repeat, console=common.out)
        return 0
    from streams.bench import run_bench

    run_bench(
        settings_from(args),
        n=200_000 if args.n is None else args.n,
        console=common.out,
        throughput=not args.latency_only,
        triggers=args.triggers,
        repeat=args.repeat,
    )
    return 0
