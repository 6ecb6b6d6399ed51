"""The zone catalogue: GeoJSON polygons, and a point's zone by point-in-polygon.

Overlaps are resolved by each zone's `priority`: the highest wins, ties go to the
zone that comes first in the file. The shipped catalogue ranks cities (100) over the
Lachin corridor (80), the corridor over line-of-contact sectors (60), those over the
Armenia-Azerbaijan border sectors (40), those over the returned districts (20). A
point in no zone is `outside`.

`locate` is on the hot path (every report), so `load` precomputes everything it
needs: zones sorted by priority, a bounding box per zone and per polygon, and every
ring as a tuple of its non-horizontal edges with the inverse slope already divided
out. A lookup is then a few float comparisons per zone and no allocation.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.classify.data_files import read_json

OUTSIDE = "outside"
OUTSIDE_NAME = "Outside all zones"

#: What a zone is. Free text would make dashboards guess; a replacement catalogue
#: may leave `kind` out, but may not invent one.
KINDS = frozenset({"city", "corridor", "line_of_contact", "district", "border"})

#: Zone ids are metric label values and rule-file values: short, lower case, kebab.
ZONE_ID = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
MAX_ZONE_ID = 64

Point = tuple[float, float]  # (lon, lat), GeoJSON order
Ring = tuple[Point, ...]
#: One edge of a ring, ready for ray casting: (x1, y1, y2, dx/dy). Horizontal edges
#: never cross a horizontal ray and are left out.
Edge = tuple[float, float, float, float]
BBox = tuple[float, float, float, float]  # min lon, min lat, max lon, max lat


class CatalogueError(ValueError):
    """The zone file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    kind: str
    priority: int
    description: str
    #: Each polygon: its outer ring, then its holes; (lon, lat) vertices.
    polygons: tuple[tuple[Ring, ...], ...]
    bbox: BBox
    #: The same polygons, precomputed for `contains`: (bbox, outer edges, hole edges).
    _compiled: tuple[tuple[BBox, tuple[Edge, ...], tuple[tuple[Edge, ...], ...]], ...]

    def contains(self, lon: float, lat: float) -> bool:
        """True when the point lies inside one of the polygons and outside its holes."""
        w, s, e, n = self.bbox
        if lon < w or lon > e or lat < s or lat > n:
            return False
        for (pw, ps, pe, pn), outer, holes in self._compiled:
            if lon < pw or lon > pe or lat < ps or lat > pn:
                continue
            if _crossings_odd(lon, lat, outer):
                for hole in holes:
                    if _crossings_odd(lon, lat, hole):
                        break
                else:
                    return True
        return False


def _crossings_odd(x: float, y: float, edges: tuple[Edge, ...]) -> bool:
    """Ray casting (even-odd rule): does a ray from (x, y) towards +x cross an odd number
    of edges? A point exactly on a vertex or a bottom edge counts consistently, so
    zones that share a border split the points on it between them."""
    inside = False
    for x1, y1, y2, inv_slope in edges:
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * inv_slope:
            inside = not inside
    return inside


def _edges(ring: Ring) -> tuple[Edge, ...]:
    out: list[Edge] = []
    for i, (x1, y1) in enumerate(ring):
        x2, y2 = ring[i - 1]  # the closing edge too, whether or not the ring repeats its start
        if y1 != y2:
            out.append((x1, y1, y2, (x2 - x1) / (y2 - y1)))
    return tuple(out)


def _bbox(points: list[Point] | Ring) -> BBox:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


class ZoneCatalogue:
    """The zones of the theatre. Build with `ZoneCatalogue.load()`."""

    def __init__(self, zones: list[Zone], source: dict[str, Any]) -> None:
        if not zones:
            raise CatalogueError("a zone catalogue needs at least one zone")
        #: Highest priority first, file order among equals (sorted() is stable).
        self.zones: tuple[Zone, ...] = tuple(sorted(zones, key=lambda z: -z.priority))
        #: Every label `locate` can return: the zone ids in file order, then `outside`.
        self.ids: tuple[str, ...] = (*(z.id for z in zones), OUTSIDE)
        self._names = {z.id: z.name for z in zones}
        self._names[OUTSIDE] = OUTSIDE_NAME
        self._source = source
        self._lookup = tuple((z.bbox, z.id, z.contains) for z in self.zones)

    @classmethod
    def load(cls, path: Path | str | None = None) -> ZoneCatalogue:
        """Read a GeoJSON FeatureCollection; None reads the shipped theatre catalogue.

        Raises `CatalogueError` naming the file and the problem when the file cannot be
        read or is not a usable catalogue (no id, bad id, duplicate id, bad geometry)."""
        doc, where = read_json(path, "zones.geojson", "zone catalogue", CatalogueError)
        zones, normalised = _parse(doc, where)
        return cls(zones, normalised)

    def locate(self, lat: float, lon: float) -> str:
        """The id of the highest-priority zone containing the point, else `outside`."""
        for (w, s, e, n), zone_id, contains in self._lookup:
            if w <= lon <= e and s <= lat <= n and contains(lon, lat):
                return zone_id
        return OUTSIDE

    def name(self, zone_id: str) -> str:
        """A zone's display name. An id not in this catalogue (say, in history kept from a
        previous catalogue) is its own name."""
        return self._names.get(zone_id, zone_id)

    def geojson(self) -> dict[str, Any]:
        """The catalogue as a GeoJSON FeatureCollection (for `GET /api/v1/zones`): every
        feature carries `id` and `properties.{id, name, kind, priority, description}`.
        A fresh copy, so callers may change it."""
        return copy.deepcopy(self._source)

    def __len__(self) -> int:
        return len(self.zones)

    def __repr__(self) -> str:
        return f"ZoneCatalogue({len(self.zones)} zones: {', '.join(self.ids[:-1])})"


