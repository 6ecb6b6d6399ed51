"""The API's listening address, bound before the worker starts anything else.

Faust starts the web server last, after the worker has joined its consumer groups (and
`run --demo` has started feeding): a port already in use would then fail late, with a
traceback, after making every other worker rebalance twice. `run` binds the address
first and parks the sockets here; the API server takes them when it starts. The sockets
stay bound in between, so no other process can take the port meanwhile.

Kept free of heavy imports: the command line calls it before loading Faust.
"""

from __future__ import annotations

import socket

_reserved: dict[tuple[str, int], list[socket.socket]] = {}


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets for every address `host` names, as asyncio's
    `create_server` would bind them. Raises OSError (port in use, no such address...)."""
    infos = socket.getaddrinfo(
        host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    # An IPv6 socket beside an IPv4 one of the same name takes IPv6 only (as asyncio
    # binds them); alone (`::`), it takes both: it answered no IPv4 client at all.
    both = {socket.AF_INET, socket.AF_INET6} <= {info[0] for info in infos}
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # As asyncio does: a port in TIME_WAIT is reusable, one with a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(both))
            sock.bind(address)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def reserve(host: str, port: int) -> None:
    """Bind host:port now and keep the sockets for the API server (`take`)."""
    release(host, port)
    _reserved[(host, port)] = bind_sockets(host, port)


def take(host: str, port: int) -> list[socket.socket] | None:
    """The sockets reserved for host:port, handed over once; None if none were."""
    return _reserved.pop((host, port), None)


def release(host: str, port: int) -> None:
    for sock in take(host, port) or []:
        sock.close()
