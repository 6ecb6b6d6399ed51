"""The identity and zone stages on in-memory fakes: revisions, withdrawals, conflicts,
linking, what is published and written, and recovery from what was written. No broker,
no Faust worker: milliseconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from schemas.incident import incident_id_for
from schemas.validation import Rejection, validate_report
from streams import metrics
from streams.classify import parties
from streams.classify.classifier import Classifier
from streams.classify.data_files import read_json
from streams.classify.gazetteer import Gazetteer
from streams.classify.text import fold
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.intake import classify_report
from streams.pipeline.identity_stage import IdentityStage
from streams.pipeline.packs import partition_for, unpack
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports
from streams.pipeline.zone_stage import ZoneStage
from streams.record.linking import LinkRule
from streams.record.revisions import Outcome
from streams.store.changelog import APPLIED_KEY, Recovered
from streams.tallies.series import rows_between
from streams.tallies.state import query
from tests.fakes import FakeProducer, fail_next_write

pytestmark = pytest.mark.timeout(30)

NOW = datetime.now(UTC).replace(microsecond=0)
CLASSIFIER = Classifier(ZoneCatalogue.load(), Gazetteer.load())
#: As workers classify with CEASEFIRE_INTERNAL_FORMAT below 4 (no time of day in documents).
CLASSIFIER_BEFORE_4 = Classifier(ZoneCatalogue.load(), Gazetteer.load(), time_of_day=False)
SHUSHA = {"lat": 39.758, "lon": 46.748}


class FakeApp:
    """What a stage asks of the Faust app: a topic, a table naming its changelog, an agent."""

    def topic(self, name: str, **_: Any) -> str:
        return name

    def Table(self, name: str, **_: Any) -> Any:
        changelog = SimpleNamespace(get_topic_name=lambda: f"{name}-changelog")
        return SimpleNamespace(changelog_topic=changelog, on_recover=lambda cb: cb)

    def agent(self, topic: str, name: str) -> Any:
        return lambda fn: fn


class Harness:
    """Both stages, wired as the worker wires them: the identity stage over one partition,
    the zone stage over `partitions` (its input, `ceasefire.reports.by-zone`, routed by
    zone; what it sends itself there comes back to it)."""

    def __init__(
        self, partitions: int = 1, rule: LinkRule | None = None, internal_format: int = 5
    ) -> None:
        self.settings = Settings(internal_format=internal_format)
        self.producer = FakeProducer()
        self.dead: list[tuple[str, DeadRecord]] = []
        self.dead_topics: list[str] = []  # the topic each dead record was read from
        self.dead_keys: list[bytes | None] = []  # the key of each one's dead letter
        #: packs on the zone stage's input not applied yet, and those applied: (partition, pack)
        self.pending: list[tuple[int, bytes]] = []
        self.delivered: list[tuple[int, bytes]] = []

        async def producer() -> Any:
            return self.producer

        async def partitions_of(topic: str) -> list[int]:
            return list(range(partitions)) if topic == self.settings.zone_reports_topic else [0]

        async def dead_letter(
            topic: str,
            records: Sequence[DeadRecord],
            reason: str,
            keys: Sequence[bytes | None] | None = None,
        ) -> None:
            self.dead.extend((reason, r) for r in records)
            self.dead_topics.extend(topic for _ in records)
            self.dead_keys.extend(keys if keys is not None else [None] * len(records))

        ports = Ports(
            settings=self.settings,
            app=FakeApp(),  # type: ignore[arg-type]
            producer=producer,
            partitions_of=partitions_of,
            dead_letter=dead_letter,
            readiness_changed=lambda: None,
        )
        self.identity = IdentityStage(ports)
        self.zone = ZoneStage(ports, rule or LinkRule())
        self.identity.restore({0: Recovered()})
        self.zone.restore({p: Recovered() for p in range(partitions)})
        self.offsets: dict[tuple[str, int], int] = {}

    def changelog(self, table: str, partition: int | None = None) -> list[tuple[bytes, bytes]]:
        return [
            (k or b"", v or b"")
            for p, k, v in self.producer.sent[f"{table}-changelog"]
            if k != APPLIED_KEY and partition in (None, p)
        ]

    async def send(
        self,
        *docs: dict[str, Any],
        deliver: bool = True,
        classifier: Classifier = CLASSIFIER,
        origins: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """Apply `docs`, classified as ingest classifies them, in the identity stage and
        (`deliver`) what it forwards in the zone stage, until nothing is left to apply.
        `origins`: where ingest read each (`Incident.input`)."""
        raws = []
        for n, doc in enumerate(docs):
            report = validate_report(json.dumps(doc).encode(), now=NOW)
            assert not isinstance(report, Rejection), report
            origin = origins[n] if origins is not None else None
            keep_sent = self.settings.internal_format >= 3  # as ingest writes it
            classified = classify_report(report, NOW, classifier, origin, keep_sent)
            assert not isinstance(classified, Rejection), classified
            raws.append(classified[1])
        await self._step(self.identity, "identity", b"\n".join(raws))
        self._forwarded()
        if deliver:
            await self.deliver()

    def _forwarded(self) -> None:
        for p, _, pack in self.producer.sent.pop(self.settings.zone_reports_topic, []):
            assert p is not None and pack is not None
            self.pending.append((p, pack))

    async def deliver(self, partition: int | None = None, *, floors_first: bool = False) -> None:
        """Apply the pending packs of `partition` (None: of all), in order (`floors_first`:
        version floors first), and what applying them sends there, until none is left."""
        while True:
            todo = [x for x in self.pending if partition in (None, x[0])]
            if not todo:
                return
            if floors_first:
                todo.sort(key=lambda x: b'"op":"floor"' not in x[1])
            self.pending.remove(todo[0])
            p, pack = todo[0]
            self.delivered.append((p, pack))
            await self._step(self.zone, "zone", pack, p)
            self._forwarded()

    async def _step(self, stage: Any, name: str, pack: bytes, partition: int = 0) -> None:
        offset = self.offsets.get((name, partition), 0)
        self.offsets[(name, partition)] = offset + 1
        await stage._apply([Record(partition, offset, pack)])

    def incidents(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for _, _, value in self.producer.sent[self.settings.incidents_topic]:
            assert value is not None
            doc = json.loads(value)
            if doc["version"] > latest.get(doc["incident_id"], {}).get("version", 0):
                latest[doc["incident_id"]] = doc
        return latest

    def rows(self, by: str = "zone") -> list[dict[str, Any]]:
        return query(self.zone.tallies.values(), window="24h", by=by, as_of=NOW.timestamp())


def report(rid: str, source: str = "pkf-op-1", **changes: Any) -> dict[str, Any]:
    doc = {
        "report_id": rid,
        "source": source,
        "source_type": "observation_post",
        "occurred_at": (NOW - timedelta(minutes=30)).isoformat(),
        "location": SHUSHA,
        "category": "heavy_weapons_fire",
    }
    return doc | changes


def test_a_revision_moves_the_figures_and_a_withdrawal_takes_them_out() -> None:
    async def run() -> None:
        h = Harness()
        await h.send(report("a", casualties={"killed": 1}))
        assert [(r["incidents"], r["killed"]) for r in h.rows()] == [(1, 1)]
        await h.send(report("a", revision=1, casualties={"killed": 49}))  # ACLED-style fix
        assert [(r["incidents"], r["killed"]) for r in h.rows()] == [(1, 49)]
        await h.send(report("a", casualties={"killed": 1}))  # a stale copy of revision 0
        assert [(r["incidents"], r["killed"]) for r in h.rows()] == [(1, 49)]
        await h.send({"report_id": "a", "source": "pkf-op-1", "revision": 2, "withdrawn": True})
        assert h.rows() == []
        (incident,) = h.incidents().values()
        assert incident["status"] == "withdrawn"

    asyncio.run(run())


def test_a_revision_moving_a_report_to_another_zone_of_the_partition_moves_its_incident() -> None:
    """One step holds the incident id twice, withdrawn in the old zone and open in the new
    (an ACLED re-export lost such events from the tallies and the incidents topic)."""

    async def run() -> None:
        h = Harness()
        await h.send(report("a", casualties={"killed": 1}))
        await h.send(report("a", revision=1, location={"lat": 39.640, "lon": 46.545}))
        assert [(r["zone"], r["incidents"], r["killed"]) for r in h.rows()] == [
            ("lachin-corridor", 1, 0)
        ]
        published = [
            json.loads(v or b"") for _, _, v in h.producer.sent[h.settings.incidents_topic]
        ]
        assert [(d["zone"], d["status"]) for d in published[1:]] in (
            [("shusha", "withdrawn"), ("lachin-corridor", "open")],
            [("lachin-corridor", "open"), ("shusha", "withdrawn")],
        )
        # the book moved it with its versions: open above withdrawn, and no version floor
        assert top_versions(h) == listed(h)
        assert not h.pending and not h.producer.sent[h.settings.zone_reports_topic]

    asyncio.run(run())


def shelling() -> list[dict[str, Any]]:
    """One shelling reported by a post (2 killed) and both ministries, each accusing the
    other with its own figure."""
    return [
        report("op", casualties={"killed": 2}),
        report(
            "az-1",
            source="az-mod",
            source_type="party_statement",
            claimant="az",
            perpetrator="am",
            casualties={"killed": 5},
        ),
        report(
            "am-1",
            source="am-mod",
            source_type="party_statement",
            claimant="am",
            perpetrator="az",
            casualties={"killed": 9},
        ),
    ]


def test_one_event_reported_three_times_is_one_incident_never_summed() -> None:
    async def run() -> None:
        h = Harness()
        await h.send(*shelling())
        (row,) = h.rows()
        assert (row["incidents"], row["reports"], row["killed"]) == (1, 3, 2)
        (incident,) = [i for i in h.incidents().values() if i["status"] == "open"]
        assert incident["verification"] == "observed"
        assert incident["claims"] == {"az": "am", "am": "az"}
        assert len(incident["reports"]) == 3
        # the alert stage hears of the incident, as the incident
        alert_inputs = [
            json.loads(doc)
            for _, _, pack in h.producer.sent[h.settings.zone_packs_topic]
            for doc in unpack(pack or b"")
        ]
        opened = {d["incident_id"] for d in alert_inputs if d["kind"] == "incident"}
        assert opened == {incident["incident_id"]}  # once, not once per report
        # ids that headed the incident for a moment within the step are retracted
        retracted = {d["incident_id"] for d in alert_inputs if d["kind"] == "retract"}
        assert incident["incident_id"] not in retracted

    asyncio.run(run())


def test_a_conflicting_equal_revision_is_dead_lettered_and_duplicates_counted() -> None:
    async def run() -> None:
        h = Harness()
        await h.send(report("a"), report("a"))  # a re-send in the same batch
        assert h.identity.states[0].get("pkf-op-1", "a") is not None
        await h.send(report("a", category="small_arms_fire"))  # same revision, other content
        assert [reason for reason, _ in h.dead] == ["revision_conflict"]
        assert [(r["incidents"], r["reports"]) for r in h.rows()] == [(1, 1)]

    asyncio.run(run())


def test_a_conflict_s_dead_letter_holds_the_report_as_sent() -> None:
    """SPEC.md: a dead letter holds the original bytes and where they were read. A
    revision conflict is found by the identity stage, on the classified document; the
    document says where ingest read the report (`Incident.input`), and the stage reads it
    back from the input topic: the dead letter is the second report as its source sent it,
    at its input partition and offset. When it cannot be read back (retention deleted it,
    or the read failed), the dead letter is the classified document, and says why."""
    first = report("a", casualties={"killed": 1})
    second = report("a", casualties={"killed": 3})  # the same revision, other content
    sent = {(2, 40): json.dumps(first).encode(), (2, 41): json.dumps(second).encode()}

    async def run(read: str) -> tuple[Harness, list[set[tuple[int, int]]]]:
        h = Harness()
        asked: list[set[tuple[int, int]]] = []

        async def read_input(wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
            asked.append(set(wanted))
            if read == "fails":
                raise TimeoutError("offsets not read within 10s")
            return {k: v for k, v in sent.items() if k in wanted and read == "there"}

        object.__setattr__(h.identity.ports, "read_input", read_input)  # frozen: wiring
        await h.send(first, origins=[(2, 40)])
        await h.send(second, origins=[(2, 41)])
        return h, asked

    h, asked = asyncio.run(run("there"))
    assert asked == [{(2, 41)}]
    [(reason, (partition, offset, raw, message))] = h.dead
    assert (reason, partition, offset, raw) == ("revision_conflict", 2, 41, sent[(2, 41)])
    assert h.dead_topics == [h.settings.reports_topic]
    assert h.dead_keys == [b"pkf-op-1\x1fa"]  # the report's identity, as the input's key
    assert message == (
        "revision 0 of (pkf-op-1, a) was already applied with other content; a correction or "
        "a withdrawal needs a higher revision"
    )
    assert [(r["incidents"], r["killed"]) for r in h.rows()] == [(1, 1)]  # the first counts
    for read, why in (("gone", "it is no longer on"), ("fails", "reading it back from")):
        h, _ = asyncio.run(run(read))
        [(reason, (partition, offset, raw, message))] = h.dead
        assert h.dead_topics == [h.settings.keyed_topic] and partition == 0
        assert h.dead_keys == [b"pkf-op-1\x1fa"]
        assert json.loads(raw)["input"] == [2, 41]  # the classified document
        assert f"classified document, not the report as sent: {why}" in message, message

    async def unplaced() -> Harness:  # documents of an ingest before `input`
        h = Harness()
        await h.send(first)
        await h.send(second)
        return h

    h = asyncio.run(unplaced())
    [(_, (_, _, _, message))] = h.dead
    assert "does not say where ingest read it" in message, message


def test_a_retried_commit_dead_letters_each_conflict_once() -> None:
    """Two conflicts of a step: one read back (dead-lettered as sent), one not (as its
    classified document). The second dead letter failed once, and the retried commit sent
    the first again: two records and two counts of one conflict."""
    a1, b1 = report("a", casualties={"killed": 1}), report("b", casualties={"killed": 1})
    a2, b2 = report("a", casualties={"killed": 3}), report("b", casualties={"killed": 3})

    async def run() -> Harness:
        h = Harness()
        await h.send(a1, b1, origins=[(0, 1), (0, 2)])

        async def read_input(wanted: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
            return {(0, 3): json.dumps(a2).encode()}  # b2's record deleted by retention

        send = h.identity.ports.dead_letter
        calls: list[str] = []

        async def flaky(topic: str, records: Any, reason: str, keys: Any = None) -> None:
            calls.append(topic)
            if len(calls) == 2:
                raise ConnectionError("broker away")
            await send(topic, records, reason, keys)

        object.__setattr__(h.identity.ports, "read_input", read_input)  # frozen: wiring
        object.__setattr__(h.identity.ports, "dead_letter", flaky)
        with pytest.raises(ConnectionError):
            await h.send(a2, b2, origins=[(0, 3), (0, 4)])
        await h.identity._apply([])  # the stage's retry of the step's commit
        return h

    h = asyncio.run(run())
    assert [(reason, (p, o)) for reason, (p, o, _, _) in h.dead] == [
        ("revision_conflict", (0, 3)),  # as sent, once
        ("revision_conflict", (0, 1)),  # b2 as its classified document (keyed partition 0)
    ]


def test_a_resend_classified_otherwise_is_a_duplicate_not_a_conflict(tmp_path: Path) -> None:
    """After a change of the classifier (here the gazetteer puts a place elsewhere), a
    re-send of a report at its revision is a duplicate: the identity stage compares the
    report as sent, not what the classifier made of it. Workers of format 2 compared the
    classified document: a conflict."""
    moved, _ = read_json(None, "gazetteer.json", "gazetteer", ValueError)
    for place in moved["places"]:
        if place["name"] == "Shusha":
            place["lat"] += 0.01
    path = tmp_path / "gazetteer.json"
    path.write_text(json.dumps(moved))
    reclassifying = Classifier(ZoneCatalogue.load(), Gazetteer.load(path))
    sent = report("a", location={"place": "Shusha"}, casualties={"killed": 1})

    async def run(internal_format: int) -> Harness:
        h = Harness(internal_format=internal_format)
        await h.send(sent)
        await h.send(sent, classifier=reclassifying)
        await h.send(sent | {"category": "small_arms_fire"}, classifier=reclassifying)
        return h

    h = asyncio.run(run(3))
    assert [reason for reason, _ in h.dead] == ["revision_conflict"]  # the other content
    assert [(r["incidents"], r["reports"], r["killed"]) for r in h.rows()] == [(1, 1, 1)]
    earlier = asyncio.run(run(2))
    assert [reason for reason, _ in earlier.dead] == ["revision_conflict"] * 2


def test_a_resend_the_classifier_now_places_elsewhere_is_reclassified(tmp_path: Path) -> None:
    """A gazetteer corrected since a report was counted (its place moves to another zone):
    re-sent at its revision, the report is reclassified (format 5: identity entries keep a
    check of the classification) and its incident moves, counted once; a re-send after that
    is a duplicate. Format 4 workers: a duplicate, as before; their entries (without the
    check) re-sent to format 5 workers: reclassified, told by the zone the entry keeps."""
    corrected, _ = read_json(None, "gazetteer.json", "gazetteer", ValueError)
    for place in corrected["places"]:
        if place["name"] == "Shusha":
            place["lat"], place["lon"] = LACHIN["lat"], LACHIN["lon"]
    path = tmp_path / "gazetteer.json"
    path.write_text(json.dumps(corrected))
    reclassifying = Classifier(ZoneCatalogue.load(), Gazetteer.load(path))
    sent = report("a", location={"place": "Shusha"}, casualties={"killed": 1})

    async def run(internal_format: int, partitions: int) -> Harness:
        h = Harness(partitions=partitions, internal_format=internal_format)
        await h.send(sent, report("b", source="pkf-op-2", casualties={"killed": 1}))
        await h.send(sent, classifier=reclassifying)
        before = metrics.REPORT_OUTCOMES.labels("reclassified")._value.get()
        await h.send(sent, classifier=reclassifying)  # the same again: a duplicate
        assert metrics.REPORT_OUTCOMES.labels("reclassified")._value.get() == before
        return h

    for partitions in (1, 2):  # the new zone in the same partition, and in another
        h = asyncio.run(run(5, partitions))
        assert not h.dead
        by_zone = {r["zone"]: (r["incidents"], r["reports"], r["killed"]) for r in h.rows()}
        assert by_zone == {"shusha": (1, 1, 1), "lachin-corridor": (1, 1, 1)}
        assert top_versions(h) == listed(h)
        a = incident_id_for("pkf-op-1", "a")
        assert top_versions(h)[a][1:] == ("open", "lachin-corridor")
        again = Harness(partitions=partitions)  # and so it is recovered
        again.identity.restore({0: Recovered(entries=h.changelog("identity-state"))})
        again.zone.restore(
            {p: Recovered(entries=h.changelog("incident-book", p)) for p in range(partitions)}
        )
        assert listed(again) == listed(h)
        held = again.identity.states[0].get("pkf-op-1", "a")
        assert held is not None and held.zone == "lachin-corridor"

    h = asyncio.run(run(4, 1))
    assert [(r["zone"], r["incidents"], r["reports"]) for r in h.rows()] == [("shusha", 1, 2)]

    async def upgraded() -> Harness:
        """Counted by format 4 workers (entries without the check), re-sent to format 5
        ones: the zone the entry keeps tells the move."""
        old = Harness(internal_format=4)
        await old.send(sent, report("b", source="pkf-op-2", casualties={"killed": 1}))
        h = Harness(internal_format=5)
        h.identity.restore({0: Recovered(entries=old.changelog("identity-state"))})
        h.zone.restore({0: Recovered(entries=old.changelog("incident-book"))})
        before = metrics.REPORT_OUTCOMES.labels("reclassified")._value.get()
        await h.send(sent, classifier=reclassifying)
        assert metrics.REPORT_OUTCOMES.labels("reclassified")._value.get() == before + 1
        await h.send(sent, classifier=reclassifying)  # now with the check: a duplicate
        assert metrics.REPORT_OUTCOMES.labels("reclassified")._value.get() == before + 1
        return h

    h = asyncio.run(upgraded())
    by_zone = {r["zone"]: (r["incidents"], r["reports"], r["killed"]) for r in h.rows()}
    assert by_zone == {"shusha": (1, 1, 1), "lachin-corridor": (1, 1, 1)}
    assert top_versions(h)[incident_id_for("pkf-op-1", "a")][1:] == ("open", "lachin-corridor")


def test_a_resend_read_otherwise_in_its_zone_is_reclassified_after_an_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted by format 4 workers (entries without the check) while the actor table did
    not know an ACLED actor name (so `unknown`), re-sent to format 5 workers whose table
    knows it: the identity stage cannot tell (no check, same zone) and leaves it to the
    zone stage, which holds the version counted and replaces it: the incident is the
    party's, counted once, `reclassified` +1. A re-send after that, and the re-send of a
    report read the same, are duplicates; nothing is published for them."""
    actor = "Military Forces of Armenia (2018-)"
    sent = report("a", perpetrator=actor, casualties={"killed": 1})
    other = report("b", source="pkf-op-2", location={"lat": 39.70, "lon": 46.60})

    def outcomes() -> tuple[float, float]:
        counter = metrics.REPORT_OUTCOMES
        return (
            counter.labels("reclassified")._value.get(),
            counter.labels("duplicate")._value.get(),
        )

    async def counted_by_format_4() -> Harness:
        old = Harness(internal_format=4)
        await old.send(sent, other)
        return old

    with monkeypatch.context() as m:
        m.delitem(parties._LOOKUP, fold("Military Forces of Armenia"))
        parties._party.cache_clear()
        old = asyncio.run(counted_by_format_4())
    parties._party.cache_clear()
    assert [(r["party"], r["incidents"]) for r in old.rows(by="party")] == [("unknown", 2)]

    async def upgraded() -> Harness:
        h = Harness(internal_format=5)
        h.identity.restore({0: Recovered(entries=old.changelog("identity-state"))})
        h.zone.restore({0: Recovered(entries=old.changelog("incident-book"))})
        reclassified, duplicate = outcomes()
        await h.send(sent)
        assert outcomes() == (reclassified + 1, duplicate)
        published = len(h.producer.sent[h.settings.incidents_topic])
        assert published == 1
        await h.send(sent, other)  # the same again (now with its check); one read the same
        assert outcomes() == (reclassified + 1, duplicate + 2)
        assert len(h.producer.sent[h.settings.incidents_topic]) == published
        return h

    h = asyncio.run(upgraded())
    by_party = {r["party"]: (r["incidents"], r["reports"], r["killed"]) for r in h.rows("party")}
    assert by_party == {"am": (1, 1, 1), "unknown": (1, 1, 0)}
    assert not h.dead


