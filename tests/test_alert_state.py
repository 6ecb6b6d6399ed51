"""The alert stage on in-memory fakes: a step writes what it changed (bytes per step do not
grow with the state held), and what was written recovers the state exactly, also after
retractions, resolutions and a step torn part-way; failed writes of a step and of the clock
publish each event once; an outbox a dead owner left is settled before the stage is ready.
No broker: milliseconds."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.rules import parse_rules
from alerting.zone_state import ZoneState
from schemas.codes import Severity
from schemas.incident import Incident
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.metrics import REGISTRY
from streams.pipeline import alert_outbox, alert_state
from streams.pipeline.alert_state import (
    COMPRESSED_JOURNAL,
    JOURNAL_KEY,
    SINCE_KEY,
    Outbox,
    changes_of,
    encode_journal,
    encode_record,
    restore,
)
from streams.pipeline.alerting_stage import AlertStage
from streams.pipeline.progress import Record
from streams.pipeline.stage import Ports
from streams.store.changelog import APPLIED_KEY, Recovered
from tests.fakes import KAFKA_LIMIT, FakeProducer, fail_next_write

pytestmark = pytest.mark.timeout(60)

CHANGELOG = "alert-state-changelog"
ZONES = ZoneCatalogue.load()
RULES = parse_rules(
    """
rules:
  - name: casualties
    kind: incident
    match: {min_casualties: 1}
    severity: high
    hold: 1s
    max_age: 30d
  - name: surge
    kind: threshold
    window: 2d
    threshold: 5
    group_by: [zone, party]
    severity: high
  - name: quiet
    kind: quiet_broken
    quiet: 2h
    match: {category: [heavy_weapons_fire]}
    severity: medium
""",
    source="test.yaml",
)
_ids = itertools.count(1)


def fake_stage(producer: FakeProducer, dead: list[Any] | None = None) -> AlertStage:
    """`dead`: where dead-lettered records go (None: none is expected)."""
    s = Settings()

    async def started() -> FakeProducer:
        return producer

    async def partitions_of(topic: str) -> list[int]:
        return [0]

    async def dead_letter(topic: str, records: Any, reason: str, keys: Any = None) -> None:
        if dead is None:
            raise AssertionError("nothing is dead-lettered here")
        dead.extend((topic, reason, r) for r in records)

    table = SimpleNamespace(
        changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG),
        on_recover=lambda cb: cb,
        send_changelog=lambda p, k, v: producer.sent[CHANGELOG].append((p, k, v)),
    )
    app = SimpleNamespace(
        topic=lambda name, **_: name,
        Table=lambda name, **_: table,
        agent=lambda topic, name: lambda fn: fn,
        timer=lambda seconds, **_: lambda fn: fn,
        task=lambda fn: fn,
        assignor=SimpleNamespace(assigned_actives=lambda: {TopicPartition(s.zone_packs_topic, 0)}),
    )
    ports = Ports(
        settings=s,
        app=app,  # type: ignore[arg-type]
        producer=started,  # type: ignore[arg-type]
        partitions_of=partitions_of,
        dead_letter=dead_letter,
        readiness_changed=lambda: None,
    )
    stage = AlertStage(ports, ZONES.ids)
    stage.rules = RULES
    return stage


def recovered(sent: list[tuple[int | None, bytes | None, bytes | None]]) -> Recovered:
    """What `ChangelogStore.recover` makes of one partition's records."""
    rec = Recovered()
    latest: dict[bytes, bytes | None] = {}
    for _, key, value in sent:
        assert key is not None
        rec.read += 1
        if key == APPLIED_KEY:
            rec.applied = int(value or b"-1")
            continue
        latest.pop(key, None)
        latest[key] = value
    rec.entries = [(k, v) for k, v in latest.items() if v is not None]
    return rec


def view(states: dict[str, ZoneState], clock: bool = True) -> dict[str, dict[str, Any]]:
    return {
        zone: {k: v for k, v in state.parts().items() if clock or k != "m"}
        for zone, state in states.items()
    }


