"""The rule file loader (`alerting/rules.py`): YAML merge keys, bounded durations,
`severity_when_killed` above `severity`, and errors that give the line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerting.engine import evaluate_batch, next_deadline
from alerting.rules import RuleFileError, load_rules, parse_rules
from alerting.zone_state import ZoneState
from tests.test_alerting import inc

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2021, 5, 12, 12, 0, tzinfo=UTC)


def error_of(text: str) -> str:
    with pytest.raises(RuleFileError) as err:
        parse_rules(text, source="my-rules.yaml")
    return str(err.value)


def test_merge_keys_load_as_yaml_means_them() -> None:
    """`<<: *anchor` is valid YAML (PyYAML's safe_load flattens it); the loader refusing
    duplicate keys refused it: "could not determine a constructor for the tag
    'tag:yaml.org,2002:merge'"."""
    text = """\
x-incident: &incident
  kind: incident
  hold: 6h
  max_age: 24h
rules:
  - <<: *incident
    name: heavy-weapons
    severity: high
    match: {category: [heavy_weapons_fire]}
  - &hw
    name: drone
    kind: incident
    severity: high
    hold: 2h
  - <<: *hw
    name: drone-critical
    severity: critical
"""
    rules = parse_rules(text, source="my-rules.yaml")
    assert [
        (r.name, r.kind, str(r.severity), str(getattr(r, "hold", ""))) for r in rules.rules
    ] == [
        ("heavy-weapons", "incident", "high", "6h"),
        ("drone", "incident", "high", "2h"),
        ("drone-critical", "incident", "critical", "2h"),
    ]
    assert str(rules.rules[0].max_age) == "24h"  # type: ignore[union-attr]


def test_a_key_given_twice_is_still_refused_beside_a_merge_key() -> None:
    text = """\
rules:
  - &a {name: a, kind: incident, severity: high}
  - <<: *a
    name: b
    severity: low
    severity: high
"""
    assert "at line 6, column 5: key 'severity' is given twice" in error_of(text)


def test_other_unknown_top_level_keys_are_still_refused() -> None:
    assert "defaults: unknown field" in error_of("defaults: {hold: 6h}\nrules: []\n")


@pytest.mark.parametrize(
    ("severity", "when_killed"),
    [("critical", "low"), ("high", "high"), ("high", "medium")],
)
def test_severity_when_killed_must_rank_above_severity(severity: str, when_killed: str) -> None:
    """It loaded silently and lowered an alert's severity on a death."""
    text = f"""\
rules:
  - name: casualties
    kind: incident
    severity: {severity}
    severity_when_killed: {when_killed}
"""
    message = error_of(text)
    assert (
        f"rule 'casualties' (rules[0]): severity_when_killed: must rank above the rule's "
        f"severity '{severity}'"
    ) in message, message


def test_the_default_rules_raise_severity_on_a_death() -> None:
    [casualties] = [r for r in load_rules(None).rules if r.name == "casualties"]
    assert (str(casualties.severity), str(casualties.severity_when_killed)) == (  # type: ignore[union-attr]
        "high",
        "critical",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hold", "99999999999w"),
        ("hold", "3651d"),
        ("max_age", "99999999999999999999999999999999999999999999999999s"),
        pytest.param("hold", "1" + "0" * 5000 + "s", id="hold-5001-digits"),
    ],
)
def test_absurd_durations_are_refused_at_load(field: str, value: str) -> None:
    """They loaded, then `next_deadline` crashed with OverflowError."""
    message = error_of(f"rules:\n  - {{name: a, kind: incident, severity: high, {field}: {value}}}")
    assert f"rule 'a' (rules[0]): {field}: duration" in message, message
    assert "is too long; at most 3650d (ten years)" in message, message


def test_the_longest_duration_still_works() -> None:
    rules = parse_rules(
        "rules:\n  - {name: a, kind: incident, severity: high, hold: 3650d}\n"
        "  - {name: e, kind: escalation, severity: high, window: 520w, baseline: 520w,"
        " factor: 2, min_count: 1}\n"
    )
    state = ZoneState.new("shusha", since=T0)
    [alert] = evaluate_batch(rules, state, [inc(T0)], T0)
    assert alert.rule == "a"
    deadline = next_deadline(rules, state)
    assert deadline is not None and deadline.year == 2031


def test_field_errors_give_the_line() -> None:
    text = """\
rules:
  - name: ok
    kind: incident
    severity: high
  - name: surge
    kind: threshold
    severity: high
    threshold: 10
    window: 1 hour
  - name: e
    kind: escalation
    severity: high
"""
    message = error_of(text)
    lines = message.splitlines()[1:]
    assert lines[0].strip() == (
        "line 9: rule 'surge' (rules[1]): window: invalid duration '1 hour'; use a number "
        "and a unit: s, m, h, d or w (e.g. 30m, 1h, 24h, 7d)"
    ), message
    # a missing field: the line of its rule
    assert [line.strip()[:38] for line in lines[1:]] == [
        "line 10: rule 'e' (rules[2]): window: ",
        "line 10: rule 'e' (rules[2]): baseline",
        "line 10: rule 'e' (rules[2]): factor: ",
        "line 10: rule 'e' (rules[2]): min_coun",
    ], message


def test_a_duplicate_name_gives_the_line_and_index_of_the_second() -> None:
    """It said `rules: rule name 'a' is used twice`, without the line or the rule."""
    text = """\
rules:
  - name: a
    kind: incident
    severity: high
  - name: b
    kind: incident
    severity: low
  - name: a
    kind: incident
    severity: low
"""
    err = error_of(text)
    assert "1 error\n" in err
    assert (
        "line 8: rule 'a' (rules[2]): name: rule name 'a' is used twice (first by rules[0], "
        "line 2)" in err
    )


def test_every_independent_error_of_a_file_is_reported_in_one_pass() -> None:
    """A bad category and an unknown zone in one rule, and a name used twice and a count
    beyond the zone's memory in others: the cross-checks ran only once the schema's errors
    were gone, so only the category was reported, and the next run found the zone."""
    text = """\
max_incidents_per_zone: 100
rules:
  - name: a
    kind: incident
    severity: high
    match:
      category: [shelling]
      zone: [shusha, atlantis]
  - name: big
    kind: threshold
    window: 1h
    threshold: 500
    severity: high
  - name: a
    kind: incident
    severity: low
"""
    with pytest.raises(RuleFileError) as exc:
        parse_rules(text, source="my-rules.yaml", known_zones={"shusha", "lachin-corridor"})
    err = str(exc.value)
    assert err.startswith("rule file my-rules.yaml: 4 errors\n")
    lines = err.splitlines()[1:]
    assert lines[0].startswith("  line 7: rule 'a' (rules[0]): match.category.0: Input should be")
    assert lines[1:] == [
        "  line 8: rule 'a' (rules[0]): match.zone: unknown zone 'atlantis'; the zone "
        "catalogue has lachin-corridor, shusha",
        "  line 9: rule 'big' (rules[1]): it needs 500 incidents, more than "
        "max_incidents_per_zone (100) lets a zone remember",
        "  line 14: rule 'a' (rules[2]): name: rule name 'a' is used twice (first by "
        "rules[0], line 3)",
    ]
