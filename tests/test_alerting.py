"""The alerting core: rule files, each rule kind firing and resolving, de-duplication,
state round-trips and backtesting. Pure: no broker, no clock."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from alerting.alert_ids import alert_id_for, fingerprint
from alerting.backtest import backtest, render_backtest
from alerting.engine import evaluate_batch, evaluate_incident, evaluate_time, next_deadline
from alerting.rules import RuleFileError, RuleSet, load_rules, parse_rules
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput, from_incident
from schemas.codes import VERIFICATION_BY_SOURCE_TYPE, Party
from schemas.incident import Incident, incident_id_for
from schemas.report import Report
from schemas.validation import validate_report
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.record.alert_view import alert_input
from streams.record.book import IncidentBook
from streams.record.documents import version_of
from streams.record.incident import Status
from streams.record.linking import LinkRule
from streams.record.model import ReportVersion
from streams.tools.simulate import Simulator

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2021, 5, 12, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
D = timedelta(days=1)

_ids = itertools.count(1)

SEVERITY = {
    "small_arms_fire": "medium",
    "heavy_weapons_fire": "high",
    "drone_strike": "high",
    "obstruction_of_movement": "medium",
    "attack_on_peacekeepers": "critical",
    "airspace_violation": "low",
}


def report_incident(
    at: datetime,
    zone: str = "shusha",
    category: str = "small_arms_fire",
    party: str = "az",
    killed: int = 0,
    wounded: int = 0,
    incident_id: str | None = None,
) -> Incident:
    severity = SEVERITY.get(category, "medium")
    if killed:
        severity = "critical"
    elif wounded and severity in ("low", "medium"):
        severity = "high"
    return Incident(
        incident_id=incident_id or f"inc-{next(_ids)}",
        report_id="r",
        source="pkf-op-1",
        source_type="observation_post",
        occurred_at=at,
        reported_at=at,
        received_at=at,
        zone=zone,
        lat=39.76,
        lon=46.75,
        category=category,
        provision="complete ceasefire",
        perpetrator=party,
        target="am",
        killed=killed,
        wounded=wounded,
        severity=severity,
        verification="observed",
    )


def inc(at: datetime, **fields: Any) -> AlertInput:
    """`report_incident(at, **fields)` standing for its incident, as the alert stage reads it."""
    return from_incident(report_incident(at, **fields))


def rules_of(text: str) -> RuleSet:
    return parse_rules(text, source="test.yaml")


def run(
    rules: RuleSet, state: ZoneState, incidents: list[AlertInput], *, now: datetime | None = None
) -> list[AlertEvent]:
    """Evaluate incidents one by one, each at its own event time (or at `now`)."""
    events: list[AlertEvent] = []
    for i in incidents:
        events += evaluate_incident(rules, state, i, now or i.occurred_at)
    return events


def firing(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.status == "firing"]


def resolved(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.status == "resolved"]


DEFAULT = load_rules(None)

SURGE = rules_of(
    """
rules:
  - name: surge
    kind: threshold
    window: 1h
    threshold: 10
    overrides: {lachin-corridor: 3}
    severity: high
