"""The alert event of SPEC.md, as published on `ceasefire.alerts`."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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