def test_a_failed_commit_is_retried_with_what_the_step_produced() -> None:
    async def run() -> None:
        h = Harness()
        fail_next_write(h.zone)
        with pytest.raises(ConnectionError):
            await h.send(report("a"))
        # the stage input retries the same records: the pending output is committed
        pending = h.zone._pending
        assert pending is not None and pending.incidents
        await h.zone._apply([Record(0, 0, b"")])
        assert h.zone._pending is None
        assert [r["incidents"] for r in h.rows()] == [1]

    asyncio.run(run())


def test_state_written_to_the_changelogs_is_recovered_alike() -> None:
    async def run() -> None:
        h = Harness()
        await h.send(report("a"), report("b", source="pkf-op-2"), report("c", source="am-mod"))
        await h.send(report("a", revision=3, casualties={"wounded": 4}))
        before = h.rows("zone,party")
        again = Harness()
        again.identity.restore({0: Recovered(entries=h.changelog("identity-state"))})
        again.zone.restore({0: Recovered(entries=h.changelog("incident-book"))})
        assert again.rows("zone,party") == before
        # the identity state remembers: a re-import counts nothing twice
        await again.send(
            report("a", revision=3, casualties={"wounded": 4}), report("b", source="pkf-op-2")
        )
        assert again.rows("zone,party") == before
        counted = again.identity.states[0]
        assert counted.get("pkf-op-1", "a") is not None

    asyncio.run(run())