"""
)


# -- the rule file -----------------------------------------------------------------------


def test_default_rules_have_the_contract_names_and_thresholds() -> None:
    names = [r.name for r in DEFAULT.rules]
    assert names == [
        "casualties",
        "attack-on-peacekeepers",
        "heavy-weapons",
        "corridor-obstruction",
        "zone-surge",
        "escalation",
        "quiet-broken",
        "fatality-peak-1y",
        "fatality-peak-3y",
        "fatality-peak-theatre-1y",
        "fatality-peak-theatre-3y",
    ]
    by = {r.name: r for r in DEFAULT.rules}
    surge = by["zone-surge"]
    assert surge.kind == "threshold"
    assert (surge.window.seconds, surge.threshold, surge.severity) == (3600, 10, "high")
    esc = by["escalation"]
    assert esc.kind == "escalation"
    assert (esc.window.seconds, esc.baseline.seconds, esc.factor, esc.min_count) == (
        86_400,
        7 * 86_400,
        3,
        5,
    )
    quiet = by["quiet-broken"]
    assert quiet.kind == "quiet_broken"
    assert (quiet.quiet.seconds, quiet.severity) == (72 * 3600, "medium")
    assert by["attack-on-peacekeepers"].severity == "critical"
    assert by["corridor-obstruction"].match.zone == ["lachin-corridor"]
    assert DEFAULT.retention_seconds == 8 * 86_400


def test_default_rules_name_only_catalogue_zones() -> None:
    from streams.classify.zones import ZoneCatalogue

    load_rules(None, known_zones=ZoneCatalogue.load().ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - {name: a, kind: threshold, window: 1 hour, threshold: 3, severity: high}",
            "rule 'a' (rules[0]): window: invalid duration '1 hour'",
        ),
        (
            "rules:\n  - {name: a, kind: threshold, window: 60, threshold: 3, severity: high}",
            "rule 'a' (rules[0]): window: a duration must be a number with a unit",
        ),
        (
            "rules:\n  - {name: a, kind: threshold, window: 1h, threshold: 0, severity: high}",
            "rule 'a' (rules[0]): threshold: Input should be greater than or equal to 1",
        ),
        (
            "rules:\n  - {name: a, kind: thresold, window: 1h, threshold: 3, severity: high}",
            "rule 'a' (rules[0]): kind: unknown rule kind 'thresold'; use one of incident",
        ),
        (
            "rules:\n  - {name: a, kind: incident, severity: high, hodl: 6h}",
            "rule 'a' (rules[0]): hodl: unknown field",
        ),
        (
            "rules:\n  - {name: a, kind: incident, severity: urgent}",
            "rule 'a' (rules[0]): severity: Input should be 'low', 'medium', 'high' or "
            "'critical' (got 'urgent')",
        ),
        (
            "rules:\n  - {name: a, kind: incident, severity: high, match: {category: [shelling]}}",
            "rule 'a' (rules[0]): match.category.0: Input should be",
        ),
        (
            "rules:\n  - {name: a, kind: incident, severity: high}\n"
            "  - {name: a, kind: incident, severity: low}",
            "line 3: rule 'a' (rules[1]): name: rule name 'a' is used twice (first by "
            "rules[0], line 2)",
        ),
        (
            "rules:\n  - {kind: incident, severity: high}",
            "rules[0]: name: required field is missing",
        ),
        (
            "rules:\n  - {name: e, kind: escalation, window: 24h, baseline: 36h, factor: 3,"
            " min_count: 5, severity: high}",
            "rule 'e' (rules[0]): baseline 36h must be a whole number of windows of 24h",
        ),
        (
            "max_incidents_per_zone: 100\nrules:\n  - {name: big, kind: threshold, window: 1h,"
            " threshold: 500, severity: high}",
            "line 3: rule 'big' (rules[0]): it needs 500 incidents, more than "
            "max_incidents_per_zone (100)",
        ),
        ("rules: [\n  - name: a", "not valid YAML at line"),
        # a key given twice: PyYAML kept the last, so a second `rules:` section dropped
        # every rule above it
        (
            "rules:\n  - {name: a, kind: incident, severity: high}\n"
            "rules:\n  - {name: b, kind: incident, severity: low}",
            "at line 3, column 1: key 'rules' is given twice",
        ),
        (
            "rules:\n  - name: a\n    kind: threshold\n    window: 1h\n    threshold: 10\n"
            "    threshold: 2\n    severity: high",
            "at line 6, column 5: key 'threshold' is given twice",
        ),
        # a boolean, a text or an infinity where a number belongs
        (
            "rules:\n  - {name: a, kind: threshold, window: 1h, threshold: yes, severity: high}",
            "rule 'a' (rules[0]): threshold: Input should be a valid integer",
        ),
        (
            "rules:\n  - {name: a, kind: threshold, window: 1h, threshold: '5', severity: high}",
            "rule 'a' (rules[0]): threshold: Input should be a valid integer",
        ),
        (
            "rules:\n  - {name: a, kind: incident, severity: high, match: {min_killed: true}}",
            "match.min_killed: Input should be a valid integer",
        ),
        (
            "rules:\n  - {name: e, kind: escalation, window: 1h, baseline: 2h, factor: .inf,"
            " min_count: 5, severity: high}",
            "rule 'e' (rules[0]): factor: Input should be a finite number",
        ),
        ("", "the file is empty"),
        ("- a\n- b", "the top level must be a mapping"),
        ("rulez: []", "rulez: unknown field"),
    ],
)
def test_rule_file_errors_name_the_rule_and_field(text: str, expected: str) -> None:
    with pytest.raises(RuleFileError) as err:
        parse_rules(text, source="my-rules.yaml")
    assert "my-rules.yaml" in str(err.value)
    assert expected in str(err.value)


def test_rule_file_missing_and_unknown_zones(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"nope\.yaml: no such file"):
        load_rules(tmp_path / "nope.yaml")
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {name: s, kind: threshold, window: 1h, threshold: 3, severity: high,"
        " overrides: {lachin-coridor: 2}}\n"
    )
    assert load_rules(path).rules[0].name == "s"
    with pytest.raises(
        RuleFileError,
        match=r"line 2: rule 's' \(rules\[0\]\): overrides: unknown zone 'lachin-coridor'",
    ):
        load_rules(path, known_zones={"lachin-corridor", "shusha"})


# -- incident rules ----------------------------------------------------------------------


def test_incident_rule_fires_once_updates_and_resolves_after_hold() -> None:
    state = ZoneState.new("shusha")
    first = inc(T0, category="heavy_weapons_fire")
    events = run(DEFAULT, state, [first])
    assert [(e.rule, e.status, e.severity) for e in events] == [("heavy-weapons", "firing", "high")]
    alert = events[0]
    assert alert.labels == {"zone": "shusha"}
    assert alert.fingerprint == fingerprint("heavy-weapons", {"zone": "shusha"})
    assert alert.incident_ids == [first.incident_id]
    assert alert.starts_at == T0
    assert alert.window == "6h"
    assert alert.summary.startswith("Heavy weapons fire by az against am in zone shusha at 2021")

    # Two more within the hold: no new firing, the alert is updated and the hold extended.
    second = inc(T0 + 2 * H, category="drone_strike")
    third = inc(T0 + 4 * H, category="heavy_weapons_fire")
    assert run(DEFAULT, state, [second, third]) == []
    [current] = [a for a in state.firing() if a.rule == "heavy-weapons"]
    assert current.value == 3
    assert current.incident_ids == [first.incident_id, second.incident_id, third.incident_id]
    assert current.alert_id == alert.alert_id

    assert evaluate_time(DEFAULT, state, T0 + 9 * H) == []
    assert next_deadline(DEFAULT, state) == T0 + 10 * H
    done = evaluate_time(DEFAULT, state, T0 + 11 * H)
    assert [(e.rule, e.status) for e in done] == [("heavy-weapons", "resolved")]
    assert done[0].ends_at == T0 + 10 * H  # exactly `hold` after the latest match
    assert done[0].alert_id == alert.alert_id
    assert done[0].value == 3
    assert state.firing() == []

    # After resolution the next match is a new episode with a new id.
    again = run(DEFAULT, state, [inc(T0 + 12 * H, category="drone_strike")])
    assert [e.status for e in again] == ["firing"]
    assert again[0].fingerprint == alert.fingerprint
    assert again[0].alert_id != alert.alert_id


def test_alert_times_are_written_in_one_form_to_the_millisecond() -> None:
    """Whole seconds and fractions alike: `...T00:00:00.000Z`, `...T00:00:00.250Z`."""
    state = ZoneState.new("shusha")
    [fired] = run(DEFAULT, state, [inc(T0, category="heavy_weapons_fire")])
    whole = fired.model_copy(update={"ends_at": T0 + timedelta(milliseconds=250)})
    body = json.loads(whole.model_dump_json())
    assert body["starts_at"] == "2021-05-12T10:00:00.000Z", body
    assert body["ends_at"] == "2021-05-12T10:00:00.250Z", body
    assert AlertEvent.model_validate_json(whole.model_dump_json()) == whole
    assert json.loads(fired.model_dump_json())["ends_at"] is None


def test_a_new_version_of_an_incident_whose_alert_resolved_fires_nothing_again() -> None:
    """A late corroboration of an event alerted on and resolved fired the rule again for
    the same event (the backtest showed it twice); a change that makes it match anew does."""
    state = ZoneState.new("shusha")
    first = inc(T0, category="heavy_weapons_fire", wounded=1, incident_id="hw-1")
    fired = run(DEFAULT, state, [first])
    assert {(e.rule, e.status) for e in fired} == {
        ("heavy-weapons", "firing"),
        ("casualties", "firing"),
    }
    assert {(e.rule, e.status) for e in evaluate_time(DEFAULT, state, T0 + 7 * H)} == {
        ("heavy-weapons", "resolved"),
        ("casualties", "resolved"),
    }
    later = dataclasses.replace(first, wounded=3)  # a report 9 h on: more wounded
    assert run(DEFAULT, state, [later], now=T0 + 9 * H) == []
    # a death: the casualties rule's critical group, which this event had not fired
    dead = dataclasses.replace(first, wounded=3, killed=1)
    [death] = run(DEFAULT, state, [dead], now=T0 + 10 * H)
    assert (death.rule, death.severity, death.incident_ids) == ("casualties", "critical", ["hw-1"])


def test_an_alert_goes_to_the_incident_its_incident_was_merged_into() -> None:
    """Merged into an incident older than `max_age` (a late report bridged the two), the
    alert's only incident left it, and the alert resolved ("no incident of this alert
    matches ... any longer"); when a regrouping split them again, it fired again with
    the same alert_id. The survivor takes its place."""

    def merged(into: str | None) -> tuple[ZoneState, list[AlertEvent], str]:
        state = ZoneState.new("shusha")
        x = inc(T0, category="heavy_weapons_fire", incident_id="x")
        [alert] = run(DEFAULT, state, [x])
        old = inc(T0 - 2 * D, category="heavy_weapons_fire", incident_id="y")  # past max_age
        events = evaluate_batch(
            DEFAULT,
            state,
            [old],
            T0 + H,
            forget=["x"],
            merged_into={} if into is None else {"x": into},
        )
        return state, events, alert.alert_id

    state, events, alert_id = merged("y")
    assert events == []
    [held] = state.firing()
    assert (held.alert_id, held.incident_ids, held.value) == (alert_id, ["y"], 1.0)
    # what the merge was not told: the alert resolves, as before
    _, events, _ = merged(None)
    assert [(e.rule, e.status) for e in events] == [("heavy-weapons", "resolved")]


def test_a_rename_after_the_alert_resolved_pages_no_more() -> None:
    """A second source's report of the same shelling, as early or earlier, renames the
    incident (docs/record.md): after the first alert's hold, the renamed incident fired
    `heavy-weapons` again, a second page for one event."""
    state = ZoneState.new("shusha")
    x = inc(T0, category="heavy_weapons_fire", incident_id="x")
    [alert] = run(DEFAULT, state, [x])
    [done] = evaluate_time(DEFAULT, state, T0 + 7 * H)
    assert (done.alert_id, done.status) == (alert.alert_id, "resolved")
    renamed = inc(T0 - 2 * M, category="heavy_weapons_fire", incident_id="y")
    assert (
        evaluate_batch(DEFAULT, state, [renamed], T0 + 8 * H, forget=["x"], merged_into={"x": "y"})
        == []
    )
    # a rename that adds a death is a new match of the casualties rule's critical group
    dead = inc(T0 - 3 * M, category="heavy_weapons_fire", killed=1, incident_id="z")
    fired = evaluate_batch(DEFAULT, state, [dead], T0 + 9 * H, forget=["y"], merged_into={"y": "z"})
    assert [(e.rule, e.severity) for e in fired] == [("casualties", "critical")]


def test_the_backtest_pages_once_for_a_day_report_and_its_precise_report() -> None:
    """A media report giving the day (it stands at the local midnight, 20:00 UTC) fired
    `heavy-weapons`; the post's precise report the next morning renamed the incident and
    fired it again after the hold: two pages for one event in the backtest."""
    day = {
        "report_id": "m-ld",
        "source": "media-news",
        "source_type": "media",
        "occurred_at": "2026-12-01T00:00:00+04:00",
        "time_precision": "day",
        "location": {"lat": 39.79, "lon": 46.07, "precision": "town"},
        "category": "heavy_weapons_fire",
    }
    precise = {
        "report_id": "op-ld2",
        "source": "pkf-op-ld",
        "source_type": "observation_post",
        "occurred_at": "2026-12-01T07:02:00Z",
        "location": {"lat": 39.79, "lon": 46.07},
        "category": "heavy_weapons_fire",
    }
    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    reports = [validate_report(json.dumps(r).encode(), now=now) for r in (day, precise)]
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    events = backtest([r for r in reports if isinstance(r, Report)], classifier.classify, DEFAULT)
    assert [(e.rule, e.status) for e in events] == [
        ("heavy-weapons", "firing"),
        ("heavy-weapons", "resolved"),
    ], [(e.rule, e.status, e.starts_at) for e in events]


def test_casualties_severity_critical_when_killed_as_its_own_alert() -> None:
    state = ZoneState.new("loc-east")
    wounded = inc(T0, zone="loc-east", wounded=2)
    killed = inc(T0 + M, zone="loc-east", killed=1, wounded=1)
    events = run(DEFAULT, state, [wounded, killed])
    cas = [e for e in events if e.rule == "casualties"]
    assert [(e.severity, e.labels) for e in cas] == [
        ("high", {"zone": "loc-east", "severity": "high"}),
        ("critical", {"zone": "loc-east", "severity": "critical"}),
    ]
    assert cas[0].fingerprint != cas[1].fingerprint
    assert "1 killed and 1 wounded" in cas[1].summary
    # No casualties: no casualties alert.
    assert not [
        e for e in run(DEFAULT, state, [inc(T0 + 2 * M, zone="loc-east")]) if e.rule == "casualties"
    ]


def test_attack_on_peacekeepers_and_corridor_obstruction() -> None:
    corridor = ZoneState.new("lachin-corridor")
    events = run(
        DEFAULT,
        corridor,
        [
            inc(T0, zone="lachin-corridor", category="obstruction_of_movement", party="az"),
            inc(T0 + M, zone="lachin-corridor", category="attack_on_peacekeepers"),
        ],
    )
    assert {(e.rule, e.severity) for e in events} == {
        ("corridor-obstruction", "high"),
        ("attack-on-peacekeepers", "critical"),
    }
    # Obstruction elsewhere is not a corridor obstruction.
    other = ZoneState.new("loc-north")
    assert (
        run(DEFAULT, other, [inc(T0, zone="loc-north", category="obstruction_of_movement")]) == []
    )


def test_late_incident_fires_incident_rules_only_within_max_age() -> None:
    state = ZoneState.new("shusha")
    now = T0 + 10 * D
    old = inc(now - 2 * D, category="heavy_weapons_fire")  # max_age 24h: history, no alert
    assert run(DEFAULT, state, [old], now=now) == []
    recent = inc(now - 20 * H, category="heavy_weapons_fire")
    events = run(DEFAULT, state, [recent], now=now)
    assert [e.rule for e in events] == ["heavy-weapons"]
    assert events[0].starts_at == recent.occurred_at
    # The hold runs from when the monitor saw it, not from when it occurred.
    assert next_deadline(DEFAULT, state) == now + 6 * H


# -- threshold rules ---------------------------------------------------------------------


def test_threshold_fires_at_the_threshold_once_and_resolves_when_count_drops() -> None:
    state = ZoneState.new("shusha")
    burst = [inc(T0 + i * M) for i in range(9)]
    assert run(SURGE, state, burst) == []
    tenth = inc(T0 + 9 * M)
    [alert] = run(SURGE, state, [tenth])
    assert (alert.rule, alert.status, alert.value, alert.threshold, alert.window) == (
        "surge",
        "firing",
        10,
        10,
        "1h",
    )
    assert alert.labels == {"zone": "shusha"}
    assert alert.summary == "10 incidents in zone shusha within 1h (threshold 10)."
    assert alert.starts_at == tenth.occurred_at
    assert alert.incident_ids[-1] == tenth.incident_id

    more = [inc(T0 + (10 + i) * M) for i in range(15)]
    assert run(SURGE, state, more) == []  # one firing per fingerprint
    [current] = state.firing()
    assert current.value == 25
    assert len(current.incident_ids) == 20  # at most 20, the most recent
    assert current.incident_ids[-1] == more[-1].incident_id

    # 25 incidents at T0 .. T0+24m: fewer than 10 remain once the 16th (T0+15m) leaves.
    assert next_deadline(SURGE, state) == T0 + 15 * M + H
    assert evaluate_time(SURGE, state, T0 + 15 * M + H - timedelta(seconds=1)) == []
    [done] = evaluate_time(SURGE, state, T0 + 15 * M + H)
    assert (done.status, done.value, done.ends_at) == ("resolved", 9, T0 + 15 * M + H)
    assert done.alert_id == alert.alert_id
    assert "below the threshold of 10" in done.summary
    # the incidents still counted, not those that left the window
    assert done.incident_ids == [i.incident_id for i in more[-9:]]


def test_a_dip_within_one_step_neither_resolves_nor_fires_again() -> None:
    """At the threshold, a new version of a counted incident (a report joined it) takes
    it out and puts it back within one step; a merge takes one incident out while a new
    one comes in: the count dips and comes back in the step, and the alert stays firing,
    with nothing published (it resolved and fired again at the same instant before). A
    merge alone leaves the count below the threshold: resolved at once."""
    state = ZoneState.new("shusha")
    burst = [inc(T0 + i * M, incident_id=f"a{i}") for i in range(10)]
    [alert] = run(SURGE, state, burst)
    now = T0 + 11 * M
    joined = inc(T0 + 5 * M, incident_id="a5", killed=1)
    assert evaluate_batch(SURGE, state, [joined], now) == []
    assert state.incidents[5].killed == 1 and [a.value for a in state.firing()] == [10]
    newcomer = inc(T0 + 11 * M, incident_id="b")
    assert evaluate_batch(SURGE, state, [newcomer], now, forget=["a3"]) == []
    assert [a.value for a in state.firing()] == [10]
    [done] = evaluate_batch(SURGE, state, [], now + M, forget=["a4"])
    assert (done.status, done.value, done.alert_id) == ("resolved", 9, alert.alert_id)
    assert done.ends_at == now + M


def test_a_firing_threshold_alert_s_summary_says_its_current_count() -> None:
    """A withdrawal, a merge or the clock lowered `value` but left the summary with the
    count of the last incident that came in (value 296, "297 incidents ...")."""
    state = ZoneState.new("shusha")
    run(SURGE, state, [inc(T0 + i * M, incident_id=f"a{i}") for i in range(12)])
    evaluate_batch(SURGE, state, [], T0 + 12 * M, forget=["a5"])
    [alert] = state.firing()
    assert (alert.value, alert.summary) == (
        11,
        "11 incidents in zone shusha within 1h (threshold 10).",
    )
    evaluate_time(SURGE, state, T0 + H + 30 * S)  # a0 left the window
    [alert] = state.firing()
    assert (alert.value, alert.summary) == (
        10,
        "10 incidents in zone shusha within 1h (threshold 10).",
    )


def test_threshold_per_zone_override() -> None:
    corridor = ZoneState.new("lachin-corridor")
    events = run(SURGE, corridor, [inc(T0 + i * M, zone="lachin-corridor") for i in range(3)])
    assert [(e.value, e.threshold) for e in events] == [(3, 3)]
    shusha = ZoneState.new("shusha")
    assert run(SURGE, shusha, [inc(T0 + i * M) for i in range(3)]) == []


def test_threshold_grouped_by_party_labels_each_party() -> None:
    rules = rules_of(
        """
