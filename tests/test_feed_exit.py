"""`ceasefire-monitor feed`'s exit status: a file of which no line will be accepted is
sent all the same (the workers dead-letter it) but is an error (exit 1), said in one
line; partial rejections are not. In process, a stand-in producer, no broker."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import streams.cli as cli
import streams.tools.feed as feed
from streams.cli import common
from streams.tools.formats import ACLED_DATES_READ

pytestmark = pytest.mark.timeout(60)

REPORT = {
    "report_id": "r1",
    "source": "pkf-op-3",
    "source_type": "patrol",
    "occurred_at": "2021-05-01T10:00:00Z",
    "location": {"lat": 39.758, "lon": 46.748},
    "category": "small_arms_fire",
}

ACLED_HEADER = (
    "event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,"
    "admin1,location,latitude,longitude,geo_precision,source,notes,fatalities,timestamp\n"
)
ACLED_ROW = (
    "{id},{date},1,Battles,Armed clash,Military Forces of Azerbaijan (2003-),"
    "Military Forces of Armenia (2018-),Syunik,Sev Lich,39.39,46.03,1,APA,clashes,2,1637107200\n"
)


class Future:
    is_done = True
    exception: BaseException | None = None

    def get(self, timeout: float | None = None) -> str:
        return "metadata"


class Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic: str, value: bytes | None = None, **_: Any) -> Future:
        assert value is not None
        self.sent.append(value)
        return Future()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, Producer]:
    """`feed` with stdout and stderr into one buffer, and what it sent."""
    producer = Producer()
    monkeypatch.setattr(feed, "_kafka_producer", lambda settings: producer)
    both = io.StringIO()
    monkeypatch.setattr(sys, "stdout", both)
    monkeypatch.setattr(sys, "stderr", both)
    monkeypatch.setattr(common, "console", common._Console(stderr=True, width=200))
    code = cli.main(["feed", *args])
    return code, both.getvalue(), producer


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def acled(tmp_path: Path, *dates: str) -> str:
    path = tmp_path / "export.csv"
    rows = (ACLED_ROW.format(id=f"AZE{n}", date=d) for n, d in enumerate(dates, start=1))
    path.write_text(ACLED_HEADER + "".join(rows))
    return str(path)


def test_a_file_of_which_no_row_will_be_accepted_is_sent_but_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Excel re-save with d/m/Y dates: every row went to the dead-letter topic, the
    feed said "0 valid" and exited 0, so a nightly import never failed."""
    path = acled(tmp_path, "30/11/2021", "29/11/2021")
    code, text, producer = run([path, "--format", "acled"], monkeypatch)
    assert code == 1
    assert len(producer.sent) == 2  # still sent as they are: the workers dead-letter them
    [error] = error_lines(text)
    assert error.startswith("error: nothing valid was sent: all 2 rows of")
    assert "will be rejected (invalid_json 2; the workers dead-letter them)" in error
    # the first row's why, with the dates the reader takes
    assert "line 2: CSV row not converted: event_date '30/11/2021' is not a date" in error
    assert ACLED_DATES_READ in error and "YYYY-MM-DD" in error
    assert text.strip().splitlines()[-1] == error  # the feed's last word


def test_a_file_with_some_valid_rows_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partial rejections are the dead-letter topic's business: reported, not an error."""
    path = acled(tmp_path, "2021-11-30", "29/11/2021")
    code, text, producer = run([path, "--format", "acled"], monkeypatch)
    assert (code, len(producer.sent), error_lines(text)) == (0, 2, [])
    assert "1 will be rejected" in text


def test_an_empty_file_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    code, text, _ = run([str(path)], monkeypatch)
    assert (code, error_lines(text)) == (0, [])


def test_a_csv_file_fed_as_json_lines_says_which_format_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_text("report_id,source\nr1,pkf-op-3\n")
    code, text, producer = run([str(path)], monkeypatch)
    assert (code, len(producer.sent)) == (1, 2)
    [error] = error_lines(text)
    assert "all 2 lines of" in error and "(invalid_json 2;" in error
    assert error.endswith("a CSV file is --format csv, an ACLED export --format acled")


def test_json_lines_of_which_some_are_valid_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_text(json.dumps(REPORT) + "\n{nope\n")
    code, text, _ = run([str(path)], monkeypatch)
    assert (code, error_lines(text)) == (0, [])
