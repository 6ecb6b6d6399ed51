"""The worker, composed in one place: the Faust app, the ingest stage, the identity,
zone and alert stages (each handed narrow `Ports`), the timers and the HTTP API.

    ceasefire.reports --ingest--> ceasefire.reports.accepted (by report identity)
      --identity stage (revisions; a process of its own)--> ceasefire.reports.by-zone
      --zone stage (incidents, tallies)--> ceasefire.incidents, ceasefire.incidents.by-zone
      --alert stage--> ceasefire.alerts
                   --> ceasefire.fatalities.theatre (one partition)
      --theatre stage (theatre-wide fatality peaks)--> ceasefire.alerts

Logic lives in the pure modules the stages import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust
from kafka.errors import KafkaError

from streams import metrics
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka.group_members import members_now
from streams.kafka.log_repeats import hold_back_repeats
from streams.kafka.producer import SharedProducer
from streams.kafka.topics import (
    BrokerUnavailable,
    changelog_specs,
    create_missing,
    ensure_topics,
    topic_specs,
    worker_topics,
)
from streams.pipeline import stop_deadline
from streams.pipeline.alert_input_memo import AlertInputMemo
from streams.pipeline.alerting_stage import AlertStage
from streams.pipeline.dead_letters import InternalDeadLetters, input_reader
from streams.pipeline.faust_app import faust_app
from streams.pipeline.identity_mode import ModeWatch, worker_client_id
from streams.pipeline.identity_process import IdentityProcess
from streams.pipeline.identity_stage import IdentityStage
from streams.pipeline.ingest import Ingest
from streams.pipeline.ingest_process import IngestProcess
from streams.pipeline.lag import LAG_INTERVAL, LagReport, behind, highwaters
from streams.pipeline.stage import Ports
from streams.pipeline.stage_input import TAIL_INTERVAL, StageInput
from streams.pipeline.stall_fence import TICK_SECONDS, StallFence
from streams.pipeline.theatre_stage import TheatreStage
from streams.pipeline.timers import every
from streams.pipeline.tuning import limit_malloc_arenas
from streams.pipeline.zero_series import start_worker_at_zero, start_zones_at_zero
from streams.pipeline.zone_stage import ZoneStage
from streams.web import zone_info
from streams.web.api import register_api
from streams.web.fanout import (
    Incomplete,
    check_covered,
    clear_window_gauges,
    partition_owners,
    refresh_window_gauges,
)

log = logging.getLogger(__name__)

WINDOW_GAUGE_INTERVAL = 15.0
#: As the worker becomes ready, the window gauges are refreshed once before it says so (a
#: restarted worker exported none, or zeros, until the timer's first ticks, 20-30 s: the
#: dashboards dipped to zero at every restart and failover): retried this often while the
#: partitions' owners are not all known yet, for at most FIRST_GAUGES_BOUND seconds, then
#: ready anyway (the timer goes on).
FIRST_GAUGES_RETRY = 0.5
FIRST_GAUGES_BOUND = 10.0
#: How often ingest learns how far behind the stages are (`Ingest.pace`).
PACE_INTERVAL = 0.5
#: How often the worker asks the broker for its metadata, and after how many unanswered
#: asks in a row it is not ready ("broker"): a worker whose broker is gone answered ready,
#: so neither a load balancer nor CeasefireWorkerNotReady could tell.
BROKER_PROBE_INTERVAL = 3.0
#: Seconds a probe waits for its answer. Faust's timer sleeps its whole interval after each
#: run, so a probe cycle is the interval plus this: a frozen broker (answering nothing) was
#: probed every 10 s with a 5 s wait, and noticed after 30 s; now every 5 s, after 15 s.
BROKER_PROBE_TIMEOUT = 2.0
BROKER_DOWN_AFTER = 3


class Monitor:
    """Everything one worker runs. `Monitor(settings).app` is a ready Faust app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        hold_back_repeats()  # a broker away: aiokafka's retries, 200 lines a second
        self.zones = ZoneCatalogue.load(settings.zones)
        zone_info.publish(self.zones)  # the zones' names and centroids, for the map panel
        self.gazetteer = Gazetteer.load(settings.gazetteer)
        self.classifier = Classifier(
            self.zones, self.gazetteer, time_of_day=settings.internal_format >= 4
        )
        self.ready = False
        #: broker probes unanswered in a row (`_probe_broker`)
        self.broker_misses = 0
        #: topics whose partitions are not the settings' (`_check_counts`), in words
        self.topic_mismatches: list[str] = []
        # Answering until probes say otherwise: a gauge at 0 before the first probe (or
        # while a long recovery holds the timers) would page for the broker and hold back
        # the not-ready alert that names the real cause.
        metrics.BROKER_ANSWERING.set(1)
        #: Once ready, the worker is alive for good (liveness); `ready` may drop again.
        self.started = False
        #: Readiness of ingest and of the identity stage when it runs in a process of its
        #: own (an identity stage in this process has its own `ready`).
        self._feeders = {"ingest": False, "identity": not settings.identity_process}
        #: Whether the window gauges were refreshed since the worker was last not ready,
        #: and the refresh that readiness waits for (`update_ready`).
        self._gauges_fresh = False
        self._first_gauges: asyncio.Task[None] | None = None

        limit_malloc_arenas()  # before the worker's threads start (tuning.py)
        s = settings
        self.app = faust_app(s, s.app_id, client_id=worker_client_id(s), web=True)
        #: whether the broker answered when the worker began to stop (None: not stopping)
        self.broker_gone_at_stop: bool | None = None
        self._stop_watch: asyncio.Task[None] | None = None
        self.app.on_stopping.append(self.begin_stop)
        self._lag = LagReport()
        self.ingest: Ingest | IngestProcess
        if s.ingest_process:
            self.ingest = IngestProcess(
                s,
                on_ready=partial(self._feeder_ready, "ingest", True),
                on_lost=partial(self._feeder_ready, "ingest", False),
            )
        else:
            self.ingest = Ingest(
                s,
                self.classifier,
                on_ready=partial(self._feeder_ready, "ingest", True),
                on_lost=partial(self._feeder_ready, "ingest", False),
            )
        #: The producer the stages share (ingest's own when ingest runs in this process).
        self.producer: SharedProducer = self.ingest.shared
        self.dead_letter_internal = InternalDeadLetters(s, self.producer)
        fence = StallFence(s.session_timeout)
        every(self.app, TICK_SECONDS, fence.tick)
        ports = Ports(
            settings=s,
            app=self.app,
            producer=self.producer.started,
            partitions_of=self.producer.partitions_of,
            dead_letter=self.dead_letter_internal,
            readiness_changed=self.update_ready,
            read_input=partial(input_reader, s),
            fence=fence,
        )
        self.identity: IdentityStage | IdentityProcess
        if s.identity_process:
            self.identity = IdentityProcess(
                s,
                on_ready=partial(self._feeder_ready, "identity", True),
                on_lost=partial(self._feeder_ready, "identity", False),
            )
        else:
            self.identity = IdentityStage(ports)
        # what the zone stage writes for the alert stage, read back without a parse
        alert_inputs = AlertInputMemo()
        self.zone = ZoneStage(ports, s.link_rule(), alert_inputs)
        self.alerting = AlertStage(ports, self.zones.ids, alert_inputs)
        # every series it may count exists at zero first (zero_series.py)
        start_worker_at_zero(self.alerting.rules, s.alertmanager_url is not None)
        start_zones_at_zero(self.zones.ids)
        self.theatre = TheatreStage(
            ports,
            self.alerting.rules,
            publish=self.alerting.publish,
            changed=self.alerting.refresh_gauge,
        )
        self.alerting.theatre_firing = self.theatre.firing
        self.alerting.theatre_recovering = self.theatre.recovering
        #: The stages this process runs (the identity stage may run in a process of its own).
        self.local: list[IdentityStage | ZoneStage | AlertStage | TheatreStage] = [
            *([self.identity] if isinstance(self.identity, IdentityStage) else []),
            self.zone,
            self.alerting,
            self.theatre,
        ]

        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        every(self.app, WINDOW_GAUGE_INTERVAL, self._refresh_window_gauges)
        every(self.app, LAG_INTERVAL, self._refresh_lag)
        every(self.app, TAIL_INTERVAL, self._check_tails)
        every(self.app, PACE_INTERVAL, self._pace_ingest)
        every(self.app, BROKER_PROBE_INTERVAL, self._probe_broker)
        every(self.app, s.session_timeout, ModeWatch(s, members_now).look)
        every(self.app, s.close_sweep_seconds, self.zone.sweep)
        # The ingest group joins as the app starts, alongside Faust's group (a dependency
        # starts before the app's consumer); its producer and loop start only once the
        # first recovery is done (an `app.service`), when Faust's topics are declared.
        self.app.add_dependency(_ingest_join_service(self)())
        self.app.service(_ingest_service(self))
        register_api(self)

    # -- lifecycle ------------------------------------------------------------------
    async def _on_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        for stage in self.local:
            stage.revoked()
        # partition 0 may go elsewhere: its next owner exports the window gauges, and the
        # dashboards' sums over workers would count this one's too until its next refresh
        # (readiness waits for a refresh once the partitions are back)
        clear_window_gauges()
        self.update_ready()
        # A step being written when its partitions go would land after the next owner's
        # recovery read the changelog (its input offset behind the owner's): Faust awaits
        # this before rejoining, so the step finishes first, within half a rebalance.
        bound = self.settings.rebalance_timeout / 2
        await asyncio.gather(*(stage.quiesce(bound) for stage in self.local))

    def _feeder_ready(self, name: str, ready: bool) -> None:
        self._feeders[name] = ready
        self.update_ready()

    def stalled(self) -> dict[str, set[int]]:
        """Partitions with input beyond what their stage could apply for a while."""
        out = {i.topic: set(i.stalled) for i in self._stage_inputs() if i.stalled}
        if isinstance(self.identity, IdentityProcess) and self.identity.stalled:
            out[self.settings.keyed_topic] = set(self.identity.stalled)
        return out

    def update_ready(self) -> None:
        """Ready: ingest runs, every stage holds the recovered state of the partitions it
        owns, and no partition is stalled, and then the window gauges were refreshed once
        (bounded: `_refresh_gauges_first`). Cleared while partitions move."""
        ready = (
            self.broker_gone_at_stop is None  # a stopping worker takes no more requests
            # an identity process is ready only with no stalled partition
            and all(self._feeders.values())
            and all(stage.ready.is_set() for stage in self.local)
            and not any(i.stalled for i in self._stage_inputs())
            and self.broker_misses < BROKER_DOWN_AFTER
            and not self.topic_mismatches
        )
        if not ready:
            self._gauges_fresh = False
        elif not self._gauges_fresh and self._start_first_gauges():
            ready = False  # once they are refreshed (it calls this again)
        self.ready = ready
        if self.ready:
            self.started = True
        metrics.WORKER_READY.set(1 if self.ready else 0)
        metrics.PARTITIONS_OWNED.set(len(self.zone.owned))

    def waiting_for(self) -> list[str]:
        """What readiness waits for, in words: `ingest` (in a process of its own or not)
        and `identity` (the identity stage's process) when not ready, the stages of this
        process whose state is not recovered (by input topic), and stalled partitions."""
        out = ["nothing: the worker is stopping"] if self.broker_gone_at_stop is not None else []
        out += [name for name, ready in self._feeders.items() if not ready]
        out += [f"{stage.input.topic} state" for stage in self.local if not stage.ready.is_set()]
        if self._first_gauges is not None and not self._first_gauges.done():
            out.append("window gauges (refreshed once before ready)")
        out += [
            f"{topic} partitions {sorted(parts)} stalled" for topic, parts in self.stalled().items()
        ]
        if self.broker_misses >= BROKER_DOWN_AFTER:
            out.append(f"broker (no answer for {self.broker_misses} probes)")
        return out + self.topic_mismatches

    # -- timers ------------------------------------------------------------------------
    def _stage_inputs(self) -> list[StageInput]:
        return [stage.input for stage in self.local]

    async def _refresh_lag(self) -> None:
        # the identity process's lag comes with its metrics
        self._lag.publish(behind(self.app, self._stage_inputs()))

    async def begin_stop(self) -> None:
        """The worker begins to stop. With its broker gone, nothing is left to commit or to
        leave, and Faust would wait for good for its streams to drain (their steps retry
        their sends): the process exits within seconds (`stop_deadline`), its children
        given a short stop, or killed."""
        quick = stop_deadline.CHILD_STOP_WITHOUT_BROKER
        gone = await broker_gone(self.broker_misses, lambda: self.producer.reachable(timeout=quick))
        self.broker_gone_at_stop = gone
        self.update_ready()  # not ready from now on: /readyz said "ready" to the end
        stop_deadline.at_forced_exit(self._kill_children)
        if gone:
            self._exit_soon()
        else:
            stop_deadline.exit_after(
                stop_deadline.WITH_BROKER,
                f"the stop did not end in {stop_deadline.WITH_BROKER:.0f} s; every step's "
                "state is in the changelogs",
            )
            # the broker may go while the worker stops (Ctrl-C reached the embedded one)
            self._stop_watch = asyncio.create_task(self._watch_broker_while_stopping())

    def _exit_soon(self) -> None:
        stop_deadline.exit_after(
            stop_deadline.CHILD_STOP_WITHOUT_BROKER + stop_deadline.GRACE_WITHOUT_BROKER,
            "the broker does not answer, so there is no group to leave and no offset "
            "to commit; every step's state is in the changelogs",
        )

    async def _watch_broker_while_stopping(self) -> None:
        misses = 0
        while misses < 2:
            await asyncio.sleep(1.0)
            answered = await self.producer.reachable(timeout=BROKER_PROBE_TIMEOUT)
            misses = 0 if answered else misses + 1
        log.warning("the broker stopped answering while the worker stops")
        self.broker_gone_at_stop = True  # children not yet stopped get the short stop
        self._exit_soon()

    def _kill_children(self) -> None:
        for child in (self.ingest, self.identity):
            if isinstance(child, IngestProcess | IdentityProcess):
                child.kill()

    async def _probe_broker(self) -> None:
        """Ask the broker for its metadata; readiness follows whether it answers. Topics it
        no longer has are created again (`_recreate_missing`)."""
        topics = await self.producer.topics(timeout=BROKER_PROBE_TIMEOUT)
        answered = topics is not None or self.producer.producer is None
        if topics is not None and self.broker_gone_at_stop is None:
            await self._recreate_missing(set(topics))
            self._check_counts(topics)
        was_down = self.broker_misses >= BROKER_DOWN_AFTER
        self.broker_misses = 0 if answered else self.broker_misses + 1
        down = self.broker_misses >= BROKER_DOWN_AFTER
        metrics.BROKER_ANSWERING.set(0 if down else 1)
        if down != was_down:
            if down:
                log.error("no answer from the broker for %d probes: not ready", self.broker_misses)
            else:
                log.warning("the broker answers again")
            self.update_ready()

    async def _recreate_missing(self, existing: set[str]) -> None:
        """The broker lost topics (an embedded broker restarted empty, or they were
        deleted): create them again with their partitions and configs. No client of the
        worker has the broker create them (`no_auto_create`): it would with its default
        partitions, and the worker's next start refused the theatre's changelog."""
        s = self.settings
        if {spec.name for spec in worker_topics(s)} <= existing:
            return
        try:
            created = await asyncio.to_thread(create_missing, s, existing)
        except (BrokerUnavailable, KafkaError) as exc:
            log.error("could not create the topics the broker lost, retrying: %s", exc)
            return
        if created:
            log.warning(
                "the broker had lost %d of the monitor's topics (an embedded broker restarted "
                "empty, or they were deleted); created them again: %s",
                len(created),
                ", ".join(sorted(created)),
            )

    def _check_counts(self, counts: dict[str, int]) -> None:
        """Not ready while a topic has other partitions than the settings give it (made
        meanwhile with another count: the input topic with 4 of 2 partitions left half of
        the reports unread, the worker ready).
        The topics `run` checks as it starts; not Faust's leader topics, whose partitions
        nothing here reads."""
        s = self.settings
        wrong = [
            f"topic {spec.name} has {counts[spec.name]} partitions, the settings give "
            f"{spec.partitions}"
            for spec in topic_specs(s) + changelog_specs(s)
            if counts.get(spec.name, spec.partitions) != spec.partitions
        ]
        if wrong == self.topic_mismatches:
            return
        if wrong:
            log.error(
                "not ready: %s (created so while this worker ran: by `feed`, `simulate` or "
                "`topics` run with another CEASEFIRE_PARTITIONS after the broker lost them, by "
                "hand, or by the broker for a client that has it create topics: "
                'docs/operations.md, "Topics")',
                "; ".join(wrong),
            )
        else:
            log.warning("the topics have the partitions the settings give them again")
        self.topic_mismatches = wrong
        self.update_ready()

    async def _pace_ingest(self) -> None:
        """Ingest holds while the stages have too many packs to apply: this process's and
        the identity process's."""
        packs = sum(behind(self.app, self._stage_inputs()).values())
        ready = all(stage.ready.is_set() for stage in self.local)
        if isinstance(self.identity, IdentityProcess):
            packs += sum(self.identity.behind.values())
            ready = ready and self.identity.ready
        self.ingest.pace(ingest_pace(packs, ready=ready, lead=self.settings.ingest_lead_packs))

    async def _check_tails(self) -> None:
        for stage in self.local:
            if stage.ready.is_set():
                await stage.input.check_tail(highwaters(self.app, stage.input.topic))
        self.update_ready()

    async def _refresh_window_gauges(self) -> None:
        await refresh_window_gauges(self)

    def _start_first_gauges(self) -> bool:
        """Start the refresh readiness waits for, unless one runs; False: none can run (no
        event loop), readiness does not wait."""
        if self._first_gauges is None or self._first_gauges.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._gauges_fresh = True
                return False
            self._first_gauges = loop.create_task(self._refresh_gauges_first())
        return True

    async def _refresh_gauges_first(self) -> None:
        try:
            await first_window_gauges(
                self._refresh_window_gauges,
                lambda: check_covered(self, partition_owners(self)),
                retry=FIRST_GAUGES_RETRY,
                bound=FIRST_GAUGES_BOUND,
            )
        finally:
            self._gauges_fresh = True
            self.update_ready()


