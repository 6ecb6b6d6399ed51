"""Input formats of `feed`, and its summary, without a broker."""

from __future__ import annotations

import csv
import io
import json
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.record.default_records import DefaultRecordBatchBuilder
from rich.console import Console

import streams.tools.feed as feed
import streams.tools.formats as formats
from schemas.codes import RejectReason
from schemas.dead_letter import MAX_UNCONVERTED_CHARS, UNCONVERTED_HEADER
from schemas.report import Report, WithdrawnReport
from schemas.validation import MAX_MESSAGE_BYTES, Rejection, validate_report
from streams.config import Settings
from streams.record.documents import report_digest
from streams.tools.feed import FeedSummary, LineChecker, run_feed
from streams.tools.formats import HeaderError, _csv_records, read_lines

pytestmark = pytest.mark.timeout(60)

LATER = datetime(2021, 6, 1, tzinfo=UTC)

GOOD = {
    "report_id": "f1",
    "source": "pkf-op-3",
    "source_type": "patrol",
    "occurred_at": "2021-05-01T10:00:00Z",
    "location": {"place": "Hadrut"},
    "category": "mine_incident",
}


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return str(path)


# -- jsonl --------------------------------------------------------------------------
def test_jsonl_lines_pass_through_byte_for_byte(tmp_path: Path) -> None:
    lines = [
        b'{"a": 1}',
        b"",
        b"{broken",
        b"\xff\xfe not utf-8",
        b"   ",
        b'  {"spaced" :  true }  ',
        b'{"crlf": 1}\r',
    ]
    path = write(tmp_path, "in.jsonl", b"\n".join(lines))  # no final newline
    got = list(read_lines(path, "jsonl"))
    assert got == [
        (1, b'{"a": 1}'),
        (3, b"{broken"),
        (4, b"\xff\xfe not utf-8"),
        (6, b'  {"spaced" :  true }  '),
        (7, b'{"crlf": 1}'),
    ]


def test_a_jsonl_file_s_byte_order_mark_is_not_sent(tmp_path: Path) -> None:
    """An editor's UTF-8 BOM at the start of the file is the file's, not its first report's
    (which the schema would reject for it); one inside a later line is that line's."""
    path = write(tmp_path, "bom.jsonl", b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"b": 2}\n')
    assert list(read_lines(path, "jsonl")) == [(1, b'{"a": 1}'), (2, b'\xef\xbb\xbf{"b": 2}')]


def test_jsonl_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'{"x": 1}\n\nnot json\n'))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert list(read_lines("-", "jsonl")) == [(1, b'{"x": 1}'), (3, b"not json")]
    assert not stdin.closed


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        list(read_lines("-", "xml"))


# -- csv ----------------------------------------------------------------------------
CSV_HEADER = (
    "report_id,source,source_type,occurred_at,location.lat,lon,place,category,"
    "perpetrator,killed,wounded,civilian,description\n"
)


def test_csv_rows_become_reports(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "in.csv",
        "\ufeff"
        + CSV_HEADER
        + "c1,ngo-x,ngo,2021-05-01T10:00:00Z,39.75,46.74,,mine_incident,,1,,yes,\n"
        + "c2,ngo-x,ngo,2021-05-01T11:00:00+04:00,,,Shusha,small_arms_fire,AZ MoD,,2,,"
        + '"shots, then a burst\nnear the road"\r\n'
        + "\n"
        + "c3,ngo-x,ngo,2021-05-01T12:00:00Z,39.8,46.7,Lachin,other,,0,0,false,\n",
    )
    rows = list(read_lines(path, "csv"))
    assert [n for n, _ in rows] == [2, 3, 6]
    docs = [json.loads(raw) for _, raw in rows]
    assert docs[0] == {
        "report_id": "c1",
        "source": "ngo-x",
        "source_type": "ngo",
        "occurred_at": "2021-05-01T10:00:00Z",
        "location": {"lat": 39.75, "lon": 46.74},
        "category": "mine_incident",
        "casualties": {"killed": 1, "civilian": True},
    }
    assert docs[1]["location"] == {"place": "Shusha"}
    assert docs[1]["casualties"] == {"wounded": 2}
    assert docs[1]["perpetrator"] == "AZ MoD"
    assert docs[1]["description"] == "shots, then a burst\nnear the road"
    assert docs[2]["location"] == {"lat": 39.8, "lon": 46.7, "place": "Lachin"}
    assert docs[2]["casualties"] == {"killed": 0, "wounded": 0, "civilian": False}
    for _, raw in rows:
        assert isinstance(validate_report(raw, now=LATER), Report)


def test_csv_rows_with_the_revision_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rev.csv",
        "report_id,source,source_type,occurred_at,place,location.precision,category,"
        "revision,withdrawn,claimant,time_precision\n"
        "c1,az-mod,party_statement,2021-05-01T10:00:00Z,Shusha,region,other,3,false,"
        "AZ MoD,day\n"
        "c1,az-mod,,,,,,4,true,,\n"
        "c2,az-mod,party_statement,2021-05-01T10:00:00Z,Shusha,,other,three,no,,\n",
    )
    docs = [json.loads(raw) for _, raw in read_lines(path, "csv")]
    assert docs[0]["location"] == {"place": "Shusha", "precision": "region"}
    assert (docs[0]["revision"], docs[0]["withdrawn"]) == (3, False)
    assert (docs[0]["claimant"], docs[0]["time_precision"]) == ("AZ MoD", "day")
    assert docs[1] == {"report_id": "c1", "source": "az-mod", "revision": 4, "withdrawn": True}
    assert docs[2]["revision"] == "three"  # kept, for the schema to name
    results = [validate_report(json.dumps(d).encode(), now=LATER) for d in docs]
    assert isinstance(results[0], Report)
    assert isinstance(results[1], WithdrawnReport)
    assert isinstance(results[2], Rejection) and results[2].errors[0].field == "revision"


def test_csv_whole_numbers_as_a_spreadsheet_writes_them(tmp_path: Path) -> None:
    """pandas writes a column of whole numbers with a blank cell as 3.0, 1.0...: they are the
    whole numbers they are, as in `--format acled` (they were refused as no integer). A
    fraction, or what only Python's `int` reads as a number, is still refused by the
    schema, naming the field."""
    header = (
        "report_id,source,source_type,occurred_at,lat,lon,category,killed,wounded,"
        "revision,schema_version\n"
    )
    start = "ngo-x,ngo,2021-05-01T10:00:00Z,39.75,46.74,other"
    path = write(
        tmp_path,
        "pandas.csv",
        header
        + f"c1,{start},3.0,,2.0,1.0\n"
        + f"c2,{start},, 1.00 ,0.0,\n"
        + f"c3,{start},3.5,,,\n"
        + f"c4,{start},,1_0,,\n"
        + f"c5,{start},,,2.0.0,\n",
    )
    docs = [json.loads(raw) for _, raw in read_lines(path, "csv")]
    assert docs[0]["casualties"] == {"killed": 3}
    assert (docs[0]["revision"], docs[0]["schema_version"]) == (2, 1)
    assert docs[1]["casualties"] == {"wounded": 1} and docs[1]["revision"] == 0
    for doc in docs[:2]:
        assert isinstance(validate_report(json.dumps(doc).encode(), now=LATER), Report)
    refused = {
        "c3": ("casualties.killed", "3.5"),
        "c4": ("casualties.wounded", "1_0"),
        "c5": ("revision", "2.0.0"),
    }
    for doc in docs[2:]:
        field, cell = refused[doc["report_id"]]
        group, _, name = field.rpartition(".")
        assert (doc[group] if group else doc)[name] == cell  # kept as the cell it is
        result = validate_report(json.dumps(doc).encode(), now=LATER)
        assert isinstance(result, Rejection) and result.reason is RejectReason.INVALID_TYPE
        assert [e.field for e in result.errors] == [field]
        assert f"{field}: Input should be a valid integer" in result.message


@pytest.mark.parametrize("cell", ["3_9.75", "nan", "infinity", "\u0663\u0669.75", "39.75.1"])
def test_csv_coordinates_only_as_a_spreadsheet_writes_them(tmp_path: Path, cell: str) -> None:
    """Python's `float` reads "3_9.75" as 39.75, and "nan", "infinity" and the digits of
    other scripts: a cell that is no decimal number is kept as text, for the schema to name."""
    header = "report_id,source,source_type,occurred_at,lat,lon,category\n"
    path = write(
        tmp_path, "coords.csv", header + f"c1,ngo-x,ngo,2021-05-01T10:00:00Z,{cell},46.74,other\n"
    )
    [doc] = [json.loads(raw) for _, raw in read_lines(path, "csv")]
    assert doc["location"] == {"lat": cell, "lon": 46.74}
    result = validate_report(json.dumps(doc).encode(), now=LATER)
    assert isinstance(result, Rejection) and [e.field for e in result.errors] == ["location.lat"]