def incident(zone: str, hours_ago: float, **changes: Any) -> Incident:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    doc: dict[str, Any] = {
        "incident_id": f"inc-{next(_ids)}",
        "report_id": "r",
        "source": "pkf-op-1",
        "source_type": "observation_post",
        "occurred_at": at,
        "reported_at": at,
        "received_at": at,
        "zone": zone,
        "lat": 39.76,
        "lon": 46.75,
        "category": "small_arms_fire",
        "provision": "complete ceasefire",
        "perpetrator": "az",
        "target": "am",
        "killed": 0,
        "wounded": 0,
        "severity": "medium",
        "verification": "observed",
    }
    return Incident.model_validate(doc | changes)


def retract(zone: str, incident_id: str, merged_into: str | None = None) -> bytes:
    doc = {"kind": "retract", "incident_id": incident_id, "zone": zone}
    return json.dumps(doc | ({} if merged_into is None else {"merged_into": merged_into})).encode()


class Run:
    """One stage over partition 0 of the zone packs, fed step by step."""

    def __init__(self, dead: list[Any] | None = None) -> None:
        self.producer = FakeProducer()
        self.stage = fake_stage(self.producer, dead)
        self.offset = 0

    @classmethod
    async def of(cls, log: list[tuple[int | None, bytes | None, bytes | None]]) -> Run:
        """A stage that recovers from the changelog `log` (written by another), started."""
        run = cls()
        run.producer.sent[CHANGELOG] = list(log)
        await run.start()
        return run

    async def start(self, *, settled: bool = True) -> None:
        """Recover from what was written, and settle (a new partition's observation
        start is written), as after an assignment (`settled`: until the stage is ready)."""
        self.stage.store.recover = self._recover  # type: ignore[method-assign]
        await self.stage._on_recovered()
        if settled:
            await asyncio.wait_for(self.stage.ready.wait(), 5)

    async def _recover(self, partitions: Any) -> dict[int, Recovered]:
        return {0: recovered(self.changelog())}

    def changelog(self) -> list[tuple[int | None, bytes | None, bytes | None]]:
        return list(self.producer.sent[CHANGELOG])

    async def step(self, *docs: Incident | bytes) -> int:
        """Apply one pack; returns the changelog bytes it wrote."""
        before = len(self.producer.sent[CHANGELOG])
        raw = [d if isinstance(d, bytes) else d.model_dump_json().encode() for d in docs]
        await self.stage._apply([Record(0, self.offset, b"\n".join(raw))])
        self.offset += 1
        return sum(
            len(k or b"") + len(v or b"") for _, k, v in self.producer.sent[CHANGELOG][before:]
        )


def test_bytes_written_per_step_do_not_grow_with_the_state_held() -> None:
    async def run() -> None:
        written: dict[int, int] = {}
        whole: dict[int, int] = {}
        for held in (100, 400, 1500):  # each above the alert's cap of incident ids
            r = Run()
            await r.start()
            for start in range(0, held, 100):  # spread over 40 h, in packs of 100
                await r.step(
                    *(
                        incident("shusha", 40 * (held - i) / held)
                        for i in range(start, start + 100)
                        if i < held
                    )
                )
            assert len(r.stage.states["shusha"].incidents) == held
            written[held] = await r.step(incident("shusha", 0.01))
            whole[held] = len(encode_record(r.stage.states["shusha"], None))
        # the state held grew 15-fold, the bytes of a step did not
        assert whole[1500] > 10 * whole[100]
        assert max(written.values()) - min(written.values()) < 100, written
        assert written[1500] < whole[1500] / 50, (written, whole)

    asyncio.run(run())


def test_what_was_written_recovers_the_state_after_retractions_and_resolutions() -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        burst = [incident("shusha", 1 + i / 10, perpetrator="am") for i in range(6)]
        death = incident("lachin-corridor", 0.5, killed=2, severity="critical")
        await r.step(*burst, death, incident("shusha", 0.2, category="heavy_weapons_fire"))
        assert {a.rule for s in r.stage.states.values() for a in s.firing()} == {
            "surge",
            "casualties",
        }
        # two of the burst merged away: the surge resolves on the next step
        await r.step(
            retract("shusha", burst[0].incident_id), retract("shusha", burst[1].incident_id)
        )
        await r.step(incident("shusha", 0.1, category="heavy_weapons_fire"))
        assert {a.rule for a in r.stage.states["shusha"].firing()} == set()
        await asyncio.sleep(1.1)  # the casualties alert's hold passes: the clock resolves it
        await r.stage._tick()
        assert not r.stage.states["lachin-corridor"].firing()
        again = await Run.of(r.changelog())
        assert view(again.stage.states) == view(r.stage.states)
        assert again.stage.input.progress.applied == {0: r.offset - 1}

    asyncio.run(run())


