"""The forced end of a stop that cannot finish (`streams/pipeline/stop_deadline.py`)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from streams.pipeline import stop_deadline


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    stop_deadline.disarm()
    yield
    stop_deadline.disarm()


def test_the_deadline_runs_the_cleanups_then_exits_with_zero_once() -> None:
    done = threading.Event()
    calls: list[str] = []

    def exit(code: int) -> None:
        calls.append(f"exit {code}")
        done.set()

    def failing() -> None:
        calls.append("failing cleanup")
        raise RuntimeError("a broker that will not stop")

    stop_deadline.at_forced_exit(failing)
    stop_deadline.at_forced_exit(lambda: calls.append("broker stopped"))
    stop_deadline.exit_after(0.05, "the broker does not answer", exit=exit)
    stop_deadline.exit_after(10, "a later deadline", exit=exit)  # the earliest holds
    assert done.wait(5)
    # a cleanup that fails does not keep the others or the exit from running
    assert calls == ["failing cleanup", "broker stopped", "exit 0"]


def test_a_disarmed_deadline_does_not_exit() -> None:
    exited = threading.Event()
    stop_deadline.exit_after(0.05, "never", exit=lambda code: exited.set())
    stop_deadline.disarm()
    assert not exited.wait(0.3)


def test_an_earlier_deadline_replaces_a_later_one(caplog: pytest.LogCaptureFixture) -> None:
    """A stop begun with the broker answering has a long deadline; the broker lost during
    it brings the short one."""
    done = threading.Event()
    stop_deadline.exit_after(60, "the stop takes too long", exit=lambda code: done.set())
    stop_deadline.exit_after(0.05, "the broker no longer answers", exit=lambda code: done.set())
    assert done.wait(5)
    assert "the broker no longer answers" in caplog.text


def test_a_stop_asks_the_broker_again_after_a_blip() -> None:
    """One or two missed probes are a blip: the stopping worker probes again, and only a
    broker known gone (BROKER_DOWN_AFTER misses) or not answering now takes the short stop."""
    import asyncio

    from streams.pipeline.app import BROKER_DOWN_AFTER, broker_gone

    asked: list[int] = []

    def probe(answer: bool) -> Callable[[], Awaitable[bool]]:
        async def ask() -> bool:
            asked.append(1)
            return answer

        return ask

    assert not asyncio.run(broker_gone(1, probe(True)))
    assert not asyncio.run(broker_gone(BROKER_DOWN_AFTER - 1, probe(True)))
    assert asyncio.run(broker_gone(0, probe(False)))
    assert len(asked) == 3
    assert asyncio.run(broker_gone(BROKER_DOWN_AFTER, probe(True)))  # known gone
    assert len(asked) == 3  # and not asked
