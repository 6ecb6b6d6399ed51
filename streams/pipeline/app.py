"""The worker, composed in one place: the Faust app, the ingest stage, the identity,
zone and alert stages (each handed narrow `Ports`), the timers and the HTTP API.

    ceasefire.reports --ingest--> ceasefire.reports.accepted (by report identity)
      --identity stage (revisions)--> ceasefire.reports.by-zone (by zone)
      --zone stage (incidents, tallies)--> ceasefire.incidents, ceasefire.incidents.by-zone
      --alert stage--> ceasefire.alerts
                   --> ceasefire.fatalities.theatre (one partition)
      --theatre stage (theatre-wide fatality peaks)--> ceasefire.alerts

Logic lives in the pure modules the stages import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust

from schemas.codes import RejectReason
from schemas.validation import Rejection
from streams import metrics
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka.faust_transport import app_class
from streams.kafka.producer import SharedProducer
from streams.kafka.topics import ensure_topics
from streams.pipeline.dead_letters import dead_letter
from streams.pipeline.identity_stage import IdentityStage
from streams.pipeline.ingest import Ingest
from streams.pipeline.ingest_process import IngestProcess
from streams.pipeline.lag import LagReport
from streams.pipeline.stage import Ports
from streams.pipeline.stage_input import StageInput
from streams.pipeline.theatre_stage import TheatreStage
from streams.pipeline.tuning import limit_malloc_arenas
from streams.pipeline.zone_stage import ZoneStage
from streams.store import faust_store
from streams.web import zone_info

log = logging.getLogger(__name__)

WINDOW_GAUGE_INTERVAL = 15.0
LAG_INTERVAL = 5.0
#: How often the stages look for input they were not handed (see progress.py).
TAIL_INTERVAL = 3.0
#: How often ingest learns how far behind the stages are (`Ingest.pace`).
PACE_INTERVAL = 0.5


def faust_credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


class Monitor:
    """Everything one worker runs. `Monitor(settings).app` is a ready Faust app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.zones = ZoneCatalogue.load(settings.zones)
        zone_info.publish(self.zones)  # the zones' names and centroids, for the map panel
        self.gazetteer = Gazetteer.load(settings.gazetteer)
        self.classifier = Classifier(self.zones, self.gazetteer)
        self.ready = False
        #: Once ready, the worker is alive for good (liveness); `ready` may drop again.
        self.started = False
        self._ingest_ready = False

        limit_malloc_arenas()  # before the worker's threads start (tuning.py)
        s = settings
        s.data_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its app directory here
        self.app = app_class(s.fetch_max_wait_ms)(
            s.app_id,
            broker=s.broker_url(),
            broker_credentials=faust_credentials(s),
            store=faust_store.register(),  # our stages keep their own state
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=True,
            table_standby_replicas=0,
            web_enabled=True,
            web_port=s.web_port,
            web_bind=s.web_host,
            web_host=s.web_host,
            canonical_url=s.web_url(),
            broker_rebalance_timeout=s.rebalance_timeout,
            broker_session_timeout=s.session_timeout,
            broker_heartbeat_interval=s.heartbeat_interval,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # We recover state ourselves to the exact end (streams/kafka/offsets.py); Faust's
            # own check compares with the broker's ListOffsets answer, which Tansu
            # under-reports, and killed workers that joined later (issue 9).
            recovery_consistency_check=False,
            # An event of our stages' topics is a pack of hundreds of reports: Faust's
            # default buffer (4,096 events per stream) held a whole backlog in memory.
            stream_buffer_maxsize=s.stream_buffer_packs,
            datadir=str(s.data_dir),
            web_in_thread=False,
        )
        self._lag = LagReport()
        self.ingest: Ingest | IngestProcess
        if s.ingest_process:
            self.ingest = IngestProcess(
                s, on_ready=self._on_ingest_ready, on_lost=self._on_ingest_lost
            )
        else:
            self.ingest = Ingest(s, self.classifier, on_ready=self._on_ingest_ready)
        #: The producer the stages share (ingest's own when ingest runs in this process).
        self.producer: SharedProducer = self.ingest.shared
        ports = Ports(
            settings=s,
            app=self.app,
            producer=self.producer.started,
            partitions_of=self.producer.partitions_of,
            dead_letter=self.dead_letter_internal,
            readiness_changed=self.update_ready,
        )
        self.identity = IdentityStage(ports)
        self.zone = ZoneStage(ports, s.link_rule())
        from streams.pipeline.alerting_stage import AlertStage

        self.alerting = AlertStage(self)
        self.theatre = TheatreStage(
            ports,
            self.alerting.rules,
            publish=self.alerting.publish,
            changed=self.alerting.refresh_gauge,
        )
        self.alerting.theatre_firing = self.theatre.firing

        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.timer(WINDOW_GAUGE_INTERVAL)(self._refresh_window_gauges)
        self.app.timer(LAG_INTERVAL)(self._refresh_lag)
        self.app.timer(TAIL_INTERVAL)(self._check_tails)
        self.app.timer(PACE_INTERVAL)(self._pace_ingest)
        self.app.timer(s.close_sweep_seconds)(self.zone.sweep)
        # The ingest group joins as the app starts, alongside Faust's group (a dependency
        # starts before the app's consumer); its producer and loop start only once the
        # first recovery is done (an `app.service`), when Faust's topics are declared.
        self.app.add_dependency(_ingest_join_service(self)())
        self.app.service(_ingest_service(self))

        from streams.web.api import register_api

        register_api(self)

    # -- lifecycle ------------------------------------------------------------------
    async def _on_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        self.identity.revoked()
        self.zone.revoked()
        self.alerting.revoked()
        self.theatre.revoked()
        self.update_ready()

    def _on_ingest_ready(self) -> None:
        self._ingest_ready = True
        self.update_ready()

    def _on_ingest_lost(self) -> None:
        self._ingest_ready = False
        self.update_ready()

    def stalled(self) -> dict[str, set[int]]:
        """Partitions with input beyond what their stage could apply for a while."""
        return {i.topic: set(i.stalled) for i in self._stage_inputs() if i.stalled}

    def update_ready(self) -> None:
        """Ready: ingest runs, every stage holds the recovered state of the partitions it
        owns, and no partition is stalled. Cleared while partitions move."""
        self.ready = (
            self._ingest_ready
            and self.identity.ready.is_set()
            and self.zone.ready.is_set()
            and self.alerting.ready.is_set()
            and self.theatre.ready.is_set()
            and not any(i.stalled for i in self._stage_inputs())
        )
        if self.ready:
            self.started = True
        metrics.WORKER_READY.set(1 if self.ready else 0)
        metrics.PARTITIONS_OWNED.set(len(self.zone.owned))

    async def dead_letter_internal(
        self,
        topic: str,
        records: Sequence[tuple[int, int, bytes, str]],
        reason: str = RejectReason.INVALID_VALUE.value,
    ) -> None:
        """Records of an internal topic (partition, offset, value, error) that a stage
        cannot take: to the dead-letter topic with `reason`, never silently dropped.
        `invalid_value`: not what this monitor writes there."""
        producer = await self.producer.started()
        code = RejectReason(reason)
        sends = []
        for partition, offset, raw, error in records:
            log.error("dead-lettering a record at %s[%d]@%d: %s", topic, partition, offset, error)
            metrics.REJECTED.labels(code.value).inc()
            message = (
                f"not a record this monitor writes to its internal topic {topic}: {error}"
                if code is RejectReason.INVALID_VALUE
                else error
            )
            rejection = Rejection(code, message)
            value = dead_letter(
                raw,
                rejection,
                topic=topic,
                partition=partition,
                offset=offset,
                key=None,
                received_at=datetime.now(UTC),
            )
            sends.append(await producer.send(self.settings.dlq_topic, value))
        await asyncio.gather(*sends)

    # -- timers ------------------------------------------------------------------------
    def _stage_inputs(self) -> list[StageInput]:
        return [self.identity.input, self.zone.input, self.alerting.input, self.theatre.input]

    def _highwaters(self, topic: str) -> dict[int, int]:
        """Fetch high watermarks of the partitions of `topic` this worker owns."""
        out: dict[int, int] = {}
        for tp in self.app.assignor.assigned_actives():
            if tp.topic != topic:
                continue
            try:
                hw = self.app.consumer.highwater(tp)
            except Exception:  # not (yet) assigned in the consumer: no figure this time
                continue
            if hw is not None:
                out[tp.partition] = hw
        return out

    def _behind(self) -> dict[tuple[str, int], int]:
        """Lag of the stateful stages' inputs: fetch high watermark minus what the stage
        has applied, whatever the consumer's position says."""
        lag: dict[tuple[str, int], int] = {}
        for stage in self._stage_inputs():
            applied = stage.progress.applied
            for p, hw in self._highwaters(stage.topic).items():
                if p in applied:
                    lag[(stage.topic, p)] = max(hw - applied[p] - 1, 0)
        return lag

    async def _refresh_lag(self) -> None:
        self._lag.publish(self._behind())

    async def _pace_ingest(self) -> None:
        """Ingest holds while the stages have too many packs to apply here."""
        self.ingest.pace(sum(self._behind().values()))

    async def _check_tails(self) -> None:
        for ready, stage_input in (
            (self.identity.ready, self.identity.input),
            (self.zone.ready, self.zone.input),
            (self.alerting.ready, self.alerting.input),
            (self.theatre.ready, self.theatre.input),
        ):
            if ready.is_set():
                await stage_input.check_tail(self._highwaters(stage_input.topic))
        self.update_ready()

    async def _refresh_window_gauges(self) -> None:
        from streams.web.fanout import refresh_window_gauges

        await refresh_window_gauges(self)


def _ingest_join_service(monitor: Monitor) -> type[faust.Service]:
    class IngestJoin(faust.Service):  # type: ignore[misc]
        """Joins the ingest group as the worker starts (the join goes on in the background)."""

        async def on_start(self) -> None:
            created = await asyncio.to_thread(ensure_topics, monitor.settings)
            if created:
                log.info("created topics: %s", ", ".join(created))
            await monitor.ingest.join()

        async def on_stop(self) -> None:  # if the worker stops before `IngestService` started
            await monitor.ingest.stop()

    return IngestJoin


def _ingest_service(monitor: Monitor) -> type[faust.Service]:
    class IngestService(faust.Service):  # type: ignore[misc]
        """Runs the ingest stage for the lifetime of the worker, from the first recovery."""

        async def on_start(self) -> None:
            await monitor.ingest.start()

        async def on_stop(self) -> None:
            await monitor.ingest.stop()

    return IngestService
