"""The zone catalogue: GeoJSON polygons, a point's zone by point-in-polygon.

Overlaps are resolved by each zone's `priority` (higher wins; ties by file order):
cities over the corridor, the corridor over line-of-contact sectors, those over
border sectors, those over returned districts. A point in no zone is `outside`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

OUTSIDE = "outside"

Ring = tuple[tuple[float, float], ...]  # (lon, lat) vertices


class CatalogueError(ValueError):
    """The zone file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    kind: str
    priority: int
    polygons: tuple[tuple[Ring, ...], ...]  # each polygon: outer ring, then holes
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

    def contains(self, lon: float, lat: float) -> bool:
        w, s, e, n = self.bbox
        if not (w <= lon <= e and s <= lat <= n):
            return False
        for rings in self.polygons:
            if _in_ring(lon, lat, rings[0]) and not any(_in_ring(lon, lat, h) for h in rings[1:]):
                return True
        return False


def _in_ring(x: float, y: float, ring: Ring) -> bool:
    """Ray casting (even-odd rule)."""
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


class ZoneCatalogue:
    def __init__(self, zones: list[Zone], source: dict[str, Any]) -> None:
        # Highest priority first, so the first match wins.
        self.zones = sorted(zones, key=lambda z: -z.priority)
        self._source = source
        self._names = {z.id: z.name for z in zones}

    @classmethod
    def load(cls, path: Path | None = None) -> ZoneCatalogue:
        where = str(path) if path else "the shipped zone catalogue"
        try:
            if path is None:
                text = resources.files(__package__).joinpath("data/zones.geojson").read_text()
            else:
                text = Path(path).read_text(encoding="utf-8")
            doc = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CatalogueError(f"{where}: cannot read zone catalogue: {exc}") from exc
        return cls(_parse(doc, where), doc)

    def locate(self, lat: float, lon: float) -> str:
        for zone in self.zones:
            if zone.contains(lon, lat):
                return zone.id
        return OUTSIDE

    @property
    def ids(self) -> tuple[str, ...]:
        return (*(z.id for z in self.zones), OUTSIDE)

    def name(self, zone_id: str) -> str:
        return self._names.get(zone_id, "Outside all zones")

    def geojson(self) -> dict[str, Any]:
        return self._source


def _parse(doc: Any, where: str) -> list[Zone]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise CatalogueError(f"{where}: expected a GeoJSON FeatureCollection")
    zones: list[Zone] = []
    seen: set[str] = set()
    for n, feature in enumerate(doc.get("features") or []):
        props = feature.get("properties") or {}
        zid = props.get("id")
        if not isinstance(zid, str) or not zid or zid == OUTSIDE:
            raise CatalogueError(
                f"{where}: feature {n} needs a string properties.id (not 'outside')"
            )
        if zid in seen:
            raise CatalogueError(f"{where}: zone id {zid!r} appears twice")
        seen.add(zid)
        geom = feature.get("geometry") or {}
        try:
            if geom.get("type") == "Polygon":
                polys = [geom["coordinates"]]
            elif geom.get("type") == "MultiPolygon":
                polys = geom["coordinates"]
            else:
                raise ValueError(f"geometry type {geom.get('type')!r} is not Polygon/MultiPolygon")
            polygons = tuple(
                tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in poly)
                for poly in polys
            )
            if any(len(ring) < 4 for poly in polygons for ring in poly):
                raise ValueError("a ring needs at least 4 positions")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CatalogueError(f"{where}: zone {zid!r} has a bad geometry: {exc}") from exc
        xs = [p[0] for poly in polygons for p in poly[0]]
        ys = [p[1] for poly in polygons for p in poly[0]]
        zones.append(
            Zone(
                id=zid,
                name=str(props.get("name", zid)),
                kind=str(props.get("kind", "")),
                priority=int(props.get("priority", 0)),
                polygons=polygons,
                bbox=(min(xs), min(ys), max(xs), max(ys)),
            )
        )
    if not zones:
        raise CatalogueError(f"{where}: no zones")
    return zones