rules:
  - name: party-surge
    kind: threshold
    window: 1h
    threshold: 3
    group_by: [party]
    match: {category: [small_arms_fire, heavy_weapons_fire]}
    severity: medium
"""
    )
    state = ZoneState.new("loc-north")
    events = run(
        rules,
        state,
        [
            inc(T0, zone="loc-north", party="az"),
            inc(T0 + M, zone="loc-north", party="am"),
            inc(T0 + 2 * M, zone="loc-north", party="az", category="airspace_violation"),
            inc(T0 + 3 * M, zone="loc-north", party="az", category="heavy_weapons_fire"),
            inc(T0 + 4 * M, zone="loc-north", party="am"),
            inc(T0 + 5 * M, zone="loc-north", party="az"),
        ],
    )
    assert [(e.labels, e.value) for e in events] == [({"zone": "loc-north", "party": "az"}, 3)]
    assert events[0].summary.startswith("3 incidents by az in zone loc-north within 1h")


def test_late_incident_counts_only_in_the_current_window() -> None:
    state = ZoneState.new("shusha")
    now = T0 + 5 * D
    # Nine current incidents, then a tenth that occurred yesterday: no surge.
    run(SURGE, state, [inc(now - 30 * M + i * M) for i in range(9)], now=now)
    assert run(SURGE, state, [inc(now - D)], now=now) == []
    # A late one still inside the current hour completes it.
    [alert] = run(SURGE, state, [inc(now - 50 * M)], now=now)
    assert alert.value == 10
    assert alert.starts_at == now


# -- escalation --------------------------------------------------------------------------


def test_escalation_fires_against_the_baseline_and_resolves() -> None:
    rules = rules_of(
        """
rules:
  - name: escalation
    kind: escalation
    window: 24h
    baseline: 7d
    factor: 3
    min_count: 5
    severity: high
"""
    )
    state = ZoneState.new("loc-east", since=T0 - 30 * D)
    now = T0 + 20 * D
    # Baseline: 2 incidents a day in each of the 7 days before the current 24 h (mean 2).
    history = [inc(now - D - d * D - h * H, zone="loc-east") for d in range(7) for h in (1, 2)]
    assert run(rules, state, history, now=now) == []
    # In the current day: 5 is enough for min_count but not 3x the mean of 2.
    current = [inc(now - (10 - i) * M, zone="loc-east") for i in range(6)]
    assert run(rules, state, current[:5], now=now) == []
    [alert] = run(rules, state, current[5:], now=now)
    assert (alert.value, alert.threshold, alert.starts_at) == (6, 6, now)
    assert "3.0x the mean of 2.0 per 24h over the previous 7d" in alert.summary
    assert alert.incident_ids == [i.incident_id for i in current]
    # Two more: updated, not fired again.
    more = [inc(now - 3 * M, zone="loc-east"), inc(now - 2 * M, zone="loc-east")]
    assert run(rules, state, more, now=now) == []
    assert state.firing()[0].value == 8
    # Time passes; as the current day empties into the baseline, the alert resolves.
    out: list[AlertEvent] = []
    while (d := next_deadline(rules, state)) is not None:
        out += evaluate_time(rules, state, d)
    [done] = out
    assert done.status == "resolved"
    assert done.alert_id == alert.alert_id
    # The oldest history leaves the baseline as the current incidents enter it: at
    # current[1] + 24h, 6 remain against a mean of 14/7 (6 >= 6, holds); a minute later
    # 5 remain against 15/7 (5 < 6.4).
    assert done.ends_at == current[2].occurred_at + D
    assert (done.value, done.threshold) == (5, round(3 * 15 / 7, 3))


def test_escalation_needs_min_count_and_observed_baseline() -> None:
    rules = DEFAULT
    # Since observation began 2 days ago, only 1 baseline day is known (0 incidents).
    state = ZoneState.new("tavush-border", since=T0 - 2 * D)
    events = run(rules, state, [inc(T0 + i * H, zone="tavush-border") for i in range(4)])
    assert not [e for e in events if e.rule == "escalation"]
    events = run(rules, state, [inc(T0 + 4 * H, zone="tavush-border")])
    [esc] = [e for e in events if e.rule == "escalation"]
    assert "none in the previous 1x24h" in esc.summary
    # Less than one full window observed: the baseline is unknown, nothing fires.
    fresh = ZoneState.new("syunik-border", since=T0 - 12 * H)
    events = run(rules, fresh, [inc(T0 + i * M, zone="syunik-border") for i in range(8)])
    assert not [e for e in events if e.rule == "escalation"]


# -- quiet broken ------------------------------------------------------------------------

QUIET = rules_of(
    """
rules:
  - name: quiet-broken
    kind: quiet_broken
    quiet: 72h
    hold: 6h
    max_age: 24h
    severity: medium
"""
)


def test_quiet_broken_fires_after_the_quiet_period_and_resolves_after_hold() -> None:
    state = ZoneState.new("kalbajar-district")
    z = "kalbajar-district"
    # Never seen before and no known observation start: not "after a quiet period".
    assert run(QUIET, state, [inc(T0, zone=z)]) == []
    assert run(QUIET, state, [inc(T0 + 71 * H, zone=z)]) == []  # 71 h: not quiet enough
    breaker = inc(T0 + 71 * H + 72 * H, zone=z)
    [alert] = run(QUIET, state, [breaker])
    assert (alert.rule, alert.severity, alert.value, alert.threshold) == (
        "quiet-broken",
        "medium",
        72,
        72,
    )
    assert alert.summary.startswith("First incident in zone kalbajar-district after 72 h of quiet")
    assert alert.starts_at == breaker.occurred_at
    assert run(QUIET, state, [inc(breaker.occurred_at + H, zone=z)]) == []
    [done] = evaluate_time(QUIET, state, breaker.occurred_at + 7 * H)
    assert (done.status, done.ends_at) == ("resolved", breaker.occurred_at + 6 * H)


def test_a_second_source_of_the_quiet_breaking_incident_keeps_its_alert() -> None:
    """It resolved the alert at once ("no incident of this alert matches ... any longer"):
    the new version was measured against itself as the group's latest incident."""
    z = "kalbajar-district"
    state = ZoneState.new(z, since=T0 - 10 * D)
    breaker = inc(T0, zone=z, incident_id="q-1")
    [alert] = run(QUIET, state, [breaker])
    corroborated = dataclasses.replace(breaker, wounded=1)  # a second report joined it
    assert run(QUIET, state, [corroborated], now=T0 + 5 * M) == []
    [held] = state.firing()
    assert (held.alert_id, held.incident_ids) == (alert.alert_id, ["q-1"])
    [done] = evaluate_time(QUIET, state, T0 + 7 * H)
    assert (done.status, done.ends_at) == ("resolved", T0 + 6 * H)  # at the end of its hold
    # withdrawn, it still leaves the alert
    again = ZoneState.new(z, since=T0 - 10 * D)
    run(QUIET, again, [breaker])
    [gone] = evaluate_batch(QUIET, again, [], T0 + 5 * M, forget=["q-1"])
    assert (gone.status, gone.rule) == ("resolved", "quiet-broken")


