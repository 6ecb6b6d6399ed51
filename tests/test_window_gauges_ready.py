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
