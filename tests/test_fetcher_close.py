"""A consumer stopped while its broker is gone (streams/kafka/fetcher_close.py): aiokafka's
fetcher let the cancellation of a fetch request waiting out its retry backoff escape
`close`, so the consumer's stop was left half done. On a stand-in fetcher: no broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka.consumer.fetcher import Fetcher

from streams.kafka import fetcher_close

pytestmark = pytest.mark.timeout(10)


def stand_in() -> Fetcher:
    """A fetcher as `close` finds it with the broker gone: its routine waiting, one request
    in its retry backoff (`_proc_fetch_request` sleeps `retry_backoff` after an error)."""
    fetcher: Fetcher = object.__new__(Fetcher)

    async def routine() -> None:
        await asyncio.sleep(60)

    async def request_in_backoff() -> None:
        await asyncio.sleep(60)

    fetcher._fetch_task = asyncio.ensure_future(routine())
    fetcher._pending_tasks = {asyncio.ensure_future(request_in_backoff())}
    fetcher._fetch_waiters = set()
    return fetcher


async def close_unpatched(fetcher: Fetcher) -> None:
    await fetcher_close.AIOKAFKA_CLOSE(fetcher)


def test_aiokafka_s_close_lets_a_pending_request_s_cancellation_escape() -> None:
    """The defect itself, so that an aiokafka that fixes it is noticed (then drop the patch)."""

    async def run() -> None:
        fetcher = stand_in()
        await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await close_unpatched(fetcher)

    asyncio.run(run())


def test_close_awaits_every_pending_request_and_returns() -> None:
    async def run() -> None:
        fetcher = stand_in()
        pending = list(fetcher._pending_tasks)
        await asyncio.sleep(0)
        await fetcher_close._close(fetcher)
        assert fetcher._fetch_task.cancelled() and all(t.cancelled() for t in pending)

    asyncio.run(run())


def test_the_callers_own_cancellation_still_propagates() -> None:
    async def run() -> None:
        fetcher = stand_in()
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(fetcher_close._close(fetcher))
        await asyncio.sleep(0)  # closing now awaits the fetch routine
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        assert closing.cancelled()

    asyncio.run(run())