def _parse(doc: Any, where: str) -> tuple[list[Zone], dict[str, Any]]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise CatalogueError(f"{where}: expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise CatalogueError(f"{where}: the FeatureCollection has no features")
    zones: list[Zone] = []
    normalised: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, feature in enumerate(features):
        if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
            raise CatalogueError(f"{where}: feature {n} is not a GeoJSON Feature with properties")
        props: dict[str, Any] = feature["properties"]
        zone_id = props.get("id")
        if not isinstance(zone_id, str) or not zone_id:
            raise CatalogueError(f"{where}: feature {n} has no properties.id (the zone code)")
        label = f"feature {n} (zone {zone_id!r})"
        if zone_id == OUTSIDE:
            raise CatalogueError(f"{where}: {label}: {OUTSIDE!r} is reserved for no zone")
        if len(zone_id) > MAX_ZONE_ID or not ZONE_ID.match(zone_id):
            raise CatalogueError(
                f"{where}: {label}: the id must be lower-case letters and digits joined by "
                f"'-' or '_', at most {MAX_ZONE_ID} characters (it is a metric label)"
            )
        if zone_id in seen:
            raise CatalogueError(
                f"{where}: {label}: duplicate zone id, also feature {seen[zone_id]}"
            )
        seen[zone_id] = n
        name = props.get("name", zone_id)
        kind = props.get("kind", "")
        priority = props.get("priority", 0)
        description = props.get("description", "")
        if not isinstance(name, str) or not name.strip():
            raise CatalogueError(f"{where}: {label}: properties.name must be a non-empty string")
        if kind != "" and kind not in KINDS:
            raise CatalogueError(
                f"{where}: {label}: properties.kind {kind!r} is not one of {sorted(KINDS)}"
            )
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise CatalogueError(f"{where}: {label}: properties.priority must be an integer")
        if not isinstance(description, str):
            raise CatalogueError(f"{where}: {label}: properties.description must be a string")
        try:
            polygons = _polygons(feature.get("geometry"))
        except (TypeError, ValueError) as exc:
            raise CatalogueError(f"{where}: {label} has a bad geometry: {exc}") from exc
        compiled = tuple(
            (_bbox(rings[0]), _edges(rings[0]), tuple(_edges(h) for h in rings[1:]))
            for rings in polygons
        )
        zones.append(
            Zone(
                id=zone_id,
                name=name,
                kind=kind,
                priority=priority,
                description=description,
                polygons=polygons,
                bbox=_bbox([p for rings in polygons for p in rings[0]]),
                _compiled=compiled,
            )
        )
        normalised.append(
            {
                "type": "Feature",
                "id": zone_id,
                "properties": {
                    **props,
                    "id": zone_id,
                    "name": name,
                    "kind": kind,
                    "priority": priority,
                    "description": description,
                },
                "geometry": feature["geometry"],
            }
        )
    return zones, {"type": "FeatureCollection", "features": normalised}


def _polygons(geometry: Any) -> tuple[tuple[Ring, ...], ...]:
    if not isinstance(geometry, dict):
        raise ValueError("no geometry object")
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "Polygon":
        raw_polygons = [coordinates]
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise ValueError("a MultiPolygon needs a non-empty list of polygons")
        raw_polygons = coordinates
    else:
        raise ValueError(f"geometry type {kind!r} is not Polygon or MultiPolygon")
    return tuple(_polygon(p, i) for i, p in enumerate(raw_polygons))


def _polygon(raw: Any, index: int) -> tuple[Ring, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"polygon {index} needs a list of rings (outer ring, then holes)")
    return tuple(_ring(r, index, i) for i, r in enumerate(raw))


def _ring(raw: Any, polygon: int, index: int) -> Ring:
    where = f"polygon {polygon} ring {index}"
    if not isinstance(raw, list):
        raise ValueError(f"{where} is not a list of positions")
    points: list[Point] = []
    for position in raw:
        if (
            not isinstance(position, list | tuple)
            or len(position) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in position[:2])
        ):
            raise ValueError(f"{where}: position {position!r} is not [lon, lat]")
        lon, lat = float(position[0]), float(position[1])
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180):
            raise ValueError(f"{where}: longitude in {position!r} is out of range")
        if not -90 <= lat <= 90:
            raise ValueError(f"{where}: latitude in {position!r} is out of range")
        points.append((lon, lat))
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()  # GeoJSON repeats the first position; the edges do not need it
    if len(set(points)) < 3:
        raise ValueError(f"{where} needs at least 3 distinct positions")
    return tuple(points)
