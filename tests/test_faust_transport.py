"""The short fetch wait reaches the consumer Faust creates: a guard on the aiokafka
attribute and the Faust consumer factory that streams/kafka/faust_transport.py overrides."""

from __future__ import annotations

import asyncio

import aiokafka
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.kafka.faust_transport import app_class

pytestmark = pytest.mark.timeout(30)


def test_aiokafka_keeps_the_fetch_wait_where_we_set_it() -> None:
    async def make() -> int:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=7)
        wait: int = consumer._fetch_max_wait_ms
        return wait

    assert asyncio.run(make()) == 7


def test_the_worker_consumer_gets_the_configured_wait() -> None:
    async def make() -> int:
        app = app_class(42)("fetch-wait-test", broker="kafka://127.0.0.1:1", store="memory://")
        faust_consumer = app.consumer
        assert isinstance(faust_consumer, faust_aiokafka.Consumer)
        thread = faust_consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)  # type: ignore[arg-type]
        wait: int = consumer._fetch_max_wait_ms
        return wait

    assert asyncio.run(make()) == 42
