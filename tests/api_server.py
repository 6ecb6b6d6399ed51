"""The worker's HTTP API over a stand-in monitor (or any application), served on a loopback
port in a thread, for tests that talk to it as to a real worker (no broker)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aiohttp import web

from streams.kafka.broker import free_port
from streams.web.api import Api

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView


@contextmanager
def serve_api(monitor_at: Callable[[str], WorkerView]) -> Iterator[str]:
    """Serve `Api(monitor_at(url))` at `url` until the block ends; yields the url."""
    with serve_app(lambda url: Api(monitor_at(url)).web) as url:
        yield url


@contextmanager
def serve_app(app_at: Callable[[str], web.Application]) -> Iterator[str]:
    """Serve the application `app_at(url)` makes at `url` until the block ends; yields the
    url."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app_at(url))
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
