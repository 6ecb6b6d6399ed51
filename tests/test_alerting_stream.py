"""Alerts end to end: a real broker, real workers, the alert topic read with its own client."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, produce, read_topic, wait_for

# Each test bounds its time above the sum of its own waits, which name what they wait for.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def report(i: int, *, killed: int = 0, minutes_ago: float = 5) -> bytes:
    doc: dict[str, Any] = {
        "report_id": f"a-{i}",
        "source": "pkf-op-7",
        "source_type": "observation_post",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
        "location": {"lat": 39.795, "lon": 47.113},  # Martuni: loc-south
        "category": "small_arms_fire",
        "casualties": {"killed": killed},
    }
    return json.dumps(doc).encode()


def firings(bootstrap: str, expect: int) -> Counter[str]:
    records = read_topic(bootstrap, "ceasefire.alerts", expect=expect, timeout=30)
    events = [json.loads(r.value) for r in records]
    return Counter(f"{e['rule']}:{e['fingerprint']}" for e in events if e["status"] == "firing")


def test_alerts_fire_once_across_resends_and_a_restart(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    death = report(0, killed=1)
    burst = [report(i, minutes_ago=1 + i) for i in range(1, 12)]  # 11 incidents within the hour
    worker = Worker(broker, tmp_path).start()
    try:
        produce(broker.bootstrap, "ceasefire.reports", [death, *burst])

        def two_rules_fired() -> Counter[str] | None:
            fired = firings(broker.bootstrap, 2)
            return fired if len(fired) >= 2 else None

        fired = wait_for(two_rules_fired, timeout=60, what="casualties and zone-surge alerts")
        rules = {key.split(":")[0] for key in fired}
        assert {"casualties", "zone-surge"} <= rules
        assert "escalation" not in rules  # a fresh monitor has observed no baseline yet
        assert all(n == 1 for n in fired.values()), fired
        events = [
            json.loads(r.value) for r in read_topic(broker.bootstrap, "ceasefire.alerts", expect=2)
        ]
        casualty = next(e for e in events if e["rule"] == "casualties")
        assert casualty["severity"] == "critical" and casualty["labels"]["zone"] == "loc-south"
        surge = next(e for e in events if e["rule"] == "zone-surge")
        assert surge["value"] >= 10 and len(surge["incident_ids"]) <= 20

        status, body = worker.get("/api/v1/alerts?status=firing")
        assert status == 200
        assert {a["rule"] for a in body["alerts"]} >= {"casualties", "zone-surge"}
        # counted once its send is acknowledged, the gauge in `committed()` after the
        # publish: both may follow the event on the topic
        wait_for(
            lambda: (
                (
                    worker.metric("ceasefire_alerts_total", {"rule": "zone-surge"}),
                    worker.metric(
                        "ceasefire_alerts_firing", {"rule": "zone-surge", "zone": "loc-south"}
                    ),
                )
                == (1, 1)
            ),
            timeout=10,
            what="zone-surge counted once and firing once in /metrics",
        )

        produce(broker.bootstrap, "ceasefire.reports", [death, *burst])  # re-sent
        wait_for(
            lambda: worker.metric("ceasefire_reports_duplicate_total") >= 12,
            timeout=30,
            what="dups",
        )
    finally:
        worker.stop()
    worker = Worker(broker, tmp_path, name="again").start()
    try:
        produce(broker.bootstrap, "ceasefire.reports", [death, *burst, report(99, minutes_ago=0.5)])

        def surge_counts_report_99() -> bool:
            # the firing alert's value is re-checked on each step of its zone: 13 incidents
            # (the death, the burst and report 99) show that the alert stage has evaluated
            # report 99, so that a second firing it published would be on the topic by now
            status, body = worker.get("/api/v1/alerts?status=firing")
            return status == 200 and any(
                a["rule"] == "zone-surge" and a["value"] >= 13 for a in body["alerts"]
            )

        wait_for(surge_counts_report_99, timeout=60, what="zone-surge to count report 99")
        fired = firings(broker.bootstrap, 2)
        assert all(n == 1 for n in fired.values()), fired
        status, body = worker.get("/api/v1/alerts?status=firing")
        assert {a["rule"] for a in body["alerts"]} >= {"casualties", "zone-surge"}
        # when observation began was recorded once per partition, and kept over the restart
        from streams.pipeline.alerting_stage import SINCE_KEY

        changelog = read_topic(
            broker.bootstrap, "ceasefire-monitor-alert-state-changelog", expect=4
        )
        assert sorted(r.partition for r in changelog if r.key == SINCE_KEY) == [0, 1, 2, 3]
    finally:
        worker.stop()


def test_worker_delivers_alerts_to_a_real_alertmanager(
    broker: EmbeddedBroker, tmp_path: Path, alertmanager: str
) -> None:
    import urllib.request

    worker = Worker(broker, tmp_path, env={"CEASEFIRE_ALERTMANAGER_URL": alertmanager}).start()
    try:
        produce(broker.bootstrap, "ceasefire.reports", [report(500, killed=2)])

        def casualty_alert() -> dict[str, Any] | None:
            with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as resp:
                alerts = json.loads(resp.read())
            return next((a for a in alerts if a["labels"].get("alertname") == "casualties"), None)

        alert = wait_for(casualty_alert, timeout=60, what="the casualties alert in Alertmanager")
        assert alert["labels"]["zone"] == "loc-south"
        assert alert["labels"]["severity"] == "critical"
        # counted when Alertmanager's answer is back, after the alert is there
        wait_for(
            lambda: (
                worker.metric("ceasefire_alert_deliveries_total", {"outcome": "delivered"}) >= 1
            ),
            timeout=10,
            what="the delivery counted",
        )
    finally:
        worker.stop()


# -- once, across a dead worker, a rebalance and two workers ---------------------------------

ALERTS = "ceasefire.alerts"


def zone_points() -> dict[str, tuple[float, float]]:
    """One named place per zone of the shipped catalogue (not `outside`)."""
    from streams.classify.gazetteer import Gazetteer
    from streams.classify.zones import ZoneCatalogue

    zones, places = ZoneCatalogue.load(), Gazetteer.load()
    points: dict[str, tuple[float, float]] = {}
    for place in places.places:
        points.setdefault(zones.locate(place.lat, place.lon), (place.lat, place.lon))
    points.pop("outside", None)
    return points


def zone_reports(zone: str, point: tuple[float, float], *, burst: int = 11) -> list[bytes]:
    """A death and a burst of `burst` more incidents in one zone, all within the hour."""
    now = datetime.now(UTC)
    docs: list[dict[str, Any]] = []
    for i in range(burst + 1):
        docs.append(
            {
                "report_id": f"{zone}-{i}",
                "source": "pkf-op-7",
                "source_type": "observation_post",
                "occurred_at": (now - timedelta(minutes=1 + i)).isoformat(),
                "location": {"lat": point[0], "lon": point[1]},
                "category": "small_arms_fire",
                "casualties": {"killed": 1 if i == 0 else 0},
            }
        )
    return [json.dumps(d).encode() for d in docs]


def alert_events(bootstrap: str, expect: int = 1) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_topic(bootstrap, ALERTS, expect=expect)]


def firing_counts(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["fingerprint"] for e in events if e["status"] == "firing")


def casualty_zones(events: list[dict[str, Any]]) -> set[str]:
    return {
        e["labels"]["zone"] for e in events if e["rule"] == "casualties" and e["status"] == "firing"
    }


def test_two_workers_a_killed_one_and_a_rebalance_fire_each_alert_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    points = list(zone_points().items())
    assert len(points) >= 9
    rounds = [points[0:3], points[3:6], points[6:9]]
    sent: list[bytes] = []
    # The operator declares a complete (empty) history of the past 8 days: the bursts
    # are escalations too.
    env = {"CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=8)).isoformat()}
    w1 = Worker(broker, tmp_path, name="w1", env=env).start()
    w2 = Worker(broker, tmp_path, name="w2", env=env).start()
    w3: Worker | None = None
    try:
        for n, zones in enumerate(rounds):
            new = [r for zone, point in zones for r in zone_reports(zone, point)]
            sent.extend(new)
            # every round re-sends all earlier reports along with its new zones
            produce(broker.bootstrap, "ceasefire.reports", sent)
            if n == 1:
                w1.kill()  # dies mid-stream, its partitions move after the session timeout
            if n == 2:
                w3 = Worker(broker, tmp_path, name="w3", env=env).start()  # a rebalance
            expected = {zone for round_ in rounds[: n + 1] for zone, _ in round_}

            def alerted(expected: set[str] = expected) -> bool:  # bound now, not late
                return expected <= casualty_zones(alert_events(broker.bootstrap))

            wait_for(
                alerted,
                timeout=90,
                what=f"casualties alerts of round {n + 1}",
            )
        assert w3 is not None
        rule_names = ("casualties", "zone-surge", "escalation")

        def by_rule() -> Counter[str]:
            events = alert_events(broker.bootstrap)
            return Counter(e["rule"] for e in events if e["status"] == "firing")

        def all_fired() -> bool:  # the surges and escalations follow the casualties
            fired = by_rule()
            return all(fired[rule] >= 9 for rule in rule_names)

        wait_for(
            all_fired, timeout=30, what="9 alerts of each rule", explain=lambda: f"{by_rule()}"
        )

        def duplicates() -> float:  # w1's counter died with it; theirs count since they began
            return w2.metric("ceasefire_reports_duplicate_total") + w3.metric(
                "ceasefire_reports_duplicate_total"
            )

        # a last re-send after everything settled
        base = duplicates()
        produce(broker.bootstrap, "ceasefire.reports", sent)
        wait_for(
            lambda: duplicates() >= base + len(sent),
            timeout=60,
            what="the last re-send counted as duplicates",
            explain=lambda: f"{duplicates() - base} of {len(sent)}",
        )
        events = alert_events(broker.bootstrap)
        counts = firing_counts(events)
        assert counts and all(n == 1 for n in counts.values()), counts
        fired = Counter(e["rule"] for e in events if e["status"] == "firing")
        assert fired["casualties"] == fired["zone-surge"] == fired["escalation"] == 9, fired
    finally:
        w1.kill()
        w2.stop()
        if w3 is not None:
            w3.stop()


def test_a_dead_workers_outbox_is_published_once_by_the_next_owner(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A worker wrote the journals of a step (two zones' new states with their alerts as
    outbox), published one of the alerts and died before writing the states' parts. The
    next owner completes the states from the journals and publishes the other alert, and
    only that one."""
    from alerting.engine import evaluate_batch
    from alerting.rules import load_rules
    from alerting.zone_state import ZoneState
    from schemas.alert import AlertEvent
    from schemas.alert_input import from_incident
    from schemas.report import Report
    from schemas.validation import validate_report
    from streams.classify.classifier import Classifier
    from streams.classify.gazetteer import Gazetteer
    from streams.classify.zones import ZoneCatalogue
    from streams.pipeline.alert_state import (
        JOURNAL_KEY,
        Change,
        decode_journal,
        encode_journal,
        part_key,
    )
    from streams.pipeline.packs import partition_for

    Worker(broker, tmp_path, name="setup").start().stop()  # creates the topics
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    rules = load_rules(None)
    now = datetime.now(UTC)
    points = list(zone_points().items())[:2]
    deaths = [zone_reports(zone, point, burst=0)[0] for zone, point in points]
    changelog = "ceasefire-monitor-alert-state-changelog"
    journals: dict[int, tuple[list[Change], list[AlertEvent]]] = {}
    fired = []
    for (zone, _), raw in zip(points, deaths, strict=True):
        report = validate_report(raw)
        assert isinstance(report, Report)
        incident = from_incident(classifier.classify(report, now))
        state = ZoneState.new(zone)
        (event,) = evaluate_batch(rules, state, [incident], now)
        fired.append(event)
        changes, outbox = journals.setdefault(partition_for(zone.encode(), range(4)), ([], []))
        changes.extend((zone, part, value) for part, value in state.parts().items())
        outbox.append(event)
    on_topic, missing = fired
    produce(  # published before the crash
        broker.bootstrap,
        ALERTS,
        [on_topic.model_dump_json().encode()],
        key=on_topic.fingerprint.encode(),
    )
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    written_ms = int(now.timestamp() * 1000)
    for p, (changes, outbox) in journals.items():
        journal = encode_journal(written_ms, changes, outbox)
        producer.send(changelog, journal, key=JOURNAL_KEY, partition=p)
    producer.flush(timeout=30)
    producer.close()

    worker = Worker(broker, tmp_path, name="next").start()
    try:

        def both() -> list[dict[str, Any]] | None:
            events = alert_events(broker.bootstrap, 2)
            return events if len(events) >= 2 else None

        events = wait_for(both, timeout=30, what="the missing alert")
        assert sorted(e["alert_id"] for e in events) == sorted(
            [on_topic.alert_id, missing.alert_id]
        )
        # the reports themselves arrive later: known to the state, they fire nothing more
        produce(broker.bootstrap, "ceasefire.reports", deaths)
        wait_for(lambda: worker.metric("ceasefire_reports_total") >= 2, timeout=30, what="reports")
        time.sleep(1.0)
        assert len(alert_events(broker.bootstrap, 2)) == 2
        _, body = worker.get("/api/v1/alerts?status=firing")
        assert {a["alert_id"] for a in body["alerts"]} == {on_topic.alert_id, missing.alert_id}
        # the outboxes were emptied and the states written as parts
        last: dict[tuple[int, bytes], bytes | None] = {}
        for r in read_topic(broker.bootstrap, changelog, expect=4):
            last[(r.partition, r.key)] = r.value
        for p in journals:
            emptied = last[(p, JOURNAL_KEY)]
            assert emptied is None or not decode_journal(emptied)[0].events, p
        for zone, _ in points:
            p = partition_for(zone.encode(), range(4))
            assert last.get((p, part_key(zone, "m"))), zone
    finally:
        worker.stop()


