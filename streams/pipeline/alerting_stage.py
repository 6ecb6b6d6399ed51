"""The alerting stage: new incidents, packed by zone -> rule engine -> alert events.

Thin wiring around `alerting.engine`: per-zone state lives in memory and in the
changelog of the Faust table `alert-state`, as parts written when they change
(`streams/pipeline/alert_state.py`: a step writes what it changed, never a whole zone).
A `Stage` (`stage.py`) like the others: after every assignment the state is rebuilt from
that changelog, read to its exact end; input is applied in offset order; a failed write is
retried with what the step produced; the clock's work runs through `maintain`.

Once, and never lost. Each step first writes, per partition, a journal of its changes
*and* the alert events they produced but that are not yet confirmed on the alert topic
(its outbox), then the changed parts and the input offset. The events are published only
once all of that is acknowledged; then the journal becomes a tombstone. So a worker that
dies at any point leaves either no trace of the step (its zone packs are delivered again
and evaluated alike, alert ids being deterministic) or a journal. On recovery, the new
owner completes the step's parts from the journal, reads the alert topic from just before
the journal was written and publishes only the events not already there (`settle`, before
the stage is ready).

The theatre. With theatre-wide rules (`fatality_peak`, `scope: theatre`), each step also
sends the changes of its zones' fatality ledgers to the theatre topic (one partition,
`streams/pipeline/theatre_stage.py`), before it writes them: latest values, so sending
again is harmless. A recovery, and every hour, sends the zones' whole ledgers again (a
theatre rule added later, a theatre topic emptied by retention, or a zombie's late send is
put right).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerting.alertmanager import AlertmanagerClient, to_repost
from alerting.engine import evaluate_batch, evaluate_time
from alerting.rules import THEATRE, RuleSet, load_rules
from alerting.theatre import FatalChange, ledger_changes
from alerting.zone_state import StateMark, ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput, read_alert_input
from schemas.codes import RejectReason
from streams import metrics
from streams.pipeline.alert_history import ResolvedHistory
from streams.pipeline.alert_input_memo import AlertInputMemo
from streams.pipeline.alert_outbox import Unpublished, not_on_alert_topic, unpublished_only
from streams.pipeline.alert_state import (
    JOURNAL_KEY,
    SINCE_KEY,
    Outbox,
    changes_of,
    encode_journal,
    entries_of,
    restore,
)
from streams.pipeline.packs import unpack
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports, Stage
from streams.pipeline.tables import ALERT_TABLE
from streams.pipeline.timers import every
from streams.pipeline.zone_stage import RETRACT_PREFIX
from streams.store.batches import send_to_partition
from streams.store.changelog import Entry, Recovered

log = logging.getLogger(__name__)

__all__ = ["SINCE_KEY", "AlertStage"]
TICK_SECONDS = 5.0
RESEND_SECONDS = 60.0
#: How long a resolution is posted to Alertmanager again with the firing alerts (as
#: Prometheus does): one whose post failed reaches it once it is back within that time.
RESOLVED_RESEND_SECONDS = 900.0
#: How often the zones' whole fatality ledgers are sent to the theatre again (with theatre
#: rules): whatever reached it out of order (a zombie owner's late send) is put right.
LEDGER_RESEND_SECONDS = 3600.0


@dataclass(slots=True)
class AlertOutput:
    #: zone -> the alert events (fired, resolved) of the step
    events: dict[str, list[AlertEvent]] = field(default_factory=dict)
    dead: list[DeadRecord] = field(default_factory=list)
    #: inputs the rule engine failed on (a defect): dead-lettered as `internal_error`
    faults: list[DeadRecord] = field(default_factory=list)
    #: partitions whose outbox `settle` published: their journal is replaced
    settled: set[int] = field(default_factory=set)
    #: a zone's state was made: the firing gauge gets its zero series
    new_zone: bool = False
    #: the events are published: a retried commit (a tombstone failed) writes those only
    confirmed: bool = False


class AlertStage(Stage[AlertOutput]):
    """`ports`: what it may use of the worker; `zone_ids`: the catalogue's zones, which
    zone-scoped rules are checked against; `alert_inputs`: what this process's zone stage
    wrote, to read back without parsing it (`alert_input_memo.py`)."""

    #: A step's journal lists every part it changed, and must fit one record (1 MiB,
    #: compressed past `alert_state.COMPRESS_ABOVE`): 16,384 inputs over a partition's
    #: zones, each at its `max_incidents_per_zone`, made one of 1.2 MB compressed.
    STEP_RECORDS = 4096

    def __init__(
        self,
        ports: Ports,
        zone_ids: Collection[str],
        alert_inputs: AlertInputMemo | None = None,
    ) -> None:
        s = ports.settings
        super().__init__(
            ports, topic=s.zone_packs_topic, table=ALERT_TABLE, agent="evaluate-alerts"
        )
        self.read_input = read_alert_input if alert_inputs is None else alert_inputs.read
        self.rules: RuleSet = load_rules(s.rules, known_zones=zone_ids)
        self.states: dict[str, ZoneState] = {}
        self.partition_of: dict[str, int] = {}
        self.history = ResolvedHistory(s)
        self._to_alertmanager: asyncio.Queue[list[AlertEvent]] = asyncio.Queue()
        self._delivery: asyncio.Task[None] | None = None
        self._last_resend = 0.0
        #: Per zone-pack partition: when observation began (ms).
        self.since_of: dict[int, int] = {}
        #: Partitions whose observation began at this recovery: written by `settle`.
        self._since_unwritten: set[int] = set()
        #: Per partition: the outbox of a journal a previous owner did not confirm.
        self._outboxes: dict[int, Outbox] = {}
        #: Events evaluated into the in-memory state whose commit has not succeeded yet
        #: (a step's is retried with its output; a clock's is not): every commit carries
        #: them until one succeeds, as a retried evaluation finds its incidents known and
        #: fires nothing.
        self._unconfirmed: dict[str, list[AlertEvent]] = {}
        #: Partitions whose journal's events were published but whose tombstone failed:
        #: the next write empties them.
        self._tombstones_due: set[int] = set()
        #: zone -> parts changed in memory and not written yet (kept over a failed write,
        #: as the events are).
        self._dirty: dict[str, set[str]] = {}
        #: Zones whose whole fatality ledger is to be sent to the theatre (after a recovery).
        self._resend_ledgers: set[str] = set()
        self._ledgers_sent = time.monotonic()
        #: The theatre's firing alerts when this worker evaluates it (None: it does not);
        #: set by the worker (`streams/pipeline/theatre_stage.py`).
        self.theatre_firing: Callable[[], list[AlertEvent] | None] = lambda: None
        #: Whether this worker was assigned the theatre and is recovering it (set likewise).
        self.theatre_recovering: Callable[[], bool] = lambda: False
        self.alertmanager = (
            AlertmanagerClient(s.alertmanager_url, generator_url=f"{s.web_url()}/api/v1/alerts")
            if s.alertmanager_url
            else None
        )
        every(ports.app, TICK_SECONDS, self._tick)
        ports.app.task(self.history.follow)

    # -- recovery ---------------------------------------------------------------------------
    def restore(self, partitions: dict[int, Recovered]) -> None:
        r = restore(partitions)
        self.states, self.partition_of, self._dirty = r.states, r.partition_of, r.dirty
        since = r.since
        now_ms = int(time.time() * 1000)
        self._since_unwritten = set()
        for p in self.owned - since.keys():  # first run on this partition: observation begins
            since[p] = now_ms
            self._since_unwritten.add(p)
        self.since_of = since
        configured = self.ports.settings.observed_since
        if configured is not None:
            # set after a backfill: it holds for zones already watched too (a recovered
            # state kept when its partition was first watched, which the backfill predates)
            ms = int(configured.timestamp() * 1000)
            for state in self.states.values():
                state.since = ms
        self._outboxes = r.outboxes
        self._unconfirmed = {}
        self._tombstones_due = set()
        self._resend_ledgers = (
            {z for z, st in self.states.items() if st.fatalities.incidents}
            if self.rules.theatre_fatality_rules
            else set()
        )
        self._refresh_gauge()
        log.info("alert state of %d zones recovered", len(self.states))

    def unsettled(self) -> bool:
        return bool(self._outboxes or self._since_unwritten)

    async def settle(self) -> None:
        """Write when observation began on new partitions, and publish what a previous
        owner committed to but did not confirm: every outbox event (per partition) not on
        the alert topic yet. Alertmanager hears all of them again (it de-duplicates by
        labels)."""
        generation = self.generation
        outboxes = self._outboxes
        missing: list[AlertEvent] = []
        if outboxes:
            await self.ports.producer()
            events = [e for o in outboxes.values() for e in o.events]
            missing = await not_on_alert_topic(
                self.ports.settings,
                self.ports.partitions_of,
                events,
                min(o.written_ms for o in outboxes.values()),
            )
            if generation != self.generation:
                return  # revoked while reading: the next owner publishes them, once
            log.warning(
                "alert outboxes of %d partitions: %d events, %d already on the topic, "
                "publishing %d",
                len(outboxes),
                len(events),
                len(events) - len(missing),
                len(missing),
            )
            await self._publish(missing, deliver=False)
            # Alertmanager hears them in the outbox's order: a resolution before the next
            # episode's firing (the missing ones first had the firing overturned by a
            # resolution the dead owner had already published)
            self._enqueue(events)
        async with self.lock:
            if generation != self.generation:
                return  # revoked or recovered again meanwhile: the next recovery settles
            since = {
                p: [(SINCE_KEY, str(self.since_of[p]).encode())] for p in self._since_unwritten
            }
            if since:
                await self.store.write_many(since, {})
                self._since_unwritten = set()
            if outboxes:
                await self.commit(AlertOutput(settled=set(outboxes)), {})
                self._outboxes = {}

    def _new_state(self, zone: str) -> ZoneState:
        configured = self.ports.settings.observed_since
        if configured is not None:
            return ZoneState.new(zone, since=configured.astimezone(UTC))
        ms = self.since_of.get(self.partition_of[zone], int(time.time() * 1000))
        return ZoneState(zone=zone, since=ms)

    # -- a step -------------------------------------------------------------------------------
    def new_output(self) -> AlertOutput:
        return AlertOutput()

    def process(self, records: Sequence[Record], out: AlertOutput) -> None:
        """Evaluate one step of zone packs. Evaluation is deterministic and each zone's
        state ignores incidents it knows, so a step evaluated again after a recovery fires
        what it fired the first time, and nothing twice."""
        # per zone, the last word of the step on each incident id, in the packs' order:
        # its latest version, or None when its last word was a retraction
        last: dict[str, dict[str, AlertInput | None]] = {}
        #: (zone, incident id) -> where its last word was read, and as read
        read_at: dict[tuple[str, str], tuple[int, int, bytes]] = {}
        merged_into: dict[str, str] = {}
        for r in records:
            for raw in unpack(r.value):
                if raw.startswith(RETRACT_PREFIX):
                    try:
                        doc = json.loads(raw)
                        zone = str(doc["zone"])
                        iid = str(doc["incident_id"])
                        if doc.get("merged_into") is not None:
                            merged_into[iid] = str(doc["merged_into"])
                        said = last.setdefault(zone, {})
                        said.pop(iid, None)
                        said[iid] = None
                        read_at[(zone, iid)] = (r.partition, r.offset, raw)
                        self.partition_of[zone] = r.partition
                    except (ValueError, KeyError, TypeError) as exc:
                        out.dead.append((r.partition, r.offset, raw, str(exc)))
                    continue
                try:
                    incident = self.read_input(raw)
                except ValueError as exc:  # not ours: someone else wrote to the topic
                    out.dead.append((r.partition, r.offset, raw, str(exc)))
                    continue
                said = last.setdefault(incident.zone, {})
                said.pop(incident.incident_id, None)
                said[incident.incident_id] = incident
                read_at[(incident.zone, incident.incident_id)] = (r.partition, r.offset, raw)
                self.partition_of[incident.zone] = r.partition
        by_zone: dict[str, list[AlertInput]] = {}
        retracted: dict[str, list[str]] = {}
        for zone, said in last.items():
            # Several packs in one step can say several things of one incident: only the
            # last counts (the first version had won, and an incident opened and then
            # retracted stayed). The incidents in event-time order, so that a rule that
            # fires on the first of a burst (quiet-broken) names its first incident.
            incidents = [i for i in said.values() if i is not None]
            if incidents:
                by_zone[zone] = sorted(incidents, key=lambda i: (i.occurred_ms, i.incident_id))
            gone = [iid for iid, i in said.items() if i is None]
            if gone:
                retracted[zone] = gone
        marks: dict[str, StateMark | None] = {}
        now = datetime.now(UTC)
        alone = [z for z in retracted if z not in by_zone and z in self.states]
        for zone in [*by_zone, *alone]:  # in arrival order: the events' order is the same
            incidents = by_zone.get(zone, [])
            state = self.states.get(zone)
            if state is None:
                state = self.states[zone] = self._new_state(zone)
                marks[zone] = None  # every part is new
                out.new_zone = True
            else:
                marks[zone] = state.mark()
            fired: list[AlertEvent] = []
            try:
                # the step's retractions and new versions of known incidents applied in it,
                # so that a dip within the step resolves nothing (`evaluate_batch`)
                evaluate_batch(
                    self.rules,
                    state,
                    incidents,
                    now,
                    forget=retracted.get(zone, ()),
                    merged_into=merged_into,
                    events=fired,
                )
            except Exception as exc:  # a rule-engine fault on this input: isolate it
                log.exception("evaluating zone %s failed; dead-lettering its inputs", zone)
                error = f"the rule engine failed on the inputs of zone {zone}: {exc!r}"
                out.faults.extend(
                    (p, offset, raw, error)
                    for (z, _), (p, offset, raw) in read_at.items()
                    if z == zone
                )
                # What it fired or resolved before the fault is in the state written with
                # this step: `fired` holds those events, published with it (an alert kept
                # firing unsaid would later be resolved without ever having fired).
            if fired:
                out.events[zone] = fired
        self._note_changes(marks)

    async def commit(self, out: AlertOutput, applied: dict[int, int]) -> None:
        """Write the parts changed in memory, each partition's preceded by its journal
        (the changes and the events, as outbox), then `applied` (the input offsets these
        states now hold); publish the events only once all of that is acknowledged, then
        empty the journals. `out.settled`: partitions whose journal's events were
        published (by `settle`): their journal is replaced.

        Revoked while writing, it publishes nothing (`Revoked`): the partitions' next owner
        publishes the journal's events if the write landed before its recovery read it
        (`settle`), and redoes the step otherwise; publishing here too sent them twice."""
        generation = self.generation
        if out.dead:
            await self.ports.dead_letter(
                self.ports.settings.zone_packs_topic, out.dead, RejectReason.INVALID_VALUE.value
            )
            out.dead = []
        if out.faults:
            await self.ports.dead_letter(
                self.ports.settings.zone_packs_topic,
                out.faults,
                RejectReason.INTERNAL_ERROR.value,
            )
            out.faults = []
        if out.confirmed:  # retried after the journals' tombstones failed
            await self._write_tombstones()
            return
        events = out.events
        for zone, earlier in self._unconfirmed.items():
            events[zone] = [*earlier, *(e for e in events.get(zone, []) if e not in earlier)]
        self._unconfirmed = events
        at_ms = int(time.time() * 1000)
        changes: dict[int, list[tuple[str, str, Any]]] = {}
        for change in changes_of(self.states, self._dirty):
            changes.setdefault(self.partition_of[change[0]], []).append(change)
        outbox: dict[int, list[AlertEvent]] = {}
        for zone, zone_events in events.items():
            outbox.setdefault(self.partition_of[zone], []).extend(zone_events)
        entries: dict[int, list[Entry]] = {}
        for p in {*changes, *outbox, *out.settled, *self._tombstones_due}:
            journal = (
                encode_journal(at_ms, changes.get(p, []), outbox.get(p, []))
                if p in changes or p in outbox
                else None  # settled, nothing left to write
            )
            entries[p] = [(JOURNAL_KEY, journal), *entries_of(changes.get(p, []))]
        fatal = self._theatre_changes(changes)
        if not entries and not applied and not fatal:
            return
        if fatal:  # before the step is written: a crash in between sends them again
            await self._send_to_theatre(fatal)
            self._resend_ledgers = set()
        # (In order: a part landing without the journal, a later batch of a large step,
        # was state whose events no recovery would publish.)
        await self.store.write_many(entries, applied)
        self.check_owned(generation)
        self._dirty = {}
        self._tombstones_due = set()
        if not outbox:
            return
        try:
            await self._publish([e for zone_events in events.values() for e in zone_events])
        except Unpublished as failed:
            # `events` is the step's output and `_unconfirmed` both: the retry (of the step,
            # or the clock's next write) publishes only what is not on the topic
            for zone in list(events):
                events[zone] = unpublished_only(events[zone], failed)
                if not events[zone]:
                    del events[zone]
            raise
        # Published: confirmed. Should a tombstone fail now, the next write carries it
        # (a recovery in between finds these events on the alert topic), never the events.
        self._unconfirmed = {}
        out.confirmed = True
        self._tombstones_due = set(outbox)
        # paused while publishing (`stall_fence.py`): the journal stays, and whoever
        # recovers the partition publishes only what is not on the topic (`settle`)
        self.check_owned(generation)
        await self._write_tombstones()

    async def _write_tombstones(self) -> None:
        await self.store.write_many({p: [(JOURNAL_KEY, None)] for p in self._tombstones_due}, {})
        self._tombstones_due = set()

    def committed(self, out: AlertOutput) -> None:
        if out.events or out.settled or out.new_zone:  # what the firing gauge counts moved
            self._refresh_gauge()

    def _theatre_changes(self, changes: dict[int, list[tuple[str, str, Any]]]) -> list[FatalChange]:
        """The theatre's share of a step: the changed fatality parts, and the whole ledgers
        of zones recovered since the last send (or due hourly); none without theatre rules."""
        if not self.rules.theatre_fatality_rules:
            return []
        out: list[FatalChange] = []
        for zone in sorted(self._resend_ledgers):
            state = self.states.get(zone)
            if state is not None:
                out.extend(ledger_changes(state))
        for partition_changes in changes.values():
            for zone, part, value in partition_changes:
                if part[:1] != "f":
                    continue
                day, killed = value if value is not None else (0, 0)
                out.append(FatalChange(zone, part[1:], int(day), int(killed)))
        return out

    async def _send_to_theatre(self, changes: list[FatalChange]) -> None:
        """To the theatre topic's one partition, in order; awaited."""
        producer = await self.ports.producer()
        sends = await send_to_partition(
            producer,
            self.ports.settings.theatre_topic,
            0,
            [(c.key.encode(), c.encode()) for c in changes],
        )
        await asyncio.gather(*sends)

    def _note_changes(self, marks: dict[str, StateMark | None]) -> None:
        for zone, mark in marks.items():
            changed = self.states[zone].changed(mark)
            if changed:
                self._dirty.setdefault(zone, set()).update(changed)

    # -- the clock ------------------------------------------------------------------------------
    async def _tick(self) -> None:
        await self.maintain(self._clock)
        if self.alertmanager is not None and time.monotonic() - self._last_resend >= RESEND_SECONDS:
            self._last_resend = time.monotonic()
            self._enqueue(self._to_repost())

    def _to_repost(self) -> list[AlertEvent]:
        """Alertmanager resolves an alert it has not heard of for resolve_timeout (5 min by
        default): keep telling it what is still firing. And what resolved lately in this
        worker's zones, whoever published it (`history`): a resolution whose post failed,
        or that a previous owner published and could not post, reaches it."""
        owned = self.owned_partitions()
        zones = {z for z in self.states if self.partition_of.get(z) in owned}
        firing = [a for zone in zones for a in self.states[zone].firing()]
        theatre = self.theatre_firing()
        firing.extend(theatre or [])
        if theatre is not None and not self.theatre_recovering():
            zones.add(THEATRE)
        if not self.ready.is_set() or not self.history.caught_up:
            # its state not recovered yet: a new episode firing there is not known, and a
            # resolution of the previous one posted now would hide it; the alert topic not
            # read to its end yet: an episode's older resolution may stand for its newer one
            return firing
        since_ms = int((time.time() - RESOLVED_RESEND_SECONDS) * 1000)
        return to_repost(firing, self.history.published_since(since_ms), zones)

    def _clock(self, out: AlertOutput) -> bool:
        """The clock's step (under the lock): alerts resolved and incidents aged out by
        time, the hourly resend of the fatality ledgers. Whether there is anything to
        write: a clock that moved alone waits for the zone's next write."""
        owned = self.owned_partitions()
        if (
            self.rules.theatre_fatality_rules
            and time.monotonic() - self._ledgers_sent >= LEDGER_RESEND_SECONDS
        ):
            self._ledgers_sent = time.monotonic()
            self._resend_ledgers = {
                z
                for z, st in self.states.items()
                if self.partition_of.get(z) in owned and st.fatalities.incidents
            }
        now = datetime.now(UTC)
        marks: dict[str, StateMark | None] = {}
        for zone, state in self.states.items():
            if self.partition_of.get(zone) not in owned:
                continue
            marks[zone] = state.mark()
            resolved = evaluate_time(self.rules, state, now)
            if resolved:
                out.events[zone] = resolved
        self._note_changes(marks)
        return bool(
            out.events
            or self._unconfirmed
            or self._resend_ledgers
            or any(parts != {"m"} for parts in self._dirty.values())
        )

    # -- output ---------------------------------------------------------------------------
    async def _publish(self, events: Iterable[AlertEvent], *, deliver: bool = True) -> None:
        """To the alert topic, counted and (`deliver`) handed to Alertmanager once
        acknowledged. `Unpublished` names the events that were not (the others are on the
        topic)."""
        events = list(events)
        if not events:
            return
        producer = await self.ports.producer()
        topic = self.ports.settings.alerts_topic
        sends: list[asyncio.Future[Any]] = []
        cause: BaseException | None = None
        for event in events:
            try:
                sends.append(
                    await producer.send(
                        topic, event.model_dump_json().encode(), key=event.fingerprint.encode()
                    )
                )
            except Exception as exc:  # refused before it was queued: so are those after it
                cause = exc
                break
        results: list[Any] = await asyncio.gather(*sends, return_exceptions=True)
        results += [cause] * (len(events) - len(results))
        done: list[AlertEvent] = []
        failed: list[AlertEvent] = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(event)
                cause = cause or result
            else:
                done.append(event)
                if event.status == "firing":
                    metrics.ALERTS.labels(event.rule, event.severity.value).inc()
        if deliver:
            self._enqueue(done)
        if failed:
            assert cause is not None
            raise Unpublished(failed, cause) from cause

    def _enqueue(self, events: list[AlertEvent]) -> None:
        """Hand events to the one delivery task: in order, retried with backoff, and
        without making the stream wait for Alertmanager."""
        if self.alertmanager is None or not events:
            return
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.create_task(self._deliver_forever())
        self._to_alertmanager.put_nowait(events)

    async def _deliver_forever(self) -> None:
        assert self.alertmanager is not None
        while True:
            events = await self._to_alertmanager.get()
            try:
                await self.alertmanager.send(events)
                metrics.ALERT_DELIVERIES.labels("alertmanager", "delivered").inc(len(events))
            except Exception as exc:  # the topic has the alert; count the failed delivery
                metrics.ALERT_DELIVERIES.labels("alertmanager", "failed").inc(len(events))
                log.error("alert delivery to Alertmanager failed: %s", exc)

    async def publish(self, events: list[AlertEvent]) -> None:
        """The one publish path, for the theatre stage too (alert topic, metrics,
        Alertmanager)."""
        await self._publish(events)

    def refresh_gauge(self) -> None:
        self._refresh_gauge()

    def _refresh_gauge(self) -> None:
        metrics.ALERTS_FIRING.clear()
        owned = self.owned_partitions()
        counts: dict[tuple[str, str], int] = {}
        theatre_rules = {r.name for r in self.rules.theatre_fatality_rules}
        for zone, state in self.states.items():
            if self.partition_of.get(zone) not in owned:
                continue
            for r in self.rules.rules:
                if r.name not in theatre_rules:
                    counts.setdefault((r.name, zone), 0)
            for alert in state.firing():
                counts[(alert.rule, zone)] = counts.get((alert.rule, zone), 0) + 1
        theatre = self.theatre_firing()
        if theatre is not None:  # this worker evaluates the theatre: zone label `theatre`
            for r in self.rules.theatre_fatality_rules:
                counts.setdefault((r.name, THEATRE), 0)
            for alert in theatre:
                counts[(alert.rule, THEATRE)] = counts.get((alert.rule, THEATRE), 0) + 1
        for (rule, zone), n in counts.items():
            metrics.ALERTS_FIRING.labels(rule, zone).set(n)

    def holds_its_partitions(self) -> bool:
        return self.ready.is_set() and not self.theatre_recovering()

    def knows_resolved(self) -> bool:
        return self.history.caught_up

    def alerts(self, status: str) -> list[dict[str, Any]]:
        """Firing: this worker's zones' alerts, from their state. Resolved: the latest
        resolved events on the alert topic, whoever published them."""
        out: list[dict[str, Any]] = []
        if status in ("firing", "all"):
            owned = self.owned_partitions()
            for zone, state in self.states.items():
                if self.partition_of.get(zone) in owned:
                    out.extend(a.model_dump(mode="json") for a in state.firing())
            out.extend(a.model_dump(mode="json") for a in self.theatre_firing() or [])
        if status in ("resolved", "all"):
            out.extend(a.model_dump(mode="json") for a in self.history.latest())
        return out