def test_alerts_move_to_their_incident_s_hour_when_a_precise_report_joins_a_day_report() -> None:
    """A day report (standing at 10:00) fired an incident alert and broke a quiet; a post's
    report put the event at 14:30. Both alerts kept 10:00, and the quiet-broken summary its
    gap to 10:00: they now start at 14:30, the gap and hold run to it."""
    z = "kalbajar-district"
    day = inc(T0, zone=z, category=HEAVY, incident_id="d-1")
    precise = dataclasses.replace(day, occurred_ms=day.occurred_ms + int(4.5 * 3_600_000))
    at_1430 = T0 + 4 * H + 30 * M
    state = ZoneState.new(z, since=T0 - 4 * D)
    rules = rules_of(
        """
rules:
  - name: heavy
    kind: incident
    match: {category: [heavy_weapons_fire]}
    hold: 6h
    severity: high
  - name: quiet
    kind: quiet_broken
    quiet: 72h
    hold: 6h
    severity: medium
"""
    )
    fired = evaluate_batch(rules, state, [day], T0 + M)
    assert sorted((e.rule, e.starts_at, e.value) for e in fired) == [
        ("heavy", T0, 1.0),
        ("quiet", T0, 96.0),
    ]
    assert evaluate_batch(rules, state, [precise], T0 + 5 * H) == []
    alerts = {a.rule: a for a in state.firing()}
    assert [(a.starts_at, a.incident_ids) for a in alerts.values()] == [(at_1430, ["d-1"])] * 2
    assert alerts["heavy"].alert_id == fired[0].alert_id
    assert "at 2021-05-12 14:30 UTC" in alerts["heavy"].summary, alerts["heavy"].summary
    assert alerts["quiet"].value == 100.5
    assert "after 100 h of quiet" in alerts["quiet"].summary, alerts["quiet"].summary
    assert "14:30" in alerts["quiet"].summary, alerts["quiet"].summary
    resolved = evaluate_time(rules, state, at_1430 + 7 * H)
    assert sorted((e.rule, e.ends_at) for e in resolved) == [
        ("heavy", T0 + 11 * H),  # the hold from the step's clock, as for any new version
        ("quiet", at_1430 + 6 * H),  # `hold` after the incident
    ]


def test_quiet_broken_measures_from_observation_start_when_known() -> None:
    state = ZoneState.new("gegharkunik-border", since=T0 - 4 * D)
    [alert] = run(QUIET, state, [inc(T0, zone="gegharkunik-border")])
    assert alert.value == 96
    # An incident out of order (earlier than the latest seen) never breaks a quiet period.
    assert run(QUIET, state, [inc(T0 - 3 * H, zone="gegharkunik-border")]) == []


def test_a_withdrawn_false_report_no_longer_ends_the_quiet() -> None:
    """A false report broke the quiet and was withdrawn; it stayed its group's latest
    incident, so a real incident after it broke no quiet. The quiet is measured from the
    incident before it, or, when none is left in retention, from the retention's start (a
    lower bound)."""
    z = "shusha"

    def quiet(events: list[AlertEvent]) -> list[float]:
        return [e.value for e in firing(events) if e.rule == "quiet-broken"]

    # the default rules keep 8 days: the incident before the false one is still held
    state = ZoneState.new(z, since=T0 - 30 * D)
    run(DEFAULT, state, [inc(T0 - 2 * D, zone=z, category="engineering_works")])
    false = inc(T0 + 2 * D, zone=z, category="engineering_works", incident_id="false")
    assert quiet(run(DEFAULT, state, [false])) == [96]
    evaluate_batch(DEFAULT, state, [], T0 + 2 * D + 30 * M, forget=["false"])
    real = inc(T0 + 2 * D + 1 * H, zone=z, category="engineering_works")
    assert quiet(run(DEFAULT, state, [real])) == [97]  # from the incident before the false one

    # rules keeping less than the quiet before it: from the retention's start
    state = ZoneState.new(z, since=T0 - 30 * D)
    run(QUIET, state, [inc(T0 - 2 * D, zone=z)])
    assert quiet(run(QUIET, state, [inc(T0 + 3 * D, zone=z, incident_id="false")])) == [120]
    withdrawn = evaluate_batch(QUIET, state, [], T0 + 3 * D + 30 * M, forget=["false"])
    assert [e.status for e in withdrawn] == ["resolved"]
    [value] = quiet(run(QUIET, state, [inc(T0 + 3 * D + 1 * H, zone=z)]))
    assert 72 <= value < 120

    # a merge is no withdrawal: the survivor stands for the incident, no quiet comes back
    state = ZoneState.new(z, since=T0 - 30 * D)
    run(QUIET, state, [inc(T0 - 2 * D, zone=z)])
    run(QUIET, state, [inc(T0 + 3 * D, zone=z, incident_id="merged")])
    evaluate_batch(
        QUIET, state, [], T0 + 3 * D + 30 * M, forget=["merged"], merged_into={"merged": "x"}
    )
    assert quiet(run(QUIET, state, [inc(T0 + 3 * D + 1 * H, zone=z)])) == []


def test_a_late_report_from_before_observation_began_makes_no_quiet_period() -> None:
    # Issue 9: quiet-broken fired 13 s after a fresh demo start. The simulator sends a few
    # reports days late; the first one a zone saw occurred days before the start, and the
    # quiet was measured from it, through time the monitor never watched.
    z = "shusha"
    state = ZoneState.new(z, since=T0)
    late = inc(T0 - 135 * H, zone=z)  # within the default rules' 8-day look-back
    assert run(DEFAULT, state, [late], now=T0 + 2 * S) == []
    events = run(DEFAULT, state, [inc(T0 + 13 * S, zone=z)])
    assert [e.summary for e in events if e.rule == "quiet-broken"] == []

    # 60 h before the start, 12 h after it: 72 h apart, but only 12 h of them watched
    state = ZoneState.new(z, since=T0)
    assert run(QUIET, state, [inc(T0 - 60 * H, zone=z)], now=T0 + 2 * S) == []
    assert run(QUIET, state, [inc(T0 + 12 * H, zone=z)]) == []
    # the quiet that follows, all of it watched, breaks as usual
    [alert] = run(QUIET, state, [inc(T0 + 12 * H + 72 * H, zone=z)])
    assert alert.value == 72

    # the first quiet period is measured from the start, not from the late incident
    state = ZoneState.new(z, since=T0)
    run(QUIET, state, [inc(T0 - 60 * H, zone=z)], now=T0)
    assert run(QUIET, state, [inc(T0 + 71 * H, zone=z)]) == []
    state = ZoneState.new(z, since=T0)
    run(QUIET, state, [inc(T0 - 60 * H, zone=z)], now=T0)
    [alert] = run(QUIET, state, [inc(T0 + 72 * H, zone=z)])
    assert alert.value == 72 and "after 72 h of quiet" in alert.summary


def test_a_quiet_rule_new_to_a_state_does_not_count_time_before_observation() -> None:
    # The rule finds the group's latest incident in the index (it has no memory of its
    # own yet); an incident from before the start does not make the days before it quiet.
    week = rules_of(
        """
rules:
  - name: week
    kind: threshold
    window: 7d
    threshold: 100
    severity: low
"""
    )
    z = "shusha"
    state = ZoneState.new(z, since=T0)
    run(week, state, [inc(T0 - 5 * D, zone=z)], now=T0)
    assert len(state.incidents) == 1 and state.last_seen == {}
    assert run(QUIET, state, [inc(T0 + 13 * S, zone=z)]) == []


def test_the_demo_start_fires_no_quiet_broken_alert() -> None:
    """The demo's first minutes through validation, classification and the default rules,
    each zone's state observed from the start, each report evaluated when it arrives.
    Seeds 2019 and 2026 fired `quiet-broken` seconds after the start before the fix."""
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    for seed in (2019, 2026):
        sim = Simulator(seed, start=T0)
        states: dict[str, ZoneState] = {}
        before_start = 0
        events: list[AlertEvent] = []
        for doc in sim.reports(2400, rate=20):
            report = validate_report(json.dumps(doc).encode(), now=sim.clock + H)
            if not isinstance(report, Report):
                continue
            incident = classifier.classify(report, sim.clock)
            before_start += incident.occurred_at < T0
            state = states.setdefault(incident.zone, ZoneState.new(incident.zone, since=T0))
            events += evaluate_incident(DEFAULT, state, from_incident(incident), sim.clock)
        assert before_start > 0  # late reports of incidents before the start were sent
        assert [e.summary for e in events if e.rule == "quiet-broken"] == [], seed


def test_quiet_broken_remembers_beyond_retention() -> None:
    state = ZoneState.new("stepanakert")
    run(QUIET, state, [inc(T0, zone="stepanakert")])
    evaluate_time(QUIET, state, T0 + 30 * D)  # the index forgets the incident...
    assert state.incidents == []
    [alert] = run(QUIET, state, [inc(T0 + 30 * D, zone="stepanakert")])
    assert alert.value == 30 * 24  # ...but not when the zone was last active


