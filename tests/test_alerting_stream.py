"""Alerts end to end: a real broker, real workers, the alert topic read with its own client."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, produce, read_topic, wait_for

pytestmark = pytest.mark.integration


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
        assert worker.metric("ceasefire_alerts_total", {"rule": "zone-surge"}) == 1
        assert (
            worker.metric("ceasefire_alerts_firing", {"rule": "zone-surge", "zone": "loc-south"})
            == 1
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
        wait_for(
            lambda: worker.metric("ceasefire_reports_total") >= 1, timeout=30, what="new report"
        )
        fired = firings(broker.bootstrap, 2)
        assert all(n == 1 for n in fired.values()), fired
        status, body = worker.get("/api/v1/alerts?status=firing")
        assert {a["rule"] for a in body["alerts"]} >= {"casualties", "zone-surge"}
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
        assert worker.metric("ceasefire_alert_deliveries_total", {"outcome": "delivered"}) >= 1
    finally:
        worker.stop()
