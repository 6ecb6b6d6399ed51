"""Classification: zones, gazetteer, parties, severity, the classifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.codes import Category, Party, Severity, Verification
from schemas.report import Report
from streams.classify.classifier import Classifier, UnknownPlace
from streams.classify.gazetteer import Gazetteer
from streams.classify.parties import party_code, target_code
from streams.classify.severity import PROVISION, severity
from streams.classify.zones import OUTSIDE, CatalogueError, ZoneCatalogue

ZONES = ZoneCatalogue.load()
PLACES = Gazetteer.load()


@pytest.mark.parametrize(
    ("place", "zone"),
    [
        ("Stepanakert", "stepanakert"),
        ("Shusha", "shusha"),
        ("Lachin", "lachin-corridor"),
        ("Kornidzor", "lachin-corridor"),
        ("Aghdam", "loc-east"),
        ("Askeran", "loc-east"),
        ("Martuni", "loc-south"),
        ("Hadrut", "loc-south"),
        ("Martakert", "loc-north"),
        ("Kalbajar", "kalbajar-district"),
        ("Goris", "syunik-border"),
        ("Sotk", "gegharkunik-border"),
        ("Ijevan", "tavush-border"),
    ],
)
def test_named_places_land_in_their_zones(place: str, zone: str) -> None:
    p = PLACES.resolve(place)
    assert p is not None
    assert ZONES.locate(p.lat, p.lon) == zone


def test_priority_resolves_overlaps() -> None:
    # Shusha lies inside the corridor band too: the city wins.
    lat, lon = 39.758, 46.748
    assert any(z.id == "lachin-corridor" and z.contains(lon, lat) for z in ZONES.zones)
    assert ZONES.locate(lat, lon) == "shusha"


def test_points_outside_every_zone() -> None:
    assert ZONES.locate(40.4093, 49.8671) == OUTSIDE  # Baku
    assert OUTSIDE in ZONES.ids


def test_polygon_holes_and_multipolygons(tmp_path: Path) -> None:
    outer = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "ring"},
                "geometry": {"type": "Polygon", "coordinates": [outer, hole]},
            },
            {
                "type": "Feature",
                "properties": {"id": "multi"},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[20, 20], [21, 20], [21, 21], [20, 21], [20, 20]]],
                        [[[30, 30], [31, 30], [31, 31], [30, 31], [30, 30]]],
                    ],
                },
            },
        ],
    }
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(doc))
    cat = ZoneCatalogue.load(path)
    assert cat.locate(lat=1, lon=1) == "ring"
    assert cat.locate(lat=5, lon=5) == OUTSIDE  # in the hole
    assert cat.locate(lat=30.5, lon=30.5) == "multi"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "FeatureCollection"),
        (
            {"type": "FeatureCollection", "features": [{"properties": {}, "geometry": {}}]},
            "properties.id",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "properties": {"id": "a"},
                        "geometry": {"type": "Point", "coordinates": [1, 2]},
                    }
                ],
            },
            "bad geometry",
        ),
    ],
)
def test_a_malformed_catalogue_is_a_clear_error(tmp_path: Path, doc: object, message: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match=message):
        ZoneCatalogue.load(path)


def test_gazetteer_matches_spellings_case_and_diacritics() -> None:
    spellings = ("Khankendi", "XANKƏNDI", "  stepanakert ", "Şuşa", "shushi", "Berdzor", "Laçın")  # noqa: RUF001
    for name in spellings:
        assert PLACES.resolve(name) is not None, name
    assert PLACES.resolve("Atlantis") is None


def test_party_aliases() -> None:
    assert party_code("AZ MoD") is Party.AZ
    assert party_code("azerbaijani   armed forces") is Party.AZ
    assert party_code("Armenian Armed Forces") is Party.AM
    assert party_code("Artsakh Defence Army") is Party.NK
    assert party_code("RPKF") is Party.RU_PKF
    assert party_code("Turkish observers") is Party.TR
    assert party_code("little green men") is Party.UNKNOWN
    assert party_code(None) is Party.UNKNOWN
    assert target_code("civilians") == "civilians"
    assert target_code("Russian peacekeepers") == "ru-pkf"


def test_severity_rules() -> None:
    assert severity(Category.ATTACK_ON_PEACEKEEPERS, 0, 0) is Severity.CRITICAL
    assert severity(Category.AIRSPACE_VIOLATION, 1, 0) is Severity.CRITICAL
    assert severity(Category.AIRSPACE_VIOLATION, 0, 1) is Severity.HIGH
    assert severity(Category.HEAVY_WEAPONS_FIRE, 0, 3) is Severity.HIGH
    assert severity(Category.ENGINEERING_WORKS, 0, 0) is Severity.LOW
    assert set(PROVISION) == set(Category)


def make(**changes: object) -> Report:
    doc = {
        "report_id": "r1",
        "source": "az-mod",
        "source_type": "party_statement",
        "occurred_at": "2021-05-12T10:00:00+04:00",
        "location": {"place": "Shushi"},
        "category": "heavy_weapons_fire",
        "perpetrator": "illegal armed formations",
        "casualties": {"wounded": 2},
    }
    doc.update(changes)
    return Report.model_validate_json(json.dumps(doc))


def test_classifier_fills_every_field() -> None:
    received = datetime(2021, 5, 12, 7, 0, tzinfo=UTC)
    incident = Classifier(ZONES, PLACES).classify(make(), received)
    assert incident.zone == "shusha"
    assert incident.perpetrator is Party.UNKNOWN
    assert incident.perpetrator_raw == "illegal armed formations"
    assert incident.target == "unknown" and incident.target_raw is None
    assert incident.severity is Severity.HIGH
    assert incident.verification is Verification.ALLEGED
    assert incident.reported_at == received
    assert incident.provision == "complete ceasefire"
    again = Classifier(ZONES, PLACES).classify(make(), received)
    assert again.incident_id == incident.incident_id  # stable across runs and workers
    json.loads(incident.model_dump_json())


def test_point_wins_over_place_and_unknown_place_is_an_error() -> None:
    c = Classifier(ZONES, PLACES)
    now = datetime.now(UTC)
    inc = c.classify(make(location={"lat": 39.64, "lon": 46.545, "place": "Shusha"}), now)
    assert inc.zone == "lachin-corridor" and inc.place == "Shusha"
    with pytest.raises(UnknownPlace, match="Atlantis"):
        c.classify(make(location={"place": "Atlantis"}), now)
