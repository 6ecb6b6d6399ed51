"""What the rule engine sees of an incident (SPEC.md: "Alert rules count incidents").

The report that opened or joined an incident, standing for the incident: the incident's id,
category, severity, verification, attribution and casualty figures over the report's own,
so that a rule counts each incident once, matches it by what the incident says, and words
its summary from the report (place, source, target). The zone stage sends this to the alert
stage; the backtest feeds it to the engine directly. Pure.
"""

from __future__ import annotations

from typing import Any

from schemas.codes import Party
from streams.record.incident import IncidentRecord

_PARTIES = frozenset(p.value for p in Party)


def incident_overrides(record: IncidentRecord) -> dict[str, Any]:
    """The fields of a classified report document that the incident replaces."""
    f = record.fields
    # str() of a StrEnum member: its value, cheaper than `.value` (once per report)
    return {
        "incident_id": record.incident_id,
        "category": str(f.category),
        "severity": str(f.severity),
        "verification": str(f.verification),
        # `contested` is no party a rule can name
        "perpetrator": f.attribution if f.attribution in _PARTIES else Party.UNKNOWN.value,
        "killed": f.killed,
        "wounded": f.wounded,
    }
