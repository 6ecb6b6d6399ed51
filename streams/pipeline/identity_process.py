"""The identity stage (`identity_stage.py`) in a process of its own (`child_process.py`),
on another core than the zone and alert stages.

Under a backlog the worker's event loop is the bottleneck, and the identity stage was a
fifth of it. The child runs the stage in a Faust app of its own: the consumer group
`<app id>-identity` (so that its partitions are shared among the identity processes of
all workers, apart from the worker's group), the changelog named as in the worker
(`<app id>-identity-state-changelog`: the same state wherever the stage runs), its own
producer. Its status carries readiness (recovered, no stalled partition), what its
stage has to apply (the worker's ingest paces on it with its own stages'), its stalled
partitions, and its metrics (relayed into the worker's `/metrics`).
`CEASEFIRE_IDENTITY_PROCESS=false` runs the stage inside the worker instead.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import faust

from streams import metrics
from streams.config import Settings
from streams.kafka import groups
from streams.kafka.producer import SharedProducer
from streams.kafka.topics import ensure_topics
from streams.pipeline.child_process import STOP, ChildProcess, Order, Reporter, Status, child_main
from streams.pipeline.dead_letters import InternalDeadLetters, input_reader
from streams.pipeline.faust_app import faust_app
from streams.pipeline.identity_mode import identity_group
from streams.pipeline.identity_stage import IdentityStage
from streams.pipeline.lag import LAG_INTERVAL, LagReport, behind, highwaters
from streams.pipeline.stage import Ports
from streams.pipeline.stage_input import TAIL_INTERVAL
from streams.pipeline.stall_fence import TICK_SECONDS, StallFence
from streams.pipeline.timers import every
from streams.pipeline.tuning import limit_malloc_arenas, tune_for_throughput

log = logging.getLogger(__name__)

#: What the identity stage's metrics are: relayed to the worker's.
RELAYED = (
    metrics.REPORTS,
    metrics.REPORT_OUTCOMES,
    metrics.DUPLICATES,
    metrics.LAST_REPORT_TIMESTAMP,
    metrics.PROCESSING_SECONDS,
    metrics.EVENT_LAG_SECONDS,
    metrics.REJECTED,
    metrics.STATE_RECOVERY_SECONDS,
    metrics.STATE_RECOVERED_ENTRIES,
    metrics.SKIPPED_RECOVERED,
    metrics.INPUT_MISSING,
    metrics.PARTITION_STALLED,
    metrics.CONSUMER_LAG,
)


class IdentityProcess(ChildProcess):
    """The worker's side: readiness, and what the stage has to apply and is stalled on."""

    name = "identity"
    entry = __name__
    relayed = RELAYED

    #: packs the stage has to apply, per (topic, partition) the child owns
    behind: dict[tuple[str, int], int]
    #: the stage's stalled input partitions
    stalled: frozenset[int]

    def take(self, status: Status) -> None:
        self.behind = status.behind
        self.stalled = status.stalled

    def lost(self) -> None:
        self.behind = {}
        self.stalled = frozenset()


# -- the child ------------------------------------------------------------------------------
def main(argv: list[str]) -> None:
    """The child's entry."""
    child_main(argv, "identity", RELAYED, _child)


async def _child(settings: Settings, orders: asyncio.Queue[Order], reporter: Reporter) -> None:
    limit_malloc_arenas()
    groups.install(settings.leader_leaves)
    # Its input topic must exist before Faust subscribes (the worker creates the topics
    # too; whichever comes first, the other finds them).
    await asyncio.to_thread(ensure_topics, settings)
    group = identity_group(settings)
    app = faust_app(settings, group, client_id=group, web=False)
    producer = SharedProducer(settings, group)
    fence = StallFence(settings.session_timeout)
    every(app, TICK_SECONDS, fence.tick)
    ports = Ports(
        settings=settings,
        app=app,
        producer=producer.started,
        partitions_of=producer.partitions_of,
        dead_letter=InternalDeadLetters(settings, producer),
        readiness_changed=lambda: None,  # the reporter reads readiness every tenth second
        read_input=partial(input_reader, settings),
        fence=fence,
    )
    stage = IdentityStage(ports, changelog_app_id=settings.app_id)
    lag = LagReport()

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        stage.revoked()
        await stage.quiesce(settings.rebalance_timeout / 2)  # as the worker's (`app.py`)

    async def check_tail() -> None:
        if stage.ready.is_set():
            await stage.input.check_tail(highwaters(app, stage.topic_name))

    async def refresh_lag() -> None:
        lag.publish(behind(app, [stage.input]))

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    every(app, TAIL_INTERVAL, check_tail)
    every(app, LAG_INTERVAL, refresh_lag)
    app.service(_producer_service(producer))
    reporter.state = lambda: {
        "ready": stage.ready.is_set() and not stage.input.stalled,
        "behind": behind(app, [stage.input]) if stage.ready.is_set() else {},
        "stalled": frozenset(stage.input.stalled),
    }
    await app.start()
    tune_for_throughput()  # after Faust set up its logging
    try:
        await serve(app, orders)
    finally:
        await app.stop()
        await producer.stop()


class AppCrashed(RuntimeError):
    """The child's Faust app crashed: the child ends (with this traceback in the log)."""


#: Seconds between two looks at whether the child's Faust app crashed.
WATCH_EVERY = 1.0


async def serve(app: Any, orders: asyncio.Queue[Order]) -> None:
    """Until the worker says STOP (START and PACE are for ingest). If the Faust app crashed
    (an agent's error: no `faust.Worker` runs it here to stop the process), raise
    AppCrashed: the child ends, and the worker starts another."""
    crashed = asyncio.Event()

    async def watch() -> None:
        while not app.crashed:
            await asyncio.sleep(WATCH_EVERY)
        crashed.set()

    watching = asyncio.create_task(watch())
    try:
        while True:
            order = asyncio.create_task(orders.get())
            ended = asyncio.create_task(crashed.wait())
            await asyncio.wait({order, ended}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if crashed.is_set():
                order.cancel()
                raise AppCrashed(f"the identity stage's app crashed: {app.crash_reason!r}")
            if order.result() == STOP:
                return
    finally:
        watching.cancel()


def _producer_service(producer: SharedProducer) -> type[faust.Service]:
    class ProducerService(faust.Service):  # type: ignore[misc]
        """Starts the producer once Faust declared its topics (an app service starts after
        the first recovery; `producer.py` says why not sooner)."""

        async def on_start(self) -> None:
            await producer.start()

    return ProducerService
