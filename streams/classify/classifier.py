"""Report -> Incident: point (or place), zone, party codes, severity, verification;
WithdrawnReport -> ReportWithdrawal.

Pure and deterministic: the same report and arrival time give the same document on
every worker and every run (the incident id is uuid5 of `source` and `report_id`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.codes import VERIFICATION_BY_SOURCE_TYPE, TimePrecision
from schemas.incident import Classified, Incident, ReportWithdrawal, incident_id_for
from schemas.report import Report, WithdrawnReport
from streams.classify.gazetteer import Gazetteer
from streams.classify.parties import claimant_code, kept_raw, party_code, target_code
from streams.classify.severity import PROVISION, severity
from streams.classify.time_of_day import format_time_of_day, stated_time_of_day
from streams.classify.zones import ZoneCatalogue


class UnknownPlace(ValueError):
    """`location.place` names a place the gazetteer does not know, and no point was given."""

    def __init__(self, place: str) -> None:
        super().__init__(
            f"location.place {place!r} is not in the gazetteer; "
            "give location.lat and location.lon, or a known place name"
        )
        self.place = place


class Classifier:
    """Classifies validated reports against one zone catalogue and one gazetteer."""

    def __init__(
        self, zones: ZoneCatalogue, gazetteer: Gazetteer, *, time_of_day: bool = True
    ) -> None:
        self.zones = zones
        self.gazetteer = gazetteer
        #: Whether documents carry `time_of_day` (False: as workers before it wrote them,
        #: for a rolling upgrade from them: `Settings.internal_format` 3)
        self.time_of_day = time_of_day

    def document(self, report: Report | WithdrawnReport, received_at: datetime) -> Classified:
        """The classified document of a validated input: an `Incident` for a report, a
        `ReportWithdrawal` for a withdrawal. Raises as `classify` does."""
        if isinstance(report, WithdrawnReport):
            return self.withdrawal(report, received_at)
        return self.classify(report, received_at)

    def withdrawal(self, report: WithdrawnReport, received_at: datetime) -> ReportWithdrawal:
        """The document of a withdrawal: its identity and revision (whatever else it carries
        is validated, not used). `received_at` must be timezone-aware."""
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        return ReportWithdrawal.model_construct(
            source=report.source,
            report_id=report.report_id,
            revision=report.revision,
            withdrawn=True,
            received_at=received_at,
        )

    def classify(self, report: Report, received_at: datetime) -> Incident:
        """The incident a report describes.

        A point, when given, wins over the place name (which is kept in `place`).
        `received_at` must be timezone-aware; it is also `reported_at` when the report
        has none. Raises `UnknownPlace` for a place-only report the gazetteer does not
        know."""
        # The report is validated and every value has its field's type, so the hot path
        # skips a second validation.
        return Incident.model_construct(**self.fields(report, received_at))

    def fields(self, report: Report, received_at: datetime) -> dict[str, Any]:
        """The fields of `classify`'s incident, in the model's order, as plain values
        (enums, datetimes): what ingest encodes straight to JSON, without building the
        model (`schemas.incident.encode_fields`: a sixth of the cost)."""
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        loc = report.location
        if loc.lat is not None and loc.lon is not None:
            lat, lon = float(loc.lat), float(loc.lon)
        else:
            place = self.gazetteer.resolve(loc.place) if loc.place is not None else None
            if place is None:
                raise UnknownPlace(loc.place or "")
            lat, lon = place.lat, place.lon
        casualties = report.casualties
        if casualties is None:
            killed = wounded = 0
            civilian = False
        else:
            killed, wounded, civilian = casualties.killed, casualties.wounded, casualties.civilian
        perpetrator = party_code(report.perpetrator)
        target = target_code(report.target)
        claimant = claimant_code(report.claimant)
        category = report.category
        fields = {
            "kind": "report",
            "incident_id": incident_id_for(report.source, report.report_id),
            "report_id": report.report_id,
            "source": report.source,
            "source_type": report.source_type,
            "occurred_at": report.occurred_at,
            "reported_at": report.reported_at or received_at,
            "received_at": received_at,
            "zone": self.zones.locate(lat, lon),
            "lat": lat,
            "lon": lon,
            "place": loc.place,
            "category": category,
            "provision": PROVISION[category],
            "perpetrator": perpetrator,
            "perpetrator_raw": kept_raw(perpetrator, report.perpetrator),
            "target": target,
            "target_raw": kept_raw(target, report.target),
            "killed": killed,
            "wounded": wounded,
            "civilian": civilian,
            "severity": severity(category, killed, wounded),
            "verification": VERIFICATION_BY_SOURCE_TYPE[report.source_type],
            "description": report.description,
            "revision": report.revision,
            "claimant": claimant,
            "claimant_raw": kept_raw(claimant, report.claimant) if claimant is not None else None,
            "time_precision": report.time_precision,
            "location_precision": loc.precision,
            "time_of_day": _time_of_day(report),
        }
        if not self.time_of_day:
            del fields["time_of_day"]
        return fields


def _time_of_day(report: Report) -> str | None:
    """The time of day a day-precision report's description states: within a day it is
    what the text adds (an exact time says more; a week or month says no day)."""
    if report.time_precision is not TimePrecision.DAY:
        return None
    span = stated_time_of_day(report.description)
    return None if span is None else format_time_of_day(span)