def test_csv_rows_that_cannot_be_converted_are_sent_as_their_original_text(
    tmp_path: Path,
) -> None:
    too_many = "c3,ngo-x,ngo,2021-05-01T10:00:00Z,39.7,46.74,,other,,,,,,surplus"
    data = (
        CSV_HEADER
        + too_many
        + "\r\n"
        + "c5,ngo-x,ngo,2021-05-01T10:00:00Z,39.7,46.74,,other,,,,,caf"
    ).encode() + b"\xe9\n"  # latin-1, not UTF-8
    path = write(tmp_path, "bad.csv", data)
    rows = list(read_lines(path, "csv"))
    assert [n for n, _ in rows] == [2, 3]
    assert rows[0][1] == too_many.encode()
    assert rows[1][1].endswith(b"caf\xe9")
    reasons = [validate_report(raw, now=LATER) for _, raw in rows]
    assert isinstance(reasons[0], Rejection) and reasons[0].reason is RejectReason.INVALID_JSON
    assert isinstance(reasons[1], Rejection) and reasons[1].reason is RejectReason.INVALID_ENCODING


@pytest.mark.parametrize(
    ("cells", "field", "kept"),
    [
        ("north,46.74,,,,", "location.lat", "north"),
        ("39.7,nan,,,,", "location.lon", "nan"),
        ("39.7,1e999,,,,", "location.lon", "1e999"),
        ("39.7,46.74,many,,,", "casualties.killed", "many"),
        ("39.7,46.74,,1.5,,", "casualties.wounded", "1.5"),
        ("39.7,46.74,,,perhaps,", "casualties.civilian", "perhaps"),
    ],
)
def test_csv_bad_numbers_are_named_by_field(
    tmp_path: Path, cells: str, field: str, kept: str
) -> None:
    # Once sent as the row's CSV text, these were all `invalid_json`, naming nothing.
    header = "report_id,source,source_type,occurred_at,lat,lon,killed,wounded,civilian,category\n"
    row = f"c1,ngo-x,ngo,2021-05-01T10:00:00Z,{cells}other\n"
    ((_, raw),) = read_lines(write(tmp_path, "bad.csv", header + row), "csv")
    doc = json.loads(raw)
    group, name = field.split(".")
    assert doc[group][name] == kept  # the cell, verbatim
    result = validate_report(raw, now=LATER)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.INVALID_TYPE, result
    assert [e.field for e in result.errors] == [field]
    assert field in result.message


def test_csv_unknown_columns_are_kept_for_the_schema_to_reject(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "x.csv",
        "report_id,source,source_type,occurred_at,lat,lon,category,colour\n"
        "c1,s,ngo,2021-05-01T10:00:00Z,39.7,46.7,other,red\n",
    )
    ((_, raw),) = read_lines(path, "csv")
    assert json.loads(raw)["colour"] == "red"
    result = validate_report(raw, now=LATER)
    assert isinstance(result, Rejection) and result.reason is RejectReason.UNKNOWN_FIELD


# -- acled --------------------------------------------------------------------------
ACLED_HEADER = (
    "event_id_cnty,event_date,event_type,sub_event_type,actor1,actor2,admin1,admin2,"
    "admin3,location,latitude,longitude,fatalities,notes,source,timestamp\n"
)


def acled_rows(tmp_path: Path, *rows: str) -> list[tuple[int, bytes]]:
    return list(read_lines(write(tmp_path, "acled.csv", ACLED_HEADER + "".join(rows)), "acled"))


def test_the_time_of_day_of_acled_notes_reaches_the_classified_document(
    tmp_path: Path,
) -> None:
    """ACLED has no time column; its notes often say when (docs/record.md, "The time of day
    a day report's text states")."""
    from streams.classify import Classifier, Gazetteer, ZoneCatalogue

    rows = acled_rows(
        tmp_path,
        "ARM7,2022-09-13,Battles,Armed clash,Military Forces of Azerbaijan (2003-),"
        'Military Forces of Armenia (2018-),Syunik,,,Jermuk,39.84,45.67,0,"On 13 September '
        '2022, at around 00:05, Azerbaijani forces shelled positions near Jermuk.",APA,\n',
        "ARM8,2022-09-14,Battles,Armed clash,,,Syunik,,,Jermuk,39.84,45.67,0,"
        '"Shelling near Jermuk in the evening.",APA,\n',
        "ARM9,2022-09-15,Battles,Armed clash,,,Syunik,,,Jermuk,39.84,45.67,0,"
        '"Shelling near Jermuk.",APA,\n',
    )
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    now = datetime(2022, 10, 1, tzinfo=UTC)
    stated = []
    for _, raw in rows:
        report = validate_report(raw, now=now)
        assert isinstance(report, Report), report
        stated.append(classifier.classify(report, now).time_of_day)
    assert stated == ["00:05-00:05", "17:00-23:00", None]


def test_acled_rows_map_to_reports(tmp_path: Path) -> None:
    rows = acled_rows(
        tmp_path,
        "AZE1,2021-05-01,Explosions/Remote violence,Shelling/artillery/missile attack,"
        "Military Forces of Armenia (2018-),Military Forces of Azerbaijan (2003-),"
        "Aghdam,,,Aghdam,39.99,46.93,2,shelling near Aghdam,Trend,1620000000\n",
        "ARM2,02 May 2021,Battles,Armed clash,Military Forces of Azerbaijan (2003-),"
        "Military Forces of Armenia (2018-),Syunik,Goris,,Khoznavar,39.50,46.30,0,,APA,\n",
        "AZE3,2021-05-03,Violence against civilians,Attack,Unidentified Armed Group,"
        '"Civilians (Azerbaijan)",Kalbajar,,,Kalbajar,40.1,46.03,1,"farmer, shot",,\n',
        "AZE4,2021-05-04,Explosions/Remote violence,Remote explosive/landmine/IED,,"
        "Civilians (Azerbaijan),Fuzuli,,,Fuzuli,39.6,47.14,,,,\n",
        "AZE5,2021-05-05,Explosions/Remote violence,Air/drone strike,Military Forces of "
        "Azerbaijan (2003-),NK Defense Army,,,,,39.8,46.8,,,,\n",
        "AZE6,2021-05-06,Violence against civilians,Abduction/forced disappearance,,,,,,,"
        "39.6,46.5,,,,\n",
        "AZE7,2021-05-07,Strategic developments,Looting/property destruction,,,,,,,39.6,46.5,,,,\n",
        "AZE8,2021-05-08,Strategic developments,Non-violent transfer of territory,,,,,,,"
        "39.6,46.5,,,,\n",
        "AZE9,2021-05-09,Battles,Armed clash,Unidentified Armed Group,"
        "Military Forces of Russia (2000-) Peacekeeping Contingent,,,,,39.6,46.5,,,,\n",
    )
    docs = [json.loads(raw) for _, raw in rows]
    first = docs[0]
    assert first["report_id"] == "AZE1"
    assert (first["source"], first["source_type"]) == ("acled", "dataset")
    assert first["occurred_at"] == "2021-05-01T12:00:00Z"
    assert first["reported_at"] == "2021-05-03T00:00:00Z"
    assert first["location"] == {"lat": 39.99, "lon": 46.93}
    assert first["revision"] == 1620000000 and "revision" not in docs[1]
    assert first["time_precision"] == "day"  # ACLED gives days; no column: a day
    assert first["category"] == "heavy_weapons_fire"
    assert first["perpetrator"] == "Military Forces of Armenia (2018-)"
    assert first["target"] == "Military Forces of Azerbaijan (2003-)"
    assert first["casualties"] == {"killed": 2}
    assert first["description"].startswith("shelling near Aghdam")
    assert "Trend" in first["description"]
    assert docs[1]["occurred_at"] == "2021-05-02T12:00:00Z"
    assert docs[1]["category"] == "small_arms_fire" and "casualties" not in docs[1]
    assert docs[2]["category"] == "civilian_harm"
    assert docs[2]["target"] == "Civilians (Azerbaijan)"  # an alias of `civilians`
    assert docs[2]["casualties"] == {"killed": 1, "civilian": True}
    assert [d["category"] for d in docs[3:]] == [
        "mine_incident",
        "drone_strike",
        "detention",
        "property_destruction",
        "other",
        "attack_on_peacekeepers",
    ]
    for _, raw in rows:
        assert isinstance(validate_report(raw, now=LATER), Report), raw


