"""What listens at a broker address (streams/kafka/reachable.py): a refused port or an
unknown host is said at once, anything undecided is left to the clients; a program that
answers no Kafka request is not taken for a broker. Loopback only."""

from __future__ import annotations

import http.server
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from streams.config import Settings
from streams.kafka import reachable
from streams.kafka.broker import BrokerError, EmbeddedBroker
from streams.kafka.errors import BrokerUnavailable
from streams.kafka.reachable import answers_kafka, check_listening

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


class Listener:
    """A loopback server that answers each connection's first request with `reply(request)`
    (None: says nothing and holds the connection until the test ends)."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port: int = self.sock.getsockname()[1]
        self.reply = reply
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            request = conn.recv(4096)
            answer = self.reply(request)
            if answer is None:
                self.held.append(conn)
                continue
            conn.sendall(answer)
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def kafka_answer(request: bytes) -> bytes:
    """An ApiVersions answer's frame: size, then the request's correlation id."""
    (correlation,) = struct.unpack_from(">i", request, 8)
    body = struct.pack(">ih", correlation, 0) + b"\x00" * 4
    return struct.pack(">i", len(body)) + body


@pytest.mark.parametrize(
    ("reply", "kafka"),
    [
        (kafka_answer, True),
        (lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n", False),  # a web server
        (lambda _: b"", False),  # hangs up
        (lambda _: None, False),  # says nothing
    ],
    ids=["kafka", "http", "hangs-up", "silent"],
)
def test_only_a_kafka_answer_is_a_kafka_broker(
    reply: Callable[[bytes], bytes | None], kafka: bool
) -> None:
    listener = Listener(reply)
    try:
        assert answers_kafka("127.0.0.1", listener.port, timeout=1.0) is kafka
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (kafka_answer, None),
        (lambda _: b"HTTP/1.0 400 Bad request\r\n\r\n", "answers, but not as a Kafka broker"),
        (lambda _: b"", "answers, but not as a Kafka broker"),  # hangs up
        (lambda _: None, None),  # says nothing: left to the clients
    ],
    ids=["kafka", "http", "hangs-up", "silent"],
)
def test_a_program_answering_other_than_kafka_is_said_at_once(
    reply: Callable[[bytes], bytes | None], said: str | None
) -> None:
    """`feed` at a web server's port waited out kafka-python's 30 s, then said only that
    no broker was reachable; `run` said at once what listens there."""
    listener = Listener(reply)
    broker = Settings(broker=f"kafka://127.0.0.1:{listener.port}")
    try:
        if said is None:
            check_listening(broker, timeout=1.0)
        else:
            with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{listener.port} {said}"):
                check_listening(broker, timeout=1.0)
    finally:
        listener.close()


def test_the_embedded_broker_refuses_a_port_another_program_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It said "another broker is running there" of any program, and `run` then spent 30 s
    joining it as one."""
    import streams.kafka.broker as broker_module

    monkeypatch.setattr(broker_module, "PORT_RELEASE_SECONDS", 0.5)
    listener = Listener(lambda _: b"SSH-2.0-OpenSSH_9.2\r\n")
    try:
        with pytest.raises(BrokerError, match="in use by a program that answers no Kafka request"):
            EmbeddedBroker("127.0.0.1", listener.port).start(timeout=20)
    finally:
        listener.close()


def test_the_embedded_broker_waits_for_one_still_stopping_to_let_go_of_its_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`broker` started again 0.5 s after Ctrl-C said the port was held by a program that
    is not a Kafka broker: the old one, still stopping (about 3 s with workers connected)."""
    import streams.kafka.broker as broker_module

    monkeypatch.setattr(broker_module, "PORT_RELEASE_SECONDS", 10.0)
    listener = Listener(lambda _: None)  # accepts, answers nothing: as a broker stopping

    def stopped() -> None:  # shut down first: a bare close leaves the blocked accept's socket
        listener.sock.shutdown(socket.SHUT_RDWR)
        for conn in listener.held:  # reset, as a process's exit does: no TIME_WAIT on the port
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        listener.close()

    threading.Timer(1.5, stopped).start()
    broker = EmbeddedBroker("127.0.0.1", listener.port)
    try:
        broker.start()
        assert answers_kafka("127.0.0.1", listener.port)
    finally:
        broker.stop()


def test_a_web_server_waiting_for_a_newline_is_not_taken_for_a_broker() -> None:
    """Python's http.server reads a request line up to its newline, which the ApiVersions
    request did not hold: it said nothing, the address was left to the clients, and `feed
    --broker` at it waited 33 s for 'no Kafka broker reachable'."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        assert answers_kafka("127.0.0.1", port, timeout=1.0) is False
        with pytest.raises(
            BrokerUnavailable, match=f"127.0.0.1:{port} answers, but not as a Kafka"
        ):
            check_listening(Settings(broker=f"kafka://127.0.0.1:{port}"), timeout=1.0)
    finally:
        server.shutdown()
        server.server_close()
