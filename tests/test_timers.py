"""A timer's work that raises is logged and runs again at the next tick: it never reaches
Faust, whose services crash the whole worker on a task's exception."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streams.pipeline.timers import every

pytestmark = pytest.mark.timeout(10)


class App:
    """What `every` asks of a Faust app: `timer(seconds, name=...)` as a decorator."""

    def __init__(self) -> None:
        self.timers: dict[str, tuple[float, Callable[[], Awaitable[None]]]] = {}

    def timer(self, seconds: float, *, name: str) -> Any:
        def register(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            self.timers[name] = (seconds, fn)
            return fn

        return register


def test_work_that_raises_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def check_tails() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("broker away")

    app = App()
    every(app, 5.0, check_tails)
    ((name, (seconds, tick)),) = app.timers.items()
    assert (seconds, name.endswith("check_tails")) == (5.0, True)

    async def run() -> None:
        await tick()  # does not raise
        await tick()

    asyncio.run(run())
    assert len(runs) == 2
    assert "check_tails failed; it runs again at the next tick" in caplog.text
    assert "broker away" in caplog.text


def test_cancellation_still_stops_the_timer() -> None:
    async def work() -> None:
        raise asyncio.CancelledError

    app = App()
    every(app, 1.0, work)
    ((_, (_, tick)),) = app.timers.items()

    async def run() -> None:
        await tick()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
