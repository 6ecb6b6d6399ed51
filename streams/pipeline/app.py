"""The worker: one Faust app wiring topics, the ingest stage, the counting agent,
the tables and the HTTP API together. Logic lives in the pure modules it imports."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import TopicPartition

from schemas.codes import RejectReason
from schemas.validation import Rejection
from streams import metrics
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka.faust_transport import app_class
from streams.kafka.offsets import read_partitions
from streams.kafka.topics import ensure_topics
from streams.pipeline.counting import TallyIndex, decode_packs, observe
from streams.pipeline.dead_letters import dead_letter
from streams.pipeline.ingest import Ingest
from streams.pipeline.lag import LagReport
from streams.pipeline.packs import packs, send_each, steps
from streams.tallies.ledger import chunks, encode_entry, entry_key

log = logging.getLogger(__name__)

LEDGER_TABLE = "tally-ledger"
WINDOW_GAUGE_INTERVAL = 15.0
LAG_INTERVAL = 5.0


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
        self.gazetteer = Gazetteer.load(settings.gazetteer)
        self.classifier = Classifier(self.zones, self.gazetteer)
        self.ready = False
        self._ingest_ready = False
        self._counting_ready = False

        s = settings
        s.data_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its app directory here
        self.app = app_class(s.fetch_max_wait_ms)(
            s.app_id,
            broker=s.broker_url(),
            broker_credentials=faust_credentials(s),
            store="memory://",
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
            datadir=str(s.data_dir),
            web_in_thread=False,
        )
        self.keyed_topic = self.app.topic(
            s.keyed_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=s.partitions,
        )
        self.ledger = self.app.Table(
            LEDGER_TABLE,
            partitions=s.partitions,
            key_type=bytes,  # bytes types give the raw codec: we encode entries ourselves
            value_type=bytes,
        )
        #: The highest offset each Faust agent has finished, per input partition.
        self.processed: dict[tuple[str, int], int] = {}
        self._lag = LagReport()
        self.index = TallyIndex(retention_seconds=s.retention_days * 86_400)
        #: Set while the index matches the changelog of the owned partitions.
        self.index_ready = asyncio.Event()
        self.ingest = Ingest(s, self.classifier, on_ready=self._on_ingest_ready)
        from streams.pipeline.alerting_stage import AlertStage

        self.alerting = AlertStage(self)

        self.ledger.on_recover(self._on_recovered)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.agent(self.keyed_topic, name="count-incidents")(self._count)
        self.app.timer(WINDOW_GAUGE_INTERVAL)(self._refresh_window_gauges)
        self.app.timer(LAG_INTERVAL)(self._refresh_lag)
        self.app.timer(3600.0)(self._forget_expired)
        self.app.service(_ingest_service(self))

        from streams.web.api import register_api

        register_api(self)

    # -- lifecycle ------------------------------------------------------------------
    def owned_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.settings.keyed_topic
        }

    async def _on_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        self.index_ready.clear()
        self.processed.clear()
        self.alerting.ready.clear()

    async def _on_recovered(self) -> None:
        """Rebuild the index from the changelog of the partitions this worker now owns.

        We read the changelog ourselves, to the high watermark of fetch responses,
        instead of trusting the table Faust recovered: Faust stops recovery at the
        ListOffsets answer, which some brokers (Tansu) under-report.
        """
        started = time.monotonic()
        owned = self.owned_partitions()
        topic = self.ledger.changelog_topic.get_topic_name()
        s = self.settings
        records = await read_partitions(
            s.bootstrap(), [TopicPartition(topic, p) for p in owned], **s.kafka_security()
        )
        read = self.index.rebuild({tp.partition: rs for tp, rs in records.items()})
        metrics.STATE_RECOVERY_SECONDS.set(time.monotonic() - started)
        metrics.STATE_RECOVERED_ENTRIES.set(read)
        metrics.PARTITIONS_OWNED.set(len(owned))
        log.info("counting state recovered: %d entries for partitions %s", read, sorted(owned))
        self.index_ready.set()
        self._counting_ready = True
        self.update_ready()

    def _on_ingest_ready(self) -> None:
        self._ingest_ready = True
        self.update_ready()

    def update_ready(self) -> None:
        self.ready = self._ingest_ready and self._counting_ready and self.alerting.ready.is_set()
        metrics.WORKER_READY.set(1 if self.ready else 0)

    # -- the counting agent ---------------------------------------------------------------
    async def _count(self, stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        s = self.settings
        async for events in stream.take_events(s.batch_size, within=s.batch_within):
            await self.index_ready.wait()
            for step in steps(events, lambda e: e.value):
                await self._count_step(step)
            self.note_processed(events)

    async def _count_step(self, events: Sequence[Any]) -> None:
        """Count one step of a batch; its ledger entries are written once its incidents
        are acknowledged, so a crash part-way replays the rest of the batch only."""
        s = self.settings
        producer = self.ingest.producer
        assert producer is not None
        now = time.time()
        grouped, undecodable = decode_packs(
            (e.message.partition, e.message.offset, e.value) for e in events
        )
        if undecodable:
            await self.dead_letter_internal(
                s.keyed_topic, [(u.partition, u.offset, u.raw, u.error) for u in undecodable]
            )
        last_offset = {e.message.partition: e.message.offset for e in events}
        published: list[tuple[bytes, bytes]] = []  # (zone, incident JSON)
        entries: list[tuple[int, bytes, bytes]] = []  # (partition, key, ledger entry)
        for p, items in grouped.items():
            part = self.index.partition(p)
            fresh = []
            for counted, received, incident, raw in items:
                if not part.add(counted):
                    metrics.DUPLICATES.inc()
                    continue
                fresh.append(counted)
                observe(incident, counted.occurred, received, now)
                published.append((incident["zone"].encode(), raw))
            for n, chunk in enumerate(chunks(fresh)):
                entry = entry_key(p, last_offset[p], n).encode()
                entries.append((p, entry, encode_entry(chunk)))
        if not published:
            return
        # Incidents (for subscribers, and packed by zone for alerting) are acknowledged
        # before the ledger records them as counted: a crash in between re-publishes
        # them (at least once) rather than loses them.
        incident_partitions = await self.ingest.partitions_of(s.incidents_topic)
        zone_partitions = await self.ingest.partitions_of(s.zone_packs_topic)
        await asyncio.gather(
            *await send_each(producer, s.incidents_topic, published, incident_partitions),
            *[
                await producer.send(s.zone_packs_topic, pack, partition=zp)
                for zp, pack in packs(published, zone_partitions)
            ],
        )
        for p, entry, value in entries:
            self.ledger.send_changelog(p, entry, value)

    async def dead_letter_internal(
        self, topic: str, records: Sequence[tuple[int, int, bytes, str]]
    ) -> None:
        """Records of an internal topic (partition, offset, value, error) that are not
        what this monitor writes there: to the dead-letter topic, never silently dropped."""
        producer = self.ingest.producer
        assert producer is not None
        sends = []
        for partition, offset, raw, error in records:
            log.error("dead-lettering a record at %s[%d]@%d: %s", topic, partition, offset, error)
            metrics.REJECTED.labels(RejectReason.INVALID_VALUE.value).inc()
            rejection = Rejection(
                RejectReason.INVALID_VALUE,
                f"not a record this monitor writes to its internal topic {topic}: {error}",
            )
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

    def note_processed(self, events: Any) -> None:
        """Record the agents' progress (a batch of Faust events, all handled)."""
        for e in events:
            tp = (e.message.topic, e.message.partition)
            self.processed[tp] = max(self.processed.get(tp, -1), e.message.offset)

    # -- timers ------------------------------------------------------------------------
    async def _refresh_lag(self) -> None:
        """Lag of the Faust agents' inputs: fetch high watermark minus what the agent has
        finished (minus the fetch position until it has finished something)."""
        topics = {self.settings.keyed_topic, self.settings.zone_packs_topic}
        lag: dict[tuple[str, int], int] = {}
        for tp in self.app.assignor.assigned_actives():
            if tp.topic not in topics:
                continue
            try:
                hw = self.app.consumer.highwater(tp)
                done = self.processed.get((tp.topic, tp.partition))
                position = done + 1 if done is not None else await self.app.consumer.position(tp)
            except Exception:  # not (yet) assigned in the consumer: no figure this time
                continue
            if hw is not None and position is not None:
                lag[(tp.topic, tp.partition)] = hw - position
        self._lag.publish(lag)

    async def _refresh_window_gauges(self) -> None:
        from streams.web.fanout import refresh_window_gauges

        await refresh_window_gauges(self)

    async def _forget_expired(self) -> None:
        self.index.forget_expired(time.time())


def _ingest_service(monitor: Monitor) -> type[faust.Service]:
    class IngestService(faust.Service):  # type: ignore[misc]
        """Runs the ingest stage for the lifetime of the worker."""

        async def on_start(self) -> None:
            created = await asyncio.to_thread(ensure_topics, monitor.settings)
            if created:
                log.info("created topics: %s", ", ".join(created))
            await monitor.ingest.start()

        async def on_stop(self) -> None:
            await monitor.ingest.stop()

    return IngestService
