"""Theatre-wide fatality peaks (`fatality_peak` with `scope: theatre`, alerting/theatre.py):
the ledger built from the zones' changes, evaluation, state parts and the backtest. Pure:
no broker."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import theatre
from alerting.alert_ids import fingerprint
from alerting.backtest import backtest
from alerting.engine import evaluate_batch, evaluate_time
from alerting.fatality import day_of
from alerting.rules import THEATRE, RuleFileError, load_rules, parse_rules
from alerting.theatre import FatalChange, TheatreState, fatal_changes, ledger_changes
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput
from schemas.report import Report
from schemas.validation import validate_report
from tests.test_alerting import fake_classify, inc

pytestmark = pytest.mark.timeout(60)

D = timedelta(days=1)
START = datetime(2021, 1, 1, tzinfo=UTC)
DAY0 = day_of(START.timestamp())
RULES = parse_rules(
    """
rules:
  - {name: zone-peak, kind: fatality_peak, lookback: 365d, minimum: 8, severity: medium}
  - name: theatre-peak
    kind: fatality_peak
    scope: theatre
    lookback: 365d
    minimum: 8
    severity: high
"""
)
ZONES = ("shusha", "loc-east", "lachin-corridor")


def feed(
    states: dict[str, ZoneState],
    th: TheatreState,
    zone: str,
    incidents: list[AlertInput],
    now: datetime,
) -> list[AlertEvent]:
    """One zone step as a worker runs it: evaluate the zone, forward its fatality changes,
    evaluate the theatre."""
    state = states.setdefault(zone, ZoneState.new(zone, since=START))
    mark = state.mark()
    events = evaluate_batch(RULES, state, incidents, now)
    changed = th.apply(fatal_changes(state, state.changed(mark)))
    return events + theatre.evaluate(RULES, th, now, changed=changed)


def test_the_theatre_fires_on_a_record_no_zone_holds_alone() -> None:
    states: dict[str, ZoneState] = {}
    th = TheatreState.new(since=START)
    # A year and more of one death a month in each zone: 3 in any 30 days theatre-wide.
    for n in range(0, 400, 30):
        for z, zone in enumerate(ZONES):
            at = START + (n + z) * D
            assert feed(states, th, zone, [inc(at, zone=zone, killed=1)], at) == []
    # Three zones lose 3 each within a week: 9 in the theatre (a record, >= 8), 3 per zone
    # (under the zones' minimum of 8).
    fired = []
    for z, zone in enumerate(ZONES):
        at = START + (420 + z) * D
        fired += feed(states, th, zone, [inc(at, zone=zone, killed=3, incident_id=f"s{z}")], at)
    assert [(e.rule, e.status, e.labels, e.value, e.threshold) for e in fired] == [
        ("theatre-peak", "firing", {"zone": THEATRE}, 9.0, 8.0)
    ]
    event = fired[0]
    assert event.fingerprint == fingerprint("theatre-peak", {"zone": THEATRE})
    assert event.incident_ids[:3] == ["s2", "s1", "s0"]  # incident ids, newest first
    assert "9 killed in the whole theatre (all zones)" in event.summary
    assert "most in zone" in event.summary
    # More deaths update the firing alert silently.
    at = START + 424 * D
    assert feed(states, th, "shusha", [inc(at, zone="shusha", killed=2)], at) == []
    assert th.firing()[0].value == 11.0
    # It resolves at the first midnight the window's figure falls below the 8 it beat.
    deadline = theatre.next_deadline(RULES, th)
    assert deadline == START + 425 * D
    assert theatre.evaluate(RULES, th, START + 440 * D, changed=False) == []
    resolved = theatre.evaluate(RULES, th, START + 455 * D, changed=False)
    assert [(e.status, e.alert_id) for e in resolved] == [("resolved", event.alert_id)]
    # Within the 180-day cooldown a bigger month does not fire again.
    at = START + 500 * D
    bigger = feed(states, th, "loc-east", [inc(at, zone="loc-east", killed=20)], at)
    assert [e.labels["zone"] for e in bigger] == ["loc-east"]  # the zone's own rule only
    assert not th.firing()
    # After it, a new record fires again.
    at = START + 700 * D
    again = feed(states, th, "shusha", [inc(at, zone="shusha", killed=30)], at)
    assert [e.labels["zone"] for e in again if e.rule == "theatre-peak"] == [THEATRE]


def test_nothing_fires_before_the_lookback_was_observed() -> None:
    th = TheatreState.new(since=START + 200 * D)
    at = START + 400 * D
    changed = th.apply([FatalChange("shusha", "x", day_of(at.timestamp()), 50)])
    assert theatre.evaluate(RULES, th, at, changed=changed) == []
    unknown = TheatreState()  # since unknown: never
    unknown.apply([FatalChange("shusha", "x", day_of(at.timestamp()), 50)])
    assert theatre.evaluate(RULES, unknown, at, changed=True) == []


def test_a_merged_or_withdrawn_incident_leaves_the_theatre() -> None:
    states: dict[str, ZoneState] = {}
    th = TheatreState.new(since=START)
    at = START + 10 * D
    feed(states, th, "shusha", [inc(at, zone="shusha", killed=4, incident_id="a")], at)
    assert th.daily() == {DAY0 + 10: 4}
    # The zone stage retracts it (merged into another incident): the zone forgets it.
    mark = states["shusha"].mark()
    states["shusha"].forget("a")
    th.apply(fatal_changes(states["shusha"], states["shusha"].changed(mark)))
    assert th.daily() == {}
    # A revised figure replaces the old one, never adds to it.
    feed(states, th, "shusha", [inc(at, zone="shusha", killed=2, incident_id="b")], at)
    revised = inc(at, zone="shusha", killed=5, incident_id="b")
    states["shusha"].refresh(revised)
    feed(states, th, "shusha", [revised], at)
    assert th.daily() == {DAY0 + 10: 5}


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, str, int, int]]:
    """Zone incident versions (zone, id, day, killed): a later version of an id replaces an
    earlier one; killed 0: gone."""
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(ZONES),
                st.sampled_from(["a", "b", "c", "d", "e"]),
                st.integers(0, 60),
                st.integers(0, 9),
            ),
            max_size=40,
        )
    )
    return ops


@settings(max_examples=150, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_the_theatre_ledger_is_the_sum_of_the_zones_whatever_the_order_and_replays(
    ops: list[tuple[str, str, int, int]], rnd: random.Random, replays: int
) -> None:
    """Each zone forwards its ledger's changes (latest value per key). Whatever the
    interleaving across keys, and with replays (a step redone after a crash, every ledger
    sent again after a recovery) inserted anywhere before a key's latest change, the
    theatre's daily figures are the sum of the zones'."""
    from alerting.fatality import FatalityLedger

    zones: dict[str, FatalityLedger] = {z: FatalityLedger() for z in ZONES}
    per_key: dict[str, list[FatalChange]] = {}
    for zone, iid, day, killed in ops:
        if zones[zone].put(iid, day, killed):
            held = zones[zone].incidents.get(iid)
            d, k = held if held is not None else (0, 0)
            c = FatalChange(zone, iid, d, k)
            per_key.setdefault(c.key, []).append(c)
    streams: list[list[FatalChange]] = []
    for changes in per_key.values():
        stream = list(changes)
        for _ in range(replays):  # an earlier value again, anywhere before the latest
            stream.insert(rnd.randrange(len(stream)), rnd.choice(changes))
        if rnd.random() < 0.5:
            stream.append(changes[-1])  # the latest twice
        streams.append(stream)
    th = TheatreState.new(since=START)
    while any(streams):  # a random merge that keeps each key's order
        s = rnd.choice([s for s in streams if s])
        th.apply([s.pop(0)])
    expected: dict[int, int] = {}
    for ledger in zones.values():
        for day, killed in ledger.daily.items():
            expected[day] = expected.get(day, 0) + killed
    assert th.daily() == expected
    # Resending every zone's whole ledger (after a recovery) changes nothing.
    for zone in ZONES:
        state = ZoneState(zone=zone, fatalities=zones[zone])
        assert not th.apply(ledger_changes(state))
    assert th.daily() == expected


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(12))))
def test_alerts_do_not_depend_on_the_order_the_zones_report_in(order: list[int]) -> None:
    """The same fatal incidents of three zones, forwarded in any order within one step of
    the theatre: the same alert (id, value, threshold)."""
    base = TheatreState.new(since=START)
    for n in range(0, 400, 30):
        base.apply([FatalChange(ZONES[n % 3], f"h{n}", DAY0 + n, 1)])
    # Reported on the day they happened (a late one would raise the lookback's peak too).
    burst = [FatalChange(ZONES[i % 3], f"b{i}", DAY0 + 425, 1 + i % 2) for i in range(12)]
    now = START + 425 * D

    def run(changes: list[FatalChange]) -> list[tuple[str, float, float]]:
        th = TheatreState.from_parts(base.parts())
        out = []
        for c in changes:  # one change per step: the alert fires when the figure gets there
            out += theatre.evaluate(RULES, th, now, changed=th.apply([c]))
        return [(e.alert_id, e.value, e.threshold) for e in out] + [
            (e.alert_id, e.value, e.threshold) for e in th.firing()
        ]

    shuffled = run([burst[i] for i in order])
    assert len(shuffled) == len(run(burst)) == 2  # one firing, then the alert as it stands
    # Which incident starts the episode can differ with the order, the final figure not.
    assert shuffled[-1][1:] == run(burst)[-1][1:] == (18.0, 8.0)


def test_parts_round_trip_and_changed_keys() -> None:
    th = TheatreState.new(since=START)
    th.apply([FatalChange("shusha", "a", DAY0 + 400, 9), FatalChange("loc-east", "b", DAY0, 1)])
    fired = theatre.evaluate(RULES, th, START + 400 * D, changed=True)
    assert fired
    changed = th.changed()
    fp = fired[0].fingerprint
    assert {"m", "fshusha\x1fa", "floc-east\x1fb", "ptheatre-peak", f"a{fp}"} <= changed
    again = TheatreState.from_parts(th.parts())
    assert again.parts() == th.parts()
    assert again.firing() == th.firing() and again.peaks == th.peaks
    th.apply([FatalChange("shusha", "a", 0, 0)])
    assert th.changed() == {"fshusha\x1fa"} and th.part("fshusha\x1fa") is None
    with pytest.raises(ValueError):
        TheatreState.from_parts({"x": 1})


def test_fatal_change_encoding() -> None:
    c = FatalChange("loc-east", "inc-1", DAY0, 3)
    assert FatalChange.decode(c.encode()) == c
    for bad in (
        b"[]",
        b"{}",
        b'{"zone":"","incident_id":"x","day":1,"killed":1}',
        b'{"zone":"z","incident_id":"x","day":1,"killed":-1}',
        b"not json",
    ):
        with pytest.raises(ValueError):
            FatalChange.decode(bad)


def test_rules_scope() -> None:
    rules = load_rules(None)  # the shipped defaults have theatre rules
    assert [r.name for r in rules.theatre_fatality_rules] == [
        "fatality-peak-theatre-1y",
        "fatality-peak-theatre-3y",
    ]
    assert all(r.scope == "zone" for r in rules.zone_fatality_rules)
    # A zone's state never evaluates a theatre rule...
    zone_only = parse_rules(
        "rules:\n  - {name: t, kind: fatality_peak, scope: theatre, lookback: 365d,"
        " minimum: 1, severity: high}\n"
    )
    state = ZoneState.new("shusha", since=START - 800 * D)
    assert evaluate_batch(zone_only, state, [inc(START, killed=50)], START) == []
    assert state.fatalities.daily  # ...but keeps the ledger the theatre is made of
    # ...and a zone alert of a rule that became theatre-wide resolves as changed.
    per_zone = parse_rules(
        "rules:\n  - {name: t, kind: fatality_peak, lookback: 365d, minimum: 1, severity: high}\n"
    )
    state = ZoneState.new("shusha", since=START - 800 * D)
    assert evaluate_batch(per_zone, state, [inc(START, killed=50)], START)
    resolved = evaluate_time(zone_only, state, START + timedelta(minutes=1))
    assert [(e.status, "changed" in e.summary) for e in resolved] == [("resolved", True)]
    with pytest.raises(RuleFileError, match="reserved"):
        parse_rules(
            "rules:\n  - {name: t, kind: fatality_peak, scope: theatre, lookback: 365d,"
            " minimum: 1, severity: high}\n",
            known_zones=["shusha", THEATRE],
        )
    with pytest.raises(RuleFileError, match="scope"):
        parse_rules(
            "rules:\n  - {name: t, kind: fatality_peak, scope: world, lookback: 365d,"
            " minimum: 1, severity: high}\n"
        )


def _report(n: int, at: datetime, place: str, killed: int) -> Report:
    body = (
        f'{{"report_id": "h{n}", "source": "acled", "source_type": "dataset", '
        f'"occurred_at": "{at.isoformat()}", "location": {{"place": "{place}"}}, '
        f'"category": "heavy_weapons_fire", "perpetrator": "az", '
        f'"casualties": {{"killed": {killed}}}}}'
    )
    report = validate_report(body.encode(), now=START + 900 * D)
    assert isinstance(report, Report)
    return report


def test_backtest_shows_a_theatre_peak_on_imported_history() -> None:
    """Two years of imported history in two zones, a death a fortnight in each; then a
    month with 5 dead in each zone: a theatre record (10 >= 8), under the zones' minimum."""
    reports = []
    n = 0
    for day in range(0, 700, 14):
        for place, shift in (("Shusha", 0), ("Lachin", 7)):
            reports.append(_report(n, START + (day + shift) * D, place, 1))
            n += 1
    for k, place in enumerate(["Shusha", "Lachin"] * 5):
        reports.append(_report(n, START + (720 + k) * D + timedelta(hours=k), place, 1))
        n += 1
    events = backtest(reports, fake_classify, RULES)
    assert [(e.rule, e.status, e.labels["zone"]) for e in events] == [
        ("theatre-peak", "firing", THEATRE),
        ("theatre-peak", "resolved", THEATRE),
    ]
    firing, resolved = events
    assert firing.value >= firing.threshold >= 8
    assert resolved.ends_at is not None and resolved.ends_at > firing.starts_at
    # The same history, zone rules only: no theatre state, nothing fires.
    zone_rules = parse_rules(
        "rules:\n  - {name: z, kind: fatality_peak, lookback: 365d, minimum: 8, severity: high}\n"
    )
    assert backtest(reports, fake_classify, zone_rules) == []
