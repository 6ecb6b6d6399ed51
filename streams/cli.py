"""`ceasefire-monitor`: the command line of SPEC.md.

Configuration precedence: flags, then CEASEFIRE_* environment variables, then defaults.
Errors an operator can fix (no broker, bad rule file, port in use) print one clear
line and exit non-zero; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError
from rich.console import Console

from streams.config import Settings, url_host
from streams.tallies.windows import GROUPINGS, INTERVALS, TALLY_WINDOWS

if TYPE_CHECKING:
    from rich.text import Text

    from schemas.alert import AlertEvent
    from streams.kafka.broker import EmbeddedBroker
    from streams.tools.feed import LineChecker, Version


class _Console(Console):
    """rich's console, but a reader that stops (`| head`) ends the command as the other
    output does (`main`): quietly, exit 0, not rich's exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


console = _Console(stderr=True)
out = _Console()


class CliError(Exception):
    """An error to show as one line, then exit 1."""


def notice(message: str) -> None:
    """A notice on stderr (rich markup), its lines unwrapped: rich wraps at 80 columns when
    stderr is not a terminal (a log), which split URLs and commands in two."""
    console.print(message, soft_wrap=True)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, field in (
        ("broker", "broker"),
        ("web_port", "web_port"),
        ("rules", "rules"),
        ("partitions", "partitions"),
        ("replication_factor", "replication_factor"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    return Settings(**overrides)


# -- run -----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """A worker until it is stopped; then the process ends at once (`_exit_now`)."""
    code = _run(args)
    _exit_now(code)
    return code  # not reached


def _exit_now(code: int) -> None:
    """End the process without tearing down its objects. The worker has stopped cleanly
    (offsets committed, groups left, broker stopped); what is left is the interpreter
    freeing the state one object at a time, which took over 60 s for a worker holding
    1,000,000 reports: longer than an orchestrator waits after SIGTERM before a kill."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _check_files(settings: Settings) -> None:
    """The zone catalogue, the gazetteer and the rule file read as the worker reads them;
    an error in one is a CliError (one line)."""
    from alerting.rules import RuleFileError, load_rules
    from streams.classify.gazetteer import Gazetteer, GazetteerError
    from streams.classify.zones import CatalogueError, ZoneCatalogue

    try:
        zones = ZoneCatalogue.load(settings.zones)
        Gazetteer.load(settings.gazetteer)
        load_rules(settings.rules, known_zones=zones.ids)
    except (RuleFileError, CatalogueError, GazetteerError) as exc:
        raise CliError(str(exc)) from exc


def _check_api_access(settings: Settings) -> None:
    """The tokens file read, and no worker the network reaches without a token unless
    CEASEFIRE_ANONYMOUS_POST says so (streams/web/access.py): one line each."""
    from streams.web.access import AccessError, check_access
    from streams.web.tokens import TokenFileError

    try:
        check_access(settings)
    except (AccessError, TokenFileError) as exc:
        raise CliError(str(exc)) from exc


def _check_data_dir(settings: Settings) -> None:
    """CEASEFIRE_DATA_DIR made and writable, in one line if not: Faust creates its app
    directory there once the broker answers, and a read-only one was a 27-line traceback."""
    import tempfile

    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise CliError(f"CEASEFIRE_DATA_DIR: {path}: {why}") from exc


def _raise_open_file_limit() -> None:
    """The soft open-file limit up to the hard one (streams/web/admission.py), before the
    embedded broker and the worker start: the API's connection limits are shares of it."""
    from streams.web.admission import raise_open_file_limit

    raised = raise_open_file_limit()
    if raised is not None:
        notice(f"Open-file limit (ulimit -n) raised from {raised[0]} to {raised[1]}.")


def _run(args: argparse.Namespace) -> int:
    from streams.kafka.broker import (
        BrokerError,
        EmbeddedBroker,
        port_open,
        taken_by_another_program,
    )
    from streams.kafka.reachable import answers_kafka
    from streams.kafka.topics import BrokerUnavailable, TopicMismatch, ensure_topics

    settings = settings_from(args)
    _check_files(settings)  # a broken file is one line, before a broker is started
    _check_api_access(settings)
    _check_data_dir(settings)
    _raise_open_file_limit()
    reserve_api_port(settings)  # first: a port in use must not cost the cluster a rebalance
    broker: EmbeddedBroker | None = None
    configured = settings.broker is not None  # --broker or CEASEFIRE_BROKER
    port = settings.embedded_port
    if settings.broker is None and port_open("127.0.0.1", port):
        # `ceasefire-monitor broker`, or another worker's embedded broker: join it; anything
        # else there failed only after kafka-python's 30 s bootstrap, as "no broker"
        if not answers_kafka("127.0.0.1", port):
            raise CliError(taken_by_another_program("127.0.0.1", port))
        settings = settings.on_embedded_broker()
        notice(
            f"Using the broker already listening on 127.0.0.1:{port}. If it is an embedded "
            "one, its data is in memory only and goes when its process stops."
        )
    elif settings.broker is None:
        broker = EmbeddedBroker("127.0.0.1", port)
        try:
            broker.start()
        except BrokerError as exc:
            raise CliError(str(exc)) from exc
        settings = settings.on_embedded_broker()
        _stop_broker_on_forced_exit(broker)
        notice(
            f"[bold yellow]Embedded broker[/] (Tansu) on {broker.bootstrap}: "
            "[bold]its data is kept in memory only[/] and is gone when this worker stops. "
            "To restart workers without losing it, run `ceasefire-monitor broker` on its own "
            "first. Set --broker or CEASEFIRE_BROKER for a real Kafka."
        )
    try:
        try:
            if configured:
                settings = _timing_for(settings)
            ensure_topics(settings)
        except (BrokerUnavailable, TopicMismatch) as exc:
            raise CliError(str(exc)) from exc
        from streams.pipeline.app import Monitor

        monitor = Monitor(settings)
        demo: threading.Thread | None = None
        stop = threading.Event()
        if args.demo:
            demo = threading.Thread(
                target=_demo_feed, args=(settings, stop), name="demo-feed", daemon=True
            )
            demo.start()
        url = settings.web_url()
        # the other commands find the API on port 6066 unless told: say how when it is not
        to_it = "" if settings.web_port == 6066 else f" --url {url}"
        notice(
            f"API {url}/api/v1/tallies?window=24h&by=zone  ·  metrics {url}/metrics  ·  "
            f"`ceasefire-monitor tallies{to_it}` in another shell"
        )
        if settings.advertises_a_wildcard():
            notice(
                f"[bold yellow]warning:[/] CEASEFIRE_WEB_HOST is {settings.web_host} (every "
                "address) and CEASEFIRE_ADVERTISED_URL is unset: this worker tells its peers "
                f"it is at {url}, where they cannot reach it. With more than one worker, set "
                "CEASEFIRE_ADVERTISED_URL to a URL they can (e.g. http://worker-1:6066)."
            )
        import faust

        worker = faust.Worker(monitor.app, loglevel=args.loglevel, quiet=True)
        _no_spinner_unless_terminal(worker)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            stop.set()
        return 0
    finally:
        if broker is not None:
            broker.stop()
            notice("Embedded broker stopped; its in-memory data is gone.")


def _no_spinner_unless_terminal(worker: Any) -> None:
    """Faust's start-up spinner writes cursor codes (`ESC[?25l`, `ESC[?25h`) to stdout
    whether or not it is a terminal, and "OK ^" when it is not: none of it in a log."""
    spinner = getattr(worker, "spinner", None)
    isatty = getattr(getattr(spinner, "file", None), "isatty", None)
    if spinner is not None and not (isatty is not None and isatty()):
        worker.spinner = None


def _stop_broker_on_forced_exit(broker: EmbeddedBroker) -> None:
    """A worker that stops with its broker gone exits without running `finally` blocks
    (`stop_deadline`): the embedded broker it started must not outlive it (it may be alive
    but not answering)."""
    from streams.pipeline import stop_deadline

    def stop() -> None:
        broker.stop()
        notice("Embedded broker stopped; its in-memory data is gone.")

    stop_deadline.at_forced_exit(stop)


def _timing_for(settings: Settings) -> Settings:
    """A configured broker that is the embedded one (`--broker kafka://127.0.0.1:9092`
    naming `ceasefire-monitor broker`) gets the embedded broker's short group timings,
    as when it is found with no broker configured: with Apache Kafka's 30 s sessions,
    every join there is held 15 s (issue 9: joins took 36 s, a takeover 47 s)."""
    from streams.kafka.broker import is_embedded

    if not is_embedded(settings):
        return settings
    notice(
        f"{settings.bootstrap()} is an embedded broker: its data is in memory only and goes "
        "when its process stops; short consumer-group timings, unless set."
    )
    return settings.with_embedded_timing()


def reserve_api_port(settings: Settings) -> None:
    """Bind the API's address before the broker, Faust or the demo start (the API server
    takes the bound sockets when it starts): one clear line if it cannot be."""
    import errno

    from streams.web import listen

    host, port = settings.web_host, settings.web_port
    try:
        listen.reserve(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is already in use (another worker?); "
                "choose another with --web-port or CEASEFIRE_WEB_PORT"
            ) from exc
        raise CliError(f"cannot listen on {url_host(host)}:{port} for the API: {exc}") from exc


def cmd_broker(args: argparse.Namespace) -> int:
    """The embedded broker on its own, so that workers can stop and start around it."""
    from streams.kafka.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker("127.0.0.1", settings_from(args).embedded_port)
    # SIGTERM as Ctrl-C: it interrupts the wait below, and the broker is stopped after it.
    # (Stopping inside a handler waits for the child while the interrupted wait holds it.)
    # Ctrl-C too, explicitly: a shell starting the command in the background (`&` in a
    # script) hands it SIGINT ignored, and it would then wait for good.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code: int | None = None  # the broker's exit code, when it ended without being asked
    try:
        broker.start()
        notice(
            f"[bold yellow]Embedded broker[/] (Tansu) on {broker.bootstrap}: "
            "[bold]its data is kept in memory only[/] and is gone when this command stops "
            "(Ctrl-C). `ceasefire-monitor run` and every other command find it there."
        )
        code = broker.wait()
    except BrokerError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C or SIGTERM must not cut the stop short (it is bounded anyway).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        broker.stop()
    notice("Embedded broker stopped; its in-memory data is gone.")
    if code is not None:
        # Only Ctrl-C or SIGTERM (above) is a stop asked for; any other end is a failure,
        # code 0 too (Tansu panics and exits 0), and Tansu's last lines say why.
        raise CliError(f"the embedded broker exited on its own with code {code}{broker.why()}")
    return 0


def _demo_feed(settings: Settings, stop: threading.Event) -> None:
    from streams.tools.simulate import run_simulation

    try:
        run_simulation(
            settings, rate=5.0, duration=None, seed=2020, console=Console(stderr=True), stop=stop
        )
    except Exception as exc:  # the demo must never take the worker down
        from rich.markup import escape

        # escaped: a `[/]` in the message raised again here, and the reason was lost
        notice(f"[red]demo feed stopped:[/] {escape(str(exc))}")


# -- schema --------------------------------------------------------------------------
def cmd_schema(args: argparse.Namespace) -> int:
    from schemas.report import report_json_schema

    out.print_json(json.dumps(report_json_schema()))
    return 0


# -- topics --------------------------------------------------------------------------
def cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka.topics import (
        BrokerUnavailable,
        TopicMismatch,
        ensure_topics,
        topic_partitions,
        topic_specs,
    )

    settings = settings_from(args)  # --partitions, --replication-factor validated there
    try:
        created = ensure_topics(settings)
        have = topic_partitions(settings)  # what the broker holds, not what was asked
    except (BrokerUnavailable, TopicMismatch) as exc:
        raise CliError(str(exc)) from exc
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        n = have.get(spec.name, spec.partitions)
        out.print(f"{spec.name:40} {n:3} partition{'' if n == 1 else 's'}  {state}")
    return 0


# -- tallies, incidents -----------------------------------------------------------------
#: Seconds an export waits out 503 answers (a worker answering its most large requests
#: at once, partitions moving) before it gives up.
EXPORT_PATIENCE = 120.0


def api_get(base: str, path: str, params: dict[str, str], *, patience: float = 0.0) -> Any:
    """GET a worker's API, JSON back; an answer other than 200, or no worker, is a
    CliError (one line). A 503 is asked again after its Retry-After (at most 10 s) for up
    to `patience` seconds: an export's pages are large requests, which a worker answers a
    few at a time."""
    import urllib.error
    import urllib.parse
    import urllib.request

    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    full = f"{base.rstrip('/')}{path}{query}"
    give_up = time.monotonic() + patience
    while True:
        try:
            with urllib.request.urlopen(full, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            wait = _retry_after(exc)
            if exc.code != 503 or time.monotonic() + wait > give_up:
                _api_error(full, exc)
            exc.close()
            time.sleep(wait)
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(
                f"no monitor API at {base} ({exc}); is `ceasefire-monitor run` up? A worker "
                "on another port: pass --url or set CEASEFIRE_WEB_PORT"
            ) from exc


def _retry_after(exc: Any) -> float:
    try:
        return min(max(float(exc.headers.get("Retry-After", 1)), 0.1), 10.0)
    except (TypeError, ValueError):
        return 1.0


def _api_error(full: str, exc: Any) -> NoReturn:
    body = exc.read().decode(errors="replace")
    try:
        message = json.loads(body)["error"]
    except (ValueError, LookupError, TypeError):
        # another server's page (Prometheus and Grafana sit beside the workers): its
        # HTML is no message for this terminal
        message = (
            f"{exc.reason}; the answer is not the monitor API's: is the URL a worker's "
            "(`ceasefire-monitor run`, default http://127.0.0.1:6066)?"
        )
    raise CliError(f"{full}: {exc.code} {message}") from exc


def api_url(args: argparse.Namespace, settings: Settings) -> str:
    """The worker API the command asks: --url, else the settings' (`web_url`). A --url
    without http:// or https:// is said so (`localhost:6066` read as a URL of scheme
    `localhost`, and the error asked whether `run` was up)."""
    url: str = args.url or settings.web_url()
    if not url.lower().startswith(("http://", "https://")):
        example = f" (http://{url})" if "://" not in url else ""
        raise CliError(f"--url {url}: the URL needs http:// or https://{example}")
    return url


FIGURES = ("incidents", "reports", "killed", "wounded")


def change(current: int, previous: int) -> str:
    """A figure with its change against the previous window, as rich markup: more
    violations read red, fewer green (`12 ▲+3`, `0 ▼-2`, `5 =`)."""
    delta = current - previous
    if delta > 0:
        return f"{current} [red]\u25b2+{delta}[/]"
    if delta < 0:
        return f"{current} [green]\u25bc{delta}[/]"
    return f"{current} [dim]=[/]"


def _say_if_not_ready(base: str) -> None:
    """A note on stderr when the worker that answered is not ready: its tallies are exact
    for what its stages applied, which can be behind what was sent (a backlog, a recovery,
    a stalled partition, its broker gone), and a table alone did not say so."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/readyz", timeout=3):
            return  # 200: ready
    except urllib.error.HTTPError as exc:
        try:
            waits = json.loads(exc.read()).get("waiting_for") or []
        except (ValueError, AttributeError):
            waits = []
        finally:
            exc.close()
        if exc.code != 503:
            return
        why = f" (waiting for {', '.join(str(w) for w in waits)})" if waits else ""
        console.print(
            f"note: the worker is not ready{why}: these figures can lag what was sent",
            markup=False,
            soft_wrap=True,
        )
    except (urllib.error.URLError, OSError):
        return  # it answered the tallies: a readiness it does not say is no news


def cmd_tallies(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    settings = settings_from(args)
    url = api_url(args, settings)
    params = {"window": args.window, "by": args.by}
    if args.as_of:
        params["as_of"] = args.as_of
    if args.compare:
        params["compare"] = "previous"
    body = api_get(url, "/api/v1/tallies", params)
    _say_if_not_ready(url)
    if args.json:
        out.print_json(json.dumps(body))
        return 0
    keys = body["by"]
    if body["window"] == "all":
        span = f"since the ceasefire ({body['since']}) to {body['as_of']}"
    else:
        span = f"{body['window']} window ending {body['as_of']}"
    compare = body.get("compare") == "previous"
    title = f"Incidents, {span}"
    if compare:
        title += f"; change against the previous {body['window']}"
    rows = body["rows"]
    if not rows:
        where = span if body["window"] == "all" else f"in the {span}"
        out.print(f"No incidents {where}{', nor in the window before' if compare else ''}.")
        return 0
    table = Table(title=escape(title), show_footer=True)
    for i, k in enumerate(keys):
        table.add_column(k, footer="total" if i == 0 else "")
    totals = {name: sum(int(r[name]) for r in rows) for name in FIGURES}
    previous = {name: sum(int(r.get(f"previous_{name}", 0)) for r in rows) for name in FIGURES}
    for col in FIGURES:
        footer = change(totals[col], previous[col]) if compare else str(totals[col])
        table.add_column(col, justify="right", footer=footer)
    for row in rows:
        cells = (
            change(int(row[c]), int(row[f"previous_{c}"])) if compare else str(row[c])
            for c in FIGURES
        )
        table.add_row(*(escape(str(row[k])) for k in keys), *cells)
    out.print(table)
    return 0


#: Incidents asked for per page with --all (the API's most).
ALL_PAGE = 1000


def _incident_filters(args: argparse.Namespace) -> dict[str, str]:
    """The incidents list's filters given on the command line (`incidents`, `export`)."""
    given = (
        ("zone", args.zone),
        ("attribution", args.attribution),
        ("category", args.category),
        ("verification", args.verification),
    )
    return {name: value for name, value in given if value}


def cmd_incidents(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    url = api_url(args, settings)
    incident_id = args.id if args.id is not None else args.incident_id
    if incident_id is not None:
        if args.csv or args.all:
            raise CliError("an incident id shows one incident: as a table, or with --json")
        ignored = [*_incident_filters(args)]
        ignored += [n for n, v in (("from", args.from_), ("to", args.to)) if v]
        ignored += ["limit"] if args.limit is not None else []
        if ignored:  # say so rather than answer as if they were applied
            given = ", ".join(f"--{n}" for n in ignored)
            raise CliError(
                f"an incident id shows one incident: {given} would be ignored; leave it out"
            )
        return _show_incident(url, incident_id, as_json=args.json)
    params = _incident_filters(args)
    params.update((name, value) for name, value in (("from", args.from_), ("to", args.to)) if value)
    limit = args.limit if args.limit is not None else (ALL_PAGE if args.all else None)
    if limit is not None:
        params["limit"] = str(limit)
    incidents: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        body = api_get(
            url, "/api/v1/incidents", {**params, **({"cursor": cursor} if cursor else {})}
        )
        incidents.extend(body["incidents"])
        cursor = body["next_cursor"]
        if cursor is None or not args.all:
            break
    if args.json:
        print(json.dumps({"incidents": incidents, "next_cursor": cursor}, ensure_ascii=False))
        return 0
    if args.csv:
        from streams.web.incidents import to_csv

        sys.stdout.write(to_csv(incidents))
        return 0
    _print_incidents(incidents, more=cursor is not None)
    return 0


def _wide() -> Console:
    """The table console: as wide as the terminal, or wide enough when piped."""
    return out if out.is_terminal else _Console(width=200)


def _when(iso: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_incidents(incidents: list[dict[str, Any]], *, more: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if not incidents:
        out.print("No open incidents match.")
        return
    table = Table(title=f"Open incidents, newest first ({len(incidents)})")
    for col in ("occurred (UTC)", "zone", "category", "severity", "verification"):
        table.add_column(col)
    table.add_column("attribution")
    for col in ("killed", "wounded", "reports"):
        table.add_column(col, justify="right")
    table.add_column("claims")
    table.add_column("incident_id", no_wrap=True)
    for i in incidents:
        claims = ", ".join(f"{c}\u2192{a}" for c, a in sorted(i["claims"].items()))
        table.add_row(
            _when(i["occurred_at"]),
            Text(i["zone"]),
            i["category"],
            Text(i["severity"], style=SEVERITY_STYLE.get(i["severity"], "")),
            i["verification"],
            i["attribution"],
            str(i["killed"]),
            str(i["wounded"]),
            str(len(i["reports"])),
            claims,
            i["incident_id"],
        )
    _wide().print(table)
    if more:
        out.print("More incidents match: --all for every page, or a larger --limit.")
    out.print("One with its reports: ceasefire-monitor incidents ID")


def _show_incident(url: str, incident_id: str, *, as_json: bool) -> int:
    from rich.table import Table
    from rich.text import Text

    from streams.web.incidents import is_incident_id

    if not is_incident_id(incident_id):  # typed wrong: said here, not as a broken URL
        raise CliError(f"{incident_id!r} is not an incident id (a UUID, as the list shows)")
    i = api_get(url, f"/api/v1/incidents/{incident_id}", {})
    if as_json:
        print(json.dumps(i, ensure_ascii=False))
        return 0
    console = _wide()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    claims = ", ".join(f"{c} accuses {a}" for c, a in sorted(i["claims"].items())) or "none"
    for name, value in (
        ("incident", i["incident_id"]),
        ("version", str(i["version"])),
        ("occurred", f"{_when(i['occurred_at'])} UTC"),
        ("zone", i["zone"]),
        ("category", i["category"]),
        ("severity", i["severity"]),
        ("verification", i["verification"]),
        ("attribution", i["attribution"]),
        ("claims", claims),
        ("killed, wounded", f"{i['killed']}, {i['wounded']}"),
    ):
        head.add_row(name, Text(value))
    console.print(head)
    table = Table(title=f"{len(i['reports'])} reports")
    for col in ("source", "report_id"):  # whole, to be copied: other columns give way
        table.add_column(col, min_width=max(len(r[col]) for r in i["reports"]), overflow="fold")
    for col in ("rev", "source_type", "occurred (UTC)", "category"):
        table.add_column(col)
    for col in ("perpetrator", "claimant"):
        table.add_column(col)
    for col in ("killed", "wounded"):
        table.add_column(col, justify="right")
    table.add_column("verification")
    table.add_column("lat, lon")
    for r in i["reports"]:
        if "source_type" not in r:  # the worker no longer holds its details
            table.add_row(Text(r["source"]), Text(r["report_id"]), str(r["revision"]))
            continue
        table.add_row(
            Text(r["source"]),
            Text(r["report_id"]),
            str(r["revision"]),
            r["source_type"],
            _when(r["occurred_at"]),
            r["category"],
            r["perpetrator"],
            r["claimant"] or "",
            str(r["killed"]),
            str(r["wounded"]),
            r["verification"],
            f"{r['lat']:.4f}, {r['lon']:.4f}",
        )
    console.print(table)
    return 0


# -- export ----------------------------------------------------------------------------
def export_format(fmt: str | None, output: str) -> str:
    """--format, else the output file's suffix (.json), else CSV."""
    if fmt:
        return fmt
    return "json" if output.lower().endswith(".json") else "csv"


class ExportFile:
    """The output: standard output for `-`, else a file written beside the target and
    renamed over it when complete, so a failed export never leaves a file that looks whole."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.part = None if output == "-" else Path(f"{output}.part")
        try:
            self._file = (
                sys.stdout
                if self.part is None
                else self.part.open("w", encoding="utf-8", newline="")
            )
        except OSError as exc:  # named by the file asked for, not the .part beside it
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from exc

    def write(self, text: str) -> None:
        self._file.write(text)

    def finish(self) -> None:
        if self.part is not None:
            self._file.close()
            os.replace(self.part, self.output)
        else:
            self._file.flush()

    def abandon(self) -> None:
        if self.part is not None:
            self._file.close()
            self.part.unlink(missing_ok=True)


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # the summary line stays
        disable=not console.is_terminal,  # no bar in logs and pipes
    )


def _bound(name: str, value: str | None, default: datetime) -> datetime:
    from streams.tallies.windows import QueryError
    from streams.web.params import parse_bound

    if not value:
        return default
    try:
        return parse_bound(name, value)
    except QueryError as exc:
        raise CliError(str(exc)) from exc


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    url = api_url(args, settings)
    fmt = export_format(args.format, args.output or f"{args.what}.csv")
    output = args.output or f"{args.what}.{fmt}"
    if args.what == "incidents" and (args.by or args.interval):
        raise CliError("--by and --interval are for `export series`")
    filters = (args.zone, args.attribution, args.category, args.verification)
    if args.what == "series" and any(filters):
        raise CliError(
            "--zone, --attribution, --category and --verification are for `export incidents`; "
            "a series is grouped with --by"
        )
    if output != "-" and os.path.isdir(output):  # found before the pages are read
        raise CliError(f"{output} is a directory: give a file name (-o {output}/FILE)")
    target = ExportFile(output)
    try:
        if args.what == "incidents":
            written = _export_incidents(args, settings, url, fmt, target)
        else:
            written = _export_series(args, settings, url, fmt, target)
        target.finish()  # a failed rename leaves no file either
    except BaseException:
        target.abandon()
        raise
    where = "standard output" if output == "-" else output
    console.print(f"wrote {written} to {where} ({fmt})", soft_wrap=True, markup=False)
    return 0


def _export_incidents(
    args: argparse.Namespace, settings: Settings, url: str, fmt: str, target: ExportFile
) -> str:
    """Every page of the incidents list, newest first, written as it comes. The bar shows
    how far back in event time the pages reached (from --from, else the ceasefire)."""
    from streams.web.incidents import to_csv

    params = _incident_filters(args)
    params["limit"] = str(ALL_PAGE)
    newest = _bound("to", args.to, datetime.now(UTC))
    oldest = _bound("from", args.from_, settings.ceasefire_start)
    for name, given, moment in (("from", args.from_, oldest), ("to", args.to, newest)):
        if given:  # a date as the RFC 3339 time the list reads
            params[name] = moment.isoformat()
    span = max((newest - oldest).total_seconds(), 1.0)
    count = 0
    cursor: str | None = None
    if fmt == "json":
        target.write("[")
    with _progress() as progress:
        task = progress.add_task("incidents", total=span, status="")
        while True:
            page = {**params, **({"cursor": cursor} if cursor else {})}
            body = api_get(url, "/api/v1/incidents", page, patience=EXPORT_PATIENCE)
            incidents = body["incidents"]
            if fmt == "csv":
                target.write(to_csv(incidents, header=count == 0))
            else:
                for i, doc in enumerate(incidents):
                    sep = "," if count or i else ""
                    target.write(f"{sep}\n{json.dumps(doc, ensure_ascii=False)}")
            count += len(incidents)
            cursor = body["next_cursor"]
            if incidents:
                reached = datetime.fromisoformat(incidents[-1]["occurred_at"])
                done = min(max((newest - reached).total_seconds(), 0.0), span)
                progress.update(
                    task, completed=done, status=f"{count} incidents, back to {reached.date()}"
                )
            if cursor is None:
                progress.update(task, completed=span, status=f"{count} incidents")
                break
    if fmt == "json":
        target.write("\n]\n")
    elif count == 0:
        target.write(to_csv([]))  # the header alone
    return f"{count} incidents"


def _export_series(
    args: argparse.Namespace, settings: Settings, url: str, fmt: str, target: ExportFile
) -> str:
    """The series from --from (default: the ceasefire) to --to (default: now), asked in
    spans of the API's most buckets, written as one file."""
    from streams.tallies.windows import INTERVALS
    from streams.web.series import MAX_BUCKETS, to_csv

    interval = args.interval or "1d"
    width = timedelta(seconds=INTERVALS[interval])
    start = _bound("from", args.from_, settings.ceasefire_start)
    end = _bound("to", args.to, datetime.now(UTC))
    if end <= start:
        raise CliError(f"--to ({end.isoformat()}) is not after --from ({start.isoformat()})")
    total = -((start - end) // width)
    base = {"by": args.by or "zone", "interval": interval}
    doc: dict[str, Any] | None = None
    with _progress() as progress:
        task = progress.add_task(f"series by {base['by']}, {interval}", total=total, status="")
        chunk = start
        while chunk < end:
            stop = min(chunk + width * MAX_BUCKETS, end)
            part = api_get(
                url,
                "/api/v1/series",
                {**base, "from": chunk.isoformat(), "to": stop.isoformat()},
                patience=EXPORT_PATIENCE,
            )
            if doc is None:
                doc = part
                if fmt == "csv":
                    target.write(to_csv(part))
            else:
                doc["buckets"].extend(part["buckets"])
                doc["to"] = part["to"]
                if fmt == "csv":
                    target.write(to_csv(part, header=False))
            progress.update(task, advance=len(part["buckets"]), status=f"to {part['to'][:10]}")
            chunk = datetime.fromisoformat(part["to"])
    assert doc is not None  # end > start: at least one span
    if fmt == "json":
        target.write(json.dumps(doc, ensure_ascii=False) + "\n")
    lines = sum(len(b["rows"]) for b in doc["buckets"])
    return f"{len(doc['buckets'])} buckets of {interval} ({lines} rows)"


# -- simulate, feed ------------------------------------------------------------------
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
        console.print(f"wrote {written} reports to {args.output}", markup=False, soft_wrap=True)
        return 0
    if args.count is not None:
        raise CliError("--count is for --output; to Kafka, --duration bounds the run")
    settings = settings_from(args)
    sent = run_simulation(
        settings, rate=args.rate, duration=args.duration, seed=args.seed, console=console
    )
    console.print(f"sent {sent} reports to {settings.reports_topic}", soft_wrap=True)
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from streams.classify.gazetteer import Gazetteer
    from streams.kafka.topics import TopicMismatch
    from streams.tools.feed import run_feed
    from streams.tools.formats import HeaderError

    settings = settings_from(args)
    Gazetteer.load(settings.gazetteer)  # a bad one is one line (`main`), before the broker
    try:
        summary = run_feed(settings, args.file, fmt=args.format, rate=args.rate, console=console)
    except (HeaderError, TopicMismatch) as exc:  # TopicMismatch: one line, not its class name
        raise CliError(str(exc)) from exc
    if summary.interrupted:
        return 130  # as a shell reports SIGINT
    return 1 if summary.failed_sends else 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.state is not None:
        from streams.tools.state_bench import run_state_bench

        if args.broker:
            raise CliError("bench --state runs its own embedded broker; drop --broker")
        run_state_bench(
            args.state, days=args.days, console=out, in_time_order=not args.random_order
        )
        return 0
    if args.membership:
        from streams.tools.membership_bench import run_membership_bench

        if args.broker:
            raise CliError("bench --membership runs its own embedded brokers; drop --broker")
        n = 10_000 if args.n is None else args.n
        run_membership_bench(states=[0, n] if n else [0], repeat=args.repeat, console=out)
        return 0
    from streams.bench import run_bench

    run_bench(
        settings_from(args),
        n=200_000 if args.n is None else args.n,
        console=out,
        throughput=not args.latency_only,
        triggers=args.triggers,
        repeat=args.repeat,
    )
    return 0


SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
}


def cmd_alerts(args: argparse.Namespace) -> int:
    """Subscribe to the alert topic with kafka-python."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    from schemas.alert import AlertEvent
    from streams.kafka.reachable import check_listening
    from streams.kafka.tls import check_tls
    from streams.kafka.topics import unreachable

    settings = settings_from(args)
    check_listening(settings)
    check_tls(settings)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap(),
            auto_offset_reset="earliest" if args.from_beginning else "latest",
            enable_auto_commit=False,
            group_id=None,
            # kafka-python's "no timeout" is infinity (None fails in its iterator)
            consumer_timeout_ms=float("inf") if args.follow else 3000,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            # Subscribing to a missing topic asked the broker to create it, with its default
            # partitions and retention rather than those of `run` and `topics`. kafka-python
            # 3.0.12 does not pass this on to its metadata requests: the topic is never
            # subscribed to either (`_start_at_the_end_or_beginning`).
            allow_auto_create_topics=False,
            **settings.kafka_security(),
        )
    except KafkaError as exc:
        raise CliError(str(unreachable(settings))) from exc
    shown = 0
    try:
        _start_at_the_end_or_beginning(consumer, settings, args.from_beginning)
        for record in consumer:
            try:
                event = AlertEvent.model_validate_json(record.value or b"")
                alert = json.loads(record.value)
            except ValueError as exc:  # another writer's record, or a tombstone: said, skipped
                console.print(
                    f"skipped a record that is not an alert event at {record.topic} partition "
                    f"{record.partition} offset {record.offset}: "
                    f"{str(exc).splitlines()[0]}",
                    soft_wrap=True,
                )
                continue
            shown += 1
            if args.json:
                print(json.dumps(alert), flush=True)
                continue
            out.print(alert_line(event))
    except (KeyboardInterrupt, _NoTopic):
        pass
    finally:
        consumer.close()
    if not shown and not args.follow:
        # say so, rather than exit silently (without flags it reads only what comes in 3 s)
        console.print(
            f"no alerts on {settings.alerts_topic}"
            if args.from_beginning
            else f"no new alert on {settings.alerts_topic} within 3 s (--from-beginning: the "
            "alerts sent before; --follow: wait for new ones)",
            soft_wrap=True,
        )
    return 0


def alert_line(event: AlertEvent) -> Text:
    """One alert as `alerts` prints it. Text, not markup: a summary quotes a report's
    source and place, free text in which a `[/]` crashed the subscriber (at the same record
    on every --from-beginning) and a `[red]` vanished. Read from the validated event: a
    resolved event may leave `ends_at` out (then its start is shown)."""
    from rich.text import Text

    times = event.model_dump(mode="json", include={"starts_at", "ends_at"})  # the topic's form
    ended = times["ends_at"] if event.status == "resolved" else None
    labels = ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items()))
    line = Text(
        f"{event.status.upper():8} {event.severity:8}",
        style=SEVERITY_STYLE.get(event.severity, ""),
    )
    line.append(f" {ended or times['starts_at']}  {event.rule}  {labels}  {event.summary}")
    return line


class _NoTopic(Exception):
    """The alert topic did not appear within the wait: there is no alert to show."""


def _wait_for_topic(consumer: Any, topic: str, timeout: float) -> set[int]:
    """The partitions of `topic` once it exists (`run` or `topics` creates it), asking
    the broker for all topics every half second, which creates none; empty if it does not
    appear within `timeout` seconds (infinity: wait until it does)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        partitions: set[int] = consumer.partitions_for_topic(topic)
        if partitions or time.monotonic() >= deadline:
            return partitions
        time.sleep(0.5)


def _start_at_the_end_or_beginning(consumer: Any, settings: Settings, beginning: bool) -> None:
    """Read the alert topic from its start, or from its exact end: the end the broker lists
    may fall short (the embedded broker's is the last batch's start + 1, so `latest`
    showed the last alerts again as new), so it is read from a fetch's high watermark.
    A missing topic is never subscribed to (that created it): it is waited for as long as
    the consumer waits for records (3 s; --follow: for good), else `_NoTopic`."""
    import asyncio

    from kafka import TopicPartition

    from streams.kafka.offsets import exact_end_offsets

    topic = settings.alerts_topic
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        wait = consumer.config["consumer_timeout_ms"] / 1000
        partitions = _wait_for_topic(consumer, topic, wait)
        if not partitions:
            raise _NoTopic(topic)
        beginning = True  # created since this command started: every alert on it is new
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if beginning:
        consumer.seek_to_beginning(*tps)
        return
    from aiokafka import TopicPartition as AioPartition  # what the aiokafka helper takes

    asked = [AioPartition(topic, tp.partition) for tp in tps]
    ends = asyncio.run(exact_end_offsets(settings.bootstrap(), asked, **settings.kafka_security()))
    for tp in tps:
        consumer.seek(tp, ends[AioPartition(topic, tp.partition)])


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
    shown = console.is_terminal  # progress, on stderr
    checked = FeedSummary()
    versions = _backtest_read(args.file, args.format, LineChecker(checked, gazetteer), shown=shown)
    rows = "lines" if args.format == "jsonl" else "rows"
    where = "standard input" if args.file == "-" else args.file
    if not checked.lines:
        raise CliError(f"{where} holds no reports ({args.format}): nothing to replay")
    if checked.rejected_total:
        render_checked(checked, console, f"backtest input: {checked.lines:,} {rows} read")
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
    with progress_bar(console, disable=not shown) as progress:
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
    with progress_bar(console, disable=not shown) as progress:
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

    wide = _wide()
    if not shown:
        render(events, wide)
        return
    with progress_bar(console) as progress:
        progress.add_task("writing the table", total=None, lines=len(events), unit="alert events")
        with wide.capture() as captured:
            render(events, wide)
    wide.file.write(captured.get())
    wide.file.flush()


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
    p.add_argument("--url", help="a worker's API URL (default http://127.0.0.1:6066)")
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
    p.add_argument("--url", help="a worker's API URL (default http://127.0.0.1:6066)")
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
    p.add_argument("--url", help="a worker's API URL (default http://127.0.0.1:6066)")

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
        type=int,
        help="reports to pre-load (default 200,000; with --membership: state fed, 10,000)",
    )
    p.add_argument(
        "--membership",
        action="store_true",
        help="instead: time first start, restarts, a join and a takeover after kill -9",
    )
    p.add_argument(
        "--state",
        type=int,
        metavar="N",
        help="instead: feed N reports to a worker; print its RSS, changelog bytes, restart time",
    )
    p.add_argument(
        "--days",
        type=float,
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
        "--triggers", type=int, default=100, help="alerts timed by the latency stage (default 100)"
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="runs of each stage (or round); the median is shown"
    )

    p = command("topics", cmd_topics, "create the monitor's topics (production set-up)")
    p.add_argument("--partitions", type=int)
    p.add_argument("--replication-factor", type=int)

    return parser


def error_line(message: str) -> None:
    """One line on stderr, however long: rich would wrap it at 80 columns when stderr is
    not a terminal, and read brackets in it as markup."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.fn(args)
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
        console.print("(set CEASEFIRE_DEBUG=1 for the traceback)")
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

#: settings a flag of some command sets too
_FLAGS = frozenset({"broker", "web_port", "rules", "partitions", "replication_factor"})


def _os_error(exc: OSError) -> str:
    """An OSError as one line without its class: "<what>: <file>"."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
