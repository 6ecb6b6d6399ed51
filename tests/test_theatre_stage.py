"""The alert stage's forwarding and the theatre stage on in-memory fakes: what the zones send,
what the theatre counts across replays and recoveries of either stage, and an outbox a dead
owner left. No broker: milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from alerting.rules import THEATRE, parse_rules
from alerting.theatre import FatalChange
from schemas.alert import AlertEvent
from streams.config import Settings
from streams.pipeline import alert_outbox
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports
from streams.pipeline.theatre_stage import OUTBOX_KEY, TheatreStage
from tests.fakes import FakeProducer, fail_next_write
from tests.test_alert_state import Run, incident, recovered, retract

pytestmark = pytest.mark.timeout(30)

RULES = parse_rules(
    """
rules:
  - name: casualties
    kind: incident
    match: {min_casualties: 1}
    severity: high
  - name: theatre-peak
    kind: fatality_peak
    scope: theatre
    window: 2d
    lookback: 2d
    minimum: 2
    severity: high
"""
)
THEATRE_TOPIC = Settings().theatre_topic
CHANGELOG = "theatre-state-changelog"
OBSERVED = datetime.now(UTC) - timedelta(days=10)  # imported history: the lookback observed


class Theatre:
    """A theatre stage owning the one partition, fed with what the alert stage sent."""

    def __init__(self, changelog: list[Any] | None = None) -> None:
        self.settings = Settings(observed_since=OBSERVED)
        self.producer = FakeProducer()
        self.published: list[AlertEvent] = []
        self.dead: list[DeadRecord] = []
        self.offset = 0

        async def producer() -> Any:
            return self.producer

        async def partitions_of(topic: str) -> list[int]:
            return [0]

        async def dead_letter(
            topic: str, records: Sequence[DeadRecord], reason: str, keys: Any = None
        ) -> None:
            self.dead.extend(records)

        async def publish(events: list[AlertEvent]) -> None:
            self.published.extend(events)

        table = SimpleNamespace(
            changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG),
            on_recover=lambda cb: cb,
        )
        app = SimpleNamespace(
            topic=lambda name, **_: name,
            Table=lambda name, **_: table,
            agent=lambda topic, name: lambda fn: fn,
            timer=lambda seconds, **_: lambda fn: fn,
        )
        ports = Ports(
            settings=self.settings,
            app=app,  # type: ignore[arg-type]
            producer=producer,
            partitions_of=partitions_of,
            dead_letter=dead_letter,
            readiness_changed=lambda: None,
        )
        self.stage = TheatreStage(ports, RULES, publish=publish)
        if changelog is not None:
            self.producer.sent[CHANGELOG] = list(changelog)
        self.stage.restore({0: recovered(self.producer.sent[CHANGELOG])})
        self.stage.owned = {0}
        self.stage.ready.set()

    async def feed(self, sent: list[tuple[int | None, bytes | None, bytes | None]]) -> None:
        for _, _, value in sent:
            assert value is not None
            await self.stage._apply([Record(0, self.offset, value)])
            self.offset += 1

    def value(self) -> float | None:
        firing = self.stage.firing() or []
        return firing[0].value if firing else None


def five_days_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The theatre stage's clock five days on (the peak's window and lookback past)."""
    from streams.pipeline import theatre_stage

    later = datetime.now(UTC) + timedelta(days=5)

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return later

    monkeypatch.setattr(theatre_stage, "datetime", Later)


def sent_to_theatre(run: Run) -> list[tuple[int | None, bytes | None, bytes | None]]:
    return run.producer.sent.pop(THEATRE_TOPIC, [])


