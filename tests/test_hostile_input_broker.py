"""Input that used to stall a partition, on a real broker with a real worker (the
unit-level cases, without a broker, are in test_hostile_input.py).

One broker and one worker serve the module: every case checks that the stream goes on
and that nothing is lost or counted twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.harness import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

#: CJK Extension B: four bytes each in UTF-8, twelve as JSON escapes.
WIDE = "𠀀"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedBroker, Path]]:
    tmp = tmp_path_factory.mktemp("hostile")
    broker = EmbeddedBroker("127.0.0.1", free_port(), log=tmp / "tansu.log")
    broker.start()
    try:
        yield broker, tmp
    finally:
        broker.stop()


def maximal_report(i: int) -> dict[str, Any]:
    """A valid report with every string at its limit, in a non-Latin script."""
    rid = f"{i:06d}"
    return {
        "report_id": rid + WIDE * (128 - len(rid)),
        "source": WIDE * 63 + str(i % 3),
        "source_type": "observation_post",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
        "location": {"lat": 39.795, "lon": 47.113},  # Martuni: loc-south
        "category": "small_arms_fire",
        "perpetrator": WIDE * 128,
        "target": WIDE * 128,
        "casualties": {"killed": 0, "wounded": 0, "civilian": False},
        "description": "д" * 2000 + WIDE * 2000,
    }


def test_a_backlog_of_maximal_non_latin_reports_is_counted_exactly(
    stack: tuple[EmbeddedBroker, Path],
) -> None:
    broker, tmp = stack
    n = 1200
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20, acks="all")
    for i in range(n):
        value = json.dumps(maximal_report(i), ensure_ascii=False).encode()
        assert len(value) > 12_000
        producer.send("ceasefire.reports", value)
    producer.flush(timeout=60)
    producer.close()
    # the backlog is there before the worker starts: it gets it in full batches
    worker = Worker(broker, tmp, name="maximal").start(ready_timeout=90)
    try:

        def counted() -> bool:
            rows = worker.tallies(window="24h", by="zone")
            return rows is not None and sum(int(r["reports"]) for r in rows) == n

        wait_for(counted, timeout=120, what=f"{n} maximal reports counted")
        assert worker.metric("ceasefire_reports_rejected_total") == 0
        assert worker.metric("ceasefire_partition_stalled") == 0
    finally:
        worker.stop()
