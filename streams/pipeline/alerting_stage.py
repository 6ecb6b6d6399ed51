"""The alerting stage: new incidents, packed by zone -> rule engine -> alert events.

Thin wiring around `alerting.engine`: per-zone state lives in memory and in the
changelog of the Faust table `alert-state` (one write per zone per batch); after every
assignment it is rebuilt from that changelog, read to its exact end as for the tallies.
Alert events are published (and acknowledged) before the state that records them, so a
crash re-publishes rather than loses; alert ids are deterministic, so a re-published
event carries the same `alert_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition

from alerting.alertmanager import AlertmanagerClient
from alerting.engine import ZoneState, evaluate_batch, evaluate_time
from alerting.rules import RuleSet, load_rules
from schemas.alert import AlertEvent
from schemas.incident import Incident
from streams import metrics
from streams.kafka.offsets import read_partitions
from streams.pipeline.packs import unpack

if TYPE_CHECKING:
    from streams.pipeline.app import Monitor

log = logging.getLogger(__name__)

ALERT_TABLE = "alert-state"
TICK_SECONDS = 5.0
RESEND_SECONDS = 60.0
RESOLVED_KEPT = 500


class AlertStage:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        s = monitor.settings
        self.rules: RuleSet = load_rules(s.rules, known_zones=monitor.zones.ids)
        self.states: dict[str, ZoneState] = {}
        self.partition_of: dict[str, int] = {}
        self.resolved: deque[AlertEvent] = deque(maxlen=RESOLVED_KEPT)
        self.ready = asyncio.Event()
        self._outbox: asyncio.Queue[list[AlertEvent]] = asyncio.Queue()
        self._delivery: asyncio.Task[None] | None = None
        self._last_resend = 0.0
        self.alertmanager = (
            AlertmanagerClient(s.alertmanager_url, generator_url=s.web_url())
            if s.alertmanager_url
            else None
        )
        app = monitor.app
        self.topic = app.topic(
            s.zone_packs_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=s.partitions,
        )
        self.table = app.Table(
            ALERT_TABLE, partitions=s.partitions, key_type=bytes, value_type=bytes
        )
        self.table.on_recover(self._on_recovered)
        app.agent(self.topic, name="evaluate-alerts")(self._evaluate)
        app.timer(TICK_SECONDS)(self._tick)

    # -- state ------------------------------------------------------------------------
    def owned_partitions(self) -> set[int]:
        topic = self.monitor.settings.zone_packs_topic
        return {
            tp.partition for tp in self.monitor.app.assignor.assigned_actives() if tp.topic == topic
        }

    async def _on_recovered(self) -> None:
        owned = self.owned_partitions()
        s = self.monitor.settings
        changelog = self.table.changelog_topic.get_topic_name()
        records = await read_partitions(
            s.bootstrap(), [TopicPartition(changelog, p) for p in owned], **s.kafka_security()
        )
        states: dict[str, ZoneState] = {}
        partition_of: dict[str, int] = {}
        for tp, rows in records.items():
            for key, value in rows:  # the last value of a zone wins
                zone = key.decode()
                if value is None:
                    states.pop(zone, None)
                    continue
                states[zone] = ZoneState.from_json(json.loads(value))
                partition_of[zone] = tp.partition
        self.states, self.partition_of = states, partition_of
        self._refresh_gauge()
        log.info("alert state recovered for %d zones", len(states))
        self.ready.set()
        self.monitor.update_ready()

    def _save(self, zone: str) -> None:
        state = self.states[zone]
        self.table.send_changelog(
            self.partition_of[zone], zone.encode(), json.dumps(state.to_json()).encode()
        )

    # -- the agent and the clock ----------------------------------------------------------
    async def _evaluate(self, stream: Any) -> None:
        s = self.monitor.settings
        async for events in stream.take_events(s.batch_size, within=s.batch_within):
            await self.ready.wait()
            by_zone: dict[str, list[Incident]] = {}
            for e in events:
                for raw in unpack(e.value):
                    try:
                        incident = Incident.model_validate_json(raw)
                    except ValueError as exc:  # not ours: someone else wrote to the topic
                        log.error("skipping undecodable incident at %s: %s", e.message.tp, exc)
                        continue
                    by_zone.setdefault(incident.zone, []).append(incident)
                    self.partition_of[incident.zone] = e.message.partition
            now = datetime.now(UTC)
            out: list[AlertEvent] = []
            for zone, incidents in by_zone.items():
                state = self.states.get(zone) or ZoneState.new(zone)
                self.states[zone] = state
                out.extend(evaluate_batch(self.rules, state, incidents, now))
            await self._publish(out)
            for zone in by_zone:
                self._save(zone)
            self._refresh_gauge()

    async def _tick(self) -> None:
        if not self.ready.is_set():
            return
        now = datetime.now(UTC)
        owned = self.owned_partitions()
        changed: list[str] = []
        out: list[AlertEvent] = []
        for zone, state in self.states.items():
            if self.partition_of.get(zone) not in owned:
                continue
            events = evaluate_time(self.rules, state, now)
            if events:
                out.extend(events)
                changed.append(zone)
        if out:
            await self._publish(out)
            for zone in changed:
                self._save(zone)
            self._refresh_gauge()
        if self.alertmanager is not None and time.monotonic() - self._last_resend >= RESEND_SECONDS:
            # Alertmanager resolves an alert it has not heard of for resolve_timeout (5 min
            # by default): keep telling it what is still firing.
            self._last_resend = time.monotonic()
            firing = [
                a
                for zone, state in self.states.items()
                if self.partition_of.get(zone) in owned
                for a in state.firing()
            ]
            if firing:
                self._enqueue(firing)

    # -- output ---------------------------------------------------------------------------
    async def _publish(self, events: Iterable[AlertEvent]) -> None:
        events = list(events)
        if not events:
            return
        producer = self.monitor.ingest.producer
        assert producer is not None
        topic = self.monitor.settings.alerts_topic
        sends = []
        for event in events:
            sends.append(
                await producer.send(
                    topic, event.model_dump_json().encode(), key=event.fingerprint.encode()
                )
            )
            if event.status == "firing":
                metrics.ALERTS.labels(event.rule, event.severity.value).inc()
            else:
                self.resolved.append(event)
        await asyncio.gather(*sends)
        self._enqueue(events)

    def _enqueue(self, events: list[AlertEvent]) -> None:
        """Hand events to the one delivery task: in order, retried with backoff, and
        without making the stream wait for Alertmanager."""
        if self.alertmanager is None:
            return
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.create_task(self._deliver_forever())
        self._outbox.put_nowait(events)

    async def _deliver_forever(self) -> None:
        assert self.alertmanager is not None
        while True:
            events = await self._outbox.get()
            try:
                await self.alertmanager.send(events)
                metrics.ALERT_DELIVERIES.labels("alertmanager", "delivered").inc(len(events))
            except Exception as exc:  # the topic has the alert; count the failed delivery
                metrics.ALERT_DELIVERIES.labels("alertmanager", "failed").inc(len(events))
                log.error("alert delivery to Alertmanager failed: %s", exc)

    def _refresh_gauge(self) -> None:
        metrics.ALERTS_FIRING.clear()
        owned = self.owned_partitions()
        counts: dict[tuple[str, str], int] = {}
        for zone, state in self.states.items():
            if self.partition_of.get(zone) not in owned:
                continue
            for r in self.rules.rules:
                counts.setdefault((r.name, zone), 0)
            for alert in state.firing():
                counts[(alert.rule, zone)] = counts.get((alert.rule, zone), 0) + 1
        for (rule, zone), n in counts.items():
            metrics.ALERTS_FIRING.labels(rule, zone).set(n)

    def alerts(self, status: str) -> list[dict[str, Any]]:
        """This worker's alerts: firing from its zones' state, resolved from recent memory."""
        out: list[dict[str, Any]] = []
        if status in ("firing", "all"):
            owned = self.owned_partitions()
            for zone, state in self.states.items():
                if self.partition_of.get(zone) in owned:
                    out.extend(a.model_dump(mode="json") for a in state.firing())
        if status in ("resolved", "all"):
            out.extend(a.model_dump(mode="json") for a in self.resolved)
        return out
