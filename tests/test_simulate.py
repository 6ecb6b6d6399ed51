"""The synthetic report stream, without a broker: deterministic, valid, realistic."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.report import Report, WithdrawnReport
from schemas.validation import Rejection, validate_report
from streams.classify import Gazetteer
from streams.tools.bench_reports import bench_reports
from streams.tools.sim_world import PLACES
from streams.tools.simulate import Simulator, report_key_bytes

START = datetime(2021, 5, 1, tzinfo=UTC)
RATE = 20.0


def stream(seed: int, n: int = 2000, **kwargs: Any) -> tuple[Simulator, list[Any]]:
    """(simulator, [(clock at emission, object or None, bytes)])"""
    sim = Simulator(seed, start=START, **kwargs)
    out = []
    for doc, raw in sim.stream(RATE):
        out.append((sim.clock, doc, raw))
        if len(out) >= n:
            break
    return sim, out


def nearest_place(doc: dict[str, Any]) -> str:
    loc = doc["location"]
    if "lat" not in loc:
        return str(loc["place"])
    return min(
        PLACES, key=lambda p: (PLACES[p][0] - loc["lat"]) ** 2 + (PLACES[p][1] - loc["lon"]) ** 2
    )


def test_same_seed_same_stream_byte_for_byte() -> None:
    a = list(Simulator(3, start=START).reports(2000))
    b = list(Simulator(3, start=START).reports(2000))
    assert a == b
    assert list(Simulator(3, start=START, malformed_ratio=0.1).messages(500)) == list(
        Simulator(3, start=START, malformed_ratio=0.1).messages(500)
    )
    assert a != list(Simulator(4, start=START).reports(2000))


def test_every_report_is_valid_and_in_the_past_of_the_simulated_clock() -> None:
    sim, items = stream(3)
    gazetteer = Gazetteer.load()
    withdrawals = 0
    for clock, doc, raw in items:
        assert json.loads(raw) == doc
        result = validate_report(raw, now=clock)
        if isinstance(result, WithdrawnReport):
            withdrawals += 1
            continue
        assert isinstance(result, Report), (result, doc)
        assert result.occurred_at <= clock
        if result.reported_at is not None:
            assert result.occurred_at <= result.reported_at <= clock
        if "place" in doc["location"]:
            assert gazetteer.resolve(doc["location"]["place"]) is not None
    assert sim.stats.malformed == 0
    assert withdrawals == sim.stats.withdrawals > 0


def test_the_stream_has_duplicates_revisions_late_reports_bursts_and_casualties() -> None:
    sim, items = stream(3)
    docs = [doc for _c, doc, _r in items if not doc.get("withdrawn")]
    # exact re-sends (and stale copies of a first version), about 4 %; revisions of a report
    # are the same identity at a higher revision
    sent: set[bytes] = set()
    revision: dict[bytes, int] = {}
    duplicates = revised = 0
    for _clock, doc, raw in items:
        key = report_key_bytes(doc)
        assert key is not None
        if raw in sent:
            duplicates += 1
        elif key in revision:
            assert doc.get("revision", 0) > revision[key]
            revised += 1
        sent.add(raw)
        revision[key] = max(revision.get(key, -1), doc.get("revision", 0))
    assert 20 <= duplicates <= 120
    assert duplicates == sim.stats.duplicates + sim.stats.stale
    assert revised == sim.stats.revisions + sim.stats.withdrawals
    assert sim.stats.revisions >= 20 and sim.stats.withdrawals >= 5
    # late: some occurred a day or more before they were sent, some hours
    lags = [
        c - datetime.fromisoformat(d["occurred_at"]) for c, d, _r in items if "occurred_at" in d
    ]
    assert sum(lag > timedelta(days=1) for lag in lags) >= 20
    assert sum(timedelta(hours=3) < lag < timedelta(days=1) for lag in lags) >= 20
    # bursts: a window where one place dominates (the background never does)
    assert sim.bursts
    near = [nearest_place(d) for d in docs]
    overall = Counter(near).most_common(1)[0][1] / len(near)
    assert overall < 0.3
    best = max(Counter(near[i : i + 40]).most_common(1)[0][1] for i in range(len(near) - 40))
    assert best >= 20
    # casualties are rare: killed ~2 %, wounded ~5 %
    killed = sum(1 for d in docs if d.get("casualties", {}).get("killed"))
    wounded = sum(1 for d in docs if d.get("casualties", {}).get("wounded"))
    assert 0.005 * len(docs) <= killed <= 0.05 * len(docs)
    assert 0.02 * len(docs) <= wounded <= 0.10 * len(docs)


def test_sources_parties_and_categories_look_like_the_theatre() -> None:
    _sim, items = stream(5, 3000)
    docs = [doc for _c, doc, _r in items if not doc.get("withdrawn")]
    categories = Counter(d["category"] for d in docs)
    assert categories.most_common(1)[0][0] == "small_arms_fire"
    assert categories["heavy_weapons_fire"] < categories["small_arms_fire"] / 3
    for rare in ("drone_strike", "obstruction_of_movement", "mine_incident", "detention"):
        assert categories[rare] > 0, rare
    statements = [d for d in docs if d["source_type"] == "party_statement"]
    assert statements and all(d["occurred_at"].endswith("+04:00") for d in statements)
    accusations = {d.get("perpetrator") for d in statements}
    assert {"Armenian Armed Forces", "Azerbaijani Armed Forces"} <= accusations
    assert accusations & {"AZ MoD", "Artsakh Defence Army", "AFA", "AM MoD"}
    az = [d for d in statements if d["source"] == "az-mod"]
    assert az and not any("Azerbaijan" in str(d.get("perpetrator")) for d in az)
    posts = [d for d in docs if d["source_type"] == "observation_post"]
    unattributed = [
        d for d in posts if d.get("perpetrator") in (None, "", "unknown", "unidentified")
    ]
    assert len(unattributed) >= 0.4 * len(posts)
    corridor = [d for d in docs if d["category"] == "obstruction_of_movement"]
    assert any(d.get("target") in ("civilians", "Russian peacekeepers", "RPKF") for d in corridor)
    assert any("place" in d["location"] and "lat" not in d["location"] for d in docs)


def test_a_report_at_a_towns_point_names_no_other_place() -> None:
    """A town-precision report placed at its event's town (`_report_location`) keeps what it
    has (`_named_place`): another place named beside the town's point (the nearest to the
    event, or the next) made one report stand at one town and name a second; seed 1 sent
    10 such reports in its first 600 events' reports. Points still name places."""
    sim = Simulator(1, start=START)
    town = named = 0
    for event_id, doc in sim.events(600):
        location = doc.get("location", {})
        if "lat" not in location:
            continue
        if location.get("precision") == "town":
            town += 1
            event = sim.truth[event_id]
            assert location.get("place", event.town) == event.town, (event, doc)
        named += "place" in location
    assert town > 50 and named > 500


