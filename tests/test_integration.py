"""End to end on a real broker (Tansu) with real worker processes.

Expected figures are computed here from the reports the test sends, independently
of the monitor's own code.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, produce, read_topic, wait_for

# Each test bounds its time above the sum of its own waits, which name what they wait for.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

NOW = datetime.now(UTC)
# Points well inside zones of the shipped catalogue.
POINTS = {
    "shusha": (39.758, 46.748),
    "loc-east": (39.993, 46.930),
    "loc-south": (39.795, 47.113),
    "lachin-corridor": (39.640, 46.545),
}


def report(
    i: int,
    zone: str,
    *,
    party: str = "Azerbaijani Armed Forces",
    ago: timedelta = timedelta(minutes=10),
    killed: int = 0,
    wounded: int = 0,
    source: str = "pkf-op-12",
) -> dict[str, Any]:
    lat, lon = POINTS[zone]
    return {
        "report_id": f"r-{i}",
        "source": source,
        "source_type": "observation_post",
        "occurred_at": (NOW - ago).isoformat(),
        "location": {"lat": lat, "lon": lon},
        "category": "small_arms_fire",
        "perpetrator": party,
        "casualties": {"killed": killed, "wounded": wounded},
    }


def scenario() -> tuple[list[bytes], dict[str, dict[str, int]], int, Counter[str]]:
    """Reports, duplicates and malformed inputs, with the tallies they must give (24h, by zone)."""
    docs = []
    zones = list(POINTS)
    for i in range(60):
        docs.append(
            report(
                i,
                zones[i % 4],
                party=["AZ MoD", "Armenian Armed Forces", "unidentified"][i % 3],
                killed=1 if i % 20 == 0 else 0,
                wounded=2 if i % 7 == 0 else 0,
            )
        )
    late = report(1000, "shusha", ago=timedelta(days=3))  # late: in 7d, not in 24h
    docs.append(late)
    values = [json.dumps(d).encode() for d in docs]
    values += values[:15]  # exact re-sends
    envelope = b'{"specversion":"1.0","id":"e","source":"s","type":"t","data":'
    malformed = [
        b"{not json",
        b'{"report_id": "x"}',
        json.dumps({**report(2000, "shusha"), "extra": 1}).encode(),
        json.dumps(report(2001, "shusha") | {"occurred_at": "2021-01-01T00:00:00"}).encode(),
        # hostile input, each of which once stalled the partition (ingest retried forever)
        envelope + b'{"report_id":"r-2002","source":"pkf-op-12","description":"\\ud800"}}',
        envelope + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"description": "' + b"x" * 600_000 + b'"}',  # its dead letter was over 1 MiB
        json.dumps(report(2003, "shusha")).encode().replace(b"39.758", b"NaN"),
    ]
    values += malformed
    expected: dict[str, dict[str, int]] = {}
    for d in docs[:60]:
        zone = next(
            z for z, p in POINTS.items() if p == (d["location"]["lat"], d["location"]["lon"])
        )
        row = expected.setdefault(zone, {"incidents": 0, "reports": 0, "killed": 0, "wounded": 0})
        row["incidents"] += 1
        row["reports"] += 1
        row["killed"] += d["casualties"]["killed"]
        row["wounded"] += d["casualties"]["wounded"]
    reasons = Counter(
        {
            "invalid_json": 1,
            "missing_field": 1,
            "unknown_field": 1,
            "missing_timezone": 1,
            "invalid_encoding": 1,
            "too_deep": 1,
            "too_large": 1,
            "invalid_value": 1,
        }
    )
    return values, expected, len(docs), reasons


def as_table(rows: list[dict[str, Any]] | None) -> dict[str, dict[str, int]] | None:
    if rows is None:
        return None
    return {
        r["zone"]: {k: r[k] for k in ("incidents", "reports", "killed", "wounded")} for r in rows
    }


def with_the_late_report(expected: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The 7-day tallies of `scenario`: its late report (r-1000, shusha) counts there too."""
    week = {zone: dict(row) for zone, row in expected.items()}
    week["shusha"]["incidents"] += 1
    week["shusha"]["reports"] += 1
    return week


def all_tallied(w: Worker, expected: dict[str, dict[str, int]]) -> bool:
    """`expected` in 24h, and the late report in 7d too: the late report may be applied
    after all the others (it is waited for on its own)."""
    return bool(
        as_table(w.tallies("24h", "zone")) == expected
        and as_table(w.tallies("7d", "zone")) == with_the_late_report(expected)
    )