def test_zones_to_theatre_exactly_once_across_replays_and_recoveries() -> None:
    async def go() -> None:
        zones = Run()
        zones.stage.rules = RULES
        await zones.start()
        a = incident("shusha", 1, killed=1, severity="critical")
        b = incident("loc-east", 1, killed=1, severity="critical")
        await zones.step(a, b, incident("shusha", 0.5))  # the last one killed nobody
        first = sent_to_theatre(zones)
        assert sorted(FatalChange.decode(v or b"").key for _, _, v in first) == [
            f"loc-east\x1f{b.incident_id}",
            f"shusha\x1f{a.incident_id}",
        ]
        assert {p for p, _, _ in first} == {0}  # the one partition
        th = Theatre()
        await th.feed(first)
        assert [(e.rule, e.labels, e.value) for e in th.published] == [
            ("theatre-peak", {"zone": THEATRE}, 2.0)
        ]
        # Replayed (a step redone after a crash): counted once, fires nothing new.
        await th.feed(first)
        assert th.value() == 2.0 and len(th.published) == 1
        # The alert stage recovers (a rebalance): it sends its zones' ledgers again.
        again = Run()
        again.stage.rules = RULES
        again.producer.sent = zones.producer.sent
        await again.start()
        await again.stage._tick()
        resent = sent_to_theatre(again)
        assert len(resent) == 2
        await th.feed(resent)
        assert th.value() == 2.0 and len(th.published) == 1
        # One zone's incident is merged away: it leaves the theatre's figure.
        await again.step(retract("shusha", a.incident_id))
        gone = sent_to_theatre(again)
        assert [FatalChange.decode(v or b"").killed for _, _, v in gone] == [0]
        await th.feed(gone)
        assert th.value() is None  # below the 2 it beat: resolved on the next evaluation
        assert [e.status for e in th.published] == ["firing", "resolved"]
        # Every hour the ledgers go again: the one fatal incident left, counted once.
        again.stage._ledgers_sent -= 3601
        await again.stage._tick()
        hourly = sent_to_theatre(again)
        assert [FatalChange.decode(v or b"").incident_id for _, _, v in hourly] == [b.incident_id]
        await th.feed(hourly)
        assert th.stage.state is not None and sum(th.stage.state.daily().values()) == 1
        # The theatre stage's own changelog recovers the same state, offset and no outbox.
        log = th.producer.sent[CHANGELOG]
        recovered_theatre = Theatre(log)
        assert recovered_theatre.stage.state is not None and th.stage.state is not None
        assert recovered_theatre.stage.state.parts() == th.stage.state.parts()
        assert recovered(log).applied == th.offset - 1
        assert recovered_theatre.stage._outbox is None

    asyncio.run(go())


