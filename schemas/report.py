"""The incident report as reporting systems send it (SPEC.md, schema version 1).

Strict by design: unknown fields, naive times, out-of-range values and oversize
strings are errors, never silently fixed. Business checks that need the clock
(`occurred_at` not in the future) read `now` from the validation context so the
same bytes always validate the same way in tests and backtests.

An input has one of two shapes (`report_json_schema` describes both):

* `Report`: a report, with every field SPEC.md requires. `withdrawn` is absent or false.
* `WithdrawnReport`: the source retracts (`source`, `report_id`) as of `revision`. It needs
  only `report_id`, `source`, `revision` (at least 1: higher than the revision it retracts,
  and every report has a revision of at least 0) and `withdrawn: true`; any other field of
  a report may ride along (a source may re-send the report it retracts), and is then
  validated as in a report, but carries no meaning.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision

#: How far in the future `occurred_at` may lie, for clock skew between reporters.
MAX_CLOCK_SKEW = timedelta(minutes=5)

#: The largest revision: a signed 64-bit integer, so that any timestamp a source uses as its
#: revision (ACLED's `timestamp`, in seconds; milliseconds or nanoseconds too) fits.
MAX_REVISION = 2**63 - 1

SCHEMA_ID = "https://ceasefire-monitor/schemas/report-v1.json"

# NaN and Infinity parse as JSON numbers (pydantic, like Python, accepts them) but are
# no coordinate: refused as `finite_number`.
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

Text = Annotated[str, Field(min_length=1)]
ReportId = Annotated[str, Field(min_length=1, max_length=128)]
SourceName = Annotated[str, Field(min_length=1, max_length=64)]
#: A party code or alias (`perpetrator`, `claimant`), or `civilians` (`target`).
PartyName = Annotated[str, Field(max_length=128)]
Description = Annotated[str, Field(max_length=4000)]
Revision = Annotated[int, Field(ge=0, le=MAX_REVISION)]


def _not_in_future(value: datetime, info: ValidationInfo) -> datetime:
    now = _now_from(info.context)
    if value - now > MAX_CLOCK_SKEW:
        raise PydanticCustomError(
            "future_time",
            "{field} {value} is more than {minutes} minutes in the future",
            {
                "field": info.field_name,
                "value": value.isoformat(),
                "minutes": int(MAX_CLOCK_SKEW.total_seconds() // 60),
            },
        )
    return value


#: An RFC 3339 time with an offset, not more than MAX_CLOCK_SKEW ahead of `now`.
ReportTime = Annotated[AwareDatetime, AfterValidator(_not_in_future)]


def _is(expected: bool) -> AfterValidator:
    # Literal[False] would take 0 for false (0 == False); a strict bool takes only JSON's.
    def check(value: bool) -> bool:
        if value is not expected:
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": str(expected).lower()}
            )
        return value

    return AfterValidator(check)


#: `withdrawn` of a report (absent or false) and of a withdrawal (true).
NotWithdrawn = Annotated[bool, _is(False), Field(json_schema_extra={"const": False})]
Withdrawn = Annotated[bool, _is(True), Field(json_schema_extra={"const": True})]


_NUMBER = {"type": "number"}


def _location_schema(schema: dict[str, Any]) -> None:
    # The default depends on the other fields, which JSON Schema cannot say as a default.
    precision = schema["properties"]["precision"]
    precision.pop("default", None)
    precision["description"] = (
        "how precisely the place is known; default `point` when lat and lon are given, "
        "`town` with a place name only"
    )
    # What `_point_or_place` checks: lat and lon together (or neither), and a point or a place.
    schema["if"] = {"required": ["lat"], "properties": {"lat": _NUMBER}}
    schema["then"] = {"required": ["lon"], "properties": {"lon": _NUMBER}}
    schema["else"] = {"properties": {"lon": {"type": "null"}}}
    schema["anyOf"] = [
        {"required": ["lat"], "properties": {"lat": _NUMBER}},
        {"required": ["place"], "properties": {"place": {"type": "string"}}},
    ]


class Location(BaseModel):
    """A WGS84 point, a gazetteer place name, or both (the point wins).

    `precision` is always set once validated: as sent, or else `point` with lat/lon and
    `town` with a place name only."""

    model_config = ConfigDict(**_STRICT, json_schema_extra=_location_schema)

    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    place: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    precision: LocationPrecision = LocationPrecision.POINT

    @model_validator(mode="after")
    def _point_or_place(self) -> Self:
        if self.lat is None:
            if self.lon is not None:
                raise PydanticCustomError(
                    "location_incomplete", "lat and lon must be given together"
                )
            if self.place is None:
                raise PydanticCustomError(
                    "location_incomplete", "location needs lat and lon, or a place name"
                )
            if "precision" not in self.model_fields_set:
                object.__setattr__(self, "precision", LocationPrecision.TOWN)
        elif self.lon is None:
            raise PydanticCustomError("location_incomplete", "lat and lon must be given together")
        return self


class Casualties(BaseModel):
    model_config = _STRICT

    killed: NonNegativeInt = 0
    wounded: NonNegativeInt = 0
    civilian: bool = False


class Report(BaseModel):
    """One incident report. (`source`, `report_id`) identifies it; of its versions, the one
    with the highest `revision` counts."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={"title": "Incident report"},
    )

    report_id: ReportId
    source: SourceName
    source_type: SourceType
    occurred_at: ReportTime
    reported_at: ReportTime | None = None
    location: Location
    category: Category
    perpetrator: PartyName | None = None
    target: PartyName | None = None
    casualties: Casualties | None = None
    description: Description | None = None
    revision: Revision = 0
    withdrawn: NotWithdrawn = False
    claimant: PartyName | None = None
    time_precision: TimePrecision = TimePrecision.EXACT
    schema_version: Literal[1] = 1

    @property
    def key(self) -> str:
        """The identity of the report: its message key on the keyed topics."""
        return report_key(self.source, self.report_id)


