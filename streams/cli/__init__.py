"""`ceasefire-monitor`: the command line of SPEC.md.

Configuration precedence: flags, then CEASEFIRE_* environment variables, then defaults.
Errors an operator can fix (no broker, bad rule file, port in use) print one clear
line and exit non-zero; tracebacks are for bugs.

The commands live in the modules beside this one: `worker` (run, broker, topics),
`queries` (tallies, incidents, export) with `api_client`, `alerts`, `backtest` and `tools`
(simulate, feed, schema, bench); `common` holds what they share. Each imports what its
command needs inside it, so that `--help` and a table from the API start quickly.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from pydantic import ValidationError

from streams.cli import common
from streams.cli.alerts import cmd_alerts
from streams.cli.backtest import cmd_backtest
from streams.cli.common import CliError
from streams.cli.queries import ALL_PAGE, cmd_export, cmd_incidents, cmd_tallies
from streams.cli.tools import cmd_bench, cmd_feed, cmd_schema, cmd_simulate
from streams.cli.worker import cmd_broker, cmd_run, cmd_topics
from streams.tallies.windows import GROUPINGS, INTERVALS, TALLY_WINDOWS


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):  # nan ran for good: it never compares
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a positive time, e.g. 90s, 10m, 1h)"
        )
    return seconds


def positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not rate > 0 or rate == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of reports a second: {text}")
    return rate


def positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(days) and days > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of days: {text}")
    return days


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


# -- entry point ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ceasefire-monitor", description="Ceasefire-violation monitor."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, fn: Callable[[argparse.Namespace], int], help: str, *, kafka: bool = True
    ) -> argparse.ArgumentParser:
        """A command; `kafka`: it talks to the broker, and takes --broker (the others ask a
        worker's API or read files: a --broker there was accepted and ignored)."""
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        if kafka:
            p.add_argument(
                "--broker", help="Kafka URL, e.g. kafka://host:9092 (env CEASEFIRE_BROKER)"
            )
        return p

    p = command("run", cmd_run, "run a worker: API, metrics and all agents")
    p.add_argument("--web-port", type=int, help="API port (env CEASEFIRE_WEB_PORT, default 6066)")
    p.add_argument("--demo", action="store_true", help="also stream simulated reports into it")
    p.add_argument(
        "--rules", type=Path, help="alert rule file (env CEASEFIRE_RULES, default: shipped)"
    )
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])

    what = "run the embedded broker on its own, on 127.0.0.1:CEASEFIRE_EMBEDDED_PORT (9092)"
    sub.add_parser("broker", help=what, description=what).set_defaults(fn=cmd_broker)

    p = command("feed", cmd_feed, "send a file of reports to the input topic")
    p.add_argument("file", help="path, or - for standard input")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "acled"])
    p.add_argument(
        "--rate", type=positive_rate, help="reports per second (default: as fast as possible)"
    )
    p.add_argument(
        "--withdraw-missing-from",
        metavar="PREVIOUS",
        help="with --format acled: after the export, withdraw the events of the PREVIOUS "
        "export it no longer has (ACLED deleted them), within its dates and countries",
    )

    p = command("tallies", cmd_tallies, "print current tallies as a table", kafka=False)
    p.add_argument(
        "--window",
        default="24h",
        choices=list(TALLY_WINDOWS),
        help="rolling window, or all: since the ceasefire (default 24h)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="show the change against the window just before (a rolling window only)",
    )
    p.add_argument("--by", default="zone", choices=list(GROUPINGS), metavar=_BY_METAVAR)
    p.add_argument("--as-of", help="RFC 3339 end of the window (default now)")
    p.add_argument("--url", help=URL_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command(
        "incidents", cmd_incidents, "list open incidents, newest first, or show one", kafka=False
    )
    p.add_argument("--zone", help="zone code(s), comma-separated")
    p.add_argument("--attribution", help="party code(s) or contested, comma-separated")
    p.add_argument("--category", help="category code(s), comma-separated")
    p.add_argument("--verification", help="observed, reported, alleged (comma-separated)")
    p.add_argument(
        "--from", dest="from_", metavar="T", help="RFC 3339 or a date; occurred at or after"
    )
    p.add_argument("--to", metavar="T", help="RFC 3339 or a date; occurred before")
    p.add_argument(
        "--limit",
        type=int,
        help=f"incidents per page (default 100; {ALL_PAGE} with --all; at most 1000)",
    )
    p.add_argument("--all", action="store_true", help="follow every page")
    one = p.add_mutually_exclusive_group()
    one.add_argument(
        "incident_id", nargs="?", metavar="ID", help="show one incident with its reports"
    )
    one.add_argument("--id", help="the same as ID")
    p.add_argument("--url", help=URL_HELP)
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print JSON instead of a table")
    shape.add_argument("--csv", action="store_true", help="print CSV (the API's columns)")

    p = command(
        "export",
        cmd_export,
        "write incidents or a series to a CSV or JSON file for analysts",
        kafka=False,
    )
    p.add_argument("what", choices=["incidents", "series"])
    p.add_argument("-o", "--output", help="file, or - for standard output (default WHAT.FORMAT)")
    p.add_argument(
        "--format", choices=["csv", "json"], help="default: by the file's suffix, else csv"
    )
    p.add_argument(
        "--from",
        dest="from_",
        metavar="T",
        help="RFC 3339 or a date; occurred at or after (series default: the ceasefire's start)",
    )
    p.add_argument("--to", metavar="T", help="RFC 3339 or a date; occurred before (default now)")
    p.add_argument("--zone", help="incidents: zone code(s), comma-separated")
    p.add_argument("--attribution", help="incidents: party code(s) or contested")
    p.add_argument("--category", help="incidents: category code(s)")
    p.add_argument("--verification", help="incidents: observed, reported, alleged")
    p.add_argument(
        "--by",
        choices=list(GROUPINGS),
        metavar=_BY_METAVAR,
        help="series: grouping (default zone)",
    )
    p.add_argument("--interval", choices=list(INTERVALS), help="series: bucket length (default 1d)")
    p.add_argument("--url", help=URL_HELP)

    p = command("simulate", cmd_simulate, "send a realistic synthetic report stream")
    p.add_argument("--rate", type=positive_rate, default=20.0, help="reports per second")
    p.add_argument("--duration", type=parse_duration, help="e.g. 60s, 10m (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write JSON lines to FILE (- for stdout) instead of sending: a file for feed "
        "or backtest, its times ending now",
    )
    p.add_argument(
        "--count", type=positive_int, help="with --output: how many messages (default 1000)"
    )

    command(
        "schema",
        cmd_schema,
        "print the JSON Schema of a report (a report, or a withdrawal)",
        kafka=False,
    )

    p = command("alerts", cmd_alerts, "subscribe to the alert topic")
    p.add_argument("--follow", action="store_true", help="keep waiting for new alerts")
    p.add_argument("--from-beginning", action="store_true", help="replay the topic from the start")
    p.add_argument("--json", action="store_true", help="one JSON alert event per line")

    p = command(
        "backtest", cmd_backtest, "replay a file of reports through the rules, offline", kafka=False
    )
    p.add_argument("file", help="path, or - for standard input")
    p.add_argument("--rules", type=Path, help="rule file (default: CEASEFIRE_RULES or shipped)")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "acled"])

    p = command("bench", cmd_bench, "measure throughput: plain consumer, bare Faust, real pipeline")
    p.add_argument(
        "--n",
        type=positive_int,
        help="reports to pre-load (default 200,000; with --membership: state fed, 10,000)",
    )
    p.add_argument(
        "--membership",
        action="store_true",
        help="instead: time first start, restarts, a join and a takeover after kill -9",
    )
    p.add_argument(
        "--state",
        type=positive_int,
        metavar="N",
        help="instead: feed N reports to a worker; print its RSS, changelog bytes, restart time",
    )
    p.add_argument(
        "--days",
        type=positive_days,
        default=3 * 365,
        help="with --state: days of event time the reports spread over (default 1095)",
    )
    p.add_argument(
        "--random-order",
        action="store_true",
        help="with --state: produce the reports in random event-time order (default: oldest first)",
    )
    p.add_argument(
        "--latency-only", action="store_true", help="skip throughput; only report-to-alert latency"
    )
    p.add_argument(
        "--triggers",
        type=positive_int,
        default=100,
        help="alerts timed by the latency stage (default 100)",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="runs of each stage (or round); the median is shown",
    )

    p = command("topics", cmd_topics, "create the monitor's topics (production set-up)")
    p.add_argument("--partitions", type=int)
    p.add_argument("--replication-factor", type=int)
    p.add_argument(
        "--update-config",
        action="store_true",
        help="set the configs (retention, min.insync.replicas) of existing topics that differ "
        "from the settings",
    )

    return parser


