"""Counter series created at zero before anything is counted in them.

Prometheus' `increase()` and `rate()` start a series at its first sample: a count that
creates its series is never seen as an increase. A review summed 144 killed in
`ceasefire_casualties_total` where `increase()` over the run gave 64 (each zone's first
death, the first alert of each rule, the first failed delivery were lost), and an alert on
`increase(...{outcome="failed"}[10m]) > 0` could miss a first burst of failures. So every
series a worker may count, from sets it knows before it counts, exists at zero first
(the Prometheus documentation's advice for labels known in advance).

The incident counters are many (zone x party x category x the severities a category can
reach: 3,003 for the shipped 13 zones, with 182 casualty series beside them), and every
worker creates them all as it starts.
Created as a worker took a partition, they missed the first counts of a takeover: the
backlog that waited for the recovery was applied at once, so a series' first scrape was
already above zero and `increase()` never saw that rise.
"""

from __future__ import annotations

from collections.abc import Iterable

from alerting.rules import IncidentRule, RuleSet
from schemas.codes import Category, Party, RejectReason, SourceType
from streams import metrics
from streams.classify.severity import severity
from streams.record.incident import CONTESTED
from streams.record.revisions import Outcome

#: every attribution an incident can have
ATTRIBUTIONS: tuple[str, ...] = (*(str(p) for p in Party), CONTESTED)
#: (category, severity) pairs `severity()` can give: the base, raised by a wounded or a
#: killed person
REACHABLE: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            (str(c), str(severity(c, killed, wounded)))
            for c in Category
            for killed, wounded in ((0, 0), (0, 1), (1, 0))
        }
    )
)
DELIVERY_OUTCOMES = ("delivered", "failed")


def start_worker_at_zero(rules: RuleSet, alertmanager: bool) -> None:
    """The series of a worker's reports, rejections, report versions, alerts and alert
    deliveries."""
    for source_type in SourceType:
        metrics.REPORTS.labels(str(source_type))
    for reason in RejectReason:
        metrics.REJECTED.labels(str(reason))
    for version in Outcome:
        metrics.REPORT_OUTCOMES.labels(str(version))
    for rule in rules.rules:
        if not rule.enabled:
            continue
        metrics.ALERTS.labels(rule.name, str(rule.severity))
        if isinstance(rule, IncidentRule) and rule.severity_when_killed is not None:
            metrics.ALERTS.labels(rule.name, str(rule.severity_when_killed))
    if alertmanager:
        for outcome in DELIVERY_OUTCOMES:
            metrics.ALERT_DELIVERIES.labels("alertmanager", outcome)


def start_zones_at_zero(zones: Iterable[str]) -> None:
    """The incident and casualty series of `zones` (a series already there keeps its
    count: creating it again is a lookup)."""
    for zone in zones:
        for party in ATTRIBUTIONS:
            for category, level in REACHABLE:
                metrics.INCIDENTS.labels(zone, party, category, level)
            metrics.CASUALTIES.labels(zone, party, "killed")
            metrics.CASUALTIES.labels(zone, party, "wounded")