def test_a_merge_s_retraction_hands_its_alerts_to_the_incident_it_was_merged_into() -> None:
    """The stage reads `merged_into` from the zone stage's retraction: an alert whose
    incident was merged into one whose own alert had resolved stays firing, with the
    survivor (it resolved: the survivor's new version was no new match)."""

    async def run() -> None:
        r = Run()
        await r.start()
        survivor = incident("shusha", 2, killed=1, severity="critical")
        await r.step(survivor)
        await asyncio.sleep(1.1)  # its alert's hold passes: the clock resolves it
        await r.stage._tick()
        assert not r.stage.states["shusha"].firing()
        fresh = incident("shusha", 0.2, killed=1, severity="critical")
        await r.step(fresh)
        [alert] = r.stage.states["shusha"].firing()
        grown = survivor.model_copy(update={"wounded": 3})  # the fresh one's reports joined it
        await r.step(retract("shusha", fresh.incident_id, survivor.incident_id), grown)
        [held] = r.stage.states["shusha"].firing()
        assert (held.alert_id, held.incident_ids) == (alert.alert_id, [survivor.incident_id])

    asyncio.run(run())


def test_a_step_of_several_packs_takes_the_last_word_on_each_incident() -> None:
    """Packs of several zone-stage steps in one step: an incident's first version had won
    over its later one, and one opened then retracted stayed counted."""

    async def run() -> None:
        r = Run()
        await r.start()
        quiet = incident("shusha", 0.5)
        dead = quiet.model_copy(update={"killed": 1, "severity": Severity.CRITICAL})
        gone = incident("shusha", 0.4, killed=2, severity="critical")
        pack = [quiet.model_dump_json().encode(), gone.model_dump_json().encode()]
        later = [dead.model_dump_json().encode(), retract("shusha", gone.incident_id)]
        await r.stage._apply(
            [Record(0, r.offset, b"\n".join(pack)), Record(0, r.offset + 1, b"\n".join(later))]
        )
        r.offset += 2
        state = r.stage.states["shusha"]
        assert [e.incident_id for e in state.incidents] == [quiet.incident_id]
        [alert] = state.firing()  # the death of the later version, not the retracted one's
        assert (alert.rule, alert.incident_ids) == ("casualties", [quiet.incident_id])

    asyncio.run(run())


