"""The theatre stage: `fatality_peak` rules with `scope: theatre` over all zones together.

A worker's alert stage holds only the zones of its partitions, so the theatre's figures
are gathered in one place: the alert stage sends each change of a zone's fatality ledger
(`alerting.theatre.FatalChange`: the latest entry of one incident of one zone, never a
difference) to `ceasefire.fatalities.theatre`, a topic of one partition, before it writes
the step that made the change; after each of its recoveries it sends its zones' whole
ledgers again. Whichever worker owns that one partition evaluates the theatre
(`alerting/theatre.py`) with its state in the changelog of the table `theatre-state`, as
parts (`m` the clock and `since`, `f<zone>\\x1f<id>` each fatal incident, `p<rule>` the day
a rule last fired, `a<fingerprint>` each firing alert), written as they change.

Exact. The ledger takes the latest value per (zone, incident), so a change heard twice (a
step redone after a crash, a ledger sent again after a rebalance) counts once, and one
zone's changes come in order from the one owner of its partition. A new owner of the
theatre partition rebuilds the state from the changelog to its exact end and continues
from the input offset it covers (the store machinery of every stage: `stage.py`).

Once. A step that fires writes its events as an outbox (`\\x00outbox`) with the changed
parts and the input offset, publishes them through the alert stage's one publish path
(alert topic, `ceasefire_alerts_total`, Alertmanager), then tombstones the outbox. A new
owner that finds an outbox publishes only the events not on the alert topic yet, before it
is ready (`settle`; a step's commit settles it too, should the stage take input first).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerting.rules import RuleSet
from alerting.theatre import FatalChange, TheatreState, evaluate
from alerting.times import to_ms
from schemas.alert import AlertEvent
from streams.pipeline.alert_outbox import Unpublished, not_on_alert_topic, unpublished_only
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports, Stage
from streams.pipeline.tables import THEATRE_TABLE
from streams.pipeline.timers import every
from streams.store.changelog import Recovered

log = logging.getLogger(__name__)

#: The one partition of the theatre topic.
PARTITION = 0
OUTBOX_KEY = b"\x00outbox"
TICK_SECONDS = 5.0

Publish = Callable[[list[AlertEvent]], Awaitable[None]]


@dataclass(slots=True)
class TheatreOutput:
    events: list[AlertEvent] = field(default_factory=list)
    dead: list[DeadRecord] = field(default_factory=list)
    #: the events are published: a retried commit (its tombstone failed) writes that only
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class Outbox:
    written_ms: int
    events: list[AlertEvent]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "written_ms": self.written_ms,
                "events": [e.model_dump(mode="json") for e in self.events],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Outbox:
        try:
            doc = json.loads(raw)
            events = [AlertEvent.model_validate(e) for e in doc["events"]]
            return cls(int(doc["written_ms"]), events)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed theatre outbox: {exc!r}") from None


def restore_state(
    rec: Recovered, observed_since: datetime | None, now_ms: int
) -> tuple[TheatreState, Outbox | None, set[str]]:
    """The theatre state a changelog partition holds, its unconfirmed outbox, and the parts
    to write (when observation began, on a first start). Unreadable entries are skipped."""
    parts: dict[str, Any] = {}
    outbox: Outbox | None = None
    for key, value in rec.entries:
        try:
            if key == OUTBOX_KEY:
                outbox = Outbox.decode(value)
            elif not key.startswith(b"\x00"):
                parts[key.decode()] = json.loads(value)
        except ValueError as exc:
            log.error("skipping unreadable theatre-state entry %r: %s", key, exc)
    try:
        state = TheatreState.from_parts(parts)
    except ValueError as exc:
        log.error("the theatre state is unreadable, starting afresh: %s", exc)
        state = TheatreState()
    dirty: set[str] = set()
    since = to_ms(observed_since.astimezone(UTC)) if observed_since is not None else None
    if since is not None and state.since != since:
        state.since = since  # configured (imported history): it wins
        dirty.add("m")
    elif state.since is None:
        state.since = now_ms  # the first start: observation begins now
        dirty.add("m")
    return state, outbox, dirty


class TheatreStage(Stage[TheatreOutput]):
    def __init__(
        self,
        ports: Ports,
        rules: RuleSet,
        *,
        publish: Publish,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        s = ports.settings
        super().__init__(
            ports,
            topic=s.theatre_topic,
            table=THEATRE_TABLE,
            agent="evaluate-theatre",
            partitions=1,
        )
        self.rules = rules
        self._publish = publish
        self._changed = changed
        self.state: TheatreState | None = None
        #: parts changed in memory, not written yet (kept over a failed write)
        self._dirty: set[str] = set()
        #: an outbox a previous owner did not confirm
        self._outbox: Outbox | None = None
        #: events of a step whose commit failed: the next step's commit (a tick's or an
        #: input's) writes and publishes them with its own, as the alert stage does
        self._carry: list[AlertEvent] = []
        #: the outbox's tombstone failed after its events were published: the next write
        #: carries it (a recovery in between finds them on the alert topic and sends none)
        self._tombstone_due = False
        #: (alert id, status) of the events of outboxes settled since the recovery: a step
        #: redone after a torn write (the outbox written, not the parts) fires them again
        self._settled: set[tuple[str, str]] = set()
        every(ports.app, TICK_SECONDS, self._tick)

    # -- the stage ---------------------------------------------------------------------------
    def restore(self, partitions: dict[int, Recovered]) -> None:
        self._carry = []
        self._tombstone_due = False
        self._settled = set()
        rec = partitions.get(PARTITION)
        if rec is None:
            self.state, self._outbox, self._dirty = None, None, set()
            return
        observed = self.ports.settings.observed_since
        self.state, self._outbox, self._dirty = restore_state(
            rec, observed, int(time.time() * 1000)
        )
        log.info(
            "theatre state recovered: %d fatal incidents, %d firing alerts",
            len(self.state.ledger.incidents),
            len(self.state.active),
        )

    def _set_ready(self) -> None:
        super()._set_ready()
        self._changed()  # the gauge of firing alerts: this worker evaluates the theatre or not

    def unsettled(self) -> bool:
        return self._outbox is not None

    async def settle(self) -> None:
        generation = self.generation
        async with self.lock:
            if generation == self.generation:
                await self._settle()

    def new_output(self) -> TheatreOutput:
        return TheatreOutput()

    def process(self, records: Sequence[Record], out: TheatreOutput) -> None:
        state = self.state
        if state is None:
            return  # not owned (a stale delivery): the owner applies it
        changes: list[FatalChange] = []
        for r in records:
            try:
                changes.append(FatalChange.decode(r.value or b""))
            except ValueError as exc:
                out.dead.append((r.partition, r.offset, r.value or b"", str(exc)))
        changed = state.apply(changes)
        out.events = evaluate(self.rules, state, datetime.now(UTC), changed=changed)
        self._dirty |= state.changed()

    async def commit(self, out: TheatreOutput, applied: dict[int, int]) -> None:
        """Write the outbox (the events) and the changed parts, then publish the events and
        delete the outbox. Revoked meanwhile, it publishes nothing (`Revoked`): the next owner
        publishes the outbox if it read it (`settle`), and redoes the step otherwise."""
        ports = self.ports
        generation = self.generation
        if out.dead:
            await ports.dead_letter(ports.settings.theatre_topic, out.dead, "invalid_value")
            out.dead = []
        state = self.state
        if state is None:
            return
        if out.confirmed:  # retried after the tombstone failed: written and published
            await self.store.write(PARTITION, [(OUTBOX_KEY, None)])
            self._tombstone_due = False
            return
        await self._settle()
        self.check_owned(generation)
        if self._settled:  # a step redone after a torn write fires what the outbox held: once
            out.events = [e for e in out.events if (e.alert_id, e.status) not in self._settled]
        if self._carry:
            out.events = [*self._carry, *(e for e in out.events if e not in self._carry)]
        self._carry = out.events
        entries: list[tuple[bytes, bytes | None]] = []
        if out.events:
            entries.append((OUTBOX_KEY, Outbox(int(time.time() * 1000), out.events).encode()))
        elif self._tombstone_due:
            entries.append((OUTBOX_KEY, None))
        for part in sorted(self._dirty):
            value = state.part(part)
            entries.append((part.encode(), None if value is None else json.dumps(value).encode()))
        if entries or PARTITION in applied:
            # (In order: a part landing without the outbox was a fired alert whose event no
            # recovery would publish.)
            await self.store.write(PARTITION, entries, applied.get(PARTITION))
        self.check_owned(generation)
        self._dirty = set()
        self._tombstone_due = False
        if out.events:
            try:
                await self._publish(out.events)
            except Unpublished as failed:  # the retry publishes only what is not on the topic
                out.events = self._carry = unpublished_only(out.events, failed)
                raise
            # Published: confirmed. Should the tombstone fail now, the next write carries
            # it, never these events again.
            self._carry = []
            out.confirmed = self._tombstone_due = True
            await self.store.write(PARTITION, [(OUTBOX_KEY, None)])
            self._tombstone_due = False

    def committed(self, out: TheatreOutput) -> None:
        if out.events:
            self._changed()

    # -- the clock, the outbox --------------------------------------------------------------
    async def _tick(self) -> None:
        await self.maintain(self._clock)

    def _clock(self, out: TheatreOutput) -> bool:
        """The clock's step (under the lock): alerts resolved and peaks aged out by time.
        Whether there is anything to write: a clock that moved alone waits for the next
        write; events a failed commit left, or an outbox, do not."""
        state = self.state
        if state is None:
            return False
        out.events = evaluate(self.rules, state, datetime.now(UTC), changed=False)
        self._dirty |= state.changed()
        return bool(
            out.events
            or self._carry
            or self._tombstone_due
            or self._outbox is not None
            or self._dirty - {"m"}
        )

    async def _settle(self) -> None:
        """Publish what a previous owner committed to but did not confirm: its outbox's
        events not on the alert topic yet; remember them (`_settled`)."""
        box = self._outbox
        if box is None:
            return
        generation = self.generation
        missing = await not_on_alert_topic(
            self.ports.settings, self.ports.partitions_of, box.events, box.written_ms
        )
        if generation != self.generation:
            return  # revoked while reading: the next owner publishes them, once
        log.warning(
            "theatre outbox: %d events, publishing the %d not on the alert topic",
            len(box.events),
            len(missing),
        )
        if missing:
            await self._publish(missing)
        await self.store.write(PARTITION, [(OUTBOX_KEY, None)])
        self._outbox = None
        self._settled |= {(e.alert_id, e.status) for e in box.events}

    # -- views ------------------------------------------------------------------------------
    def recovering(self) -> bool:
        """Whether this worker was assigned the theatre and has not recovered it yet (its
        firing alerts are not known here until it has)."""
        return PARTITION in self.owned_partitions() and not self.ready.is_set()

    def firing(self) -> list[AlertEvent] | None:
        """The theatre's firing alerts when this worker evaluates the theatre, else None."""
        if self.state is None or PARTITION not in self.owned or not self.ready.is_set():
            return None
        return self.state.firing()
