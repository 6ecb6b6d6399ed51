"""Builders shared by the record tests."""

from __future__ import annotations

import math
from collections.abc import Iterable

from schemas.codes import Category, SourceType
from streams.record.linking import LinkRule
from streams.record.model import Ident, LocationPrecision, ReportVersion, TimePrecision

#: A point in the Shusha area; `east_km` moves along the parallel.
LAT0, LON0 = 39.76, 46.75
MIN = 60.0


def east(km: float) -> float:
    return LON0 + km / (111.195 * math.cos(math.radians(LAT0)))


def rv(
    source: str,
    report_id: str,
    *,
    t: float = 0.0,
    km: float = 0.0,
    revision: int = 0,
    source_type: SourceType = SourceType.OBSERVATION_POST,
    zone: str = "shusha",
    category: Category = Category.HEAVY_WEAPONS_FIRE,
    perpetrator: str = "unknown",
    claimant: str | None = None,
    killed: int = 0,
    wounded: int = 0,
    time_precision: TimePrecision = TimePrecision.EXACT,
    location_precision: LocationPrecision = LocationPrecision.POINT,
    target: str | None = None,
    place: str | None = None,
    time_of_day: tuple[int, int] | None = None,
) -> ReportVersion:
    return ReportVersion(
        source=source,
        report_id=report_id,
        revision=revision,
        source_type=source_type,
        occurred=1_700_000_000.0 + t,
        zone=zone,
        lat=LAT0,
        lon=east(km),
        category=category,
        perpetrator=perpetrator,
        claimant=claimant,
        killed=killed,
        wounded=wounded,
        time_precision=time_precision,
        location_precision=location_precision,
        target=target,
        place=place,
        time_of_day=time_of_day,
    )


def order(r: ReportVersion) -> tuple[int, float, str, str]:
    """Canonical order: by how many of time and place are imprecise, then time, source, id."""
    vague = (r.time_precision is not TimePrecision.EXACT) + (
        r.location_precision is not LocationPrecision.POINT
    )
    return (vague, r.occurred, r.source, r.report_id)


def reference_groups(reports: Iterable[ReportVersion], rule: LinkRule) -> set[frozenset[Ident]]:
    """The canonical grouping written the plain way, O(n^2), from the rule's definition:
    reports in canonical order (`order`) each join the formed incident they link with
    completely and fit best (smallest `LinkRule.incident_fit`, then earliest first report),
    or start one."""
    groups: list[list[ReportVersion]] = []
    for u in sorted(reports, key=order):
        best: tuple[tuple[float, tuple[int, float, str, str]], list[ReportVersion]] | None = None
        for g in groups:
            fit = rule.incident_fit(u, g)
            if fit is not None:
                score = (fit, min(order(m) for m in g))
                if best is None or score < best[0]:
                    best = (score, g)
        if best is None:
            groups.append([u])
        else:
            best[1].append(u)
    return {frozenset(r.ident for r in g) for g in groups}