# -- de-duplication, state and batches ---------------------------------------------------


def test_same_incident_delivered_twice_changes_nothing() -> None:
    state = ZoneState.new("shusha")
    burst = [inc(T0 + i * M) for i in range(9)]
    run(SURGE, state, burst)
    # Re-deliveries of the nine: still nine, no surge.
    assert run(SURGE, state, burst, now=T0 + 9 * M) == []
    assert len(state.incidents) == 9
    killed = inc(T0 + 9 * M, killed=1)
    events = run(DEFAULT, state, [killed])
    assert {e.rule for e in events} >= {"casualties", "zone-surge"}
    before = json.dumps(state.to_json(), sort_keys=True)
    assert run(DEFAULT, state, [killed, killed]) == []
    assert json.dumps(state.to_json(), sort_keys=True) == before
    [cas] = [a for a in state.firing() if a.rule == "casualties"]
    assert cas.value == 1 and cas.incident_ids == [killed.incident_id]


def _stream() -> list[AlertInput]:
    """A day in two zones: a surge, casualties, heavy weapons, a quiet zone broken."""
    out = []
    for i in range(14):
        out.append(inc(T0 + i * 3 * M, zone="lachin-corridor"))
    out.append(inc(T0 + 50 * M, zone="lachin-corridor", killed=2))
    out.append(inc(T0 + 2 * H, zone="shusha", category="heavy_weapons_fire"))
    out.append(inc(T0 + 5 * H, zone="shusha", wounded=1))
    for i in range(12):
        out.append(inc(T0 + 8 * H + i * M, zone="shusha", category="drone_strike"))
    out.append(inc(T0 + 4 * D, zone="lachin-corridor"))
    return out


def test_state_round_trips_mid_stream_without_refiring() -> None:
    incidents = _stream()
    plain = ZoneState.new("x")
    assert ZoneState.from_json(plain.to_json()) == plain

    baseline: list[AlertEvent] = []
    live: dict[str, ZoneState] = {}
    for i in incidents:
        state = live.setdefault(i.zone, ZoneState.new(i.zone, since=T0 - 10 * D))
        baseline += evaluate_incident(DEFAULT, state, i, i.occurred_at)

    # Same stream, but the state is written out and read back (a restart) after each one,
    # and every incident is delivered twice.
    stored: dict[str, dict[str, object]] = {}
    restarted: list[AlertEvent] = []
    for i in incidents:
        for _ in range(2):
            raw = stored.get(i.zone)
            state = (
                ZoneState.from_json(json.loads(json.dumps(raw)))
                if raw is not None
                else ZoneState.new(i.zone, since=T0 - 10 * D)
            )
            restarted += evaluate_incident(DEFAULT, state, i, i.occurred_at)
            stored[i.zone] = state.to_json()

    assert [e.model_dump() for e in restarted] == [e.model_dump() for e in baseline]
    per_fp = Counter((e.fingerprint, e.alert_id) for e in firing(restarted))
    assert set(per_fp.values()) == {1}
    rules_fired = {e.rule for e in firing(baseline)}
    assert {"zone-surge", "casualties", "heavy-weapons", "quiet-broken"} <= rules_fired


def test_batches_fire_what_one_by_one_fires() -> None:
    incidents = _stream()
    chunks = [incidents[i : i + 5] for i in range(0, len(incidents), 5)]
    one: list[AlertEvent] = []
    batched: list[AlertEvent] = []
    singles: dict[str, ZoneState] = {}
    batches: dict[str, ZoneState] = {}
    for chunk in chunks:
        now = max(i.occurred_at for i in chunk)  # e.g. the wall clock at the batch
        for i in chunk:
            s = singles.setdefault(i.zone, ZoneState.new(i.zone, since=T0 - 10 * D))
            one += evaluate_incident(DEFAULT, s, i, now)
        for zone in dict.fromkeys(i.zone for i in chunk):
            s = batches.setdefault(zone, ZoneState.new(zone, since=T0 - 10 * D))
            batched += evaluate_batch(DEFAULT, s, [i for i in chunk if i.zone == zone], now)
    assert len(firing(one)) >= 5
    # Same transitions, and the same alert ids: batching does not change identities.
    assert Counter((e.rule, e.fingerprint, e.alert_id, e.status) for e in batched) == Counter(
        (e.rule, e.fingerprint, e.alert_id, e.status) for e in one
    )
    assert {z: s.to_json()["active"].keys() for z, s in batches.items()} == {
        z: s.to_json()["active"].keys() for z, s in singles.items()
    }


def test_removed_rule_resolves_its_alerts() -> None:
    state = ZoneState.new("shusha")
    run(DEFAULT, state, [inc(T0, category="heavy_weapons_fire")])
    fewer = RuleSet(rules=[r for r in DEFAULT.rules if r.name != "heavy-weapons"])
    [done] = evaluate_time(fewer, state, T0 + M)
    assert (done.rule, done.status, done.ends_at) == ("heavy-weapons", "resolved", T0 + M)
    assert "removed" in done.summary


def test_wrong_zone_and_naive_time_are_errors() -> None:
    state = ZoneState.new("shusha")
    with pytest.raises(ValueError, match="not in this state's zone"):
        evaluate_incident(DEFAULT, state, inc(T0, zone="loc-east"), T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_time(DEFAULT, state, datetime(2021, 5, 12, 10, 0))


def test_state_is_bounded() -> None:
    rules = RuleSet(rules=list(DEFAULT.rules), max_incidents_per_zone=100)
    state = ZoneState.new("shusha")
    run(rules, state, [inc(T0 + i * timedelta(seconds=10)) for i in range(250)])
    assert len(state.incidents) == 100
    assert state.incidents[0].ts < state.incidents[-1].ts
    json.dumps(state.to_json())


def test_alert_event_is_valid_and_serialises() -> None:
    state = ZoneState.new("shusha")
    [alert] = run(DEFAULT, state, [inc(T0, category="attack_on_peacekeepers")])
    again = AlertEvent.model_validate_json(alert.model_dump_json())
    assert again == alert
    assert alert.ends_at is None


# -- backtest ----------------------------------------------------------------------------

PLACES = {"Shusha": ("shusha", 39.76, 46.75), "Lachin": ("lachin-corridor", 39.63, 46.55)}


def fake_classify(report: Report, received_at: datetime) -> Incident:
    """Enough classification for a backtest: the place names the zone."""
    place = report.location.place or ""
    if place not in PLACES:
        raise ValueError(f"unknown place {place!r}")
    zone, lat, lon = PLACES[place]
    casualties = report.casualties
    killed = casualties.killed if casualties else 0
    wounded = casualties.wounded if casualties else 0
    base = report_incident(
        T0, zone=zone, category=str(report.category), killed=killed, wounded=wounded
    )
    return base.model_copy(
        update={
            "incident_id": incident_id_for(report.source, report.report_id),
            "report_id": report.report_id,
            "source": report.source,
            "occurred_at": report.occurred_at,
            "reported_at": report.reported_at or received_at,
            "received_at": received_at,
            "lat": lat,
            "lon": lon,
            "place": place,
            "perpetrator": Party.AZ,
            "verification": VERIFICATION_BY_SOURCE_TYPE[report.source_type],
        }
    )


def _report_line(
    n: int,
    at: datetime,
    place: str,
    category: str,
    killed: int = 0,
    source: tuple[str, str] = ("pkf-op-7", "observation_post"),
) -> str:
    body: dict[str, object] = {
        "report_id": f"r{n}",
        "source": source[0],
        "source_type": source[1],
        "occurred_at": at.isoformat(),
        "location": {"place": place},
        "category": category,
        "perpetrator": "Azerbaijani Armed Forces",
    }
    if killed:
        body["casualties"] = {"killed": killed}
    return json.dumps(body)


def test_backtest_over_a_small_file(tmp_path: Path) -> None:
    lines = []
    # Written out of order on purpose: the backtest sorts by event time.
    for n, i in enumerate(reversed(range(11)), start=1):
        lines.append(_report_line(n, T0 + i * 4 * M, "Lachin", "small_arms_fire"))
    lines.append(_report_line(100, T0 + 2 * H, "Shusha", "heavy_weapons_fire", killed=1))
    lines.append(_report_line(100, T0 + 2 * H, "Shusha", "heavy_weapons_fire", killed=1))  # dup
    lines.append(_report_line(101, T0 + 3 * H, "Nowhere", "other"))
    lines.append(_report_line(102, T0 + 4 * D, "Lachin", "engineering_works"))
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(lines) + "\n")

    reports = []
    for raw in path.read_bytes().splitlines():
        r = validate_report(raw, now=T0 + 30 * D)
        assert isinstance(r, Report)
        reports.append(r)
    rejected: list[str] = []
    events = backtest(
        reports,
        fake_classify,
        DEFAULT,
        on_error=lambda report, exc: rejected.append(report.report_id),
    )
    assert rejected == ["r101"]
    got = [
        (
            e.status,
            e.rule,
            str(e.severity),
            e.labels.get("zone"),
            e.ends_at if e.status == "resolved" else e.starts_at,
        )
        for e in events
    ]
    # The data start at T0: with no baseline day observed yet, escalation cannot fire.
    assert got == [
        ("firing", "zone-surge", "high", "lachin-corridor", T0 + 36 * M),  # the tenth
        ("resolved", "zone-surge", "high", "lachin-corridor", T0 + 4 * M + H),  # 9 left
        ("firing", "casualties", "critical", "shusha", T0 + 2 * H),
        ("firing", "heavy-weapons", "high", "shusha", T0 + 2 * H),
        ("resolved", "casualties", "critical", "shusha", T0 + 8 * H),
        ("resolved", "heavy-weapons", "high", "shusha", T0 + 8 * H),
        ("firing", "quiet-broken", "medium", "lachin-corridor", T0 + 4 * D),
        ("resolved", "quiet-broken", "medium", "lachin-corridor", T0 + 4 * D + 6 * H),
    ]
    surge = events[0]
    assert surge.value == 10 and len(surge.incident_ids) == 10
    assert [e.status for e in events].count("firing") == 4

    console = Console(record=True, width=220, color_system=None)
    render_backtest(events, console)
    out = console.export_text()
    for word in ("zone-surge", "casualties", "critical", "resolved", "zone=lachin-corridor"):
        assert word in out
    assert "Alerts per rule" in out
    assert "10 / 10" in out
    # On an 80-column terminal the labels still say which zone fired.
    narrow = Console(record=True, width=80, color_system=None)
    render_backtest(events, narrow)
    text = narrow.export_text()
    assert "firing  zone-surge  high  10 / 10\n  zone=lachin-corridor\n" in text, text
    assert "10 incidents in zone lachin-corridor" in text and "Alerts per rule" in text