def test_outcomes_are_counted_per_version() -> None:
    async def run() -> None:
        h = Harness()
        out = h.identity.new_output()
        raws = []
        for doc in (report("a"), report("a"), report("a", revision=1), report("a")):
            parsed = validate_report(json.dumps(doc).encode(), now=NOW)
            raws.append(CLASSIFIER.document(parsed, NOW).model_dump_json().encode())  # type: ignore[arg-type]
        h.identity.process([Record(0, 0, b"\n".join(raws))], out)
        assert out.outcomes == {
            Outcome.NEW: 1,
            Outcome.DUPLICATE: 1,
            Outcome.REVISED: 1,
            Outcome.STALE: 1,
        }

    asyncio.run(run())


def test_a_report_whose_withdrawal_came_first_is_counted_once_when_it_comes() -> None:
    """`ceasefire_reports_total` (distinct reports, at their first version) counted only a
    `new` outcome: a report reinstated over a withdrawal that came first was in the
    tallies and never in the metric, nor in the processing and event-lag histograms."""

    async def run() -> None:
        h = Harness()
        out = h.identity.new_output()
        docs = [
            {"source": "pkf-op-1", "report_id": "a", "revision": 2, "withdrawn": True},
            report("a", revision=3),
            report("a", revision=4, casualties={"killed": 1}),  # revised: not counted again
            {"source": "pkf-op-1", "report_id": "a", "revision": 5, "withdrawn": True},
            report("a", revision=6),  # reinstated where it was counted: not again
            report("b"),
        ]
        raws = []
        for doc in docs:
            parsed = validate_report(json.dumps(doc).encode(), now=NOW)
            assert not isinstance(parsed, Rejection)
            classified = classify_report(parsed, NOW, CLASSIFIER, None)
            assert not isinstance(classified, Rejection)
            raws.append(classified[1])
        h.identity.process([Record(0, 0, b"\n".join(raws))], out)
        assert out.outcomes[Outcome.REINSTATED] == 2
        assert [source_type for source_type, _, _ in out.accepted] == ["observation_post"] * 2

    asyncio.run(run())


