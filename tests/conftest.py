from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.broker import EmbeddedBroker, free_port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh, real Kafka-protocol broker (Tansu) for one test."""
    b = EmbeddedBroker("127.0.0.1", free_port(), log=tmp_path / "tansu.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


# A real Alertmanager (Debian's prometheus-alertmanager), shared with the stream tests.
from tests.test_alerting_alertmanager import alertmanager  # noqa: E402, F401
