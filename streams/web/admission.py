"""How many connections the API holds: per client address, and in all.

The keep-alive and body deadlines (`streams/web/api.py`) bound how long a client holds a
connection, not how many it opens meanwhile: one host opening a few thousand connections a
second still ran the worker out of file handles, and from then its API (health checks too)
and any new Kafka or peer connection failed. Each accepted connection is therefore admitted
here first, by the address it comes from; one over a limit gets a 503 with `Retry-After`
and is closed before the HTTP server sees it, and is counted
(`ceasefire_api_connections_refused_total{limit}`). An IPv6 client counts by its /64 (one
host is usually given a whole /64, and picks any address of it), an IPv4-mapped IPv6
address as the IPv4 address it is.

Requests that build a large answer (series, incident exports) are bounded too: at most
`HEAVY_AT_ONCE` of them are answered at once by a worker (`HeavyRequests`); more are
answered 503 with `Retry-After` and counted (`ceasefire_api_heavy_requests_refused_total`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import resource
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from streams import metrics

log = logging.getLogger(__name__)

Limit = Literal["per_address", "total"]

#: The highest open-file limit a worker raises its own to (`raise_open_file_limit`).
OPEN_FILES_CAP = 1_048_576
#: The most connections from one client address by default, and the share of the total
#: one address may hold at most (`default_per_address`): with the total at 512 (half a
#: common container limit of 1,024), 256 let two addresses shut every other client out.
PER_ADDRESS_DEFAULT = 256
PER_ADDRESS_SHARE = 8


def raise_open_file_limit(cap: int = OPEN_FILES_CAP) -> tuple[int, int] | None:
    """Raise the process's soft open-file limit to its hard limit (at most `cap`): many
    containers start processes at 1,024 with a hard limit far above, and the connection
    limits are a share of it. (old, new) when raised, None when it was already as high
    or cannot be raised."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and 0 <= soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, target, exc)
            return None
        log.info("raised the open-file limit (ulimit -n) from %s to %s", soft, target)
        return soft, target
    return None


def default_per_address(total: int) -> int:
    """The per-address limit when CEASEFIRE_MAX_CONNECTIONS_PER_ADDRESS is unset: 256, or
    an eighth of the total when that is less (at least 1), so that no fewer than eight
    addresses can fill the worker."""
    return max(1, min(PER_ADDRESS_DEFAULT, total // PER_ADDRESS_SHARE))


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


def address_key(host: str) -> str:
    """What a client is counted by: an IPv4 address; an IPv6 address's /64 (a host picks
    any address of the /64 it is given: counted by address, it had 2^64 addresses' worth of
    connections); an IPv4-mapped IPv6 address (`::ffff:10.0.0.7`, on a dual-stack socket)
    as its IPv4 address. Anything else as it is."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # without a zone (`fe80::1%eth0`)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(transport: asyncio.BaseTransport) -> str:
    """The key of the connection's client (`address_key`)."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return address_key(str(peer[0]))
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


# -- heavy requests ---------------------------------------------------------------------------
#: Requests answered with a large document a worker builds at once: client requests (and
#: peers' `scope=local` requests, counted apart: a peer asks on behalf of a client request
#: it admitted, and each peer may ask at once). Building one took 0.2-0.4 s of the event
#: loop the stages and health checks share (10,000 hourly buckets); 16 clients asking at
#: once held /healthz 4-5 s.
HEAVY_AT_ONCE = 2
PEER_HEAVY_AT_ONCE = 4
#: Seconds a refused heavy request is told to wait (`Retry-After`).
HEAVY_RETRY_SECONDS = 1
#: What a heavy request is (the `endpoint` label) and who asked (`scope`).
HeavyEndpoint = Literal["series", "incidents"]
HEAVY_ENDPOINTS: tuple[HeavyEndpoint, ...] = ("series", "incidents")
HEAVY_SCOPES = ("cluster", "local")

for _endpoint in HEAVY_ENDPOINTS:  # the series exist from the start, at zero
    for _scope in HEAVY_SCOPES:
        metrics.API_HEAVY_REFUSED.labels(endpoint=_endpoint, scope=_scope)


@dataclass
class HeavyRequests:
    """How many heavy requests a worker is answering, against a limit."""

    at_once: int
    held: int = 0

    @contextmanager
    def admit(self) -> Iterator[bool]:
        """True, and a place held until the block ends; False when every place is taken."""
        if self.held >= self.at_once:
            yield False
            return
        self.held += 1
        try:
            yield True
        finally:
            self.held -= 1


def busy(endpoint: HeavyEndpoint, local: bool, at_once: int) -> web.Response:
    """The 503 for a heavy request over the limit, counted."""
    scope = "local" if local else "cluster"
    metrics.API_HEAVY_REFUSED.labels(endpoint=endpoint, scope=scope).inc()
    what = "series and incident-export requests"
    body = {
        "error": (
            f"this worker is answering {at_once} {what} at once, as many as it takes; "
            f"retry in {HEAVY_RETRY_SECONDS} s, or ask another worker"
        ),
        "limit": "heavy_requests",
    }
    response = web.json_response(body, status=503)
    response.headers["Retry-After"] = str(HEAVY_RETRY_SECONDS)
    return response
