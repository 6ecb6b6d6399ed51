"""Counter series that exist at zero before their first count (zero_series.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerting.rules import IncidentRule, load_rules
from schemas.codes import Category, RejectReason, SourceType
from streams import metrics
from streams.classify.severity import severity
from streams.pipeline.packs import partition_for
from streams.pipeline.zero_series import REACHABLE, start_worker_at_zero, zones_of
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


def test_the_zones_of_partitions_are_those_their_reports_are_sent_to() -> None:
    zones = [f"zone-{n}" for n in range(40)]
    everyone = range(4)
    parts = [zones_of(zones, {p}, everyone) for p in everyone]
    assert sorted(z for part in parts for z in part) == sorted(zones)
    for p, part in enumerate(parts):
        assert all(partition_for(z.encode(), everyone) == p for z in part)
