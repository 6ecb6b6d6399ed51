"""The windowed rules (threshold, escalation) count an incident only in windows at least as
long as its time precision's period (docs/alerting.md, "Times known only to the day"): a
day's ACLED rows stand at 12:00 UTC, and twelve of them in one zone are not "12 incidents
within 1h". The precision travels with the incident from the record to the alert state,
and survives the state's changelog."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.backtest import backtest
from alerting.engine import evaluate_batch, evaluate_incident, next_deadline
from alerting.rules import RuleSet, load_rules, parse_rules
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput, encode_alert_input, read_alert_input
from schemas.codes import Category, Party, Severity, TimePrecision, Verification
from schemas.report import Report
from schemas.validation import validate_report
from streams.classify import Classifier, Gazetteer, ZoneCatalogue

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2022, 9, 13, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
D = timedelta(days=1)


def rules_of(text: str) -> RuleSet:
    return parse_rules(text, source="test.yaml")


#: 10 in an hour, and 10 in a day: one rule shorter than a day, one a day long
RULES = rules_of(
    """
rules:
  - name: hourly
    kind: threshold
    window: 1h
    threshold: 10
    severity: high
  - name: daily
    kind: threshold
    window: 24h
    threshold: 10
    severity: high
  - name: weekly
    kind: threshold
    window: 7d
    threshold: 10
    severity: medium
