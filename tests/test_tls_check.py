"""The TLS check's description of a server that hangs up, or says nothing, after the handshake.

With TLS 1.3 a server refusing the client's certificate (or the lack of one) sends its
alert after the client has finished the handshake; when its close wins the race with that
alert the client reads a bare EOF (13 to 23 % of tries against stunnel). That must
still be one line naming the client certificate, not "is it a TLS listener?". A server
here completes the handshake and hangs up, deterministically, both with and without a
TLS close_notify.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from streams.config import Settings
from streams.kafka.tls import TlsProblem, check_tls


class HangUp:
    """A TLS server on loopback: each connection is handshaken and then closed (`notify`:
    with a close_notify), or, `silent`, held open without a word until the server stops."""

    def __init__(self, ca: trustme.CA, *, notify: bool = False, silent: bool = False) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.ctx)
        self.notify = notify
        self.silent = silent
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.1)  # so that close() ends the accept loop promptly
        self.stopped = threading.Event()
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(5)
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as tls:
                    self.handshakes += 1
                    if self.silent:
                        self.stopped.wait(10)
                    elif self.notify:
                        tls.unwrap()
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=[False, True], ids=["bare-close", "close-notify"])
def server(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[HangUp]:
    hang_up = HangUp(ca, notify=request.param)
    try:
        yield hang_up
    finally:
        hang_up.close()


def settings_for(server: HangUp, ca_file: Path, **more: object) -> Settings:
    return Settings(
        broker=f"kafka://127.0.0.1:{server.port}",
        security_protocol="SSL",
        ssl_cafile=ca_file,
        **more,  # type: ignore[arg-type]
    )


@pytest.mark.timeout(20)
def test_a_hang_up_after_the_handshake_names_the_missing_client_certificate(
    server: HangUp, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with pytest.raises(TlsProblem) as caught:
        check_tls(settings_for(server, ca_file), timeout=5)
    line = str(caught.value)
    assert server.handshakes == 1
    assert "closed the connection after the handshake" in line
    assert "client certificate" in line
    assert "CEASEFIRE_SSL_CERTFILE and CEASEFIRE_SSL_KEYFILE are not set" in line
    assert "\n" not in line


@pytest.mark.timeout(20)
def test_a_hang_up_with_a_client_certificate_names_that_certificate(
    server: HangUp, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("client@example.org")
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    with pytest.raises(TlsProblem) as caught:
        check_tls(settings_for(server, ca_file, ssl_certfile=cert, ssl_keyfile=key), timeout=5)
    line = str(caught.value)
    assert f"CEASEFIRE_SSL_CERTFILE={cert}" in line
    assert "or the broker behind it is down" in line


@pytest.mark.timeout(20)
def test_silence_after_the_handshake_asks_for_the_broker_behind_the_listener(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """A TLS terminator whose broker does not answer: the handshake completes, then nothing
    (not "no TLS answer", which is for a listener that does not speak TLS)."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    silent = HangUp(ca, silent=True)
    try:
        with pytest.raises(TlsProblem) as caught:
            check_tls(settings_for(silent, ca_file), timeout=1)
    finally:
        silent.close()
    line = str(caught.value)
    assert "completed the TLS handshake but gave no Kafka answer within 1s" in line
    assert "is the broker behind the TLS listener up?" in line


@pytest.mark.timeout(20)
def test_a_server_that_takes_no_connection_is_left_to_the_clients(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """A connect that times out (a host that drops packets; here, a listener whose accept
    queue is full) is an unreachable broker, for the clients to report as such: it was
    described as "accepted a connection but gave no TLS answer ... is it a TLS listener?"."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with socket.create_server(("127.0.0.1", 0), backlog=0) as full:
        port = full.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # fills the queue
            with pytest.raises(TimeoutError):  # what the probe meets
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            settings = Settings(
                broker=f"kafka://127.0.0.1:{port}", security_protocol="SSL", ssl_cafile=ca_file
            )
            check_tls(settings, timeout=1)  # no TlsProblem
