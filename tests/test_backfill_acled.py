"""Backfill (issue 11, item 4) on a real broker: years of ACLED history through
`ceasefire-monitor feed --format acled` into a worker, then a re-export with revised,
re-sent, stale and new events, then a restart.

The expected figures are computed here from the rows written, independently of the
monitor's code: ACLED rows are all of one source (`acled`), and reports of one source
never link (docs/record.md, "the linking rule"), so each event is its own incident and its
latest version (highest `timestamp`) is what counts.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.harness import Worker, read_topic, wait_for
from tests.test_classify import EXPECTED_ZONE
from tests.test_integration import as_table

pytestmark = pytest.mark.integration

GAZETTEER = Path(__file__).parents[1] / "streams" / "classify" / "data" / "gazetteer.json"
#: Places of the theatre ACLED names, each pinned to its zone by tests/test_classify.py.
PLACES = ("Shusha", "Lachin", "Aghdam", "Askeran", "Martakert", "Martuni", "Hadrut",
          "Stepanakert", "Kornidzor", "Goris", "Sotk", "Ijevan", "Kalbajar")  # fmt: skip
COLUMNS = (
    "event_id_cnty",
    "event_date",
    "time_precision",
    "event_type",
    "sub_event_type",
    "actor1",
    "actor2",
    "civilian_targeting",
    "admin1",
    "location",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "notes",
    "fatalities",
    "timestamp",
)
KINDS = (
    ("Battles", "Armed clash"),
    ("Explosions/Remote violence", "Shelling/artillery/missile attack"),
    ("Explosions/Remote violence", "Air/drone strike"),
    ("Explosions/Remote violence", "Remote explosive/landmine/IED"),
    ("Violence against civilians", "Attack"),
    ("Strategic developments", "Looting/property destruction"),
)
ACTORS = (
    "Military Forces of Azerbaijan (2003-)",
    "Military Forces of Armenia (2018-)",
    "Police Forces of Azerbaijan (2003-)",
    "Unidentified Armed Group (Armenia)",
)
#: The first day of the ceasefire, and the last of the history written (3.6 years).
FIRST_DAY, LAST_DAY = date(2020, 11, 10), date(2024, 6, 30)
#: ACLED writes dates either way in its exports.
DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y")


@dataclass(frozen=True)
class Event:
    event_id: str
    day: date
    place: str
    kind: tuple[str, str]
    actor1: str
    actor2: str
    fatalities: int
    stamp: int  # ACLED's `timestamp`: the revision


def places() -> dict[str, tuple[float, float]]:
    doc = json.loads(GAZETTEER.read_text(encoding="utf-8"))
    return {p["name"]: (p["lat"], p["lon"]) for p in doc["places"] if p["name"] in PLACES}


def history(rng: random.Random, n: int, first_id: int) -> list[Event]:
    span = (LAST_DAY - FIRST_DAY).days
    events = []
    for i in range(first_id, first_id + n):
        day = FIRST_DAY + timedelta(days=rng.randrange(span + 1))
        uploaded = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            days=rng.randrange(1, 30), seconds=rng.randrange(86_400)
        )
        events.append(
            Event(
                event_id=f"{rng.choice(('AZE', 'ARM'))}{i}",
                day=day,
                place=rng.choice(PLACES),
                kind=rng.choice(KINDS),
                actor1=rng.choice(ACTORS),
                actor2=rng.choice((*ACTORS, "Civilians (Azerbaijan)", "Civilians (Armenia)")),
                fatalities=rng.choice((0, 0, 0, 0, 1, 1, 2, 3, 7)),
                stamp=int(uploaded.timestamp()),
            )
        )
    return events


def export(path: Path, events: list[Event], *, bad_rows: int = 0) -> Path:
    """An ACLED CSV export of `events`, then `bad_rows` rows feed cannot convert."""
    where = places()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for k, e in enumerate(events):
        lat, lon = where[e.place]
        writer.writerow(
            (
                e.event_id,
                e.day.strftime(DATE_FORMATS[k % 2]),
                "1",
                *e.kind,
                e.actor1,
                e.actor2,
                "Civilian targeting" if e.actor2.startswith("Civilians") else "",
                "Karabakh",
                e.place,
                f"{lat}",
                f"{lon}",
                "2",
                "Trend; Armenpress",
                f'Event {e.event_id} near {e.place}, with a note, "quoted".',
                str(e.fatalities),
                str(e.stamp),
            )
        )
    for k in range(bad_rows):  # no date, no coordinates: sent as CSV text, dead-lettered
        writer.writerow((f"BAD{k}", "yesterday", "1", *KINDS[0], "", "", "", "", "", "", ""))
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def truth(events: list[Event]) -> dict[str, dict[str, int]]:
    """Tallies by zone of the latest version of each event: one incident, one report each."""
    latest: dict[str, Event] = {}
    for e in events:
        if e.event_id not in latest or e.stamp > latest[e.event_id].stamp:
            latest[e.event_id] = e
    table: dict[str, dict[str, int]] = {}
    for e in latest.values():
        row = table.setdefault(
            EXPECTED_ZONE[e.place], {"incidents": 0, "reports": 0, "killed": 0, "wounded": 0}
        )
        row["incidents"] += 1
        row["reports"] += 1
        row["killed"] += e.fatalities
    return table


def feed(worker: Worker, path: Path, *, also: tuple[str, ...] = (), timeout: float = 90) -> str:
    """`ceasefire-monitor feed PATH --format acled` on the worker's broker; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "feed", str(path), "--format", "acled", *also],
        env={**worker.env, "COLUMNS": "200"},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    return " ".join(output.split())