"""
)


def incident(n: int, at: datetime, precision: str = "exact") -> AlertInput:
    return AlertInput(
        f"inc-{n}",
        "shusha",
        int(at.timestamp() * 1000),
        Category.SMALL_ARMS_FIRE,
        Severity.MEDIUM,
        Verification.REPORTED,
        Party.AZ,
        0,
        0,
        "am",
        False,
        None,
        "acled",
        TimePrecision(precision),
    )


def fired(events: list[AlertEvent]) -> list[str]:
    return sorted(e.rule for e in events if e.status == "firing")


def test_day_rows_fire_no_hourly_rule_and_count_in_a_day() -> None:
    state = ZoneState.new("shusha")
    day = [incident(n, T0, "day") for n in range(12)]
    events = evaluate_batch(RULES, state, day, T0)
    assert fired(events) == ["daily", "weekly"]
    assert state.coarse == 12
    [daily] = [e for e in state.firing() if e.rule == "daily"]
    assert daily.value == 12
    # the same twelve known to the minute are a burst within the hour
    exact = ZoneState.new("shusha")
    assert fired(evaluate_batch(RULES, exact, [incident(n, T0) for n in range(12)], T0)) == [
        "daily",
        "hourly",
        "weekly",
    ]


def test_week_rows_count_only_in_windows_of_a_week_or_more() -> None:
    state = ZoneState.new("shusha")
    events = evaluate_batch(RULES, state, [incident(n, T0, "week") for n in range(10)], T0)
    assert fired(events) == ["weekly"]
    month = ZoneState.new("shusha")
    assert evaluate_batch(RULES, month, [incident(n, T0, "month") for n in range(10)], T0) == []


def test_only_the_precise_incidents_count_towards_an_hour() -> None:
    state = ZoneState.new("shusha")
    mixed = [incident(n, T0 - n * M) for n in range(9)] + [incident(99, T0, "day")]
    assert fired(evaluate_batch(RULES, state, mixed, T0)) == ["daily", "weekly"]
    # the tenth precise one reaches the hour's threshold; the alert counts 10, not 11
    [hourly] = [
        e for e in evaluate_incident(RULES, state, incident(10, T0), T0) if e.rule == "hourly"
    ]
    assert hourly.value == 10
    assert "inc-99" not in hourly.incident_ids
    # and resolves when the first precise one leaves the hour, the day row regardless
    deadline = next_deadline(RULES, state)
    assert deadline == T0 - 8 * M + timedelta(hours=1)


def test_a_precise_report_joining_the_day_row_makes_it_count() -> None:
    state = ZoneState.new("shusha")
    assert fired(
        evaluate_batch(
            RULES,
            state,
            [incident(n, T0 - n * M) for n in range(9)] + [incident(99, T0, "day")],
            T0,
        )
    ) == ["daily", "weekly"]
    # a post's report of the same event, to the minute, joins it: the incident's time is now
    # exact (its most precise report's), and its new version counts in the hour
    joined = dataclasses.replace(incident(99, T0 - 30 * M), time_precision=TimePrecision.EXACT)
    assert fired(evaluate_batch(RULES, state, [joined], T0)) == ["hourly"]
    assert state.coarse == 0


def test_the_state_keeps_the_precision_and_writes_exact_entries_as_before() -> None:
    state = ZoneState.new("shusha")
    evaluate_batch(RULES, state, [incident(1, T0, "day"), incident(2, T0)], T0)
    parts = state.parts()
    assert parts["iinc-1"][-1] == "day" and len(parts["iinc-1"]) == 11
    assert len(parts["iinc-2"]) == 10  # an earlier worker's form: it reads the first ten
    back = ZoneState.from_parts("shusha", parts)
    assert back == state and back.coarse == 1
    assert ZoneState.from_json(state.to_json()) == state
    bad = dict(parts, **{"iinc-1": [*parts["iinc-1"][:10], "fortnight"]})
    with pytest.raises(ValueError, match="fortnight"):
        ZoneState.from_parts("shusha", bad)


def test_forgetting_and_pruning_keep_the_count_of_coarse_entries() -> None:
    state = ZoneState.new("shusha")
    evaluate_batch(RULES, state, [incident(1, T0, "day"), incident(2, T0, "week")], T0)
    evaluate_batch(RULES, state, [], T0, forget=["inc-1"])
    assert state.coarse == 1
    evaluate_batch(RULES, state, [], T0 + 30 * D)  # past every rule's retention
    assert state.incidents == [] and state.coarse == 0


def test_the_message_carries_the_precision_only_when_not_exact() -> None:
    day = incident(1, T0, "day")
    assert b'"time_precision":"day"' in encode_alert_input(day)
    assert read_alert_input(encode_alert_input(day)) == day
    assert b"time_precision" not in encode_alert_input(incident(2, T0))


times = st.integers(0, 180).map(lambda m: T0 + m * M)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(times, max_size=25),
    st.lists(st.tuples(times, st.sampled_from(["day", "week", "month"])), max_size=25),
    st.randoms(use_true_random=False),
)
def test_coarse_incidents_change_no_hourly_alert(
    exact: list[datetime], coarse: list[tuple[datetime, str]], rnd: random.Random
) -> None:
    """Whatever coarse incidents arrive among the precise ones, in whatever order, the hour's
    alerts are those of the precise ones alone, the clock moving as it did."""
    hourly = rules_of(
        "rules:\n  - {name: hourly, kind: threshold, window: 1h, threshold: 3, severity: high}\n"
    )
    arrivals = [incident(n, at) for n, at in enumerate(exact)]
    arrivals += [incident(1000 + n, at, p) for n, (at, p) in enumerate(coarse)]
    rnd.shuffle(arrivals)

    def alerts(with_coarse: bool) -> list[tuple[str, str, float, list[str]]]:
        state = ZoneState.new("shusha")
        out: list[AlertEvent] = []
        for i in arrivals:
            seen = [i] if with_coarse or i.time_precision is TimePrecision.EXACT else []
            out += evaluate_batch(hourly, state, seen, i.occurred_at)  # the clock only grows
        out += evaluate_batch(hourly, state, [], T0 + 10 * D)
        return [(e.status, e.alert_id, e.value, e.incident_ids) for e in out]

    assert alerts(True) == alerts(False)


def test_a_backtest_of_a_day_of_acled_rows_fires_no_zone_surge() -> None:
    """Twelve ACLED rows of one day in one zone (each its own event: one source never links
    to itself) fired `zone-surge`, "10 or more incidents within 1h", before the rules knew
    their times only to the day."""
    rows = [
        {
            "report_id": f"AZE{n}",
            "source": "acled",
            "source_type": "media",
            "occurred_at": "2022-09-13T12:00:00Z",
            "time_precision": "day",
            "location": {"lat": 39.76, "lon": 46.75, "precision": "town", "place": "Shusha"},
            "category": "small_arms_fire",
        }
        for n in range(12)
    ]
    now = datetime(2022, 9, 14, tzinfo=UTC)
    reports = [validate_report(json.dumps(r).encode(), now=now) for r in rows]
    accepted = [r for r in reports if isinstance(r, Report)]
    assert len(accepted) == 12
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    events = backtest(accepted, classifier.classify, load_rules(None))
    assert [e.rule for e in events if e.rule == "zone-surge"] == []
    # the same rows timed to the minute, within the hour, are a surge
    timed = [
        validate_report(
            json.dumps(
                {**r, "occurred_at": f"2022-09-13T12:{n:02d}:00Z", "time_precision": "exact"}
            ).encode(),
            now=now,
        )
        for n, r in enumerate(rows)
    ]
    events = backtest(
        [r for r in timed if isinstance(r, Report)], classifier.classify, load_rules(None)
    )
    assert ("zone-surge", "firing") in [(e.rule, e.status) for e in events]
