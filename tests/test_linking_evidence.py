"""The evidence a report carries besides time, place and category (casualties, the
perpetrator a non-claim names, its exact category), and the mean of its pair fits, in the
choice among the incidents it links with completely; and the incremental grouping against
the plain reference when that evidence varies (docs/record.md, "Linking quality")."""

from __future__ import annotations

import itertools
import random

import pytest

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision
from streams.record.linking import LinkRule, ZoneLinker, canonical_groups
from streams.record.model import Ident, ReportVersion
from tests.record_helpers import MIN, reference_groups, rv

RULE = LinkRule()
#: Time, place and category only: the evidence penalties off.
PLAIN = LinkRule(
    unmatched_category=0.0,
    unmatched_harm=0.0,
    unmatched_perpetrator=0.0,
    unmatched_target=0.0,
    unmatched_place=0.0,
    unmatched_time_of_day=0.0,
)

# A day-precision report (what most ambiguous reports are: a dataset's, media's) and two
# incidents of one report each in its day, a and b, a a little nearer.
DAY = TimePrecision.DAY
TOWN = LocationPrecision.TOWN


def groups(*reports: ReportVersion, rule: LinkRule = RULE) -> set[frozenset[Ident]]:
    return {frozenset(m.ident for m in g) for g in canonical_groups(reports, rule).values()}


def test_a_report_of_casualties_prefers_an_incident_with_casualties() -> None:
    a = rv("op1", "a", t=3 * 3600, km=0.5)
    b = rv("op2", "b", t=6 * 3600, km=1.0, killed=1)
    u = rv("acled", "u", km=0.0, killed=2, time_precision=DAY)
    assert groups(a, b, u, rule=PLAIN) == {frozenset({a.ident, u.ident}), frozenset({b.ident})}
    assert groups(a, b, u) == {frozenset({a.ident}), frozenset({b.ident, u.ident})}
    # Wounded count as harm too; figures need not agree (sources disagree on them).
    b2 = rv("op2", "b", t=6 * 3600, km=1.0, wounded=4)
    assert groups(a, b2, u) == {frozenset({a.ident}), frozenset({b2.ident, u.ident})}
    # A report without figures says nothing either way.
    quiet = rv("acled", "u", km=0.0, time_precision=DAY)
    assert groups(a, b, quiet) == {frozenset({a.ident, quiet.ident}), frozenset({b.ident})}


def test_a_named_perpetrator_prefers_an_incident_naming_the_same_party() -> None:
    a = rv("op1", "a", t=3 * 3600, km=0.5, perpetrator="am")
    b = rv("op2", "b", t=6 * 3600, km=1.0, perpetrator="az")
    u = rv("acled", "u", perpetrator="az", time_precision=DAY)
    assert groups(a, b, u) == {frozenset({a.ident}), frozenset({b.ident, u.ident})}
    # An incident naming no one (unknown) is no counter-evidence.
    a_unknown = rv("op1", "a", t=3 * 3600, km=0.5)
    assert groups(a_unknown, b, u) == {
        frozenset({a_unknown.ident, u.ident}),
        frozenset({b.ident}),
    }
    # Claims do not count (each side accuses the other, whoever fired): neither a claim
    # in the incident ...
    claim = rv(
        "mod", "a", t=3 * 3600, km=0.5, perpetrator="am", claimant="az",
        source_type=SourceType.PARTY_STATEMENT,
    )  # fmt: skip
    assert groups(claim, b, u) == {frozenset({claim.ident, u.ident}), frozenset({b.ident})}
    # ... nor the report's own claim.
    u_claim = rv(
        "mod2", "u", perpetrator="az", claimant="am", source_type=SourceType.PARTY_STATEMENT,
        time_precision=DAY,
    )  # fmt: skip
    assert groups(a, b, u_claim) == {frozenset({a.ident, u_claim.ident}), frozenset({b.ident})}