def test_reports_through_kafka_are_validated_counted_and_dead_lettered(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    worker = Worker(broker, tmp_path).start()
    try:
        values, expected, distinct, reasons = scenario()
        produce(broker.bootstrap, "ceasefire.reports", values)
        # the late report counts in the 7-day window only
        wait_for(lambda: all_tallied(worker, expected), timeout=60, what="24h and 7d tallies")
        three_days_ago = (NOW - timedelta(days=3) + timedelta(minutes=1)).isoformat()
        past = as_table(worker.tallies("1h", "zone", as_of=three_days_ago))
        assert past == {"shusha": {"incidents": 1, "reports": 1, "killed": 0, "wounded": 0}}

        dead = read_topic(broker.bootstrap, "ceasefire.reports.dlq", expect=sum(reasons.values()))
        records = [json.loads(r.value) for r in dead]
        assert Counter(r["reason"] for r in records) == reasons
        for r in records:
            assert r["source_topic"] == "ceasefire.reports" and r["source_offset"] is not None
            original = base64.b64decode(r["original_base64"])
            assert r["original_truncated"] == (r["reason"] == "too_large")
            assert any(v.startswith(original) and len(v) == r["original_size"] for v in values)
        bad = next(r for r in records if r["reason"] == "unknown_field")
        assert bad["errors"][0]["field"] == "extra"

        incidents = read_topic(broker.bootstrap, "ceasefire.incidents", expect=distinct)
        assert len({json.loads(r.value)["incident_id"] for r in incidents}) == distinct
        assert len(incidents) == distinct  # re-sends were not published again

        # Counted by the identity stage once its step is forwarded and written (the zone
        # stage may tally it before), and by the ingest process: in the worker's metrics
        # within a status of the child (0.1 s).
        def counters() -> dict[str, float]:
            return {
                "reports": worker.metric("ceasefire_reports_total"),
                "duplicates": worker.metric("ceasefire_reports_duplicate_total"),
                "processed": worker.metric("ceasefire_processing_seconds_count"),
                **{
                    f"rejected {reason}": worker.metric(
                        "ceasefire_reports_rejected_total", {"reason": reason}
                    )
                    for reason in reasons
                },
            }

        counted = {
            "reports": distinct,
            "duplicates": 15,
            "processed": distinct,
            **{f"rejected {reason}": n for reason, n in reasons.items()},
        }
        wait_for(
            lambda: counters() == counted,
            timeout=20,
            what="reports, duplicates and rejections by reason in the worker's metrics",
            explain=lambda: f"counters: {counters()}",
        )
        assert worker.metric("ceasefire_reports_total") == distinct
        assert worker.metric("ceasefire_reports_duplicate_total") == 15
        for reason, n in reasons.items():
            assert worker.metric("ceasefire_reports_rejected_total", {"reason": reason}) == n
        assert worker.metric("ceasefire_casualties_total", {"kind": "killed"}) == 3
        assert (
            worker.metric("ceasefire_incidents_total", {"zone": "shusha", "severity": "critical"})
            == 3
        )  # i = 0, 20, 40
        assert worker.metric("ceasefire_processing_seconds_count") == distinct  # waited above
        # every stage's input partitions: reports, the keyed reports, the zone packs
        topics = ("ceasefire.reports", "ceasefire.reports.accepted", "ceasefire.incidents.by-zone")

        def lag_series() -> bool:
            text = worker.get("/metrics")[1]
            return all(
                text.count(f'ceasefire_consumer_lag_messages{{partition="{p}",topic="{t}"}}') == 1
                for t in topics
                for p in range(4)
            )

        wait_for(lag_series, timeout=20, what="lag gauge per input partition of every stage")
        wait_for(
            lambda: worker.metric("ceasefire_consumer_lag_messages") == 0,
            timeout=20,
            what="no lag once processed",
        )
    finally:
        worker.stop()


def test_http_api_accepts_rejects_and_serves_zones(broker: EmbeddedBroker, tmp_path: Path) -> None:
    worker = Worker(broker, tmp_path, env={"CEASEFIRE_API_TOKEN": "s3cret"}).start()
    try:
        good = [report(i, "loc-south", source="jmc-aghdam") for i in range(5)]
        bad = {**report(99, "loc-south"), "casualties": {"killed": -1}}
        place = {**report(100, "loc-south"), "location": {"place": "Shushi"}}
        status, _ = worker.post("/api/v1/reports", good)
        assert status == 401
        status, body = worker.post("/api/v1/reports", [*good, bad, place], token="s3cret")
        assert status == 202
        assert [a["index"] for a in body["accepted"]] == [0, 1, 2, 3, 4, 6]
        assert body["rejected"][0]["index"] == 5
        assert body["rejected"][0]["reason"] == "out_of_range"
        assert body["rejected"][0]["errors"][0]["field"] == "casualties.killed"
        status, body = worker.post("/api/v1/reports", b"{oops", token="s3cret")
        assert status == 400
        # Items are dead-lettered as sent (not re-serialised); `bearer` is a Bearer.
        as_sent = b'{ "report_id" :"r-\\u00e9",  "source": "x" }'
        status, body = worker.post(
            "/api/v1/reports", b"[\n" + as_sent + b"\n]", token="s3cret", scheme="bearer"
        )
        assert status == 202 and body["rejected"][0]["reason"] == "missing_field", body
        nested = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
        status, body = worker.post("/api/v1/reports", nested, token="s3cret")
        assert status == 400 and body["reason"] == "too_deep", body
        status, body = worker.get("/api/v1/tallies?as_of=nan")
        assert status == 400 and "as_of" in body["error"]

        wait_for(
            lambda: (
                as_table(worker.tallies("1h", "zone"))
                == {
                    "loc-south": {"incidents": 5, "reports": 5, "killed": 0, "wounded": 0},
                    "shusha": {"incidents": 1, "reports": 1, "killed": 0, "wounded": 0},
                }
            ),
            timeout=30,
            what="API reports tallied",
        )
        # the first report again at its revision with other content: a conflict, found
        # past ingest, dead-lettered as sent, where it was read (`Incident.input`)
        conflicting = json.dumps({**good[0], "casualties": {"killed": 2}}, indent=1).encode()
        status, body = worker.post("/api/v1/reports", conflicting, token="s3cret")
        assert status == 202, body
        dlq = read_topic(broker.bootstrap, "ceasefire.reports.dlq", expect=5)
        dead = [json.loads(r.value) for r in dlq]
        assert sorted(d["reason"] for d in dead) == [
            "invalid_json",
            "missing_field",
            "out_of_range",
            "revision_conflict",
            "too_deep",
        ]
        originals = {base64.b64decode(d["original_base64"]) for d in dead}
        assert {b"{oops", as_sent, nested, conflicting} <= originals
        [conflict] = [d for d in dead if d["reason"] == "revision_conflict"]
        assert conflict["source_topic"] == "ceasefire.reports", conflict
        [record] = [
            r
            for r in read_topic(broker.bootstrap, "ceasefire.reports", expect=7)
            if r.partition == conflict["source_partition"] and r.offset == conflict["source_offset"]
        ]
        assert record.value == conflicting
        # keyed by the report's identity, as the input record is
        identity = f"{good[0]['source']}\x1f{good[0]['report_id']}"
        assert conflict["key"] == identity and record.key == identity.encode()
        [conflict_record] = [r for r in dlq if json.loads(r.value)["reason"] == "revision_conflict"]
        assert conflict_record.key == identity.encode()

        status, zones = worker.get("/api/v1/zones")
        assert status == 200 and zones["type"] == "FeatureCollection"
        assert {"lachin-corridor", "shusha", "stepanakert"} <= {
            f["properties"]["id"] for f in zones["features"]
        }
        status, body = worker.get("/api/v1/tallies?window=2h")
        assert status == 400 and "unknown window" in body["error"]
    finally:
        worker.stop()


def test_counts_survive_a_restart_and_resent_reports_count_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    values, expected, distinct, _ = scenario()
    worker = Worker(broker, tmp_path).start()
    try:
        produce(broker.bootstrap, "ceasefire.reports", values)
        wait_for(lambda: all_tallied(worker, expected), timeout=60, what="tallies")
        # Every report known to the identity stage (counted after its step is written)
        # before it stops, the late one too: else the next worker counts what is left.
        wait_for(
            lambda: worker.metric("ceasefire_reports_total") == distinct,
            timeout=20,
            what=f"{distinct} reports counted",
        )
    finally:
        worker.stop()
    worker = Worker(broker, tmp_path, name="w1-again").start()
    try:
        assert as_table(worker.tallies("24h", "zone")) == expected
        produce(broker.bootstrap, "ceasefire.reports", values)  # everything again
        wait_for(
            lambda: worker.metric("ceasefire_reports_duplicate_total") >= distinct,
            timeout=60,
            what="re-sent reports seen as duplicates",
        )
        assert as_table(worker.tallies("24h", "zone")) == expected
        assert worker.metric("ceasefire_reports_total") == 0
    finally:
        worker.stop()


def test_two_workers_answer_completely_and_alike(broker: EmbeddedBroker, tmp_path: Path) -> None:
    values, expected, _, _ = scenario()
    w1 = Worker(broker, tmp_path, name="w1").start()
    w2 = None
    try:
        w2 = Worker(broker, tmp_path, name="w2").start()
        # both own partitions once the rebalance settles
        wait_for(
            lambda: (
                w1.metric("ceasefire_partitions_owned") + w2.metric("ceasefire_partitions_owned")
                == 4
                and w2.metric("ceasefire_partitions_owned") > 0
            ),
            timeout=60,
            what="partitions shared",
        )
        produce(broker.bootstrap, "ceasefire.reports", values)
        for w in (w1, w2):

            def complete(w: Worker = w) -> bool:  # the late report too: the 7d tallies
                return all_tallied(w, expected)

            wait_for(complete, timeout=60, what=f"{w.url} tallies")
        for by in ("party", "zone,party", "category"):
            rows = w1.tallies("7d", by)
            assert rows, f"by={by}: {w1.url} did not answer 200 with rows"
            assert rows == w2.tallies("7d", by), f"by={by}: the workers differ"
    finally:
        w1.stop()
        if w2 is not None:
            w2.stop()


def test_a_backlog_is_counted_in_steps_exactly_once_and_survives_a_restart(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A pre-loaded backlog gives batches far above STEP_RECORDS; every step writes its own
    changelog entries, all of which must survive recovery."""
    from streams.pipeline.packs import STEP_RECORDS
    from streams.tools.bench_reports import bench_reports

    n = 3 * STEP_RECORDS + 1000
    reports = bench_reports(n, seed=11, now=datetime.now(UTC), days=6.9)  # in the 7d window
    produce(broker.bootstrap, "ceasefire.reports", reports)

    def total(w: Worker) -> int | None:
        rows = w.tallies("7d", "zone")
        return None if rows is None else sum(int(r["reports"]) for r in rows)

    worker = Worker(broker, tmp_path).start()
    try:
        wait_for(lambda: total(worker) == n, timeout=120, what=f"{n} reports counted")
        assert worker.metric("ceasefire_reports_duplicate_total") == 0
    finally:
        worker.stop()
    worker = Worker(broker, tmp_path, name="again").start()
    try:
        wait_for(lambda: total(worker) == n, timeout=60, what="the same count after a restart")
    finally:
        worker.stop()


def test_junk_on_internal_topics_is_dead_lettered_and_counting_goes_on(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Only the monitor writes its internal topics; anything else found there goes to the
    dead-letter topic with the reason, and the stages keep working."""
    worker = Worker(broker, tmp_path).start()
    try:
        good = json.dumps(report(1, "shusha")).encode()
        partial = json.dumps({"source": "x", "report_id": "y"}).encode()
        produce(broker.bootstrap, "ceasefire.reports.accepted", [b"{not json", partial])
        produce(broker.bootstrap, "ceasefire.reports.by-zone", [b'{"op": "upsert"}'])
        produce(broker.bootstrap, "ceasefire.incidents.by-zone", [b"[1, 2]"])
        produce(broker.bootstrap, "ceasefire.reports", [good])
        wait_for(lambda: worker.metric("ceasefire_reports_total") == 1, timeout=30, what="count")
        dead = [
            json.loads(r.value)
            for r in read_topic(broker.bootstrap, "ceasefire.reports.dlq", expect=4)
        ]
        assert Counter(d["source_topic"] for d in dead) == {
            "ceasefire.reports.accepted": 2,
            "ceasefire.reports.by-zone": 1,
            "ceasefire.incidents.by-zone": 1,
        }
        assert {d["reason"] for d in dead} == {"invalid_value"}
        assert any("missing" in d["message"] for d in dead)
        assert {d["original_text"] for d in dead} == {
            "{not json",
            partial.decode(),
            '{"op": "upsert"}',
            "[1, 2]",
        }

        # Counted by each stage once its dead letters are acknowledged (the identity
        # stage's in its process, relayed by its status up to 0.1 s later): they can be on
        # the topic before; the zone stage tallies in its `committed()`.
        def rejected_and_tallied() -> tuple[float, int | None]:
            rows = as_table(worker.tallies("24h", "zone"))
            shusha = rows.get("shusha") if rows is not None else None
            return (
                worker.metric("ceasefire_reports_rejected_total", {"reason": "invalid_value"}),
                shusha["reports"] if shusha is not None else None,
            )

        wait_for(
            lambda: rejected_and_tallied() == (4, 1),
            timeout=20,
            what="4 rejected as invalid_value and the report tallied",
            explain=lambda: f"(rejected, shusha reports) = {rejected_and_tallied()}",
        )
    finally:
        worker.stop()