def error_line(message: str) -> None:
    """One line on stderr, however long: rich would wrap it at 80 columns when stderr is
    not a terminal, and read brackets in it as markup."""
    from rich.markup import escape

    common.console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in _STREAMING:
            from streams.kafka import no_auto_create

            with no_auto_create.installed():
                code: int = args.fn(args)
        else:
            code = args.fn(args)
        return code
    except CliError as exc:
        error_line(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except ValidationError as exc:  # settings: one line per error, naming the variable
        # and the flag, when this command has it (`tallies` has no --web-port)
        for line in settings_errors(exc, flags={f for f in _FLAGS if hasattr(args, f)}):
            error_line(line)
        return 1
    except BrokenPipeError:
        # the reader stopped (`| head`): what it took was the point, not an error. Python
        # would complain again flushing stdout at exit: point it at nothing first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        from streams.classify.gazetteer import GazetteerError
        from streams.classify.zones import CatalogueError
        from streams.kafka.topics import BrokerUnavailable

        if isinstance(exc, CatalogueError | GazetteerError):
            # a bad zone catalogue or gazetteer (CEASEFIRE_ZONES, CEASEFIRE_GAZETTEER), in
            # any command that reads one: the message names the file and what is wrong
            error_line(str(exc))
            return 1
        if isinstance(exc, BrokerUnavailable) or type(exc).__name__ in {
            "BrokerUnavailable",
            "NoBrokersAvailable",
            "KafkaConnectionError",
        }:
            error_line(str(exc))
            return 1
        if os.environ.get("CEASEFIRE_DEBUG"):
            raise
        if isinstance(exc, OSError):
            # a file missing or not writable: the message is the whole story, one line
            # (other exceptions may be bugs: their class and the debug hint stay)
            error_line(_os_error(exc))
            return 1
        error_line(f"{type(exc).__name__}: {exc}")
        common.console.print("(set CEASEFIRE_DEBUG=1 for the traceback)")
        return 1


def settings_errors(exc: ValidationError, flags: Collection[str] = frozenset()) -> list[str]:
    """A settings ValidationError as lines naming the environment variable (and the flag,
    for a setting in `flags`: those of the command that ran) and what was given, without
    pydantic's links."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            field = str(error["loc"][0])
            flag = f" or --{field.replace('_', '-')}" if field in flags else ""
            given = error["input"]
            said = "" if field in _SECRETS or str(given) in message else f" (given: {given!r})"
            lines.append(f"CEASEFIRE_{field.upper()}{flag}: {message}{said}")
        else:
            lines.append(message)
    return lines


#: `--by`'s choices as help shows them: `zone,party` is one of them
_BY_METAVAR = "{" + " | ".join(GROUPINGS) + "}"

#: settings whose value an error never repeats: it would reach logs and terminals
_SECRETS = frozenset({"api_token", "sasl_password"})

#: --url of the commands that ask a worker's API (`api_client.api_url`)
URL_HELP = (
    "a worker's API URL (default CEASEFIRE_ADVERTISED_URL, else "
    "http://CEASEFIRE_WEB_HOST:CEASEFIRE_WEB_PORT: http://127.0.0.1:6066 unset)"
)
#: Commands whose Kafka clients run on while a broker may lose its topics: they never ask
#: it to create one (`no_auto_create`; `run` for good: it ends its process, `_exit_now`)
_STREAMING = frozenset({"run", "feed", "simulate", "alerts"})
#: settings a flag of some command sets too
_FLAGS = frozenset({"broker", "web_port", "rules", "partitions", "replication_factor"})


def _os_error(exc: OSError) -> str:
    """An OSError as one line without its class: "<what>: <file>"."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)