def test_a_named_target_prefers_an_incident_naming_the_same_target() -> None:
    a = rv("op1", "a", t=3 * 3600, km=0.5, target="nk")
    b = rv("op2", "b", t=6 * 3600, km=1.0, target="az")
    u = rv("acled", "u", target="az", time_precision=DAY)
    assert groups(a, b, u, rule=PLAIN) == {frozenset({a.ident, u.ident}), frozenset({b.ident})}
    assert groups(a, b, u) == {frozenset({a.ident}), frozenset({b.ident, u.ident})}
    plain_fit = PLAIN.incident_fit(u, [a])
    assert plain_fit is not None
    assert RULE.incident_fit(u, [a]) == pytest.approx(plain_fit + 0.25)
    # An incident naming no target is no counter-evidence, nor is a report naming none.
    a_silent = rv("op1", "a", t=3 * 3600, km=0.5)
    assert groups(a_silent, b, u) == {frozenset({a_silent.ident, u.ident}), frozenset({b.ident})}
    quiet = rv("acled", "u", time_precision=DAY)
    assert groups(a, b, quiet) == {frozenset({a.ident, quiet.ident}), frozenset({b.ident})}
    # Claims do not count (a side's statement names itself as hit, whoever was): neither
    # a claim in the incident ...
    claim = rv(
        "mod", "a", t=3 * 3600, km=0.5, target="nk", claimant="nk",
        source_type=SourceType.PARTY_STATEMENT,
    )  # fmt: skip
    assert groups(claim, b, u) == {frozenset({claim.ident, u.ident}), frozenset({b.ident})}
    # ... nor the report's own claim.
    u_claim = rv(
        "mod2", "u", target="az", claimant="az", source_type=SourceType.PARTY_STATEMENT,
        time_precision=DAY,
    )  # fmt: skip
    assert groups(a, b, u_claim) == {frozenset({a.ident, u_claim.ident}), frozenset({b.ident})}
    # One report of the incident agreeing is enough.
    a2 = rv("op3", "a2", t=3 * 3600 + MIN, km=0.6, target="az")
    assert groups(a, a2, b, u) == {frozenset({a.ident, a2.ident, u.ident}), frozenset({b.ident})}


def test_a_named_place_prefers_an_incident_naming_the_same_place() -> None:
    a = rv("op1", "a", t=3 * 3600, km=0.5, place="Askeran")
    b = rv("op2", "b", t=6 * 3600, km=1.0, place="Aghdam")
    u = rv("acled", "u", place="Aghdam", time_precision=DAY)
    assert groups(a, b, u, rule=PLAIN) == {frozenset({a.ident, u.ident}), frozenset({b.ident})}
    assert groups(a, b, u) == {frozenset({a.ident}), frozenset({b.ident, u.ident})}
    # Claims count here (a statement's "in the direction of Aghdam" is a place like any).
    claim = rv(
        "mod", "b", t=6 * 3600, km=1.0, place="Aghdam", claimant="az",
        source_type=SourceType.PARTY_STATEMENT,
    )  # fmt: skip
    assert groups(a, claim, u) == {frozenset({a.ident}), frozenset({claim.ident, u.ident})}
    # An incident naming no place is no counter-evidence.
    a_silent = rv("op1", "a", t=3 * 3600, km=0.5)
    assert groups(a_silent, b, u) == {frozenset({a_silent.ident, u.ident}), frozenset({b.ident})}


def test_target_and_place_never_make_two_reports_link_or_unlink() -> None:
    a = rv("op1", "a", target="az", place="Martuni")
    far = rv("op2", "b", t=31 * MIN, target="az", place="Martuni")
    assert RULE.incident_fit(far, [a]) is None
    assert groups(a, far) == {frozenset({a.ident}), frozenset({far.ident})}
    # the only incident in reach: joined, whatever it names
    near = rv("op2", "b", t=MIN, target="nk", place="Hadrut")
    assert groups(a, near) == {frozenset({a.ident, near.ident})}


# `rv`'s t=0 is 02:13:20 in the theatre's time zone (UTC+4): its local day starts 8,000 s
# before it.
LOCAL_MIDNIGHT = -8000.0
EVENING = (17 * 60, 23 * 60)


