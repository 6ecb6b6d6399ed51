"""A validated, classified incident: what `ceasefire.incidents` carries."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.codes import Category, Party, Severity, SourceType, Verification

#: Namespace for incident ids: uuid5(source + report_id) is the same on every worker and run.
INCIDENT_NAMESPACE = uuid.UUID("6f1c7a52-4b8e-5d0e-9a1f-2c3b4d5e6f70")

CIVILIANS = "civilians"


def incident_id_for(source: str, report_id: str) -> str:
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{source}\x1f{report_id}"))


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_id: str
    report_id: str
    source: str
    source_type: SourceType
    occurred_at: AwareDatetime
    reported_at: AwareDatetime
    received_at: AwareDatetime
    zone: str
    lat: float
    lon: float
    place: str | None = None
    category: Category
    provision: str
    perpetrator: Party
    perpetrator_raw: str | None = None
    target: str  # a Party code or "civilians"
    target_raw: str | None = None
    killed: int = 0
    wounded: int = 0
    civilian: bool = False
    severity: Severity
    verification: Verification
    description: str | None = None

    @property
    def occurred_ts(self) -> float:
        return self.occurred_at.timestamp()


def utc(dt: datetime) -> datetime:
    from datetime import UTC

    return dt.astimezone(UTC)
