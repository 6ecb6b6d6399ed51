"""The API bounds the connections it holds, per client address and in all
(`streams/web/admission.py`): one host opening connections faster than the keep-alive
deadline closes them ran the worker out of file handles."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import metrics
from streams.kafka.broker import free_port
from streams.web.admission import ConnectionLimits, default_total
from streams.web.api import ApiServer
from tests.test_web_api import stand_in

pytestmark = pytest.mark.timeout(30)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c"])), max_size=60),
    st.integers(0, 4),
    st.integers(0, 6),
)
def test_limits_count_what_they_admit_and_never_exceed_either_limit(
    steps: list[tuple[bool, str]], per_address: int, total: int
) -> None:
    limits = ConnectionLimits(per_address=per_address, total=total)
    held: dict[str, int] = {}
    for opening, address in steps:
        if opening:
            if limits.admit(address) is None:
                held[address] = held.get(address, 0) + 1
        elif held.get(address):
            limits.release(address)
            held[address] -= 1
        assert limits.count == sum(held.values())
        assert {a: n for a, n in held.items() if n} == limits.open
        assert not total or limits.count <= total
        assert not per_address or all(n <= per_address for n in limits.open.values())


def test_a_full_address_is_refused_by_name_and_a_release_makes_room() -> None:
    limits = ConnectionLimits(per_address=2, total=3)
    assert limits.admit("10.0.0.7") is None and limits.admit("10.0.0.7") is None
    assert limits.admit("10.0.0.7") == "per_address"
    assert limits.admit("10.0.0.8") is None
    assert limits.admit("10.0.0.9") == "total"
    limits.release("10.0.0.7")
    assert limits.admit("10.0.0.9") is None
    limits.release("10.0.0.1")  # never admitted: nothing to release
    assert limits.count == 3


def test_the_default_total_is_half_the_open_file_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = 32_768 if soft == resource.RLIM_INFINITY else max(64, soft // 2)
    assert default_total() == expected


async def _answer(streams: Streams) -> bytes:
    return await asyncio.wait_for(streams[0].read(), 3)


async def _zones(port: int, source: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"GET /api/v1/zones HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    try:
        return await _answer((reader, writer))
    finally:
        writer.close()


def _refused(limit: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "ceasefire_api_connections_refused_total", {"limit": limit}
    )
    return value or 0.0


def test_a_worker_s_api_refuses_connections_over_its_limits_and_serves_the_rest() -> None:
    port = free_port()
    monitor, _ = stand_in(
        web_host="127.0.0.1",
        web_port=port,
        max_connections_per_address=2,
        max_connections=3,
    )

    async def go() -> None:
        server = ApiServer(monitor)
        await server.on_start()
        held: list[Streams] = []
        try:
            per_address, total = _refused("per_address"), _refused("total")
            for source in ("127.0.0.2", "127.0.0.2"):  # silent: held until the deadline
                held.append(
                    await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                )
            refused = await _zones(port, "127.0.0.2")
            assert refused.startswith(b"HTTP/1.1 503"), refused
            assert b"Retry-After: 1" in refused
            body = json.loads(refused.split(b"\r\n\r\n", 1)[1])
            assert body["limit"] == "per_address"
            assert "127.0.0.2 holds 2 connections" in body["error"]
            assert "CEASEFIRE_MAX_CONNECTIONS_PER_ADDRESS" in body["error"]
            assert _refused("per_address") == per_address + 1
            # another address is served, and fills the worker's total
            held.append(
                await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))
            )
            refused = await _zones(port, "127.0.0.4")
            assert json.loads(refused.split(b"\r\n\r\n", 1)[1])["limit"] == "total"
            assert _refused("total") == total + 1
            assert metrics.REGISTRY.get_sample_value("ceasefire_api_connections") == 3
            # a closed connection makes room again
            held.pop(0)[1].close()
            for _ in range(50):
                if metrics.REGISTRY.get_sample_value("ceasefire_api_connections") == 2:
                    break
                await asyncio.sleep(0.02)
            served = await _zones(port, "127.0.0.2")
            assert served.startswith(b"HTTP/1.1 200"), served
        finally:
            for _, writer in held:
                writer.close()
            await server.on_stop()

    asyncio.run(go())