PKF = "Military Forces of Russia (2000-) Peacekeeping Operation"
AZ_FORCES = "Military Forces of Azerbaijan (2003-)"


@pytest.mark.parametrize(
    ("sub_event", "actor1", "actor2", "category", "perpetrator"),
    [
        ("Armed clash", AZ_FORCES, PKF, "attack_on_peacekeepers", AZ_FORCES),
        # ACLED lists a clash's sides in no meaningful order: the same clash, the same event
        ("Armed clash", PKF, AZ_FORCES, "attack_on_peacekeepers", AZ_FORCES),
        ("Armed clash", PKF, PKF, "attack_on_peacekeepers", PKF),
        # one-sided: actor1 is the one who fired
        ("Shelling/artillery/missile attack", PKF, AZ_FORCES, "heavy_weapons_fire", PKF),
    ],
)
def test_a_clash_with_the_peacekeepers_is_an_attack_on_them_whichever_side_acled_wrote_first(
    sub_event: str, actor1: str, actor2: str, category: str, perpetrator: str
) -> None:
    row = {
        "event_id_cnty": "AZE1",
        "event_date": "2021-05-01",
        "sub_event_type": sub_event,
        "actor1": actor1,
        "actor2": actor2,
        "latitude": "39.99",
        "longitude": "46.93",
    }
    doc = formats.acled_report(row)
    assert (doc["category"], doc["perpetrator"]) == (category, perpetrator)
    assert {doc["perpetrator"], doc["target"]} == {actor1, actor2}


def test_acled_rows_that_cannot_be_converted_are_kept(tmp_path: Path) -> None:
    no_coords = "AZE1,2021-05-01,Battles,Armed clash,,,,,,,,46.93,,,,"
    bad_date = "AZE2,yesterday,Battles,Armed clash,,,,,,,39.9,46.93,,,,"
    bad_fatalities = "AZE3,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,many,,,"
    rows = acled_rows(tmp_path, no_coords + "\n", bad_date + "\n", bad_fatalities + "\n")
    assert rows == [(2, no_coords.encode()), (3, bad_date.encode()), (4, bad_fatalities.encode())]
    assert all(isinstance(validate_report(raw, now=LATER), Rejection) for _, raw in rows)


ACLED_FULL_HEADER = (
    "event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,"
    "civilian_targeting,admin1,location,latitude,longitude,geo_precision,source,notes,"
    "fatalities,timestamp\n"
)
ACLED_EVENT = (
    "AZE21,2021-11-16,{tp},Battles,Armed clash,Military Forces of Azerbaijan (2003-),"
    "Military Forces of Armenia (2018-),,Syunik,Sev Lich,39.39,46.03,{gp},"
    '"Armenpress; APA",Clashes near the Black Lake.,{killed},{stamp}\n'
)


ACLED_NOW = datetime(2022, 1, 1, tzinfo=UTC)


def acled_full(tmp_path: Path, *rows: str) -> list[dict[str, Any]]:
    path = write(tmp_path, "acled-full.csv", ACLED_FULL_HEADER + "".join(rows))
    return [json.loads(raw) for _, raw in read_lines(path, "acled")]


def test_acled_identity_revision_and_precisions(tmp_path: Path) -> None:
    (doc,) = acled_full(tmp_path, ACLED_EVENT.format(tp=2, gp=3, killed=1, stamp=1637107200))
    # the dataset and ACLED's event id identify the row; ACLED's `source` (the media it
    # coded the event from) is no identity, and goes into the description
    assert (doc["source"], doc["report_id"], doc["source_type"]) == ("acled", "AZE21", "dataset")
    assert doc["revision"] == 1637107200
    assert doc["time_precision"] == "week"
    assert doc["location"] == {"lat": 39.39, "lon": 46.03, "precision": "region"}
    assert doc["casualties"] == {"killed": 1}
    assert doc["perpetrator"] == "Military Forces of Azerbaijan (2003-)"
    assert doc["target"] == "Military Forces of Armenia (2018-)"
    assert "(ACLED source: Armenpress; APA)" in doc["description"]
    result = validate_report(json.dumps(doc).encode(), now=ACLED_NOW)
    assert isinstance(result, Report)
    assert result.location.precision.value == "region"
    assert result.time_precision.value == "week"


def test_acled_numbers_and_dates_as_a_spreadsheet_writes_them(tmp_path: Path) -> None:
    """Excel and pandas write 2.0 killed and 1637107200.0 as the upload's timestamp, and
    dates as 16-Nov-2021 or 2021/11/16: each was refused, though the row said what ACLED
    said."""
    row = ACLED_EVENT.format(tp=2, gp=3, killed="2.0", stamp="1637107200.0")
    (doc,) = acled_full(tmp_path, row)
    assert (doc["revision"], doc["casualties"]) == (1637107200, {"killed": 2})
    assert doc["reported_at"] == "2021-11-17T00:00:00Z"
    for date in ("16-Nov-2021", "2021/11/16"):
        (again,) = acled_full(tmp_path, row.replace("2021-11-16", date))
        assert again["occurred_at"] == doc["occurred_at"] == "2021-11-16T12:00:00Z"
    # what is no whole number, or no date that reads one way, is still refused
    for bad, why in (
        (row.replace(",2.0,", ",2.5,"), "fatalities '2.5' is not a whole number"),
        (row.replace(",2.0,", ",2.0.0,"), "fatalities '2.0.0' is not a whole number"),
        (
            row.replace("2021-11-16", "11/16/2021"),
            f"event_date '11/16/2021' is not a date: {formats.ACLED_DATES_READ}",
        ),
    ):
        path = write(tmp_path, "bad.csv", ACLED_FULL_HEADER + bad)
        unconverted: dict[int, str] = {}
        [(_, raw)] = read_lines(path, "acled", unconverted=unconverted)
        assert raw == bad.strip().encode() and unconverted == {2: why}


@pytest.mark.parametrize(
    ("tp", "gp", "time_precision", "location_precision"),
    [
        ("1", "1", "day", "point"),
        ("2", "2", "week", "town"),
        ("3", "3", "month", "region"),
        ("3.0", "2.0", "month", "town"),  # written by a spreadsheet
        ("", "", "day", None),  # ACLED gives days; the point's default then: `point`
    ],
)
def test_acled_precision_codes(
    tmp_path: Path, tp: str, gp: str, time_precision: str, location_precision: str | None
) -> None:
    (doc,) = acled_full(tmp_path, ACLED_EVENT.format(tp=tp, gp=gp, killed=0, stamp=1637107200))
    assert doc["time_precision"] == time_precision
    assert doc["location"].get("precision") == location_precision


@pytest.mark.parametrize(
    ("tp", "gp", "stamp", "field"),
    [
        ("4", "1", "1637107200", "time_precision"),
        ("1", "exact", "1637107200", "location.precision"),
        ("1", "1", "yesterday", "revision"),
        ("1", "1", "99999999999999999999", "revision"),  # beyond a 64-bit revision
    ],
)
def test_acled_cells_that_are_no_code_are_named_by_the_schema(
    tmp_path: Path, tp: str, gp: str, stamp: str, field: str
) -> None:
    (doc,) = acled_full(tmp_path, ACLED_EVENT.format(tp=tp, gp=gp, killed=0, stamp=stamp))
    result = validate_report(json.dumps(doc).encode(), now=ACLED_NOW)
    assert isinstance(result, Rejection)
    assert field in {e.field for e in result.errors}, result


def test_an_acled_re_export_is_a_higher_revision_of_the_same_report(tmp_path: Path) -> None:
    first, corrected = acled_full(
        tmp_path,
        ACLED_EVENT.format(tp=1, gp=1, killed=1, stamp=1637107200),
        ACLED_EVENT.format(tp=1, gp=1, killed=49, stamp=1638316800),
    )
    a = validate_report(json.dumps(first).encode(), now=ACLED_NOW)
    b = validate_report(json.dumps(corrected).encode(), now=ACLED_NOW)
    assert isinstance(a, Report) and isinstance(b, Report)
    assert a.key == b.key == "acled\x1fAZE21"
    assert b.revision > a.revision
    assert (a.casualties and a.casualties.killed, b.casualties and b.casualties.killed) == (1, 49)


def test_an_unchanged_acled_re_export_is_a_duplicate(tmp_path: Path) -> None:
    row = ACLED_EVENT.format(tp=1, gp=1, killed=1, stamp=1637107200)
    path = write(tmp_path, "twice.csv", ACLED_FULL_HEADER + row + row)
    first, again = read_lines(path, "acled")
    assert first[1] == again[1]  # the same bytes: a re-send, counted once