def at_local(hour: float) -> float:
    return LOCAL_MIDNIGHT + hour * 3600


def test_a_stated_time_of_day_prefers_the_incident_at_that_time() -> None:
    a = rv("op1", "a", t=at_local(5), km=0.5)
    b = rv("op2", "b", t=at_local(19), km=1.0)
    u = rv("acled", "u", time_precision=DAY, time_of_day=EVENING)
    assert groups(a, b, u, rule=PLAIN) == {frozenset({a.ident, u.ident}), frozenset({b.ident})}
    assert groups(a, b, u) == {frozenset({a.ident}), frozenset({b.ident, u.ident})}
    # a full window or more away costs the whole penalty; inside the span nothing
    plain_fit = PLAIN.incident_fit(u, [a])
    assert plain_fit is not None
    assert RULE.incident_fit(u, [a]) == pytest.approx(plain_fit + 0.5)
    assert RULE.incident_fit(u, [b]) == PLAIN.incident_fit(u, [b])
    # nearer than a window beyond it: that share of the penalty (b 15 minutes after 23:00)
    late = rv("op2", "b", t=at_local(23.25), km=1.0)
    late_fit = PLAIN.incident_fit(u, [late])
    assert late_fit is not None
    assert RULE.incident_fit(u, [late]) == pytest.approx(late_fit + 0.25)
    # a clock time: "at around 05:10" picks the morning's
    at_five = rv("acled", "u", time_precision=DAY, time_of_day=(310, 310))
    assert groups(a, b, at_five) == {frozenset({a.ident, at_five.ident}), frozenset({b.ident})}


def test_a_time_of_day_is_compared_with_exact_times_and_other_stated_ones() -> None:
    # Two incidents of day reports only: one stating the morning, one saying nothing.
    morning = rv("media", "m", km=0.5, time_precision=DAY, time_of_day=(5 * 60, 12 * 60))
    silent = rv("ngo", "n", km=1.0, time_precision=DAY)
    u = rv("acled", "u", time_precision=DAY, time_of_day=EVENING)
    # the morning's is evidence against; a day that states nothing is none
    fit_morning = PLAIN.incident_fit(u, [morning])
    assert fit_morning is not None
    assert RULE.incident_fit(u, [morning]) == pytest.approx(fit_morning + 0.5)
    assert RULE.incident_fit(u, [silent]) == PLAIN.incident_fit(u, [silent])
    # overlapping spans agree
    dusk = rv("media", "m", km=0.5, time_precision=DAY, time_of_day=(16 * 60, 18 * 60))
    assert RULE.incident_fit(u, [dusk]) == PLAIN.incident_fit(u, [dusk])
    # the nearest member counts: an incident with one exact report in the span agrees
    a = rv("op1", "a", t=at_local(5), km=0.5)
    a2 = rv("op2", "a2", t=at_local(5) + 20 * MIN, km=0.6)
    assert RULE.incident_fit(u, [a, a2]) == pytest.approx(PLAIN.incident_fit(u, [a, a2]) + 0.5)  # type: ignore[operator]
    # an exact report's time is compared with the times of day an incident's texts state ...
    exact = rv("op3", "x", t=at_local(17.5), km=0.5, location_precision=TOWN)
    fit_exact = PLAIN.incident_fit(exact, [morning])
    assert fit_exact is not None
    assert RULE.incident_fit(exact, [morning]) == pytest.approx(fit_exact + 0.5)
    assert RULE.incident_fit(exact, [dusk]) == PLAIN.incident_fit(exact, [dusk])
    # ... not with its exact times (the pair fit has those)
    assert RULE.incident_fit(exact, [a]) == PLAIN.incident_fit(exact, [a])


def test_a_time_of_day_needs_the_local_day() -> None:
    rule = LinkRule(day_utc_offset_hours=None)
    plain = LinkRule(day_utc_offset_hours=None, unmatched_time_of_day=0.0)
    a = rv("op1", "a", t=at_local(5), km=0.5)
    u = rv("acled", "u", time_precision=DAY, time_of_day=EVENING)
    assert rule.incident_fit(u, [a]) == plain.incident_fit(u, [a])


