"""The alert event of SPEC.md, as published on `ceasefire.alerts`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from schemas.codes import Severity

MAX_INCIDENT_IDS = 20


class AlertEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: str
    fingerprint: str
    status: Literal["firing", "resolved"]
    rule: str
    severity: Severity
    labels: dict[str, str]
    value: float
    threshold: float
    window: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    incident_ids: list[str] = Field(default_factory=list, max_length=MAX_INCIDENT_IDS)
    summary: str

    @field_serializer("starts_at", "ends_at", when_used="json")
    def _millis(self, moment: datetime | None) -> str | None:
        """Every alert time in one form, UTC to the millisecond the rules keep
        (`2021-05-01T04:00:00.000Z`): a consumer reading them as text sees one shape."""
        if moment is None:
            return None
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
