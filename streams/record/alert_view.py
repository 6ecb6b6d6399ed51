"""What the rule engine sees of an incident (SPEC.md: "Alert rules count incidents").

The report that opened or joined an incident, standing for the incident: the incident's id,
time, category, severity, verification, attribution and casualty figures over the report's own,
so that a rule counts each incident once, matches it by what the incident says, and words
its summary from the report (place, source, target). The zone stage sends this to the alert
stage; the backtest feeds it to the engine directly. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.alert_input import AlertInput, occurred_ms
from schemas.codes import Party, by_value
from streams.record.incident import IncidentRecord
from streams.record.model import ReportVersion

#: `contested` and any attribution that is no party a rule can name read as `unknown`
_PARTIES = by_value(Party)


def alert_input(report: ReportVersion, civilian: bool, record: IncidentRecord) -> AlertInput:
    """`report` (with its civilian flag: the upsert's, or the record's) standing for
    `record`, the incident it opened or joined."""
    f = record.fields
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
        report.target or Party.UNKNOWN.value,
        civilian,
        report.place,
        report.source,
    )


def alert_document(doc: dict[str, Any], record: IncidentRecord) -> dict[str, Any]:
    """The earlier form of `alert_input`, as workers before it read it: the report's
    classified document with the incident's fields over it (`CEASEFIRE_INTERNAL_FORMAT=1`)."""
    f = record.fields
    return {
        **doc,
        "incident_id": record.incident_id,
        "occurred_at": datetime.fromtimestamp(f.occurred, UTC).isoformat(),
        "category": str(f.category),
        "severity": str(f.severity),
        "verification": str(f.verification),
        "perpetrator": _PARTIES.get(f.attribution, Party.UNKNOWN).value,
        "killed": f.killed,
        "wounded": f.wounded,
    }
