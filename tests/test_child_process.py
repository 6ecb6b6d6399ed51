"""A stage in a process of its own (`streams/pipeline/child_process.py`, `relay.py`): the
child's statuses reach the worker's metrics and readiness, each count once; a child that
dies or hangs is started again, later each time; a stopping worker starts none."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streams import metrics
from streams.config import Settings
from streams.pipeline import child_process
from streams.pipeline.child_process import ChildProcess, Reporter, Status
from streams.pipeline.identity_process import IdentityProcess
from streams.pipeline.relay import MetricMirror, MetricRelay


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


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Gauge]:
    return (
        Counter("t_reports", "reports", ["kind"], registry=registry),
        Histogram("t_seconds", "seconds", buckets=(0.1, 1, 10), registry=registry),
        Gauge("t_lag", "lag", ["partition"], registry=registry),
    )


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The registry's samples, but for their creation times."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


# -- the relay --------------------------------------------------------------------------
def test_the_relay_gives_the_worker_the_childs_metrics_as_if_counted_there() -> None:
    child, worker, direct = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    c_counter, c_hist, c_gauge = _metrics(child)
    w_counter, w_hist, w_gauge = _metrics(worker)
    d_counter, d_hist, d_gauge = _metrics(direct)
    relay, mirror = (
        MetricRelay([c_counter, c_hist, c_gauge]),
        MetricMirror([w_counter, w_hist, w_gauge]),
    )
    for observed in ([0.05, 2.0], [0.5, 30.0, 0.05], []):
        for value in observed:
            for hist in (c_hist, d_hist):
                hist.observe(value)
            for counter in (c_counter, d_counter):
                counter.labels("new").inc()
        mirror.apply(relay.changes())
    for gauge in (c_gauge, d_gauge):
        gauge.labels("3").set(7)
    mirror.apply(relay.changes())
    assert _exposition(worker) == _exposition(direct)
    # nothing new: nothing counted again
    again = relay.changes()
    assert not again and again.counters == {"t_reports": {}}


def test_a_series_the_child_creates_at_zero_is_the_workers_from_the_first_status() -> None:
    """The ingest and identity children set up `ceasefire_input_records_missing_total` at 0;
    relayed only once it grew, it appeared in the worker's `/metrics` at its first loss,
    already at N, and `increase()` (so `CeasefireInputLost`) never saw that loss."""
    child, worker = CollectorRegistry(), CollectorRegistry()
    c_counter, c_hist, _ = _metrics(child)
    w_counter, w_hist, _ = _metrics(worker)
    relay, mirror = MetricRelay([c_counter, c_hist]), MetricMirror([w_counter, w_hist])
    c_counter.labels("lost")  # created, never counted
    first = relay.changes()
    assert first and first.counters == {"t_reports": {("lost",): 0.0}}
    mirror.apply(first)
    assert 't_reports_total{kind="lost"} 0.0' in _exposition(worker)
    assert "t_seconds_count 0.0" in _exposition(worker)
    assert not relay.changes()  # once: nothing new since
    c_counter.labels("lost").inc(7)
    mirror.apply(relay.changes())
    assert 't_reports_total{kind="lost"} 7.0' in _exposition(worker)


def test_gauges_follow_the_child_and_leave_with_it() -> None:
    child, worker = CollectorRegistry(), CollectorRegistry()
    *_, c_gauge = _metrics(child)
    *_, w_gauge = _metrics(worker)
    w_gauge.labels("9").set(1)  # the worker's own series: never the mirror's to remove
    relay, mirror = MetricRelay([c_gauge]), MetricMirror([w_gauge])
    c_gauge.labels("0").set(5)
    c_gauge.labels("1").set(6)
    mirror.apply(relay.changes())
    c_gauge.remove("1")  # the child gave partition 1 up
    mirror.apply(relay.changes())
    series = {s.labels["partition"]: s.value for f in w_gauge.collect() for s in f.samples}
    assert series == {"0": 5, "9": 1}
    mirror.clear()  # the child is gone
    series = {s.labels["partition"]: s.value for f in w_gauge.collect() for s in f.samples}
    assert series == {"9": 1}


def test_a_restarted_childs_counts_add_to_the_workers() -> None:
    worker = CollectorRegistry()
    w_counter, *_ = _metrics(worker)
    mirror = MetricMirror([w_counter])
    for _ in range(2):  # two child processes, each counting from zero
        child = CollectorRegistry()
        c_counter, *_ = _metrics(child)
        relay = MetricRelay([c_counter])
        c_counter.labels("new").inc(3)
        mirror.apply(relay.changes())
    assert w_counter.labels("new")._value.get() == 6


def test_the_reporter_sends_each_count_once_and_its_state() -> None:
    registry = CollectorRegistry()
    counter, *_ = _metrics(registry)
    conn = FakeConnection()
    reporter = Reporter(conn, MetricRelay([counter]))  # type: ignore[arg-type]
    reporter.state = lambda: {"ready": True, "behind": {("t", 0): 4}}
    counter.labels("x").inc(2)
    reporter.send()
    reporter.send()
    first, second = conn.sent
    assert first.metrics.counters == {"t_reports": {("x",): 2}}
    assert second.metrics.counters == {"t_reports": {}}
    assert first.ready and first.behind == {("t", 0): 4}


# -- supervision ------------------------------------------------------------------------
def _rejected(reason: str) -> float:
    return float(metrics.REJECTED.labels(reason)._value.get())


def test_statuses_reach_the_worker_metrics_and_readiness() -> None:
    calls: list[str] = []
    proc = IdentityProcess(
        Settings(), on_ready=lambda: calls.append("ready"), on_lost=lambda: calls.append("lost")
    )
    child_registry = CollectorRegistry()
    rejected = Counter("ceasefire_reports_rejected", "x", ["reason"], registry=child_registry)
    relay = MetricRelay([rejected])
    before = _rejected("revision_conflict")
    rejected.labels("revision_conflict").inc(3)
    proc._take(Status(False, relay.changes(), stalled=frozenset({2})))
    assert calls == [] and not proc.ready and proc.stalled == {2}
    assert _rejected("revision_conflict") == before + 3
    proc._take(Status(True, behind={("t.accepted", 0): 5}))
    proc._take(Status(True))
    assert calls == ["ready"] and proc.ready and proc.behind == {}
    proc._take(Status(False))  # a rebalance in the child: unready again
    assert calls == ["ready", "lost"]


def test_a_child_that_ends_makes_the_worker_unready_and_is_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(child_process, "RESTART_FIRST", 0.01)  # a ready child resets to it

    async def scenario() -> tuple[list[str], IdentityProcess]:
        calls: list[str] = []
        proc = IdentityProcess(
            Settings(),
            on_ready=lambda: calls.append("ready"),
            on_lost=lambda: calls.append("lost"),
        )
        spawned = asyncio.Event()
        proc._spawn = spawned.set  # type: ignore[method-assign]
        proc._conn = FakeConnection(  # type: ignore[assignment]
            [Status(True, behind={("t", 1): 3}, stalled=frozenset({1}))]
        )
        proc._drain()  # its status, then the end of the pipe
        await asyncio.wait_for(spawned.wait(), timeout=5)
        return calls, proc

    calls, proc = asyncio.run(scenario())
    assert calls == ["ready", "lost"]
    assert not proc.ready and proc.behind == {} and proc.stalled == frozenset()
    assert proc._backoff == 0.02  # the next death waits longer


def _restarts(process: str, cause: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "ceasefire_worker_process_restarts_total", {"process": process, "cause": cause}
    )
    assert value is not None  # the series exists from the child's creation
    return value


def test_each_restart_is_counted_with_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that ended counts as `exited`; one killed as hung, when its end follows, as
    `silent`, once; the next end of its successor as `exited` again."""
    monkeypatch.setattr(child_process, "RESTART_FIRST", 0.01)

    async def scenario() -> dict[str, float]:
        proc = IdentityProcess(Settings())
        before = {c: _restarts("identity", c) for c in ("exited", "silent")}
        spawned = asyncio.Event()
        proc._spawn = spawned.set  # type: ignore[method-assign]

        async def end() -> None:
            spawned.clear()
            proc._conn = FakeConnection()  # type: ignore[assignment]
            proc._drain()  # the end of the pipe
            await asyncio.wait_for(spawned.wait(), timeout=5)

        await end()
        proc._process, proc._conn = FakeProcess(), FakeConnection()  # type: ignore[assignment]
        proc._heard_at = time.monotonic() - child_process.SILENT_MAX - 1
        proc._kill_if_silent()
        proc._process = None  # nothing to reap
        await end()  # the killed child's end
        await end()  # its successor's
        return {c: _restarts("identity", c) - before[c] for c in ("exited", "silent")}

    assert asyncio.run(scenario()) == {"exited": 2.0, "silent": 1.0}


