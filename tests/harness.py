"""Real components for integration tests: a Tansu broker and monitor worker processes.

Everything here is bounded in time and always stopped: a test never hangs on a
broker or a worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.kafka.broker import EmbeddedBroker, free_port

T = TypeVar("T")

#: Consumer-group timings that suit the embedded broker in tests (see DEVELOPERS.md).
FAST_GROUP_ENV = {
    "CEASEFIRE_REBALANCE_TIMEOUT": "3",
    "CEASEFIRE_SESSION_TIMEOUT": "6",
    "CEASEFIRE_HEARTBEAT_INTERVAL": "1",
}


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
    explain: Callable[[], str] | None = None,
) -> T:
    """`explain`: what the timeout's message adds (why the condition is not met)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except Exception as exc:  # a probe that fails is retried until the deadline
            last = exc
            result = None
        if result is not None and result is not False:
            return result
        time.sleep(interval)
    why = f"; {explain()}" if explain is not None else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last!r}){why}")


class Worker:
    """A `ceasefire-monitor run` process on its own port."""

    def __init__(
        self,
        broker: EmbeddedBroker | None,
        tmp: Path,
        *,
        name: str = "w1",
        partitions: int = 4,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"worker-{name}-{self.port}.log"
        self._readyz = "nothing yet"
        self.env = {
            **os.environ,
            **FAST_GROUP_ENV,
            # None: no broker configured, as a newcomer runs it (embedded, or joined)
            **({"CEASEFIRE_BROKER": broker.url} if broker is not None else {}),
            "CEASEFIRE_WEB_PORT": str(self.port),
            "CEASEFIRE_PARTITIONS": str(partitions),
            "CEASEFIRE_DATA_DIR": str(tmp / f"data-{name}"),
            "CEASEFIRE_BATCH_WITHIN": "0.02",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> Worker:
        """Start the process and return at once (`start` also waits until it is ready)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--loglevel", "info"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def start(self, *, ready_timeout: float = 60.0) -> Worker:
        self.launch()
        try:
            wait_for(
                self.healthy,
                timeout=ready_timeout,
                what=f"worker {self.url} ready",
                explain=self.not_ready,
            )
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"worker did not become ready; log:\n{self.log_tail()}") from None
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as exc:  # 503: what it waits for
            self._readyz = exc.read().decode(errors="replace")
            return False
        except (urllib.error.URLError, OSError):
            return False

    def not_ready(self) -> str:
        """The last /readyz answer that was not 200 (it says what the worker waits for)."""
        return f"/readyz said {self._readyz}"

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, and the exit code (None: it was not running; -9: killed after
        `timeout` because it did not stop)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-work and does not leave its consumer groups, so
        its partitions move only after the session timeout."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- HTTP -------------------------------------------------------------------------
    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        ctype_json = body[:1] in (b"{", b"[")
        return status, json.loads(body) if ctype_json else body.decode()

    def post(
        self, path: str, payload: Any, *, token: str | None = None, scheme: str = "Bearer"
    ) -> tuple[int, Any]:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"{scheme} {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def tallies(self, window: str = "24h", by: str = "zone", as_of: str | None = None) -> Any:
        from urllib.parse import urlencode

        params = {"window": window, "by": by, **({"as_of": as_of} if as_of else {})}
        status, body = self.get(f"/api/v1/tallies?{urlencode(params)}")
        if status != 200:
            return None
        return body["rows"]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        _, text = self.get("/metrics")
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name != name:
                    continue
                if labels and any(sample.labels.get(k) != v for k, v in labels.items()):
                    continue
                total += sample.value
        return total


def produce(bootstrap: str, topic: str, values: Iterable[bytes], key: bytes | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    n = 0
    for value in values:
        producer.send(topic, value, key=key)
        n += 1
    producer.flush(timeout=30)
    producer.close(timeout=10)
    return n


def at_end(consumer: KafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Whether every partition was read to its fetch high watermark."""
    for tp in tps:
        high = consumer.highwater(tp)
        if high is None or consumer.position(tp) < high:
            return False
    return True


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list[Any]:
    """Every record of `topic` from the beginning, waiting until at least `expect` are there."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = wait_for(lambda: consumer.partitions_for_topic(topic), timeout=timeout, what=topic)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = 0
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
                got += len(batch)
            # Then on to the end of every partition: `expect` counts what must be there at
            # least (a topic of versions holds more), and partitions are read in turn. The
            # end is the fetch high watermark (the embedded broker's ListOffsets is short).
            if len(records) >= expect and not got and at_end(consumer, tps):
                return records
        return records
    finally:
        consumer.close()