def totals(worker: Worker) -> dict[str, dict[str, int]] | None:
    rows = worker.tallies("all", "zone")
    table = as_table(rows)
    return None if table is None else {z: r for z, r in table.items() if any(r.values())}


def series_totals(worker: Worker) -> dict[str, dict[str, int]]:
    status, doc = worker.get("/api/v1/series?interval=1d&by=zone")
    assert status == 200, doc
    summed: dict[str, dict[str, int]] = {}
    for bucket in doc["buckets"]:
        for row in bucket["rows"]:
            into = summed.setdefault(
                row["zone"], {"incidents": 0, "reports": 0, "killed": 0, "wounded": 0}
            )
            for figure in into:
                into[figure] += int(row[figure])
    return {z: r for z, r in summed.items() if any(r.values())}


def subscribed(broker: EmbeddedBroker) -> dict[str, tuple[int, str]]:
    """What a subscriber of `ceasefire.incidents` keeping the highest version of each
    incident id holds (SPEC.md): id -> (version, status)."""
    top: dict[str, tuple[int, str]] = {}
    for record in read_topic(broker.bootstrap, "ceasefire.incidents", expect=1):
        doc = json.loads(record.value)
        held = top.get(doc["incident_id"])
        if held is None or doc["version"] > held[0]:
            top[doc["incident_id"]] = (doc["version"], doc["status"])
    return top


def listed(worker: Worker) -> dict[str, int]:
    """The open incidents `GET /api/v1/incidents` lists, every page: id -> version."""
    found: dict[str, int] = {}
    cursor = ""
    while True:
        status, page = worker.get(f"/api/v1/incidents?limit=1000{cursor}")
        assert status == 200, page
        found.update((i["incident_id"], i["version"]) for i in page["incidents"])
        if page["next_cursor"] is None:
            return found
        cursor = f"&cursor={page['next_cursor']}"


def misread(broker: EmbeddedBroker, worker: Worker) -> list[str]:
    """Incident ids a subscriber keeping the highest versions holds other than the API
    lists: open there and not listed, listed and not open there, or at another version."""
    held = {i: v for i, (v, status) in subscribed(broker).items() if status == "open"}
    api = listed(worker)
    return sorted({i for i in held.keys() | api.keys() if held.get(i) != api.get(i)})


def outcomes(worker: Worker) -> dict[str, int]:
    names = ("new", "revised", "duplicate", "stale", "conflict", "withdrawn")
    return {
        name: int(worker.metric("ceasefire_report_versions_total", {"outcome": name}))
        for name in names
    }


def headline(output: str) -> dict[str, int]:
    """The feed's own count: lines sent, valid, re-sent duplicates, will be rejected."""
    found = re.search(
        r"sent (\d+) lines to \S+ in [\d.]+ s: of \d+ read, (\d+) valid \((\d+) re-sent "
        r"duplicates, counted once\), (\d+) will be rejected",
        output,
    )
    assert found is not None, output
    sent, valid, duplicates, rejected = (int(g) for g in found.groups())
    return {"sent": sent, "valid": valid, "duplicates": duplicates, "rejected": rejected}


