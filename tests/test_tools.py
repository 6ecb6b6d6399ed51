"""Simulator and feed formats, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from schemas.report import Report, WithdrawnReport
from schemas.validation import Rejection, validate_report
from streams.tools.bench_reports import bench_reports
from streams.tools.formats import read_lines
from streams.tools.replay import latest_revisions
from streams.tools.simulate import Simulator

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


# -- the latest revision of each report, for offline replays -------------------------------
def _version(revision: int, **changes: object) -> Report | WithdrawnReport:
    doc: dict[str, object] = {
        "report_id": "r1",
        "source": "pkf-op-1",
        "source_type": "patrol",
        "occurred_at": "2021-05-01T10:00:00Z",
        "location": {"lat": 39.8, "lon": 46.7},
        "category": "small_arms_fire",
        "revision": revision,
    }
    doc.update(changes)
    result = validate_report(json.dumps({k: v for k, v in doc.items() if v is not None}).encode())
    assert not isinstance(result, Rejection), result
    return result


def _withdrawal(revision: int, report_id: str = "r1") -> Report | WithdrawnReport:
    return _version(
        revision,
        report_id=report_id,
        withdrawn=True,
        source_type=None,
        occurred_at=None,
        location=None,
        category=None,
    )


def test_latest_revisions_keep_the_highest_revision_of_each_report() -> None:
    latest = latest_revisions(
        [
            _version(1, category="other"),
            _version(3, category="drone_strike"),
            _version(2, category="heavy_weapons_fire"),  # read after 3: stale
            _version(0, report_id="r2"),
            _version(0, report_id="r2"),  # a re-send
            _version(0, report_id="r2", category="other"),  # the same revision, other content
        ]
    )
    assert [(r.report_id, r.revision, r.category.value) for r in latest.reports] == [
        ("r1", 3, "drone_strike"),
        ("r2", 0, "small_arms_fire"),  # the first of a conflict stays
    ]
    assert (latest.superseded, latest.stale, latest.duplicates, latest.conflicts) == (1, 1, 1, 1)
    assert latest.withdrawn == 0


def test_a_resend_the_worker_reads_as_the_same_content_is_a_duplicate() -> None:
    """The models compared whole called these re-sends conflicts (rejected), where the
    worker, comparing the digest of the report as sent, counts them as duplicates: an
    arrival time given, zero casualties written out, the time in another offset."""
    latest = latest_revisions(
        [
            _version(0),
            _version(0, reported_at="2021-05-01T10:30:00Z"),
            _version(0, casualties={"killed": 0, "wounded": 0}),
            _version(0, occurred_at="2021-05-01T14:00:00+04:00"),
            _version(0, casualties={"killed": 1}),  # other content: a conflict
        ]
    )
    assert (latest.duplicates, latest.conflicts) == (3, 1)
    assert [r.casualties for r in latest.reports] == [None]  # the first stays


def test_latest_revisions_drop_withdrawn_reports() -> None:
    latest = latest_revisions(
        [
            _version(0),
            _withdrawal(5),
            _version(4, category="other"),  # older than the withdrawal: stays withdrawn
            _withdrawal(5),  # the same withdrawal again
            _version(1, report_id="r2"),
            _withdrawal(1, report_id="r2"),  # a withdrawal at the report's revision: conflict
            _withdrawal(2, report_id="r3"),  # withdraws what never came
        ]
    )
    assert [(r.report_id, r.revision) for r in latest.reports] == [("r2", 1)]
    assert latest.withdrawn == 2
    assert (latest.superseded, latest.stale, latest.duplicates, latest.conflicts) == (1, 1, 1, 1)


def test_latest_revisions_do_not_depend_on_the_order_of_distinct_revisions() -> None:
    versions = [_version(n, category=c) for n, c in enumerate(["other", "drone_strike", "other"])]
    versions.append(_withdrawal(3, report_id="r9"))
    versions.append(_version(2, report_id="r9"))
    ends = {
        tuple((r.report_id, r.revision) for r in latest_revisions(order).reports)
        for order in (versions, versions[::-1], versions[1:] + versions[:1])
    }
    assert ends == {(("r1", 2),)}
