"""The incident report as reporting systems send it (SPEC.md, schema version 1).

Strict by design: unknown fields, naive times, out-of-range values and oversize
strings are errors, never silently fixed. Business checks that need the clock
(`occurred_at` not in the future) read `now` from the validation context so the
same bytes always validate the same way in tests and backtests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.codes import Category, SourceType

#: How far in the future `occurred_at` may lie, for clock skew between reporters.
MAX_CLOCK_SKEW = timedelta(minutes=5)

# NaN and Infinity parse as JSON numbers (pydantic, like Python, accepts them) but are
# no coordinate: refused as `finite_number`.
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

Text = Annotated[str, Field(min_length=1)]


class Location(BaseModel):
    """A WGS84 point, a gazetteer place name, or both (the point wins)."""

    model_config = _STRICT

    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    place: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @model_validator(mode="after")
    def _point_or_place(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise PydanticCustomError("location_incomplete", "lat and lon must be given together")
        if self.lat is None and self.place is None:
            raise PydanticCustomError(
                "location_incomplete", "location needs lat and lon, or a place name"
            )
        return self


class Casualties(BaseModel):
    model_config = _STRICT

    killed: NonNegativeInt = 0
    wounded: NonNegativeInt = 0
    civilian: bool = False


class Report(BaseModel):
    """One incident report. (`source`, `report_id`) identifies it."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        json_schema_extra={
            "$id": "https://ceasefire-monitor/schemas/report-v1.json",
            "title": "Ceasefire violation incident report, schema version 1",
        },
    )

    report_id: Annotated[str, Field(min_length=1, max_length=128)]
    source: Annotated[str, Field(min_length=1, max_length=64)]
    source_type: SourceType
    occurred_at: AwareDatetime
    reported_at: AwareDatetime | None = None
    location: Location
    category: Category
    perpetrator: Annotated[str, Field(max_length=128)] | None = None
    target: Annotated[str, Field(max_length=128)] | None = None
    casualties: Casualties | None = None
    description: Annotated[str, Field(max_length=4000)] | None = None
    schema_version: Literal[1] = 1

    @field_validator("occurred_at", "reported_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return value
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

    @property
    def key(self) -> str:
        """The identity of the report: its message key on the keyed topics."""
        return report_key(self.source, self.report_id)


def report_key(source: str, report_id: str) -> str:
    # A unit separator cannot appear in either part by accident, so the key is unambiguous.
    return f"{source}\x1f{report_id}"


def _now_from(context: Any) -> datetime:
    if isinstance(context, dict) and isinstance(context.get("now"), datetime):
        now: datetime = context["now"]
        return now
    from datetime import UTC

    return datetime.now(UTC)
