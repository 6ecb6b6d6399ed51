"""How many connections the API holds: per client address, and in all.

The keep-alive and body deadlines (`streams/web/api.py`) bound how long a client holds a
connection, not how many it opens meanwhile: one host opening a few thousand connections a
second still ran the worker out of file handles, and from then its API (health checks too)
and any new Kafka or peer connection failed. Each accepted connection is therefore admitted
here first, by the address it comes from; one over a limit gets a 503 with `Retry-After`
and is closed before the HTTP server sees it, and is counted
(`ceasefire_api_connections_refused_total{limit}`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from streams import metrics

log = logging.getLogger(__name__)

Limit = Literal["per_address", "total"]


def default_total(share: float = 0.5, floor: int = 64) -> int:
    """Half the process's open-file limit: the other half stays for Kafka's connections,
    the peers' queries and files. A limit of `unlimited` counts as 65,536."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 65_536
    return max(floor, int(soft * share))


@dataclass
class ConnectionLimits:
    """The open connections by client address, against two limits (0: that one unbounded)."""

    per_address: int
    total: int
    open: dict[str, int] = field(default_factory=dict)
    count: int = 0

    def admit(self, address: str) -> Limit | None:
        """Take a place for a connection from `address`, or say which limit refuses it."""
        if self.total and self.count >= self.total:
            return "total"
        held = self.open.get(address, 0)
        if self.per_address and held >= self.per_address:
            return "per_address"
        self.open[address] = held + 1
        self.count += 1
        return None

    def release(self, address: str) -> None:
        held = self.open.get(address, 0)
        if held <= 0:
            return
        self.count -= 1
        if held == 1:
            del self.open[address]
        else:
            self.open[address] = held - 1


def refusal(limit: Limit, address: str, limits: ConnectionLimits) -> bytes:
    """A whole HTTP/1.1 503 answer, as the API's errors are: a JSON body with `error`."""
    if limit == "total":
        message = (
            f"the worker holds {limits.total} connections, its limit "
            "(CEASEFIRE_MAX_CONNECTIONS); retry"
        )
    else:
        message = (
            f"{address} holds {limits.per_address} connections to this worker, the limit "
            "for one address (CEASEFIRE_MAX_CONNECTIONS_PER_ADDRESS); reuse a connection "
            "or retry"
        )
    body = json.dumps({"error": message, "limit": limit}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def client_address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")  # a Unix socket's peer has no address


class AdmittedProtocol(asyncio.Protocol):
    """Admits a connection, then hands it to the HTTP server's own protocol.

    Every callback is passed on as it comes, so the server's handler sees the transport
    as if it had been given it directly; a refused connection never reaches it."""

    def __init__(self, limits: ConnectionLimits, inner: Callable[[], asyncio.Protocol]) -> None:
        self._limits = limits
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._address = client_address(transport)
        refused = self._limits.admit(self._address)
        if refused is not None:
            metrics.API_CONNECTIONS_REFUSED.labels(limit=refused).inc()
            log.info(
                "refused a connection from %s: %s connection limit reached",
                self._address,
                refused.replace("_", " "),
            )
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal(refused, self._address, self._limits))
            transport.close()  # after the answer is written
            return
        metrics.API_CONNECTIONS.set(self._limits.count)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._limits.release(self._address)
        metrics.API_CONNECTIONS.set(self._limits.count)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class AdmittedSite(web.SockSite):
    """A site on a bound socket whose connections are admitted by `limits` first."""

    def __init__(
        self, runner: web.BaseRunner, sock: socket.socket, limits: ConnectionLimits
    ) -> None:
        super().__init__(runner, sock)
        self._limits = limits

    async def start(self) -> None:
        for limit in ("per_address", "total"):  # the series exist from the start
            metrics.API_CONNECTIONS_REFUSED.labels(limit=limit)
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        limits = self._limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: AdmittedProtocol(limits, server), sock=self._sock, backlog=self._backlog
        )
