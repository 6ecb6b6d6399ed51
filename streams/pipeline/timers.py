"""A worker's periodic work, run so that a failure waits for the next tick.

Faust runs a timer as a task of the app, and mode's services crash the whole app when a
task raises: one failed read of the broker in a timer (the tail check reads a skipped
tail, a sweep writes) would stop the worker. `every` logs the failure instead; the work
runs again at the next tick, and each piece of work is written to be safe to run again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


def every(app: Any, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` every `seconds` on the Faust `app` (its `timer`), logging what it raises."""
    name = getattr(work, "__qualname__", repr(work))

    async def tick() -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; it runs again at the next tick", name)

    app.timer(seconds, name=name)(tick)
