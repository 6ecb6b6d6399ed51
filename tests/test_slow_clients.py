"""Clients that take too long to send a request lose their connection (`KEEPALIVE_SECONDS`
and `BODY_SECONDS` of `streams/web/api.py`): a review held 21,000 half-sent requests open
until the worker ran out of file handles and its API answered no one."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from streams.kafka.broker import free_port
from streams.web import api as api_module
from streams.web.api import ApiServer
from tests.test_web_api import AUTH, TOKEN, report, stand_in

pytestmark = pytest.mark.timeout(30)


async def _read_all(reader: asyncio.StreamReader, seconds: float) -> bytes:
    return await asyncio.wait_for(reader.read(), seconds)


async def _closed_unanswered(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection without a word (a write to it may have failed)."""
    try:
        return await _read_all(reader, 3) == b""
    except ConnectionError:
        return True


def test_a_worker_s_api_closes_silent_trickling_and_slow_body_clients_and_serves_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api_module, "BODY_SECONDS", 0.6)
    monkeypatch.setattr(api_module, "KEEPALIVE_SECONDS", 0.6)
    port = free_port()
    monitor, _ = stand_in(api_token=TOKEN, web_host="127.0.0.1", web_port=port)

    async def go() -> None:
        server = ApiServer(monitor)
        await server.on_start()
        try:
            opened = asyncio.get_running_loop().time()
            silent = await asyncio.open_connection("127.0.0.1", port)
            trickling = await asyncio.open_connection("127.0.0.1", port)
            trickling[1].write(b"GET /healthz HTTP/1.1\r\n")
            kept = await asyncio.open_connection("127.0.0.1", port)
            kept[1].write(b"GET /api/v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            body = json.dumps([report(1)]).encode()
            slow_body = await asyncio.open_connection("127.0.0.1", port)
            slow_body[1].write(
                b"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Authorization: {AUTH['Authorization']}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            for _ in range(5):  # a header line now and then: no longer enough
                await asyncio.sleep(0.2)
                with contextlib.suppress(ConnectionError):  # closed on it
                    trickling[1].write(b"X-A: b\r\n")
                    await trickling[1].drain()
            assert await _closed_unanswered(silent[0])
            assert await _closed_unanswered(trickling[0])
            answered = await _read_all(slow_body[0], 3)  # and closed
            assert answered.startswith(b"HTTP/1.1 408"), answered
            assert b"did not arrive within 1 s" in answered, answered
            # the kept-alive client was answered, then closed once idle (aiohttp's own)
            served = await _read_all(kept[0], 3)
            assert served.startswith(b"HTTP/1.1 200") and b"FeatureCollection" in served
            assert asyncio.get_running_loop().time() - opened < 5
            # and a client that says what it wants is served as ever
            fresh = await asyncio.open_connection("127.0.0.1", port)
            fresh[1].write(
                b"GET /api/v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            assert (await _read_all(fresh[0], 3)).startswith(b"HTTP/1.1 200")
            for _, writer in (silent, trickling, kept, slow_body, fresh):
                writer.close()
        finally:
            await server.on_stop()

    asyncio.run(go())
