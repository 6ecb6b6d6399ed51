"""Incidents within one zone: which reports describe one event (SPEC.md, "Incidents").

The pair rule (`LinkRule.fit`): two reports link when their sources differ, their categories
are compatible (equal, or both fire), their periods are within the window of each other (an
exact time is a point in time; a day-precision time the local calendar day containing it; a
week or month a span each side), and their places within the distance (haversine) widened by
both place precisions. An incident is a set of reports that pairwise link (complete
linkage), so it holds at most one report per source and a burst of separate events cannot
chain into one.

Which sets: the canonical assignment, in two steps. Precise reports (an exact time and a
point) are grouped best pair first (`cluster_precise`): each starts alone, and the two
incidents whose reports all link across and fit best are merged until no two can be. Then
the imprecise ones, in canonical order (those imprecise in time or place, then in both; each
by event time, source, report_id), each join the already formed incident they link with
completely and fit best, or start a new one. How well a report fits an incident
(`LinkRule.incident_score`): the mean of its pair fits with the incident's reports (a pair's
fit is the larger of the time gap beyond both periods and the distance, as shares of their
limits, plus a penalty for two different fire categories), plus a penalty for each piece of
evidence the report carries that none of the incident's reports agrees with: its exact
category, someone killed or wounded, the perpetrator and the target it names when it is not
a claim, the place it names, the time of day its text states. Ties: the incident whose first
report comes first. Evidence only chooses among incidents the report links with completely;
it never makes two reports link or unlink. That makes the grouping a function of the set of
current reports alone: any arrival order of the same reports, and any interleaving of their
revisions and withdrawals, ends with the same incidents. Precise reports first, so that an
imprecise report chooses among the incidents they formed rather than being decided at the
start of its day; best pair first among them, so that the reports of one event of a
flare-up find each other before a report of the event next to it does. In a chain (a
component of the precise link graph of more than `chain_limit` reports: a day of fire at one
place), reports link only within fixed time blocks, so that a change regroups the blocks it
touches rather than the chain; whether a component is a chain depends on the set alone.

Keeping it current is incremental (`ZoneLinker`): a change of a precise report groups its
component of the precise link graph again (before and after the change), and an incident
whose precise reports differ counts as changed below; then the change replays the greedy
decisions of imprecise reports in canonical order, but only for reports whose decision can
differ:

* the changed report;
* the later members of an incident whose membership differs (its decisions were made
  against the old incident);
* when an incident loses a member, gains one, or a new one starts, the later reports that
  link with all of its members and would fit it better than the incident they chose (a
  mean, and evidence a new member may agree with, can make an incident a better candidate
  when it gains a report, as well as when it loses one).

Every other report's choice is still its best, and it decides the same. (Most new reports
come after every report they link with: deciding them is then the whole replay.) Neighbours
are found through a time-bucket index per category class and time precision; a bucket (a
cell) holding more than `crowd_limit` reports is crowded: its reports are incidents alone
and no one's neighbours, which bounds the work of any change (a flood at one place and time)
and is still a function of the set. `canonical_groups` computes the same assignment from
scratch (recovery; the tests' reference).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Any

from schemas.codes import Category, LocationPrecision, Party, TimePrecision
from streams.record.chains import RemovedNear, at_level, to_regroup, units
from streams.record.model import Ident, ReportVersion

FIRE = frozenset({Category.SMALL_ARMS_FIRE, Category.HEAVY_WEAPONS_FIRE, Category.DRONE_STRIKE})

_EARTH_KM = 6371.0088  # mean Earth radius
_KM_PER_RADIAN = _EARTH_KM

#: How far an imprecise time may be from `occurred_at`, each side. Symmetric because senders
#: differ on whether a week- or month-precision time is the start or the middle of the
#: period. A day's is used only without `LinkRule.day_utc_offset_hours` (a day is then that
#: calendar day).
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


#: Compatibility is an equivalence: the fire family, or each other category alone.
_EXACT = TimePrecision.EXACT
_POINT = LocationPrecision.POINT
_PRECISIONS = tuple(TimePrecision)  # iterating the enum itself is slow on the hot path
_NO_CELLS: dict[int, list[Any]] = {}
_CLASS = {c: ("fire" if c in FIRE else c.value) for c in Category}
_UNKNOWN = Party.UNKNOWN.value


def category_class(c: Category) -> str:
    return _CLASS[c]


def compatible(a: Category, b: Category) -> bool:
    return category_class(a) == category_class(b)


Order = tuple[int, float, str, str]

#: A report as the pair rule reads it, flat and precomputed: time (the centre of its
#: period), latitude (radians), its cosine, longitude (radians), source, time half-width,
#: place widening, canonical order, category class, the report, its category.
_Entry = tuple[float, float, float, float, str, float, float, Order, str, ReportVersion, Category]

#: A linked neighbour: the report, its fit, its canonical order.
Neighbour = tuple[ReportVersion, float, Order]


def _order(r: ReportVersion) -> Order:
    """Canonical order: precise reports first (an exact time and a point), then those
    imprecise in one of time or place, then in both; within each, by time, source, id.
    Imprecise reports thus choose among the incidents precise ones formed, rather than
    being decided at the start of their day before the events of that day."""
    vague = (r.time_precision is not _EXACT) + (r.location_precision is not _POINT)
    return (vague, r.occurred, r.source, r.report_id)


def _precise(r: ReportVersion) -> bool:
    """An exact time and a point: grouped best pair first (`cluster_precise`)."""
    return r.time_precision is _EXACT and r.location_precision is _POINT


#: After every precise report and before every imprecise one in canonical order.
_AFTER_PRECISE: Order = (1, -math.inf, "", "")

Score = Callable[[ReportVersion, Sequence[float], Sequence[ReportVersion]], float]
#: A possible merge: its fit, both first reports' orders, both anchors and their versions.
Candidate = tuple[float, Order, Order, Ident, Ident, int, int]


def cluster_precise(
    reports: Iterable[ReportVersion],
    neighbours: Callable[[ReportVersion], list[Neighbour]],
    score: Score,
) -> list[list[ReportVersion]]:
    """The incidents of a set of precise reports (closed under linking, or a union of such
    sets: a connected component of the link graph), best pair first: starting with each
    report alone, merge the two incidents whose reports all link across and whose merge
    fits best, until no two can merge. Each incident in canonical order.

    How well two incidents fit (`merge_fit`): a report into an incident, its
    `incident_score` (a pair: the worse of the two ways, so evidence counts alike from
    each side); two incidents of several reports, the mean of their pair fits. Ties: the
    pair whose first reports come first. A function of the set, whatever its order.

    Why not the canonical order for these: a report decided in time order joins an
    incident of the event before its own when its own event's other reports come later;
    best pair first lets the reports of one event find each other first (flare-ups: 0.63
    / 0.74 -> 0.69 / 0.82 on seed 1, docs/record.md)."""
    members: dict[Ident, list[ReportVersion]] = {}
    of: dict[Ident, Ident] = {}
    for r in reports:
        members[r.ident] = [r]
        of[r.ident] = r.ident
    fits: dict[Ident, dict[Ident, float]] = {}
    for ident, (r,) in members.items():
        fits[ident] = {m.ident: f for m, f, _o in neighbours(r) if m.ident in members}
    if fits and all(len(near) == len(members) - 1 for near in fits.values()):
        # every pair links (so no two share a source): whatever the order, one incident;
        # most components are this (a report alone, a pair, one event's few reports)
        return [sorted((ms[0] for ms in members.values()), key=_order)]
    version: dict[Ident, int] = dict.fromkeys(members, 0)
    first: dict[Ident, Order] = {ident: _order(ms[0]) for ident, ms in members.items()}

    def merge_fit(a: list[ReportVersion], b: list[ReportVersion]) -> float | None:
        cross: list[float] = []
        for x in a:
            fx = fits[x.ident]
            for y in b:
                f = fx.get(y.ident)
                if f is None:
                    return None
                cross.append(f)
        if len(a) == 1:
            if len(b) == 1:
                return max(score(a[0], cross, b), score(b[0], cross, a))
            return score(a[0], cross, b)
        if len(b) == 1:
            return score(b[0], cross, a)
        return math.fsum(cross) / len(cross)

    def candidate(a: Ident, b: Ident) -> Candidate | None:
        f = merge_fit(members[a], members[b])
        if f is None:
            return None
        if first[b] < first[a]:
            a, b = b, a
        return (f, first[a], first[b], a, b, version[a], version[b])

    heap: list[Candidate] = []
    for ident, near in fits.items():
        for other in near:
            if first[ident] < first[other] and (c := candidate(ident, other)) is not None:
                heap.append(c)
    heapq.heapify(heap)
    merges = 0
    while heap:
        _f, _oa, _ob, a, b, va, vb = heapq.heappop(heap)
        if version.get(a) != va or version.get(b) != vb:
            continue  # one of them has merged since
        merged = sorted([*members.pop(a), *members.pop(b)], key=_order)
        del version[a], version[b]
        anchor = merged[0].ident
        merges += 1
        members[anchor] = merged
        version[anchor] = merges  # unique: a stale candidate never matches it
        first[anchor] = _order(merged[0])
        for m in merged:
            of[m.ident] = anchor
        for other in {of[n] for m in merged for n in fits[m.ident]} - {anchor}:
            if (c := candidate(anchor, other)) is not None:
                heapq.heappush(heap, c)
    return list(members.values())


def _perpetrator(r: ReportVersion) -> str | None:
    return None if r.perpetrator == _UNKNOWN else r.perpetrator


_TARGET = attrgetter("target")
_PLACE = attrgetter("place")


def _named_otherwise(
    value: str,
    members: Sequence[ReportVersion],
    get: Callable[[ReportVersion], str | None],
    *,
    claims_too: bool,
) -> bool:
    """Whether the members name this kind of evidence (`get`: None for none; a claim's
    only when `claims_too`) and none of them names `value`: an unmatched piece of evidence."""
    named = False
    for m in members:
        if not claims_too and m.claimant is not None:
            continue
        v = get(m)
        if v is not None:
            if v == value:
                return False
            named = True
    return named


#: The grouping algorithm's version: 2, precise reports best pair first (`cluster_precise`;
#: 1 was every report in canonical order). Bump it whenever the incidents of a set of
#: reports change under the same `LinkRule`: the record's changelog keeps it with the rule
#: (`changelog.encode_rule`) so that a recovery can tell a regrouping it must publish.
GROUPING = 2


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
    #: A day-precision time stands for the calendar day containing it at this UTC offset
    #: (the theatre's: Baku and Yerevan keep UTC+4), whatever hour of it the sender put
    #: (start of day, ACLED's noon UTC); None: widened by `time_widening[DAY]` each side.
    day_utc_offset_hours: float | None = 4.0
    #: Added to a pair's fit when its categories differ within the fire family: a report
    #: prefers the incident of its own category; it still links where nothing else fits.
    category_mismatch: float = 0.25
    #: Evidence beyond time, place and category, for choosing among the incidents a report
    #: links with completely (never for whether two reports link): added to its fit to an
    #: incident when none of the incident's reports agrees with it. Its exact category
    #: (within the fire family, "mortar fire" where a post heard bursts is common):
    unmatched_category: float = 0.25
    #: it reports someone killed or wounded, and none of them does (figures differ between
    #: sources; whether anyone was harmed much less):
    unmatched_harm: float = 0.5
    #: it is not a claim and names a party as perpetrator, and the incident's reports that
    #: are not claims name parties, none of them that one:
    unmatched_perpetrator: float = 0.25
    #: it is not a claim and names whom the fire hit (a party, `civilians`), and the
    #: incident's reports that are not claims name targets, none of them that one (a
    #: claim's target is mostly its claimant, whoever was hit):
    unmatched_target: float = 0.25
    #: it names a place (`location.place`), and the incident's reports name places, none of
    #: them that one (a report may name the next village rather than the nearest):
    unmatched_place: float = 0.25
    #: it is a day-precision report whose text states a time of day ("at around 14:30",
    #: "in the evening"), and the incident's times (exact ones, and the times of day other
    #: reports state) lie outside it; or it is an exact time outside the times of day the
    #: incident's texts state: this much times the nearest one's distance beyond it as a
    #: share of the window, at most this much (a statement's time is good to minutes, the
    #: parts of a day overlap at their ends):
    unmatched_time_of_day: float = 0.5
    #: Most reports of one index cell (category class, both precisions, a time bucket
    #: `window + widening` long, a latitude band `distance + widening` wide) that link at
    #: all; past it, the cell's reports are *crowded*: each is an incident alone. Bounds a
    #: change's work (a flood at one place and time); no real cell comes near.
    crowd_limit: int = 100
    #: Most reports of one component of the precise link graph (precise reports linked
    #: through one another) grouped as a whole. A larger one is a *chain* (a day of fire at
    #: one place, reported a minute apart): its reports link only within fixed time blocks
    #: `chain_block_seconds` long (aligned to the epoch), so that a change regroups the
    #: block pieces it touches rather than the chain (the work of a change was the chain's,
    #: its whole cost the square). A piece itself past the limit (a dense chain) links only
    #: within blocks a quarter as long, and so on (`chain_blocks`). None: no limit (every
    #: component whole, as before 2026-12). No simulated flare-up's component comes near (33
    #: reports at most, seeds 1-5).
    chain_limit: int | None = 100
    chain_block_seconds: float = 7200.0

    def chain_blocks(self) -> tuple[float, ...]:
        """The block lengths of a chain's levels, coarsest first (2 h, 30 min, 7.5 min):
        level k (from 1) links within blocks of `chain_blocks()[k - 1]`; the last is the
        finest, whatever its pieces' size (within a crowd cell's half hour at the defaults,
        so at most `crowd_limit` reports)."""
        b = self.chain_block_seconds
        return (b, b / 4, b / 16)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.distance_km <= 0:
            raise ValueError("the linking window and distance must be positive")
        if self.time_widening.get(_EXACT) != 0:
            raise ValueError("an exact time is not widened")
        if self.category_mismatch < 0 or self.crowd_limit < 1:
            raise ValueError("category_mismatch must be >= 0 and crowd_limit >= 1")
        if (self.chain_limit is not None and self.chain_limit < 1) or self.chain_block_seconds <= 0:
            raise ValueError("chain_limit must be >= 1 (or None) and chain_block_seconds > 0")
        if (
            min(
                self.unmatched_category,
                self.unmatched_harm,
                self.unmatched_perpetrator,
                self.unmatched_target,
                self.unmatched_place,
                self.unmatched_time_of_day,
            )
            < 0
        ):
            raise ValueError("the unmatched-evidence penalties must be >= 0")
        if self.day_utc_offset_hours is not None and not -12 <= self.day_utc_offset_hours <= 14:
            raise ValueError("day_utc_offset_hours must be a UTC offset (-12 to 14) or None")
        if set(self.time_widening) != set(TimePrecision) or min(self.time_widening.values()) < 0:
            raise ValueError("time_widening needs a non-negative value for every precision")
        if (
            set(self.place_widening_km) != set(LocationPrecision)
            or min(self.place_widening_km.values()) < 0
        ):
            raise ValueError("place_widening_km needs a non-negative value for every precision")

    def half_width(self, p: TimePrecision) -> float:
        """How far a time of precision p may be from the event, each side of its centre."""
        if p is TimePrecision.DAY and self.day_utc_offset_hours is not None:
            return 43_200.0
        return self.time_widening[p]

    def centre(self, r: ReportVersion) -> float:
        """The middle of the period r's time stands for: the local day's noon for a
        day-precision time, else the time itself."""
        if r.time_precision is TimePrecision.DAY and self.day_utc_offset_hours is not None:
            offset = self.day_utc_offset_hours * 3600.0
            return (r.occurred + offset) // 86_400.0 * 86_400.0 - offset + 43_200.0
        return r.occurred

    def entry(self, r: ReportVersion) -> _Entry:
        lat = math.radians(r.lat)
        tp = r.time_precision
        return (
            r.occurred if tp is _EXACT else self.centre(r),
            lat,
            math.cos(lat),
            math.radians(r.lon),
            r.source,
            0.0 if tp is _EXACT else self.half_width(tp),
            self.place_widening_km[r.location_precision],
            _order(r),
            category_class(r.category),
            r,
            r.category,
        )

    def pair_fit(self, a: _Entry, b: _Entry) -> float | None:
        """`fit` over entries. `ZoneLinker.neighbours` inlines the same arithmetic, in the
        same order, so both give bit-identical fits (and both are symmetric)."""
        if a[4] == b[4] or a[8] != b[8]:
            return None
        widened = a[5] + b[5]
        dt = abs(a[0] - b[0])
        if dt > self.window_seconds + widened:
            return None
        d_limit = self.distance_km + (a[6] + b[6])
        dp = abs(a[1] - b[1])
        if dp * _KM_PER_RADIAN > d_limit:
            return None
        h = math.sin(dp * 0.5) ** 2 + a[2] * b[2] * math.sin(abs(a[3] - b[3]) * 0.5) ** 2
        d = 2 * _KM_PER_RADIAN * math.asin(min(1.0, math.sqrt(h)))
        if d > d_limit:
            return None
        f = max(max(0.0, dt - widened) / self.window_seconds, d / d_limit)
        return f if a[10] is b[10] else f + self.category_mismatch

    def fit(self, a: ReportVersion, b: ReportVersion) -> float | None:
        """None when a and b do not link; else how tightly (smaller is tighter): the larger
        of the time gap beyond both reports' time uncertainty as a share of the window (a
        day-precision report's time says nothing within its day) and the distance as a
        share of its widened limit, plus `category_mismatch` for two fire categories."""
        return self.pair_fit(self.entry(a), self.entry(b))

    def links(self, a: ReportVersion, b: ReportVersion) -> bool:
        return self.fit(a, b) is not None

    def incident_score(
        self, u: ReportVersion, fits: Sequence[float], members: Sequence[ReportVersion]
    ) -> float:
        """How well u fits an incident it links with completely (smaller is better): the
        mean of its pair fits with the incident's `members` (`fits`, one each, any order),
        plus the unmatched-evidence penalties. The mean, not the worst pair: each pair's
        fit carries both reports' errors, and their mean says better how far u is from the
        event the members describe. `fsum`: the same value whatever the order of `fits`."""
        f = fits[0] if len(fits) == 1 else math.fsum(fits) / len(fits)
        if self.unmatched_category:
            category = u.category
            for m in members:
                if m.category is category:
                    break
            else:
                f += self.unmatched_category
        if self.unmatched_harm and (u.killed or u.wounded):
            for m in members:
                if m.killed or m.wounded:
                    break
            else:
                f += self.unmatched_harm
        # a claim's perpetrator and target are its claimant's say: they count only outside
        # claims, on both sides; a place counts whoever names it
        own = u.claimant is None
        if (
            self.unmatched_perpetrator
            and own
            and u.perpetrator != _UNKNOWN
            and _named_otherwise(u.perpetrator, members, _perpetrator, claims_too=False)
        ):
            f += self.unmatched_perpetrator
        if (
            self.unmatched_target
            and own
            and u.target is not None
            and _named_otherwise(u.target, members, _TARGET, claims_too=False)
        ):
            f += self.unmatched_target
        if (
            self.unmatched_place
            and u.place is not None
            and _named_otherwise(u.place, members, _PLACE, claims_too=True)
        ):
            f += self.unmatched_place
        if self.unmatched_time_of_day:
            f += self.unmatched_time_of_day * self._time_of_day_gap(u, members)
        return f

    def time_of_day_span(self, r: ReportVersion) -> tuple[float, float] | None:
        """The period r's time says, in unix seconds, when it is narrower than its
        precision's: an exact time's instant, or the time of day a day report's text states
        (None without a UTC offset for days: a time of day needs the day it is in)."""
        if r.time_precision is _EXACT:
            return (r.occurred, r.occurred)
        if (
            r.time_of_day is None
            or r.time_precision is not TimePrecision.DAY
            or self.day_utc_offset_hours is None
        ):
            return None
        midnight = self.centre(r) - 43_200.0
        return (midnight + r.time_of_day[0] * 60.0, midnight + r.time_of_day[1] * 60.0)

    def _time_of_day_gap(self, u: ReportVersion, members: Sequence[ReportVersion]) -> float:
        """How far the nearest of the members' times is from u's, as a share of the window,
        at most 1, where one of the two is a time of day a text states (two exact times are
        the pair fit's); 0 when no such pair."""
        stated = u.time_precision is not _EXACT
        if stated and u.time_of_day is None:
            return 0.0
        span: tuple[float, float] | None = None
        nearest = math.inf
        for m in members:
            if not stated and m.time_of_day is None:
                continue  # the common case, cheaply: an exact u and a member stating nothing
            other = self.time_of_day_span(m)
            if other is None:
                continue
            if span is None:
                span = self.time_of_day_span(u)
                if span is None:
                    return 0.0
            nearest = min(nearest, max(0.0, other[0] - span[1], span[0] - other[1]))
        return 0.0 if nearest == math.inf else min(1.0, nearest / self.window_seconds)

    def incident_fit(self, u: ReportVersion, members: Sequence[ReportVersion]) -> float | None:
        """`incident_score` of u for an incident of these members, or None when u does not
        link with every one of them (the plain way; the linker uses its precomputed fits)."""
        fits = []
        for m in members:
            f = self.fit(u, m)
            if f is None:
                return None
            fits.append(f)
        return self.incident_score(u, fits, members) if fits else None


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


# Kinds of work in the replay queue; at one point in canonical order, a report's decision
# comes before the check of an incident that lost a member there.
_DECIDE = 0
_LOST = 1


class ZoneLinker:
    """The current reports of one zone and their canonical grouping into incidents."""

    def __init__(self, rule: LinkRule | None = None) -> None:
        self.rule = rule or LinkRule()
        self.live: dict[Ident, ReportVersion] = {}
        #: anchor -> members in canonical order; every live report is in exactly one
        self.members: dict[Ident, list[ReportVersion]] = {}
        self.anchor: dict[Ident, Ident] = {}
        self._entries: dict[Ident, _Entry] = {}
        #: (category class, time precision) -> time bucket -> entries: a cell. Buckets are
        #: `window + half-width` long, so a point-time report looks into about three of
        #: each precision of its own category class. A cell of more than `rule.crowd_limit`
        #: entries is crowded: its reports link with nothing.
        self._index: dict[tuple[str, TimePrecision], dict[int, list[_Entry]]] = {}
        #: identity -> the cell holding its entry (the crowd check is its length)
        self._home: dict[Ident, list[_Entry]] = {}
        #: current reports in crowded cells (each an incident alone), kept as cells change
        self.crowded_reports = 0
        self._width = {p: self.rule.window_seconds + self.rule.half_width(p) for p in TimePrecision}
        self._half = {p: self.rule.half_width(p) for p in TimePrecision}
        #: entries of cells examined by `neighbours` (the work the crowd limit bounds)
        self.examined = 0
        #: decisions made by changes (the changed report's and the re-decided ones)
        self.decisions = 0
        #: precise reports known to be in a chain (a component of more than
        #: `rule.chain_limit`): sound, not complete. A change that only adds precise reports
        #: grows components, so a traversal reaching one of these stops there; a removal
        #: traverses what it split and clears the parts found small.
        self._large: set[Ident] = set()
        self._blocks = self.rule.chain_blocks()

    def __len__(self) -> int:
        return len(self.live)

    def groups(self) -> dict[Ident, Group]:
        return {a: tuple(m) for a, m in self.members.items()}

    # -- index ------------------------------------------------------------------------

    def _place(self, e: _Entry) -> tuple[tuple[str, TimePrecision], int]:
        tp = e[9].time_precision
        return (e[8], tp), int(e[0] // self._width[tp])

    def _cell_size(self, e: _Entry) -> int:
        """How many entries the cell of entry e holds now."""
        key, t = self._place(e)
        cell = self._index.get(key, _NO_CELLS).get(t)
        return 0 if cell is None else len(cell)

    def crowded(self, ident: Ident) -> bool:
        """Whether the current report `ident` is in a crowded cell (an incident alone)."""
        home = self._home.get(ident)
        return home is not None and len(home) > self.rule.crowd_limit

    def _index_add(self, r: ReportVersion, e: _Entry | None = None) -> None:
        e = e if e is not None and e[9] is r else self.rule.entry(r)
        self._entries[r.ident] = e
        key, t = self._place(e)
        cells = self._index.setdefault(key, {})
        # Lists, not dicts: most cells of a quiet zone hold a report or two.
        home = cells.get(t)
        if home is None:
            home = cells[t] = []
        home.append(e)
        self._home[r.ident] = home
        n, limit = len(home), self.rule.crowd_limit
        if n > limit:  # the cell's reports count from the moment it is crowded
            self.crowded_reports += n if n == limit + 1 else 1

    def _index_remove(self, r: ReportVersion) -> None:
        e = self._entries.pop(r.ident)
        home = self._home.pop(r.ident)
        n, limit = len(home), self.rule.crowd_limit
        if n > limit:  # ... until it falls to the limit
            self.crowded_reports -= n if n == limit + 1 else 1
        home.remove(e)
        if not home:
            key, t = self._place(e)
            cells = self._index[key]
            del cells[t]
            if not cells:
                del self._index[key]

    def neighbours(self, u: ReportVersion) -> list[Neighbour]:
        """Every current report that links with `u` (u itself excluded), with its fit.
        Nothing for a report of a crowded cell, nothing of one.

        `LinkRule.pair_fit`, inlined over the index: this loop is where the record spends
        most of its time."""
        rule = self.rule
        window = rule.window_seconds
        distance = rule.distance_km
        mismatch = rule.category_mismatch
        limit = rule.crowd_limit
        e = self._entries.get(u.ident)
        if e is None or e[9] is not u:  # u is not (this version of) a current report
            e = rule.entry(u)
        elif len(self._home[u.ident]) > limit:
            return []
        ut, ulat, ucos, ulon, usrc, utw, upw, _, ucls, _, ucat = e
        sin, asin, sqrt = math.sin, math.asin, math.sqrt
        out: list[Neighbour] = []
        examined = 0
        for p in _PRECISIONS:
            cells = self._index.get((ucls, p))
            if not cells:
                continue
            reach = window + (utw + self._half[p])
            width = self._width[p]
            lo = int((ut - reach) // width)
            hi = int((ut + reach) // width)
            # Loops, not comprehensions: a comprehension over `lo`, `hi` and `cells` made
            # them closure cells of this function, allocated on every call.
            chosen: list[list[_Entry]] = []
            if hi - lo + 1 > len(cells):
                for k, v in cells.items():
                    if lo <= k <= hi:
                        chosen.append(v)
            else:
                for k in range(lo, hi + 1):
                    found = cells.get(k)
                    if found is not None:
                        chosen.append(found)
            for bucket in chosen:
                if len(bucket) > limit:
                    continue  # crowded: its reports link with nothing
                examined += len(bucket)
                for t, lat, cos, lon, src, tw, pw, order, _, m, cat in bucket:
                    if src == usrc:
                        continue
                    widened = utw + tw
                    dt = abs(ut - t)
                    if dt > window + widened:
                        continue
                    d_limit = distance + (upw + pw)
                    dp = abs(ulat - lat)
                    if dp * _KM_PER_RADIAN > d_limit:
                        continue
                    h = sin(dp * 0.5) ** 2 + ucos * cos * sin(abs(ulon - lon) * 0.5) ** 2
                    d = 2 * _KM_PER_RADIAN * asin(min(1.0, sqrt(h)))
                    if d > d_limit:
                        continue
                    # = max(max(0, dt - widened) / window, d / d_limit), without the calls
                    f = d / d_limit
                    if dt > widened and (ft := (dt - widened) / window) > f:
                        f = ft
                    out.append((m, f if cat is ucat else f + mismatch, order))
        self.examined += examined
        return out

    # -- the decision -----------------------------------------------------------------

    def _decide(
        self,
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
        complete = []
        for a, fs in fits.items():
            members = members_of(a)
            # Every linked earlier neighbour filed under a is a member of a; equal counts
            # mean u links with all of them (which also rules out a second report of
            # u's source: reports of one source never link).
            if len(fs) == len(members):
                complete.append((a, fs, members))
        if len(complete) < 2:
            return complete[0][0] if complete else u.ident
        best: tuple[float, Order] | None = None
        choice = u.ident
        score = self.rule.incident_score
        for a, fs, members in complete:
            ranked = (score(u, fs, members), min(_order(m) for m in members))
            if best is None or ranked < best:
                best = ranked
                choice = a
        return choice

    # -- bulk ---------------------------------------------------------------------------

    def load(self, reports: Iterable[ReportVersion]) -> None:
        """Replace the state with these reports, grouped from scratch (recovery)."""
        self.live = {}
        self.members = {}
        self.anchor = {}
        self._entries = {}
        self._index = {}
        self._home = {}
        self._large = set()
        self.crowded_reports = 0
        for r in reports:
            if r.ident in self.live:
                raise ValueError(f"two versions of {r.ident}")
            self.live[r.ident] = r
            self._index_add(r)
        for group in self._group_all_precise():
            a = group[0].ident
            for m in group:
                self.anchor[m.ident] = a
            self.members[a] = group
        for u in sorted((r for r in self.live.values() if not _precise(r)), key=_order):
            uo = _order(u)
            earlier = [n for n in self.neighbours(u) if n[2] < uo]
            a = self._decide(u, earlier, self.anchor.__getitem__, self.members.__getitem__)
            self.anchor[u.ident] = a
            self.members.setdefault(a, []).append(u)

    def _group_all_precise(self) -> Iterable[list[ReportVersion]]:
        """The incidents of every precise report, component by component of the precise
        link graph; a chain's (`LinkRule.chain_limit`) with its links across time blocks cut."""
        limit = self.rule.chain_limit
        score = self.rule.incident_score
        near: dict[Ident, list[Neighbour]] = {}

        def precise_neighbours(r: ReportVersion) -> list[Neighbour]:
            found = near.get(r.ident)
            if found is None:
                found = near[r.ident] = [n for n in self.neighbours(r) if n[2][0] == 0]
            return found

        seen: set[Ident] = set()
        for r in self.live.values():
            if r.ident in seen or not _precise(r):
                continue
            seen.add(r.ident)
            component = [r]
            for x in component:  # (grows as it goes: a breadth-first traversal)
                for m, _f, _o in precise_neighbours(x):
                    if m.ident not in seen:
                        seen.add(m.ident)
                        component.append(m)
            if limit is not None and len(component) > limit:
                self._large.update(m.ident for m in component)
                for unit, level in units(component, precise_neighbours, limit, self._blocks):
                    linked = at_level(precise_neighbours, self._blocks, level)
                    yield from cluster_precise(unit, linked, score)
            else:
                yield from cluster_precise(component, precise_neighbours, score)
            for m in component:
                del near[m.ident]

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
        limit = self.rule.crowd_limit
        leaving = removed is not None and len(self._home[removed.ident]) > limit
        e = self.rule.entry(inserted) if inserted is not None else None
        entering = e is not None and self._cell_size(e) >= limit
        if not (leaving or entering):
            return self._replay(removed, inserted, e)
        steps: list[Regroup] = []
        if removed is not None:
            steps.append(self._crowd_remove(removed))
        if inserted is not None:
            steps.append(self._crowd_insert(inserted))
        return self._compose(steps)

    # -- crowded cells ------------------------------------------------------------------
    # A crowded cell's reports are each an incident alone and no one's neighbour, so they
    # come and go without a replay; only a cell crossing the limit replays, once per report
    # of the cell (at most `crowd_limit`), which keeps the work of any change bounded.

    def _inert_add(self, r: ReportVersion) -> None:
        self._index_add(r)
        self.live[r.ident] = r
        self.anchor[r.ident] = r.ident
        self.members[r.ident] = [r]

    def _inert_drop(self, r: ReportVersion) -> None:
        self._large.discard(r.ident)
        self._index_remove(r)
        del self.live[r.ident]
        del self.anchor[r.ident]
        del self.members[r.ident]

    def _crowd_remove(self, r: ReportVersion) -> Regroup:
        cell = self._home[r.ident]
        if len(cell) <= self.rule.crowd_limit:
            return self._replay(r, None)
        if len(cell) > self.rule.crowd_limit + 1:  # stays crowded
            self._inert_drop(r)
            return Regroup({r.ident: (r,)}, {})
        # The cell falls to the limit: its other reports link again.
        others = sorted((e[9] for e in cell if e[9] is not r), key=_order)
        steps = [Regroup({r.ident: (r,)}, {})]
        for x in [r, *others]:
            self._inert_drop(x)
        steps.extend(Regroup({x.ident: (x,)}, {}) for x in others)
        precise = [x for x in others if _precise(x)]
        if precise:  # together: one regrouping of their components
            steps.append(self._replay_precise([], precise))
        steps.extend(self._replay(None, x) for x in others if not _precise(x))
        return self._compose(steps)

    def _crowd_insert(self, r: ReportVersion) -> Regroup:
        e = self.rule.entry(r)
        size = self._cell_size(e)
        if size < self.rule.crowd_limit:
            return self._replay(None, r, e)
        if size == self.rule.crowd_limit:
            # The cell goes past the limit: its reports leave their incidents, latest first
            # (each then re-decides only what comes after it), and stay alone.
            key, t = self._place(e)
            cell = self._index[key][t]
            others = sorted((x[9] for x in cell), key=_order, reverse=True)
            precise = [x for x in others if _precise(x)]
            steps = [self._replay_precise(precise, [])] if precise else []
            steps.extend(self._replay(x, None) for x in others if not _precise(x))
            for x in others:
                self._inert_add(x)
                steps.append(Regroup({}, {x.ident: (x,)}))
        else:
            steps = []
        self._inert_add(r)
        steps.append(Regroup({}, {r.ident: (r,)}))
        return self._compose(steps)

    def _compose(self, steps: list[Regroup]) -> Regroup:
        """One Regroup for consecutive steps: each anchor's members before the first and
        after the last, where they differ."""
        before: dict[Ident, Group] = {}
        touched: set[Ident] = set()
        for rg in steps:
            for a, g in rg.before.items():
                if a not in touched:
                    before[a] = g
            touched.update(rg.before, rg.after)
        after = {a: tuple(self.members[a]) for a in touched if a in self.members}
        for a in touched:
            if before.get(a) == after.get(a):
                before.pop(a, None)
                after.pop(a, None)
        return Regroup(before, after)

    def _replay(
        self,
        removed: ReportVersion | None,
        inserted: ReportVersion | None,
        entry: _Entry | None = None,
    ) -> Regroup:
        target = inserted if inserted is not None else removed
        if target is None:
            return Regroup({}, {})
        changed = target.ident
        old_anchor = self.anchor.get(changed) if removed is not None else None
        # Precise reports are grouped by component: the ones a precise change may regroup
        # are those linked to it through precise reports, before and after it.
        removed_near: RemovedNear = {}
        if removed is not None and _precise(removed):
            removed_near[changed] = (removed, self._precise_neighbours(removed))
        if removed is not None:
            self._index_remove(removed)
            del self.live[changed]
        if inserted is not None:
            self._index_add(inserted, entry)
            self.live[changed] = inserted
        # The index does not change during the replay: neighbours once per report (keyed by
        # object: the removed and the inserted version share an identity).
        cache: dict[int, list[Neighbour]] = {}
        inserted_precise = [inserted] if inserted is not None and _precise(inserted) else []
        if removed is None and inserted is not None:
            found = cache[id(inserted)] = self.neighbours(inserted)
            if not found:
                # A new report linking with no one starts an incident alone, and no other
                # report's candidates change: the replay below would decide just that. Most
                # changes are this; skipping the replay's set-up halves their cost.
                self.decisions += 1
                self.anchor[changed] = changed
                self.members[changed] = [inserted]
                return Regroup({}, {changed: (inserted,)})
            # A new report after every report it links with, and after every member of
            # their incidents, in canonical order (most arrive so): no later report links
            # with it, and no incident it joins has a later member, so no one else's
            # decision can change; deciding it is all the replay below would do.
            uo = _order(inserted)
            anchor, members = self.anchor, self.members
            for n in found:
                if uo[0] == 0 or not (n[2] < uo and _order(members[anchor[n[0].ident]][-1]) < uo):
                    break  # (a precise report regroups its component)
            else:
                self.decisions += 1
                a = self._decide(inserted, found, anchor.__getitem__, members.__getitem__)
                anchor[changed] = a
                if a == changed:
                    members[a] = [inserted]
                    return Regroup({}, {a: (inserted,)})
                old_group = tuple(members[a])
                members[a].append(inserted)
                return Regroup({a: old_group}, {a: (*old_group, inserted)})
        return self._regroup(
            removed, inserted, changed, old_anchor, cache, {changed}, removed_near, inserted_precise
        )

    def _precise_neighbours(self, r: ReportVersion) -> list[ReportVersion]:
        return [m for m, _f, o in self.neighbours(r) if o[0] == 0]

    def _replay_precise(
        self, removed: list[ReportVersion], inserted: list[ReportVersion]
    ) -> Regroup:
        """Several precise reports leave or come at once, regrouped in one step (a cell
        crossing the crowd limit): one at a time, each would group their component again,
        a cube of the cell's size in all."""
        removed_near: RemovedNear = {r.ident: (r, self._precise_neighbours(r)) for r in removed}
        for r in removed:
            self._index_remove(r)
            del self.live[r.ident]
        for r in inserted:
            self._index_add(r)
            self.live[r.ident] = r
        gone = {r.ident for r in removed} | {r.ident for r in inserted}
        first = (removed or inserted)[0].ident
        return self._regroup(None, None, first, None, {}, gone, removed_near, inserted)

    def _regroup(
        self,
        removed: ReportVersion | None,
        inserted: ReportVersion | None,
        changed: Ident,
        old_anchor: Ident | None,
        cache: dict[int, list[Neighbour]],
        gone: set[Ident],
        removed_near: RemovedNear,
        inserted_precise: list[ReportVersion],
    ) -> Regroup:
        """The replay proper, for what `_replay`'s shortcuts do not decide (the index holds
        the change already). Apart from them because its closures make their variables
        cells, which cost every call of the function that holds them. `gone`: the changed
        identities (one, or a batch of precise ones: `_replay_precise`); `removed_near`
        and `inserted_precise`: the precise reports among them (a removed one with its
        precise neighbours before the change), whose components are grouped again first."""
        rule = self.rule
        score = rule.incident_score
        pair_fit = rule.pair_fit
        entries = self._entries

        overlay: dict[Ident, Ident] = {}  # re-decided report -> its anchor now
        joined: dict[Ident, list[ReportVersion]] = {}  # anchor -> re-decided members, in order
        #: anchors whose membership differs from before -> from where in canonical order
        dirty: dict[Ident, Order] = {}
        queue: list[tuple[Order, int, Ident]] = []
        queued: set[Ident] = set()

        def neighbours(r: ReportVersion) -> list[Neighbour]:
            found = cache.get(id(r))
            if found is None:
                found = cache[id(r)] = self.neighbours(r)
            return found

        def push(ident: Ident, order: Order) -> None:
            if ident not in queued:
                queued.add(ident)
                heapq.heappush(queue, (order, _DECIDE, ident))

        def anchor_of(ident: Ident) -> Ident:
            a = overlay.get(ident)
            return a if a is not None else self.anchor[ident]

        def members_of(a: Ident, before: Order) -> list[ReportVersion]:
            """Incident a as the replay has it so far: members before `before`."""
            kept = [
                m
                for m in self.members.get(a, ())
                if m.ident not in gone and m.ident not in overlay and entries[m.ident][7] < before
            ]
            return kept + joined.get(a, [])

        def diverged(a: Ident, at: Order) -> None:
            """Incident a differs from `at` on: its later members decide again."""
            since = dirty.get(a)
            if since is not None and since <= at:
                return
            dirty[a] = at
            for m in self.members.get(a, ()):
                mo = _order(m)
                if mo > at and m.ident not in gone:  # (changed ones are placed apart)
                    push(m.ident, mo)

        def recheck(a: Ident, via: ReportVersion, at: Order) -> None:
            """Incident a changed at `at` (it lost a member, or gained `via`, or started
            with it; `via` is one of its members now): a later report linking with all of it
            (so with `via`) decides again if it would now fit it better than the incident
            it chose. A gain can make an incident a better candidate too (a mean, and
            evidence one more report may agree with)."""
            later = [(v, vo) for v, _f, vo in neighbours(via) if vo > at and v.ident not in queued]
            if not later:
                return
            # Incident a as the replay has it: its re-decided members, and the others as
            # they were (a later one that leaves it re-checks again).
            view = [
                (entries[m.ident], m)
                for m in self.members.get(a, ())
                if m.ident not in overlay and m.ident not in gone
            ]
            view.extend((entries[m.ident], m) for m in joined.get(a, ()))
            for v, vo in later:
                ve = entries[v.ident]
                members: list[ReportVersion] = []
                fits: list[float] = []
                first: Order | None = None
                for me, m in view:
                    mo = me[7]
                    if mo >= vo:
                        continue
                    f = pair_fit(ve, me)
                    if f is None:
                        break
                    members.append(m)
                    fits.append(f)
                    if first is None or mo < first:
                        first = mo
                else:
                    if first is None:
                        continue
                    chosen = chosen_score(v, ve, vo)
                    if chosen[0] == math.inf or (score(v, fits, members), first) < chosen:
                        push(v.ident, vo)

        chosen_scores: dict[Ident, tuple[float, Order]] = {}

        def chosen_score(v: ReportVersion, ve: _Entry, vo: Order) -> tuple[float, Order]:
            """The score of the incident an undecided report chose (unchanged before it:
            a change there would have queued it; so it holds for the whole replay)."""
            known = chosen_scores.get(v.ident)
            if known is not None:
                return known
            a = self.anchor[v.ident]
            result: tuple[float, Order] = (math.inf, vo)  # its own: any candidate wins
            if a != v.ident:
                members = []
                fits = []
                linked = True
                for m in self.members[a]:
                    # The changed report there is after v (else v would be queued).
                    if m.ident in gone or entries[m.ident][7] >= vo:
                        break
                    f = pair_fit(ve, entries[m.ident])
                    if f is None:
                        linked = False
                        break
                    members.append(m)
                    fits.append(f)
                if linked and fits:
                    result = (score(v, fits, members), entries[members[0].ident][7])
            chosen_scores[v.ident] = result
            return result

        def lost(a: Ident, at: Order) -> None:
            rest = members_of(a, at)
            if rest:
                recheck(a, rest[0], at)

        if removed_near or inserted_precise:  # they and those linked to them: grouped again
            self._regroup_precise(
                gone, removed_near, inserted_precise, neighbours, overlay, joined, diverged, recheck
            )
        if inserted is not None and not _precise(inserted):
            push(changed, _order(inserted))
        if removed is not None and old_anchor is not None and not _precise(removed):
            ro = _order(removed)
            diverged(old_anchor, ro)
            heapq.heappush(queue, (ro, _LOST, old_anchor))

        while queue:
            uo, kind, ident = heapq.heappop(queue)
            if kind == _LOST:
                lost(ident, uo)
                continue
            self.decisions += 1
            u = self.live[ident]
            earlier = [n for n in neighbours(u) if n[2] < uo]
            new_a = self._decide(u, earlier, anchor_of, partial(members_of, before=uo))
            old_a = None if ident == changed else self.anchor[ident]
            overlay[ident] = new_a
            joined.setdefault(new_a, []).append(u)
            if new_a == old_a:
                continue
            diverged(new_a, uo)
            recheck(new_a, u, uo)  # it gained u, or starts with u
            if old_a is not None:
                diverged(old_a, uo)
                lost(old_a, uo)

        before: dict[Ident, Group] = {}
        after: dict[Ident, Group] = {}
        for a in dirty:
            old = self.members.get(a, [])
            new = [m for m in old if m.ident not in overlay and m.ident not in gone]
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
        for ident in gone:
            if ident not in self.live:
                del self.anchor[ident]
        return Regroup(before, after)

    def _regroup_precise(
        self,
        gone: set[Ident],
        removed_near: RemovedNear,
        inserted: list[ReportVersion],
        neighbours: Callable[[ReportVersion], list[Neighbour]],
        overlay: dict[Ident, Ident],
        joined: dict[Ident, list[ReportVersion]],
        diverged: Callable[[Ident, Order], None],
        recheck: Callable[[Ident, ReportVersion, Order], None],
    ) -> None:
        """Group again the precise reports whose incidents the change can alter (the
        replay's first step: they come before every imprecise report). An incident whose
        precise reports differ has its imprecise ones decide again (`diverged`), and the
        imprecise reports that would now fit it better do too (`recheck`).

        Which reports (`chains.to_regroup`): the components of the precise link graph the change
        touches, before and after it, where they hold at most `chain_limit` reports; of a
        chain, the block pieces (reports of one time block linked within it) the change
        touches, and whole any part that was a small component before it."""
        near: dict[Ident, list[Neighbour]] = {}

        def precise_neighbours(r: ReportVersion) -> list[Neighbour]:
            found = near.get(r.ident)
            if found is None:  # from the replay's (cached) neighbours: most are asked again
                found = near[r.ident] = [n for n in neighbours(r) if n[2][0] == 0]
            return found

        limit = math.inf if self.rule.chain_limit is None else self.rule.chain_limit
        regroup, levels = to_regroup(
            self.live,
            self._large,
            limit,
            self._blocks,
            gone,
            removed_near,
            inserted,
            precise_neighbours,
        )
        before: dict[Ident, list[ReportVersion]] = {}
        # (the changed reports' incidents too: a removed report is not among them)
        for a in {self.anchor[i] for i in [*regroup, *gone] if i in self.anchor}:
            before[a] = [m for m in self.members[a] if _precise(m)]
        after: dict[Ident, list[ReportVersion]] = {}
        score = self.rule.incident_score
        linked: Callable[[ReportVersion], list[Neighbour]] = precise_neighbours
        if levels:
            at = [
                at_level(precise_neighbours, self._blocks, k) for k in range(len(self._blocks) + 1)
            ]

            def linked(r: ReportVersion) -> list[Neighbour]:
                return at[levels.get(r.ident, 0)](r)

        for group in cluster_precise(regroup.values(), linked, score):
            a = group[0].ident
            after[a] = group
            joined[a] = list(group)
            for m in group:
                overlay[m.ident] = a
        moved = [a for a in {*before, *after} if before.get(a) != after.get(a)]
        for a in moved:
            diverged(a, _AFTER_PRECISE)
        for a in moved:
            if a in after:
                recheck(a, after[a][0], _AFTER_PRECISE)

    # -- cold storage (streams/record/archive.py) ---------------------------------------
    # Closing and reopening move whole incidents out and back without deciding anything:
    # the book reopens every closed day within a change's reach before the change, so the
    # replay sees what it would have seen had nothing been closed.

    def detach(self, anchor: Ident) -> list[ReportVersion]:
        """Take an incident out as it is; its reports in canonical order (anchor first)."""
        members = self.members.pop(anchor)
        self._large.clear()  # components shrink: which are chains is found again
        for m in members:
            self._index_remove(m)
            del self.live[m.ident]
            del self.anchor[m.ident]
        return members

    def attach(self, members: list[ReportVersion]) -> None:
        """Put back an incident `detach` took out."""
        anchor = members[0].ident
        for m in members:
            if m.ident in self.live:
                raise ValueError(f"{m.ident} is already current")
            self._index_add(m)
            self.live[m.ident] = m
            self.anchor[m.ident] = anchor
        self.members[anchor] = members


def canonical_groups(
    reports: Iterable[ReportVersion], rule: LinkRule | None = None
) -> dict[Ident, Group]:
    """The canonical grouping of a set of reports of one zone, computed from scratch."""
    linker = ZoneLinker(rule)
    linker.load(reports)
    return linker.groups()