@pytest.mark.timeout(240)
def test_acled_history_backfills_once_updates_revisions_and_survives_a_restart(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rng = random.Random(20201110)
    first = history(rng, 3000, 1)
    # The re-export: 10 % revised (other fatalities, a third of them also another place),
    # 5 % stale (an older timestamp: ignored), the rest sent again as they were; 80 new.
    second: list[Event] = []
    kinds = {"revised": 0, "stale": 0, "duplicate": 0}
    for e in first:
        roll = rng.random()
        if roll < 0.10:
            moved = rng.choice(PLACES) if rng.random() < 1 / 3 else e.place
            fatalities = (e.fatalities + rng.randrange(1, 5)) % 9
            second.append(replace(e, place=moved, fatalities=fatalities, stamp=e.stamp + 86_400))
            kinds["revised"] += 1
        elif roll < 0.15:
            second.append(replace(e, fatalities=e.fatalities + 20, stamp=e.stamp - 3600))
            kinds["stale"] += 1
        else:
            second.append(e)
            kinds["duplicate"] += 1
    fresh = history(rng, 80, 10_000)
    second += fresh
    rng.shuffle(second)
    expected_first, expected = truth(first), truth(first + second)
    assert expected != expected_first and len(expected) == 10 and "outside" not in expected

    worker = Worker(broker, tmp_path).start()
    try:
        # five rows twice in the file (counted once), two rows it cannot convert
        out = feed(worker, export(tmp_path / "acled-1.csv", first + first[:5], bad_rows=2))
        assert headline(out) == {"sent": 3007, "valid": 3005, "duplicates": 5, "rejected": 2}
        # the rows it could not convert, by reason, and the first of them by line
        assert re.search(r"invalid_json\W+2\W", out), out
        assert re.search(r"3007\W+invalid_json\W.*3008\W+invalid_json\W", out), out
        # and the worker's dead letters for them say why too
        dlq = read_topic(broker.bootstrap, "ceasefire.reports.dlq", expect=2)
        messages = [json.loads(r.value)["message"] for r in dlq]
        assert len(messages) == 2, messages
        for m in messages:
            assert m.startswith("a CSV row the feed could not convert (event_date 'yesterday'"), m
        wait_for(lambda: totals(worker) == expected_first, timeout=90, what="first import")
        assert series_totals(worker) == expected_first

        out = feed(worker, export(tmp_path / "acled-2.csv", second))
        n2 = len(second)
        assert headline(out) == {"sent": n2, "valid": n2, "duplicates": 0, "rejected": 0}
        kinds["duplicate"] += 5  # those of the first file
        want = {"new": 3000 + len(fresh), **kinds, "conflict": 0, "withdrawn": 0}
        wait_for(lambda: outcomes(worker) == want, timeout=90, what=f"versions {want}")
        wait_for(lambda: totals(worker) == expected, timeout=30, what="re-export counted")
        assert series_totals(worker) == expected
        assert worker.metric("ceasefire_reports_rejected_total") == 2
        # A subscriber of `ceasefire.incidents` ends with the incidents the API lists. Moves
        # to a zone of another partition (a third of the revised events move) publish the id
        # withdrawn in the old zone and open in the new, the new one's version above the old
        # through a version floor that follows the move (so: waited for).
        wrong: list[str] = []

        def agreed() -> bool:
            wrong[:] = misread(broker, worker)
            return not wrong

        try:
            wait_for(agreed, timeout=30, what="the subscriber's incidents")
        except TimeoutError:
            pytest.fail(f"{len(wrong)} incident ids read otherwise than listed: {wrong[:5]}")
        assert len(listed(worker)) == sum(row["incidents"] for row in expected.values())
    finally:
        stopped = worker.stop()
    assert stopped == 0  # SIGTERM: a clean stop
    worker = Worker(broker, tmp_path).start(ready_timeout=90)  # same data directory
    try:
        assert totals(worker) == expected
        assert series_totals(worker) == expected
        assert misread(broker, worker) == []  # the rebuilt books list the versions published

        # A third export without 100 events ACLED deleted, withdrawn by comparing it with
        # the second: the tallies are those of the events it still has.
        before = outcomes(worker)
        assert before["withdrawn"] == 0
        latest = {e.event_id: e for e in sorted(first + second, key=lambda e: e.stamp)}
        deleted = set(rng.sample(sorted(latest), 100))
        third = [e for e in latest.values() if e.event_id not in deleted]
        days = [e.day for e in third]
        assert all(min(days) <= latest[d].day <= max(days) for d in deleted)
        out = feed(
            worker,
            export(tmp_path / "acled-3.csv", third),
            also=("--withdraw-missing-from", str(tmp_path / "acled-2.csv")),
        )
        assert "100 events of acled-2.csv are absent from acled-3.csv within its dates" in out
        assert re.search(r"withdraw a report\W+100\W", out), out
        # Each withdrawal retracts the version acled-2 held (its timestamp + 1): where that
        # row was stale (older than acled-1's, which the record holds), so is the withdrawal,
        # and the event stays counted. ACLED's own timestamps only grow; this export's
        # stale rows are the test's.
        held = {e.event_id: e.stamp for e in second}
        kept = [latest[d] for d in deleted if held[d] < latest[d].stamp]
        assert 0 < len(kept) < 20, len(kept)
        # (this worker's counts began at its start)
        want = {
            **before,
            "duplicate": before["duplicate"] + len(third),
            "withdrawn": 100 - len(kept),
            "stale": before["stale"] + len(kept),
        }
        wait_for(lambda: outcomes(worker) == want, timeout=90, what=f"versions {want}")
        expected = truth(third + kept)
        wait_for(lambda: totals(worker) == expected, timeout=30, what="deleted events withdrawn")
        assert series_totals(worker) == expected
    finally:
        worker.stop()