def test_backtest_counts_incidents_not_reports() -> None:
    """Nine events, each reported by an observation post, a ministry and the media within
    minutes at one place: nine incidents, under zone-surge's ten, where the 27 reports
    alone would have fired it (issue 10: one event reported four times is one incident)."""
    sources = [("pkf-op-7", "observation_post"), ("mod-az", "party_statement"), ("bbc", "media")]
    reports = []
    for event in range(9):
        for k, source in enumerate(sources):
            line = _report_line(
                10 * event + k,
                T0 + event * 5 * M + k * M,
                "Lachin",
                "small_arms_fire",
                source=source,
            )
            report = validate_report(line.encode(), now=T0 + D)
            assert isinstance(report, Report)
            reports.append(report)
    assert backtest(reports, fake_classify, DEFAULT) == []
    # With a linking window of one second every report stands apart: 27 incidents, and
    # the surge fires.
    apart = LinkRule(window_seconds=1.0)
    fired = [
        e for e in backtest(reports, fake_classify, DEFAULT, link=apart) if e.status == "firing"
    ]
    assert [e.rule for e in fired] == ["zone-surge"]


def test_the_backtest_hears_an_incident_a_late_report_regrouped_without_joining_it() -> None:
    """Post 1 at 10:00, post 2 (2 killed) at 10:20, post 1 again at 10:22: the third takes
    post 2's report from the first incident into a new one with it, so the first is left
    with no death. Live, the zone stage tells the rules of both changes; the backtest told
    them only of the new incident, kept the first as deadly, and fired a rule for two
    deadly incidents where there was one."""
    rules = parse_rules(
        """
rules:
  - name: deadly-pair
    kind: threshold
    window: 6h
    threshold: 2
    severity: high
    match: {min_killed: 1}
"""
    )
    at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    lines = []
    for n, (source, minutes, killed) in enumerate(
        [("post-1", 0, 0), ("post-2", 20, 2), ("post-1", 22, 0)]
    ):
        body: dict[str, object] = {
            "report_id": f"r{n}",
            "source": source,
            "source_type": "observation_post",
            "occurred_at": (at + minutes * M).isoformat(),
            "location": {"lat": 39.5118, "lon": 46.3178},
            "category": "small_arms_fire",
            "perpetrator": "unknown",
        }
        if killed:
            body["casualties"] = {"killed": killed}
        lines.append(json.dumps(body))
    reports = [validate_report(line.encode(), now=at + D) for line in lines]
    assert all(isinstance(r, Report) for r in reports)
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    picked = [r for r in reports if isinstance(r, Report)]
    assert backtest(picked, classifier.classify, rules) == []
    # the file in another order: the same (the backtest replays by event time)
    assert backtest(picked[::-1], classifier.classify, rules) == []


def test_a_late_report_joining_an_incident_stands_at_the_incident_s_time() -> None:
    """A media report giving the day joined a post's report of 04:30: the rules placed
    the incident at the media report's 19:00 (23:00 local, written with a day's
    precision), so `heavy-weapons` fired again for the same event at 19:00, and live, an
    incident 25 h old fired because its late report's hour was recent."""
    post = {
        "report_id": "g1",
        "source": "pkf-op-50",
        "source_type": "observation_post",
        "occurred_at": "2026-11-30T04:30:00Z",
        "location": {"lat": 39.511, "lon": 46.339},
        "category": "heavy_weapons_fire",
        "perpetrator": "az",
    }
    media = {
        "report_id": "g2",
        "source": "news-q",
        "source_type": "media",
        "occurred_at": "2026-11-30T23:00:00+04:00",
        "location": {"place": "Goris"},
        "category": "heavy_weapons_fire",
        "perpetrator": "az",
        "time_precision": "day",
    }
    now = datetime(2026, 12, 1, 5, 51, tzinfo=UTC)
    reports = [validate_report(json.dumps(r).encode(), now=now) for r in (post, media)]
    assert all(isinstance(r, Report) for r in reports)
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    events = backtest([r for r in reports if isinstance(r, Report)], classifier.classify, DEFAULT)
    at_0430 = datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
    assert [(e.rule, e.status, e.starts_at) for e in events] == [
        ("heavy-weapons", "firing", at_0430),
        ("heavy-weapons", "resolved", at_0430),
    ], [(e.rule, e.status, e.starts_at, e.summary) for e in events]
    assert events[1].ends_at == at_0430 + 6 * H
    # live: the post's report arrived 25 h late, then the media report: neither is recent
    book = IncidentBook(LinkRule())
    state = ZoneState.new("syunik-border")
    for report in reports:
        assert isinstance(report, Report)
        doc = classifier.classify(report, now).model_dump(mode="json")
        version = version_of(doc)
        assert isinstance(version, ReportVersion)
        [record] = [r for r in book.upsert(version).incidents if r.status is Status.OPEN]
        heard = alert_input(version, False, record)
        assert heard.occurred_ms == int(at_0430.timestamp() * 1000)
        assert evaluate_batch(DEFAULT, state, [heard], now) == []
    assert len(record.fields.reports) == 2  # one incident of both reports


def test_an_incident_s_target_is_its_strongest_report_s_not_the_last_joined() -> None:
    """A post saw fire on civilians; a media report naming no target, then a ministry's
    statement naming its own side, joined: the incident stays "against civilians" (a rule
    matching the target kept firing and its summary said so), live and in the backtest."""
    base = {
        "occurred_at": "2026-11-30T04:30:00Z",
        "location": {"lat": 39.511, "lon": 46.339},
        "category": "heavy_weapons_fire",
        "perpetrator": "az",
    }
    post = {**base, "report_id": "t1", "source": "pkf-op-50", "source_type": "observation_post"}
    post["target"] = "civilians"
    later = {**base, "occurred_at": "2026-11-30T04:35:00Z"}  # the post's report heads it
    media = {**later, "report_id": "t2", "source": "news-q", "source_type": "media"}
    statement = {
        **later,
        "report_id": "t3",
        "source": "am-mod",
        "source_type": "party_statement",
        "claimant": "am",
        "target": "am",
    }
    rules = rules_of(
        """
rules:
  - name: fire-on-civilians
    kind: incident
    match: {target: [civilians]}
    hold: 6h
    severity: high
"""
    )
    now = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
    reports = [validate_report(json.dumps(r).encode(), now=now) for r in (post, media, statement)]
    assert all(isinstance(r, Report) for r in reports), reports
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    book = IncidentBook(LinkRule())
    state = ZoneState.new("syunik-border")
    heard_targets = []
    for report in reports:
        assert isinstance(report, Report)
        version = version_of(classifier.classify(report, now).model_dump(mode="json"))
        assert isinstance(version, ReportVersion)
        [record] = [r for r in book.upsert(version).incidents if r.status is Status.OPEN]
        heard = alert_input(version, False, record, book.report)
        heard_targets.append(heard.target)
        evaluate_batch(rules, state, [heard], now)
    assert len(record.fields.reports) == 3  # one incident of the three
    assert heard_targets == ["civilians"] * 3
    [alert] = state.firing()
    assert (alert.rule, alert.incident_ids) == ("fire-on-civilians", [record.incident_id])
    assert "against civilians" in alert.summary, alert.summary
    events = backtest([r for r in reports if isinstance(r, Report)], classifier.classify, rules)
    assert [(e.rule, e.status) for e in events] == [
        ("fire-on-civilians", "firing"),
        ("fire-on-civilians", "resolved"),
    ], [(e.rule, e.status, e.summary) for e in events]
    # resolved after its hold from the last report, not when a report naming none joined
    assert events[1].ends_at == datetime(2026, 11, 30, 10, 30, tzinfo=UTC), events[1]


def test_backtest_until_leaves_alerts_firing() -> None:
    report = validate_report(_report_line(1, T0, "Shusha", "attack_on_peacekeepers").encode())
    assert isinstance(report, Report)
    reports = [report]
    events = backtest(reports, fake_classify, DEFAULT, until=T0 + H)
    assert [(e.rule, e.status) for e in events] == [("attack-on-peacekeepers", "firing")]
    assert backtest([], fake_classify, DEFAULT) == []
    console = Console(record=True, width=120, color_system=None)
    render_backtest([], console)
    assert "No alerts" in console.export_text()


def test_alert_state_records_round_trip_with_their_outbox() -> None:
    from streams.pipeline.alert_state import Outbox, decode_record, encode_record

    state = ZoneState.new("shusha", since=T0 - D)
    (event,) = evaluate_incident(DEFAULT, state, inc(T0, killed=1), T0)
    same, outbox = decode_record(encode_record(state, Outbox(123, [event])))
    assert same.to_json() == state.to_json()
    assert outbox == Outbox(123, [event])
    assert decode_record(encode_record(state, None))[1] is None
    # a record written before outboxes existed: the bare state
    legacy, none = decode_record(json.dumps(state.to_json()).encode())
    assert legacy.to_json() == state.to_json() and none is None
    for damaged in (b"not json", b'{"version": 2}', b'{"version": 2, "state": 1}'):
        with pytest.raises(ValueError):
            decode_record(damaged)


