"""Ingest in a process of its own (`streams/pipeline/ingest_process.py`): what the child
reports reaches the worker's metrics and readiness; a child that dies is started again
and nothing is lost; a worker that dies takes its child with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from streams import metrics
from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker
from streams.pipeline import ingest_process
from streams.pipeline.ingest_process import IngestProcess, Status, _Reporter
from streams.tools.procfs import child_pids
from tests.harness import Worker, produce, wait_for
from tests.test_integration import POINTS, report


class FakeConnection:
    def __init__(self, inbox: list[Any] | None = None) -> None:
        self.sent: list[Any] = []
        self.inbox = list(inbox or [])
        self.closed = False

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def poll(self) -> bool:
        return True  # a message, or the end of the pipe

    def recv(self) -> Any:
        if not self.inbox:
            raise EOFError
        return self.inbox.pop(0)

    def fileno(self) -> int:
        return 10_000  # never registered: removing its reader is a no-op

    def close(self) -> None:
        self.closed = True


def _rejected(reason: str) -> float:
    return float(metrics.REJECTED.labels(reason)._value.get())


def test_the_child_reports_rejections_once_each_and_its_lag() -> None:
    conn = FakeConnection()
    reporter = _Reporter(conn)  # type: ignore[arg-type]
    reporter.send()  # this process's registry has other tests' counts: the baseline
    metrics.REJECTED.labels("invalid_json").inc(2)
    metrics.CONSUMER_LAG.labels("t.reports", "3").set(7)
    reporter.on_ready()
    reporter.send()
    reporter.send()
    first, second = conn.sent[-2:]
    assert first.rejected == {"invalid_json": 2}
    assert second.rejected == {}
    assert first.ready and first.lag[("t.reports", 3)] == 7
    metrics.CONSUMER_LAG.remove("t.reports", "3")


def test_statuses_reach_the_worker_metrics_and_readiness() -> None:
    calls: list[str] = []
    proc = IngestProcess(Settings(), on_ready=lambda: calls.append("ready"))
    before = _rejected("unknown_place")
    proc._take(Status(False, None, {"unknown_place": 3}, {("t.reports", 0): 5}))
    assert calls == [] and not proc.ready
    assert _rejected("unknown_place") == before + 3
    assert metrics.CONSUMER_LAG.labels("t.reports", "0")._value.get() == 5
    proc._take(Status(True, 12.5, {}, {("t.reports", 0): 0}))
    proc._take(Status(True, 99.0, {}, {}))
    assert calls == ["ready"] and proc.ready
    assert proc.first_record_at == 12.5  # the first one, kept
    series = {tuple(s.labels.values()) for f in metrics.CONSUMER_LAG.collect() for s in f.samples}
    assert not any("t.reports" in labels for labels in series)  # the child owns none now


def test_a_child_that_ends_makes_the_worker_unready_and_is_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest_process, "RESTART_FIRST", 0.01)  # a ready child resets to it

    async def scenario() -> tuple[list[str], IngestProcess]:
        calls: list[str] = []
        proc = IngestProcess(
            Settings(),
            on_ready=lambda: calls.append("ready"),
            on_lost=lambda: calls.append("lost"),
        )
        spawned = asyncio.Event()
        proc._spawn = spawned.set  # type: ignore[method-assign]
        proc._conn = FakeConnection([Status(True, None)])  # type: ignore[assignment]
        proc._drain()  # its status, then the end of the pipe
        await asyncio.wait_for(spawned.wait(), timeout=5)
        return calls, proc

    calls, proc = asyncio.run(scenario())
    assert calls == ["ready", "lost"]
    assert not proc.ready
    assert proc._backoff == 0.02  # the next death waits longer


def test_a_stopping_worker_does_not_start_its_child_again() -> None:
    async def scenario() -> IngestProcess:
        proc = IngestProcess(Settings())
        proc._spawn = lambda: pytest.fail("started again")  # type: ignore[method-assign]
        proc._stopping = True
        proc._conn = FakeConnection()  # type: ignore[assignment]
        proc._drain()
        await asyncio.sleep(0.05)
        return proc

    assert asyncio.run(scenario())._restart is None


def test_ingest_holds_while_the_stages_have_too_much_to_apply() -> None:
    from streams.classify.classifier import Classifier
    from streams.classify.gazetteer import Gazetteer
    from streams.classify.zones import ZoneCatalogue
    from streams.pipeline.ingest import Ingest

    classifier = Classifier(ZoneCatalogue.load(None), Gazetteer.load(None))
    ingest = Ingest(Settings(ingest_lead_packs=10), classifier)
    flowing = []
    for behind in (10, 11, 30, 6, 5, 9, 11):
        ingest.pace(behind)
        flowing.append(ingest.flowing.is_set())
    # holds above the lead, goes on again at half of it
    assert flowing == [True, False, False, False, True, True, False]

    async def held_then_released() -> tuple[dict[Any, Any], float]:
        started = time.monotonic()
        taken = await ingest._held()  # held: nothing, within its 0.2 s
        asyncio.get_running_loop().call_later(0.05, ingest.pace, 0)
        ingest.flowing.clear()
        await asyncio.wait_for(ingest._held(), timeout=1)  # returns as soon as released
        return taken, time.monotonic() - started

    taken, took = asyncio.run(held_then_released())
    assert taken == {} and took < 1.0
    assert ingest.flowing.is_set()


def test_the_worker_forwards_how_far_behind_its_stages_are() -> None:
    proc = IngestProcess(Settings())
    conn = FakeConnection()
    proc._conn = conn  # type: ignore[assignment]
    proc.pace(42)
    assert conn.sent == [(ingest_process.PACE, 42)]


def test_a_silent_child_is_killed_once() -> None:
    class FakeProcess:
        kills = 0

        def kill(self) -> None:
            self.kills += 1

    proc = IngestProcess(Settings())
    child = FakeProcess()
    proc._process, proc._conn = child, FakeConnection()  # type: ignore[assignment]
    proc._heard_at = time.monotonic() - 5
    proc._kill_if_silent()
    assert child.kills == 0  # a status 5 s ago: alive
    proc._heard_at = time.monotonic() - ingest_process.SILENT_MAX - 1
    proc._kill_if_silent()
    proc._kill_if_silent()
    assert child.kills == 1


# -- on a real broker ---------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """The ingest processes `pid` started."""
    out = []
    for child in child_pids(pid):
        try:
            if b"streams.pipeline.ingest_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_killed_ingest_process_is_replaced_and_nothing_is_lost(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    zones = list(POINTS)

    def batch(start: int, n: int) -> list[bytes]:
        return [json.dumps(report(i, zones[i % len(zones)])).encode() for i in range(start, n)]

    def counted(w: Worker) -> int:
        rows = w.tallies("24h", "zone")
        return sum(r["reports"] for r in rows) if rows else -1

    worker = Worker(broker, tmp_path).start()
    assert worker.proc is not None
    try:
        produce(broker.bootstrap, "ceasefire.reports", batch(0, 200))
        wait_for(lambda: counted(worker) == 200, timeout=60, what="the first 200 counted")
        (child,) = _children(worker.proc.pid)
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: not worker.healthy(), timeout=10, what="unready without ingest")
        # Sent while no ingest runs: the new child must take them from the committed offsets.
        produce(broker.bootstrap, "ceasefire.reports", batch(200, 400))
        wait_for(worker.healthy, timeout=60, what="ready again with a new ingest process")
        wait_for(lambda: counted(worker) == 400, timeout=60, what="all 400 counted")
        time.sleep(2)  # and no more than that
        assert counted(worker) == 400
        (replacement,) = _children(worker.proc.pid)
        assert replacement != child
        assert "the ingest process ended" in worker.log_tail(400)
    finally:
        pid = worker.proc.pid if worker.proc else None
        orphans = _children(pid) if pid else []
        worker.kill()  # SIGKILL: the child must notice and stop on its own
    wait_for(
        lambda: not any(_alive(p) for p in orphans),
        timeout=20,
        what="the ingest process to end with its worker",
    )
