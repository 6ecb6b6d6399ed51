"""Incidents within one zone: which reports describe one event (SPEC.md, "Incidents").

The pair rule (`LinkRule.fit`): two reports link when their sources differ, their categories
are compatible (equal, or both fire), their times are within the window widened by both
time precisions, and their places within the distance widened by both place precisions.
An incident is a set of reports that pairwise link (complete linkage), so it holds at most
one report per source and a burst of separate events cannot chain into one.

Which sets: the canonical assignment. Reports are taken in canonical order (event time,
source, report_id); each joins the already formed incident it links with completely and fits
best (smallest worst-pair gap, normalised by the widened window and distance; ties: the
incident with the earlier first report), or starts a new one. That makes the grouping a
function of the set of current reports alone: any arrival order of the same reports, and any
interleaving of their revisions and withdrawals, ends with the same incidents.

Keeping it current is incremental (`ZoneLinker`). A change re-decides only reports whose
decision can differ: the changed report, and later reports that link with a member of an
incident whose membership differs from before (found through a time-bucket index per time
precision). A report that links with no such member faces the same candidates as before and
makes the same decision. So the work is the changed report's neighbourhood, and a cascade
continues only as long as decisions actually change. `canonical_groups` computes the same
assignment from scratch (recovery; the tests' reference).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from schemas.codes import Category
from streams.record.model import Ident, LocationPrecision, ReportVersion, TimePrecision

FIRE = frozenset({Category.SMALL_ARMS_FIRE, Category.HEAVY_WEAPONS_FIRE, Category.DRONE_STRIKE})

_EARTH_KM = 6371.0088  # mean Earth radius
_KM_PER_DEG_LAT = math.pi * _EARTH_KM / 180

#: How far an imprecise time may be from `occurred_at`, each side. Symmetric because senders
#: differ on whether a day- or month-precision time is the start or the middle of the period.
DEFAULT_TIME_WIDENING: Mapping[TimePrecision, float] = {
    TimePrecision.EXACT: 0.0,
    TimePrecision.DAY: 86_400.0,
    TimePrecision.WEEK: 7 * 86_400.0,
    TimePrecision.MONTH: 31 * 86_400.0,
}

#: How far an imprecise place may be from its point: a town's extent around its centre, a
#: district (rayon) around its centre.
DEFAULT_PLACE_WIDENING_KM: Mapping[LocationPrecision, float] = {
    LocationPrecision.POINT: 0.0,
    LocationPrecision.TOWN: 5.0,
    LocationPrecision.REGION: 25.0,
}


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # abs() makes the result exactly symmetric, so a pair's fit is the same either way round.
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = abs(p2 - p1)
    dl = math.radians(abs(lon2 - lon1))
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def compatible(a: Category, b: Category) -> bool:
    return category_class(a) == category_class(b)


def category_class(c: Category) -> str:
    """Compatibility is an equivalence: the fire family, or each other category alone."""
    return "fire" if c in FIRE else c.value


@dataclass(frozen=True, slots=True)
class LinkRule:
    """Linking parameters (docs/record.md has their trade-off)."""

    window_seconds: float = 1800.0
    distance_km: float = 3.0
    time_widening: Mapping[TimePrecision, float] = field(
        default_factory=lambda: dict(DEFAULT_TIME_WIDENING)
    )
    place_widening_km: Mapping[LocationPrecision, float] = field(
        default_factory=lambda: dict(DEFAULT_PLACE_WIDENING_KM)
    )

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.distance_km <= 0:
            raise ValueError("the linking window and distance must be positive")
        if set(self.time_widening) != set(TimePrecision) or min(self.time_widening.values()) < 0:
            raise ValueError("time_widening needs a non-negative value for every precision")
        if (
            set(self.place_widening_km) != set(LocationPrecision)
            or min(self.place_widening_km.values()) < 0
        ):
            raise ValueError("place_widening_km needs a non-negative value for every precision")

    def time_limit(self, a: ReportVersion, b: ReportVersion) -> float:
        w = self.time_widening
        return self.window_seconds + (w[a.time_precision] + w[b.time_precision])

    def distance_limit(self, a: ReportVersion, b: ReportVersion) -> float:
        w = self.place_widening_km
        return self.distance_km + (w[a.location_precision] + w[b.location_precision])

    def fit(self, a: ReportVersion, b: ReportVersion) -> float | None:
        """None when a and b do not link; else how tightly, in [0, 1]: the larger of the
        time gap and the distance, each as a share of its (widened) limit."""
        if a.source == b.source or not compatible(a.category, b.category):
            return None
        t_limit = self.time_limit(a, b)
        dt = abs(a.occurred - b.occurred)
        if dt > t_limit:
            return None
        d_limit = self.distance_limit(a, b)
        d = haversine_km(a.lat, a.lon, b.lat, b.lon)
        if d > d_limit:
            return None
        return max(dt / t_limit, d / d_limit)

    def links(self, a: ReportVersion, b: ReportVersion) -> bool:
        return self.fit(a, b) is not None


Group = tuple[ReportVersion, ...]


@dataclass(frozen=True, slots=True)
class Regroup:
    """What one change did to a zone's incidents, by anchor (the identity of an incident's
    first report in canonical order): member tuples before and after, only where they
    differ. An anchor only in `before` no longer heads an incident."""

    before: dict[Ident, Group]
    after: dict[Ident, Group]

    def __bool__(self) -> bool:
        return bool(self.before or self.after)


Order = tuple[float, str, str]

#: What the index keeps per report, flat for the scan: time, lat, lon, source, category
#: class, time widening, place widening, canonical order, the report.
_Entry = tuple[float, float, float, str, str, float, float, Order, ReportVersion]

#: A linked neighbour: the report, its fit, its canonical order.
Neighbour = tuple[ReportVersion, float, Order]


def _order(r: ReportVersion) -> Order:
    return (r.occurred, r.source, r.report_id)


class ZoneLinker:
    """The current reports of one zone and their canonical grouping into incidents."""

    def __init__(self, rule: LinkRule | None = None) -> None:
        self.rule = rule or LinkRule()
        self.live: dict[Ident, ReportVersion] = {}
        #: anchor -> members in canonical order; every live report is in exactly one
        self.members: dict[Ident, list[ReportVersion]] = {}
        self.anchor: dict[Ident, Ident] = {}
        #: precision -> time bucket -> entries. Buckets are `window + widening` wide, so a
        #: point-time report looks into about three buckets of each precision.
        self._index: dict[TimePrecision, dict[int, dict[Ident, _Entry]]] = {
            p: {} for p in TimePrecision
        }
        self._width = {
            p: self.rule.window_seconds + self.rule.time_widening[p] for p in TimePrecision
        }

    def __len__(self) -> int:
        return len(self.live)

    def groups(self) -> dict[Ident, Group]:
        return {a: tuple(m) for a, m in self.members.items()}

    # -- index ------------------------------------------------------------------------

    def _entry(self, r: ReportVersion) -> _Entry:
        rule = self.rule
        return (
            r.occurred,
            r.lat,
            r.lon,
            r.source,
            category_class(r.category),
            rule.time_widening[r.time_precision],
            rule.place_widening_km[r.location_precision],
            _order(r),
            r,
        )

    def _index_add(self, r: ReportVersion) -> None:
        p = r.time_precision
        b = int(r.occurred // self._width[p])
        self._index[p].setdefault(b, {})[r.ident] = self._entry(r)

    def _index_remove(self, r: ReportVersion) -> None:
        p = r.time_precision
        buckets = self._index[p]
        b = int(r.occurred // self._width[p])
        bucket = buckets[b]
        del bucket[r.ident]
        if not bucket:
            del buckets[b]

    def neighbours(self, u: ReportVersion) -> list[Neighbour]:
        """Every current report that links with `u` (u itself excluded), with its fit.

        The pair rule of `LinkRule.fit`, inlined over the index entries: this loop is
        where the record spends most of its time."""
        rule = self.rule
        window = rule.window_seconds
        distance = rule.distance_km
        ut, ulat, ulon, usrc, ucls, utw, upw, _, _ = self._entry(u)
        out: list[Neighbour] = []
        for p, buckets in self._index.items():
            if not buckets:
                continue
            reach = window + (utw + rule.time_widening[p])
            width = self._width[p]
            lo = int((ut - reach) // width)
            hi = int((ut + reach) // width)
            if hi - lo + 1 > len(buckets):
                chosen: Iterable[dict[Ident, _Entry]] = [
                    v for k, v in buckets.items() if lo <= k <= hi
                ]
            else:
                chosen = [v for k in range(lo, hi + 1) if (v := buckets.get(k)) is not None]
            for bucket in chosen:
                for t, lat, lon, src, cls, tw, pw, order, m in bucket.values():
                    if src == usrc or cls != ucls:
                        continue
                    t_limit = window + (utw + tw)
                    dt = abs(ut - t)
                    if dt > t_limit:
                        continue
                    d_limit = distance + (upw + pw)
                    if abs(ulat - lat) * _KM_PER_DEG_LAT > d_limit:  # before the haversine
                        continue
                    d = haversine_km(ulat, ulon, lat, lon)
                    if d > d_limit:
                        continue
                    out.append((m, max(dt / t_limit, d / d_limit), order))
        return out

    # -- the decision -----------------------------------------------------------------

    @staticmethod
    def _decide(
        u: ReportVersion,
        earlier: list[Neighbour],
        anchor_of: Callable[[Ident], Ident],
        members_of: Callable[[Ident], list[ReportVersion]],
    ) -> Ident:
        """The anchor of the incident u joins, or u's own identity for a new incident.
        `earlier`: u's linked neighbours before it in canonical order; `members_of(a)`: the
        members of incident a formed so far (all before u)."""
        fits: dict[Ident, list[float]] = {}
        for m, f, _ in earlier:
            fits.setdefault(anchor_of(m.ident), []).append(f)
        best: tuple[float, Order] | None = None
        choice = u.ident
        for a, fs in fits.items():
            members = members_of(a)
            # Every linked earlier neighbour filed under a is a member of a; equal counts
            # mean u links with all of them (which also rules out a second report of
            # u's source: reports of one source never link).
            if len(fs) != len(members):
                continue
            score = (max(fs), min(_order(m) for m in members))
            if best is None or score < best:
                best = score
                choice = a
        return choice

    # -- bulk ---------------------------------------------------------------------------

    def load(self, reports: Iterable[ReportVersion]) -> None:
        """Replace the state with these reports, grouped from scratch (recovery)."""
        self.live = {}
        self.members = {}
        self.anchor = {}
        for p in TimePrecision:
            self._index[p] = {}
        for r in reports:
            if r.ident in self.live:
                raise ValueError(f"two versions of {r.ident}")
            self.live[r.ident] = r
            self._index_add(r)
        for u in sorted(self.live.values(), key=_order):
            uo = _order(u)
            earlier = [n for n in self.neighbours(u) if n[2] < uo]
            a = self._decide(u, earlier, self.anchor.__getitem__, self.members.__getitem__)
            self.anchor[u.ident] = a
            self.members.setdefault(a, []).append(u)

    # -- incremental ------------------------------------------------------------------

    def upsert(self, r: ReportVersion) -> Regroup:
        """Add a report, or replace the current version of its identity."""
        return self._change(self.live.get(r.ident), r)

    def remove(self, ident: Ident) -> Regroup:
        old = self.live.get(ident)
        if old is None:
            return Regroup({}, {})
        return self._change(old, None)

    def _change(self, removed: ReportVersion | None, inserted: ReportVersion | None) -> Regroup:
        target = inserted if inserted is not None else removed
        if target is None:
            return Regroup({}, {})
        changed = target.ident
        old_anchor = self.anchor.get(changed) if removed is not None else None
        if removed is not None:
            self._index_remove(removed)
            del self.live[changed]
        if inserted is not None:
            self._index_add(inserted)
            self.live[changed] = inserted

        overlay: dict[Ident, Ident] = {}  # re-decided report -> its anchor now
        joined: dict[Ident, list[ReportVersion]] = {}  # anchor -> re-decided members, in order
        #: anchors whose membership (may) differ from before -> from where in canonical order
        dirty: dict[Ident, Order] = {}
        heap: list[Order] = []
        queued: set[Ident] = set()
        # The index does not change during the replay, so neighbours are computed once per
        # report (keyed by object: the removed and the inserted version share an identity).
        cache: dict[int, list[Neighbour]] = {}

        def neighbours(r: ReportVersion) -> list[Neighbour]:
            found = cache.get(id(r))
            if found is None:
                found = cache[id(r)] = self.neighbours(r)
            return found

        def schedule(r: ReportVersion, after: Order) -> None:
            for m, _, mo in neighbours(r):
                if mo > after and m.ident not in queued:
                    queued.add(m.ident)
                    heapq.heappush(heap, mo)

        def make_dirty(a: Ident, at: Order) -> None:
            since = dirty.get(a)
            if since is not None and since <= at:
                return
            # Marked again from an earlier point (a revision moved a report to before where
            # the anchor was first marked): the reports in between are scheduled too.
            dirty[a] = at
            # Old members (the removed version included) and members re-decided so far:
            # a later report linking with any of them may now decide otherwise.
            for m in self.members.get(a, ()):
                schedule(m, at)
            for m in joined.get(a, ()):
                schedule(m, at)

        def anchor_of(ident: Ident) -> Ident:
            a = overlay.get(ident)
            return a if a is not None else self.anchor[ident]

        if inserted is not None:
            queued.add(changed)
            heapq.heappush(heap, _order(inserted))
        if removed is not None and old_anchor is not None:
            make_dirty(old_anchor, _order(removed))

        while heap:
            uo = heapq.heappop(heap)
            ident = (uo[1], uo[2])
            u = self.live[ident]

            def members_of(a: Ident, uo: Order = uo) -> list[ReportVersion]:
                kept = [
                    m
                    for m in self.members.get(a, ())
                    if _order(m) < uo and m.ident not in overlay and m.ident != changed
                ]
                return kept + joined.get(a, [])

            nbs = neighbours(u)
            earlier = [n for n in nbs if n[2] < uo]
            new_a = self._decide(u, earlier, anchor_of, members_of)
            old_a = None if ident == changed else self.anchor[ident]
            overlay[ident] = new_a
            joined.setdefault(new_a, []).append(u)
            if new_a != old_a:
                make_dirty(new_a, uo)
                if old_a is not None:
                    make_dirty(old_a, uo)
            if new_a in dirty or old_a in dirty:
                schedule(u, uo)

        before: dict[Ident, Group] = {}
        after: dict[Ident, Group] = {}
        for a in dirty:
            old = self.members.get(a, [])
            new = [m for m in old if m.ident not in overlay and m.ident != changed]
            new.extend(joined.get(a, ()))
            new.sort(key=_order)
            if new:
                self.members[a] = new
            else:
                self.members.pop(a, None)
            if old != new:
                if old:
                    before[a] = tuple(old)
                if new:
                    after[a] = tuple(new)
        for ident, a in overlay.items():
            self.anchor[ident] = a
        if inserted is None:
            del self.anchor[changed]
        return Regroup(before, after)


def canonical_groups(
    reports: Iterable[ReportVersion], rule: LinkRule | None = None
) -> dict[Ident, Group]:
    """The canonical grouping of a set of reports of one zone, computed from scratch."""
    linker = ZoneLinker(rule)
    linker.load(reports)
    return linker.groups()
