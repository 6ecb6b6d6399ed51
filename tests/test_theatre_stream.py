"""The theatre stage on a real broker: deaths in two zones fire one theatre-wide
alert; a restart that sends every zone's ledger again neither fires again nor counts twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.rules import THEATRE
from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, produce, read_topic, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RULES = """
rules:
  - name: theatre-peak
    kind: fatality_peak
    scope: theatre
    window: 2d
    lookback: 2d
    minimum: 2
    severity: high
"""
#: Two zones (Martuni: loc-south; Stepanakert) and a third for the restart.
PLACES = [(39.795, 47.113), (39.8177, 46.7528), (39.76, 46.75)]
AT = datetime.now(UTC) - timedelta(minutes=5)


def report(i: int, place: int, killed: int) -> bytes:
    doc: dict[str, Any] = {
        "report_id": f"t-{i}",
        "source": "pkf-op-9",
        "source_type": "observation_post",
        "occurred_at": AT.isoformat(),
        "location": {"lat": PLACES[place][0], "lon": PLACES[place][1]},
        "category": "heavy_weapons_fire",
        "casualties": {"killed": killed},
    }
    return json.dumps(doc).encode()


def theatre_events(bootstrap: str) -> list[dict[str, Any]]:
    records = read_topic(bootstrap, "ceasefire.alerts", expect=1, timeout=5)
    events = [json.loads(r.value) for r in records]
    return [e for e in events if e["labels"].get("zone") == THEATRE]


def test_a_theatre_alert_fires_once_over_zones_and_a_restart(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {
        "CEASEFIRE_RULES": str(rules),
        # imported history: the 2-day lookback counts as observed
        "CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=10)).isoformat(),
    }
    worker = Worker(broker, tmp_path, env=env).start()
    try:
        # Junk on the internal topic (only the monitor writes it): dead-lettered, not counted.
        produce(broker.bootstrap, "ceasefire.fatalities.theatre", [b'{"zone": "x"}'])
        produce(broker.bootstrap, "ceasefire.reports", [report(0, 0, 1), report(1, 1, 1)])
        fired = wait_for(
            lambda: theatre_events(broker.bootstrap) or None, timeout=40, what="theatre alert"
        )
        assert [(e["rule"], e["status"], e["value"]) for e in fired] == [
            ("theatre-peak", "firing", 2.0)
        ]
        _, body = worker.get("/api/v1/alerts?status=firing")
        assert [a["labels"] for a in body["alerts"]] == [{"zone": THEATRE}]
        assert worker.metric("ceasefire_alerts_firing", {"zone": THEATRE}) == 1
        dead = [
            json.loads(r.value)
            for r in read_topic(broker.bootstrap, "ceasefire.reports.dlq", expect=1)
        ]
        assert [(d["source_topic"], d["reason"]) for d in dead] == [
            ("ceasefire.fatalities.theatre", "invalid_value")
        ]
    finally:
        worker.stop()
    worker = Worker(broker, tmp_path, name="again", env=env).start()
    try:
        # The same reports again, and one more death in a third zone: 3, never 5.
        produce(
            broker.bootstrap,
            "ceasefire.reports",
            [report(0, 0, 1), report(1, 1, 1), report(2, 2, 1)],
        )

        def value_three() -> float | None:
            _, body = worker.get("/api/v1/alerts?status=firing")
            values = [a["value"] for a in body["alerts"] if a["labels"] == {"zone": THEATRE}]
            return values[0] if values == [3.0] else None

        assert wait_for(value_three, timeout=40, what="the theatre alert at 3") == 3.0
        assert [e["status"] for e in theatre_events(broker.bootstrap)] == ["firing"]
        # The restarted alert stage sent its zones' ledgers again (2 + 2 + 1 changes at
        # least): the theatre counted each incident once all the same.
        changes = read_topic(broker.bootstrap, "ceasefire.fatalities.theatre", expect=5)
        assert len(changes) >= 5
    finally:
        worker.stop()