def test_a_time_of_day_never_makes_two_reports_link() -> None:
    # the day before u's: out of reach whatever u's text says
    a = rv("op1", "a", t=LOCAL_MIDNIGHT - 3 * 3600)
    u = rv("acled", "u", time_precision=DAY, time_of_day=(20 * 60, 22 * 60))
    assert RULE.incident_fit(u, [a]) is None
    # the only incident in reach: joined, whatever u says of the time
    b = rv("op1", "b", t=at_local(5))
    assert groups(b, u) == {frozenset({b.ident, u.ident})}


def test_an_exact_category_match_is_preferred_beyond_the_fire_family() -> None:
    a = rv("op1", "a", t=3 * 3600, km=0.5, category=Category.SMALL_ARMS_FIRE)
    b = rv("op2", "b", t=6 * 3600, km=1.0, category=Category.DRONE_STRIKE)
    u = rv("acled", "u", category=Category.DRONE_STRIKE, time_precision=DAY)
    assert groups(a, b, u) == {frozenset({a.ident}), frozenset({b.ident, u.ident})}


def test_the_fit_to_an_incident_is_the_mean_of_the_pair_fits() -> None:
    # Incident p+q: u is 1.2 km from p and 0.3 km from q (mean 0.75 km, worst 1.2 km);
    # incident r: 0.9 km. By the worst pair r fits better; by the mean, p+q.
    p = rv("op1", "p", t=0, km=-1.2)
    q = rv("op2", "q", t=1 * MIN, km=-0.3)
    r = rv("op3", "r", t=4 * 3600, km=0.9)
    u = rv("acled", "u", time_precision=DAY)
    assert RULE.incident_fit(u, [p, q]) == pytest.approx((1.2 + 0.3) / 2 / 3, rel=1e-3)
    assert RULE.incident_fit(u, [r]) == pytest.approx(0.9 / 3, rel=1e-3)
    assert groups(p, q, r, u) == {frozenset({p.ident, q.ident, u.ident}), frozenset({r.ident})}


def test_evidence_never_makes_two_reports_link() -> None:
    a = rv("op1", "a", killed=1, perpetrator="az")
    far = rv("op2", "b", t=31 * MIN, killed=1, perpetrator="az")
    assert RULE.incident_fit(far, [a]) is None
    assert groups(a, far) == {frozenset({a.ident}), frozenset({far.ident})}


def test_the_evidence_penalties_are_validated() -> None:
    for name in (
        "unmatched_category",
        "unmatched_harm",
        "unmatched_perpetrator",
        "unmatched_target",
        "unmatched_place",
        "unmatched_time_of_day",
    ):
        with pytest.raises(ValueError, match="unmatched"):
            LinkRule(**{name: -0.1})  # type: ignore[arg-type]


def test_a_gain_that_makes_an_incident_a_better_candidate_regroups_a_later_report() -> None:
    # u (a day report of a death) first joins a, the only incident; then a report of b's
    # event with the death arrives: b is now the better candidate, and u moves there.
    a = rv("op1", "a", t=3 * 3600, km=0.5)
    b = rv("op2", "b", t=6 * 3600, km=1.0)
    u = rv("acled", "u", killed=1, time_precision=DAY)
    harm = rv("op3", "h", t=6 * 3600 + 2 * MIN, km=1.1, wounded=2)
    linker = ZoneLinker()
    for r in (a, b, u):
        linker.upsert(r)
    assert linker.anchor[u.ident] == a.ident
    rg = linker.upsert(harm)
    assert linker.anchor[u.ident] == b.ident
    assert rg.after[b.ident] == (b, harm, u)
    assert groups(a, b, u, harm) == {
        frozenset({a.ident}),
        frozenset({b.ident, harm.ident, u.ident}),
    }
    # and back when it goes
    linker.remove(harm.ident)
    assert linker.anchor[u.ident] == a.ident


