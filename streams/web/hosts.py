"""The Host check of the API: a request naming a host the worker does not answer to is
421 (Misdirected Request), on every route.

Without it, DNS rebinding let any web page an analyst opened read the API through the
analyst's browser: the page's own name, pointed at the worker's address (127.0.0.1 or a LAN
one) after the page loaded, made its requests same-origin, and the worker answered them
(incidents, alerts, metrics). Rebinding needs a DNS name, so IP literals are always allowed;
a name must be one of the worker's own (`default_names`) or of CEASEFIRE_ALLOWED_HOSTS.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from aiohttp import web

from streams.names import normal_name

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

#: What CEASEFIRE_ALLOWED_HOSTS takes, as the 421 answer says.
HOW_TO_ALLOW = (
    "CEASEFIRE_ALLOWED_HOSTS (comma-separated names, *.example.org for the names under "
    "example.org, * for any)"
)


def is_ip_literal(host: str) -> bool:
    """Whether a host (as a URL or a Host header holds it, without the port) is an IP
    address: IPv4 dotted, or IPv6 in brackets (or bare)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(unquote(bare))  # a zone id travels as %25 in a URL
    except ValueError:
        return False
    return True


def header_host(header: str) -> str:
    """The host of a Host header (`name:port`, `[v6]:port`, `name`), lower case, without
    the final dot of a fully qualified name."""
    value = header.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end != -1 else value
    if value.count(":") > 1:  # a bare IPv6 address: no port can be told from it
        return value
    return value.partition(":")[0].lower().rstrip(".")


def is_loopback(host: str) -> bool:
    """Whether a listen address is the loopback interface only: `localhost`, 127.0.0.0/8,
    ::1. Every other (0.0.0.0, ::, a LAN address or any other name) may be reached from
    the network."""
    if normal_name(host) == "localhost":
        return True
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """Names a request may carry in its Host header (IP literals are always allowed)."""

    names: frozenset[str]
    #: `.example.org` for `*.example.org`: any name ending so
    suffixes: tuple[str, ...] = ()
    any: bool = False

    def allows(self, header: str | None) -> bool:
        if header is None or self.any:  # no Host (HTTP/1.0): no browser sent it
            return True
        host = header_host(header)
        if is_ip_literal(host):
            return True
        return host in self.names or any(
            host.endswith(s) and len(host) > len(s) for s in self.suffixes
        )


def parse_allowed(value: str | None) -> AllowedHosts:
    """CEASEFIRE_ALLOWED_HOSTS: comma-separated names, `*.example.org` wildcards, `*`."""
    names: set[str] = set()
    suffixes: list[str] = []
    for item in (value or "").split(","):
        name = normal_name(item)
        if name == "*":
            return AllowedHosts(frozenset(), (), any=True)
        if name.startswith("*."):
            suffixes.append(name[1:])
        elif name:
            names.add(name)
    return AllowedHosts(frozenset(names), tuple(suffixes))


@cache
def machine_names() -> frozenset[str]:
    """This machine's host name and fully qualified name (looked up once)."""
    return frozenset(n for n in map(normal_name, (socket.gethostname(), socket.getfqdn())) if n)


def default_names(web_host: str, advertised_url: str | None) -> frozenset[str]:
    """The names the worker answers to unasked: `localhost`, the listen host and the host
    of the advertised URL when they are names, and the machine's own names."""
    hosts = {"localhost", web_host, urlsplit(advertised_url or "").hostname or ""}
    names = {normal_name(h) for h in hosts if h and not is_ip_literal(h)}
    return frozenset(names) | machine_names()


def allowed_hosts(web_host: str, advertised_url: str | None, extra: str | None) -> AllowedHosts:
    """The worker's own names and those of `extra` (CEASEFIRE_ALLOWED_HOSTS)."""
    more = parse_allowed(extra)
    return AllowedHosts(
        more.names | default_names(web_host, advertised_url), more.suffixes, more.any
    )


def misdirected(header: str) -> str:
    host = header_host(header)[:100]
    return (
        f"this worker does not answer to the host name {host!r} (the request's Host "
        "header): a web page under a name that resolves to the worker could read the API "
        f"through a browser (DNS rebinding). Use an address it answers to (an IP address, "
        f"localhost, its own names), or add the name to {HOW_TO_ALLOW}"
    )


def host_check(allowed: AllowedHosts) -> Middleware:
    """A middleware answering 421 `{"error"}` to a request whose Host is not allowed."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Host")
        if header is not None and not allowed.allows(header):
            return refuse(header)
        return await handler(request)

    return check_host


def refuse(header: str) -> web.Response:
    """The 421 answer to a request naming `header`'s host."""
    return web.json_response({"error": misdirected(header)}, status=421)
