"""The incidents API and command end to end: reports through a real broker (Tansu) and a
real worker, linked into incidents, listed, paged, exported and shown with their reports.

Expected figures follow from the reports sent here and SPEC.md's rules, not from the
monitor's code."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NOW = datetime.now(UTC).replace(microsecond=0)
TOKEN = "s3cret"


def report(rid: str, source: str, source_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "report_id": rid,
        "source": source,
        "source_type": source_type,
        "occurred_at": (NOW - timedelta(minutes=40)).isoformat(),
        "location": {"lat": 39.758, "lon": 46.748},  # Shusha
        "category": "heavy_weapons_fire",
        **extra,
    }


# One shelling: an observation post, and both ministries accusing each other (minutes and a
# kilometre apart); and an unrelated event in another zone, later.
EVENT = [
    report(
        "op-1", "pkf-op-12", "observation_post", perpetrator="AZ MoD", casualties={"wounded": 1}
    ),
    report(
        "az-1",
        "az-mod",
        "party_statement",
        claimant="az",
        perpetrator="am",
        occurred_at=(NOW - timedelta(minutes=35)).isoformat(),
        location={"lat": 39.765, "lon": 46.752},
        casualties={"killed": 2},
    ),
    report(
        "am-1",
        "am-mod",
        "party_statement",
        claimant="am",
        perpetrator="az",
        occurred_at=(NOW - timedelta(minutes=30)).isoformat(),
    ),
]
OTHER = report(
    "op-7",
    "pkf-op-7",
    "patrol",
    category="small_arms_fire",
    location={"lat": 39.993, "lon": 46.930},  # loc-east
    occurred_at=(NOW - timedelta(minutes=5)).isoformat(),
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "incidents", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_reports_of_one_event_are_one_incident_listed_paged_exported_and_shown(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    started = time.monotonic()
    worker = Worker(broker, tmp_path, env={"CEASEFIRE_API_TOKEN": TOKEN}).start()
    try:
        status, body = worker.post("/api/v1/reports", [*EVENT, OTHER], token=TOKEN)
        assert status == 202 and len(body["accepted"]) == 4, body

        def settled() -> list[dict[str, Any]] | None:
            status, body = worker.get("/api/v1/incidents")
            if status != 200 or len(body["incidents"]) != 2:
                return None
            if sorted(len(i["reports"]) for i in body["incidents"]) != [1, 3]:
                return None
            incidents: list[dict[str, Any]] = body["incidents"]
            return incidents

        incidents = wait_for(settled, timeout=60, what="2 incidents of 4 reports")
        other, event = incidents  # newest first: the later, unrelated one first
        assert (other["zone"], other["category"], len(other["reports"])) == (
            "loc-east",
            "small_arms_fire",
            1,
        )
        assert event["zone"] == "shusha" and event["status"] == "open"
        assert event["verification"] == "observed"
        assert event["attribution"] == "az"  # what the post observed
        assert event["claims"] == {"az": "am", "am": "az"}
        assert (event["killed"], event["wounded"]) == (0, 1)  # the observed figures
        assert {r["source"] for r in event["reports"]} == {"pkf-op-12", "az-mod", "am-mod"}

        # pages of one, following next_cursor
        seen, cursor = [], ""
        for _ in range(4):
            status, page = worker.get(f"/api/v1/incidents?limit=1&cursor={cursor}")
            assert status == 200 and len(page["incidents"]) == 1
            seen.append(page["incidents"][0]["incident_id"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [other["incident_id"], event["incident_id"]]

        # filters
        status, page = worker.get("/api/v1/incidents?zone=shusha&verification=observed")
        assert [i["incident_id"] for i in page["incidents"]] == [event["incident_id"]]
        status, page = worker.get("/api/v1/incidents?attribution=contested")
        assert status == 200 and page["incidents"] == []
        status, page = worker.get("/api/v1/incidents?zone=atlantis")
        assert status == 400 and "unknown zone" in page["error"]

        # one incident, with its reports
        status, one = worker.get(f"/api/v1/incidents/{event['incident_id']}")
        assert status == 200
        reports = {r["source"]: r for r in one["reports"]}
        assert set(reports) == {"pkf-op-12", "az-mod", "am-mod"}
        az = reports["az-mod"]
        assert (az["report_id"], az["claimant"], az["perpetrator"], az["killed"]) == (
            "az-1",
            "az",
            "am",
            2,
        )
        assert az["verification"] == "alleged" and az["source_type"] == "party_statement"
        assert reports["pkf-op-12"]["perpetrator"] == "az"  # "AZ MoD" read as a party
        assert abs(az["lat"] - 39.765) < 1e-9
        status, missing = worker.get(f"/api/v1/incidents/{'0' * 8}-0000-5000-8000-{'0' * 12}")
        assert status == 404 and "no incident" in missing["error"]

        # CSV parses back to the same incidents
        status, text = worker.get("/api/v1/incidents?format=csv")
        assert status == 200 and isinstance(text, str)
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert [r["incident_id"] for r in rows] == seen
        assert rows[1]["claims"] == "am:az; az:am" and rows[1]["report_count"] == "3"

        # the command line, as an operator types it
        listed = cli("--url", worker.url)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.index(other["incident_id"]) < listed.stdout.index(event["incident_id"])
        shown = cli("--url", worker.url, "--id", event["incident_id"])
        assert shown.returncode == 0, shown.stderr
        assert "3 reports" in shown.stdout
        assert all(s in shown.stdout for s in ("pkf-op-12", "az-mod", "am-mod", "az accuses am"))
        exported = cli("--url", worker.url, "--all", "--limit", "1", "--csv")
        assert [r["incident_id"] for r in csv.DictReader(io.StringIO(exported.stdout))] == seen
    finally:
        worker.stop()
    assert time.monotonic() - started < 150
