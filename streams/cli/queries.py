"""`tallies`, `incidents` and `export`: what a worker's API holds, as tables, CSV or
JSON, and as files for analysts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.cli import common
from streams.cli.api_client import api_get, api_url, say_if_not_ready
from streams.cli.common import SEVERITY_STYLE, CliError, fits, settings_from, wide_console
from streams.config import Settings

# -- tallies -------------------------------------------------------------------------
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
    say_if_not_ready(url)
    if args.json:
        common.out.print_json(json.dumps(body))
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
        common.out.print(f"No incidents {where}{', nor in the window before' if compare else ''}.")
        return 0
    table = Table(title=escape(title), show_footer=True)
    for i, k in enumerate(keys):  # a zone's id folds on a narrow terminal, never cut to "…"
        table.add_column(k, footer="total" if i == 0 else "", overflow="fold")
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
    wide_console().print(table)  # piped: wide enough for every id, as `incidents`
    return 0


# -- incidents -----------------------------------------------------------------------
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


def _when(iso: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_incidents(incidents: list[dict[str, Any]], *, more: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if not incidents:
        common.out.print("No open incidents match.")
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
    console = wide_console()
    if fits(console, table):
        console.print(table)
    else:  # a narrow terminal: one incident a few lines, nothing cut
        console.print(f"[bold]Open incidents, newest first ({len(incidents)})[/]")
        for i in incidents:
            claims = ", ".join(f"{c}\u2192{a}" for c, a in sorted(i["claims"].items()))
            line = Text(f"{_when(i['occurred_at'])} UTC  ")
            line.append(i["severity"], style=SEVERITY_STYLE.get(i["severity"], ""))
            line.append(f"  {i['category']}  {i['zone']}")
            n = len(i["reports"])
            console.print(line)
            console.print(
                Text(
                    f"  {i['verification']}, attributed to {i['attribution']}; "
                    f"{i['killed']} killed, {i['wounded']} wounded; {n} report"
                    f"{'' if n == 1 else 's'}{'; ' + claims if claims else ''}"
                )
            )
            console.print(Text(f"  {i['incident_id']}"), soft_wrap=True)
    if more:
        common.out.print("More incidents match: --all for every page, or a larger --limit.")
    common.out.print("One with its reports: ceasefire-monitor incidents ID")


def _show_incident(url: str, incident_id: str, *, as_json: bool) -> int:
    from rich.table import Table
    from rich.text import Text

    from streams.web.incidents import is_incident_id

    incident_id = incident_id.strip().lower()  # a UUID in any case, as the API takes it
    if not is_incident_id(incident_id):  # typed wrong: said here, not as a broken URL
        raise CliError(f"{incident_id!r} is not an incident id (a UUID, as the list shows)")
    i = api_get(url, f"/api/v1/incidents/{incident_id}", {})
    if as_json:
        print(json.dumps(i, ensure_ascii=False))
        return 0
    console = wide_console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")  # an id folds, never cut
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
    rows: list[tuple[str, ...]] = []
    for r in i["reports"]:
        if "source_type" not in r:  # the worker no longer holds its details
            rows.append((r["source"], r["report_id"], str(r["revision"])))
            table.add_row(*(Text(cell) for cell in rows[-1]))
            continue
        rows.append(
            (
                r["source"],
                r["report_id"],
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
        )
        table.add_row(*(Text(cell) for cell in rows[-1]))
    if fits(console, table):
        console.print(table)
        return 0
    # a narrow terminal: each report a few lines, named by its column, nothing cut
    console.print(f"[bold]{len(i['reports'])} reports[/]")
    names = [str(c.header) for c in table.columns]
    for row in rows:
        console.print(Text(f"{row[0]} {row[1]} (revision {row[2]})"), soft_wrap=True)
        for name, cell in zip(names[3:], row[3:], strict=False):
            if cell:
                console.print(Text(f"  {name}: {cell}"), soft_wrap=True)
    return 0


# -- export ----------------------------------------------------------------------------
#: Seconds an export waits out 503 answers (a worker answering its most large requests
#: at once, partitions moving) before it gives up.
EXPORT_PATIENCE = 120.0


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
        console=common.console,
        transient=True,  # the summary line stays
        disable=not common.console.is_terminal,  # no bar in logs and pipes
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
    common.console.print(f"wrote {written} to {where} ({fmt})", soft_wrap=True, markup=False)
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
