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
        summary = run_feed(
            settings, args.file, fmt=args.format, rate=args.rate, console=common.console
        )
    except (HeaderError, TopicMismatch) as exc:  # TopicMismatch: one line, not its class name
        raise CliError(str(exc)) from exc
    if summary.interrupted:
        return 130  # as a shell reports SIGINT
    if summary.lines and not summary.accepted:
        # Sent all the same (SPEC: every line as it is; the worker dead-letters them), but
        # a nightly import of nothing valid (d/m/y dates, the wrong --format) must fail.
        raise CliError(nothing_valid(summary, args.file, args.format))
    return 1 if summary.failed_sends else 0


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
