"""TLS for integration tests: a CA made on the spot (trustme) and a real TLS terminator
(Debian's stunnel4) in front of the embedded broker.

Tansu 0.6.0 takes `--cert` but still serves plaintext, so the broker listens in the
clear on a port no client is given, and stunnel is the only way in: the broker
advertises stunnel's port, so every reconnection a client makes after reading the
cluster metadata goes through TLS too.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trustme

from streams.kafka.broker import EmbeddedBroker, free_port, port_open


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


@dataclass(frozen=True)
class Pki:
    """Files of a test PKI. `ca` signed the server and client certificates;
    `other_ca` is an unrelated CA; `wrong_name_*` is a server certificate that `ca`
    signed for a host name no test connects to."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    wrong_name_cert: Path
    wrong_name_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, where: Path) -> Pki:
        where.mkdir(parents=True, exist_ok=True)
        ca, other = trustme.CA(), trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        wrong = ca.issue_cert("kafka.invalid")
        client = ca.issue_cert("ceasefire-monitor@example.org")
        pki = cls(
            ca=where / "ca.pem",
            other_ca=where / "other-ca.pem",
            server_cert=where / "server.pem",
            server_key=where / "server.key",
            wrong_name_cert=where / "wrong-name.pem",
            wrong_name_key=where / "wrong-name.key",
            client_cert=where / "client.pem",
            client_key=where / "client.key",
        )
        ca.cert_pem.write_to_path(str(pki.ca))
        other.cert_pem.write_to_path(str(pki.other_ca))
        for leaf, cert, key in (
            (server, pki.server_cert, pki.server_key),
            (wrong, pki.wrong_name_cert, pki.wrong_name_key),
            (client, pki.client_cert, pki.client_key),
        ):
            for i, pem in enumerate(leaf.cert_chain_pems):
                pem.write_to_path(str(cert), append=i > 0)
            leaf.private_key_pem.write_to_path(str(key))
        return pki


class TlsFront:
    """stunnel accepting TLS on 127.0.0.1:`port` and forwarding to `backend_port`.

    With `client_ca`, a client must present a certificate that CA signed (mutual TLS)."""

    def __init__(
        self,
        backend_port: int,
        cert: Path,
        key: Path,
        where: Path,
        *,
        client_ca: Path | None = None,
        name: str = "kafka",
    ) -> None:
        self.port = free_port()
        self.backend_port = backend_port
        self.log = where / f"stunnel-{name}.log"
        self.conf = where / f"stunnel-{name}.conf"
        lines = [
            "foreground = yes",
            "pid =",
            f"output = {self.log}",
            "debug = info",
            "[kafka]",
            f"accept = 127.0.0.1:{self.port}",
            f"connect = 127.0.0.1:{backend_port}",
            f"cert = {cert}",
            f"key = {key}",
        ]
        if client_ca is not None:
            lines += [f"CAfile = {client_ca}", "requireCert = yes", "verifyChain = yes"]
        self.conf.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> TlsFront:
        binary = stunnel_binary()
        if binary is None:
            raise RuntimeError("stunnel is not installed (apt-get install stunnel4)")
        self._proc = subprocess.Popen(
            [binary, str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"stunnel exited at start:\n{self.log_text()}")
            if port_open("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stunnel did not listen in {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def accepted(self) -> int:
        """TLS connections stunnel has accepted (and forwarded) so far."""
        return self.log_text().count("accepted connection from")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> TlsFront:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class TlsBroker:
    """An embedded broker reachable only through a stunnel TLS front (mutual TLS with
    the PKI's client certificate), and a second front whose certificate names another
    host. `url` is the only address clients are given."""

    def __init__(self, pki: Pki, where: Path) -> None:
        self.pki = pki
        self.backend_port = free_port()
        self.front = TlsFront(
            self.backend_port, pki.server_cert, pki.server_key, where, client_ca=pki.ca
        )
        self.wrong_name = TlsFront(
            self.backend_port,
            pki.wrong_name_cert,
            pki.wrong_name_key,
            where,
            client_ca=pki.ca,
            name="wrong-name",
        )
        self.broker = EmbeddedBroker(
            "127.0.0.1",
            self.backend_port,
            log=where / "tansu.log",
            advertised_port=self.front.port,
        )

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.front.port}"

    def start(self) -> TlsBroker:
        self.broker.start()
        try:
            self.front.start()
            self.wrong_name.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.wrong_name.stop()
        self.front.stop()
        self.broker.stop()