LACHIN = {"lat": 39.640, "lon": 46.545}


def two_partitions() -> Harness:
    """A zone stage over two partitions, Shusha's and the Lachin corridor's."""
    assert [partition_for(z, [0, 1]) for z in (b"shusha", b"lachin-corridor")] == [1, 0]
    return Harness(partitions=2)


def top_versions(h: Harness) -> dict[str, tuple[int, str, str]]:
    """What a subscriber keeping the highest version of each incident id ends with: id ->
    (version, status, zone). An open version must not tie with another at the highest
    version of its id (the subscriber would keep either)."""
    top: dict[str, list[dict[str, Any]]] = {}
    for _, _, value in h.producer.sent[h.settings.incidents_topic]:
        doc = json.loads(value or b"")
        held = top.setdefault(doc["incident_id"], [doc])
        if doc["version"] > held[0]["version"]:
            held[:] = [doc]
        elif doc["version"] == held[0]["version"] and doc not in held:
            held.append(doc)
    for held in top.values():
        assert len(held) == 1 or all(d["status"] != "open" for d in held), held
    return {i: (d[0]["version"], d[0]["status"], d[0]["zone"]) for i, d in top.items()}


def listed(h: Harness) -> dict[str, tuple[int, str, str]]:
    """The open incidents the books hold (what the incidents API lists), as `top_versions`."""
    return {
        i.incident_id: (i.version, "open", i.fields.zone)
        for book in h.zone.books.values()
        for i in book.incidents()
    }


def test_a_move_to_a_zone_of_another_partition_ends_open_in_either_order() -> None:
    """The old zone's partition publishes the id withdrawn at its next version and sends
    the new zone's partition that version as a floor; the new zone publishes the id open
    above it, whether the floor comes before or after the moved report."""

    async def run(floor_first: bool) -> None:
        h = two_partitions()
        await h.send(report("a", casualties={"killed": 1}))
        await h.send(report("a", revision=1, casualties={"killed": 2}))  # version 2
        moved = report("a", revision=2, location=LACHIN, casualties={"killed": 2})
        await h.send(moved, deliver=False)
        if floor_first:
            await h.deliver(1)  # the remove: withdrawn at 3, a floor of 3 for partition 0
            await h.deliver(0, floors_first=True)
        else:
            await h.deliver(0)  # the report opens at 1 in the Lachin corridor
            await h.deliver(1)  # withdrawn at 3 in Shusha, a floor of 3 for partition 0
            await h.deliver(0)  # the floor: open at 4
        assert top_versions(h) == listed(h)
        assert list(top_versions(h).values()) == [(4, "open", "lachin-corridor")]
        assert [(r["zone"], r["incidents"], r["killed"]) for r in h.rows()] == [
            ("lachin-corridor", 1, 2)
        ]
        # a replay of every pack the zone stage applied (a crash before its offsets were
        # written) publishes nothing above what it did
        for p, pack in list(h.delivered):
            await h._step(h.zone, "zone", pack, p)
        h._forwarded()
        await h.deliver()
        assert (
            top_versions(h) == listed(h) == {i: (4, "open", "lachin-corridor") for i in listed(h)}
        )
        # and a zone stage rebuilt from its changelog goes on from the same versions
        again = Harness(partitions=2)
        again.zone.restore({p: Recovered(entries=h.changelog("incident-book", p)) for p in (0, 1)})
        assert listed(again) == listed(h)
        assert again.zone.books[1].versions == h.zone.books[1].versions

    for floor_first in (False, True):
        asyncio.run(run(floor_first))


def test_a_report_moving_back_across_partitions_ends_open_where_it_is() -> None:
    async def run(orders: tuple[bool, bool]) -> None:
        h = two_partitions()
        await h.send(report("a"))
        for revision, (location, old), floor_first in zip(
            (1, 2), ((LACHIN, 1), (SHUSHA, 0)), orders, strict=True
        ):
            await h.send(report("a", revision=revision, location=location), deliver=False)
            if floor_first:
                await h.deliver(old)
            await h.deliver(floors_first=floor_first)
        assert top_versions(h) == listed(h)
        assert [(s, z) for _, s, z in top_versions(h).values()] == [("open", "shusha")]

    for orders in ((False, False), (False, True), (True, False), (True, True)):
        asyncio.run(run(orders))


def test_a_moved_report_joining_an_incident_there_starts_above_its_floor_later() -> None:
    """The floor of an id that heads nothing in the new zone is kept (a `v` entry): when the
    report comes to head an incident there, it opens above it."""

    async def run() -> None:
        h = two_partitions()
        await h.send(report("a", occurred_at=(NOW - timedelta(minutes=20)).isoformat()))
        await h.send(report("a", revision=1, casualties={"killed": 1}))  # version 2
        await h.send(report("x", source="pkf-op-2", location=LACHIN))  # earlier: it heads
        later = (NOW - timedelta(minutes=20)).isoformat()
        await h.send(report("a", revision=2, occurred_at=later, location=LACHIN), deliver=False)
        await h.deliver(1)
        await h.deliver(0, floors_first=True)
        assert [(r["incidents"], r["reports"]) for r in h.rows()] == [(1, 2)]
        assert top_versions(h) == {**listed(h), **_closed(h, "pkf-op-1", "a", "withdrawn")}
        await h.send({"report_id": "x", "source": "pkf-op-2", "revision": 1, "withdrawn": True})
        # x's id merged into the incident now headed by the moved report
        assert top_versions(h) == {**listed(h), **_closed(h, "pkf-op-2", "x", "merged")}
        assert sorted(v for v, _, _ in listed(h).values()) == [4]  # above the floor of 3

    asyncio.run(run())


def _closed(h: Harness, source: str, rid: str, status: str) -> dict[str, tuple[int, str, str]]:
    """The id named after report (source, rid) as the subscriber holds it, asserted of
    `status`."""
    iid = incident_id_for(source, rid)
    held = top_versions(h)[iid]
    assert held[1] == status, held
    return {iid: held}