class WithdrawnReport(BaseModel):
    """The source retracts (`source`, `report_id`): as of `revision`, the report leaves every
    tally and incident. Only the identity, `revision` and `withdrawn: true` are needed."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={"title": "Withdrawal of an incident report"},
    )

    report_id: ReportId
    source: SourceName
    #: At least 1: higher than the revision it withdraws (a report's first is 0).
    revision: Annotated[int, Field(ge=1, le=MAX_REVISION)]
    withdrawn: Withdrawn
    source_type: SourceType | None = None
    occurred_at: ReportTime | None = None
    reported_at: ReportTime | None = None
    location: Location | None = None
    category: Category | None = None
    perpetrator: PartyName | None = None
    target: PartyName | None = None
    casualties: Casualties | None = None
    description: Description | None = None
    claimant: PartyName | None = None
    time_precision: TimePrecision | None = None
    schema_version: Literal[1] = 1

    @property
    def key(self) -> str:
        """The identity of the withdrawn report: its message key on the keyed topics."""
        return report_key(self.source, self.report_id)


#: What a valid input is: a report or a withdrawal.
ReportInput = Report | WithdrawnReport


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of an input: exactly one of the two shapes."""
    schema: dict[str, Any] = TypeAdapter(ReportInput).json_schema()
    shapes = schema.pop("anyOf")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Ceasefire violation incident report, schema version 1",
        "description": (
            "A report of a ceasefire violation, or (with `withdrawn: true`) a source's "
            "withdrawal of one of its reports; (`source`, `report_id`) identifies a report "
            "and the highest `revision` of it counts."
        ),
        "oneOf": shapes,
        **schema,
    }


def report_key(source: str, report_id: str) -> str:
    # A unit separator cannot appear in either part by accident, so the key is unambiguous.
    return f"{source}\x1f{report_id}"


def _now_from(context: Any) -> datetime:
    if isinstance(context, dict) and isinstance(context.get("now"), datetime):
        now: datetime = context["now"]
        return now
    from datetime import UTC

    return datetime.now(UTC)
