"""A consumer stopped while its broker is gone stops cleanly (aiokafka 0.14).

aiokafka's `Fetcher.close` cancels its pending fetch requests and awaits each without
suppressing the cancellation (its own fetch task's it does suppress). A request waiting out
its retry backoff, as every one does while the broker is away, is such a task: the
`CancelledError` then left `AIOKafkaConsumer.stop` half done (its coordinator and client
not closed), and a worker stopped after its broker came out with six tracebacks (the Faust
consumer thread's through Faust's stdout redirect, one log line a character) and an
unclosed producer in the ingest process. Here each pending request is awaited as the fetch
task is; a cancellation of the task calling `close` itself still propagates.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.consumer.fetcher import Fetcher

#: aiokafka's own, kept for the test that shows its defect
AIOKAFKA_CLOSE = Fetcher.close


async def _close(self: Fetcher) -> None:
    """aiokafka's `Fetcher.close`, each pending request awaited as its fetch task is."""
    self._closed = True
    self._fetch_task.cancel()  # first: it starts the pending requests
    with contextlib.suppress(asyncio.CancelledError):
        await self._fetch_task
    for waiter in self._fetch_waiters:  # fail every pending fetchone/fetchall
        self._notify(waiter)
    for task in list(self._pending_tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError  # the caller's own cancellation is not swallowed


def install() -> None:
    """Patch every aiokafka consumer of this process (idempotent)."""
    Fetcher.close = _close  # type: ignore[method-assign]
