"""Closed vocabularies of the product contract (SPEC.md). Codes are stable: they are
metric labels, topic payload values and rule-file values at once."""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=Enum)


def by_value(enum: type[E]) -> dict[Any, E]:
    """An enum's members by value: a dict lookup costs a fifth of `Enum(value)`, on the
    paths that run once per report (`streams/record/documents.py`,
    `streams/pipeline/zone_messages.py`, `streams/record/alert_view.py`)."""
    return {m.value: m for m in enum}


class SourceType(StrEnum):
    OBSERVATION_POST = "observation_post"
    PATROL = "patrol"
    SENSOR = "sensor"
    MONITORING_CENTRE = "monitoring_centre"
    PARTY_STATEMENT = "party_statement"
    MEDIA = "media"
    CIVILIAN = "civilian"
    NGO = "ngo"
    DATASET = "dataset"


class Category(StrEnum):
    SMALL_ARMS_FIRE = "small_arms_fire"
    HEAVY_WEAPONS_FIRE = "heavy_weapons_fire"
    DRONE_STRIKE = "drone_strike"
    AIRSPACE_VIOLATION = "airspace_violation"
    POSITIONAL_ADVANCE = "positional_advance"
    ENGINEERING_WORKS = "engineering_works"
    OBSTRUCTION_OF_MOVEMENT = "obstruction_of_movement"
    ATTACK_ON_PEACEKEEPERS = "attack_on_peacekeepers"
    CIVILIAN_HARM = "civilian_harm"
    DETENTION = "detention"
    PROPERTY_DESTRUCTION = "property_destruction"
    MINE_INCIDENT = "mine_incident"
    OTHER = "other"


class Party(StrEnum):
    AZ = "az"
    AM = "am"
    NK = "nk"
    RU_PKF = "ru-pkf"
    TR = "tr"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class TimePrecision(StrEnum):
    """How precisely a report's `occurred_at` is known (SPEC.md `time_precision`).

    `exact`: to the minute or so, as the source gives it. `day`, `week`, `month`: the event
    happened within that period around `occurred_at` (ACLED's time_precision 1, 2, 3)."""

    EXACT = "exact"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class LocationPrecision(StrEnum):
    """How precisely a report's place is known (SPEC.md `location.precision`).

    `point`: at the coordinates given. `town`: in or near the named place (a gazetteer
    place is its centre). `region`: somewhere in the district or region around it
    (ACLED's geo_precision 1, 2, 3)."""

    POINT = "point"
    TOWN = "town"
    REGION = "region"


class Verification(StrEnum):
    """How much weight a report carries, by who made it.

    `observed`: the mission's own eyes (observation posts, patrols, sensors, the
    monitoring centre). `alleged`: a party's own statement, routinely accusatory.
    `reported`: third parties (media, NGOs, civilians, imported datasets).
    """

    OBSERVED = "observed"
    REPORTED = "reported"
    ALLEGED = "alleged"


VERIFICATION_BY_SOURCE_TYPE: dict[SourceType, Verification] = {
    SourceType.OBSERVATION_POST: Verification.OBSERVED,
    SourceType.PATROL: Verification.OBSERVED,
    SourceType.SENSOR: Verification.OBSERVED,
    SourceType.MONITORING_CENTRE: Verification.OBSERVED,
    SourceType.PARTY_STATEMENT: Verification.ALLEGED,
    SourceType.MEDIA: Verification.REPORTED,
    SourceType.CIVILIAN: Verification.REPORTED,
    SourceType.NGO: Verification.REPORTED,
    SourceType.DATASET: Verification.REPORTED,
}


class RejectReason(StrEnum):
    """Why an input was dead-lettered. A bounded set: it labels
    `ceasefire_reports_rejected_total`."""

    INVALID_ENCODING = "invalid_encoding"  # not UTF-8
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    INVALID_ENVELOPE = "invalid_envelope"  # CloudEvents envelope without a usable `data`
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    INVALID_TYPE = "invalid_type"
    INVALID_VALUE = "invalid_value"  # not in an enum, bad format
    OUT_OF_RANGE = "out_of_range"  # coordinates, negative casualties
    TOO_LONG = "too_long"  # string over its limit
    MISSING_TIMEZONE = "missing_timezone"
    FUTURE_TIME = "future_time"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_PLACE = "unknown_place"  # the gazetteer does not know `location.place`
    TOO_LARGE = "too_large"  # the message itself exceeds the size limit
    TOO_DEEP = "too_deep"  # JSON nested deeper than any report can be
    #: An equal revision of (source, report_id) with other content than the one counted.
    REVISION_CONFLICT = "revision_conflict"
    INTERNAL_ERROR = "internal_error"  # the monitor failed on this record (a bug): kept, not lost
