"""A Faust app whose consumer waits at most `fetch_max_wait_ms` on a fetch.

Faust 0.15 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. Apache Kafka
answers a long-poll as soon as data arrives, but the embedded broker (Tansu) holds the
fetch for the whole wait: measured here, a record then takes 0.4 s (p50) to 0.74 s (max)
to reach a consumer waiting 1500 ms, and 24 ms / 51 ms with 100 ms. The alert path
crosses two Faust topics, so the wait is made a setting (`CEASEFIRE_FETCH_MAX_WAIT_MS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

from streams.kafka import groups


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka passes this to its fetcher in start(), which has not run yet.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class StoppingApp(faust.App):  # type: ignore[misc]
    """A `faust.App` that runs `on_stopping` first when it stops: before Faust waits for its
    streams to drain, which with the broker gone it does for good."""

    on_stopping: list[Callable[[], Awaitable[None]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_stopping = []

    async def on_stop(self) -> None:
        for hook in self.on_stopping:
            await hook()
        await super().on_stop()


def app_class(fetch_max_wait_ms: int, leader_leaves: bool = True) -> type[StoppingApp]:
    """A `faust.App` subclass whose worker consumer uses the given fetch wait. Also makes
    the process's consumers leave their groups on a clean stop even from a group's first
    generation, which the embedded broker numbers 0, and, unless `leader_leaves`, not as a
    group's leader (streams/kafka/groups.py)."""
    groups.install(leader_leaves)

    class ConsumerThread(_ConsumerThread):
        pass

    ConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms

    class FastFetchConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(faust_aiokafka.Transport):
        Consumer = FastFetchConsumer

    class App(StoppingApp):
        def _new_transport(self) -> TransportT:
            # Only the consumer changes; the producer transport stays Faust's own.
            return Transport(self.conf.broker_consumer, self)

    return App
