"""A TLS check of the brokers before any Kafka client connects.

kafka-python, aiokafka and Faust log a failed TLS handshake, retry it until their
bootstrap timeout and then say only that no broker answered. `check_tls` makes one
TLS connection to each bootstrap server with the monitor's own SSL context and sends
one Kafka request (ApiVersions) through it, so that a certificate problem becomes one
line naming it, within seconds. A server that does not answer at all is left to the
clients, which report an unreachable broker as before.
"""

from __future__ import annotations

import socket
import ssl
import struct

from streams.config import Settings
from streams.kafka.errors import BrokerUnavailable

API_VERSIONS = 18
METADATA = 3


class TlsProblem(BrokerUnavailable):
    """The brokers answer, but not over a TLS connection this client accepts (or that
    accepts this client)."""


def servers(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each entry of a `host:port[,host:port]` list."""
    out: list[tuple[str, int]] = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        out.append((host.strip("[]") or "localhost", int(port or 9092)))
    return out


def ssl_context_of(settings: Settings) -> ssl.SSLContext | None:
    """The settings' SSL context; unreadable files become a `TlsProblem`."""
    try:
        return settings.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(
            f"{name}={path}"
            for name, path in (
                ("CEASEFIRE_SSL_CAFILE", settings.ssl_cafile),
                ("CEASEFIRE_SSL_CERTFILE", settings.ssl_certfile),
                ("CEASEFIRE_SSL_KEYFILE", settings.ssl_keyfile),
            )
            if path
        )
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        if getattr(exc, "filename", None):
            reason = f"{reason}: {exc.filename}"
        raise TlsProblem(f"TLS settings unusable ({reason}); check {files}") from exc


def api_versions_request(correlation_id: int) -> bytes:
    """ApiVersions v0, framed: a request every Kafka broker answers."""
    client_id = b"ceasefire-monitor-tls-check"
    body = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def _metadata_request(correlation_id: int) -> bytes:
    """Metadata v0 for no topic in particular: the brokers, as they name themselves."""
    client_id = b"ceasefire-monitor-tls-check"
    body = struct.pack(">hhih", METADATA, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # topics: none asked for (v0: all of them, a few)
    return struct.pack(">i", len(body)) + body


def _brokers_of(response: bytes) -> list[tuple[str, int]]:
    """(host, port) of each broker of a Metadata v0 response body (after its size)."""
    at = 4  # the correlation id
    (count,) = struct.unpack_from(">i", response, at)
    at += 4
    brokers = []
    for _ in range(count):
        _, length = struct.unpack_from(">ih", response, at)
        at += 6
        host = response[at : at + length].decode()
        at += length
        (port,) = struct.unpack_from(">i", response, at)
        at += 4
        brokers.append((host, port))
    return brokers


def advertised(ctx: ssl.SSLContext, host: str, port: int, timeout: float) -> list[tuple[str, int]]:
    """The brokers the broker at host:port names to clients (its advertised listeners),
    asked over TLS. Raises what `probe` raises, or ValueError for an answer it cannot read."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(_metadata_request(2))
            size = struct.unpack(">i", read_exactly(tls, 4))[0]
            if not 8 <= size <= 1 << 20:
                raise ValueError(f"a Metadata answer of {size} bytes")
            try:
                return _brokers_of(read_exactly(tls, size))
            except (struct.error, UnicodeDecodeError) as exc:
                raise ValueError(f"an unreadable Metadata answer: {exc}") from exc


def read_exactly(tls: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = tls.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _describe(settings: Settings, host: str, port: int, exc: ssl.SSLError) -> str:
    where = f"broker {host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        if "hostname" in why.lower() or "ip address mismatch" in why.lower():
            return (
                f"TLS: the certificate of {where} is not issued for {host} ({why.rstrip('.')}); "
                "connect with a host name the certificate names (CEASEFIRE_BROKER)"
            )
        if exc.verify_code in (2, 18, 19, 20, 21):  # no issuer, self-signed, cannot verify
            cafile = (
                f"CEASEFIRE_SSL_CAFILE={settings.ssl_cafile}"
                if settings.ssl_cafile
                else "the system CA store (CEASEFIRE_SSL_CAFILE is not set)"
            )
            return (
                f"TLS: the certificate of {where} is not trusted ({why}): "
                f"{cafile} does not hold the CA that signed it"
            )
        return f"TLS: the certificate of {where} failed verification ({why})"
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if ("alert" in reason and "certificate" in reason) or "unknown ca" in reason:
        return (
            f"TLS: {where} refused this client ({reason}): it wants a client certificate "
            "it trusts in CEASEFIRE_SSL_CERTFILE and CEASEFIRE_SSL_KEYFILE"
        )
    return (
        f"TLS handshake with {where} failed ({reason}); is it a TLS listener? "
        f"(CEASEFIRE_SECURITY_PROTOCOL={settings.security_protocol})"
    )


class ClosedAfterHandshake(OSError):
    """The TLS handshake completed, then the server closed the connection without a Kafka
    answer and without a TLS alert naming why."""


class SilentAfterHandshake(OSError):
    """The TLS handshake completed, then no Kafka answer came within the timeout."""


class NoConnection(OSError):
    """The server took no TCP connection: refused, unreachable, or no answer to the
    connect within the timeout (a host that drops packets, a full accept queue)."""


def probe(ctx: ssl.SSLContext, host: str, port: int, timeout: float) -> None:
    """One TLS connection and one ApiVersions round trip. Raises `NoConnection` when no
    TCP connection is made, `ssl.SSLError` for a TLS failure, `ClosedAfterHandshake` when
    the server hangs up after the handshake, `SilentAfterHandshake` when it then says
    nothing, `TimeoutError` when the handshake gets no answer, `OSError` otherwise."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        # a connect timeout is a TimeoutError too: it must not read as a listener that
        # took the connection and then gave no TLS answer
        raise NoConnection(str(exc)) from exc
    with sock:
        sock.settimeout(timeout)
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            # With TLS 1.3 the server judges a client certificate after the handshake:
            # its refusal arrives as an alert on the first read, or, when its close wins
            # the race with the alert (13 to 23 % of tries against stunnel), as a bare EOF.
            try:
                tls.sendall(api_versions_request(1))
                size = struct.unpack(">i", read_exactly(tls, 4))[0]
                read_exactly(tls, min(size, 4))
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError) as exc:
                raise ClosedAfterHandshake(str(exc)) from exc
            except TimeoutError as exc:
                raise SilentAfterHandshake(str(exc)) from exc


def _closed_after_handshake(settings: Settings, host: str, port: int) -> str:
    if settings.ssl_certfile:
        why = (
            f"it may not accept the client certificate in "
            f"CEASEFIRE_SSL_CERTFILE={settings.ssl_certfile}, or the broker behind it is down"
        )
    else:
        why = (
            "it may want a client certificate it trusts "
            "(CEASEFIRE_SSL_CERTFILE and CEASEFIRE_SSL_KEYFILE are not set)"
        )
    return (
        f"TLS: broker {host}:{port} closed the connection after the handshake "
        f"without answering: {why}"
    )


def check_tls(settings: Settings, *, timeout: float = 5.0) -> None:
    """Raise `TlsProblem` when every bootstrap server that answers refuses TLS with these
    settings; nothing when TLS is not configured or one server is fine."""
    if not settings.security_protocol.endswith("SSL"):
        return
    ctx = ssl_context_of(settings)
    if ctx is None:
        return
    problems: list[str] = []
    for host, port in servers(settings.bootstrap()):
        try:
            probe(ctx, host, port, timeout)
            _check_advertised(settings, ctx, host, port, timeout)
            return
        except ClosedAfterHandshake:
            problems.append(_closed_after_handshake(settings, host, port))
        except SilentAfterHandshake:
            problems.append(
                f"TLS: broker {host}:{port} completed the TLS handshake but gave no Kafka "
                f"answer within {timeout:.0f}s; is the broker behind the TLS listener up?"
            )
        except NoConnection:
            continue  # not listening, or not reachable: the clients say so
        except ssl.SSLError as exc:
            problems.append(_describe(settings, host, port, exc))
        except TimeoutError:
            problems.append(
                f"TLS: broker {host}:{port} accepted a connection but gave no TLS answer "
                f"within {timeout:.0f}s; is it a TLS listener? "
                f"(CEASEFIRE_SECURITY_PROTOCOL={settings.security_protocol})"
            )
        except OSError:
            continue  # not listening: the clients say that the broker is unreachable
    if problems:
        more = f" (and {len(problems) - 1} more bootstrap servers)" if len(problems) > 1 else ""
        raise TlsProblem(problems[0] + more)


def _check_advertised(
    settings: Settings, ctx: ssl.SSLContext, host: str, port: int, timeout: float
) -> None:
    """The clients bootstrap at host:port, then go where the broker names itself: a TLS
    problem there (a certificate for another name, a listener without TLS) showed only
    as "no Kafka broker reachable at host:port", the one that had answered. Raises
    `TlsProblem` naming the advertised broker; anything else (one broker of a cluster
    down, an answer it cannot read) is left to the clients."""
    try:
        brokers = advertised(ctx, host, port, timeout)
    except (OSError, ssl.SSLError, ValueError):
        return
    for h, p in brokers:
        if (h, p) == (host, port):
            continue
        try:
            probe(ctx, h, p, timeout)
            continue
        except ssl.SSLError as exc:
            why = _describe(settings, h, p, exc)
        except ClosedAfterHandshake:
            why = _closed_after_handshake(settings, h, p)
        except OSError:
            continue  # one broker of a cluster down: the clients use the others
        raise TlsProblem(
            f"the broker at {host}:{port} answers over TLS, but names itself {h}:{p} to "
            f"clients (its advertised listener), and there: {why}. Check the broker's "
            "advertised listeners, or connect where they point (CEASEFIRE_BROKER)"
        )
