"""Where a report is classified: zone (point in polygon), place (gazetteer), party
codes (aliases), severity and the provision breached. Pure functions over data files
that users can replace (CEASEFIRE_ZONES, CEASEFIRE_GAZETTEER); see docs/zones.md."""

from streams.classify.classifier import Classifier, UnknownPlace
from streams.classify.gazetteer import Gazetteer, GazetteerError, Place
from streams.classify.parties import (
    ALIASES,
    CIVILIAN_ALIASES,
    claimant_code,
    kept_raw,
    party_code,
    target_code,
)
from streams.classify.severity import BASE_SEVERITY, PROVISION, severity
from streams.classify.zones import OUTSIDE, CatalogueError, Zone, ZoneCatalogue

__all__ = [
    "ALIASES",
    "BASE_SEVERITY",
    "CIVILIAN_ALIASES",
    "OUTSIDE",
    "PROVISION",
    "CatalogueError",
    "Classifier",
    "Gazetteer",
    "GazetteerError",
    "Place",
    "UnknownPlace",
    "Zone",
    "ZoneCatalogue",
    "claimant_code",
    "kept_raw",
    "party_code",
    "severity",
    "target_code",
]
