"""Chaos under load: workers join, leave with SIGTERM and die with SIGKILL while a
steady feed runs. Afterwards every surviving worker answers the exact tallies, every
report is on the incident topic, and every alert fingerprint opened once.

One real broker, real worker processes, the real `feed` command. Bounded: the feed
takes ~50 s, the membership changes happen during it, and settling is bounded.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, read_topic, wait_for
from tests.test_alerting_stream import zone_points

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPORTS = 20_000
RATE = 400  # reports per second: the feed runs ~50 s
#: A share of the lines are re-sends of earlier reports (as reporting systems do).
RESEND_EVERY = 25


def feed_lines(
    points: list[tuple[str, tuple[float, float]]], reports: int = REPORTS
) -> tuple[list[str], Counter[str]]:
    """`reports` distinct reports over the zones (a death in each zone early on), with
    re-sends mixed in; and the expected count per zone."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    lines: list[str] = []
    expected: Counter[str] = Counter()
    for i in range(reports):
        zone, (lat, lon) = points[i % len(points)]
        doc: dict[str, Any] = {
            "report_id": f"chaos-{i}",
            "source": f"pkf-op-{i % 5}",
            "source_type": "observation_post",
            "occurred_at": (now - timedelta(minutes=rng.uniform(1, 600))).isoformat(),
            "location": {"lat": lat, "lon": lon},
            "category": "small_arms_fire",
            "casualties": {"killed": 1 if i < len(points) else 0},
        }
        lines.append(json.dumps(doc))
        expected[zone] += 1
        if i % RESEND_EVERY == RESEND_EVERY - 1:
            lines.append(lines[rng.randrange(len(lines))])
    return lines, expected


def exact(worker: Worker, expected: Counter[str]) -> bool:
    rows = worker.tallies(window="30d", by="zone")
    if rows is None:
        return False
    got = {str(r["zone"]): int(r["reports"]) for r in rows}
    if got != dict(expected):
        # shown in the timeout message when it never matches
        raise AssertionError(f"{sum(got.values())} of {sum(expected.values())} counted")
    return True


def assert_every_report_published(broker: EmbeddedBroker, worker: Worker, reports: int) -> None:
    """Every report fed is on the incident topic, in an incident version, at least once."""
    incidents = sum(int(r["incidents"]) for r in worker.tallies(window="30d", by="zone") or [])
    records = read_topic(broker.bootstrap, "ceasefire.incidents", expect=incidents, timeout=60)
    published = {
        (rep["source"], rep["report_id"])
        for doc in (json.loads(r.value) for r in records)
        for rep in doc["reports"]
    }
    assert len(published) == reports, f"{reports - len(published)} reports never published"


def assert_alerts_opened_once(broker: EmbeddedBroker, zones: set[str]) -> None:
    """Every zone's casualty alert opened, and every alert fingerprint opened once."""

    def alerted() -> list[dict[str, Any]] | None:
        records = read_topic(broker.bootstrap, "ceasefire.alerts", expect=1)
        events = [json.loads(r.value) for r in records]
        alerting = {e["labels"]["zone"] for e in events if e["rule"] == "casualties"}
        return events if alerting >= zones else None

    events = wait_for(alerted, timeout=60, what="a casualties alert in every zone")
    opened = Counter(e["fingerprint"] for e in events if e["status"] == "firing")
    assert opened and all(n == 1 for n in opened.values()), opened


def test_joins_stops_and_kills_under_load_lose_nothing_and_count_nothing_twice(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    points = list(zone_points().items())
    lines, expected = feed_lines(points)
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {"CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=8)).isoformat()}

    def worker(name: str) -> Worker:
        return Worker(broker, tmp_path, name=name, env=env)

    w1, w2 = worker("w1"), worker("w2")
    w1.start()
    w2.start()
    joined: list[Worker] = []
    feed = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "feed", str(path), "--rate", str(RATE)],
        env=w1.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    started = time.monotonic()
    try:

        def at(seconds: float) -> None:
            time.sleep(max(0.0, started + seconds - time.monotonic()))

        at(5)
        w3 = worker("w3")
        joined.append(w3)
        w3.start(ready_timeout=90)  # a join under load
        at(18)
        w1.stop()  # leaves its groups: a rebalance under load
        at(26)
        w2.kill()  # dies mid-batch: its partitions move after the session timeout
        at(32)
        w4 = worker("w4")
        joined.append(w4)
        w4.start(ready_timeout=90)  # and a join while the takeover settles
        assert feed.wait(timeout=120) == 0, feed.stderr.read() if feed.stderr else ""
        feed_seconds = time.monotonic() - started

        for w in (w3, w4):
            wait_for(
                lambda w=w: exact(w, expected),  # type: ignore[misc]
                timeout=120,
                what=f"exact tallies from {w.url}",
            )
        settled = time.monotonic() - started
        print(f"feed {feed_seconds:.0f}s, exact from every worker after {settled:.0f}s")

        assert_every_report_published(broker, w3, REPORTS)
        assert_alerts_opened_once(broker, {zone for zone, _ in points})

        for w in (w3, w4):  # no death but the one killed
            assert w.proc is not None and w.proc.poll() is None, w.log_tail()
    finally:
        if feed.poll() is None:
            feed.kill()
        w1.stop()
        w2.kill()
        for w in joined:
            w.stop()
