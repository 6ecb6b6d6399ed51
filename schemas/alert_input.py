"""What the rule engine reads of an incident: the message of `ceasefire.incidents.by-zone`.

The zone stage sends, for each incident a step opened or joined, the report that did so
standing for the incident (its id, category, severity, verification, attribution and
casualty figures over the report's own: `streams/record/alert_view.py`); the alert stage
reads it back and the engine counts it (`alerting/engine.py`). The backtest builds the same
value without the topic.

    {"kind":"incident","incident_id":..,"zone":..,"occurred_ms":..,"category":..,
     "severity":..,"verification":..,"perpetrator":..,"killed":..,"wounded":..,
     "target":..,"civilian":..,"place":..,"source":..}

An internal hop of the pipeline's busiest process, so a dataclass read by hand and checked
field by field (codes against their vocabularies, counts as non-negative integers): about
1.5 µs a message, where the whole `Incident` model it carried before took 4.5 µs and twice
the bytes. A message of that earlier form (`"kind":"report"`, a whole classified report
document) is still read, through the model, so a topic written by an earlier version drains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import jsonbytes
from schemas.codes import Category, E, Party, Severity, Verification, by_value
from schemas.incident import Incident

KIND = "incident"


@dataclass(frozen=True, slots=True)
class AlertInput:
    incident_id: str
    zone: str
    #: when it happened, unix milliseconds (what the engine's windows count in)
    occurred_ms: int
    category: Category
    severity: Severity
    verification: Verification
    #: the incident's attribution (`contested` reads as `unknown`: no party a rule names)
    perpetrator: Party
    killed: int
    wounded: int
    #: a party code, `civilians`, or `unknown`
    target: str
    civilian: bool
    #: the named place of the report (`location.place`), None when it names none
    place: str | None
    source: str

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_ms / 1000, UTC)


def encode_alert_input(i: AlertInput) -> bytes:
    # copied to its length: a step holds thousands until they are packed (`jsonbytes`)
    return jsonbytes.dumps(
        {
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
    )


_CATEGORIES = by_value(Category)
_SEVERITIES = by_value(Severity)
_VERIFICATIONS = by_value(Verification)
_PARTIES = by_value(Party)


class _Bad(ValueError):
    pass


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc[name]
    if type(value) is not str or not value:
        raise _Bad(f"{name} {value!r} is not a text")
    return value


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc[name]
    if type(value) is not int or value < 0:
        raise _Bad(f"{name} {value!r} is not a count")
    return value


def _code(doc: dict[str, Any], name: str, members: dict[str, E]) -> E:
    value = doc[name]
    found = members.get(value) if type(value) is str else None
    if found is None:
        raise _Bad(f"{name} {value!r} is not one of its codes")
    return found


def read_alert_input(raw: bytes) -> AlertInput:
    """A message of `ceasefire.incidents.by-zone` that is not a retraction. Raises
    ValueError naming what is wrong."""
    try:
        doc = orjson.loads(raw)
        if type(doc) is not dict:
            raise _Bad("not a JSON object")
        kind = doc.get("kind")
        if kind == "report":  # the earlier form: a whole classified report document
            return from_incident(Incident.model_validate(doc))
        if kind != KIND:
            raise _Bad(f"kind {kind!r} is not {KIND!r}")
        occurred_ms = doc["occurred_ms"]
        if type(occurred_ms) is not int:
            raise _Bad(f"occurred_ms {occurred_ms!r} is not an integer")
        civilian = doc["civilian"]
        if type(civilian) is not bool:
            raise _Bad(f"civilian {civilian!r} is not a boolean")
        place = doc["place"]
        if place is not None and type(place) is not str:
            raise _Bad(f"place {place!r} is not a text")
        return AlertInput(
            _text(doc, "incident_id"),
            _text(doc, "zone"),
            occurred_ms,
            _code(doc, "category", _CATEGORIES),
            _code(doc, "severity", _SEVERITIES),
            _code(doc, "verification", _VERIFICATIONS),
            _code(doc, "perpetrator", _PARTIES),
            _count(doc, "killed"),
            _count(doc, "wounded"),
            _text(doc, "target"),
            civilian,
            place or None,
            _text(doc, "source"),
        )
    except _Bad as exc:
        raise ValueError(f"not an alert input: {exc}") from None
    except KeyError as exc:
        raise ValueError(f"not an alert input: missing {exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not an alert input: {exc}") from None


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
    )


def occurred_ms(seconds: float) -> int:
    """Unix milliseconds, floored as the engine's `to_ms` floors a datetime, from unix
    seconds read from a datetime with microseconds: rounded to the microsecond first, so
    the float's error (under 0.2 µs for this century) never moves a millisecond."""
    return round(seconds * 1_000_000) // 1000
