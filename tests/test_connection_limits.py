"""The API bounds the connections it holds, per client address and in all
(`streams/web/admission.py`): one host opening connections faster than the keep-alive
deadline closes them ran the worker out of file handles."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import metrics
from streams.kafka.broker import free_port
from streams.web.admission import (
    OPEN_FILES_CAP,
    AdmittedProtocol,
    ConnectionLimits,
    address_key,
    default_per_address,
    default_total,
    raise_open_file_limit,
)
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
    writer.write(b"GET /api/v1/zones HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
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


# -- a review: two addresses shut out the API at a common container limit -----------------------
@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("10.0.0.7", "10.0.0.7"),
        ("::ffff:10.0.0.7", "10.0.0.7"),  # a dual-stack socket's IPv4 client
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:DB8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("unknown", "unknown"),
    ],
)
def test_a_client_counts_by_its_ipv4_address_or_its_ipv6_64(host: str, key: str) -> None:
    assert address_key(host) == key


class FakeTransport(asyncio.WriteTransport):
    def __init__(self, peer: Any) -> None:
        super().__init__()
        self.peer = peer
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True


def test_one_host_s_ipv6_addresses_share_its_place() -> None:
    """A host given a /64 opened each connection from another address of it, and was
    never over the per-address limit."""
    limits = ConnectionLimits(per_address=2, total=100)
    served: list[FakeTransport] = []
    for n in range(1, 4):
        transport = FakeTransport((f"2001:db8:0:7::{n:x}", 40000 + n, 0, 0))
        AdmittedProtocol(limits, asyncio.Protocol).connection_made(transport)
        served.append(transport)
    assert [t.closed for t in served] == [False, False, True]
    assert b"2001:db8:0:7::/64 holds 2 connections" in served[2].written
    other = FakeTransport(("2001:db8:0:8::1", 40000, 0, 0))  # another /64
    mapped = FakeTransport(("::ffff:10.0.0.7", 40000, 0, 0))
    for transport in (other, mapped):
        AdmittedProtocol(limits, asyncio.Protocol).connection_made(transport)
        assert not transport.closed
    assert limits.open == {"2001:db8:0:7::/64": 2, "2001:db8:0:8::/64": 1, "10.0.0.7": 1}


@pytest.mark.parametrize(
    ("total", "per_address"), [(512, 64), (32_768, 256), (2048, 256), (64, 8), (4, 1)]
)
def test_the_default_per_address_limit_is_an_eighth_of_a_small_total(
    total: int, per_address: int
) -> None:
    assert default_per_address(total) == per_address


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    """In a process of its own, started at a soft limit of 1,024 (or its hard limit if lower)."""
    code = (
        "import resource\n"
        "from streams.web.admission import OPEN_FILES_CAP, default_total, raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))\n"
        "print(raise_open_file_limit())\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], default_total(), hard)\n"
        "print(raise_open_file_limit())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    target = OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_CAP)
    raised = f"(1024, {target})" if target > 1024 else "None"
    assert out[0] == raised, out
    assert out[1].split() == [str(target), str(max(64, target // 2)), str(hard)], out
    assert out[2] == "None", out  # once raised, nothing more to do


def test_an_unlimited_hard_limit_raises_the_soft_one_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: calls.append(limits))
    assert raise_open_file_limit() == (1024, OPEN_FILES_CAP)
    assert calls == [(OPEN_FILES_CAP, resource.RLIM_INFINITY)]


def test_a_limit_that_cannot_be_raised_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: int, __: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_open_file_limit() is None
    monkeypatch.setattr(resource, "getrlimit", lambda _: (8192, 4096 * 2))
    assert raise_open_file_limit() is None  # already at its hard limit


def test_run_raises_the_open_file_limit_before_it_starts_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams import cli
    from streams.cli import worker
    from streams.cli.common import CliError

    order: list[str] = []
    monkeypatch.setattr(worker, "_check_files", lambda _: order.append("files"))
    monkeypatch.setattr(worker, "_raise_open_file_limit", lambda: order.append("rlimit"))

    def stop(_: object) -> None:
        order.append("port")
        raise CliError("stop here")

    monkeypatch.setattr(worker, "reserve_api_port", stop)
    with pytest.raises(CliError, match="stop here"):
        worker._run(cli.build_parser().parse_args(["run"]))
    assert order == ["files", "rlimit", "port"]


def test_with_the_per_address_limit_unset_eight_addresses_fill_a_small_worker() -> None:
    """A total of 16 (as half of an open-file limit of 32): two connections per address,
    where 256 let two addresses take every place (with a limit of 1,024, 2 x 256 = 512)."""
    port = free_port()
    monitor, _ = stand_in(web_host="127.0.0.1", web_port=port, max_connections=16)
    assert monitor.settings.max_connections_per_address is None

    async def go() -> None:
        server = ApiServer(monitor)
        await server.on_start()
        held: list[Streams] = []
        try:
            for source in ("127.0.0.2", "127.0.0.2"):
                held.append(
                    await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                )
            refused = await _zones(port, "127.0.0.2")
            assert refused.startswith(b"HTTP/1.1 503"), refused
            assert json.loads(refused.split(b"\r\n\r\n", 1)[1])["limit"] == "per_address"
            served = await _zones(port, "127.0.0.3")
            assert served.startswith(b"HTTP/1.1 200"), served
        finally:
            for _, writer in held:
                writer.close()
            await server.on_stop()

    asyncio.run(go())
