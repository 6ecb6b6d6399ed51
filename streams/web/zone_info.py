"""The zone catalogue as a Prometheus info metric: each zone's name and centroid.

Grafana's geomap panel places a zone by the `lat` and `lon` labels of
`ceasefire_zone_info`, joined on `zone` to the window counts. The labels come from the
loaded catalogue only, so the series are as many as its zones.
"""

from __future__ import annotations

from streams import metrics
from streams.classify.zones import Ring, Zone, ZoneCatalogue

#: Four decimals of a degree are about 10 m: plenty for a map, stable as a label value.
DECIMALS = 4


def _ring_moments(ring: Ring) -> tuple[float, float, float]:
    """Signed area and the first moments of a ring (shoelace formula)."""
    area = cx = cy = 0.0
    for i, (x1, y1) in enumerate(ring):
        x0, y0 = ring[i - 1]  # the closing edge too, whether or not the ring repeats its start
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    return area / 2, cx / 6, cy / 6


def centroid(zone: Zone) -> tuple[float, float]:
    """(lat, lon) of the area centroid of a zone's outer rings; the middle of its bounding
    box when they have no area."""
    area = mx = my = 0.0
    for rings in zone.polygons:
        a, x, y = _ring_moments(rings[0])
        sign = 1.0 if a >= 0 else -1.0  # either winding order
        area += a * sign
        mx += x * sign
        my += y * sign
    if area == 0:
        w, s, e, n = zone.bbox
        return ((s + n) / 2, (w + e) / 2)
    return (my / area, mx / area)


def publish(catalogue: ZoneCatalogue) -> None:
    """Set `ceasefire_zone_info` to exactly the zones of `catalogue`."""
    metrics.ZONE_INFO.clear()
    for zone in catalogue.zones:
        lat, lon = centroid(zone)
        metrics.ZONE_INFO.labels(
            zone.id, zone.name, f"{lat:.{DECIMALS}f}", f"{lon:.{DECIMALS}f}"
        ).set(1)