def test_a_malformed_version_floor_is_dead_lettered() -> None:
    async def run() -> None:
        h = two_partitions()
        bad = [
            b'{"op":"floor","source":"s","report_id":"r","version":"2"}',
            b'{"op":"floor","source":"s","report_id":"r","version":0}',
            b'{"op":"floor","source":"s","report_id":"r","version":true}',
            b'{"op":"floor","source":"s","version":2}',
            b'{"op":"floor","source":7,"report_id":"r","version":2}',
            b'{"op":"remove","source":"s","report_id":"r","revision":1,"to":5}',
        ]
        good = b'{"op":"floor","source":"s","report_id":"r","version":2}'
        await h._step(h.zone, "zone", b"\n".join([*bad, good]), 0)
        assert [(reason, raw) for reason, (_, _, raw, _) in h.dead] == [
            ("invalid_value", raw) for raw in bad
        ]
        assert h.zone.books[0].versions == {incident_id_for("s", "r"): 2}

    asyncio.run(run())


def recovered(h: Harness, table: str) -> Recovered:
    """A partition's changelog as the store recovers it: the latest value of each key, in
    the order written, deletions dropped."""
    latest: dict[bytes, bytes | None] = {}
    for _, k, v in h.producer.sent[f"{table}-changelog"]:
        if k is not None and k != APPLIED_KEY:
            latest.pop(k, None)
            latest[k] = v
    return Recovered(entries=[(k, v) for k, v in latest.items() if v is not None])


def test_old_days_close_and_a_late_revision_reopens_them_even_after_a_failed_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        h = Harness()
        h.settings.close_idle_changes = 0  # nothing counts as recent: close what is old
        h.zone.ready.set()
        old = (NOW - timedelta(days=100)).isoformat()
        await h.send(
            report("a", occurred_at=old, casualties={"killed": 1}),
            report("b", occurred_at=old, source="pkf-op-2"),  # the same event
            report("c"),  # today: stays open
        )
        since = rows_between(h.zone.tallies.values(), start=0, end=NOW.timestamp() + 1, by="zone")
        assert [(r["incidents"], r["reports"], r["killed"]) for r in since] == [(2, 3, 1)]

        # The first sweep's write fails: memory closed the day, and the tally follows it.
        # It is logged, not raised: a timer that raised would crash the worker.
        fail_next_write(h.zone)
        await h.zone.sweep()
        assert "maintenance failed, the next tick tries again: broker away" in caplog.text
        book = h.zone.books[0]
        assert (len(book), book.archive.reports) == (1, 2)
        tally = h.zone.tallies[0]
        assert tally.closed and len(tally.open) == 1  # only today's incident is held open
        assert (
            rows_between(h.zone.tallies.values(), start=0, end=NOW.timestamp() + 1, by="zone")
            == since
        )

        # A late revision reopens the day, moves the figures, and the day closes again.
        await h.send(report("a", occurred_at=old, revision=2, casualties={"killed": 5}))
        assert book.archive.reports == 0
        await h.zone.sweep()
        assert book.archive.reports == 2
        now_rows = rows_between(
            h.zone.tallies.values(), start=0, end=NOW.timestamp() + 1, by="zone"
        )
        assert [(r["incidents"], r["reports"], r["killed"]) for r in now_rows] == [(2, 3, 5)]
        (incident,) = [d for d in h.incidents().values() if d["occurred_at"].startswith(old[:10])]
        assert (incident["killed"], incident["version"], incident["status"]) == (5, 3, "open")

        # The changelog rebuilds it with the day closed.
        again = Harness()
        again.zone.restore({0: recovered(h, "incident-book")})
        assert again.zone.books[0].archive.reports == 2
        assert (
            rows_between(again.zone.tallies.values(), start=0, end=NOW.timestamp() + 1, by="zone")
            == now_rows
        )

    asyncio.run(run())


def test_maintenance_due_while_a_batch_holds_the_lock_runs_at_its_next_step() -> None:
    """A backlog's batch holds the stage's lock through many steps: a sweep asked for then
    must not wait for the whole batch (measured: once a minute while a million reports
    drained, holding hundreds of thousands of old reports open)."""

    async def run() -> None:
        h = Harness()
        h.settings.close_idle_changes = 0  # nothing counts as recent: close what is old
        h.zone.ready.set()
        old = (NOW - timedelta(days=100)).isoformat()
        await h.send(report("a", occurred_at=old), report("b"))
        book = h.zone.books[0]
        async with h.zone.lock:  # a delivered batch is being applied, step by step
            await asyncio.wait_for(h.zone.sweep(), 1.0)  # does not wait for the batch
            assert book.archive.reports == 0  # not yet: it is due
            await h.send(report("c"))  # the batch's next step runs it at its end
            assert (len(book), book.archive.reports) == (2, 1)
            assert not h.zone._due
        await h.zone.sweep()  # nothing more to close; the lock is free again
        assert (len(book), book.archive.reports) == (2, 1)

    asyncio.run(run())


def test_a_report_withdrawn_and_reinstated_in_a_zone_of_another_partition_ends_open() -> None:
    """The withdrawn id's versions were published by the old zone's partition: the
    reinstatement (into the Lachin corridor) carries them over as a move does, in either
    order of the floor and the report."""

    async def run(floor_first: bool) -> None:
        h = two_partitions()
        await h.send(report("a", casualties={"killed": 1}))  # Shusha: open at 1
        await h.send(report("a", revision=1, casualties={"killed": 2}))  # open at 2
        await h.send({"report_id": "a", "source": "pkf-op-1", "revision": 2, "withdrawn": True})
        (iid,) = top_versions(h)
        assert top_versions(h)[iid][:2] == (3, "withdrawn")
        back = report("a", revision=3, location=LACHIN, casualties={"killed": 2})
        await h.send(back, deliver=False)
        if floor_first:
            await h.deliver(1)  # the old zone: a floor of 3 for partition 0
            await h.deliver(0, floors_first=True)
        else:
            await h.deliver(0)  # open at 1 in the Lachin corridor
            await h.deliver(1)
            await h.deliver(0)  # the floor: open at 4
        assert top_versions(h) == listed(h) == {iid: (4, "open", "lachin-corridor")}
        assert [(r["zone"], r["incidents"], r["killed"]) for r in h.rows()] == [
            ("lachin-corridor", 1, 2)
        ]

    for floor_first in (False, True):
        asyncio.run(run(floor_first))


