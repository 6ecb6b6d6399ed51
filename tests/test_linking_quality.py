"""Linking quality against the simulator's ground truth (issue 10, item 3), the scoring
itself, and the ground truth the simulator gives. docs/record.md, "Linking quality"."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.report import Report, WithdrawnReport
from schemas.validation import validate_report
from streams.classify import Classifier, Gazetteer, ZoneCatalogue, claimant_code, party_code
from streams.classify.time_of_day import parse_time_of_day
from streams.record.quality import FigureScore, PairCounts, figure_score, score
from streams.tools.linking_quality import (
    SimulatedRun,
    _current,
    _measured,
    measure,
    simulate,
    what_if_groups,
)
from streams.tools.sim_world import JITTER, LOCAL_TZ, TOWN_KM, ZONE_BY_CODE
from streams.tools.simulate import SimEvent, Simulator, _km

START = datetime(2021, 5, 1, tzinfo=UTC)

pytestmark = pytest.mark.timeout(60)


# -- the measurement ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run() -> SimulatedRun:
    # 2,000 events over a month at 60 a day: about 4,300 messages, a second to simulate
    return simulate(2000, seed=1, per_day=60)


def test_the_simulated_run_is_sound(run: SimulatedRun) -> None:
    assert run.rejected == 0 and run.misplaced == 0
    assert len(run.events) == 2000
    assert 3 * len(run.events) // 2 <= len(run.versions) <= 4 * len(run.events)


def test_precise_reports_link_at_095_at_the_default_rule(run: SimulatedRun) -> None:
    """The reports the rule is made for (an exact time and a point: posts, patrols, sensors,
    most statements) link at 0.95 or better, both ways. Measured: 0.972 / 0.976 (0.956 /
    0.961 when they were decided in time order, before best pair first)."""
    m = measure(run)
    precise = m.score.by_kind[("precise", "precise")]
    assert precise.true > 1000
    assert precise.precision >= 0.95, precise
    assert precise.recall >= 0.95, precise


def test_incident_casualty_figures_against_the_truth(run: SimulatedRun) -> None:
    """docs/record.md, "A report without figures": the largest figure of the strongest tier,
    a report's silence read as 0 in it. Measured on seed 1: of 38 killed, 1 missed and 7
    given above the truth; reading silence as "no figure" (a weaker tier's figure counts)
    gave 32 above."""
    killed = measure(run).figures["killed"]
    assert killed.events == 1987 and killed.truth > 20
    assert killed.under + killed.over <= killed.truth // 2, killed


def test_the_figures_of_an_event_are_read_from_its_largest_incident() -> None:
    truth = {("a", "1"): "e1", ("b", "1"): "e1", ("c", "1"): "e1", ("a", "2"): "e2"}
    incidents = [
        ([("a", "1")], 9),  # e1's smaller part: not read
        ([("b", "1"), ("c", "1"), ("a", "2")], 2),  # most of e1, and all of e2
    ]
    assert figure_score(incidents, truth, {"e1": 3, "e2": 2}) == FigureScore(
        events=2, exact=1, truth=5, under=1, over=0
    )
    assert figure_score(incidents, truth, {"e1": 1, "e2": 0}) == FigureScore(2, 0, 1, 0, 3)


def test_every_report_links_at_090_b_cubed(run: SimulatedRun) -> None:
    """Per report (B-cubed: the share of its incident that is its event, and of its event
    that is in its incident), every current report: 0.9 or better; a regression guard at
    the measured 0.960 / 0.972 (docs/record.md; 0.959 / 0.971 while the simulator's town
    points named a second place, 0.955 / 0.966 before best pair first for
    precise reports, 0.949 / 0.960 before the time of day,
    0.947 / 0.958 before the target and place, 0.943 / 0.953 before the mean fit and the
    evidence)."""
    s = measure(run).score
    assert s.bcubed_precision >= 0.955 and s.bcubed_recall >= 0.965, s


def test_all_pairs_link_at_the_measured_level(run: SimulatedRun) -> None:
    """A regression guard on the pairs of every current report: measured 0.925 / 0.939
    (docs/record.md; 0.922 / 0.939 while the simulator's town points named a second place,
    0.914 / 0.928 before best pair first for precise reports, 0.901 /
    0.913 before the time of day, 0.898 / 0.911 before the target
    and place, 0.893 / 0.898 before the mean fit and the evidence, 0.857 / 0.865 before the
    local day, the category preference and precise reports first). A drop below 0.92 /
    0.93 is a regression of the linking or of the simulator."""
    s = measure(run).score
    assert s.precision >= 0.92, s.pairs
    assert s.recall >= 0.93, s.pairs


def test_the_evidence_reports_carry_improves_the_linking(run: SimulatedRun) -> None:
    """The evidence penalties (casualties, a non-claim's perpetrator and target, the exact
    category, the named place, the time of day a day report's text states) against none
    (time, place and category class alone), same run: better both ways; the target and
    place on top of the others before the time of day, and the time of day on top of all
    the others: better both ways too."""
    from streams.record.linking import LinkRule

    plain = LinkRule(
        unmatched_category=0,
        unmatched_harm=0,
        unmatched_perpetrator=0,
        unmatched_target=0,
        unmatched_place=0,
        unmatched_time_of_day=0,
    )
    with_evidence = measure(run).score
    without = measure(run, plain).score
    assert with_evidence.precision > without.precision
    assert with_evidence.recall > without.recall
    untimed = measure(run, LinkRule(unmatched_time_of_day=0)).score
    assert with_evidence.precision > untimed.precision + 0.005
    assert with_evidence.recall > untimed.recall + 0.005
    earlier = measure(
        run, LinkRule(unmatched_target=0, unmatched_place=0, unmatched_time_of_day=0)
    ).score
    assert untimed.precision > earlier.precision
    assert untimed.recall > earlier.recall


def test_all_pairs_link_at_090(run: SimulatedRun) -> None:
    """Issue 10, item 3: every pair of current reports at 0.9 or better both ways (seed 1,
    measured 0.925 / 0.939). The issue's target is 0.95 (met for precise pairs only:
    docs/record.md, "Linking quality")."""
    s = measure(run).score
    assert s.precision >= 0.9, s.pairs
    assert s.recall >= 0.9, s.pairs


def test_a_perfect_choice_for_imprecise_reports_would_clear_095(run: SimulatedRun) -> None:
    """What is left of the gap to 0.95 is the imprecise reports' choice: with precise reports
    grouped as the monitor does, an oracle choice for the imprecise ones (their own event's
    incident when it is a complete candidate, else alone) gives 0.978 / 0.976 on seed 1;
    refusing every ambiguous link buys precision (0.957) at a third of the recall lost."""
    from streams.record.linking import LinkRule

    rule = LinkRule()
    current = _current(run)
    monitor = measure(run).score
    oracle = _measured(run, what_if_groups(current, rule, run.truth), current).score
    refusing = _measured(run, what_if_groups(current, rule), current).score
    assert oracle.precision >= 0.95 and oracle.recall >= 0.95, oracle.pairs
    assert oracle.precision > monitor.precision and oracle.recall > monitor.recall
    assert refusing.precision > monitor.precision and refusing.recall < monitor.recall - 0.1
    # precise reports are grouped alike in all three
    for s in (oracle, refusing):
        assert s.by_kind[("precise", "precise")] == monitor.by_kind[("precise", "precise")]


def test_a_looser_rule_trades_precision_for_recall(run: SimulatedRun) -> None:
    from streams.record.linking import LinkRule

    tight = measure(run, LinkRule(window_seconds=900, distance_km=1.5)).score
    default = measure(run).score
    loose = measure(run, LinkRule(window_seconds=3600, distance_km=5)).score
    assert tight.precision > default.precision > loose.precision
    assert tight.recall < default.recall


# -- scoring ----------------------------------------------------------------------------------
def ids(*names: str) -> list[tuple[str, str]]:
    return [(n[0], n) for n in names]


def test_a_perfect_grouping_scores_one() -> None:
    truth = {("a", "a1"): "e1", ("b", "b1"): "e1", ("c", "c1"): "e1", ("a", "a2"): "e2"}
    s = score([ids("a1", "b1", "c1"), ids("a2")], truth)
    assert (s.precision, s.recall, s.bcubed_precision, s.bcubed_recall) == (1, 1, 1, 1)
    assert (s.events, s.incidents, s.exact, s.split, s.mixed) == (2, 2, 2, 0, 0)
    assert s.pairs == PairCounts(true=3, predicted=3, correct=3)


def test_a_wrong_merge_costs_precision_a_split_costs_recall() -> None:
    truth = {("a", "a1"): "e1", ("b", "b1"): "e1", ("c", "c1"): "e2", ("d", "d1"): "e2"}
    merged = score([ids("a1", "b1", "c1", "d1")], truth)
    assert merged.pairs == PairCounts(true=2, predicted=6, correct=2)
    assert merged.precision == pytest.approx(1 / 3) and merged.recall == 1
    assert merged.bcubed_precision == pytest.approx(0.5) and merged.bcubed_recall == 1
    assert (merged.exact, merged.split, merged.mixed) == (0, 0, 1)

    split = score([ids("a1"), ids("b1"), ids("c1", "d1")], truth)
    assert split.precision == 1 and split.recall == pytest.approx(0.5)
    assert split.bcubed_recall == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    assert (split.exact, split.split, split.mixed) == (1, 1, 0)


def test_pairs_are_broken_down_by_the_kinds_of_their_reports() -> None:
    truth = {("a", "a1"): "e1", ("b", "b1"): "e1", ("c", "c1"): "e2"}
    kinds = {("a", "a1"): "precise", ("b", "b1"): "imprecise", ("c", "c1"): "precise"}
    s = score([ids("a1", "c1"), ids("b1")], truth, kinds)
    assert s.by_kind == {
        ("imprecise", "precise"): PairCounts(true=1, predicted=0, correct=0),
        ("precise", "precise"): PairCounts(true=0, predicted=1, correct=0),
    }


def test_scoring_refuses_reports_without_truth_or_in_two_incidents() -> None:
    truth = {("a", "a1"): "e1", ("b", "b1"): "e1"}
    with pytest.raises(ValueError, match="no ground truth"):
        score([ids("a1", "c1")], truth)
    with pytest.raises(ValueError, match="two incidents"):
        score([ids("a1", "b1"), ids("a1")], truth)


# -- the simulator's ground truth -------------------------------------------------------------
@pytest.fixture(scope="module")
def messages() -> tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]]:
    sim = Simulator(4, start=START)
    out = [(sim.clock, eid, doc) for eid, doc in sim.events(1500, per_day=60)]
    return sim, out


def test_events_are_deterministic_and_need_a_simulated_clock() -> None:
    a = list(Simulator(9, start=START).events(200))
    assert a == list(Simulator(9, start=START).events(200))
    assert a != list(Simulator(10, start=START).events(200))
    with pytest.raises(ValueError, match="simulated clock"):
        next(Simulator(9).events(10))
    sim = Simulator(9, start=START)
    sim.report()
    with pytest.raises(ValueError, match="stream mode"):
        next(sim.events(10))


def test_every_message_is_valid_when_it_arrives_and_names_a_known_event(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    sim, out = messages
    clocks = [c for c, _e, _d in out]
    assert clocks == sorted(clocks)
    for clock, event_id, doc in out:
        assert event_id in sim.truth
        result = validate_report(json.dumps(doc).encode(), now=clock)
        assert isinstance(result, Report | WithdrawnReport), (result, doc)
        if isinstance(result, Report):
            assert result.occurred_at <= clock
    assert len({e for _c, e, _d in out}) == len(sim.truth) == 1500


def test_every_report_of_an_event_lies_in_its_zone_near_its_place_and_time(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    sim, out = messages
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    precisions: set[str] = set()
    for clock, event_id, doc in out:
        if doc.get("withdrawn"):
            continue
        event = sim.truth[event_id]
        report = validate_report(json.dumps(doc).encode(), now=clock)
        assert isinstance(report, Report)
        incident = classifier.classify(report, clock)
        assert incident.zone == event.zone, (event, doc)
        km = _km(incident.lat, incident.lon, event.lat, event.lon)
        t_sigma, km_sigma = JITTER[doc["source_type"]]
        precisions.add(f"{incident.time_precision.value}/{incident.location_precision.value}")
        if incident.location_precision.value == "town":
            assert km <= TOWN_KM, (event, doc)
        else:
            assert km <= 3 * km_sigma * 2**0.5 + 0.01, (event, doc)
        gap = abs(incident.occurred_at - event.occurred)
        if incident.time_precision.value == "day":
            assert gap < timedelta(days=1), (event, doc)
        else:
            assert gap <= timedelta(minutes=3 * t_sigma + 2.5, seconds=1), (event, doc)
    assert {"exact/point", "day/point", "exact/town", "day/town"} <= precisions


def test_day_reports_state_the_time_of_day_of_their_event_at_the_shares_sampled(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    """`TIME_SAID`: a third of the day-precision texts of the dataset, media and callers
    give a clock time (a statement's: within its error of the event, rounded to 5 min), a
    third the part of the day the event was in; deminers none; and every text of one
    report says the same."""
    sim, out = messages
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    said: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    kinds: dict[tuple[str, str], str] = {}
    for clock, event_id, doc in out:
        if doc.get("withdrawn") or doc.get("time_precision") != "day":
            continue
        if not doc.get("description"):
            continue  # a report without a text (a share of every kind's)
        report = validate_report(json.dumps(doc).encode(), now=clock)
        assert isinstance(report, Report)
        stated = classifier.classify(report, clock).time_of_day
        ident = (doc["source"], doc["report_id"])
        said[ident].add(stated)
        kinds[ident] = doc["source_type"]
        if stated is None:
            continue
        start, end = parse_time_of_day(stated)
        local = sim.truth[event_id].occurred.astimezone(LOCAL_TZ)
        minute = local.hour * 60 + local.minute + local.second / 60
        if start == end:
            assert abs(start - minute) <= 3 * JITTER["party_statement"][0] + 2.5, (doc, local)
        else:
            assert start <= minute <= end, (doc, local)
    # every text of one report says the same
    assert all(len(s) == 1 for s in said.values())
    told: dict[str, int] = defaultdict(int)
    for ident, (stated,) in said.items():
        if kinds[ident] == "ngo":
            assert stated is None
            continue
        span = None if stated is None else parse_time_of_day(stated)
        told["none" if span is None else "clock" if span[0] == span[1] else "part"] += 1
    total = sum(told.values())
    assert total > 120, told
    for n in told.values():  # a third each, give or take three standard deviations
        assert 0.22 < n / total < 0.45, told


def test_both_ministries_accuse_each_other(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    sim, out = messages
    claims: dict[str, dict[str, str]] = defaultdict(dict)  # event -> claimant -> accused
    for _clock, event_id, doc in out:
        if doc.get("source_type") != "party_statement":
            continue
        claimant = claimant_code(doc["claimant"])
        assert claimant is not None
        assert claimant.value in ZONE_BY_CODE[sim.truth[event_id].area].sides
        accused = party_code(doc.get("perpetrator"))
        assert accused != claimant  # a party never blames itself
        claims[event_id][claimant.value] = accused.value
    mutual = []
    for event_id, by_claimant in claims.items():
        other = next(s for s in ZONE_BY_CODE[sim.truth[event_id].area].sides if s != "az")
        # Azerbaijan's ministry calls the Karabakh formations "Armenian" now and then: `am`
        if by_claimant.get("az") in (other, "am") and by_claimant.get(other) == "az":
            mutual.append(sim.truth[event_id])
    assert len(mutual) >= 50
    # whoever fired: each side blames the other for the same event
    assert {"az", "nk", "am"} <= {e.perpetrator for e in mutual}


def test_party_figures_are_exaggerated_and_the_missions_corrected_to_the_truth(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    sim, out = messages
    exaggerated = corrected = 0
    first: dict[tuple[str, str], tuple[int, int]] = {}
    for _clock, event_id, doc in out:
        if doc.get("withdrawn"):
            continue
        event = sim.truth[event_id]
        figures = doc.get("casualties", {})
        killed, wounded = figures.get("killed", 0), figures.get("wounded", 0)
        key = (doc["source"], doc["report_id"])
        if doc["source_type"] == "party_statement" and (event.killed or event.wounded):
            assert killed >= event.killed and wounded >= event.wounded
            exaggerated += (killed, wounded) != (event.killed, event.wounded)
        if doc["source_type"] in ("observation_post", "patrol", "monitoring_centre"):
            assert killed <= event.killed and wounded <= event.wounded, (event, doc)
            was = first.setdefault(key, (killed, wounded))
            truth = (event.killed, event.wounded)
            corrected += was != truth and (killed, wounded) == truth
    assert exaggerated >= 10
    assert corrected >= 5


def test_revisions_stale_copies_and_withdrawals_refer_to_earlier_reports(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    sim, out = messages
    seen: dict[tuple[str, str], tuple[str, int, set[str]]] = {}  # key -> event, max, bytes
    counts = {"revision": 0, "stale": 0, "resend": 0, "withdrawal": 0}
    for _clock, event_id, doc in out:
        key = (doc["source"], doc["report_id"])
        raw = json.dumps(doc, sort_keys=True)
        revision = doc.get("revision", 0)
        if key not in seen:
            assert not doc.get("withdrawn"), doc  # a first version is a report
            seen[key] = (event_id, revision, {raw})
            continue
        first_event, highest, sent = seen[key]
        assert event_id == first_event  # every version is about the event of the first
        if raw in sent:
            counts["stale" if revision < highest else "resend"] += 1
        else:
            assert revision > highest, doc  # a new version is a higher revision
            counts["withdrawal" if doc.get("withdrawn") else "revision"] += 1
        seen[key] = (first_event, max(highest, revision), sent | {raw})
    assert counts["revision"] == sim.stats.revisions >= 50
    assert counts["withdrawal"] == sim.stats.withdrawals >= 20
    assert counts["stale"] + counts["resend"] == sim.stats.stale + sim.stats.duplicates
    assert counts["stale"] >= 10 and counts["resend"] >= 50


def test_flare_ups_are_distinct_events_in_one_zone_within_the_hour(
    messages: tuple[Simulator, list[tuple[datetime, str, dict[str, Any]]]],
) -> None:
    sim, _out = messages
    burst = sorted((e for e in sim.truth.values() if e.burst), key=lambda e: e.occurred)
    assert sim.bursts and len(burst) >= 3 * len(sim.bursts)
    by_area: dict[str, list[SimEvent]] = defaultdict(list)
    for e in burst:
        by_area[e.area].append(e)
    close = 0
    for events in by_area.values():
        for a, b in itertools.pairwise(events):
            if (
                b.occurred - a.occurred <= timedelta(hours=1)
                and _km(a.lat, a.lon, b.lat, b.lon) < 3
            ):
                close += 1
    assert close >= 5  # separate events the linking rule alone could not tell apart


def test_the_command_measures_the_configured_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python3 -m streams.tools.linking_quality` measures the rule the worker would link
    by: the defaults, or what CEASEFIRE_LINK_* set."""
    from streams.config import Settings
    from streams.tools.linking_quality import main

    monkeypatch.setenv("CEASEFIRE_LINK_WINDOW_MINUTES", "15")
    monkeypatch.setenv("CEASEFIRE_LINK_UNMATCHED_PLACE", "0")
    monkeypatch.setenv("CEASEFIRE_LINK_UNMATCHED_TIME_OF_DAY", "0.75")
    assert main(["--events", "150", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "Rule: 15 min, 3 km, the day at UTC+4, category mismatch 0.25;" in out
    assert "place 0, time of day 0.75; crowd limit 100; chain limit 100, blocks of 120 min." in out
    m = measure(simulate(150, seed=2), Settings().link_rule()).score
    pairwise = f"| pairwise | {m.precision:.3f} | {m.recall:.3f} | {m.pairs.f1:.3f} |"
    assert pairwise in out
    killed = measure(simulate(150, seed=2), Settings().link_rule()).figures["killed"]
    assert f"| killed | {killed.events} | {killed.exact} | {killed.truth} | " in out


def test_the_command_measures_several_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    from streams.record.linking import LinkRule
    from streams.tools.linking_quality import main

    assert main(["--events", "150", "--seeds", "2-3"]) == 0
    out = capsys.readouterr().out
    rows = {}
    for seed in (2, 3):
        s = measure(simulate(150, seed=seed), LinkRule()).score
        rows[seed] = (s.precision, s.recall)
        assert f"| {seed} | {s.precision:.3f} / {s.recall:.3f} | " in out
    mean_p = (rows[2][0] + rows[3][0]) / 2
    mean_r = (rows[2][1] + rows[3][1]) / 2
    assert f"| mean | {mean_p:.3f} / {mean_r:.3f} | " in out
    with pytest.raises(SystemExit):
        main(["--seeds", "one"])


def test_the_chain_command_shows_the_most_one_change_examined(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--chain N` (docs/record.md, "A chain"): a row at each fifth, with the CPU so far and
    the most index entries one change examined, which stops growing past the chain limit
    (measured: 6,769 at 150 reports; 7,167 from 300 to 1,200)."""
    from streams.tools.linking_quality import main

    assert main(["--chain", "150"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [[c.strip().replace(",", "") for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [int(row[0]) for row in rows] == [30, 60, 90, 120, 150]
    most = [int(row[3]) for row in rows]
    assert most == sorted(most) and 0 < most[-1] < 10_000