# -- the feed's summary, with a stand-in producer ------------------------------------
class FakeFuture:
    """A send the broker has answered: acknowledged, or failed with `exception`."""

    def __init__(self, error: Exception | None) -> None:
        self.is_done = True
        self.exception = error

    def get(self, timeout: float | None = None) -> str:
        if self.exception is not None:
            raise self.exception
        return "metadata"


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.headers: list[list[tuple[str, bytes]] | None] = []  # of each sent, in order

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FakeFuture:
        assert value is not None
        if b"too-big" in value:
            raise MessageSizeTooLargeError("too big")
        self.sent.append((topic, value, key))
        self.headers.append(headers)
        return FakeFuture(KafkaError("broker said no") if b"refused" in value else None)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def test_ctrl_c_ends_the_feed_with_what_it_sent_summed_up(tmp_path: Path) -> None:
    """Ctrl-C ended `feed` silently: the user was not told what had been sent."""

    class Interrupted(FakeProducer):
        def send(self, *args: Any, **kwargs: Any) -> FakeFuture:
            if len(self.sent) == 3:
                raise KeyboardInterrupt
            return super().send(*args, **kwargs)

    lines = [json.dumps({**GOOD, "report_id": f"r-{i}"}) for i in range(10)]
    path = write(tmp_path, "in.jsonl", "\n".join(lines) + "\n")
    said = io.StringIO()
    summary = run_feed(
        Settings(), path, fmt="jsonl", console=Console(file=said), producer=Interrupted()
    )
    assert summary.interrupted and summary.sent == 3
    assert "interrupted (Ctrl-C) after 4 lines read" in said.getvalue()


def test_a_line_no_broker_takes_is_dead_lettered_by_the_feed(tmp_path: Path) -> None:
    """A 2 MB line reached neither topic (the client refuses a request over 1 MiB), though
    the summary said it went to the dead-letter topic."""
    from schemas.dead_letter import DeadLetter

    huge = json.dumps({**GOOD, "report_id": "big", "description": "x" * 2_000_000})
    path = write(tmp_path, "in.jsonl", huge + "\n" + json.dumps(GOOD) + "\n")
    producer = FakeProducer()
    console = Console(file=io.StringIO(), width=120)
    summary = run_feed(Settings(), path, console=console, producer=producer)
    (dlq, letter, key), (topic, good, _) = producer.sent
    assert (dlq, topic) == ("ceasefire.reports.dlq", "ceasefire.reports")
    assert key == b"pkf-op-3\x1fbig" and good == json.dumps(GOOD).encode()
    record = DeadLetter.model_validate_json(letter)
    assert (record.reason, record.source_topic, record.key) == (
        "too_large",
        "feed",
        "pkf-op-3\x1fbig",
    )
    assert record.original_size == len(huge) and record.original_truncated
    assert "the feed wrote this record itself" in record.message
    assert record.original() == huge.encode()[: len(record.original())]
    assert (summary.sent, summary.failed_sends, summary.dead_lettered) == (2, 0, 1)
    assert summary.dead_letters_sent == 1 and summary.rejected == {"too_large": 1}
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "dead letter written by the feed" in text and "not delivered" not in text
    # the headline tells the input topic's lines from the feed's own dead letters
    assert "sent 1 line to ceasefire.reports and 1 dead letters in" in text


def test_feed_sends_every_line_and_summarises(tmp_path: Path) -> None:
    good = json.dumps(GOOD)
    lines = [
        good,
        good,  # exact re-send
        json.dumps({**GOOD, "category": "other"}),  # same id, other content
        "{nope",
        json.dumps({**GOOD, "report_id": "f2", "x": 1}),
        json.dumps({**GOOD, "report_id": "refused"}),
        json.dumps({**GOOD, "report_id": "too-big"}),
        json.dumps({**GOOD, "report_id": "f3", "occurred_at": "2021-05-01T10:00:00"}),
    ]
    path = write(tmp_path, "in.jsonl", "\n".join(lines) + "\n")
    producer = FakeProducer()
    console = Console(file=io.StringIO(), width=120)
    summary = run_feed(Settings(), path, console=console, producer=producer)
    assert isinstance(summary, FeedSummary)
    assert summary.lines == 8
    assert [v for _, v, _ in producer.sent] == [
        line.encode() for line in lines if "too-big" not in line
    ]
    assert {t for t, _, _ in producer.sent} == {"ceasefire.reports"}
    keys = [k for _, _, k in producer.sent]
    assert keys[0] == b"pkf-op-3\x1ff1"
    assert keys[3] is None  # not JSON
    assert keys[4] == b"pkf-op-3\x1ff2"  # rejected, but still keyed by its identity
    assert summary.accepted == 4
    assert summary.duplicates == 1
    assert summary.rejected == {
        "revision_conflict": 1,  # same revision, other content: the worker dead-letters it
        "invalid_json": 1,
        "unknown_field": 1,
        "missing_timezone": 1,
    }
    assert [(line, reason) for line, reason, _ in summary.examples] == [
        (3, "revision_conflict"),
        (4, "invalid_json"),
        (5, "unknown_field"),
        (8, "missing_timezone"),
    ]
    assert summary.sent == 6 and summary.failed_sends == 2
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "sent 6 lines" in text and "unknown_field" in text and "not delivered" in text
    # the headline's counts are of the lines read; the failed sends are said beside them
    headline = " ".join(text.split("feed summary")[0].split())
    assert "of 8 read, 4 valid" in headline and "; 2 not delivered (below)" in headline, text


def test_feed_refuses_a_missing_file_or_format(tmp_path: Path) -> None:
    console = Console(file=io.StringIO())
    with pytest.raises(FileNotFoundError):
        run_feed(Settings(), str(tmp_path / "nope"), console=console, producer=FakeProducer())
    path = write(tmp_path, "x.jsonl", "{}\n")
    with pytest.raises(ValueError):
        run_feed(Settings(), path, fmt="xml", console=console, producer=FakeProducer())
    with pytest.raises(IsADirectoryError, match="is a directory: feed takes a file"):
        run_feed(Settings(), str(tmp_path), console=console, producer=FakeProducer())


@pytest.mark.parametrize(
    ("fmt", "text", "missing"),
    [
        # JSON lines fed as ACLED: the first line was taken for a header, unreported
        (
            "acled",
            '{"report_id": "a", "source": "s"}\n{"report_id": "b"}\n',
            "event_id_cnty or event_date",
        ),
        ("csv", '{"report_id":"a","source":"s"}\n', "report_id or source"),
        # a CSV file without its header row: the first row was lost
        (
            "csv",
            "a1,pkf-op-1,observation_post\na2,pkf-op-1,observation_post\n",
            "report_id or source",
        ),
        ("acled", "\n\nIRN1,2021-05-01\n", "event_id_cnty or event_date"),
    ],
)
def test_a_first_row_that_is_no_header_stops_the_feed_before_it_sends(
    tmp_path: Path, fmt: str, text: str, missing: str
) -> None:
    path = write(tmp_path, "in.txt", text)
    producer = FakeProducer()
    with pytest.raises(HeaderError, match=f"is not a header of the {fmt} format") as err:
        run_feed(Settings(), path, fmt=fmt, console=Console(file=io.StringIO()), producer=producer)
    assert f"names no {missing} column" in str(err.value)
    assert producer.sent == []
    with pytest.raises(HeaderError):  # read as a stream (stdin) too, at its first record
        list(read_lines(path, fmt))


def test_a_header_naming_a_column_twice_stops_the_feed_before_it_sends(tmp_path: Path) -> None:
    """A row kept the last of two `category` cells: the other dropped without a word."""
    text = "report_id,source,category,category\na1,pkf-op-1,small_arms_fire,shelling\n"
    path = write(tmp_path, "in.csv", text)
    producer = FakeProducer()
    with pytest.raises(HeaderError, match=r"names the column\(s\) category more than once"):
        run_feed(
            Settings(), path, fmt="csv", console=Console(file=io.StringIO()), producer=producer
        )
    assert producer.sent == []


@pytest.mark.parametrize(
    ("columns", "said"),
    [
        ("lat,lon,location.lat", "lat (as lat and location.lat)"),
        ("lat,lon,killed,casualties.killed", "killed (as casualties.killed and killed)"),
        ("place,location", "location beside the columns of its parts"),
        ("lat,lon,wounded,casualties", "casualties beside the columns of its parts"),
    ],
)
def test_a_header_naming_a_field_in_two_columns_stops_the_feed(
    tmp_path: Path, columns: str, said: str
) -> None:
    """`killed` and `casualties.killed` are one field: a row of 5 and 0 was sent as 0
    killed, and a `location` text column beside `lat` was dropped, without a word."""
    cells = ",".join("1" for _ in columns.split(","))
    text = f"report_id,source,category,{columns}\na1,pkf-op-1,other,{cells}\n"
    path = write(tmp_path, "in.csv", text)
    producer = FakeProducer()
    with pytest.raises(HeaderError, match="names a field in more than one column") as err:
        run_feed(
            Settings(), path, fmt="csv", console=Console(file=io.StringIO()), producer=producer
        )
    assert said in str(err.value)
    assert producer.sent == []