RESOLVING_RULES = """
version: 1
rules:
  - name: casualties
    kind: incident
    match: {min_casualties: 1}
    severity: high
    severity_when_killed: critical
    hold: 2s
    max_age: 1h
  - name: zone-surge
    kind: threshold
    window: 15s
    threshold: 3
    group_by: [zone]
    severity: high
"""


def test_the_worker_clock_resolves_alerts_and_publishes_resolved_events(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RESOLVING_RULES)
    worker = Worker(broker, tmp_path, env={"CEASEFIRE_RULES": str(rules)}).start()
    try:
        produce(
            broker.bootstrap,
            "ceasefire.reports",
            [report(700 + i, killed=int(i == 0), minutes_ago=0.02) for i in range(3)],
        )

        def resolved() -> list[dict[str, Any]] | None:
            events = alert_events(broker.bootstrap)
            done = [e for e in events if e["status"] == "resolved"]
            return events if len(done) >= 2 else None

        events = wait_for(resolved, timeout=60, what="both alerts resolved")
        by_status = Counter((e["rule"], e["status"]) for e in events)
        assert by_status == {
            ("casualties", "firing"): 1,
            ("casualties", "resolved"): 1,
            ("zone-surge", "firing"): 1,
            ("zone-surge", "resolved"): 1,
        }
        for e in events:
            if e["status"] == "resolved":
                firing = next(f for f in events if f["alert_id"] == e["alert_id"] and f is not e)
                assert e["ends_at"] is not None and e["ends_at"] >= firing["starts_at"]
        # the gauge is refreshed in `committed()`, after the resolved events are published
        wait_for(
            lambda: worker.metric("ceasefire_alerts_firing") == 0,
            timeout=10,
            what="no alert firing in /metrics",
        )

        def resolved_in_api(w: Worker) -> set[str] | None:
            _, body = w.get("/api/v1/alerts?status=resolved")
            rules = {a["rule"] for a in body["alerts"]}
            return rules if len(rules) == 2 else None

        rules_resolved = wait_for(lambda: resolved_in_api(worker), timeout=10, what="API")
        assert rules_resolved == {"casualties", "zone-surge"}
    finally:
        worker.stop()
    # history, read from the alert topic: a restarted worker still answers for it
    worker = Worker(broker, tmp_path, name="again", env={"CEASEFIRE_RULES": str(rules)}).start()
    try:
        assert wait_for(lambda: resolved_in_api(worker), timeout=20, what="API after restart") == {
            "casualties",
            "zone-surge",
        }
        _, body = worker.get("/api/v1/alerts?status=firing")
        assert body["alerts"] == []
    finally:
        worker.stop()
