"""Any sequence of membership changes under load leaves every surviving worker running and
every answer exact (issue 9, "No crash on membership changes").

A seeded random sequence of 4-6 changes, each a few seconds after the last and without
waiting for the previous one to settle, runs while a feed with re-sends flows: `join` (a
new worker, fresh data directory), `start` (a worker stopped or killed earlier starts again
on its own port and directory), `stop` (SIGTERM) and `kill` (SIGKILL); at most 4 workers
run and at least one always does. Afterwards every running worker is ready within a bound
and answers the exact tallies, no worker died but those killed, every SIGTERM stop exited
0, every report is on `ceasefire.incidents` and every alert fingerprint opened once.

The seed and the sequence are printed; `CEASEFIRE_MEMBERSHIP_SEED=N` replays one.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, wait_for
from tests.test_alerting_stream import zone_points
from tests.test_chaos import (
    assert_alerts_opened_once,
    assert_every_report_published,
    exact,
    feed_lines,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPORTS = 12_000
RATE = 300  # reports per second: the feed runs ~42 s (with its re-sends)
MAX_ALIVE = 4
#: Seconds between two changes (drawn uniformly): some overlap the previous rebalance.
GAP = (3.0, 9.0)
#: After the feed: every running worker ready, then exact, within these bounds.
READY_TIMEOUT = 120.0
EXACT_TIMEOUT = 120.0

Action = Literal["join", "start", "stop", "kill"]


@dataclass(frozen=True)
class Change:
    after: float  # seconds after the previous change
    action: Action
    worker: str

    def __str__(self) -> str:
        return f"+{self.after:.1f}s {self.action} {self.worker}"


def plan(rng: random.Random, initial: list[str]) -> list[Change]:
    """4-6 changes, each possible in the state the previous ones leave."""
    alive, down = list(initial), list[str]()
    changes: list[Change] = []
    for _ in range(rng.randint(4, 6)):
        options: list[Action] = []
        if len(alive) < MAX_ALIVE:
            options += ["join", "start"] if down else ["join"]
        if len(alive) > 1:
            options += ["stop", "kill"]
        action = rng.choice(options)
        if action == "join":
            name = f"w{len(alive) + len(down) + 1}"
            alive.append(name)
        elif action == "start":
            name = rng.choice(down)
            down.remove(name)
            alive.append(name)
        else:
            name = rng.choice(alive)
            alive.remove(name)
            down.append(name)
        changes.append(Change(round(rng.uniform(*GAP), 1), action, name))
    return changes


def test_plan_keeps_within_bounds() -> None:
    for seed in range(500):
        alive = {"w1", "w2"}
        for change in plan(random.Random(seed), ["w1", "w2"]):
            if change.action in ("join", "start"):
                assert change.worker not in alive
                alive.add(change.worker)
            else:
                alive.remove(change.worker)
            assert 1 <= len(alive) <= MAX_ALIVE


def test_random_membership_changes_under_load_leave_every_survivor_exact(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    seed = int(os.environ.get("CEASEFIRE_MEMBERSHIP_SEED") or random.randrange(2**32))
    changes = plan(random.Random(seed), ["w1", "w2"])
    print(f"CEASEFIRE_MEMBERSHIP_SEED={seed}: " + ", ".join(map(str, changes)))

    points = list(zone_points().items())
    lines, expected = feed_lines(points, REPORTS)
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = {"CEASEFIRE_OBSERVED_SINCE": (datetime.now(UTC) - timedelta(days=8)).isoformat()}
    workers = {n: Worker(broker, tmp_path, name=n, env=env) for n in ("w1", "w2")}
    stop_codes: list[tuple[str, int | None]] = []
    feed: subprocess.Popen[bytes] | None = None
    try:
        for w in workers.values():
            w.launch()
        for name, w in workers.items():
            wait_for(w.healthy, timeout=90, what=f"{name} ready", explain=w.not_ready)
        feed = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "feed", str(path), "--rate", str(RATE)],
            env=workers["w1"].env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started = time.monotonic()
        for change in changes:
            time.sleep(change.after)
            name = change.worker
            if change.action == "join":
                workers[name] = Worker(broker, tmp_path, name=name, env=env).launch()
            elif change.action == "start":
                workers[name].launch()  # its own port and data directory again
            elif change.action == "stop":
                stop_codes.append((name, workers[name].stop()))
            else:
                workers[name].kill()
            print(f"{time.monotonic() - started:5.1f}s {change.action} {name}")
        assert feed.wait(timeout=120) == 0, feed.stderr.read() if feed.stderr else ""
        print(f"feed done after {time.monotonic() - started:.0f}s")

        running = {n: w for n, w in workers.items() if w.proc is not None}
        assert running, "the plan keeps one worker running"
        for name, w in running.items():  # fail at once on a death, not after the waits
            assert w.proc is not None and w.proc.poll() is None, f"{name}:\n{w.log_tail()}"
        for name, w in running.items():  # healthy() raises if the process died
            wait_for(w.healthy, timeout=READY_TIMEOUT, what=f"{name} ready", explain=w.not_ready)
        for name, w in running.items():
            wait_for(
                lambda w=w: exact(w, expected),  # type: ignore[misc]
                timeout=EXACT_TIMEOUT,
                what=f"exact tallies from {name}",
            )
        print(f"every running worker ready and exact after {time.monotonic() - started:.0f}s")

        assert_every_report_published(broker, next(iter(running.values())), REPORTS)
        assert_alerts_opened_once(broker, {zone for zone, _ in points})
        for name, w in running.items():  # no death but the ones killed
            assert w.proc is not None and w.proc.poll() is None, f"{name}:\n{w.log_tail()}"
        assert all(code == 0 for _, code in stop_codes), stop_codes
    finally:
        if feed is not None and feed.poll() is None:
            feed.kill()
        for w in workers.values():
            w.stop()
