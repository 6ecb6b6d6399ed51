"""Whether anything listens at the bootstrap addresses, before a Kafka client is made.

kafka-python spends its whole bootstrap timeout (30 s) retrying an address that refuses
every connection before it says no broker answered: a mistyped port or a broker not
started kept `feed`, `alerts` or `topics` silent for 30 s. A refused connection or an
unknown host is a definite answer, given here at once; an address that does not answer
(a firewall, a slow network) is left to the clients and their timeouts.
"""

from __future__ import annotations

import socket
import struct

from streams.config import Settings
from streams.kafka.errors import unreachable
from streams.kafka.tls import api_versions_request, servers

#: How long a TCP connection may take to be refused or accepted here.
CONNECT_SECONDS = 3.0


def _why(exc: OSError) -> str | None:
    """What a failed connection says for sure, None when it may yet answer."""
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return None
    return exc.strerror or type(exc).__name__  # e.g. no route to host


def check_listening(settings: Settings, *, timeout: float = CONNECT_SECONDS) -> None:
    """Raise `BrokerUnavailable` when every bootstrap server refuses a TCP connection,
    names an unknown host or (in plain text) answers a Kafka request with something else;
    nothing when one answers as Kafka or leaves it undecided."""
    refused: list[str] = []
    plain = not settings.security_protocol.endswith("SSL")  # TLS: the clients say it
    for host, port in servers(settings.bootstrap()):
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                if not plain or _speaks_kafka(sock, timeout) is not False:
                    return
                # an HTTP server, say: kafka-python retried it for 30 s and said only
                # that no broker was reachable
                refused.append(
                    f"{host}:{port} answers, but not as a Kafka broker in plain text (another "
                    "program, or a TLS listener: see CEASEFIRE_SECURITY_PROTOCOL)"
                )
        except OSError as exc:
            why = _why(exc)
            if why is None:
                return
            refused.append(f"{host}:{port} {why}")
    raise unreachable(settings, because=", ".join(refused))


#: Ends a line, and a request of a line-based protocol: an HTTP server reads a request line
#: up to its newline, and the binary ApiVersions request need hold none.
_END_OF_REQUEST = b"\r\n\r\n"


def _speaks_kafka(sock: socket.socket, timeout: float) -> bool | None:
    """Whether the server at `sock` answers ApiVersions as Kafka does; None when it says
    nothing in `timeout`, nor once the request is followed by an empty line (a slow broker
    is left to the clients). An HTTP server waited for a newline: it said nothing, and
    kafka-python then spent its 30 s on it."""
    head = b""
    nudged = False
    try:
        sock.settimeout(timeout)
        sock.sendall(api_versions_request(7))
        while len(head) < 8:
            try:
                chunk = sock.recv(8 - len(head))
            except TimeoutError:
                if nudged:
                    return None
                # a broker answers the request it has before it reads what follows
                sock.sendall(_END_OF_REQUEST)
                nudged = True
                continue
            if not chunk:
                return False  # closed on it: no Kafka broker does
            head += chunk
    except OSError:
        return False  # reset: no Kafka broker does either
    size, correlation = struct.unpack(">ii", head)
    return bool(correlation == 7 and 4 <= size <= 1 << 20)


def answers_kafka(host: str, port: int, *, timeout: float = CONNECT_SECONDS) -> bool:
    """Whether what listens at host:port answers a Kafka request (ApiVersions, in plain
    text) with a Kafka answer: our correlation id back."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return _speaks_kafka(sock, timeout) is True
    except OSError:
        return False
