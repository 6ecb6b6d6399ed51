"""Backtesting: run reports through classification, linking and the rule engine offline.

Reports are classified, linked into incidents (`streams/record/book.py`, the same rule and
parameters as the worker's zone stage) and processed in event-time order with the event
time as the clock, so a backtest shows which alerts would have fired and resolved, and
when, had every report arrived the moment its event occurred. As on the worker, the engine
hears each report that opens or joins an incident as that incident
(`streams/record/alert_view.py`): one event reported by four sources is one incident to
every rule; an incident merged into another leaves the counts. Between incidents the clock
advances to every moment an alert could resolve (`next_deadline`), so resolution times
are exact, not rounded to the next incident.

Theatre-wide rules (`fatality_peak` with `scope: theatre`) hear every zone's fatality
changes as the worker's theatre stage does (`alerting/theatre.py`), right after the zone's
evaluation, with the same clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from alerting import theatre as theatre_rules
from alerting.engine import evaluate_batch, evaluate_time, next_deadline
from alerting.rules import THEATRE, RuleSet
from alerting.theatre import TheatreState, fatal_changes
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput
from schemas.incident import Incident
from schemas.report import Report
from streams.record.alert_view import alert_input
from streams.record.book import IncidentBook
from streams.record.documents import version_of
from streams.record.incident import Status
from streams.record.linking import LinkRule
from streams.record.model import ReportVersion

Classify = Callable[[Report, datetime], Incident]

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
STATUS_STYLE = {"firing": "bold", "resolved": "green"}


def backtest(
    reports: Iterable[Report],
    classify: Classify,
    rules: RuleSet,
    *,
    until: datetime | None = None,
    on_error: Callable[[Report, Exception], None] | None = None,
    link: LinkRule | None = None,
) -> list[AlertEvent]:
    """The alert events the rules would have produced over `reports`, in time order.

    Each report is classified as if received when its incident occurred (or when it was
    reported, if later). Observation starts at the earliest report: a zone's quiet period
    and escalation baseline are measured from then. After the last report, time runs on to
    `until` (default: until every alert has resolved, as if nothing more was reported).
    A report `classify` rejects with a ValueError (e.g. an unknown place) is passed to
    `on_error` and skipped; without `on_error` the error propagates. `link` is the linking
    rule (default: the worker's defaults). Give each report once, at its latest revision
    (`streams/tools/replay.py`)."""
    ordered = sorted(reports, key=lambda r: r.occurred_at)
    if not ordered:
        return []
    start = ordered[0].occurred_at
    states: dict[str, ZoneState] = {}
    events: list[AlertEvent] = []
    book = IncidentBook(link or LinkRule())
    theatre = TheatreState.new(since=start) if rules.theatre_fatality_rules else None
    for report in ordered:
        received = report.occurred_at
        if report.reported_at is not None and report.reported_at > received:
            received = report.reported_at
        try:
            incident = classify(report, received)
        except ValueError as exc:
            if on_error is None:
                raise
            on_error(report, exc)
            continue
        now = report.occurred_at
        events.extend(_advance_to(rules, states, until=now, theatre=theatre))
        heard: dict[str, tuple[list[str], list[AlertInput]]] = {}
        merged_into: dict[str, str] = {}
        for zone, seen in _as_incidents(book, incident, merged_into):
            gone, opened = heard.setdefault(zone, ([], []))
            if isinstance(seen, str):
                gone.append(seen)
            else:
                opened.append(seen)
        for zone, (gone, opened) in heard.items():
            state = states.get(zone)
            if state is None:
                state = states[zone] = ZoneState.new(zone, since=start)
            mark = state.mark() if theatre is not None else None
            # one step of the zone, as the alert stage takes one (`evaluate_batch`)
            events.extend(
                evaluate_batch(rules, state, opened, now, forget=gone, merged_into=merged_into)
            )
            if theatre is not None:
                changed = theatre.apply(fatal_changes(state, state.changed(mark)))
                events.extend(theatre_rules.evaluate(rules, theatre, now, changed=changed))
    events.extend(_advance_to(rules, states, until=until, theatre=theatre))
    if until is not None:
        for state in states.values():
            events.extend(evaluate_time(rules, state, until))
        if theatre is not None:
            events.extend(theatre_rules.evaluate(rules, theatre, until, changed=False))
    return events


def _as_incidents(
    book: IncidentBook, report: Incident, merged_into: dict[str, str]
) -> list[tuple[str, AlertInput | str]]:
    """What the engine hears when `report` enters `book`, zone by zone, as the alert stage
    hears it from the zone stage (`zone_stage.alert_inputs_of`): the incident it opened or
    joined (the report standing for it), every other open incident the step changed (a
    regrouping: its first report standing for it), and the id of each incident that no
    longer exists (merged, its survivor put in `merged_into`, or withdrawn)."""
    version = version_of(report.model_dump(mode="json"))
    assert isinstance(version, ReportVersion)
    heard: list[tuple[str, AlertInput | str]] = []
    for record in book.upsert(version).incidents:
        zone = record.fields.zone
        if record.status is not Status.OPEN:
            heard.append((zone, record.incident_id))
            if record.status is Status.MERGED and record.merged_into is not None:
                merged_into[record.incident_id] = record.merged_into
        elif any((s, rid) == version.ident for s, rid, _ in record.fields.reports):
            heard.append((zone, alert_input(version, report.civilian, record, book.report)))
        else:  # regrouped without the report: the rules heard it before, and hear it again
            source, report_id, _ = record.fields.reports[0]
            first = book.report((source, report_id))
            if first is not None:
                heard.append((zone, alert_input(first, first.civilian, record, book.report)))
    return heard


def _advance_to(
    rules: RuleSet,
    states: dict[str, ZoneState],
    *,
    until: datetime | None,
    theatre: TheatreState | None = None,
) -> list[AlertEvent]:
    """Run every zone's (and the theatre's) deadlines up to `until` (None: until nothing
    is pending), in time order across zones."""
    events: list[AlertEvent] = []
    stuck: dict[str, datetime] = {}

    def deadline_of(zone: str) -> datetime | None:
        if zone == THEATRE and theatre is not None:
            return theatre_rules.next_deadline(rules, theatre)
        return next_deadline(rules, states[zone])

    scopes = [*states, *([THEATRE] if theatre is not None else [])]
    while True:
        pending = [
            (d, zone)
            for zone in scopes
            if (d := deadline_of(zone)) is not None
            and (until is None or d <= until)
            and stuck.get(zone) != d
        ]
        if not pending:
            return events
        deadline, zone = min(pending)
        if zone == THEATRE and theatre is not None:
            events.extend(theatre_rules.evaluate(rules, theatre, deadline, changed=False))
        else:
            events.extend(evaluate_time(rules, states[zone], deadline))
        if deadline_of(zone) == deadline:
            stuck[zone] = deadline  # defensive: never loop on a deadline that does not move
        else:
            stuck.pop(zone, None)


def render_backtest(events: list[AlertEvent], console: Console) -> None:
    """Print the events as a table, then a count per rule."""
    if not events:
        console.print("No alerts would have fired.")
        return
    if console.width < NARROW:
        _render_events_narrow(events, console)
    else:
        _render_events_table(events, console)
    _render_per_rule(events, console)


#: Below this many columns the events are listed one by one: seven columns of a table left
#: the labels and the summary no width at all at 80 (which zone fired could not be read).
NARROW = 120


def _render_events_narrow(events: list[AlertEvent], console: Console) -> None:
    console.print(Text(f"Backtest: {len(events)} alert events", style="italic"))
    for e in events:
        when = e.ends_at if e.status == "resolved" and e.ends_at is not None else e.starts_at
        head = Text(when.strftime("%Y-%m-%d %H:%M:%S") + "  ")
        head.append(e.status, style=STATUS_STYLE.get(e.status, ""))
        head.append(f"  {e.rule}  ")
        head.append(str(e.severity), style=SEVERITY_STYLE.get(str(e.severity), ""))
        head.append(f"  {e.value:g} / {e.threshold:g}")
        console.print(head)
        console.print(Text("  " + _labels(e)))
        console.print(Text("  " + e.summary), overflow="fold")


def _render_events_table(events: list[AlertEvent], console: Console) -> None:
    table = Table(title=f"Backtest: {len(events)} alert events", show_lines=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("labels", min_width=18)
    table.add_column("value / threshold", justify="right", no_wrap=True)
    table.add_column("summary", min_width=24)
    for e in events:
        when = e.ends_at if e.status == "resolved" and e.ends_at is not None else e.starts_at
        table.add_row(
            when.strftime("%Y-%m-%d %H:%M:%S"),
            Text(e.status, style=STATUS_STYLE.get(e.status, "")),
            e.rule,
            Text(str(e.severity), style=SEVERITY_STYLE.get(str(e.severity), "")),
            Text(_labels(e)),
            f"{e.value:g} / {e.threshold:g}",
            # Text, not markup: a summary quotes a report's free-text source and place, in
            # which a `[/]` stopped the backtest with a MarkupError
            Text(e.summary),
        )
    console.print(table)


def _labels(e: AlertEvent) -> str:
    """The labels as `k=v, ...`: to print as Text, never markup (a value may hold `[`)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(e.labels.items()))


def _render_per_rule(events: list[AlertEvent], console: Console) -> None:
    fired: Counter[str] = Counter(e.rule for e in events if e.status == "firing")
    resolved: Counter[str] = Counter(e.rule for e in events if e.status == "resolved")
    severities: dict[str, set[str]] = {}
    for e in events:
        if e.status == "firing":
            severities.setdefault(e.rule, set()).add(str(e.severity))
    summary = Table(title="Alerts per rule")
    summary.add_column("rule")
    summary.add_column("severity")
    summary.add_column("fired", justify="right")
    summary.add_column("resolved", justify="right")
    summary.add_column("still firing", justify="right")
    order = ["low", "medium", "high", "critical"]
    for rule in sorted(fired | resolved):
        sev = sorted(severities.get(rule, set()), key=order.index)
        summary.add_row(
            rule,
            ", ".join(sev),
            str(fired[rule]),
            str(resolved[rule]),
            str(fired[rule] - resolved[rule]),
        )
    summary.add_row(
        Text("total", style="bold"),
        "",
        str(sum(fired.values())),
        str(sum(resolved.values())),
        str(sum(fired.values()) - sum(resolved.values())),
    )
    console.print(summary)
