"""Report -> Incident: place, zone, parties, severity, verification."""

from __future__ import annotations

from datetime import datetime

from schemas.codes import VERIFICATION_BY_SOURCE_TYPE
from schemas.incident import Incident, incident_id_for
from schemas.report import Report
from streams.classify.gazetteer import Gazetteer
from streams.classify.parties import is_known, party_code, target_code
from streams.classify.severity import PROVISION, severity
from streams.classify.zones import ZoneCatalogue


class UnknownPlace(ValueError):
    """`location.place` names a place the gazetteer does not know, and no point was given."""


class Classifier:
    def __init__(self, zones: ZoneCatalogue, gazetteer: Gazetteer) -> None:
        self.zones = zones
        self.gazetteer = gazetteer

    def classify(self, report: Report, received_at: datetime) -> Incident:
        loc = report.location
        if loc.lat is not None and loc.lon is not None:
            lat, lon = loc.lat, loc.lon
        else:
            assert loc.place is not None  # the schema requires a point or a place
            place = self.gazetteer.resolve(loc.place)
            if place is None:
                raise UnknownPlace(
                    f"location.place {loc.place!r} is not in the gazetteer; "
                    "give lat/lon or a known place name"
                )
            lat, lon = place.lat, place.lon
        casualties = report.casualties
        killed = casualties.killed if casualties else 0
        wounded = casualties.wounded if casualties else 0
        perpetrator = party_code(report.perpetrator)
        target = target_code(report.target)
        # Validated input, so skip a second validation on the hot path.
        return Incident.model_construct(
            incident_id=incident_id_for(report.source, report.report_id),
            report_id=report.report_id,
            source=report.source,
            source_type=report.source_type,
            occurred_at=report.occurred_at,
            reported_at=report.reported_at or received_at,
            received_at=received_at,
            zone=self.zones.locate(lat, lon),
            lat=lat,
            lon=lon,
            place=loc.place,
            category=report.category,
            provision=PROVISION[report.category],
            perpetrator=perpetrator,
            perpetrator_raw=None if is_known(report.perpetrator) else report.perpetrator,
            target=target,
            target_raw=None if is_known(report.target) else report.target,
            killed=killed,
            wounded=wounded,
            civilian=casualties.civilian if casualties else False,
            severity=severity(report.category, killed, wounded),
            verification=VERIFICATION_BY_SOURCE_TYPE[report.source_type],
            description=report.description,
        )