def test_an_outbox_a_dead_owner_left_is_published_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        th = Theatre()
        day = int(datetime.now(UTC).timestamp() // 86_400)
        changes = [FatalChange("shusha", "x", day, 1), FatalChange("loc-east", "y", day, 2)]
        await th.feed([(0, c.key.encode(), c.encode()) for c in changes])
        assert len(th.published) == 1
        log = th.producer.sent[CHANGELOG]
        # The owner died after writing the step (outbox, parts, offset), before publishing.
        assert log[-1][1:] == (OUTBOX_KEY, None)  # confirmed: the outbox's tombstone
        torn = log[:-1]

        async def nothing_on_the_topic(*_: Any, **__: Any) -> dict[Any, Any]:
            return {}

        monkeypatch.setattr(alert_outbox, "read_partitions", nothing_on_the_topic)
        heir = Theatre(torn)
        assert heir.stage._outbox is not None
        assert heir.stage.unsettled()  # the recovery settles before the stage is ready
        await heir.stage.settle()
        assert not heir.stage.unsettled()
        assert [e.alert_id for e in heir.published] == [th.published[0].alert_id]
        assert heir.stage._outbox is None
        assert (0, OUTBOX_KEY, None) in heir.producer.sent[CHANGELOG][len(torn) :]
        assert Theatre(heir.producer.sent[CHANGELOG]).stage._outbox is None
        await heir.stage._tick()  # settled once
        assert len(heir.published) == 1
        # Torn worse: only the outbox reached the changelog, not the parts or the offset.
        # The heir redoes the step, which fires the same event: published once all the same.
        outbox_only = [r for r in log if r[1] == OUTBOX_KEY and r[2] is not None]
        torn_heir = Theatre(outbox_only)
        await torn_heir.feed([(0, c.key.encode(), c.encode()) for c in changes])
        assert [e.alert_id for e in torn_heir.published] == [th.published[0].alert_id]
        assert torn_heir.value() == 3.0
        # An undecodable record is dead-lettered, never applied.
        await heir.feed([(0, None, b"not a change")])
        assert len(heir.dead) == 1

    asyncio.run(go())


def test_a_clock_step_whose_write_failed_publishes_at_the_next_tick(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The clock resolves the peak days later; its commit fails (the broker away): the
    failure is logged, nothing published, and the next tick writes and publishes that
    resolution, once."""

    async def go() -> None:
        th = Theatre()
        day = int(datetime.now(UTC).timestamp() // 86_400)
        changes = [FatalChange("shusha", "x", day, 1), FatalChange("loc-east", "y", day, 2)]
        await th.feed([(0, c.key.encode(), c.encode()) for c in changes])
        assert [e.status for e in th.published] == ["firing"]

        five_days_on(monkeypatch)
        store = th.stage.store
        original = store.write
        failures = [1]

        async def flaky(*args: Any, **kwargs: Any) -> None:
            if failures[0]:
                failures[0] -= 1
                raise ConnectionError("broker away")
            await original(*args, **kwargs)

        monkeypatch.setattr(store, "write", flaky)
        await th.stage._tick()
        assert [e.status for e in th.published] == ["firing"]
        assert "maintenance failed" in caplog.text
        await th.stage._tick()
        assert [e.status for e in th.published] == ["firing", "resolved"]
        await th.stage._tick()
        assert [e.status for e in th.published] == ["firing", "resolved"]
        # and what was written recovers to no firing alert and no outbox
        heir = Theatre(th.producer.sent[CHANGELOG])
        assert heir.stage._outbox is None and heir.stage.state is not None
        assert heir.stage.state.firing() == []

    asyncio.run(go())


def test_a_tombstone_that_failed_after_publishing_publishes_nothing_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step is written and its event published; the outbox's tombstone fails. The
    retried step writes the tombstone only; a clock step's failed tombstone is carried by
    the next write. Each event is published once, and nothing is left to settle."""

    async def go() -> None:
        th = Theatre()
        day = int(datetime.now(UTC).timestamp() // 86_400)
        changes = [FatalChange("shusha", "x", day, 1), FatalChange("loc-east", "y", day, 2)]
        first = Record(0, 0, changes[0].encode())
        second = Record(0, 1, changes[1].encode())
        await th.stage._apply([first])
        fail_next_write(th.stage, after=1, method="write")  # the step's write, then its tombstone
        with pytest.raises(ConnectionError):
            await th.stage._apply([second])
        assert [e.status for e in th.published] == ["firing"]
        await th.stage._apply([second])  # the stage input's retry
        assert [e.status for e in th.published] == ["firing"]
        assert th.producer.sent[CHANGELOG][-1][1:] == (OUTBOX_KEY, None)

        five_days_on(monkeypatch)
        fail_next_write(th.stage, after=1, method="write")
        await th.stage._tick()  # resolves; published; its tombstone fails
        assert [e.status for e in th.published] == ["firing", "resolved"]
        assert Theatre(th.producer.sent[CHANGELOG]).stage._outbox is not None
        await th.stage._tick()  # the next write: the tombstone, not the event
        assert [e.status for e in th.published] == ["firing", "resolved"]
        assert Theatre(th.producer.sent[CHANGELOG]).stage._outbox is None

    asyncio.run(go())


def test_a_failed_recovery_is_retried_until_the_stage_is_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust runs a table's recovery callback in a task it awaits with `asyncio.wait`, which
    drops what it raises: a recovery that failed once (the broker away for a moment) left
    the stage not ready, its partitions unread, until the next rebalance."""
    from streams.pipeline import stage as stage_module
    from streams.store.changelog import Recovered

    monkeypatch.setattr(stage_module, "RECOVERY_RETRY_FIRST_SECONDS", 0.01)

    async def go() -> None:
        th = Theatre()
        st = th.stage
        st.owned_partitions = lambda: {0}  # type: ignore[method-assign]
        calls: list[int] = []

        async def flaky(partitions: Any) -> dict[int, Recovered]:
            calls.append(len(calls))
            if len(calls) <= 2:
                raise ConnectionError("the broker is away for a moment")
            return {0: recovered(th.producer.sent.get(CHANGELOG, []))}

        st.store.recover = flaky  # type: ignore[method-assign]
        st.revoked()
        # as Faust's Recovery.on_recovery_completed calls it
        await asyncio.wait([asyncio.ensure_future(st._on_recovered())])
        assert not st.ready.is_set()
        await asyncio.wait_for(st.ready.wait(), timeout=5)
        assert len(calls) == 3 and st.owned == {0}

        # a revocation while retrying ends the retries: the next recovery is Faust's
        calls.clear()

        async def down(partitions: Any) -> dict[int, Recovered]:
            calls.append(len(calls))
            raise ConnectionError("down")

        st.store.recover = down  # type: ignore[method-assign]
        st.revoked()
        await st._on_recovered()
        await asyncio.sleep(0.05)
        st.revoked()
        tried = len(calls)
        await asyncio.sleep(0.3)
        assert len(calls) == tried and not st.ready.is_set()

    asyncio.run(go())
