"""A worker refreshes its window gauges once as it becomes ready, before it says so: a
restarted worker exported none (or zeros) for 20-30 s after /healthz answered again, the
timer's first ticks, so the dashboards dipped to zero at every restart and failover.
On fakes: no broker, no Faust app."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from streams.pipeline import app as app_module
from streams.pipeline.app import Monitor, first_window_gauges
from streams.web.fanout import Incomplete

pytestmark = pytest.mark.timeout(30)


async def test_refreshes_once_the_owners_are_known() -> None:
    calls: list[str] = []
    answers = [Incomplete("rebalance"), Incomplete("rebalance"), None]

    def covered() -> None:
        calls.append("covered")
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    async def refresh() -> None:
        calls.append("refresh")

    async def sleep(_: float) -> None:
        calls.append("sleep")

    assert await first_window_gauges(refresh, covered, retry=0.5, bound=5, sleep=sleep)
    assert calls == ["covered", "sleep", "covered", "sleep", "covered", "refresh"]


async def test_gives_up_within_its_bound() -> None:
    refreshed: list[int] = []

    def covered() -> None:
        raise Incomplete("never")

    async def refresh() -> None:
        refreshed.append(1)

    assert not await first_window_gauges(refresh, covered, retry=0.01, bound=0.1)
    assert refreshed == []

    async def failing() -> None:
        raise RuntimeError("a peer answered nonsense")

    assert not await first_window_gauges(failing, lambda: None, retry=0.01, bound=1)


def _monitor(refreshed: list[bool]) -> Any:
    """A Monitor with every readiness condition met, its gauge refresh a fake that records
    what the worker said when it ran."""
    m: Any = object.__new__(Monitor)
    stage = SimpleNamespace(ready=asyncio.Event(), input=SimpleNamespace(stalled=set(), topic="t"))
    stage.ready.set()
    m.broker_gone_at_stop = None
    m._feeders = {"ingest": True, "identity": True}
    m.local = [stage]
    m.broker_misses = 0
    m.topic_mismatches = []
    m.ready = False
    m.started = False
    m.zone = SimpleNamespace(owned={0, 1})
    m._gauges_fresh = False
    m._first_gauges = None
    m.identity = None

    async def refresh() -> None:
        refreshed.append(m.ready)

    m._refresh_window_gauges = refresh
    return m


async def test_readiness_waits_for_the_first_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "partition_owners", lambda _: {"me": {0, 1}})
    monkeypatch.setattr(app_module, "check_covered", lambda *_: None)
    refreshed: list[bool] = []
    m = _monitor(refreshed)
    m.update_ready()
    assert not m.ready and not m.started  # /healthz still 503, /readyz "not ready"
    assert m.waiting_for() == ["window gauges (refreshed once before ready)"]
    m.update_ready()  # called again meanwhile: still one refresh
    await m._first_gauges
    assert refreshed == [False]  # refreshed before the worker said it was ready
    assert m.ready and m.started
    # ready stays ready without another refresh; lost and regained: refreshed again first
    m.update_ready()
    assert m.ready and refreshed == [False]
    m.broker_misses = 3
    m.update_ready()
    assert not m.ready
    m.broker_misses = 0
    m.update_ready()
    assert not m.ready
    await m._first_gauges
    assert m.ready and refreshed == [False, False]


def test_without_an_event_loop_readiness_does_not_wait() -> None:
    m = _monitor([])
    m.update_ready()
    assert m.ready


def _exported() -> list[str]:
    from prometheus_client import generate_latest

    from streams import metrics

    text = generate_latest(metrics.REGISTRY).decode()
    return [line for line in text.splitlines() if line.startswith("ceasefire_incidents_window{")]


async def test_the_gauges_leave_a_worker_as_partition_0_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashboards sum the window gauges over workers: the previous owner of partition 0
    kept exporting its figures until its next refresh (15 s), and one that lost it while a
    refresh awaited the cluster wrote them all the same: every panel doubled meanwhile."""
    from streams.web import fanout

    owned = {0, 1}
    lose_during_refresh = False

    async def rows(monitor: Any, *, window: str, by: str, as_of: float) -> list[Any]:
        await asyncio.sleep(0)  # a peer's answer
        if lose_during_refresh:
            owned.discard(0)  # the rebalance lands while the refresh awaits
        return [{"zone": "aghdam", "party": "az", "incidents": 10, "killed": 1, "wounded": 2}]

    monkeypatch.setattr(fanout, "cluster_rows", rows)
    zone = SimpleNamespace(owned_partitions=lambda: set(owned), owned=owned)
    await fanout.refresh_window_gauges(SimpleNamespace(zone=zone))  # type: ignore[arg-type]
    assert _exported()
    # revoked (an eager rebalance revokes every partition): cleared at once
    m = _monitor([])
    m.zone = zone
    m.local = []
    m.settings = SimpleNamespace(rebalance_timeout=3.0)
    await m._on_revoked(None, set())
    assert _exported() == []
    # lost while a refresh waited on the cluster: nothing written
    lose_during_refresh = True
    await fanout.refresh_window_gauges(SimpleNamespace(zone=zone))  # type: ignore[arg-type]
    assert _exported() == [] and 0 not in owned