async def first_window_gauges(
    refresh: Callable[[], Awaitable[None]],
    covered: Callable[[], None],
    *,
    retry: float,
    bound: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Refresh the window gauges once the partitions' owners are all known (`covered`
    raises `Incomplete` until then: the refresh would keep the gauges as they are, none
    on a restarted worker), asking again every `retry` s; within `bound` s in all.
    Whether it refreshed them."""

    async def attempt() -> None:
        while True:
            try:
                covered()
            except Incomplete:
                await sleep(retry)
                continue
            await refresh()
            return

    try:
        await asyncio.wait_for(attempt(), bound)
    except TimeoutError:
        log.warning("window gauges not refreshed within %.0f s of becoming ready", bound)
        return False
    except Exception:
        log.exception("window gauges not refreshed as the worker became ready")
        return False
    return True


async def broker_gone(misses: int, probe: Callable[[], Awaitable[bool]]) -> bool:
    """Whether a stopping worker's broker is gone. Known gone after BROKER_DOWN_AFTER
    probes missed in a row; a miss or two is a blip, so it is asked once more (a single
    missed probe cut the stop to 8 s and its children's to 3 s, killed before they left
    their groups)."""
    return misses >= BROKER_DOWN_AFTER or not await probe()


def ingest_pace(packs: int, *, ready: bool, lead: int) -> int:
    """What ingest is told the stages have to apply: `packs`, or, while a stage is not
    ready (recovering, its partitions moving, the identity process restarting), more than
    the lead, so that it holds. A stage not ready reports nothing behind (it owns no
    progress then), and ingest read at full speed into the backlog the pace keeps down."""
    return packs if ready else max(packs, lead + 1)


def _ingest_join_service(monitor: Monitor) -> type[faust.Service]:
    class IngestJoin(faust.Service):  # type: ignore[misc]
        """Creates the topics and starts the worker's child processes as the worker starts:
        they join their groups while Faust's group joins."""

        async def on_start(self) -> None:
            created = await asyncio.to_thread(ensure_topics, monitor.settings)
            if created:
                log.info("created topics: %s", ", ".join(created))
            await monitor.ingest.join()
            if isinstance(monitor.identity, IdentityProcess):
                await monitor.identity.join()

        async def on_stop(self) -> None:  # if the worker stops before `IngestService` started
            await _stop_children(monitor)

    return IngestJoin


def _ingest_service(monitor: Monitor) -> type[faust.Service]:
    class IngestService(faust.Service):  # type: ignore[misc]
        """Runs the ingest stage for the lifetime of the worker, from the first recovery."""

        async def on_start(self) -> None:
            await monitor.ingest.start()

        async def on_stop(self) -> None:
            await _stop_children(monitor)

    return IngestService


async def _stop_children(monitor: Monitor) -> None:
    """Stop ingest and the identity process, together (each is idempotent); briefly when
    the broker was gone as the worker began to stop (`Monitor.begin_stop`)."""
    if monitor.broker_gone_at_stop is None:  # stopped before the app ran its hooks
        await monitor.begin_stop()
    quick = stop_deadline.CHILD_STOP_WITHOUT_BROKER
    timeout = quick if monitor.broker_gone_at_stop else None
    stops = [monitor.ingest.stop(timeout)]
    if isinstance(monitor.identity, IdentityProcess):
        stops.append(monitor.identity.stop(timeout))
    await asyncio.gather(*stops)