def test_a_stopping_worker_does_not_start_its_child_again() -> None:
    async def scenario() -> ChildProcess:
        proc = IdentityProcess(Settings())
        proc._spawn = lambda: pytest.fail("started again")  # type: ignore[method-assign]
        proc._stopping = True
        proc._conn = FakeConnection()  # type: ignore[assignment]
        proc._drain()
        await asyncio.sleep(0.05)
        return proc

    assert asyncio.run(scenario())._restart is None


class FakeProcess:
    """A child process that counts its kills."""

    kills = 0

    def kill(self) -> None:
        self.kills += 1


def test_a_silent_child_is_killed_once() -> None:
    proc = IdentityProcess(Settings())
    child = FakeProcess()
    proc._process, proc._conn = child, FakeConnection()  # type: ignore[assignment]
    proc._heard_at = time.monotonic() - 5
    proc._kill_if_silent()
    assert child.kills == 0  # a status 5 s ago: alive
    proc._heard_at = time.monotonic() - child_process.SILENT_MAX - 1
    proc._kill_if_silent()
    proc._kill_if_silent()
    assert child.kills == 1


def test_a_child_is_not_killed_for_the_time_the_worker_stood_still() -> None:
    """A worker and its children frozen 35 s (a paused VM or container): the worker's first
    look after it killed both healthy children; the time it stood still is not theirs."""

    proc = IdentityProcess(Settings())
    child = FakeProcess()
    proc._process, proc._conn = child, FakeConnection()  # type: ignore[assignment]
    proc._heard_at = 100.0
    proc._look(136.0, 36.0)  # the first look after a 35 s freeze
    assert child.kills == 0
    proc._look(137.0, 1.0)
    assert child.kills == 0  # silent 2 s of listening
    proc._look(100.0 + 35.0 + child_process.SILENT_MAX + 1, 1.0)
    assert child.kills == 1  # silent past SILENT_MAX while the worker listened: hung


def test_a_child_whose_worker_is_gone_stops_within_a_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An identity process left by a killed worker, with the broker away, waited for its
    stop for good (and ignores SIGTERM): it now exits after ORPHAN_STOP_SECONDS."""
    from streams.pipeline import stop_deadline

    exited: list[int] = []
    monkeypatch.setattr(child_process, "ORPHAN_STOP_SECONDS", 0.05)
    monkeypatch.setattr(child_process, "_exit", exited.append)
    stop_deadline.disarm()
    try:

        async def scenario() -> object:
            orders: asyncio.Queue[Any] = asyncio.Queue()
            child_process.worker_gone(orders)
            order = orders.get_nowait()
            for _ in range(100):
                if exited:
                    break
                await asyncio.sleep(0.02)
            return order

        assert asyncio.run(scenario()) is child_process.STOP
        assert exited == [0]
    finally:
        stop_deadline.disarm()