def test_feed_tells_revisions_duplicates_conflicts_and_withdrawals_apart(tmp_path: Path) -> None:
    good = {**GOOD, "revision": 2}
    lines = [
        json.dumps(good),
        json.dumps({"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data": good}),
        json.dumps({**good, "revision": 3, "category": "other"}),  # a correction
        json.dumps({**good, "revision": 1, "category": "other"}),  # older: ignored
        json.dumps({**good, "revision": 3, "category": "drone_strike"}),  # a conflict
        json.dumps({"report_id": "f1", "source": "pkf-op-3", "revision": 4, "withdrawn": True}),
        json.dumps({"source": "pkf-op-3", "withdrawn": True, "revision": 4, "report_id": "f1"}),
    ]
    path = write(tmp_path, "revisions.jsonl", "\n".join(lines) + "\n")
    console = Console(file=io.StringIO(), width=120)
    summary = run_feed(Settings(), path, console=console, producer=FakeProducer())
    assert summary.accepted == 6 and summary.sent == 7
    assert summary.duplicates == 2  # the enveloped re-send and the second withdrawal
    # one count per line: the first withdrawal is no correction too
    assert summary.revisions == 1 and summary.stale == 1 and summary.withdrawals == 1
    assert summary.rejected == {"revision_conflict": 1}
    assert summary.examples[0][:2] == (5, "revision_conflict")
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "correct an earlier line" in text and "withdraw a report" in text


# -- malformed CSV records: one bad row, and reading resumes ---------------------------
REPRO_HEADER = b"report_id,source,source_type,occurred_at,lat,lon,category,description\n"
REPRO_R2 = b"r2,pkf,patrol,2021-05-12T10:05:00Z,39.7,46.7,heavy_weapons_fire,second\n"
REPRO_R3 = b"r3,pkf,patrol,2021-05-12T10:06:00Z,39.7,46.7,drone_strike,third\n"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (  # a quote left open to the end of the file
            b'r1,pkf,patrol,2021-05-12T10:00:00Z,39.7,46.7,small_arms_fire,"abc\n',
            "unclosed quote in row at line 2",
        ),
        (  # a quote that closes in the wrong place
            b'r1,pkf,patrol,2021-05-12T10:00:00Z,39.7,46.7,small_arms_fire,"ab"c\n',
            "malformed CSV in row at line 2",
        ),
    ],
)
def test_a_broken_quote_is_one_bad_row_and_the_next_rows_are_read(
    tmp_path: Path, bad: bytes, why: str
) -> None:
    # Once, the open quote swallowed r2 and r3 into r1's description: one report.
    path = write(tmp_path, "quote.csv", REPRO_HEADER + bad + REPRO_R2 + REPRO_R3)
    unconverted: dict[int, str] = {}
    rows = list(read_lines(path, "csv", unconverted=unconverted))
    assert [n for n, _ in rows] == [2, 3, 4]
    assert rows[0][1] == bad.rstrip(b"\n")  # sent as it is, for the worker to dead-letter
    assert [json.loads(raw)["report_id"] for _, raw in rows[1:]] == ["r2", "r3"]
    assert list(unconverted) == [2] and unconverted[2].startswith(why)

    console = Console(file=io.StringIO(), width=200)
    summary = run_feed(Settings(), path, fmt="csv", console=console, producer=FakeProducer())
    assert summary.lines == 3 and summary.accepted == 2
    assert summary.rejected == {"invalid_json": 1}
    ((line, reason, message),) = summary.examples
    assert (line, reason) == (2, "invalid_json") and why in message
    assert why in console.file.getvalue()  # type: ignore[attr-defined]


def test_a_broken_quote_in_an_acled_export_is_one_bad_row(tmp_path: Path) -> None:
    good = "AZE2,2021-05-02,Battles,Armed clash,,,,,,,39.9,46.93,,,,\n"
    legit = 'AZE3,2021-05-03,Battles,Armed clash,,,,,,,39.9,46.93,,"two\nlines",,\n'
    rows = acled_rows(
        tmp_path, 'AZE1,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,,"open,,\n', good, legit
    )
    assert [n for n, _ in rows] == [2, 3, 4]
    assert rows[0][1].startswith(b"AZE1,")
    docs = [json.loads(raw) for _, raw in rows[1:]]
    assert [d["report_id"] for d in docs] == ["AZE2", "AZE3"]
    assert docs[1]["description"].startswith("two\nlines")  # quoted newlines still work


def _reference_records(data: bytes) -> list[tuple[int, bytes, list[str], str | None]]:
    """`_csv_records` the slow way: each record parsed afresh from its first line."""
    lines = io.BytesIO(data).readlines()
    out: list[tuple[int, bytes, list[str], str | None]] = []
    i = 0
    while i < len(lines):
        end, eof = i, False

        def feed_from() -> Any:
            nonlocal end, eof
            while end < len(lines):
                end += 1
                yield lines[end - 1].decode("utf-8", "surrogateescape")
            eof = True

        try:
            cells = next(csv.reader(feed_from(), strict=True))
        except StopIteration:
            break
        except csv.Error as exc:
            why = "unclosed quote" if eof else str(exc)
            if why == "unclosed quote":
                problem = f"unclosed quote in row at line {i + 1}"
            elif "field limit" in why and end - i > 1:
                problem = f"unclosed quote in row at line {i + 1}? ({why})"
            else:
                problem = f"malformed CSV in row at line {i + 1}: {why}"
            out.append((i + 1, lines[i].rstrip(b"\r\n"), [], problem))
            i += 1
            continue
        out.append((i + 1, b"".join(lines[i:end]).rstrip(b"\r\n"), cells, None))
        i = end
    return out


def test_malformed_records_are_found_as_a_fresh_parse_of_each_would() -> None:
    # `_csv_records` does not read a malformed record's lines again one start at a time
    # (that is quadratic); it must still find what doing so finds.
    rnd = random.Random(7)
    pieces = ["a", ",", '"', "\n", '","', '"\n', "\r\n", "\r", '""']
    for _ in range(5000):
        data = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30))).encode()
        assert list(_csv_records(io.BytesIO(data))) == _reference_records(data), data


def test_malformed_records_are_read_in_linear_time(tmp_path: Path) -> None:
    # From any of these lines a record stays open to the end of the file: read again from
    # each next line in turn, 10,000 lines took 12 s (quadratic); now a few hundredths.
    path = write(tmp_path, "open.csv", b"report_id,source\n" + b'a","b\n' * 10_000)
    unconverted: dict[int, str] = {}
    started = time.perf_counter()
    rows = list(read_lines(path, "csv", unconverted=unconverted))
    assert time.perf_counter() - started < 2.0
    assert len(rows) == 10_000 and len(unconverted) == 10_000
    assert unconverted[10_001] == "unclosed quote in row at line 10001"


# -- a bad line never stops the feed ---------------------------------------------------
def test_a_place_the_gazetteer_lacks_is_forecast_as_rejected() -> None:
    """The summary said "will be accepted" for a report at "Atlantis"; the worker rejected
    it (`unknown_place`). A point, or a known place, is accepted as before."""
    from streams.classify.gazetteer import Gazetteer

    summary = FeedSummary()
    checker = LineChecker(summary, Gazetteer.load())
    atlantis = {**GOOD, "report_id": "x1", "location": {"place": "Atlantis"}}
    assert checker.check(1, json.dumps(atlantis).encode()) == b"pkf-op-3\x1fx1"
    shusha = {**atlantis, "location": {"place": "Shusha"}}
    assert checker.check(2, json.dumps(shusha).encode()) == b"pkf-op-3\x1fx1"
    assert checker.check(3, json.dumps(GOOD).encode()) is not None
    assert summary.rejected == {"unknown_place": 1} and summary.accepted == 2
    [(line, reason, message)] = summary.examples
    assert (line, reason) == (1, "unknown_place")
    assert "location.place 'Atlantis' is not in the gazetteer" in message