def test_malformed_only_when_asked() -> None:
    sim, items = stream(7, 1000, malformed_ratio=0.2)
    rejected = [
        raw for clock, _doc, raw in items if isinstance(validate_report(raw, now=clock), Rejection)
    ]
    assert 0.1 * len(items) <= len(rejected) <= 0.3 * len(items)
    assert sim.stats.malformed >= len(rejected)
    assert any(doc is None for _c, doc, _r in items)  # not even a JSON object
    # reports() yields only objects, malformed ones included as they are
    assert all(
        isinstance(d, dict) for d in Simulator(7, start=START, malformed_ratio=0.2).reports(300)
    )


def test_live_clock_never_reports_the_future() -> None:
    sim = Simulator(1)
    for doc in sim.reports(300, rate=1000):
        now = datetime.now(UTC)
        if doc.get("withdrawn"):
            continue
        assert datetime.fromisoformat(doc["occurred_at"]) <= now
        if "reported_at" in doc:
            assert datetime.fromisoformat(doc["reported_at"]) <= now
    with pytest.raises(ValueError):
        Simulator(1, start=datetime(2021, 5, 1))  # naive


def test_bench_reports_are_distinct_valid_and_fast() -> None:
    now = datetime(2021, 6, 1, tzinfo=UTC)
    docs = list(bench_reports(5000, seed=1, now=now))
    assert docs == list(bench_reports(5000, seed=1, now=now))
    assert len(set(docs)) == 5000
    assert len({json.loads(d)["report_id"] for d in docs}) == 5000
    results = [validate_report(d, now=now) for d in docs]
    assert all(isinstance(r, Report) for r in results)
    reports = [r for r in results if isinstance(r, Report)]
    # spread over the year before `now` (a backfill), at a density linking meets in the theatre
    assert all(timedelta(0) <= now - r.occurred_at <= timedelta(days=365) for r in reports)
    recent = sum(now - r.occurred_at <= timedelta(days=1) for r in reports)
    assert 0 < recent < 0.01 * len(reports)
    day = [validate_report(d, now=now) for d in bench_reports(500, seed=1, now=now, days=1)]
    assert all(isinstance(r, Report) and now - r.occurred_at <= timedelta(days=1) for r in day)
    assert 200 <= sum(map(len, docs)) / len(docs) <= 320
    started = time.perf_counter()
    assert sum(1 for _ in bench_reports(200_000, seed=2, now=now)) == 200_000
    assert time.perf_counter() - started < 15
