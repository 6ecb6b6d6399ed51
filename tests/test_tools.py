"""Simulator and feed formats, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from schemas.validation import Rejection, validate_report
from streams.tools.formats import read_lines
from streams.tools.simulate import Simulator, bench_reports

START = datetime(2021, 5, 1, tzinfo=UTC)
LATER = datetime(2021, 6, 1, tzinfo=UTC)


def test_simulator_is_deterministic_valid_and_realistic() -> None:
    a = list(Simulator(3, start=START).reports(2000))
    b = list(Simulator(3, start=START).reports(2000))
    assert a == b
    for doc in a:
        assert not isinstance(validate_report(json.dumps(doc).encode(), now=LATER), Rejection), doc
    keys = [(d["source"], d["report_id"]) for d in a]
    assert len(keys) - len(set(keys)) > 20  # verbatim re-sends
    assert any(d.get("casualties", {}).get("killed") for d in a)
    assert any("place" in d["location"] for d in a)
    assert any(d["source_type"] == "party_statement" for d in a)


def test_bench_reports_are_distinct_and_valid() -> None:
    docs = list(bench_reports(500, seed=1, now=LATER))
    assert len({json.loads(d)["report_id"] for d in docs}) == 500
    assert all(not isinstance(validate_report(d, now=LATER), Rejection) for d in docs)


def test_jsonl_lines_pass_through_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{broken\n\xff\n')
    assert list(read_lines(str(path), "jsonl")) == [(1, b'{"a": 1}'), (3, b"{broken"), (4, b"\xff")]


def test_csv_and_acled_rows_convert_and_bad_rows_are_kept(tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "report_id,source,source_type,occurred_at,lat,lon,category,killed\n"
        "c1,ngo-x,ngo,2021-05-01T10:00:00Z,39.75,46.74,mine_incident,1\n"
        "c2,ngo-x,ngo,2021-05-01T10:00:00Z,north,46.74,mine_incident,\n"
    )
    rows = list(read_lines(str(csv_path), "csv"))
    first = json.loads(rows[0][1])
    assert first["location"] == {"lat": 39.75, "lon": 46.74}
    assert first["casualties"] == {"killed": 1}
    assert not isinstance(validate_report(rows[0][1], now=LATER), Rejection)
    assert isinstance(
        validate_report(rows[1][1], now=LATER), Rejection
    )  # kept, and rejected downstream

    acled = tmp_path / "acled.csv"
    acled.write_text(
        "event_id_cnty,event_date,event_type,sub_event_type,actor1,actor2,latitude,longitude,fatalities,notes\n"
        "AZE123,2021-05-01,Explosions/Remote violence,Shelling/artillery/missile attack,"
        "Military Forces of Armenia,Military Forces of Azerbaijan,"
        "39.99,46.93,2,shelling near Aghdam\n"
    )
    ((_line, raw),) = read_lines(str(acled), "acled")
    doc = json.loads(raw)
    assert doc["category"] == "heavy_weapons_fire" and doc["source_type"] == "dataset"
    assert doc["casualties"] == {"killed": 2}
    assert not isinstance(validate_report(raw, now=LATER), Rejection)