def test_a_rejection_naming_a_hostile_field_shows_it_written_out() -> None:
    """An unknown field named with a terminal's escape sequences cleared the operator's
    screen and printed "ALL REPORTS VALID" in red; rich markup in it was read as markup."""
    summary = FeedSummary()
    checker = LineChecker(summary)
    name = "\x1b[2J\x1b[1;31mALL REPORTS VALID\x1b[0m [bold]x[/bold]\x1b]0;title\x07"
    checker.check(1, json.dumps({**GOOD, name: 1}).encode())
    assert summary.rejected == {"unknown_field": 1}
    buffer = io.StringIO()
    feed.render_summary(summary, Console(file=buffer, width=400, force_terminal=True))
    printed = buffer.getvalue()
    assert "\x1b[2J" not in printed and "\x1b]0;" not in printed and "\x07" not in printed
    assert "\\x1b[2J\\x1b[1;31mALL REPORTS VALID" in printed, printed
    assert "[bold]x[/bold]" in printed, printed


def test_a_deeply_nested_line_is_rejected_not_raised() -> None:
    summary = FeedSummary()
    checker = LineChecker(summary)
    assert checker.check(1, b"[" * 5000 + b"]" * 5000) is None
    assert checker.check(2, b'{"a":' * 5000 + b"1" + b"}" * 5000) is None
    assert summary.rejected == {"too_deep": 2} and summary.lines == 2


def test_a_line_the_check_fails_on_is_counted_and_still_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = validate_report

    def failing(raw: bytes, **kwargs: Any) -> Any:
        if b"boom" in raw:
            raise RuntimeError("boom")
        return real(raw, **kwargs)

    monkeypatch.setattr(feed, "validate_report", failing)
    lines = [json.dumps({**GOOD, "report_id": "boom"}), json.dumps(GOOD)]
    path = write(tmp_path, "boom.jsonl", "\n".join(lines) + "\n")
    producer = FakeProducer()
    console = Console(file=io.StringIO(), width=120)
    summary = run_feed(Settings(), path, console=console, producer=producer)
    assert [v for _, v, _ in producer.sent] == [line.encode() for line in lines]
    assert summary.lines == 2 and summary.accepted == 1
    assert summary.rejected == {"internal_error": 1}
    assert summary.examples == [
        (1, "internal_error", "the feed's check failed: RuntimeError: boom")
    ]


# -- duplicates and conflicts as the worker tells them ---------------------------------
@pytest.mark.parametrize(
    "again",
    [
        {"occurred_at": "2021-05-01T14:00:00+04:00"},  # the same instant, another offset
        {"reported_at": "2021-05-02T09:00:00Z"},  # the worker digests no arrival time
        {"casualties": {"killed": 0}},  # none and zero are one content
        {"casualties": {"killed": 0, "wounded": 0, "civilian": False}},
    ],
)
def test_a_re_send_is_a_duplicate_as_the_worker_digests_it(
    tmp_path: Path, again: dict[str, Any]
) -> None:
    lines = [json.dumps({**GOOD, "reported_at": "2021-05-01T11:00:00Z"}), json.dumps(GOOD)]
    lines.append(json.dumps({**GOOD, **again}))
    summary = run_feed(
        Settings(),
        write(tmp_path, "again.jsonl", "\n".join(lines) + "\n"),
        console=Console(file=io.StringIO()),
        producer=FakeProducer(),
    )
    assert summary.rejected == {} and summary.duplicates == 2 and summary.accepted == 3
    results = [validate_report(line.encode()) for line in lines]
    assert all(isinstance(r, Report) for r in results)
    digests = {report_digest(r) for r in results if isinstance(r, Report)}
    assert len(digests) == 1  # the worker's own verdict: one content


# -- the summary counts each line once -------------------------------------------------
def test_a_withdrawal_is_counted_as_a_withdrawal_only(tmp_path: Path) -> None:
    lines = [
        json.dumps({**GOOD, "report_id": "g2"}),
        json.dumps({"source": "pkf-op-3", "report_id": "g2", "revision": 1, "withdrawn": True}),
    ]
    console = Console(file=io.StringIO(), width=120)
    summary = run_feed(
        Settings(),
        write(tmp_path, "withdraw.jsonl", "\n".join(lines) + "\n"),
        console=console,
        producer=FakeProducer(),
    )
    assert summary.accepted == 2 and summary.withdrawals == 1 and summary.revisions == 0
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "withdraw a report" in text and "correct an earlier line" not in text


# -- acled: civilian targeting ---------------------------------------------------------
ATTACK = (
    "AZE9,2021-05-09,1,Battles,Attack,Unidentified Armed Group,"
    "Military Forces of Armenia (2018-),{cell},Syunik,Goris,39.5,46.3,1,,,2,1620600000\n"
)


@pytest.mark.parametrize(
    ("cell", "civilian"),
    [
        ("Civilian targeting", True),  # ACLED's value
        ("Civilian Targeting", True),
        ("", False),
        ("No", False),
        ("FALSE", False),
        ("0", False),
    ],
)
def test_acled_civilian_targeting_is_acleds_value_only(
    tmp_path: Path, cell: str, civilian: bool
) -> None:
    (doc,) = acled_full(tmp_path, ATTACK.format(cell=cell))
    assert doc["category"] == ("civilian_harm" if civilian else "other")
    assert doc["casualties"] == ({"killed": 2, "civilian": True} if civilian else {"killed": 2})


# -- rows that cannot be converted: the summary says why -------------------------------
def test_the_summary_gives_why_a_row_was_not_converted(tmp_path: Path) -> None:
    rows = [
        "AZE1,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,,,,\n",
        "AZE2,bad-date,Battles,Armed clash,,,,,,,39.9,46.93,,,,\n",
        "AZE3,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,,,,,surplus\n",
        "AZE4,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,2.5,,,\n",
    ]
    path = write(tmp_path, "acled.csv", ACLED_HEADER + "".join(rows))
    producer = FakeProducer()
    console = Console(file=io.StringIO(), width=200)
    summary = run_feed(Settings(), path, fmt="acled", console=console, producer=producer)
    # still sent as they are, and rejected as the worker will dead-letter them
    assert [v for _, v, _ in producer.sent][1:] == [r.rstrip("\n").encode() for r in rows[1:]]
    assert summary.rejected == {"invalid_json": 3}
    assert summary.examples == [
        (
            3,
            "invalid_json",
            f"CSV row not converted: event_date 'bad-date' is not a date: "
            f"{formats.ACLED_DATES_READ}",
        ),
        (4, "invalid_json", "CSV row not converted: 17 cells, the header has 16"),
        (5, "invalid_json", "CSV row not converted: fatalities '2.5' is not a whole number"),
    ]
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "is not a date" in text and "expected value" not in text
    # and the rows carry the reason to the worker's dead letters (tests/test_ingest.py)
    assert producer.headers == [None] + [
        [(UNCONVERTED_HEADER, message.removeprefix("CSV row not converted: ").encode())]
        for _, _, message in summary.examples
    ]


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("AZE5,2021-05-01,Battles,Armed clash,,,,,,,north,46.93,,,,", "latitude 'north' is not"),
        ("AZE6,2021-05-01,Battles,Armed clash,,,,,,,39.9,,,,,", "longitude '' is not a number"),
        ("AZE7,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,-1,,,", "fatalities -1 is negative"),
        (
            "AZE9,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,-1.0,,,",
            "fatalities -1 is negative",
        ),
        # Python's int reads "1_0" as 10: no number as a spreadsheet writes one
        ("AZE7,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,1_0,,,", "fatalities '1_0' is not"),
        # ... nor does float: "3_9.9", "nan" and other scripts' digits are not coordinates
        ("AZE7,2021-05-01,Battles,Armed clash,,,,,,,3_9.9,46.93,,,,", "latitude '3_9.9' is not"),
        ("AZE7,2021-05-01,Battles,Armed clash,,,,,,,39.9,nan,,,,", "longitude 'nan' is not"),
        ("AZE7,2021-05-01,Battles,Armed clash,,,,,,,٣٩.9,46.93,,,,", "latitude"),
    ],
)
def test_acled_rows_not_converted_say_why(tmp_path: Path, row: str, why: str) -> None:
    unconverted: dict[int, str] = {}
    path = write(tmp_path, "acled.csv", ACLED_HEADER + row + "\n")
    assert list(read_lines(path, "acled", unconverted=unconverted)) == [(2, row.encode())]
    assert unconverted[2].startswith(why)
    no_column = write(tmp_path, "short.csv", "event_id_cnty,event_date\nAZE8,2021-05-01\n")
    list(read_lines(no_column, "acled", unconverted=unconverted))
    assert unconverted[2] == "no latitude column"


