"""Linking rules, one by one, and the incremental grouping against the plain reference."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterator

import pytest

from schemas.codes import Category, LocationPrecision, TimePrecision
from streams.record.linking import LinkRule, ZoneLinker, canonical_groups
from streams.record.model import Ident, ReportVersion
from tests.record_helpers import MIN, reference_groups, rv

RULE = LinkRule()


def grouping(linker: ZoneLinker) -> set[frozenset[Ident]]:
    return {frozenset(m.ident for m in members) for members in linker.members.values()}


def random_changes(
    linker: ZoneLinker,
    rng: random.Random,
    *,
    steps: int,
    ids: int,
    removals: float,
    report: Callable[[str, int], ReportVersion],
) -> Iterator[dict[str, ReportVersion]]:
    """`steps` random changes to `linker`, each an upsert of `report(rid, step)` for a
    random rid or, at the rate `removals`, the removal of a current report; yields the
    current reports after each."""
    current: dict[str, ReportVersion] = {}
    for step in range(steps):
        rid = str(rng.randrange(ids))
        if current and rng.random() < removals:
            linker.remove(current.pop(rng.choice(sorted(current))).ident)
        else:
            current[rid] = r = report(rid, step)
            linker.upsert(r)
        yield current


def check_from_scratch(linker: ZoneLinker, current: dict[str, ReportVersion]) -> set[Ident]:
    """The linker groups the current reports as the reference does (crowded ones alone) and
    as `canonical_groups` does; returns the crowded ones."""
    rule = linker.rule
    crowded = {r.ident for r in current.values() if linker.crowded(r.ident)}
    free = [r for r in current.values() if r.ident not in crowded]
    assert grouping(linker) == reference_groups(free, rule) | {frozenset({i}) for i in crowded}
    assert grouping(linker) == {
        frozenset(m.ident for m in g) for g in canonical_groups(current.values(), rule).values()
    }
    return crowded


def groups_of(*reports: ReportVersion) -> set[frozenset[Ident]]:
    return {frozenset(m.ident for m in g) for g in canonical_groups(reports).values()}


def test_window_is_thirty_minutes() -> None:
    assert RULE.links(rv("a", "1"), rv("b", "1", t=30 * MIN))
    assert not RULE.links(rv("a", "1"), rv("b", "1", t=31 * MIN))


#: rv's t=0 is 2023-11-14T22:13:20Z, 02:13:20 on 15 November at UTC+4: that local day runs
#: from t = -8,000 s to t = 78,400 s.
DAY_START, DAY_END = -8_000.0, 78_400.0


def test_a_day_precision_time_stands_for_its_local_day() -> None:
    day = rv("acled", "1", t=0, time_precision=TimePrecision.DAY)
    assert RULE.links(day, rv("op", "1", t=DAY_START - 29 * MIN))
    assert RULE.links(day, rv("op", "1", t=DAY_END + 29 * MIN))
    assert not RULE.links(day, rv("op", "1", t=DAY_START - 31 * MIN))
    assert not RULE.links(day, rv("op", "1", t=DAY_END + 31 * MIN))
    # Whichever hour of the day the sender put (start of day, ACLED's noon UTC):
    later = rv("media", "1", t=DAY_END - 60, time_precision=TimePrecision.DAY)
    assert RULE.centre(later) == RULE.centre(day)
    # Within its day the time says nothing: the fit is the distance's.
    assert RULE.fit(day, rv("op", "1", t=DAY_START, km=1.5)) == pytest.approx(0.5)
    assert RULE.fit(day, rv("op", "1", t=DAY_END - 1, km=1.5)) == pytest.approx(0.5)
    # Two days' reports link only when the days touch (within the window).
    next_day = rv("ngo", "1", t=DAY_END + 3600, time_precision=TimePrecision.DAY)
    two_days_on = rv("ngo", "2", t=DAY_END + 86_400 + 3600, time_precision=TimePrecision.DAY)
    assert RULE.links(day, next_day) and not RULE.links(day, two_days_on)


def test_without_a_utc_offset_a_day_widens_the_window_by_a_day_each_side() -> None:
    rule = LinkRule(day_utc_offset_hours=None)
    day = rv("acled", "1", t=0, time_precision=TimePrecision.DAY)
    assert rule.links(day, rv("op", "1", t=24 * 3600 + 29 * MIN))
    assert not rule.links(day, rv("op", "1", t=24 * 3600 + 31 * MIN))
    assert rule.links(day, rv("op", "1", t=-24 * 3600 - 29 * MIN))


def test_time_precision_widens_the_window() -> None:
    month = rv("acled", "2", time_precision=TimePrecision.MONTH)
    assert RULE.links(month, rv("op", "2", t=20 * 86_400))
    assert RULE.links(month, rv("op", "2", t=-20 * 86_400))


def test_distance_is_three_km() -> None:
    assert RULE.links(rv("a", "1"), rv("b", "1", km=2.9))
    assert not RULE.links(rv("a", "1"), rv("b", "1", km=3.1))


def test_place_precision_widens_the_distance() -> None:
    town = rv("media", "1", location_precision=LocationPrecision.TOWN)
    assert RULE.links(town, rv("op", "1", km=7.9))
    assert not RULE.links(town, rv("op", "1", km=8.1))
    region = rv("media", "2", location_precision=LocationPrecision.REGION)
    assert RULE.links(region, rv("op", "2", km=27))


def test_a_report_prefers_the_incident_of_its_own_fire_category() -> None:
    # c (heavy) is nearer in time to a (small arms) than to b (heavy); the category decides.
    b = rv("s1", "b", t=0, category=Category.HEAVY_WEAPONS_FIRE)
    a = rv("s1", "a", t=2 * MIN, category=Category.SMALL_ARMS_FIRE)
    c = rv("s2", "c", t=3 * MIN, category=Category.HEAVY_WEAPONS_FIRE)
    assert groups_of(a, b, c) == {frozenset({a.ident}), frozenset({b.ident, c.ident})}
    plain = LinkRule(category_mismatch=0.0, unmatched_category=0.0)
    assert {frozenset(m.ident for m in g) for g in canonical_groups([a, b, c], plain).values()} == {
        frozenset({a.ident, c.ident}),
        frozenset({b.ident}),
    }
    # Alone, a pair of fire categories still links.
    assert RULE.fit(a, c) == pytest.approx(1 / 30 + RULE.category_mismatch)


def test_categories_link_when_equal_or_both_fire() -> None:
    small = rv("a", "1", category=Category.SMALL_ARMS_FIRE)
    assert RULE.links(small, rv("b", "1", category=Category.DRONE_STRIKE))
    assert RULE.links(small, rv("b", "1", category=Category.HEAVY_WEAPONS_FIRE))
    assert not RULE.links(small, rv("b", "1", category=Category.AIRSPACE_VIOLATION))
    air = rv("a", "2", category=Category.AIRSPACE_VIOLATION)
    assert RULE.links(air, rv("b", "2", category=Category.AIRSPACE_VIOLATION))
    assert not RULE.links(air, rv("b", "2", category=Category.ENGINEERING_WORKS))


def test_reports_of_one_source_never_link() -> None:
    assert not RULE.links(rv("op", "1"), rv("op", "2"))
    a, b, c = rv("op1", "a"), rv("op2", "b", t=MIN), rv("op1", "c", t=2 * MIN)
    assert groups_of(a, b, c) == {frozenset({a.ident, b.ident}), frozenset({c.ident})}


def test_a_burst_does_not_chain_into_one_incident() -> None:
    # A~B and B~C, but A and C are 40 minutes apart.
    a, b, c = rv("s1", "a"), rv("s2", "b", t=20 * MIN), rv("s3", "c", t=40 * MIN)
    assert RULE.links(a, b) and RULE.links(b, c) and not RULE.links(a, c)
    assert groups_of(a, b, c) == {frozenset({a.ident, b.ident}), frozenset({c.ident})}
    # The same holds in space: 0, 2 and 4 km along a line.
    d, e, f = rv("s1", "d", km=0), rv("s2", "e", km=2), rv("s3", "f", km=4)
    assert len(groups_of(d, e, f)) == 2


def test_grouping_does_not_depend_on_arrival_order() -> None:
    reports = [
        rv("s1", "a"),
        rv("s2", "b", t=10 * MIN, km=1),
        rv("s3", "c", t=25 * MIN, km=2),
        rv("s1", "d", t=35 * MIN, km=2.5),
        rv("s2", "e", t=45 * MIN),
        rv("s4", "f", t=15 * MIN, km=3.5),
    ]
    expected = reference_groups(reports, RULE)
    assert len(expected) > 1
    for perm in itertools.permutations(reports):
        linker = ZoneLinker()
        for r in perm:
            linker.upsert(r)
        assert grouping(linker) == expected


def test_a_report_joins_the_formed_incident_it_fits_best() -> None:
    # c links with both single-report incidents formed before it; the nearer in time wins.
    a = rv("s1", "a", t=0)
    b = rv("s1", "b", t=20 * MIN)  # same source as a: two incidents
    c = rv("s2", "c", t=22 * MIN)
    assert groups_of(a, b, c) == {frozenset({a.ident}), frozenset({b.ident, c.ident})}


def test_precise_reports_pair_best_first_not_in_time_order() -> None:
    # Decided in event-time order (before 2026-11-30), c came before b, so it joined a
    # although b, three minutes away, fits it better. Best pair first, c goes with b.
    a = rv("s1", "a", t=0)
    b = rv("s1", "b", t=25 * MIN)
    c = rv("s2", "c", t=22 * MIN)
    assert groups_of(a, b, c) == {frozenset({a.ident}), frozenset({b.ident, c.ident})}


def test_a_flare_up_pairs_each_event_s_reports() -> None:
    # Two shellings 10 minutes and 1.5 km apart, both heard by one post (s1), each timed
    # by a sensor (s3, s4). In time order the second's sensor (q2, 8 min) came before its
    # post report (p2) and joined the first event's pair, the only incident formed; best
    # pair first, q2 and p2 pair, and the post's two reports keep the events apart.
    p1 = rv("s1", "p1", t=0, km=0)
    q1 = rv("s3", "q1", t=0.1 * MIN, km=0.1)
    q2 = rv("s4", "q2", t=8 * MIN, km=1.5)
    p2 = rv("s1", "p2", t=10 * MIN, km=1.6)
    expected = {frozenset({p1.ident, q1.ident}), frozenset({q2.ident, p2.ident})}
    assert groups_of(p1, q1, q2, p2) == expected
    assert groups_of(p2, q2, q1, p1) == expected
    linker = ZoneLinker()
    for r in (p2, q1, p1, q2):
        linker.upsert(r)
    assert {frozenset(m.ident for m in g) for g in linker.groups().values()} == expected


def test_a_revision_that_moves_a_report_regroups_it() -> None:
    linker = ZoneLinker()
    a, b, c = rv("s1", "a"), rv("s2", "b", t=5 * MIN), rv("s3", "c", t=10 * MIN)
    for r in (a, b, c):
        linker.upsert(r)
    assert grouping(linker) == {frozenset({a.ident, b.ident, c.ident})}
    moved = rv("s2", "b", t=3 * 3600, revision=1)
    rg = linker.upsert(moved)
    assert grouping(linker) == {frozenset({a.ident, c.ident}), frozenset({b.ident})}
    assert set(rg.before) == {a.ident}
    assert set(rg.after) == {a.ident, b.ident}
    # Moving it back restores the incident.
    linker.upsert(rv("s2", "b", t=5 * MIN, revision=2))
    assert grouping(linker) == {frozenset({a.ident, b.ident, c.ident})}


def test_a_late_earlier_report_heads_the_incident() -> None:
    linker = ZoneLinker()
    b = rv("s2", "b", t=10 * MIN)
    linker.upsert(b)
    a = rv("s1", "a", t=0)
    rg = linker.upsert(a)
    assert rg.before == {b.ident: (b,)}
    assert rg.after == {a.ident: (a, b)}


def test_a_removal_lets_two_incidents_merge() -> None:
    linker = ZoneLinker()
    p, r, q = rv("s1", "p"), rv("s2", "r", t=10 * MIN), rv("s2", "q", t=20 * MIN)
    for x in (p, r, q):
        linker.upsert(x)
    assert grouping(linker) == {frozenset({p.ident, r.ident}), frozenset({q.ident})}
    rg = linker.remove(r.ident)
    assert grouping(linker) == {frozenset({p.ident, q.ident})}
    assert rg.after == {p.ident: (p, q)}
    assert set(rg.before) == {p.ident, q.ident}


def test_a_late_bridging_report_merges_two_incidents() -> None:
    # Before: {p, r} and {q} (r and q share a source; p and r fit better, 0.6, than p and
    # q, 0.67). x arrives late, fits q (0.33) and p (0.43) but is 3.1 km from r: x and q
    # pair first, p fits them better (0.55) than r: the canonical grouping becomes
    # {p, x, q} and {r}; q's incident is merged into the older p's.
    p = rv("s1", "p", t=0, km=0)
    r = rv("s2", "r", t=10 * MIN, km=-1.8)
    q = rv("s2", "q", t=20 * MIN, km=1)
    x = rv("s3", "x", t=10 * MIN, km=1.3)
    linker = ZoneLinker()
    for y in (p, r, q):
        linker.upsert(y)
    assert grouping(linker) == {frozenset({p.ident, r.ident}), frozenset({q.ident})}
    rg = linker.upsert(x)
    assert grouping(linker) == {frozenset({p.ident, x.ident, q.ident}), frozenset({r.ident})}
    assert rg.after[p.ident] == (p, x, q)
    assert q.ident in rg.before and q.ident not in rg.after


def test_incremental_grouping_equals_the_reference_on_random_streams() -> None:
    rng = random.Random(20201110)
    for _ in range(150):
        linker = ZoneLinker()
        n_sources = rng.randint(2, 6)

        def report(rid: str, step: int, n_sources: int = n_sources) -> ReportVersion:
            return rv(
                f"s{int(rid) % n_sources}",
                rid,
                revision=step,
                t=rng.randrange(0, 4 * 3600, 300),
                km=rng.uniform(0, 6),
                category=rng.choice(
                    [Category.SMALL_ARMS_FIRE, Category.DRONE_STRIKE, Category.OTHER]
                ),
                time_precision=rng.choice([TimePrecision.EXACT] * 5 + [TimePrecision.DAY]),
                location_precision=rng.choice(
                    [*LocationPrecision, LocationPrecision.POINT, LocationPrecision.POINT]
                ),
            )

        changes = random_changes(linker, rng, steps=50, ids=25, removals=0.15, report=report)
        for current in changes:
            assert grouping(linker) == reference_groups(current.values(), RULE)
        for anchor, members in linker.members.items():
            assert members[0].ident == anchor
            assert all(linker.anchor[m.ident] == anchor for m in members)
        assert set(linker.anchor) == set(linker.live)


def test_rule_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        LinkRule(window_seconds=0)
    with pytest.raises(ValueError):
        LinkRule(time_widening={TimePrecision.EXACT: 0.0})
    wide = LinkRule(window_seconds=3600, distance_km=10)
    assert wide.links(rv("a", "1"), rv("b", "1", t=59 * MIN, km=9))


# -- crowded cells: bounded work per change ----------------------------------------------------
def flood(n: int, sources: int = 3) -> list[ReportVersion]:
    """n reports of `sources` sources at one point and one second; ids hashed, so that each
    arrives somewhere in the middle of the canonical order (the worst case)."""
    return [
        rv(f"s{i % sources}", hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest())
        for i in range(n)
    ]


def test_a_crowded_cell_links_nothing_until_it_falls_to_the_limit() -> None:
    rule = LinkRule(crowd_limit=4)
    linker = ZoneLinker(rule)
    reports = flood(5)
    for r in reports[:4]:
        linker.upsert(r)
    assert len(linker.members) == 2  # {s0, s1, s2} and {s0}: linked as usual
    rg = linker.upsert(reports[4])  # the fifth: the cell is crowded, each report alone
    assert grouping(linker) == {frozenset({r.ident}) for r in reports}
    assert all(linker.crowded(r.ident) for r in reports)
    assert linker.crowded_reports == 5
    # What changed: {s0, s1, s2} split up, the fifth arrived; the lone s0 stays as it was.
    assert set(rg.after) == {reports[i].ident for i in (0, 1, 2, 4)}
    assert set(rg.before) == {reports[0].ident}
    # Reports elsewhere in the zone still link.
    far = [rv("s1", "x", t=3 * 3600), rv("s2", "y", t=3 * 3600 + MIN)]
    for r in far:
        linker.upsert(r)
    assert frozenset(r.ident for r in far) in grouping(linker)
    # Back at the limit, the cell's reports link again: the same as grouped from scratch.
    linker.remove(reports[0].ident)
    assert not linker.crowded(reports[1].ident)
    assert linker.crowded_reports == 0
    assert grouping(linker) == {
        frozenset(m.ident for m in g) for g in canonical_groups([*reports[1:], *far], rule).values()
    }


def test_crowded_grouping_equals_the_from_scratch_one_on_random_streams() -> None:
    """With a small crowd limit, cells cross it both ways; the incremental grouping stays
    that of the current set (crowded reports alone, the rest by the reference)."""
    rng = random.Random(1110)
    rule = LinkRule(crowd_limit=3)
    crowded_steps = 0

    def report(rid: str, step: int) -> ReportVersion:
        return rv(
            f"s{int(rid) % 4}",  # one identity per rid
            rid,
            revision=step,
            t=rng.choice([0, 5 * MIN, 20 * MIN, 40 * MIN, 2 * 3600]),
            km=rng.uniform(0, 4),
            time_precision=rng.choice([TimePrecision.EXACT] * 4 + [TimePrecision.DAY]),
        )

    for _ in range(60):
        linker = ZoneLinker(rule)
        for current in random_changes(linker, rng, steps=40, ids=14, removals=0.25, report=report):
            crowded = check_from_scratch(linker, current)
            crowded_steps += bool(crowded)
            assert linker.crowded_reports == len(crowded)  # the gauge's count, kept as it goes
    assert crowded_steps > 300  # of 2,400: cells cross the limit both ways often


@pytest.mark.timeout(60)
def test_a_flood_costs_a_bounded_work_per_change() -> None:
    """1,500 reports of three sources at one point and one second (a hostile or broken
    feeder): the entries examined and the decisions made by any one change stay under a
    bound set by the crowd limit, not by the size of the flood; so the flood's total work
    grows linearly. (Counted, not timed. Measured: at most 2,500 entries, the regrouping of
    the cell's precise reports, and 1 decision in one change; 1,960 and 27 when precise
    reports were decided in time order; without the limit, 349,217 and 389 at the 600th
    report.)"""
    rule = LinkRule(crowd_limit=50)
    linker = ZoneLinker(rule)
    per_change: list[tuple[int, int]] = []
    for r in flood(1500):
        examined, decisions = linker.examined, linker.decisions
        linker.upsert(r)
        per_change.append((linker.examined - examined, linker.decisions - decisions))
    limit = rule.crowd_limit
    assert max(e for e, _ in per_change) <= 4 * limit * limit
    assert max(d for _, d in per_change) <= 4 * limit
    # Past the limit, a report of the crowded cell costs nothing to link.
    assert all(e == 0 and d == 0 for e, d in per_change[limit + 1 :])
    # Withdrawing the flood again: bounded the same way.
    for r in flood(1500)[::-1]:
        examined, decisions = linker.examined, linker.decisions
        linker.remove(r.ident)
        assert linker.examined - examined <= 4 * limit * limit
        assert linker.decisions - decisions <= 4 * limit
    assert not linker.live and not linker.members


# -- chains: a component of more than `chain_limit` precise reports links within time blocks --
#: One hour blocks; rv's times start 800 s into an hour, so t=2800 s starts the next.
HOUR_BLOCKS = 3600.0
NEXT_BLOCK = HOUR_BLOCKS - 1_700_000_000.0 % HOUR_BLOCKS


def test_a_chain_links_only_within_its_time_blocks() -> None:
    """Five sources at one point within 20 minutes, across a block boundary: every pair
    links, so one incident; a limit below five makes them a chain, cut at the boundary."""
    reports = [rv(f"s{i}", "1", t=NEXT_BLOCK + (i - 2) * 5 * MIN) for i in range(5)]
    ids = [r.ident for r in reports]
    whole = {frozenset(ids)}
    split = {frozenset(ids[:2]), frozenset(ids[2:])}
    for rule, expected in (
        (LinkRule(chain_limit=5, chain_block_seconds=HOUR_BLOCKS), whole),
        (LinkRule(chain_limit=None, chain_block_seconds=HOUR_BLOCKS), whole),
        (LinkRule(chain_limit=4, chain_block_seconds=HOUR_BLOCKS), split),
    ):
        grouped = {frozenset(m.ident for m in g) for g in canonical_groups(reports, rule).values()}
        assert grouped == expected == reference_groups(reports, rule)
        # Incrementally, in any order: the fifth report makes the chain, a removal undoes it.
        for order in itertools.islice(itertools.permutations(reports), 0, None, 7):
            linker = ZoneLinker(rule)
            for r in order:
                linker.upsert(r)
            assert grouping(linker) == expected
            linker.remove(order[0].ident)
            assert grouping(linker) == reference_groups(order[1:], rule)


@pytest.mark.timeout(120)
def test_the_work_of_a_change_in_a_chain_does_not_grow_with_the_chain() -> None:
    """Reports a minute apart at one place through hours (an observation post's day of
    fire, three sources): each links with those within the window, so all are one
    component of the precise link graph, a chain. A change regroups the block pieces it
    touches, not the chain: the most any one change examines does not grow with the chain,
    and the whole chain's work grows linearly. Counted, not timed. Measured: the most one
    change examined, chains of 150 to 1,200: 6,769, 7,167, 7,167, 7,167 entries; all of a
    chain of 1,200, 3,826,896 (before the limit, the last change of a chain of 600 alone
    examined 45,270, and a chain's CPU grew as its square)."""
    from streams.tools.linking_quality import chain_report

    def chain(n: int) -> tuple[int, int]:
        """The most entries one change examined, and all of them."""
        linker = ZoneLinker()
        worst = 0
        for i in range(n):
            examined = linker.examined
            linker.upsert(chain_report(i))
            worst = max(worst, linker.examined - examined)
        return worst, linker.examined

    (worst_200, all_200), (worst_400, all_400) = chain(200), chain(400)
    assert worst_400 <= 1.1 * worst_200
    assert all_400 <= 2.2 * all_200


@pytest.mark.timeout(120)
def test_the_work_of_a_change_in_a_dense_chain_is_bounded_by_the_limit() -> None:
    """A chain three times as dense (reports 20 s apart, not 60 s): a two-hour block's
    piece holds hundreds, past the limit, so it links within half hours, and those past it
    within 7.5 minutes. The most one change examines grows with what each report scans
    (its neighbours within the window), not with the piece. Measured: 7,981 and 16,200
    entries (60 s and 20 s apart, 250 reports); with two-hour blocks only, 9,436 and
    42,151."""
    from streams.tools.linking_quality import chain_report

    def worst(spacing: float) -> int:
        linker = ZoneLinker()
        most = 0
        for i in range(250):
            examined = linker.examined
            linker.upsert(chain_report(i, spacing=spacing))
            most = max(most, linker.examined - examined)
        return most

    assert worst(20.0) <= 2.5 * worst(60.0)


def test_chain_grouping_equals_the_reference_on_random_streams() -> None:
    """Chain limits of 1 to 5 (so most components of these streams are chains, and cross
    the limit both ways as reports come and go), blocks of an hour, 15 and 3.75 minutes:
    the incremental grouping stays the plain reference's and the from-scratch one's,
    crowded cells included."""
    rng = random.Random(20261202)
    chained = 0
    for limit, crowd in ((1, 100), (2, 100), (3, 100), (5, 100), (2, 3)):
        rule = LinkRule(chain_limit=limit, chain_block_seconds=HOUR_BLOCKS, crowd_limit=crowd)
        for _ in range(40):
            linker = ZoneLinker(rule)
            n_sources = rng.randint(2, 6)

            def report(rid: str, step: int, n_sources: int = n_sources) -> ReportVersion:
                return rv(
                    f"s{int(rid) % n_sources}",
                    rid,
                    revision=step,
                    t=rng.randrange(0, 4 * 3600, 300),
                    km=rng.uniform(0, 6),
                    time_precision=rng.choice([TimePrecision.EXACT] * 5 + [TimePrecision.DAY]),
                    location_precision=rng.choice(
                        [LocationPrecision.TOWN, *[LocationPrecision.POINT] * 4]
                    ),
                )

            changes = random_changes(linker, rng, steps=40, ids=20, removals=0.2, report=report)
            for current in changes:
                chained += bool(linker._large)
                check_from_scratch(linker, current)
    assert chained > 1000  # of 8,000 steps: chains known to the linker in most


def test_rule_parameters_of_crowds_days_and_categories_are_validated() -> None:
    with pytest.raises(ValueError):
        LinkRule(crowd_limit=0)
    with pytest.raises(ValueError):
        LinkRule(category_mismatch=-1)
    with pytest.raises(ValueError):
        LinkRule(day_utc_offset_hours=15)
    with pytest.raises(ValueError):
        LinkRule(chain_limit=0)
    with pytest.raises(ValueError):
        LinkRule(chain_block_seconds=0)


def test_the_settings_build_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.config import Settings

    assert Settings().link_rule() == LinkRule()
    monkeypatch.setenv("CEASEFIRE_LINK_WINDOW_MINUTES", "45")
    monkeypatch.setenv("CEASEFIRE_LINK_CROWD_LIMIT", "7")
    monkeypatch.setenv("CEASEFIRE_LINK_CATEGORY_MISMATCH", "0")
    monkeypatch.setenv("CEASEFIRE_LINK_DAY_AS_WINDOW", "true")
    monkeypatch.setenv("CEASEFIRE_LINK_CHAIN_LIMIT", "0")
    monkeypatch.setenv("CEASEFIRE_LINK_CHAIN_BLOCK_MINUTES", "90")
    for i, name in enumerate(("category", "harm", "perpetrator", "target", "place")):
        monkeypatch.setenv(f"CEASEFIRE_LINK_UNMATCHED_{name.upper()}", str(i / 10))
    rule = Settings().link_rule()
    assert (rule.window_seconds, rule.crowd_limit, rule.category_mismatch) == (2700, 7, 0)
    assert rule.day_utc_offset_hours is None
    assert (rule.chain_limit, rule.chain_block_seconds) == (None, 5400)
    assert (
        rule.unmatched_category,
        rule.unmatched_harm,
        rule.unmatched_perpetrator,
        rule.unmatched_target,
        rule.unmatched_place,
    ) == (0, 0.1, 0.2, 0.3, 0.4)
    monkeypatch.setenv("CEASEFIRE_LINK_UNMATCHED_HARM", "-1")
    with pytest.raises(ValueError, match="link_unmatched_harm"):
        Settings()
