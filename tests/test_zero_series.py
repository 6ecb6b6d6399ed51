"""Counter series that exist at zero before their first count (zero_series.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerting.rules import IncidentRule, load_rules
from schemas.codes import Category, RejectReason, SourceType
from streams import metrics
from streams.classify.severity import severity
from streams.pipeline.zero_series import (
    ATTRIBUTIONS,
    REACHABLE,
    start_worker_at_zero,
    start_zones_at_zero,
)
from streams.record.revisions import Outcome


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


@given(
    st.sampled_from(list(Category)),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
)
def test_every_severity_an_incident_can_have_is_started(
    category: Category, killed: int, wounded: int
) -> None:
    assert (str(category), str(severity(category, killed, wounded))) in REACHABLE


def test_the_reachable_severities_are_no_more_than_those() -> None:
    # an attack on peacekeepers is critical whatever its figures; a low one can be raised
    assert [s for c, s in REACHABLE if c == "attack_on_peacekeepers"] == ["critical"]
    assert {s for c, s in REACHABLE if c == "airspace_violation"} == {"low", "high", "critical"}


def test_a_workers_report_rejection_version_alert_and_delivery_series_start_at_zero() -> None:
    rules = load_rules(None)
    start_worker_at_zero(rules, alertmanager=True)
    for source_type in SourceType:
        assert sample("ceasefire_reports_total", source_type=str(source_type)) is not None
    for reason in RejectReason:
        assert sample("ceasefire_reports_rejected_total", reason=str(reason)) is not None
    for version in Outcome:
        assert sample("ceasefire_report_versions_total", outcome=str(version)) is not None
    killed_severities = 0
    for rule in rules.rules:
        level = str(rule.severity)
        assert sample("ceasefire_alerts_total", rule=rule.name, severity=level) is not None
        if isinstance(rule, IncidentRule) and rule.severity_when_killed is not None:
            killed_severities += 1
            level = str(rule.severity_when_killed)
            assert sample("ceasefire_alerts_total", rule=rule.name, severity=level) is not None
    assert killed_severities > 0  # the shipped rules have one: the branch is exercised
    for outcome in ("delivered", "failed"):
        labels = {"target": "alertmanager", "outcome": outcome}
        assert sample("ceasefire_alert_deliveries_total", **labels) is not None


def test_every_zone_s_incident_and_casualty_series_start_at_zero() -> None:
    """`increase()` loses the count that creates a series. Created as a worker took a
    partition, a takeover's backlog (applied at once after the recovery) counted in them
    before their first scrape; every worker now creates every zone's at its start."""
    zones = tuple(f"zero-series-{n}" for n in range(3))
    start_zones_at_zero(zones)
    # one collection of the registry (get_sample_value collects all of it on every call)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.REGISTRY.collect()
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return values.get((name, tuple(sorted(labels.items()))))

    for zone in zones:
        for party in ATTRIBUTIONS:
            for category, level in REACHABLE:
                labels = {"zone": zone, "party": party, "category": category, "severity": level}
                assert value("ceasefire_incidents_total", **labels) == 0.0
            for kind in ("killed", "wounded"):
                assert value("ceasefire_casualties_total", zone=zone, party=party, kind=kind) == 0
