"""The ingest stage in a process of its own (`child_process.py`), on another core than the
stateful stages.

A worker is one Python process, so one core: validating, classifying and packing every
report (`ingest.py`) took a fifth of it under a backlog, beside the stages. Here a child
process runs `Ingest` (its consumer in the ingest group, its own producer); the worker
keeps the producer its stages share. Besides the orders every child takes, (PACE, n)
says the worker's stages have n packs to apply (`Ingest.pace`). Its status carries its
readiness, its first record's time, and its rejections and input lag (relayed into the
worker's `/metrics`). Its offsets are committed only after its packs were acknowledged,
so a restart loses nothing.
`CEASEFIRE_INGEST_PROCESS=false` runs ingest inside the worker instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from streams import metrics
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka import groups
from streams.kafka.producer import SharedProducer
from streams.pipeline.child_process import (
    PACE,
    START,
    STOP,
    ChildProcess,
    Order,
    Reporter,
    Status,
    child_main,
)
from streams.pipeline.ingest import Ingest
from streams.pipeline.tuning import limit_malloc_arenas, tune_for_throughput

#: What the child's metrics relay to the worker's.
RELAYED = (metrics.REJECTED, metrics.CONSUMER_LAG, metrics.INPUT_MISSING)


class IngestProcess(ChildProcess):
    """Offers what the worker asks of `Ingest`: `join`, `start`, `stop`, `pace`, `shared`
    (the producer its stages share), and `first_record_at`."""

    name = "ingest"
    entry = __name__
    relayed = RELAYED

    def __init__(
        self,
        settings: Settings,
        *,
        on_ready: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(settings, on_ready=on_ready, on_lost=on_lost)
        self.shared = SharedProducer(settings, f"{settings.app_id}-stages")
        #: monotonic time (one clock for all processes of the machine) of the first record
        self.first_record_at: float | None = None

    async def start(self) -> None:
        """Faust's topics are declared: start the stages' producer and the child's loop."""
        tune_for_throughput()  # the worker's logging is set up by now
        await self.join()
        await self.shared.start()
        await super().start()

    def pace(self, behind: int) -> None:
        """The worker's stages have `behind` packs to apply: the child holds or goes on."""
        self.send((PACE, behind))

    async def stop(self, timeout: float | None = None) -> None:
        # Idempotent: the worker calls it from both ingest services.
        await super().stop(timeout)
        await self.shared.stop()

    def take(self, status: Status) -> None:
        if status.first_record_at is not None and self.first_record_at is None:
            self.first_record_at = status.first_record_at


# -- the child ------------------------------------------------------------------------------
def main(argv: list[str]) -> None:
    """The child's entry."""
    child_main(argv, "ingest", RELAYED, _child)


async def _child(settings: Settings, orders: asyncio.Queue[Order], reporter: Reporter) -> None:
    limit_malloc_arenas()
    groups.install(settings.leader_leaves)
    classifier = Classifier(
        ZoneCatalogue.load(settings.zones),
        Gazetteer.load(settings.gazetteer),
        time_of_day=settings.internal_format >= 4,
    )
    ready = False

    def set_ready(value: bool) -> None:
        nonlocal ready
        ready = value

    ingest = Ingest(
        settings,
        classifier,
        on_ready=partial(set_ready, True),
        on_lost=partial(set_ready, False),
    )
    reporter.state = lambda: {"ready": ready, "first_record_at": ingest.first_record_at}
    try:
        await ingest.join()
        while (order := await orders.get()) != STOP:
            if order == START and ingest.producer is None:
                await ingest.start()
            elif isinstance(order, tuple) and order[0] == PACE:
                ingest.pace(order[1])
    finally:
        await ingest.stop()
