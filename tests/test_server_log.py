"""The HTTP server's log of its clients' errors (`streams/web/server_log.py`): a malformed
request is one INFO line, and a flood of them a line every 30 s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from streams.kafka.broker import free_port
from streams.kafka.log_repeats import RepeatFilter
from streams.web.server_log import HTTP_LOGGERS, ClientErrorFilter, quiet_client_errors

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def quieted() -> Iterator[None]:
    quiet_client_errors()
    quiet_client_errors()  # idempotent
    try:
        yield
    finally:
        for name in HTTP_LOGGERS:
            logger = logging.getLogger(name)
            for f in list(logger.filters):
                if isinstance(f, ClientErrorFilter | RepeatFilter):
                    logger.removeFilter(f)


def test_bad_requests_are_one_line_each_and_a_flood_is_held_back(
    quieted: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A review's client wrote an ERROR and a ten-line traceback per bad request: 2.5
    million lines in 65 s."""
    assert [type(f) for f in logging.getLogger("aiohttp.server").filters] == [
        ClientErrorFilter,
        RepeatFilter,
    ]

    async def go() -> list[bytes]:
        app = web.Application()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        answers = []
        try:
            for n in range(50):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"GET /" + b"a" * (9000 + n) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                await w.drain()
                answers.append(await r.read(12))
                w.close()
        finally:
            await runner.cleanup()
        return answers

    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        answers = asyncio.run(go())
    assert answers == [b"HTTP/1.0 400"] * 50  # the clients are answered as before
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    [line] = lines
    assert line.levelno == logging.INFO and line.exc_info is None
    assert line.getMessage() == (
        "Error handling request from 127.0.0.1: 400 Got more than 8190 bytes when reading"
    ), line.getMessage()
    assert "aaaa" not in caplog.text and "Traceback" not in caplog.text
