"""The theatre stage on a real broker: deaths in two zones fire one theatre-wide
alert; a restart that sends every zone's ledger again neither fires again nor counts twice;
two workers, each with zones of its own, fire one alert over all of them, and the survivor
of the theatre's owner goes on from its state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.rules import THEATRE
from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, produce, read_topic, wait_for

# Each test bounds its time above the sum of its own waits (worker starts and stops
# included), which name what they wait for.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

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


def report(i: int, place: int | tuple[float, float], killed: int) -> bytes:
    lat, lon = PLACES[place] if isinstance(place, int) else place
    doc: dict[str, Any] = {
        "report_id": f"t-{i}",
        "source": "pkf-op-9",
        "source_type": "observation_post",
        "occurred_at": AT.isoformat(),
        "location": {"lat": lat, "lon": lon},
        "category": "heavy_weapons_fire",
        "casualties": {"killed": killed},
    }
    return json.dumps(doc).encode()


def theatre_events(bootstrap: str) -> list[dict[str, Any]]:
    records = read_topic(bootstrap, "ceasefire.alerts", expect=1, timeout=5)
    events = [json.loads(r.value) for r in records]
    return [e for e in events if e["labels"].get("zone") == THEATRE]


def theatre_alert_at(worker: Worker, value: float) -> float | None:
    """`value`, once the worker's firing alerts hold one theatre alert at `value`."""
    _, body = worker.get("/api/v1/alerts?status=firing")
    values = [a["value"] for a in body["alerts"] if a["labels"] == {"zone": THEATRE}]
    return values[0] if values == [value] else None


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
        # the gauge is refreshed in the theatre stage's `committed()`, after the publish
        wait_for(
            lambda: worker.metric("ceasefire_alerts_firing", {"zone": THEATRE}) == 1,
            timeout=10,
            what="the theatre alert firing in /metrics",
        )
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

        assert (
            wait_for(
                lambda: theatre_alert_at(worker, 3.0), timeout=40, what="the theatre alert at 3"
            )
            == 3.0
        )
        assert [e["status"] for e in theatre_events(broker.bootstrap)] == ["firing"]
        # The restarted alert stage sent its zones' ledgers again (2 + 2 + 1 changes at
        # least): the theatre counted each incident once all the same.
        changes = read_topic(broker.bootstrap, "ceasefire.fatalities.theatre", expect=5)
        assert len(changes) >= 5
    finally:
        worker.stop()


def test_two_workers_fire_one_theatre_alert_over_their_zones_and_a_failover(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    # One death in each of four zones of four zone partitions (lachin-corridor 0, shusha 1,
    # stepanakert 2, loc-south 3): with the partitions shared, both workers hold some.
    zones = [(39.64, 46.545), (39.758, 46.748), (39.8177, 46.7528), (39.795, 47.113)]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("minimum: 2", "minimum: 4"))
    env = {
        "CEASEFIRE_RULES": str(rules),
        "CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=10)).isoformat(),
    }
    w1 = Worker(broker, tmp_path, name="w1", env=env).start()
    w2: Worker | None = None
    try:
        w2 = Worker(broker, tmp_path, name="w2", env=env).start()
        workers = (w1, w2)
        wait_for(
            lambda: sorted(w.metric("ceasefire_partitions_owned") for w in workers) == [2, 2],
            timeout=60,
            what="the zone partitions shared two and two",
        )
        sent = [report(10 + i, point, 1) for i, point in enumerate(zones)]
        produce(broker.bootstrap, "ceasefire.reports", sent)
        fired = wait_for(
            lambda: theatre_events(broker.bootstrap) or None, timeout=60, what="theatre alert"
        )
        assert [(e["rule"], e["status"], e["value"]) for e in fired] == [
            ("theatre-peak", "firing", 4.0)
        ]
        for w in workers:  # from either worker: the theatre's owner answers for all
            _, body = w.get("/api/v1/alerts?status=firing")
            assert [(a["labels"], a["value"]) for a in body["alerts"]] == [({"zone": THEATRE}, 4.0)]

        # Exported once, by the owner: its gauge is refreshed in the theatre stage's
        # `committed()`, after the publish.
        def gauges() -> list[float]:
            return [w.metric("ceasefire_alerts_firing", {"zone": THEATRE}) for w in workers]

        def one_owner() -> list[float] | None:
            now = gauges()
            return now if sorted(now) == [0, 1] else None

        firing = wait_for(
            one_owner,
            timeout=10,
            what="the theatre alert firing in the owner's /metrics only",
            explain=lambda: f"gauges: {gauges()}",
        )
        owner, survivor = (w1, w2) if firing[0] else (w2, w1)
        owner.stop()
        wait_for(
            lambda: survivor.metric("ceasefire_partitions_owned") == 4,
            timeout=60,
            what="the survivor owning every partition",
        )
        # Re-sent, and one more death: 5, never 9; and no second firing event.
        produce(broker.bootstrap, "ceasefire.reports", [*sent, report(20, zones[1], 1)])

        assert (
            wait_for(
                lambda: theatre_alert_at(survivor, 5.0), timeout=60, what="the theatre alert at 5"
            )
            == 5.0
        )
        assert [e["status"] for e in theatre_events(broker.bootstrap)] == ["firing"]
    finally:
        w1.stop()
        if w2 is not None:
            w2.stop()
