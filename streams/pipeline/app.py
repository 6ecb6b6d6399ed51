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
from streams.pipeline.counting import Decoded, TallyIndex, decode_packs, observe
from streams.pipeline.dead_letters import dead_letter
from streams.pipeline.ingest import Ingest
from streams.pipeline.lag import LagReport
from streams.pipeline.packs import packs, send_each
from streams.pipeline.progress import Record
from streams.pipeline.stage_input import StageInput
from streams.tallies.ledger import chunks, encode_entry, entry_key, entry_offset

log = logging.getLogger(__name__)

LEDGER_TABLE = "tally-ledger"
WINDOW_GAUGE_INTERVAL = 15.0
LAG_INTERVAL = 5.0
#: How often the stages look for input they were not handed (see progress.py).
TAIL_INTERVAL = 3.0


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
        #: Once ready, the worker is alive for good (liveness); `ready` may drop again.
        self.started = False
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
            # We recover state ourselves to the exact end (streams/kafka/offsets.py); Faust's
            # own check compares with the broker's ListOffsets answer, which Tansu
            # under-reports, and killed workers that joined later (issue 9).
            recovery_consistency_check=False,
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
        self._lag = LagReport()
        self.index = TallyIndex(retention_seconds=s.retention_days * 86_400)
        #: Set while the index matches the changelog of the owned partitions.
        self.index_ready = asyncio.Event()
        #: Held while a step is applied and while the index is recovered.
        self._count_lock = asyncio.Lock()
        self.counting_input = StageInput(s.keyed_topic, s, self._count_step, self._count_lock)
        self.ingest = Ingest(s, self.classifier, on_ready=self._on_ingest_ready)
        from streams.pipeline.alerting_stage import AlertStage

        self.alerting = AlertStage(self)

        self.ledger.on_recover(self._on_recovered)
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.agent(self.keyed_topic, name="count-incidents")(self._count)
        self.app.timer(WINDOW_GAUGE_INTERVAL)(self._refresh_window_gauges)
        self.app.timer(LAG_INTERVAL)(self._refresh_lag)
        self.app.timer(TAIL_INTERVAL)(self._check_tails)
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
        self.counting_input.clear()
        self.alerting.revoked()
        self.update_ready()

    async def _on_recovered(self) -> None:
        """Rebuild the index from the changelog of the partitions this worker now owns.

        We read the changelog ourselves, to the high watermark of fetch responses,
        instead of trusting the table Faust recovered: Faust stops recovery at the
        ListOffsets answer, which some brokers (Tansu) under-report.
        """
        async with self._count_lock:  # a step still being written lands before we read
            await self._recover()

    async def _recover(self) -> None:
        started = time.monotonic()
        owned = self.owned_partitions()
        topic = self.ledger.changelog_topic.get_topic_name()
        s = self.settings
        records = await read_partitions(
            s.bootstrap(), [TopicPartition(topic, p) for p in owned], **s.kafka_security()
        )
        read = self.index.rebuild({tp.partition: rs for tp, rs in records.items()})
        applied: dict[int, int] = {}
        for tp, rows in records.items():
            for key, _ in rows:
                offset = entry_offset(key.decode())
                if offset is not None:
                    applied[tp.partition] = max(applied.get(tp.partition, -1), offset)
        self.counting_input.reset(owned, applied)
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

    def stalled(self) -> dict[str, set[int]]:
        """Partitions with input beyond what their stage could apply for a while."""
        return {i.topic: set(i.stalled) for i in self._stage_inputs() if i.stalled}

    def update_ready(self) -> None:
        """Ready: ingest runs, both stages hold the recovered state of the partitions
        they own, and no partition is stalled. Cleared while partitions move."""
        self.ready = (
            self._ingest_ready
            and self._counting_ready
            and self.index_ready.is_set()
            and self.alerting.ready.is_set()
            and not self.counting_input.stalled
            and not self.alerting.input.stalled
        )
        if self.ready:
            self.started = True
        metrics.WORKER_READY.set(1 if self.ready else 0)

    # -- the counting agent ---------------------------------------------------------------
    async def _count(self, stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        s = self.settings
        async for events in stream.take_events(s.batch_size, within=s.batch_within):
            await self.index_ready.wait()
            await self.counting_input.offer(
                [Record(e.message.partition, e.message.offset, e.value) for e in events]
            )

    async def _count_step(self, records: Sequence[Record]) -> None:
        """Count one step: publish its new incidents, then write its ledger entries, then
        count them in the index. Nothing in memory changes until both are acknowledged,
        so a failed step can be retried as it is, and a crash part-way replays it."""
        s = self.settings
        producer = await self.ingest.started_producer()
        grouped, undecodable = decode_packs((r.partition, r.offset, r.value) for r in records)
        if undecodable:
            await self.dead_letter_internal(
                s.keyed_topic, [(u.partition, u.offset, u.raw, u.error) for u in undecodable]
            )
        last_offset = {r.partition: r.offset for r in records}
        published: list[tuple[bytes, bytes]] = []  # (zone, incident JSON)
        entries: list[tuple[int, bytes, bytes]] = []  # (partition, key, ledger entry)
        fresh: dict[int, list[Decoded]] = {}
        duplicates = 0
        for p, items in grouped.items():
            part = self.index.partition(p)
            keys: set[str] = set()
            new = fresh[p] = []
            for d in items:
                key = d.counted.key
                if key in keys or not part.is_new(key):
                    duplicates += 1
                    continue
                keys.add(key)
                new.append(d)
                published.append((d.incident["zone"].encode(), d.raw))
            for n, chunk in enumerate(chunks([d.counted for d in new])):
                entry = entry_key(p, last_offset[p], n).encode()
                entries.append((p, entry, encode_entry(chunk)))
        if published:
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
            changelog = self.ledger.changelog_topic.get_topic_name()
            await asyncio.gather(
                *[
                    await producer.send(changelog, value, key=entry, partition=p)
                    for p, entry, value in entries
                ]
            )
        now = time.time()
        for p, new in fresh.items():
            part = self.index.partition(p)
            for d in new:
                part.add(d.counted)
                observe(d.incident, d.counted.occurred, d.received, now)
        metrics.DUPLICATES.inc(duplicates)

    async def dead_letter_internal(
        self, topic: str, records: Sequence[tuple[int, int, bytes, str]]
    ) -> None:
        """Records of an internal topic (partition, offset, value, error) that are not
        what this monitor writes there: to the dead-letter topic, never silently dropped."""
        producer = await self.ingest.started_producer()
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

    # -- timers ------------------------------------------------------------------------
    def _stage_inputs(self) -> list[StageInput]:
        return [self.counting_input, self.alerting.input]

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

    async def _refresh_lag(self) -> None:
        """Lag of the stateful stages' inputs: fetch high watermark minus what the stage
        has applied, whatever the consumer's position says."""
        lag: dict[tuple[str, int], int] = {}
        for stage in self._stage_inputs():
            applied = stage.progress.applied
            for p, hw in self._highwaters(stage.topic).items():
                if p in applied:
                    lag[(stage.topic, p)] = max(hw - applied[p] - 1, 0)
        self._lag.publish(lag)

    async def _check_tails(self) -> None:
        if self.index_ready.is_set():
            await self.counting_input.check_tail(self._highwaters(self.settings.keyed_topic))
        if self.alerting.ready.is_set():
            await self.alerting.input.check_tail(self._highwaters(self.settings.zone_packs_topic))
        self.update_ready()

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