# -- a bad cell's reason beside its row: bounded, and counted in the record's size ---------
class SizedProducer(FakeProducer):
    """Refuses a record as kafka-python does: its estimated size over `max_request_size`."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FakeFuture:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or [])
        if size > feed.MAX_REQUEST_BYTES:
            raise MessageSizeTooLargeError(f"the message is {size} bytes")
        return super().send(topic, value, key=key, headers=headers)


def test_an_acled_row_with_a_huge_bad_cell_reaches_a_topic(tmp_path: Path) -> None:
    """A row under the size limit whose reason header quoted its 130 KB bad latitude went
    over the client's request limit: refused, it reached neither the input topic nor the
    dead-letter topic."""
    big = "y" * 115_000
    bad = "x" * 130_000
    row = (
        f"AZE1,2021-05-01,Battles,Armed clash,{big},{big},{big},{big},{big},{big},{bad},"
        f"46.93,,{big},,\n"
    )
    assert len(row) < feed.MAX_LINE_SENT  # the row alone fits
    path = write(tmp_path, "acled.csv", ACLED_HEADER + row)
    producer = SizedProducer()
    summary = run_feed(
        Settings(), path, fmt="acled", console=Console(file=io.StringIO()), producer=producer
    )
    assert (summary.sent, summary.failed_sends) == (1, 0)
    [(topic, value, _)] = producer.sent
    assert topic == "ceasefire.reports" and value == row.rstrip("\n").encode()
    [[(name, why)]] = producer.headers  # type: ignore[misc]
    assert name == UNCONVERTED_HEADER and len(why) <= MAX_UNCONVERTED_CHARS
    assert (
        why.decode()
        == f"latitude {'x' * formats.SHOWN_CELL_CHARS!r}… (130,000 characters) is not a number"
    )


@pytest.mark.parametrize(
    ("column", "said"),
    [("event_date", "event_date 'zzzz"), ("latitude", "latitude 'zzzz"), ("fatalities", "fatal")],
)
def test_a_huge_bad_acled_cell_is_quoted_in_part(tmp_path: Path, column: str, said: str) -> None:
    cells = dict.fromkeys(ACLED_HEADER.strip().split(","), "")
    cells.update(event_id_cnty="AZE1", event_date="2021-05-01", latitude="39.9", longitude="46.9")
    cells[column] = "z" * 100_000
    path = write(tmp_path, "acled.csv", ACLED_HEADER + ",".join(cells.values()) + "\n")
    unconverted: dict[int, str] = {}
    assert len(list(read_lines(path, "acled", unconverted=unconverted))) == 1
    assert unconverted[2].startswith(said) and "(100,000 characters)" in unconverted[2]
    why = unconverted[2].removesuffix(f": {formats.ACLED_DATES_READ}")  # of a date
    assert len(why) < 2 * formats.SHOWN_CELL_CHARS + 50


def test_the_reason_sent_beside_a_row_is_bounded(tmp_path: Path) -> None:
    """The worker keeps `MAX_UNCONVERTED_CHARS` of the reason; the feed sent all of it (a
    4,000-digit negative count repeated whole)."""
    row = "AZE1,2021-05-01,Battles,Armed clash,,,,,,,39.9,46.93,-" + "9" * 4000 + ",,,"
    path = write(tmp_path, "acled.csv", ACLED_HEADER + row + "\n")
    producer = FakeProducer()
    run_feed(Settings(), path, fmt="acled", console=Console(file=io.StringIO()), producer=producer)
    [[(_, why)]] = producer.headers  # type: ignore[misc]
    assert why.startswith(b"fatalities -999") and len(why) == MAX_UNCONVERTED_CHARS


def test_a_row_its_reason_pushes_over_the_limit_is_dead_lettered_by_the_feed(
    tmp_path: Path,
) -> None:
    """The size test left the reason header out: a row that fit without it went to the input
    topic, whatever the header's size."""
    from schemas.dead_letter import DeadLetter

    # 5 bytes under the limit, its key (none) included; in cells under the field limit
    base, cells = "a1,pkf-op-1,patrol", 10
    width = (feed.MAX_LINE_SENT - 5 - len(base)) // cells - 1
    row = base + ("," + "x" * width) * cells
    row += "x" * (feed.MAX_LINE_SENT - 5 - len(row))
    path = write(tmp_path, "in.csv", "report_id,source,source_type\n" + row + "\n")
    producer = FakeProducer()
    summary = run_feed(
        Settings(), path, fmt="csv", console=Console(file=io.StringIO()), producer=producer
    )
    [(topic, letter, key)] = producer.sent
    assert topic == "ceasefire.reports.dlq" and key is None and producer.headers == [None]
    assert (summary.dead_lettered, summary.dead_letters_sent, summary.failed_sends) == (1, 1, 0)
    record = DeadLetter.model_validate_json(letter)
    assert record.reason == "too_large" and record.original_size == len(row)
    # the feed's own dead letter says why the row was not converted, as the worker's does
    assert "a CSV row the feed could not convert (13 cells, the header has 3)" in record.message
    assert "the feed wrote this record itself" in record.message


# -- a huge line's key: not a parse of the whole line ------------------------------------
def test_a_huge_line_is_not_parsed_whole_for_its_key() -> None:
    """The key of a `too_large` line came from `json.loads` of the whole line: a 100 MB line
    of numbers took 700 MB more to read two fields."""
    raw = (
        b'{"source": "s", "report_id": "big", "extra": [' + b",".join([b"0.5"] * 1_000_000) + b"]}"
    )
    checker = LineChecker(FeedSummary())
    tracemalloc.start()
    try:
        key = checker.check(1, raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert key == b"s\x1fbig" and checker.summary.rejected == {"too_large": 1}
    assert peak < len(raw) // 4  # the whole parse: ten times the line's bytes


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        # the fields before the cut, whatever follows (at the cut, a character cut in two)
        ({"source": "s", "report_id": "r", "description": "." + "é" * 80_000}, b"s\x1fr"),
        (
            {"description": "x" * 10, "report_id": "r", "source": "s", "more": [1] * 40_000},
            b"s\x1fr",
        ),
        # a field past the cut is not known
        ({"source": "s", "description": "x" * 70_000, "report_id": "r"}, None),
        # a CloudEvents envelope, its data cut
        (
            {"specversion": "1.0", "data": {"source": "s", "report_id": "r", "d": "x" * 70_000}},
            b"s\x1fr",
        ),
        # a nested `source` is no report's
        ({"location": {"source": "s"}, "report_id": "r", "d": "x" * 70_000}, None),
    ],
)
def test_the_key_of_a_huge_line_comes_from_its_first_bytes(
    doc: dict[str, Any], key: bytes | None
) -> None:
    raw = json.dumps(doc, ensure_ascii=False).encode()
    assert len(raw) > MAX_MESSAGE_BYTES
    if "é" in raw.decode():
        with pytest.raises(UnicodeDecodeError):  # the case it stands for
            raw[:MAX_MESSAGE_BYTES].decode()
    assert feed._key_of_object(raw) == key


def test_the_key_of_a_huge_line_with_a_repeated_name_or_none() -> None:
    # a repeated name keeps its last value, as json.loads does
    raw = b'{"source": "a", "source": "s", "report_id": "r", "x": "' + b"x" * 70_000 + b'"}'
    assert feed._key_of_object(raw) == b"s\x1fr"
    for broken in (b"[1, 2", b'{"source" "s"', b'{"source": "s", "report_id": "\xff', b"\xef"):
        assert feed._key_of_object(broken + b" " * 70_000) is None


# -- CR-only line endings ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("csv", "report_id,source,source_type\ra1,pkf-op-1,patrol\ra2,pkf-op-1,patrol\r"),
        ("acled", ACLED_HEADER.replace("\n", "\r") + "AZE1,2021-05-01,Battles,,,,,,,,39,46,,,,\r"),
        ("csv", '"report_id","source"\r"a1","pkf-op-1"\r'),
    ],
)
def test_a_file_with_cr_only_line_endings_is_named_so(tmp_path: Path, fmt: str, text: str) -> None:
    """Such a file was refused as naming no report_id or source column, while naming both."""
    path = write(tmp_path, "mac.csv", text)
    producer = FakeProducer()
    with pytest.raises(HeaderError, match="line endings are CR only") as err:
        run_feed(Settings(), path, fmt=fmt, console=Console(file=io.StringIO()), producer=producer)
    assert "convert them to LF or CRLF" in str(err.value) and "names no" not in str(err.value)
    assert producer.sent == []