def _random_report(rng: random.Random, rid: str, step: int, n_sources: int) -> ReportVersion:
    claim = rng.random() < 0.25
    return rv(
        f"s{int(rid) % n_sources}",
        rid,
        revision=step,
        t=rng.randrange(0, 6 * 3600, 300),
        km=rng.uniform(0, 6),
        source_type=SourceType.PARTY_STATEMENT if claim else SourceType.OBSERVATION_POST,
        claimant=rng.choice(["az", "am"]) if claim else None,
        perpetrator=rng.choice(["az", "am", "unknown", "unknown"]),
        killed=rng.choice([0, 0, 0, 1, 2]),
        wounded=rng.choice([0, 0, 0, 0, 3]),
        category=rng.choice(
            [Category.SMALL_ARMS_FIRE, Category.HEAVY_WEAPONS_FIRE, Category.DRONE_STRIKE]
        ),
        time_precision=rng.choice([TimePrecision.EXACT] * 3 + [TimePrecision.DAY]),
        location_precision=rng.choice(
            [*LocationPrecision, LocationPrecision.POINT, LocationPrecision.POINT]
        ),
        target=rng.choice(["az", "am", "civilians", None, None]),
        place=rng.choice(["Martuni", "Hadrut", None]),
        time_of_day=rng.choice([None, None, (60, 60), (300, 720), (-180, 360), (1020, 1380)]),
    )


def grouping(linker: ZoneLinker) -> set[frozenset[Ident]]:
    return {frozenset(m.ident for m in members) for members in linker.members.values()}


@pytest.mark.timeout(120)
def test_incremental_grouping_with_evidence_equals_the_reference_on_random_streams() -> None:
    """Evidence can make an incident a better candidate when it gains a report, which the
    pair fits alone never do: the replay re-checks later reports on gains too."""
    rng = random.Random(20201109)
    for _ in range(200):
        linker = ZoneLinker()
        current: dict[str, ReportVersion] = {}
        n_sources = rng.randint(3, 7)
        for step in range(45):
            rid = str(rng.randrange(22))
            if current and rng.random() < 0.15:
                gone = current.pop(rng.choice(sorted(current)))
                linker.remove(gone.ident)
            else:
                r = _random_report(rng, rid, step, n_sources)
                linker.upsert(r)
                current[rid] = r
            assert grouping(linker) == reference_groups(current.values(), RULE)
        for anchor, members in linker.members.items():
            assert members[0].ident == anchor
            assert all(linker.anchor[m.ident] == anchor for m in members)


def test_grouping_with_evidence_does_not_depend_on_arrival_order() -> None:
    rng = random.Random(7)
    for _ in range(30):
        reports = [_random_report(rng, str(i), 0, 4) for i in range(7)]
        expected = reference_groups(reports, RULE)
        for perm in itertools.islice(itertools.permutations(reports), 0, None, 97):
            linker = ZoneLinker()
            for r in perm:
                linker.upsert(r)
            assert grouping(linker) == expected


@pytest.mark.timeout(120)
def test_crowded_grouping_with_evidence_equals_the_reference_on_random_streams() -> None:
    """With a small crowd limit, cells cross it both ways while evidence varies: crowded
    reports alone, the rest grouped as the plain reference groups them."""
    rng = random.Random(1109)
    rule = LinkRule(crowd_limit=3)
    crowded_steps = 0
    for _ in range(60):
        linker = ZoneLinker(rule)
        current: dict[str, ReportVersion] = {}
        for step in range(40):
            rid = str(rng.randrange(14))
            if current and rng.random() < 0.25:
                gone = current.pop(rng.choice(sorted(current)))
                linker.remove(gone.ident)
            else:
                r = _random_report(rng, rid, step, 4)
                linker.upsert(r)
                current[rid] = r
            crowded = {r.ident for r in current.values() if linker.crowded(r.ident)}
            crowded_steps += bool(crowded)
            assert linker.crowded_reports == len(crowded)  # the gauge's count, kept as it goes
            free = [r for r in current.values() if r.ident not in crowded]
            expected = reference_groups(free, rule) | {frozenset({i}) for i in crowded}
            assert grouping(linker) == expected
    assert crowded_steps > 100
