"""fatality_peak rules in the engine, its state parts and the backtest (issue 11 item 5).
Pure: no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerting import theatre
from alerting.backtest import backtest
from alerting.engine import evaluate_batch, evaluate_time, next_deadline
from alerting.rules import RuleFileError, parse_rules
from alerting.theatre import TheatreState, fatal_changes
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput
from schemas.report import Report
from schemas.validation import validate_report
from tests.test_alerting import fake_classify, inc

pytestmark = pytest.mark.timeout(60)

D = timedelta(days=1)
START = datetime(2021, 1, 1, tzinfo=UTC)
RULES = parse_rules(
    """
rules:
  - {name: peak-1y, kind: fatality_peak, lookback: 365d, minimum: 5, severity: medium}
"""
)


def steady(state: ZoneState, days: int) -> None:
    """One death every 10 days: 3 in any 30 days."""
    for n in range(0, days, 10):
        evaluate_batch(RULES, state, [inc(START + n * D, killed=1)], START + n * D)


def test_a_record_month_fires_once_updates_silently_and_resolves_when_it_passes() -> None:
    state = ZoneState.new("shusha", since=START)
    steady(state, 400)
    surge_day = START + 420 * D
    fired = evaluate_batch(RULES, state, [inc(surge_day, killed=4)], surge_day)
    assert fired == []  # 4 in 30 days: above the year's high of 3, under the minimum of 5
    fired = evaluate_batch(RULES, state, [inc(surge_day + D, killed=2)], surge_day + D)
    assert [(e.rule, e.status, e.value, e.threshold) for e in fired] == [
        ("peak-1y", "firing", 6.0, 5.0)
    ]
    assert "6 killed in zone shusha" in fired[0].summary and len(fired[0].incident_ids) == 2
    more = evaluate_batch(RULES, state, [inc(surge_day + 2 * D, killed=3)], surge_day + 2 * D)
    assert more == []  # one alert per fingerprint: updated silently
    assert state.firing()[0].value == 9.0
    # It holds while the surge is within 30 days, and resolves at the first midnight after.
    deadline = next_deadline(RULES, state)
    assert deadline == datetime(2022, 2, 28, tzinfo=UTC)  # the midnight after the clock
    assert evaluate_time(RULES, state, surge_day + 29 * D) == []
    resolved = evaluate_time(RULES, state, surge_day + 32 * D)
    assert [(e.status, e.value) for e in resolved] == [("resolved", 0.0)]


def test_cooldown_and_observation() -> None:
    # Observed only since day 300: a 365-day lookback is not observed at day 420.
    late = ZoneState.new("shusha", since=START + 300 * D)
    steady(late, 400)
    assert evaluate_batch(RULES, late, [inc(START + 420 * D, killed=9)], START + 420 * D) == []
    state = ZoneState.new("shusha", since=START)
    steady(state, 400)
    assert evaluate_batch(RULES, state, [inc(START + 420 * D, killed=9)], START + 420 * D)
    evaluate_time(RULES, state, START + 460 * D)  # resolved
    assert not state.firing()
    # A bigger month 60 days later: within the 180-day cooldown, nothing fires.
    assert evaluate_batch(RULES, state, [inc(START + 480 * D, killed=20)], START + 480 * D) == []
    # After the cooldown, a new record fires again.
    fired = evaluate_batch(RULES, state, [inc(START + 620 * D, killed=30)], START + 620 * D)
    assert [e.rule for e in fired] == ["peak-1y"]


def test_late_and_merged_incidents_and_the_state_parts() -> None:
    state = ZoneState.new("shusha", since=START)
    steady(state, 400)
    mark = state.mark()
    # A late incident 196 days old (beyond the other rules' retention) still counts.
    old = inc(START + 205 * D, killed=7, incident_id="late")
    evaluate_batch(RULES, state, [old], START + 401 * D)
    assert state.fatalities.daily[(START + 205 * D - datetime(1970, 1, 1, tzinfo=UTC)).days] == 7
    assert "flate" in state.changed(mark)
    again = ZoneState.from_parts("shusha", state.parts())
    assert again.fatalities == state.fatalities and again.peaks == state.peaks
    mark = state.mark()
    assert state.forget("late")  # merged into another incident: its deaths leave
    assert "flate" in state.changed(mark) and state.part("flate") is None
    assert 7 not in state.fatalities.daily.values()


def test_rule_file_checks() -> None:
    bad = {
        "window: 36h": "whole number of days",
        "lookback: 10d": "at least the window",
        "match: {min_killed: 1}": "takes no `match`",
        "group_by: [zone, party]": "group_by can only be [zone]",
    }
    for extra, message in bad.items():
        # (a key given twice is an error of its own: the lookback only where none is given)
        lookback = "" if extra.startswith("lookback") else "    lookback: 365d\n"
        text = (
            f"rules:\n  - name: p\n    kind: fatality_peak\n{lookback}"
            f"    minimum: 5\n    severity: high\n    {extra}\n"
        )
        with pytest.raises(RuleFileError, match=message.replace("[", r"\[")):
            parse_rules(text)


def test_backtest_shows_a_fatality_peak_on_imported_history() -> None:
    """Two years of history from one observation post: a death a fortnight, then a deadly
    month; the backtest observes from the first report, so the year before the surge is
    observed and the rule fires on the surge."""
    lines = []
    for day in range(0, 700, 14):
        lines.append((START + day * D, 1))
    for k in range(4):
        lines.append((START + (720 + k) * D, 3))
    reports: list[Report] = []
    for n, (at, killed) in enumerate(lines):
        body = (
            f'{{"report_id": "h{n}", "source": "pkf-op-7", "source_type": "observation_post", '
            f'"occurred_at": "{at.isoformat()}", "location": {{"place": "Shusha"}}, '
            f'"category": "heavy_weapons_fire", "perpetrator": "az", '
            f'"casualties": {{"killed": {killed}}}}}'
        )
        report = validate_report(body.encode(), now=START + 800 * D)
        assert isinstance(report, Report)
        reports.append(report)
    events = backtest(reports, fake_classify, RULES)
    assert [(e.rule, e.status, (e.ends_at or e.starts_at).date()) for e in events] == [
        ("peak-1y", "firing", (START + 721 * D).date()),
        ("peak-1y", "resolved", (START + 722 * D).date() + timedelta(days=30)),
    ]


def test_a_second_episode_from_the_same_incidents_has_its_own_alert_id() -> None:
    """With a cooldown shorter than the window, a record revised away and back started a
    second episode from the same latest incident, under the first one's alert id (the
    outbox and subscribers tell events apart by id and status)."""
    rules = parse_rules(
        "rules:\n  - {name: peak, kind: fatality_peak, window: 5d, lookback: 10d,"
        " minimum: 1, cooldown: 1d, severity: high}"
    )
    t0 = datetime(2021, 5, 12, 10, tzinfo=UTC)
    d, h = timedelta(days=1), timedelta(hours=1)
    state = ZoneState.new("shusha", since=t0 - 40 * d)
    evaluate_batch(rules, state, [inc(t0 - 8 * d, killed=4, incident_id="z1")], t0 - 8 * d)
    evaluate_batch(rules, state, [inc(t0, killed=3, incident_id="y1")], t0)
    [first] = evaluate_batch(rules, state, [inc(t0 + h, killed=2, incident_id="x1")], t0 + h)
    [resolved] = evaluate_batch(rules, state, [inc(t0 + h, killed=0, incident_id="x1")], t0 + d)
    assert (first.status, resolved.status) == ("firing", "resolved")
    again = evaluate_batch(rules, state, [inc(t0 + h, killed=2, incident_id="x1")], t0 + 2 * d)
    [second] = [e for e in again if e.status == "firing"]
    assert second.incident_ids == first.incident_ids
    assert second.alert_id != first.alert_id


# -- the theatre's alert (alerting/theatre.py) --------------------------------------------

THEATRE_RULES = parse_rules(
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


def feed(
    states: dict[str, ZoneState],
    th: TheatreState,
    zone: str,
    incidents: list[AlertInput],
    now: datetime,
) -> list[AlertEvent]:
    """One zone step as a worker runs it: the zone, its fatality changes, the theatre."""
    state = states.setdefault(zone, ZoneState.new(zone, since=START))
    mark = state.mark()
    events = evaluate_batch(THEATRE_RULES, state, incidents, now)
    changed = th.apply(fatal_changes(state, state.changed(mark)))
    return events + theatre.evaluate(THEATRE_RULES, th, now, changed=changed)


def test_the_theatre_alert_s_summary_and_incidents_follow_its_figure() -> None:
    """Deaths while the theatre's alert fires updated its `value` only (its summary said
    the figure it fired with, its `incident_ids` the incidents of then); the resolution
    said "below the 8 of the record it set" of a record of 14."""
    states: dict[str, ZoneState] = {}
    th = TheatreState.new(since=START)
    for n in range(0, 400, 30):
        at = START + n * D
        feed(states, th, "shusha", [inc(at, zone="shusha", killed=1)], at)
    at = START + 420 * D
    fired = feed(states, th, "shusha", [inc(at, zone="shusha", killed=9, incident_id="s0")], at)
    [event] = [e for e in fired if e.rule == "theatre-peak"]
    assert event.summary.startswith("9 killed in the whole theatre (all zones) in the 30d to")
    at = START + 421 * D
    more = feed(states, th, "loc-east", [inc(at, zone="loc-east", killed=5, incident_id="e1")], at)
    assert [e for e in more if e.rule == "theatre-peak"] == []  # updated silently
    [held] = th.firing()
    assert (held.alert_id, held.value, held.threshold) == (event.alert_id, 14, 8)
    assert held.incident_ids == ["e1", "s0"]
    assert held.summary == (
        "14 killed in the whole theatre (all zones) in the 30d to 2022-02-26, most in zone "
        "shusha (9): the highest 30d figure of the past 365d (previous high 9, minimum 8)."
    )
    [done] = theatre.evaluate(THEATRE_RULES, th, START + 455 * D, changed=False)
    assert done.summary == (
        "Resolved: 0 killed in the whole theatre in the 30d to 2022-04-01, below 8, the "
        "minimum its record had to reach."
    )
