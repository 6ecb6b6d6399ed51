"""The identity and zone stages on in-memory fakes: revisions, withdrawals, conflicts,
linking, what is published and written, and recovery from what was written. No broker,
no Faust worker: milliseconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.report import Report
from schemas.validation import validate_report
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.pipeline.identity_stage import IdentityStage
from streams.pipeline.packs import unpack
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports
from streams.pipeline.zone_stage import ZoneStage
from streams.record.linking import LinkRule
from streams.record.revisions import Outcome
from streams.store.changelog import APPLIED_KEY, Recovered
from streams.tallies.state import query
from tests.fakes import FakeProducer

pytestmark = pytest.mark.timeout(30)

NOW = datetime.now(UTC).replace(microsecond=0)
CLASSIFIER = Classifier(ZoneCatalogue.load(), Gazetteer.load())
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
    """Both stages over one partition each, wired as the worker wires them."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.producer = FakeProducer()
        self.dead: list[tuple[str, DeadRecord]] = []

        async def producer() -> Any:
            return self.producer

        async def partitions_of(topic: str) -> list[int]:
            return [0]

        async def dead_letter(topic: str, records: Sequence[DeadRecord], reason: str) -> None:
            self.dead.extend((reason, r) for r in records)

        ports = Ports(
            settings=self.settings,
            app=FakeApp(),  # type: ignore[arg-type]
            producer=producer,
            partitions_of=partitions_of,
            dead_letter=dead_letter,
            readiness_changed=lambda: None,
        )
        self.identity = IdentityStage(ports)
        self.zone = ZoneStage(ports, LinkRule())
        self.identity.restore({0: Recovered()})
        self.zone.restore({0: Recovered()})
        self.offsets = {"identity": 0, "zone": 0}

    def changelog(self, table: str) -> list[tuple[bytes, bytes]]:
        return [
            (k or b"", v or b"")
            for _, k, v in self.producer.sent[f"{table}-changelog"]
            if k != APPLIED_KEY
        ]

    async def send(self, *docs: dict[str, Any]) -> None:
        raws = []
        for doc in docs:
            report = validate_report(json.dumps(doc).encode(), now=NOW)
            assert not hasattr(report, "reason"), report
            assert isinstance(report, Report) or report.withdrawn  # type: ignore[union-attr]
            classified = CLASSIFIER.document(report, NOW)  # type: ignore[arg-type]
            raws.append(classified.model_dump_json().encode())
        await self._step(self.identity, "identity", b"\n".join(raws))
        forwarded = self.producer.sent.pop(self.settings.zone_reports_topic, [])
        for _, _, pack in forwarded:
            assert pack is not None
            await self._step(self.zone, "zone", pack)

    async def _step(self, stage: Any, name: str, pack: bytes) -> None:
        offset = self.offsets[name]
        self.offsets[name] += 1
        await stage._apply([Record(0, offset, pack)])

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

    asyncio.run(run())


def test_one_event_reported_three_times_is_one_incident_never_summed() -> None:
    async def run() -> None:
        h = Harness()
        await h.send(
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
        )
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
        opened = {d["incident_id"] for d in alert_inputs if d["kind"] == "report"}
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


def test_a_failed_commit_is_retried_with_what_the_step_produced() -> None:
    async def run() -> None:
        h = Harness()
        original = h.zone.store.write_many
        failures = [1]

        async def flaky(*args: Any) -> None:
            if failures[0]:
                failures[0] -= 1
                raise ConnectionError("broker away")
            await original(*args)

        h.zone.store.write_many = flaky  # type: ignore[method-assign,assignment]
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