def test_a_json_lines_file_with_cr_only_line_endings_is_named_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was sent as one line of the whole file, rejected as `too_large` (or
    `invalid_json`) with no word of why; the CSV formats said it already."""
    data = "\r".join(json.dumps({**GOOD, "report_id": f"f{n}"}) for n in range(3)) + "\r"
    path = write(tmp_path, "mac.jsonl", data)
    producer = FakeProducer()
    with pytest.raises(HeaderError, match="line endings are CR only") as err:
        run_feed(Settings(), path, console=Console(file=io.StringIO()), producer=producer)
    assert f"{path}: line 1 holds carriage returns" in str(err.value)
    assert "convert them to LF or CRLF" in str(err.value) and "\n" not in str(err.value)
    assert producer.sent == []
    # from standard input, at its first line, before it is sent; a BOM before it too
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + data.encode())))
    with pytest.raises(HeaderError, match=r"standard input: line 1 .* CR only"):
        run_feed(Settings(), "-", console=Console(file=io.StringIO()), producer=producer)
    assert producer.sent == []


def test_carriage_returns_that_are_no_cr_only_json_lines_file(tmp_path: Path) -> None:
    """CR is JSON whitespace: one report written over lines that end in CR alone is one
    report, and CRLF lines (a last bare CR left on one too) are lines."""
    pretty = json.dumps(GOOD, indent=1).replace("\n", "\r")
    crlf = json.dumps(GOOD) + "\r\r\n" + json.dumps({**GOOD, "report_id": "f2"}) + "\r\n"
    for name, text, lines in (("pretty.jsonl", pretty, 1), ("crlf.jsonl", crlf, 2)):
        rows = list(read_lines(write(tmp_path, name, text), "jsonl"))
        assert len(rows) == lines
        assert all(isinstance(validate_report(raw, now=LATER), Report) for _, raw in rows)


def test_crlf_and_quoted_carriage_returns_are_no_cr_only_file(tmp_path: Path) -> None:
    text = 'report_id,source,description\r\na1,pkf-op-1,"one\rtwo"\r\n'
    rows = list(read_lines(write(tmp_path, "ok.csv", text), "csv"))
    assert [json.loads(raw)["description"] for _, raw in rows] == ["one\rtwo"]


# -- UTF-16 and UTF-32 files: refused in one line, saying how to convert them ------------
_WIDE_CSV = "report_id,source,source_type\r\na1,pkf-op-1,patrol\r\n"
_WIDE_ACLED = ACLED_HEADER + "AZE1,2021-05-01,Battles,,,,,,,,39,46,,,,\n"
_WIDE_JSONL = json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "report_id": "f2"}) + "\n"


@pytest.mark.parametrize(
    ("encoding", "iconv"),
    [
        ("utf-16", "utf-16"),  # a byte order mark, as Windows' "Unicode" text is saved
        ("utf-16-le", "utf-16le"),  # none: NUL bytes tell it
        ("utf-16-be", "utf-16be"),
        ("utf-32", "utf-32"),
    ],
)
@pytest.mark.parametrize(
    ("fmt", "text"), [("csv", _WIDE_CSV), ("acled", _WIDE_ACLED)], ids=["csv", "acled"]
)
def test_a_utf16_csv_file_is_named_so(
    tmp_path: Path, fmt: str, text: str, encoding: str, iconv: str
) -> None:
    """Such a file was refused as naming no report_id column (event_id_cnty), quoting a
    header that names it."""
    path = write(tmp_path, "wide.csv", text.encode(encoding))
    producer = FakeProducer()
    with pytest.raises(HeaderError) as err:
        run_feed(Settings(), path, fmt=fmt, console=Console(file=io.StringIO()), producer=producer)
    said = str(err.value)
    assert "\n" not in said and "names no" not in said
    assert f"is {iconv[:6].upper()} text" in said and f"iconv -f {iconv} -t utf-8" in said
    assert producer.sent == []
    with pytest.raises(HeaderError, match="UTF-"):
        list(read_lines(path, fmt))


@pytest.mark.parametrize(
    ("encoding", "iconv"), [("utf-16", "utf-16"), ("utf-16-le", "utf-16le"), ("utf-32", "utf-32")]
)
def test_a_utf16_jsonl_file_is_refused_not_sent_as_junk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, iconv: str
) -> None:
    """Its lines were sent one by one, each rejected as not UTF-8 (or half a character
    from the next line's start)."""
    data = _WIDE_JSONL.encode(encoding)
    path = write(tmp_path, "wide.jsonl", data)
    producer = FakeProducer()
    with pytest.raises(HeaderError, match=f"iconv -f {iconv} -t utf-8") as err:
        run_feed(Settings(), path, console=Console(file=io.StringIO()), producer=producer)
    assert "\n" not in str(err.value) and "UTF-" in str(err.value)
    assert producer.sent == []
    # from standard input, at its first line, before it is sent
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(HeaderError, match="standard input: line 1"):
        run_feed(Settings(), "-", console=Console(file=io.StringIO()), producer=producer)
    assert producer.sent == []


def test_a_utf8_file_with_its_byte_order_mark_is_no_utf16_file(tmp_path: Path) -> None:
    for fmt, text in (("csv", _WIDE_CSV), ("acled", _WIDE_ACLED), ("jsonl", _WIDE_JSONL)):
        path = write(tmp_path, f"bom.{fmt}", b"\xef\xbb\xbf" + text.encode())
        assert len(list(read_lines(path, fmt))) == (2 if fmt == "jsonl" else 1)


# -- a legacy code page (Excel's "ANSI" CSV): each row said why, the feed warns once -----
def test_a_row_that_is_not_utf8_names_its_column_and_the_likely_cause(tmp_path: Path) -> None:
    """A Windows-1254 export: 307 of 1,000 rows said only "bytes that are not UTF-8"."""
    row = "AZE1,2021-05-01,Battles,Armed clash,,,,,,Şuşa,39.9,46.93,,,,\n"
    path = write(tmp_path, "ansi.csv", ACLED_HEADER.encode() + row.encode("cp1254"))
    unconverted: dict[int, str] = {}
    [(_, raw)] = read_lines(path, "acled", unconverted=unconverted)
    assert raw == row.strip().encode("cp1254")  # still sent as it is
    why = unconverted[2]
    assert why.startswith("bytes that are not UTF-8 in column location (0xDE): ")
    assert "Windows-1252/1254" in why and "iconv" in why
    # as the summary shows it (200 characters) and the dead letter keeps it (300)
    assert len(f"CSV row not converted: {why}") <= 200


def test_a_file_that_is_not_utf8_is_warned_of_once_saying_how_to_convert_it(
    tmp_path: Path,
) -> None:
    ansi = "c2,ngo-x,ngo,2021-05-01T10:00:00Z,39.7,46.74,,other,,,,,Ağdam\n".encode("cp1254")
    utf8 = "c3,ngo-x,ngo,2021-05-01T10:00:00Z,39.7,46.74,,other,,,,,Ağdam\n".encode()
    path = write(tmp_path, "ansi.csv", CSV_HEADER.encode() + ansi + utf8 + ansi)
    producer = FakeProducer()
    console = Console(file=io.StringIO(), width=400)
    summary = run_feed(Settings(), path, fmt="csv", console=console, producer=producer)
    assert len(producer.sent) == 3 and summary.accepted == 1  # a bad line stops nothing
    assert summary.rejected == {"invalid_encoding": 2} and summary.not_utf8 == (2, 0xF0)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    [warning] = [line for line in text.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: line 2 of {path} holds bytes that are not UTF-8 (0xF0)")
    assert "Windows-1254" in warning
    assert f"`iconv -f WINDOWS-1254 -t UTF-8 {path} > {path}.utf8`" in warning
    assert text.index("warning:") < text.index("feed summary")
    assert "in column description (0xF0)" in text  # each row's example


def test_json_lines_that_are_not_utf8_are_warned_of_but_no_lone_surrogate(
    tmp_path: Path,
) -> None:
    surrogate = json.dumps({**GOOD, "report_id": "f2", "description": "\ud800"})
    latin = json.dumps({**GOOD, "report_id": "f3", "description": "caf"}).encode()
    for data, warned in (
        (surrogate.encode() + b"\n", False),  # invalid_encoding too, but UTF-8
        (latin.replace(b'caf"', b'caf\xe9"') + b"\n", True),
    ):
        path = write(tmp_path, "in.jsonl", json.dumps(GOOD).encode() + b"\n" + data)
        console = Console(file=io.StringIO(), width=400)
        summary = run_feed(Settings(), path, console=console, producer=FakeProducer())
        assert summary.rejected == {"invalid_encoding": 1}
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert ("warning: line 2 of" in text) is warned
        assert (summary.not_utf8 == (2, 0xE9)) is warned