def test_a_forgotten_incident_leaves_the_window_counts() -> None:
    """An incident merged into another (or withdrawn) is forgotten: a burst that only
    reached its threshold by counting one event twice does not fire."""
    rules = rules_of(
        """
rules:
  - name: surge
    kind: threshold
    window: 1h
    threshold: 3
    group_by: [zone]
    severity: high
"""
    )
    state = ZoneState.new("shusha")
    first = inc(T0, incident_id="a")
    run(rules, state, [first, inc(T0 + M, incident_id="b")])
    assert state.forget("a") and not state.knows("a")
    assert not state.forget("a")  # once
    events = run(rules, state, [inc(T0 + 2 * M, incident_id="c")])
    assert firing(events) == []  # b and c: two incidents, not three
    assert firing(run(rules, state, [inc(T0 + 3 * M, incident_id="d")]))


def test_a_new_version_of_an_incident_with_a_death_fires_the_casualties_rule() -> None:
    """A shelling first reported without casualties, then by a source reporting a death:
    the same incident, now with a death, fires the casualties alert once."""
    state = ZoneState.new("shusha")
    assert firing(run(DEFAULT, state, [inc(T0, incident_id="a")])) == []
    assert not state.refresh(inc(T0, incident_id="a"))  # the same version: nothing to do
    newer = inc(T0, incident_id="a", killed=1)
    assert state.refresh(newer)
    fired = firing(run(DEFAULT, state, [newer], now=T0 + M))
    assert [e.rule for e in fired] == ["casualties"]
    assert state.refresh(inc(T0, incident_id="a", killed=2))
    again = run(DEFAULT, state, [inc(T0, incident_id="a", killed=2)], now=T0 + 2 * M)
    assert firing(again) == []  # one firing alert per fingerprint
    assert [e.incident_id for e in state.incidents] == ["a"]


HEAVY = "heavy_weapons_fire"


def test_an_incident_alert_counts_one_event_once_across_versions_renames_and_withdrawal() -> None:
    """One shelling: a new version (a report joined it), then renamed by an earlier report
    (merged into the incident that report heads), then withdrawn. Its incident alerts say
    one incident throughout, and resolve at once when it is gone."""
    state = ZoneState.new("shusha")
    [heavy] = evaluate_batch(DEFAULT, state, [inc(T0, incident_id="a", category=HEAVY)], T0 + M)
    assert (heavy.rule, heavy.value, heavy.incident_ids) == ("heavy-weapons", 1, ["a"])
    [casualties] = evaluate_batch(
        DEFAULT, state, [inc(T0, incident_id="a", category=HEAVY, wounded=2)], T0 + 2 * M
    )
    assert casualties.rule == "casualties"
    renamed = inc(T0 - M, incident_id="b", category=HEAVY, wounded=2)
    assert evaluate_batch(DEFAULT, state, [renamed], T0 + 3 * M, forget=["a"]) == []
    for alert in state.firing():
        assert (alert.value, alert.incident_ids) == (1, ["b"]), alert
        assert alert.summary.startswith("Heavy weapons fire by az"), alert.summary
    # a second incident is a second match
    evaluate_batch(DEFAULT, state, [inc(T0 + 5 * M, incident_id="c", category=HEAVY)], T0 + 6 * M)
    by_rule = {a.rule: a for a in state.firing()}
    assert (by_rule["heavy-weapons"].value, by_rule["heavy-weapons"].incident_ids) == (
        2,
        ["b", "c"],
    )
    assert by_rule["heavy-weapons"].summary.startswith("2 incidents matching heavy-weapons")
    # c withdrawn, then back: the summary says what is left meanwhile, not c
    evaluate_batch(DEFAULT, state, [], T0 + 6 * M + S, forget=["c"])
    [heavy_now] = [a for a in state.firing() if a.rule == "heavy-weapons"]
    assert heavy_now.summary.startswith("1 incident matching heavy-weapons in zone shusha")
    assert "one left this alert" in heavy_now.summary, heavy_now.summary
    evaluate_batch(DEFAULT, state, [inc(T0 + 5 * M, incident_id="c", category=HEAVY)], T0 + 7 * M)
    # b withdrawn: casualties had only b and resolves now; heavy-weapons keeps c
    [done] = evaluate_batch(DEFAULT, state, [], T0 + 7 * M, forget=["b"])
    assert (done.rule, done.status, done.alert_id) == (
        "casualties",
        "resolved",
        casualties.alert_id,
    )
    assert done.ends_at == T0 + 7 * M and "any longer (withdrawn" in done.summary
    assert [(a.rule, a.value, a.incident_ids) for a in state.firing()] == [
        ("heavy-weapons", 1, ["c"])
    ]
    # a new version that no longer matches (revised to small arms fire) resolves it too
    small = inc(T0 + 5 * M, incident_id="c", category="small_arms_fire")
    [gone] = evaluate_batch(DEFAULT, state, [small], T0 + 8 * M)
    assert (gone.rule, gone.status, gone.alert_id) == ("heavy-weapons", "resolved", heavy.alert_id)
    assert state.firing() == []


def test_an_incident_alert_of_more_than_20_incidents_counts_every_withdrawal() -> None:
    """The event lists the last 20 ids: a withdrawal of an older one left `value` as it was,
    and with all 21 withdrawn the alert stayed firing, at 1 with no incident, for its
    hold. The state keeps every id of the episode, rebuilt from its parts too."""
    state = ZoneState.new("shusha")
    ids = [f"h{n}" for n in range(21)]
    for n, iid in enumerate(ids):
        evaluate_batch(
            DEFAULT, state, [inc(T0 + n * M, incident_id=iid, category=HEAVY)], T0 + n * M
        )
    [heavy] = [a for a in state.firing() if a.rule == "heavy-weapons"]
    assert heavy.value == 21 and heavy.incident_ids == ids[1:]
    evaluate_batch(DEFAULT, state, [], T0 + 30 * M, forget=["h0"])  # the oldest
    [heavy] = [a for a in state.firing() if a.rule == "heavy-weapons"]
    assert heavy.value == 20 and heavy.incident_ids == ids[1:]
    state = ZoneState.from_parts("shusha", state.parts())
    events = evaluate_batch(DEFAULT, state, [], T0 + 31 * M, forget=ids[1:])
    assert ("heavy-weapons", "resolved") in [(e.rule, e.status) for e in events]
    assert state.firing() == []  # (the surge and escalation they made resolve too)


def test_an_incident_that_starts_a_second_episode_gets_a_new_alert_id() -> None:
    """Withdrawn (its alert resolves with it), then reinstated: the same incident starts a
    second episode of the fingerprint, which must not share the first's id (the outbox and
    subscribers tell events by id and status). A state rebuilt from its parts numbers the
    next episode on."""
    state = ZoneState.new("shusha")
    a = inc(T0, incident_id="a", category=HEAVY)
    [first] = evaluate_batch(DEFAULT, state, [a], T0 + M)
    [gone] = evaluate_batch(DEFAULT, state, [], T0 + 2 * M, forget=["a"])
    assert (gone.status, gone.alert_id) == ("resolved", first.alert_id)
    mark = state.mark()
    [second] = evaluate_batch(DEFAULT, state, [a], T0 + 3 * M)  # reinstated
    assert f"n{first.fingerprint}" in state.changed(mark)  # what a stage writes
    assert (second.rule, second.status) == ("heavy-weapons", "firing")
    assert second.alert_id not in (first.alert_id, alert_id_for(first.fingerprint, "a"))
    assert second.alert_id == alert_id_for(first.fingerprint, "a", 1)
    [again] = evaluate_batch(DEFAULT, state, [], T0 + 4 * M, forget=["a"])
    assert again.alert_id == second.alert_id
    rebuilt = ZoneState.from_parts("shusha", state.parts())
    assert rebuilt.to_json() == state.to_json()
    [third] = evaluate_batch(DEFAULT, rebuilt, [a], T0 + 5 * M)
    assert third.alert_id == alert_id_for(first.fingerprint, "a", 2)


def test_an_incident_alert_s_summary_counts_from_a_late_report_s_earlier_incident() -> None:
    state = ZoneState.new("shusha")
    evaluate_batch(DEFAULT, state, [inc(T0 + H, incident_id="a", category=HEAVY)], T0 + H)
    late = inc(T0, incident_id="b", category=HEAVY)  # reported later, happened earlier
    evaluate_batch(DEFAULT, state, [late], T0 + H + M)
    [alert] = [a for a in state.firing() if a.rule == "heavy-weapons"]
    assert alert.summary.startswith(
        "2 incidents matching heavy-weapons in zone shusha since 2021-05-12 10:00 UTC; "
        "the last reported: heavy weapons fire"
    ), alert.summary


def test_a_new_version_of_an_incident_past_max_age_stays_in_its_alert() -> None:
    """`max_age` keeps old incidents from firing anew; an incident already in a firing
    alert whose new version comes later than that is the same match, not a lost one."""
    state = ZoneState.new("shusha")
    evaluate_batch(DEFAULT, state, [inc(T0, incident_id="a", category=HEAVY)], T0 + M)
    for k in range(1, 5):  # one every 5 h: the 6 h hold never ends
        later = inc(T0 + 5 * k * H, incident_id=f"b{k}", category=HEAVY)
        evaluate_batch(DEFAULT, state, [later], T0 + 5 * k * H)
    newer = inc(T0, incident_id="a", category=HEAVY, wounded=1)  # 25 h old: past max_age
    evaluate_batch(DEFAULT, state, [newer], T0 + 25 * H)
    [alert] = [a for a in state.firing() if a.rule == "heavy-weapons"]
    assert (alert.value, sorted(alert.incident_ids)) == (5, ["a", "b1", "b2", "b3", "b4"])


def test_a_summary_names_no_perpetrator_when_none_is_established() -> None:
    state = ZoneState.new("shusha")
    nobody = inc(T0, incident_id="a", category=HEAVY, party="unknown")
    [alert] = evaluate_batch(DEFAULT, state, [nobody], T0 + M)
    assert alert.summary.startswith("Heavy weapons fire against am in zone shusha"), alert.summary
    named = inc(T0, incident_id="b", category=HEAVY, zone="lachin-corridor")
    [alert] = evaluate_batch(DEFAULT, ZoneState.new("lachin-corridor"), [named], T0 + M)
    assert alert.summary.startswith("Heavy weapons fire by az"), alert.summary


