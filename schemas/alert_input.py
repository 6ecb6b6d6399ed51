"""What the rule engine reads of an incident: the message of `ceasefire.incidents.by-zone`.

The zone stage sends, for each incident a step opened or joined, the report that did so
standing for the incident (its id, category, severity, verification, attribution and
casualty figures over the report's own: `streams/record/alert_view.py`); the alert stage
reads it back and the engine counts it (`alerting/engine.py`). The backtest builds the same
value without the topic.

    {"kind":"incident","incident_id":..,"zone":..,"occurred_ms":..,"category":..,
     "severity":..,"verification":..,"perpetrator":..,"killed":..,"wounded":..,
     "target":..,"civilian":..,"place":..,"source":..[,"time_precision":..]}

`time_precision` is there only when the incident's time is not exact (a message without it,
as every message was before it was sent, reads as exact).

The stage writes it from a dataclass (cheap to build, thousands a step) and reads it with
pydantic's validator for that dataclass, in strict mode (codes against their vocabularies,
counts as non-negative integers, no strings for numbers): 2.5 µs a message, where the whole
`Incident` model it carried before took 4.4 to 5 µs for twice the bytes. A message of that
earlier form (`"kind":"report"`, a whole classified report document) is still read, through
the model, so a topic written by an earlier version drains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config

from schemas import jsonbytes
from schemas.codes import Category, Party, Severity, TimePrecision, Verification
from schemas.incident import Incident

KIND = "incident"
#: How `encode_alert_input` starts a message
PREFIX = b'{"kind":"incident",'

Text = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0)]


@with_config(ConfigDict(strict=True))
@dataclass(frozen=True, slots=True)
class AlertInput:
    incident_id: Text
    zone: Text
    #: when it happened, unix milliseconds (what the engine's windows count in)
    occurred_ms: int
    category: Category
    severity: Severity
    verification: Verification
    #: the incident's attribution (`contested` reads as `unknown`: no party a rule names)
    perpetrator: Party
    killed: Count
    wounded: Count
    #: a party code, `civilians`, or `unknown`
    target: Text
    civilian: bool
    #: the named place of the report (`location.place`), None when it names none
    place: str | None
    source: Text
    #: how precisely `occurred_ms` is known: the incident's (its most precise report's)
    time_precision: TimePrecision = TimePrecision.EXACT

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_ms / 1000, UTC)


def encode_alert_input(i: AlertInput) -> bytes:
    # copied to its length: a step holds thousands until they are packed (`jsonbytes`)
    doc = {
        "kind": KIND,
        "incident_id": i.incident_id,
        "zone": i.zone,
        "occurred_ms": i.occurred_ms,
        "category": i.category,
        "severity": i.severity,
        "verification": i.verification,
        "perpetrator": i.perpetrator,
        "killed": i.killed,
        "wounded": i.wounded,
        "target": i.target,
        "civilian": i.civilian,
        "place": i.place,
        "source": i.source,
    }
    if i.time_precision is not TimePrecision.EXACT:
        # only when not exact: the messages of most incidents stay as they were
        doc["time_precision"] = i.time_precision
    raw = jsonbytes.dumps(doc)
    assert raw.startswith(PREFIX)
    return raw


_VALIDATOR = TypeAdapter(AlertInput)


def read_alert_input(raw: bytes) -> AlertInput:
    """A message of `ceasefire.incidents.by-zone` that is not a retraction. Raises
    ValueError naming what is wrong."""
    if not raw.startswith(PREFIX):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not an alert input: {exc}") from None
        kind = doc.get("kind") if type(doc) is dict else None
        if kind == "report":  # the earlier form: a whole classified report document
            return from_incident(Incident.model_validate(doc))
        if kind != KIND:
            raise ValueError(f"not an alert input: kind {kind!r} is not {KIND!r}")
    try:
        return _VALIDATOR.validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            raise ValueError(f"not an alert input: missing {where!r}") from None
        wrong = f"{where} {error['input']!r}: {error['msg']}"
        raise ValueError(f"not an alert input: {wrong}") from None


def from_incident(i: Incident) -> AlertInput:
    """A classified report document as the engine reads it (the earlier message form, and
    tests that build reports)."""
    return AlertInput(
        i.incident_id,
        i.zone,
        occurred_ms(i.occurred_at.timestamp()),
        i.category,
        i.severity,
        i.verification,
        i.perpetrator,
        i.killed,
        i.wounded,
        i.target,
        i.civilian,
        i.place or None,
        i.source,
        i.time_precision,
    )


def occurred_ms(seconds: float) -> int:
    """Unix milliseconds, floored as `alerting.times.to_ms` floors a datetime, from unix
    seconds read from a datetime with microseconds: rounded to the microsecond first, so
    the float's error (under 0.2 µs for this century) never moves a millisecond."""
    return round(seconds * 1_000_000) // 1000