def test_a_burst_in_one_step_is_heard_in_event_time_order() -> None:
    """Incidents of a burst in one step were heard in the step's order: a rule firing on
    the first of them (quiet-broken) named a later one, and the alert's `starts_at` and
    `alert_id` followed. The earliest first."""
    from alerting.alert_ids import alert_id_for

    async def run() -> None:
        r = Run()
        await r.start()
        burst = [incident("shusha", 0.1 * (8 - n), killed=1, severity="critical") for n in range(8)]
        await r.step(*reversed(burst))  # the latest first
        [alert] = [a for a in r.stage.states["shusha"].firing() if a.rule == "casualties"]
        assert alert.incident_ids[0] == burst[0].incident_id
        assert alert.alert_id == alert_id_for(alert.fingerprint, burst[0].incident_id)
        first = burst[0].occurred_at
        assert alert.starts_at == first.replace(microsecond=first.microsecond // 1000 * 1000)

    asyncio.run(run())


@pytest.mark.parametrize("compressed", [False, True])
def test_a_step_torn_part_way_recovers_from_its_journal(
    compressed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every prefix of the changelog recovers the state of the last step whose journal it
    holds: a worker dying between a journal and the parts loses nothing (with journals
    written compressed too, as large ones are)."""
    if compressed:
        monkeypatch.setattr(alert_state, "COMPRESS_ABOVE", 0)

    async def run() -> None:
        r = Run()
        await r.start()
        snapshots = [view(r.stage.states)]
        burst = [incident("shusha", 1 + i / 10) for i in range(6)]
        for pack in (burst[:3], [*burst[3:], incident("shusha", 0.3, killed=1)]):
            await r.step(*pack)
            snapshots.append(view(r.stage.states))
        await r.step(retract("shusha", burst[0].incident_id), incident("tavush", 0.2))
        snapshots.append(view(r.stage.states))
        log = r.changelog()
        written = [v for _, k, v in log if k == JOURNAL_KEY and v]
        assert all(v.startswith(COMPRESSED_JOURNAL) == compressed for v in written)
        journals = 0
        for cut in range(len(log) + 1):
            if cut and log[cut - 1][1] == JOURNAL_KEY and log[cut - 1][2] is not None:
                journals += 1
            states = restore({0: recovered(log[:cut])}).states
            assert view(states) == snapshots[journals], cut

    asyncio.run(run())


def test_a_step_of_thousands_of_incidents_writes_a_journal_the_broker_takes() -> None:
    """15,000 incidents over three zones of one partition (a backfill of a busy period)
    made a journal of 1.2 MB, over the producer's 1 MiB: the write failed on every retry
    and the partition stalled. Large journals are compressed, and the alert stage's steps
    hold at most 4,096 inputs (`AlertStage.STEP_RECORDS`), which keeps them under."""

    async def run() -> None:
        r = Run()
        await r.start()
        assert r.stage.input.step_records == AlertStage.STEP_RECORDS == 4096
        zones = ["shusha", "lachin-corridor", "tavush"]
        for n, count in enumerate((2000, 5000)):
            hours = 0.02 if n == 0 else 0.0
            pack = b"\n".join(
                incident(zone, hours + 0.00001 * i, incident_id=str(uuid.uuid4()))
                .model_dump_json()
                .encode()
                for zone in zones
                for i in range(count)
            )
            await r.stage._apply([Record(0, n, pack)])
        journals = [v for _, k, v in r.changelog() if k == JOURNAL_KEY and v]
        biggest = max(journals, key=len)
        assert biggest.startswith(COMPRESSED_JOURNAL)
        assert len(zlib.decompress(biggest[len(COMPRESSED_JOURNAL) :])) > KAFKA_LIMIT
        assert len(biggest) < KAFKA_LIMIT // 1.5
        again = await Run.of(r.changelog())
        assert view(again.stage.states) == view(r.stage.states)

    asyncio.run(run())


def test_a_whole_zone_record_of_before_is_read_and_replaced_by_parts() -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(*(incident("shusha", 1 + i / 10) for i in range(3)))
        state = r.stage.states["shusha"]
        old = Run()
        old.producer.sent[CHANGELOG] = [
            (0, SINCE_KEY, b"1"),
            (0, b"shusha", encode_record(state, Outbox(5, []))),
            (0, APPLIED_KEY, b"0"),
        ]
        await old.start()
        assert view(old.stage.states) == view(r.stage.states)
        # the record held an outbox: settling it before the stage is ready writes the
        # zone's parts and the record's tombstone
        latest = {k: v for _, k, v in old.changelog()}
        assert latest[b"shusha"] is None  # the whole record is gone, its parts written
        assert not old.stage._dirty
        await old.step(incident("shusha", 0.1))
        again = await Run.of(old.changelog())
        assert view(again.stage.states) == view(old.stage.states)

    asyncio.run(run())


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.lists(
                st.tuples(
                    st.sampled_from(["shusha", "tavush"]),
                    st.floats(0.01, 60),
                    st.sampled_from(["small_arms_fire", "heavy_weapons_fire"]),
                    st.sampled_from(["az", "am"]),
                    st.integers(0, 2),
                ),
                min_size=1,
                max_size=8,
            ),
        ),
        st.tuples(st.just("retract"), st.lists(st.integers(0, 50), min_size=1, max_size=4)),
        st.tuples(st.just("tick"), st.none()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_recovery_equals_the_state_after_any_sequence_of_steps(plan: list[Any]) -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        sent: list[Incident] = []
        for kind, arg in plan:
            if kind == "add":
                docs = [
                    incident(z, h, category=c, perpetrator=p, killed=k, severity="high")
                    for z, h, c, p, k in arg
                ]
                sent.extend(docs)
                await r.step(*docs)
            elif kind == "retract" and sent:
                await r.step(
                    *(
                        retract(sent[i % len(sent)].zone, sent[i % len(sent)].incident_id)
                        for i in arg
                    )
                )
            else:
                await r.stage._tick()
            again = await Run.of(r.changelog())
            # a clock that moved alone (a tick) is written with the zone's next change
            assert view(again.stage.states, clock=kind != "tick") == view(
                r.stage.states, clock=kind != "tick"
            )

    asyncio.run(run())


def test_an_unreadable_zone_is_skipped_and_its_entries_left_as_they_are() -> None:
    journal = encode_journal(1, [("shusha", "i1", None), ("shusha", "m", {"version": 9})], [])
    rec = Recovered(entries=[(b"shusha\x1fm", b"not json"), (JOURNAL_KEY, journal)])
    r = restore({0: rec})
    assert "shusha" not in r.states
    assert changes_of(r.states, r.dirty) == []  # nothing of it is written over


# -- the stage's lifecycle ------------------------------------------------------------------


def published(r: Run) -> list[tuple[str, str]]:
    return [
        (doc["rule"], doc["status"])
        for doc in (json.loads(v or b"") for _, _, v in r.producer.sent["ceasefire.alerts"])
    ]


def test_a_step_whose_write_failed_is_retried_and_publishes_each_alert_once() -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        fail_next_write(r.stage)
        pack = incident("shusha", 0.5, killed=1).model_dump_json().encode()
        with pytest.raises(ConnectionError):
            await r.stage._apply([Record(0, 0, pack)])
        assert published(r) == []
        assert r.stage._pending is not None  # the stage input retries the same records
        await r.stage._apply([Record(0, 0, pack)])
        assert r.stage._pending is None
        assert published(r) == [("casualties", "firing")]
        again = await Run.of(r.changelog())
        assert view(again.stage.states) == view(r.stage.states)
        assert again.stage.input.progress.applied == {0: 0}

    asyncio.run(run())


class OneAlertSendFails(FakeProducer):
    """The alert topic's `nth` send (from 0) is not acknowledged; the others are."""

    def __init__(self, nth: int) -> None:
        super().__init__()
        self.left = nth

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        if topic == "ceasefire.alerts":
            self.left -= 1
            if self.left == -1:
                failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                failed.set_exception(ConnectionError("request timed out"))
                return failed
        return await super().send(topic, value, key, partition)


def test_a_publish_that_failed_part_way_sends_again_only_what_was_not_acknowledged() -> None:
    """Two alerts of one step; the second's send fails. The retry re-sent both, so the first
    was on the topic twice and counted twice in ceasefire_alerts_total."""

    def counted() -> float:
        return sum(
            sample.value
            for family in REGISTRY.collect()
            for sample in family.samples
            if sample.name == "ceasefire_alerts_total" and sample.labels["rule"] == "casualties"
        )

    async def run() -> None:
        r = Run()
        r.producer = OneAlertSendFails(1)
        r.stage = fake_stage(r.producer)
        await r.start()
        before = counted()
        pack = b"\n".join(
            incident(zone, 0.5, killed=2, severity="critical").model_dump_json().encode()
            for zone in ("shusha", "lachin-corridor")
        )
        with pytest.raises(alert_outbox.Unpublished, match="request timed out"):
            await r.stage._apply([Record(0, 0, pack)])
        assert published(r) == [("casualties", "firing")]
        assert counted() - before == 1
        assert outbox_left(r)  # the one not acknowledged waits in the journal
        await r.stage._apply([Record(0, 0, pack)])  # the stage input's retry
        assert r.stage._pending is None
        zones = [
            json.loads(v or b"")["labels"]["zone"]
            for _, _, v in r.producer.sent["ceasefire.alerts"]
        ]
        assert sorted(zones) == ["lachin-corridor", "shusha"]
        assert counted() - before == 2
        assert not outbox_left(r)
        again = await Run.of(r.changelog())
        assert published(again) == []

    asyncio.run(run())


def test_a_rule_engine_fault_dead_letters_the_inputs_and_publishes_what_the_state_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault in the rule engine was dead-lettered as `invalid_value` ("not a record this
    monitor writes") at offset -1. And what the evaluation had done before failing stayed
    in the state written, unsaid: an alert it fired was later resolved on the topic without
    ever having fired there, one it resolved was deleted without a resolved event."""
    import streams.pipeline.alerting_stage as alerting_stage
    from alerting import engine

    def fails_late(rules: Any, state: ZoneState, *args: Any, **kwargs: Any) -> Any:
        engine.evaluate_batch(rules, state, *args, **kwargs)  # fires and resolves
        raise RuntimeError("a defect in a rule")

    async def run() -> None:
        dead: list[Any] = []
        r = Run(dead)
        await r.start()
        monkeypatch.setattr(alerting_stage, "evaluate_batch", fails_late)
        first = incident("shusha", 0.5, killed=1)
        await r.step(first)
        assert [(reason, p, offset) for _, reason, (p, offset, _, _) in dead] == [
            ("internal_error", 0, 0)
        ]
        assert json.loads(dead[0][2][2])["incident_id"] == first.incident_id
        assert "a defect in a rule" in dead[0][2][3]
        assert published(r) == [("casualties", "firing")]  # what the state holds
        firing = {a.alert_id for a in r.stage.states["shusha"].firing()}
        assert firing == {json.loads(v or b"")["alert_id"] for _, _, v in sent(r)}
        await asyncio.sleep(1.1)  # the hold passes: the next evaluation resolves it ...
        await r.step(incident("shusha", 0.2, killed=1))  # ... and fires anew, then fails
        assert published(r) == [
            ("casualties", "firing"),
            ("casualties", "resolved"),
            ("casualties", "firing"),
        ]
        assert [offset for _, _, (_, offset, _, _) in dead] == [0, 1]
        now_firing = {a.alert_id for a in r.stage.states["shusha"].firing()}
        assert len(now_firing) == 1 and now_firing != firing
        again = await Run.of(r.changelog())  # the state written is the state published
        assert {a.alert_id for a in again.stage.states["shusha"].firing()} == now_firing
        assert published(again) == []

    asyncio.run(run())


def sent(r: Run) -> list[tuple[Any, Any, bytes | None]]:
    return list(r.producer.sent["ceasefire.alerts"])


def test_a_step_written_is_not_processed_again_when_what_follows_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`committed` (memory updated after the write: gauges, tallies) raising made the
    stage input retry the step: processed a second time, its effects applied twice."""

    async def run() -> None:
        r = Run()
        await r.start()
        processed: list[int] = []
        process = r.stage.process

        def counting(records: Any, out: Any) -> None:
            processed.append(len(records))
            process(records, out)

        def fails(out: Any) -> None:
            raise RuntimeError("a defect after the write")

        monkeypatch.setattr(r.stage, "process", counting)
        monkeypatch.setattr(r.stage, "committed", fails)
        await r.step(incident("shusha", 0.5, killed=1))  # does not raise: nothing to retry
        assert processed == [1] and r.stage._pending is None
        assert published(r) == [("casualties", "firing")]

    asyncio.run(run())


def outbox_left(r: Run) -> bool:
    """Whether what was written holds events not confirmed (a recovery would settle)."""
    return bool(restore({0: recovered(r.changelog())}).outboxes)


def test_a_tombstone_that_failed_after_publishing_publishes_nothing_again() -> None:
    """The step is written and its events published; the journal's tombstone fails. The
    retried step writes the tombstone only, and the next steps publish only their own."""

    async def run() -> None:
        r = Run()
        await r.start()
        fail_next_write(r.stage, after=1)  # the step's write succeeds, its tombstone fails
        pack = incident("shusha", 0.5, killed=1).model_dump_json().encode()
        with pytest.raises(ConnectionError):
            await r.stage._apply([Record(0, 0, pack)])
        assert published(r) == [("casualties", "firing")]
        assert r.stage._pending is not None
        await r.stage._apply([Record(0, 0, pack)])  # the stage input's retry
        assert r.stage._pending is None
        assert published(r) == [("casualties", "firing")]
        assert not outbox_left(r)  # the tombstone written
        await r.step(incident("lachin-corridor", 0.5, killed=2, severity="critical"))
        assert published(r) == [("casualties", "firing")] * 2
        # A clock step's tombstone failing: the next write carries the tombstone.
        await asyncio.sleep(1.1)  # the hold passes: the clock resolves both alerts
        fail_next_write(r.stage, after=1)
        await r.stage._tick()
        assert published(r)[2:] == [("casualties", "resolved")] * 2
        assert outbox_left(r)  # the journal, with its events, still there
        await r.step(incident("shusha", 3, category="heavy_weapons_fire"))
        assert published(r)[4:] == []
        assert not outbox_left(r)
        again = await Run.of(r.changelog())
        assert published(again) == []

    asyncio.run(run())


def test_a_clock_step_whose_write_failed_publishes_its_resolution_at_the_next_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("lachin-corridor", 0.5, killed=2, severity="critical"))
        assert published(r) == [("casualties", "firing")]
        await asyncio.sleep(1.1)  # the hold passes: the clock resolves the alert
        fail_next_write(r.stage)
        await r.stage._tick()  # logged, not raised: a timer that raised would crash the worker
        assert "maintenance failed" in caplog.text
        assert not r.stage.states["lachin-corridor"].firing()
        assert published(r) == [("casualties", "firing")]
        await r.stage._tick()
        await r.stage._tick()
        assert published(r) == [("casualties", "firing"), ("casualties", "resolved")]
        again = await Run.of(r.changelog())
        # a clock that moved alone is not written: the rest is
        assert view(again.stage.states, clock=False) == view(r.stage.states, clock=False)

    asyncio.run(run())


def test_undecodable_packs_are_dead_lettered_and_the_rest_applied() -> None:
    async def run() -> None:
        dead: list[Any] = []
        r = Run(dead)
        await r.start()
        bad_retraction = b'{"kind":"retract"}'
        await r.step(b"not an incident", bad_retraction, incident("shusha", 0.5, killed=1))
        assert [(reason, raw) for _, reason, (_, _, raw, _) in dead] == [
            ("invalid_value", b"not an incident"),
            ("invalid_value", bad_retraction),
        ]
        assert published(r) == [("casualties", "firing")]

    asyncio.run(run())


def outbox_in(log: list[tuple[int | None, bytes | None, bytes | None]]) -> list[str]:
    """The rules of the events in the latest journal of a changelog: its outbox."""
    journal = [v for _, k, v in log if k == JOURNAL_KEY][-1]
    return [] if journal is None else [e["rule"] for e in json.loads(journal)["events"]]


def torn_after_the_write(r: Run) -> list[tuple[int | None, bytes | None, bytes | None]]:
    """The changelog as a worker dying after writing its step, before publishing, left it."""
    log = r.changelog()
    assert log[-1][1:] == (JOURNAL_KEY, None)  # confirmed: the journal's tombstone
    return log[:-1]


def test_an_heir_hands_alertmanager_a_dead_owner_s_outbox_in_its_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One step resolved an episode and fired the next of the same labels; the dead owner
    published the resolution, not the firing. The heir handed Alertmanager the firing
    first, then the stale resolution: Alertmanager showed the firing alert resolved."""

    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("shusha", 0.5, killed=1))
        await asyncio.sleep(1.1)  # its hold ends: the next step resolves it and fires anew
        await r.step(incident("shusha", 0.2, killed=1))
        step = r.producer.sent["ceasefire.alerts"][1:]
        order = [
            (json.loads(v or b"")["status"], json.loads(v or b"")["alert_id"]) for *_, v in step
        ]
        assert [status for status, _ in order] == ["resolved", "firing"]
        torn = torn_after_the_write(r)
        on_topic = [(b"", step[0][2])]  # the resolution was acknowledged, the firing not

        async def read_partitions(*_: Any, **__: Any) -> dict[Any, Any]:
            return {TopicPartition("ceasefire.alerts", 0): on_topic}

        monkeypatch.setattr(alert_outbox, "read_partitions", read_partitions)
        heir = Run()
        heir.producer.sent["alert-state-changelog"] = list(torn)
        handed: list[tuple[str, str]] = []
        monkeypatch.setattr(
            heir.stage, "_enqueue", lambda evs: handed.extend((e.status, e.alert_id) for e in evs)
        )
        await heir.start()
        assert published(heir) == [("casualties", "firing")]  # only the one missing
        assert handed == order

    asyncio.run(run())


def test_an_outbox_left_by_a_dead_owner_is_published_once_before_the_stage_is_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("shusha", 0.5, killed=1))
        (firing,) = r.producer.sent["ceasefire.alerts"]
        torn = torn_after_the_write(r)
        assert outbox_in(torn) == ["casualties"]
        on_topic: list[Any] = []
        reads = []

        async def read_partitions(*_: Any, **__: Any) -> dict[Any, Any]:
            reads.append(1)
            if len(reads) == 1:
                raise ConnectionError("broker away")  # the first settle fails: retried
            return {TopicPartition("ceasefire.alerts", 0): list(on_topic)}

        monkeypatch.setattr(alert_outbox, "read_partitions", read_partitions)
        heir = Run()
        heir.producer.sent[CHANGELOG] = list(torn)
        await heir.start(settled=False)
        assert not heir.stage.ready.is_set()  # not before the outbox is settled
        await asyncio.wait_for(heir.stage.ready.wait(), 5)
        assert len(reads) == 2
        assert published(heir) == [("casualties", "firing")]
        assert not outbox_in(heir.changelog())
        assert view(heir.stage.states) == view(r.stage.states)
        # settled: the next owner has nothing to settle and publishes nothing
        later = await Run.of(heir.changelog())
        assert published(later) == []
        # an event the alert topic already holds is not published again
        on_topic.append((0, firing[2]))
        other = await Run.of(torn)
        assert published(other) == []
        assert not outbox_in(other.changelog())

    asyncio.run(run())


def test_a_settle_overtaken_by_a_revocation_writes_nothing_and_leaves_the_stage_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("shusha", 0.5, killed=1))
        torn = torn_after_the_write(r)
        release = asyncio.Event()

        async def read_partitions(*_: Any, **__: Any) -> dict[Any, Any]:
            await release.wait()
            return {}

        monkeypatch.setattr(alert_outbox, "read_partitions", read_partitions)
        heir = Run()
        heir.producer.sent[CHANGELOG] = list(torn)
        await heir.start(settled=False)
        await asyncio.sleep(0.05)  # the settle is reading the alert topic
        heir.stage.revoked()  # the partitions move meanwhile
        release.set()
        assert heir.stage._settling is not None
        await asyncio.wait_for(heir.stage._settling, 5)
        assert not heir.stage.ready.is_set()
        assert heir.changelog() == torn  # the journal stays for the next owner

    asyncio.run(run())


def test_a_takeover_says_which_partitions_came_from_a_worker_that_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator saw only rebalances when a peer died: the heir names what it took."""

    async def run() -> None:
        r = Run()
        with caplog.at_level("WARNING"):
            await r.start()  # the first assignment: nothing taken from anyone
            assert "took over" not in caplog.text
            topic = r.stage.topic_name
            two = {TopicPartition(topic, 0), TopicPartition(topic, 1)}
            r.stage.ports.app.assignor = SimpleNamespace(  # type: ignore[assignment]
                assigned_actives=lambda: two
            )
            r.stage.revoked()
            await r.start()
        assert f"{topic}: took over partitions [1] (another worker left" in caplog.text
        assert "gave up none" in caplog.text

    asyncio.run(run())


def test_the_firing_gauge_follows_the_steps_that_fire_and_new_zones() -> None:
    def firing(rule: str, zone: str) -> float | None:
        return REGISTRY.get_sample_value("ceasefire_alerts_firing", {"rule": rule, "zone": zone})

    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("tavush", 0.5))  # a new zone: its zero series
        assert firing("casualties", "tavush") == 0
        await r.step(incident("tavush", 0.4, killed=1))
        assert firing("casualties", "tavush") == 1

    asyncio.run(run())


def test_observed_since_set_after_a_backfill_holds_for_zones_already_watched() -> None:
    """README: set CEASEFIRE_OBSERVED_SINCE after a backfill so that the baselines count it.
    A zone the worker already watched kept the time its partition was first watched."""
    backfilled = datetime(2026, 1, 1, tzinfo=UTC)

    async def run() -> None:
        r = Run()
        await r.start()
        await r.step(incident("shusha", 0.2))
        watched = r.stage.states["shusha"].since
        again = Run()
        again.stage.ports.settings.observed_since = backfilled
        again.producer.sent[CHANGELOG] = r.changelog()
        await again.start()
        since = again.stage.states["shusha"].since
        assert since == int(backfilled.timestamp() * 1000) and since != watched

    asyncio.run(run())


def test_the_alert_stage_holds_its_partitions_only_once_it_and_the_theatre_recovered() -> None:
    async def run() -> None:
        r = Run()
        assert not r.stage.holds_its_partitions()  # not recovered yet
        await r.start()
        assert r.stage.holds_its_partitions()
        r.stage.theatre_recovering = lambda: True  # assigned the theatre, recovering it
        assert not r.stage.holds_its_partitions()

    asyncio.run(run())