def test_a_summary_tells_the_incident_s_verification_from_the_report_s_source() -> None:
    # the post observed it; the ministry's report (alleged) is the one that came in last
    state = ZoneState.new("shusha")
    joined = dataclasses.replace(inc(T0, incident_id="a", category=HEAVY), source="az-mod")
    [alert] = evaluate_batch(DEFAULT, state, [joined], T0 + M)
    assert alert.summary.endswith("; observed, report from az-mod."), alert.summary


# -- merges, escalation baselines, fatality summaries (review fixes) ----------------------


def test_a_merge_into_a_known_incident_fires_no_alert_its_merged_incident_had() -> None:
    """Incident q (heavy weapons) fired `heavy-weapons`, and its alert resolved; a report
    bridging it to incident p (small arms, known to the state) merged q into p, whose new
    version is heavy weapons. `forget` recorded q as p's earlier version, then `refresh(p)`
    replaced it with p's own old version (small arms): the rule fired a second time, with
    a new alert_id, for one event."""
    state = ZoneState.new("shusha")
    p = inc(T0, category="small_arms_fire", incident_id="p")
    q = inc(T0 + 21 * M, category=HEAVY, incident_id="q")
    assert evaluate_batch(DEFAULT, state, [p], T0) == []
    [alert] = evaluate_batch(DEFAULT, state, [q], T0 + 21 * M)
    [done] = evaluate_time(DEFAULT, state, T0 + 6 * H + 30 * M)
    assert (done.alert_id, done.status) == (alert.alert_id, "resolved")
    p_merged = inc(T0, category=HEAVY, incident_id="p")  # p's new version, with q's report
    events = evaluate_batch(
        DEFAULT, state, [p_merged], T0 + 7 * H, forget=["q"], merged_into={"q": "p"}
    )
    assert events == [], [(e.rule, e.status) for e in events]
    # a merge bringing a death is a new match of another group (casualties, critical)
    r = inc(T0 + 30 * M, category=HEAVY, incident_id="r")
    [again] = evaluate_batch(DEFAULT, state, [r], T0 + 7 * H + M)
    assert again.rule == "heavy-weapons"  # r is a new event
    evaluate_time(DEFAULT, state, T0 + 14 * H)
    p_dead = inc(T0, category=HEAVY, killed=1, incident_id="p")
    fired = evaluate_batch(
        DEFAULT, state, [p_dead], T0 + 15 * H, forget=["r"], merged_into={"r": "p"}
    )
    assert [(e.rule, e.severity) for e in fired] == [("casualties", "critical")]


def test_a_merge_through_the_book_pages_once_per_event() -> None:
    """The same through the incident book, as the backtest and the zone stage hear it: a
    party statement between two posts' reports merges the later heavy-weapons incident
    into the earlier one after its alert resolved."""
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    lat, lon, km = 39.758, 46.748, 1 / 85.6
    day = datetime(2021, 5, 12, 10, 0, tzinfo=UTC)

    def report(rid: str, source: str, kind: str, minute: int, dx: float, category: str) -> Report:
        body = {
            "report_id": rid,
            "source": source,
            "source_type": kind,
            "occurred_at": (day + minute * M).isoformat(),
            "location": {"lat": lat, "lon": lon + dx * km},
            "category": category,
            "perpetrator": "az",
            "target": "am",
        }
        r = validate_report(json.dumps(body).encode())
        assert isinstance(r, Report)
        return r

    from alerting.backtest import _as_incidents

    book = IncidentBook(LinkRule())
    state = ZoneState.new("shusha")
    events: list[AlertEvent] = []

    def arrive(r: Report, at: datetime) -> None:
        merged: dict[str, str] = {}
        heard = _as_incidents(book, classifier.classify(r, at), merged)
        gone = [s for _, s in heard if isinstance(s, str)]
        opened = [s for _, s in heard if not isinstance(s, str)]
        events.extend(evaluate_batch(DEFAULT, state, opened, at, forget=gone, merged_into=merged))

    arrive(report("p", "pkf-op-1", "observation_post", 0, 0, "small_arms_fire"), day)
    arrive(report("r", "pkf-op-3", "observation_post", 0, -2, "small_arms_fire"), day)
    arrive(report("q", "pkf-op-3", "observation_post", 21, 0, HEAVY), day + 21 * M)
    events.extend(evaluate_time(DEFAULT, state, day + 6 * H + 30 * M))
    arrive(report("x", "am-mod", "party_statement", 1, 1.2, "small_arms_fire"), day + 7 * H)
    assert [(e.rule, e.status) for e in events] == [
        ("heavy-weapons", "firing"),
        ("heavy-weapons", "resolved"),
    ], [(e.rule, e.status, e.summary) for e in events]


ESCALATION = rules_of(
    """
rules:
  - name: esc
    kind: escalation
    severity: high
    window: 24h
    baseline: 7d
    factor: 3
    min_count: 5
"""
)


def test_escalation_resolves_when_the_observed_baseline_grows_as_a_tick_would() -> None:
    """In the first week the baseline is the windows observed, one more every `window`:
    the mean can rise and end the condition then. `next_deadline` did not say so, so the
    backtest (which wakes at it) resolved 7 h after a live worker ticking every 5 s."""
    state = ZoneState.new("shusha", since=T0)
    for k in range(4):  # 4 in the first hour observed
        evaluate_batch(ESCALATION, state, [inc(T0 + 30 * M + k * M)], T0 + H)
    fired = []
    for k in range(5):  # 5 on the third day: none in the one baseline window observed
        at = T0 + 55 * H + k * H
        fired += evaluate_batch(ESCALATION, state, [inc(at)], at)
    [alert] = fired
    assert "none in the previous 1x24h" in alert.summary
    by_deadline = ZoneState.from_json(state.to_json())
    by_tick = ZoneState.from_json(state.to_json())
    woken: list[AlertEvent] = []
    while (d := next_deadline(ESCALATION, by_deadline)) is not None:
        woken += evaluate_time(ESCALATION, by_deadline, d)
    ticked: list[AlertEvent] = []
    at = T0 + 59 * H
    while by_tick.active:
        at += 5 * M
        ticked += evaluate_time(ESCALATION, by_tick, at)
    assert woken == ticked
    [done] = woken
    # at 72 h the baseline is 2 windows, with the first hour's 4: a mean of 2, level 6
    assert (done.ends_at, done.value, done.threshold) == (T0 + 72 * H, 5, 6)


def test_the_backtest_resolves_an_escalation_when_the_baseline_grows() -> None:
    """The same through the backtest (observation starts at the first report)."""
    times = [T0, *(T0 + 30 * M + k * M for k in range(4)), *(T0 + 55 * H + k * H for k in range(5))]
    lines = [_report_line(n, at, "Shusha", "small_arms_fire") for n, at in enumerate(times)]
    reports = [validate_report(line.encode()) for line in lines]
    events = backtest([r for r in reports if isinstance(r, Report)], fake_classify, ESCALATION)
    assert [(e.status, e.starts_at, e.ends_at) for e in events] == [
        ("firing", T0 + 59 * H, None),
        ("resolved", T0 + 59 * H, T0 + 72 * H),
    ], [(e.status, e.ends_at, e.summary) for e in events]


PEAK = rules_of(
    """
rules:
  - name: peak
    kind: fatality_peak
    severity: high
    window: 2d
    lookback: 4d
    minimum: 3
    cooldown: 30d
"""
)


def test_a_fatality_peak_s_summary_and_incidents_follow_its_figure() -> None:
    """Deaths reported while the alert fires raised its `value` but left its summary and
    `incident_ids` as they were at firing ("8 killed" beside a value of 28); the
    resolution said "below the 3 of the record it set" of a record of 28."""
    start = datetime(2021, 5, 1, tzinfo=UTC)
    state = ZoneState.new("shusha", since=start)
    noon = start + 8 * D + 12 * H
    [alert] = evaluate_batch(PEAK, state, [inc(noon, killed=8, incident_id="k1")], noon)
    assert alert.summary.startswith("8 killed in zone shusha in the 2d to 2021-05-09")
    assert evaluate_batch(PEAK, state, [inc(noon, killed=20, incident_id="k2")], noon + H) == []
    [held] = state.firing()
    assert (held.alert_id, held.value, held.threshold) == (alert.alert_id, 28, 3)
    assert held.incident_ids == ["k2", "k1"]
    assert held.summary == (
        "28 killed in zone shusha in the 2d to 2021-05-09: the highest 2d figure of the past "
        "4d (previous high 0, minimum 3)."
    )
    # the next day: a record of its own (over the 28 of the day before)
    later = start + 9 * D + H
    assert evaluate_batch(PEAK, state, [inc(later, killed=3, incident_id="k3")], later) == []
    [held] = state.firing()
    assert (held.value, held.incident_ids) == (31, ["k3", "k2", "k1"])
    assert held.summary.startswith("31 killed in zone shusha in the 2d to 2021-05-10: the ")
    assert held.summary.endswith("(previous high 28, minimum 3).")
    # the day after: 4 is no record (31 is), but still reaches the 3 the alert beat
    later = start + 10 * D + H
    assert evaluate_batch(PEAK, state, [inc(later, killed=1, incident_id="k4")], later) == []
    [held] = state.firing()
    assert (held.alert_id, held.value, held.incident_ids) == (alert.alert_id, 4, ["k4", "k3"])
    assert held.summary == (
        "4 killed in zone shusha in the 2d to 2021-05-11: still at least 3, the minimum its "
        "record of 2021-05-09 had to reach."
    )
    [done] = evaluate_time(PEAK, state, start + 12 * D)
    assert done.summary == (
        "Resolved: 0 killed in zone shusha in the 2d to 2021-05-13, below 3, the minimum its "
        "record had to reach."
    )
