"""The check that something listens at the bootstrap addresses (streams/kafka/reachable.py):
a refused port or an unknown host is said at once; anything undecided is left to the
clients. Loopback only."""

from __future__ import annotations

import socket
import time

import pytest

from streams.config import Settings
from streams.kafka import reachable
from streams.kafka.errors import BrokerUnavailable
from streams.kafka.reachable import check_listening

pytestmark = pytest.mark.timeout(20)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_refused_port_is_said_at_once_with_its_reason() -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port} connection refused"):
        check_listening(Settings(broker=f"kafka://127.0.0.1:{port}"))
    assert time.monotonic() - started < reachable.CONNECT_SECONDS


def test_an_unknown_host_is_said() -> None:
    with pytest.raises(BrokerUnavailable, match=r"no-such-host\.invalid:9092 unknown host"):
        check_listening(Settings(broker="kafka://no-such-host.invalid:9092"))


def test_one_listening_server_of_the_list_is_enough() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_listening(Settings(broker=f"kafka://127.0.0.1:{closed_port()};127.0.0.1:{port}"))


def test_every_refusal_is_named() -> None:
    a, b = closed_port(), closed_port()
    with pytest.raises(BrokerUnavailable) as raised:
        check_listening(Settings(broker=f"kafka://127.0.0.1:{a};127.0.0.1:{b}"))
    assert f"127.0.0.1:{a} connection refused, 127.0.0.1:{b} connection refused" in str(
        raised.value
    )


def test_an_address_that_does_not_answer_is_left_to_the_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connect timeout is no refusal (a slow network, a firewall that drops): the
    clients' own bootstrap timeout decides."""

    def silent(address: tuple[str, int], timeout: float) -> socket.socket:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    check_listening(Settings(broker="kafka://127.0.0.1:9092"))
