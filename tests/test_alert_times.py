"""When an alert starts and what its summary's "since" is: an alert never starts after the
clock that fired it (an incident dated a little ahead, by clock skew, kept its withdrawn
alert active in Alertmanager until then), and an incident alert's "since" is the earliest
incident it holds, the same at every update. Pure: the engine and the Alertmanager mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerting.alertmanager import to_alertmanager
from alerting.engine import evaluate_batch, evaluate_time
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from tests.test_alerting import inc, rules_of

pytestmark = pytest.mark.timeout(30)

M = timedelta(minutes=1)
S = timedelta(seconds=1)
NOW = datetime(2021, 5, 12, 14, 25, 20, tzinfo=UTC)

HELD = rules_of(
    """
rules:
  - name: hw
    kind: incident
    severity: high
    hold: 6h
    max_age: 24h
    match: {category: [heavy_weapons_fire]}
  - name: quiet
    kind: quiet_broken
    quiet: 24h
    hold: 6h
    severity: medium
    match: {category: [drone_strike]}
"""
)


def _one(events: list[AlertEvent], status: str, rule: str = "hw") -> AlertEvent:
    found = [e for e in events if e.status == status and e.rule == rule]
    assert len(found) == 1, events
    return found[0]


@pytest.mark.parametrize(("rule", "category"), [("hw", "heavy_weapons_fire")])
def test_an_incident_dated_ahead_starts_its_alert_at_the_clock(rule: str, category: str) -> None:
    """Reported 4m42s ahead (within the accepted clock skew): the alert started then, and
    its withdrawal 10 s later resolved it with `ends_at` = `starts_at` 4m32s ahead, which
    Alertmanager showed active until then and notified that late."""
    state = ZoneState.new("shusha")
    ahead = inc(NOW + 4 * M + 42 * S, category=category, incident_id="ahead")
    fired = _one(evaluate_batch(HELD, state, [ahead], NOW), "firing", rule)
    assert fired.starts_at == NOW
    assert "at 2021-05-12 14:30 UTC" in fired.summary  # the incident keeps its own time
    gone = evaluate_batch(HELD, state, [], NOW + 10 * S, forget=["ahead"])
    resolved = _one(gone, "resolved", rule)
    assert resolved.ends_at == NOW + 10 * S
    assert resolved.starts_at == NOW
    # the hold is still counted from the incident's time, not shortened by the clamp
    state2 = ZoneState.new("shusha")
    evaluate_batch(HELD, state2, [ahead], NOW)
    assert evaluate_time(HELD, state2, NOW + 6 * 3600 * S) == []
    ended = _one(evaluate_time(HELD, state2, NOW + 6 * 3600 * S + 5 * M), "resolved", rule)
    assert ended.ends_at == NOW + 4 * M + 42 * S + 6 * 3600 * S
    assert ended.starts_at == NOW


def test_a_quiet_broken_alert_dated_ahead_starts_at_the_clock_and_keeps_its_breaker() -> None:
    state = ZoneState(zone="shusha", since=int((NOW - 48 * 60 * M).timestamp() * 1000))
    ahead = inc(NOW + 4 * M, category="drone_strike", incident_id="breaker")
    fired = _one(evaluate_batch(HELD, state, [ahead], NOW), "firing", "quiet")
    assert fired.starts_at == NOW and fired.value == 48.07
    # a new version of the breaker (a second source's report, a precise time): it stays the
    # alert's breaker, and the alert moves to its time, still not after the clock
    moved = inc(NOW + 2 * M, category="drone_strike", incident_id="breaker")
    assert evaluate_batch(HELD, state, [moved], NOW + 1 * M) == []
    (event,) = state.firing()
    assert event.incident_ids == ["breaker"]
    assert event.starts_at == NOW + 1 * M
    assert 48.03 <= event.value <= 48.04  # its quiet measured to the new time (to 18 s)
    gone = evaluate_batch(HELD, state, [], NOW + 90 * S, forget=["breaker"])
    resolved = _one(gone, "resolved", "quiet")
    assert resolved.ends_at == NOW + 90 * S and resolved.starts_at <= resolved.ends_at


def test_a_resolved_alert_is_never_sent_to_alertmanager_in_the_future() -> None:
    """A state written before the fix may hold an alert started ahead of the clock."""
    ahead = NOW + 4 * M + 42 * S
    event = AlertEvent(
        alert_id="0b6a0e0c-3d8e-5b1a-9b7c-2f1d4e5a6b7c",
        fingerprint="1f2e3d4c5b6a7980",
        status="resolved",
        rule="hw",
        severity="high",
        labels={"zone": "shusha"},
        value=0,
        threshold=1,
        window="6h",
        starts_at=ahead,
        ends_at=ahead,
        incident_ids=[],
        summary="Resolved.",
    )
    body = to_alertmanager(event, "http://w", now=NOW + 10 * S)
    assert (body["startsAt"], body["endsAt"]) == ("2021-05-12T14:25:30Z",) * 2
    firing = event.model_copy(update={"status": "firing", "ends_at": None})
    assert to_alertmanager(firing, "http://w", now=NOW)["startsAt"] == "2021-05-12T14:25:20Z"
    # without `now`: as the event says, but a start never after the end
    early_end = event.model_copy(update={"ends_at": NOW})
    body = to_alertmanager(early_end, "http://w")
    assert body["startsAt"] == body["endsAt"] == "2021-05-12T14:25:20Z"


def test_an_incident_alert_s_since_is_its_earliest_incident_at_every_update() -> None:
    """Seen: starts_at 14:25:20, summary "since 12:03", earliest incident 09:19: the "since"
    was min(starts_at, this incident), recomputed at each update."""
    state = ZoneState.new("shusha")
    hw = "heavy_weapons_fire"
    fired = evaluate_batch(HELD, state, [inc(NOW, category=hw, incident_id="a")], NOW)
    first = _one(fired, "firing")
    assert first.starts_at == NOW

    def summary() -> str:
        (event,) = state.firing()
        assert event.starts_at == NOW  # the alert started when it fired
        return event.summary

    at = NOW.replace(hour=12, minute=3)
    evaluate_batch(HELD, state, [inc(at, category=hw, incident_id="b")], NOW + 5 * M)
    assert "2 incidents matching hw in zone shusha since 2021-05-12 12:03 UTC" in summary()
    at = NOW.replace(hour=9, minute=19)
    evaluate_batch(HELD, state, [inc(at, category=hw, incident_id="c")], NOW + 10 * M)
    assert "3 incidents matching hw in zone shusha since 2021-05-12 09:19 UTC" in summary()
    # a later one: still since 09:19 (it said "since 14:25": min(starts_at, this one))
    evaluate_batch(HELD, state, [inc(NOW + 15 * M, category=hw, incident_id="d")], NOW + 15 * M)
    assert "4 incidents matching hw in zone shusha since 2021-05-12 09:19 UTC" in summary()
    # through the changelog's parts: the same
    state = ZoneState.from_parts("shusha", state.parts())
    evaluate_batch(HELD, state, [inc(NOW + 20 * M, category=hw, incident_id="e")], NOW + 20 * M)
    assert "5 incidents matching hw in zone shusha since 2021-05-12 09:19 UTC" in summary()
    # the earliest withdrawn: since the earliest left
    evaluate_batch(HELD, state, [], NOW + 25 * M, forget=["c"])
    assert "4 incidents matching hw in zone shusha since 2021-05-12 12:03 UTC" in summary()
    # another withdrawn: unchanged
    evaluate_batch(HELD, state, [], NOW + 26 * M, forget=["d"])
    assert "3 incidents matching hw in zone shusha since 2021-05-12 12:03 UTC" in summary()


H = 60 * M


def test_a_new_version_dated_before_the_retention_keeps_its_incident_alert() -> None:
    """A precise report moving an incident three days back (a month-precision row stood at
    the clock; the rules keep 24 h): the new version was skipped as too old, so the alert it
    left resolved at once, "no incident ... matches any longer", while its incident stood."""
    state = ZoneState.new("shusha")
    _one(
        evaluate_batch(
            HELD, state, [inc(NOW, category="heavy_weapons_fire", incident_id="x")], NOW
        ),
        "firing",
    )
    moved = inc(NOW - 72 * H, category="heavy_weapons_fire", incident_id="x")
    assert evaluate_batch(HELD, state, [moved], NOW + M) == []
    (alert,) = state.firing()
    assert alert.incident_ids == ["x"] and alert.starts_at == NOW - 72 * H  # moved with it
    assert evaluate_time(HELD, state, NOW + M + 6 * H - S) == []  # held from the clock
    _one(evaluate_time(HELD, state, NOW + M + 6 * H + S), "resolved")
    # withdrawn instead: it resolves at once, as before
    state = ZoneState.new("shusha")
    evaluate_batch(HELD, state, [inc(NOW, category="heavy_weapons_fire", incident_id="x")], NOW)
    evaluate_batch(HELD, state, [moved], NOW + M)
    _one(evaluate_batch(HELD, state, [], NOW + 2 * M, forget=["x"]), "resolved")


def test_a_merge_into_a_survivor_dated_before_the_retention_keeps_the_alert() -> None:
    state = ZoneState.new("shusha")
    evaluate_batch(HELD, state, [inc(NOW, category="heavy_weapons_fire", incident_id="z")], NOW)
    survivor = inc(NOW - 11 * H - 24 * H, category="heavy_weapons_fire", incident_id="z0")
    events = evaluate_batch(HELD, state, [survivor], NOW + M, forget=["z"], merged_into={"z": "z0"})
    assert events == []
    assert [a.incident_ids for a in state.firing()] == [["z0"]]


@pytest.mark.parametrize(
    ("age", "fires"), [(24 * H - S, True), (24 * H, True), (24 * H + S, False)]
)
def test_a_late_incident_fires_unless_it_occurred_more_than_max_age_before(
    age: timedelta, fires: bool
) -> None:
    """`max_age: 24h`: late reports of incidents that occurred more than 24 h before they
    arrive are ignored (docs/alerting.md); one exactly 24 h old was ignored too."""
    state = ZoneState.new("shusha", since=NOW - 30 * 24 * H)
    events = evaluate_batch(
        HELD, state, [inc(NOW - age, category="heavy_weapons_fire", incident_id="late")], NOW
    )
    assert bool([e for e in events if e.rule == "hw"]) is fires
