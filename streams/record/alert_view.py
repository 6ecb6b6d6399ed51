"""What the rule engine sees of an incident (SPEC.md: "Alert rules count incidents").

The report that opened or joined an incident, standing for the incident: the incident's id,
time, category, severity, verification, attribution and casualty figures over the report's own,
so that a rule counts each incident once, matches it by what the incident says, and words
its summary from the report (place, source). The target is the incident's: what its
strongest report naming one says (`incident_target`), so that a report naming none that
joins does not take it away (a rule matching `target` would resolve, the summary lose its
"against ..."). So is the civilian flag: that of the report the incident's casualty figures
come from (`casualty_report`), so that a party's statement without casualties joining a
report of civilians killed does not make them not civilians. The zone stage sends this to the alert
stage; the backtest feeds it to the engine directly. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from schemas.alert_input import AlertInput, occurred_ms
from schemas.codes import Party, by_value
from streams.record.incident import VERIFICATION_ORDER, IncidentRecord, verification_of
from streams.record.model import Ident, ReportVersion

#: `contested` and any attribution that is no party a rule can name read as `unknown`
_PARTIES = by_value(Party)
_STRENGTH = {v: i for i, v in enumerate(VERIFICATION_ORDER)}

#: The current version of a report of the incident's book, by identity (None: not there).
ReportOf = Callable[[Ident], ReportVersion | None]


def incident_target(report: ReportVersion, record: IncidentRecord, report_of: ReportOf) -> str:
    """The target of `record`: of the reports naming one, the strongest's (observed over
    reported over alleged: a party's statement names its own side), the earliest of equals
    (the incident's canonical order); `report`, one of them, as it is now. Unknown: none
    names one."""
    best: tuple[int, str] | None = None
    for source, report_id, _ in record.fields.reports:
        r = report if (source, report_id) == report.ident else report_of((source, report_id))
        if r is None or r.target is None:
            continue
        rank = _STRENGTH[verification_of(r)]
        if best is None or rank < best[0]:
            best = (rank, r.target)
    return Party.UNKNOWN.value if best is None else best[1]


def casualty_report(
    report: ReportVersion, record: IncidentRecord, report_of: ReportOf
) -> ReportVersion:
    """The report `record`'s casualty figures come from (docs/record.md: the largest
    figures of the incident's verification tier): of the reports of that tier, the one
    with the most killed, then the most wounded, the earliest of equals (the incident's
    order); `report`, one of them, as it is now. `report` when none is found."""
    tier = record.fields.verification
    best: tuple[int, int, ReportVersion] | None = None
    for source, report_id, _ in record.fields.reports:
        r = report if (source, report_id) == report.ident else report_of((source, report_id))
        if r is None or verification_of(r) is not tier:
            continue
        if best is None or (r.killed, r.wounded) > best[:2]:
            best = (r.killed, r.wounded, r)
    return report if best is None else best[2]


def alert_input(
    report: ReportVersion,
    civilian: bool,
    record: IncidentRecord,
    report_of: ReportOf | None = None,
) -> AlertInput:
    """`report` (with its civilian flag: the upsert's, or the record's) standing for
    `record`, the incident it opened or joined; `report_of` finds its other reports, for
    the incident's target and civilian flag (without it, the report's): the flag of the
    report its casualties come from (`casualty_report`)."""
    f = record.fields
    if report_of is not None and len(f.reports) > 1:
        target = incident_target(report, record, report_of)
        supplier = casualty_report(report, record, report_of)
        if supplier is not report:
            civilian = supplier.civilian
    else:
        target = report.target or Party.UNKNOWN.value
    return AlertInput(
        record.incident_id,
        f.zone,
        # the incident's time, not the report's: a late report of a day ago must not
        # stand for it at its own (later) hour, and a rule places it where the tallies do
        occurred_ms(f.occurred),
        f.category,
        f.severity,
        f.verification,
        _PARTIES.get(f.attribution, Party.UNKNOWN),
        f.killed,
        f.wounded,
        target,
        civilian,
        report.place,
        report.source,
        # the windowed rules count the incident only in windows as long as its period
        f.time_precision,
    )


def alert_document(doc: dict[str, Any], record: IncidentRecord) -> dict[str, Any]:
    """The earlier form of `alert_input`, as workers before it read it: the report's
    classified document with the incident's fields over it (`CEASEFIRE_INTERNAL_FORMAT=1`)."""
    f = record.fields
    return {
        **doc,
        "incident_id": record.incident_id,
        "occurred_at": datetime.fromtimestamp(f.occurred, UTC).isoformat(),
        "time_precision": str(f.time_precision),  # of that time, the incident's
        "category": str(f.category),
        "severity": str(f.severity),
        "verification": str(f.verification),
        "perpetrator": _PARTIES.get(f.attribution, Party.UNKNOWN).value,
        "killed": f.killed,
        "wounded": f.wounded,
    }
