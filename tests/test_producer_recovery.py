"""The command-line tools' producer (`kafka_io.producer_for`: feed, simulate, the demo
feed) delivers again after its broker stood still past the delivery timeout.

kafka-python 3's default idempotent producer stopped for good there: after a 180 s freeze of
the embedded broker, `run --demo` kept saying "sent" and nothing reached the topic. The
timeouts are shortened here so that the freeze outlasts them in seconds; the broker is the
test's own, as freezing it would stall every other test's."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from streams.tools.kafka_io import producer_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_the_producer_delivers_again_after_the_broker_stood_still(tmp_path: Path) -> None:
    with EmbeddedBroker("127.0.0.1", free_port(), log=tmp_path / "tansu.log") as broker:
        assert broker.pid is not None
        settings = Settings(broker=broker.url, partitions=2)
        producer = producer_for(settings, request_timeout_ms=1500, delivery_timeout_ms=3000)
        try:
            acked: list[int] = []
            failed: list[int] = []

            def send(n: int) -> None:
                future = producer.send(settings.reports_topic, b"{}", key=str(n).encode())
                future.add_callback(lambda _meta: acked.append(n))
                future.add_errback(lambda _exc: failed.append(n))

            for n in range(10):
                send(n)
            producer.flush(timeout=10)
            assert sorted(acked) == list(range(10))

            os.kill(broker.pid, signal.SIGSTOP)
            try:
                for n in range(10, 30):  # expire while it stands still
                    send(n)
                    time.sleep(0.2)
                time.sleep(5)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            assert failed, "nothing expired: the freeze did not outlast the delivery timeout"

            deadline = time.monotonic() + 20
            n = 100
            while time.monotonic() < deadline and not any(a >= 100 for a in acked):
                send(n)
                n += 1
                time.sleep(0.2)
            assert any(a >= 100 for a in acked), (
                f"no send acknowledged in 20 s after the broker came back ({len(failed)} "
                "failed during the freeze)"
            )
        finally:
            producer.close(timeout=5)