def test_incident_ids_and_partitions_from_the_identity_stage_are_those_worked_out_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The identity stage carries each report's incident id and its murmur2 in the upsert;
    the zone stage publishes the same incidents, to the same partitions, as when it works
    them out itself (an upsert written before they were carried)."""
    from streams.pipeline import identity_stage, zone_messages

    reports = [
        report("op", casualties={"killed": 2}),
        report("az-1", source="az-mod", source_type="party_statement", claimant="az"),
        report("far", location={"lat": 39.795, "lon": 47.113}),  # another zone
        report("op", revision=1, casualties={"killed": 3}),
    ]

    async def published(carried: bool) -> list[tuple[int | None, bytes | None, str, int]]:
        if not carried:
            monkeypatch.setattr(
                identity_stage,
                "upsert_message",
                lambda version, civilian, iid, kh, recheck=False, moved=False: orjson.dumps(
                    {
                        k: v
                        for k, v in orjson.loads(
                            zone_messages.upsert_message(version, civilian, iid, kh, recheck, moved)
                        ).items()
                        if k not in ("iid", "kh")
                    }
                ),
            )
        h = Harness(partitions=4)

        async def four(topic: str) -> list[int]:
            return [0, 1, 2, 3]  # the incidents topic too: partitions from the hashes

        object.__setattr__(h.zone.ports, "partitions_of", four)  # frozen: a test's wiring
        h.producer.sent.clear()
        for doc in reports:
            await h.send(doc)
        monkeypatch.setattr(identity_stage, "upsert_message", zone_messages.upsert_message)
        out = []
        for p, k, v in h.producer.sent[h.settings.incidents_topic]:
            assert v is not None
            doc = json.loads(v)
            out.append((p, k, doc["status"], doc["version"]))
        return out

    carried = asyncio.run(published(True))
    assert carried == asyncio.run(published(False))
    assert len({p for p, _, _, _ in carried}) > 1  # partitions told apart
    assert all(k is not None and p == partition_for(k, [0, 1, 2, 3]) for p, k, _, _ in carried)


def test_reports_of_a_crowded_cell_are_counted_in_a_gauge() -> None:
    """A flood at one place and time past the crowd limit: each report an incident alone,
    and the operator sees how many (`ceasefire_reports_crowded`), until it falls back."""
    from streams.metrics import REGISTRY

    def crowded() -> float | None:
        return REGISTRY.get_sample_value("ceasefire_reports_crowded")

    async def run() -> None:
        h = Harness(rule=LinkRule(crowd_limit=3))
        for i in range(3):
            await h.send(report(f"f{i}", source=f"pkf-op-{i}"))
        assert crowded() == 0
        assert [r["incidents"] for r in h.rows()] == [1]  # three sources, one event
        await h.send(report("f3", source="pkf-op-3"))
        assert crowded() == 4
        assert [(r["incidents"], r["reports"]) for r in h.rows()] == [(4, 4)]
        await h.send({"report_id": "f3", "source": "pkf-op-3", "revision": 1, "withdrawn": True})
        assert crowded() == 0
        assert [r["incidents"] for r in h.rows()] == [1]

    asyncio.run(run())


#: The fields of `schemas.incident.Incident` in e68db41, the last release of internal format 1
#: (its model refuses any other).
FORMAT_1_INCIDENT_FIELDS = frozenset(
    [
        "kind",
        "incident_id",
        "report_id",
        "source",
        "source_type",
        "occurred_at",
        "reported_at",
        "received_at",
        "zone",
        "lat",
        "lon",
        "place",
        "category",
        "provision",
        "perpetrator",
        "perpetrator_raw",
        "target",
        "target_raw",
        "killed",
        "wounded",
        "civilian",
        "severity",
        "verification",
        "description",
        "revision",
        "claimant",
        "claimant_raw",
        "time_precision",
        "location_precision",
        "digest",
    ]
)


def test_the_earlier_internal_format_for_a_rolling_upgrade() -> None:
    """CEASEFIRE_INTERNAL_FORMAT=1: the stages write what workers before the fields were
    carried read (an upsert with the classified document; an alert input that is that
    document with the incident's fields over it, read through the `Incident` model), and
    the incidents and what the alert stage hears are those of the current format."""
    from schemas.alert_input import from_incident, read_alert_input
    from schemas.incident import Incident
    from streams.pipeline.zone_stage import RETRACT_PREFIX

    reports = [
        report("op", casualties={"killed": 2}),
        report("az-1", source="az-mod", source_type="party_statement", claimant="az"),
        report("am-1", source="am-mod", source_type="party_statement", claimant="am"),
        report("op", revision=1, casualties={"killed": 3}),
        report("far", location={"lat": 39.795, "lon": 47.113}),
    ]

    async def run(internal_format: int) -> tuple[Harness, list[Any]]:
        h = Harness(internal_format=internal_format)
        for doc in reports:
            await h.send(doc, classifier=CLASSIFIER_BEFORE_4)
        heard = [
            raw
            for _, _, pack in h.producer.sent[h.settings.zone_packs_topic]
            for raw in unpack(pack or b"")
            if not raw.startswith(RETRACT_PREFIX)
        ]
        return h, heard

    earlier, earlier_heard = asyncio.run(run(1))
    current, current_heard = asyncio.run(run(2))
    upserts = [
        json.loads(line)
        for _, pack in earlier.delivered
        for line in unpack(pack)
        if b'"op":"upsert"' in line
    ]
    assert len(upserts) == len(reports)
    assert all(u["doc"]["kind"] == "report" and "v" not in u for u in upserts)
    # only fields the models of those workers (e68db41) know: they refuse any other, and
    # an upgrade from e68db41 dead-lettered 374 alert inputs carrying `sent_digest`
    for doc in [u["doc"] for u in upserts] + [json.loads(raw) for raw in earlier_heard]:
        assert set(doc) <= FORMAT_1_INCIDENT_FIELDS, set(doc) - FORMAT_1_INCIDENT_FIELDS
    assert all(b'"doc"' not in pack for _, pack in current.delivered)
    # what an earlier alert stage read, and what it said, is what the current one hears
    said = [from_incident(Incident.model_validate_json(raw)) for raw in earlier_heard]
    assert said == [read_alert_input(raw) for raw in current_heard]
    assert [read_alert_input(raw) for raw in earlier_heard] == said
    assert len(said) >= 4 and any(i.perpetrator == "unknown" for i in said)  # contested
    assert earlier.incidents() == current.incidents()
    assert earlier.rows() == current.rows()


def test_a_document_with_a_malformed_sent_digest_is_dead_lettered() -> None:
    """The sent digest is what a re-send is told apart by: one that is not 8 bytes of hex
    is a document this monitor did not write, dead-lettered with the reason, never applied
    with another digest in its place."""

    async def run() -> Harness:
        h = Harness()
        validated = validate_report(json.dumps(report("a")).encode(), now=NOW)
        assert not isinstance(validated, Rejection)
        classified = classify_report(validated, NOW, CLASSIFIER)
        assert not isinstance(classified, Rejection)
        doc = json.loads(classified[1])
        for bad in ("zz", "abcd", 7):
            raw = json.dumps(doc | {"sent_digest": bad}).encode()
            await h._step(h.identity, "identity", raw)
        return h

    h = asyncio.run(run())
    assert [reason for reason, _ in h.dead] == ["invalid_value"] * 3
    assert all("sent_digest" in error for _, (_, _, _, error) in h.dead)
    assert h.identity.states[0].get("pkf-op-1", "a") is None


def test_a_recovery_under_another_linking_rule_publishes_the_regrouping_before_ready() -> None:
    """Other `CEASEFIRE_LINK_*` settings (or a new grouping in the code): the open
    incidents regrouped at the recovery are published, and the alert stage hears of them,
    before the stage takes input; once written, the next recovery publishes nothing."""
    wide, narrow = LinkRule(), LinkRule(distance_km=1.5)

    def alert_inputs(h: Harness) -> list[tuple[str, str]]:
        return [
            (d["kind"], d["incident_id"])
            for _, _, pack in h.producer.sent.get(h.settings.zone_packs_topic, [])
            for d in map(json.loads, unpack(pack or b""))
        ]

    async def recover(h: Harness, rule: LinkRule, changelog: list[Any]) -> Harness:
        again = Harness(rule=rule)
        again.zone.restore({0: Recovered(entries=changelog)})
        assert again.zone.unsettled()
        await again.zone.settle()
        assert not again.zone.unsettled()
        return again

    async def run() -> None:
        h = Harness(rule=wide)
        await h.zone.settle()  # the first start writes the rule
        two_km_east = {"lat": SHUSHA["lat"], "lon": SHUSHA["lon"] + 2 / 85.5}
        await h.send(report("a"), report("b", source="pkf-op-2", location=two_km_east))
        (a,) = h.incidents()
        assert [r["incidents"] for r in h.rows()] == [1]
        b = incident_id_for("pkf-op-2", "b")

        split = await recover(h, narrow, recovered(h, "incident-book").entries)
        published = {
            i: (d["version"], d["status"], len(d["reports"])) for i, d in split.incidents().items()
        }
        assert published == {a: (3, "open", 1), b: (1, "open", 1)}
        assert sorted(alert_inputs(split)) == sorted([("incident", a), ("incident", b)])
        assert [(r["incidents"], r["reports"]) for r in split.rows()] == [(2, 2)]

        changelog = (
            recovered(h, "incident-book").entries + recovered(split, "incident-book").entries
        )
        same = Harness(rule=narrow)
        same.zone.restore({0: Recovered(entries=changelog)})
        assert not same.zone.unsettled()
        # while workers before the rule entry may run (format 4), none is written or read
        old = Harness(rule=wide, internal_format=4)
        old.zone.restore({0: Recovered(entries=changelog)})
        assert not old.zone.unsettled() and [r["incidents"] for r in old.rows()] == [1]

        merged = await recover(same, wide, changelog)
        into = {
            i: (d["version"], d["status"], d["merged_into"]) for i, d in merged.incidents().items()
        }
        assert into == {a: (4, "open", None), b: (2, "merged", a)}
        assert sorted(alert_inputs(merged)) == sorted([("incident", a), ("retract", b)])
        assert [(r["incidents"], r["reports"]) for r in merged.rows()] == [(1, 2)]

    asyncio.run(run())


def test_an_incident_a_withdrawal_leaves_open_is_heard_again_by_the_alert_stage() -> None:
    """The alert stage hears an incident that changed without a report of it arriving (a
    report of it withdrawn) as its first report, civilian flag and all: the figures it
    counts follow the withdrawal."""

    def heard(h: Harness) -> list[dict[str, Any]]:
        return [
            d
            for _, _, pack in h.producer.sent.pop(h.settings.zone_packs_topic, [])
            for d in map(json.loads, unpack(pack or b""))
        ]

    async def run(internal_format: int) -> dict[str, Any]:
        h = Harness(internal_format=internal_format)
        civilian_harm = {"killed": 1, "civilian": True}
        await h.send(
            report("a", casualties=civilian_harm),
            report("b", source="pkf-op-2", casualties={"killed": 4}),
        )
        (before,) = heard(h)
        # the figure and its civilian flag are the incident's: "b"'s 4 killed, not civilians
        assert (before["killed"], before["civilian"]) == (4, False)
        await h.send({"report_id": "b", "source": "pkf-op-2", "revision": 1, "withdrawn": True})
        (after,) = heard(h)
        assert after["incident_id"] == before["incident_id"]
        assert after["killed"] == 1
        return after

    assert asyncio.run(run(5))["civilian"] is True
    # format 4: the record keeps no civilian flag (rows as old workers read them)
    assert asyncio.run(run(4))["civilian"] is False


def test_a_rule_change_over_two_partitions_after_a_move_leaves_subscribers_as_the_books() -> None:
    """Partitions recovered under another rule after a report moved between them (its id
    withdrawn in one, open above the floor in the other): what subscribers hold, the
    highest version of each id over both runs, is what the books hold."""
    wide, narrow = LinkRule(), LinkRule(distance_km=1.5)
    two_km_east = {"lat": SHUSHA["lat"], "lon": SHUSHA["lon"] + 2 / 85.5}

    async def run() -> None:
        h = Harness(partitions=2, rule=wide)
        await h.zone.settle()
        await h.send(report("a"), report("b", source="pkf-op-2", location=two_km_east))
        earlier = (NOW - timedelta(hours=3)).isoformat()
        await h.send(report("c", source="pkf-op-3", occurred_at=earlier))  # alone in Shusha
        # moved: withdrawn in Shusha, open above that version in the Lachin corridor
        await h.send(
            report("c", source="pkf-op-3", revision=1, occurred_at=earlier, location=LACHIN)
        )
        await h.send(report("d", source="pkf-op-4", occurred_at=earlier, location=LACHIN))
        c = incident_id_for("pkf-op-3", "c")
        assert top_versions(h)[c] == (4, "open", "lachin-corridor")  # d joined it at 4
        assert top_versions(h) == listed(h)

        again = Harness(partitions=2, rule=narrow)
        again.zone.restore({p: Recovered(entries=h.changelog("incident-book", p)) for p in (0, 1)})
        await again.zone.settle()
        h.producer.sent[h.settings.incidents_topic].extend(
            again.producer.sent[again.settings.incidents_topic]
        )
        assert top_versions(h) == listed(again)
        assert sorted(
            len(i.fields.reports) for b in again.zone.books.values() for i in b.incidents()
        ) == [1, 1, 2]

    asyncio.run(run())


def counter_total(name: str) -> tuple[float, ...]:
    """The sum over all series of a counter, and per `kind` for casualties."""
    from streams.metrics import REGISTRY

    samples = [s for m in REGISTRY.collect() for s in m.samples if s.name == name]
    if name == "ceasefire_casualties_total":
        return tuple(
            sum(s.value for s in samples if s.labels["kind"] == kind)
            for kind in ("killed", "wounded")
        )
    return (sum(s.value for s in samples),)


def test_the_incident_and_casualty_counters_count_each_event_once() -> None:
    """`ceasefire_incidents_total` counts incidents opened and `ceasefire_casualties_total`
    rises of their figures: an incident first published at a later version (several
    reports in one step) is opened once; a rename (an earlier report joined: the incident
    takes its id) opens nothing and adds no casualties; a withdrawn report reinstated
    counts nothing again; a revision up counts the rise only."""

    def counted() -> tuple[float, float, float]:
        (incidents,) = counter_total("ceasefire_incidents_total")
        killed, wounded = counter_total("ceasefire_casualties_total")
        return incidents, killed, wounded

    async def run() -> None:
        h = Harness()
        start = counted()

        def since() -> tuple[float, ...]:
            return tuple(now - then for now, then in zip(counted(), start, strict=True))

        await h.send(*shelling())  # one step: the incident is first published at version 3
        assert max(i["version"] for i in h.incidents().values()) > 1
        assert since() == (1, 2, 0)
        other = (NOW - timedelta(minutes=100)).isoformat()
        await h.send(report("b", source="pkf-op-2", occurred_at=other, casualties={"wounded": 3}))
        assert since() == (2, 2, 3)  # another event, 70 min before
        earlier = (NOW - timedelta(minutes=101)).isoformat()
        await h.send(
            report(
                "b0",
                source="pkf-patrol-9",
                source_type="patrol",
                occurred_at=earlier,
                casualties={"wounded": 3},
            )
        )
        renamed = [i for i in h.incidents().values() if i["status"] == "merged"]
        assert renamed, "the earlier report renames the second incident"
        assert since() == (2, 2, 3)  # one event renamed: nothing new
        alone = (NOW - timedelta(minutes=200)).isoformat()
        await h.send(report("c", occurred_at=alone, casualties={"killed": 1}))
        assert since() == (3, 3, 3)
        await h.send({"report_id": "c", "source": "pkf-op-1", "revision": 1, "withdrawn": True})
        assert [r["incidents"] for r in h.rows()] == [2]
        await h.send(report("c", revision=2, occurred_at=alone, casualties={"killed": 1}))
        assert since() == (3, 3, 3)  # withdrawn, then back as it was: nothing new
        await h.send(report("c", revision=3, occurred_at=alone, casualties={"killed": 4}))
        assert since() == (3, 6, 3)  # revised up: the rise
        assert [r["incidents"] for r in h.rows()] == [3]

    asyncio.run(run())


def test_an_event_revised_into_another_zone_is_counted_once() -> None:
    """A revision moved a report alone in Shusha to the Lachin corridor (another
    partition's zone): its incident opened there at version 1 and was counted again, in
    both zones (the counters summed to one more than the events)."""

    def counted() -> tuple[float, float, float]:
        (incidents,) = counter_total("ceasefire_incidents_total")
        killed, wounded = counter_total("ceasefire_casualties_total")
        return incidents, killed, wounded

    async def run() -> None:
        h = Harness(partitions=2)
        await h.zone.settle()
        start = counted()

        def since() -> tuple[float, ...]:
            return tuple(now - then for now, then in zip(counted(), start, strict=True))

        await h.send(report("c", source="pkf-op-3", casualties={"killed": 1}))
        assert since() == (1, 1, 0)
        await h.send(
            report("c", source="pkf-op-3", revision=1, location=LACHIN, casualties={"killed": 1})
        )
        c = incident_id_for("pkf-op-3", "c")
        assert {i["zone"] for i in h.incidents().values() if i["status"] == "open"} == {
            "lachin-corridor"
        }
        assert since() == (1, 1, 0)  # one event, moved: counted where it was first
        await h.send(
            report("c", source="pkf-op-3", revision=2, location=LACHIN, casualties={"killed": 3})
        )
        assert since() == (1, 3, 0)  # revised up there: the rise only
        assert c in h.incidents()

    asyncio.run(run())


def test_an_incident_first_published_merged_or_withdrawn_is_counted_when_it_opens() -> None:
    """Two reports of one event in one step: the later one's id opened and was merged
    (renamed) within the step, never published open. A revision then parted them: the
    split-off incident was not counted (a review: the counter 3 % under the incidents
    opened). A report sent and withdrawn in one step, reinstated later, the same."""

    def counted() -> float:
        (incidents,) = counter_total("ceasefire_incidents_total")
        return incidents

    async def run() -> None:
        h = Harness()
        start = counted()
        later = report("x", source="pkf-op-1")
        earlier = (NOW - timedelta(minutes=31)).isoformat()
        await h.send(later, report("y", source="pkf-patrol-9", occurred_at=earlier))
        x = incident_id_for("pkf-op-1", "x")
        assert h.incidents()[x]["status"] == "merged", "published merged, never open"
        assert counted() - start == 1
        apart = (NOW - timedelta(minutes=300)).isoformat()
        await h.send(report("y", source="pkf-patrol-9", revision=1, occurred_at=apart))
        assert h.incidents()[x]["status"] == "open"
        assert counted() - start == 2  # two events now, each counted once
        assert [r["incidents"] for r in h.rows()] == [2]
        withdrawal = {"report_id": "z", "source": "pkf-op-4", "revision": 1, "withdrawn": True}
        alone = (NOW - timedelta(minutes=600)).isoformat()
        await h.send(report("z", source="pkf-op-4", occurred_at=alone), withdrawal)
        assert counted() - start == 2
        await h.send(report("z", source="pkf-op-4", revision=2, occurred_at=alone))
        assert counted() - start == 3
        await h.send(report("y", source="pkf-patrol-9", revision=2, occurred_at=earlier))
        assert counted() - start == 3  # x and y one again: nothing opened

    asyncio.run(run())


def test_the_ids_never_counted_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each id opened and merged or withdrawn within one step was kept for the whole run:
    a backfill of merging reports grew the set without bound."""
    from streams.pipeline import zone_stage

    monkeypatch.setattr(zone_stage, "NEVER_COUNTED_KEPT", 2)

    async def run() -> None:
        h = Harness()
        for n in range(4):  # four events hours apart, each a withdrawal within its step
            at = (NOW - timedelta(hours=3 * n + 1)).isoformat()
            sent = report(f"w{n}", source="pkf-op-4", occurred_at=at)
            gone = {"report_id": f"w{n}", "source": "pkf-op-4", "revision": 1, "withdrawn": True}
            await h.send(sent, gone)
        kept = list(h.zone._never_counted)
        assert len(kept) == 2
        assert [iid for _, iid in kept] == [incident_id_for("pkf-op-4", f"w{n}") for n in (2, 3)]

    asyncio.run(run())


def test_a_name_that_matched_no_party_is_kept_in_the_incident_and_its_changelog() -> None:
    """SPEC.md: an unmatched name maps to `unknown` and is kept verbatim in the incident as
    `perpetrator_raw`; the report's raw names survive a recovery. Under internal format 5
    (a rolling upgrade from workers before them) the record keeps none."""

    async def run(fmt: int) -> Harness:
        h = Harness(internal_format=fmt)
        await h.send(report("w", perpetrator="Wagner mercenaries", target="the school"))
        return h

    h = asyncio.run(run(6))
    (incident,) = h.incidents().values()
    assert (incident["attribution"], incident["perpetrator_raw"]) == (
        "unknown",
        "Wagner mercenaries",
    )
    assert incident["time_precision"] == "exact"
    again = Harness()
    again.zone.restore({0: Recovered(entries=h.changelog("incident-book"))})
    (book,) = [b for b in again.zone.books.values() if len(b)]
    held = book.report(("pkf-op-1", "w"))
    assert held is not None and held.names_raw == ("Wagner mercenaries", "the school", None)
    old = asyncio.run(run(5))
    (incident,) = old.incidents().values()
    assert incident["perpetrator_raw"] is None
    rows = [v for k, v in old.changelog("incident-book") if k.startswith(b"d") and v]
    assert rows and all(orjson.loads(v)[0] < 5 for v in rows)


def test_a_merge_s_retraction_names_the_incident_it_was_merged_into() -> None:
    """The alert stage hands a merged incident's alerts to the survivor (`merged_into`);
    a withdrawal names none."""
    from streams.pipeline.zone_stage import retraction
    from streams.record.incident import IncidentRecord, Status

    async def run() -> Harness:
        h = Harness()
        await h.send(report("a"))
        return h

    h = asyncio.run(run())
    [book] = [b for b in h.zone.books.values() if len(b)]
    [open_one] = book.incidents()
    merged = IncidentRecord("gone", 2, Status.MERGED, open_one.incident_id, open_one.fields)
    withdrawn = IncidentRecord("gone", 2, Status.WITHDRAWN, None, open_one.fields)
    assert json.loads(retraction(merged)) == {
        "kind": "retract",
        "incident_id": "gone",
        "zone": open_one.fields.zone,
        "merged_into": open_one.incident_id,
    }
    assert "merged_into" not in json.loads(retraction(withdrawn))


def test_a_document_whose_arrival_time_does_not_parse_is_still_counted() -> None:
    """The arrival time, read after the identity state changed, failed the step on a time
    another writer put there; the retry found its reports known and forwarded nothing."""

    async def run() -> None:
        h = Harness()
        report_ = validate_report(json.dumps(report("a")).encode(), now=NOW)
        assert not isinstance(report_, Rejection)
        classified = classify_report(report_, NOW, CLASSIFIER, None)
        assert not isinstance(classified, Rejection)
        doc = json.loads(classified[1])
        doc["received_at"] = "yesterday"
        await h._step(h.identity, "identity", json.dumps(doc).encode())
        h._forwarded()
        await h.deliver()
        assert [r["reports"] for r in h.rows()] == [1]

    asyncio.run(run())


def test_a_large_identity_state_is_restored_with_turns_of_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Identities are kept for good: 3,000,000 took 34 s to restore in one go, and the
    worker kills an identity process that sends no status for 30 s, so its recovery never
    ended. The restore gives the loop a turn between steps, and ends as the whole one."""
    from streams.pipeline import identity_stage

    monkeypatch.setattr(identity_stage, "RESTORE_STEP", 3)

    async def run() -> tuple[Harness, int]:
        h = Harness()
        await h.send(*(report(f"r{i}") for i in range(10)))
        entries = h.changelog("identity-state")
        assert len(entries) == 10
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        again = Harness()
        await again.identity.restore_yielding({0: Recovered(entries=entries), 1: Recovered()})
        tick.cancel()
        whole = Harness()
        whole.identity.restore({0: Recovered(entries=entries)})
        for ident in [("pkf-op-1", f"r{i}") for i in range(10)]:
            assert again.identity.states[0].get(*ident) == whole.identity.states[0].get(*ident)
            assert again.identity.states[0].get(*ident) is not None
        assert set(again.identity.states) == {0, 1} and again.identity.identities() == 10
        return again, turns

    _, turns = asyncio.run(run())
    assert turns >= 3  # 10 entries in steps of 3: four steps, a turn after each


@pytest.mark.parametrize(("internal_format", "parts"), [(7, True), (6, False)])
def test_a_large_closed_day_is_written_in_parts_from_format_7(
    internal_format: int, parts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed day over the cap is several records the broker takes (Apache Kafka refuses
    one over 1 MiB, and the day then never closed on the changelog); below format 7 one
    record, however large, as workers before 7 read it."""
    from streams.pipeline import zone_stage
    from streams.record.archive import UNIT_PREFIX, decode_unit_key

    monkeypatch.setattr(zone_stage, "UNIT_PART_BYTES", 2_000)

    async def run() -> None:
        h = Harness(internal_format=internal_format)
        h.zone.restore({0: Recovered()})  # the books made with this format's cap
        h.settings.close_idle_changes = 0
        h.zone.ready.set()
        midnight = (NOW - timedelta(days=100)).replace(hour=0, minute=0, second=0)
        old = midnight + timedelta(minutes=30)
        await h.send(  # separate events of one day: an hour apart
            *(
                report(f"r{i}", occurred_at=(old + timedelta(hours=i)).isoformat())
                for i in range(20)
            )
        )
        await h.zone.sweep()
        keys = [k for k, _ in h.changelog("incident-book") if k.startswith(UNIT_PREFIX)]
        numbers = sorted(decode_unit_key(k)[2] for k in keys)
        values = [v for k, v in h.changelog("incident-book") if k.startswith(UNIT_PREFIX)]
        if parts:
            assert numbers == list(range(len(numbers))) and len(numbers) > 1, numbers
            assert max(map(len, values)) <= 2_000
        else:
            assert numbers == [0], numbers
        again = Harness(internal_format=internal_format)
        again.zone.restore({0: recovered(h, "incident-book")})
        assert again.zone.books[0].archive.reports == 20

    asyncio.run(run())
