"""Builders shared by the record tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision
from streams.record.linking import LinkRule
from streams.record.model import Ident, ReportVersion

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
    civilian: bool = False,
    names_raw: tuple[str | None, str | None, str | None] | None = None,
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
        civilian=civilian,
        names_raw=names_raw,
    )


def order(r: ReportVersion) -> tuple[int, float, str, str]:
    """Canonical order: by how many of time and place are imprecise, then time, source, id."""
    vague = (r.time_precision is not TimePrecision.EXACT) + (
        r.location_precision is not LocationPrecision.POINT
    )
    return (vague, r.occurred, r.source, r.report_id)


def merge_fit(
    a: list[ReportVersion],
    b: list[ReportVersion],
    rule: LinkRule,
    cut: Callable[[ReportVersion, ReportVersion], bool] = lambda x, y: False,
) -> float | None:
    """How well two incidents of precise reports fit, the plain way (`cluster_precise`):
    None unless every pair across links (and is not `cut`); a report into an incident, its
    incident fit (two reports: the worse way round); two incidents of several, the mean of
    their pair fits."""
    if any(cut(x, y) for x in a for y in b):
        return None
    if len(a) == 1:
        fit = rule.incident_fit(a[0], b)
        if len(b) == 1 and fit is not None:
            other = rule.incident_fit(b[0], a)
            return None if other is None else max(fit, other)
        return fit
    if len(b) == 1:
        return rule.incident_fit(b[0], a)
    fits = [rule.fit(x, y) for x in a for y in b]
    if any(f is None for f in fits):
        return None
    return math.fsum(f for f in fits if f is not None) / len(fits)


def chain_cut(
    precise: list[ReportVersion], rule: LinkRule
) -> Callable[[ReportVersion, ReportVersion], bool]:
    """Which links of precise reports a chain loses, the plain way: a component of the link
    graph (`LinkRule.links`) of more than `chain_limit` reports is split into the pieces its
    links within time blocks (`chain_blocks()[0]`, aligned to the epoch) make; a piece of
    more than the limit again by the next level's blocks, but at the last level. Links count
    only within a unit (a component or piece not split further)."""
    unit: dict[Ident, int] = {}
    blocks = rule.chain_blocks()

    def split(reports: list[ReportVersion], level: int) -> None:
        size = blocks[level - 1] if level else None
        left = {r.ident: r for r in reports}
        while left:
            first = next(iter(left.values()))
            piece = [first]
            del left[first.ident]
            for x in piece:
                for y in list(left.values()):
                    same = size is None or x.occurred // size == y.occurred // size
                    if same and rule.links(x, y):
                        piece.append(y)
                        del left[y.ident]
            limit = rule.chain_limit
            if limit is not None and len(piece) > limit and level < len(blocks):
                split(piece, level + 1)
            else:
                number = len(set(unit.values()))
                for r in piece:
                    unit[r.ident] = number

    split(precise, 0)
    return lambda x, y: unit[x.ident] != unit[y.ident]


def reference_groups(reports: Iterable[ReportVersion], rule: LinkRule) -> set[frozenset[Ident]]:
    """The canonical grouping written the plain way, from the rule's definition: precise
    reports (an exact time and a point) each alone, then the two incidents that fit best
    (`merge_fit`, then the earliest first reports in canonical order, `order`) merged
    until none can (a chain's reports only within a time block: `chain_cut`); then the
    others in canonical order, each joining the formed incident it links with completely
    and fits best (smallest `LinkRule.incident_fit`, then earliest first report), or
    starting one."""
    reports = list(reports)
    groups: list[list[ReportVersion]] = [[r] for r in reports if order(r)[0] == 0]
    cut = chain_cut([g[0] for g in groups], rule)
    while True:
        best: tuple[tuple[float, Any, Any], int, int] | None = None
        for i, g in enumerate(groups):
            for j in range(i + 1, len(groups)):
                h = groups[j]
                fit = merge_fit(g, h, rule, cut)
                if fit is not None:
                    og, oh = order(g[0]), order(h[0])
                    key = (fit, min(og, oh), max(og, oh))
                    if best is None or key < best[0]:
                        best = (key, i, j)
        if best is None:
            break
        _key, i, j = best
        groups[i] = sorted([*groups[i], *groups[j]], key=order)
        del groups[j]
    for u in sorted((r for r in reports if order(r)[0] != 0), key=order):
        chosen: tuple[tuple[float, tuple[int, float, str, str]], list[ReportVersion]] | None
        chosen = None
        for g in groups:
            fit = rule.incident_fit(u, g)
            if fit is not None:
                score = (fit, min(order(m) for m in g))
                if chosen is None or score < chosen[0]:
                    chosen = (score, g)
        if chosen is None:
            groups.append([u])
        else:
            chosen[1].append(u)
    return {frozenset(r.ident for r in g) for g in groups}
