"""`ceasefire-monitor tallies --window all / --compare` and `ceasefire-monitor export`, in
process, against the API served in a thread over a stand-in worker holding real incident
books and tallies."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest

from streams import cli
from streams.cli import queries
from streams.config import Settings
from streams.kafka.broker import free_port
from streams.web.incidents import CSV_COLUMNS
from tests.api_server import serve_api
from tests.test_web_incidents_api import ZONES, all_books, expected_order
from tests.test_web_series import tallies

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

pytestmark = pytest.mark.timeout(60)

AS_OF = "2026-11-29T12:00:00Z"


def stand_in(url: str) -> WorkerView:
    books, held = all_books(), tallies()
    monitor = SimpleNamespace(
        settings=Settings(partitions=2, advertised_url=url),
        zones=ZONES,
        zone=SimpleNamespace(books=books, tallies=held, partitions_ready=lambda: {0, 1}),
        app=SimpleNamespace(router=SimpleNamespace(table_metadata=lambda _: {url: {"t": {0, 1}}})),
    )
    return cast("WorkerView", monitor)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_api(stand_in) as u:
        yield u


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- tallies ----------------------------------------------------------------------------------
def test_change_reads_as_arrows_with_signed_deltas() -> None:
    assert queries.change(12, 9) == "12 [red]\u25b2+3[/]"
    assert queries.change(0, 2) == "0 [green]\u25bc-2[/]"
    assert queries.change(5, 5) == "5 [dim]=[/]"


def test_tallies_since_the_ceasefire(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tallies", "--url", url, "--window", "all", "--as-of", AS_OF)
    assert code == 0, err
    assert "since the ceasefire (2020-11-10T00:00:00+03:00) to" in " ".join(out.split())
    lines = {line.split()[1]: line.split()[2:] for line in out.splitlines() if "\u2502" in line}
    assert lines["lachin"][:3] == ["\u2502", "2", "\u2502"]
    assert lines["shusha"][:3] == ["\u2502", "4", "\u2502"]
    assert lines["total"][:3] == ["\u2502", "6", "\u2502"]


def test_tallies_compare_shows_the_change(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "tallies", "--url", url, "--window", "24h", "--compare", "--as-of", AS_OF
    )
    assert code == 0, err
    assert "change against the previous 24h" in " ".join(out.split())
    rows = {line.split()[1]: line for line in out.splitlines() if "\u2502" in line}
    assert "0 \u25bc-1" in rows["lachin"]  # quiet now, one the day before
    assert "1 =" in rows["shusha"]
    assert "1 \u25bc-1" in rows["total"]
    code, out, _ = run(capsys, "tallies", "--url", url, "--compare", "--as-of", AS_OF, "--json")
    assert {r["zone"]: r["previous_incidents"] for r in json.loads(out)["rows"]} == {
        "lachin": 1,
        "shusha": 1,
    }


def test_compare_since_the_ceasefire_is_one_line_and_exit_1(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "tallies", "--url", url, "--window", "all", "--compare")
    assert code == 1 and err.count("\n") == 1 and "needs a rolling window" in err


# -- export -----------------------------------------------------------------------------------
def test_export_incidents_follows_every_page_to_csv_and_json(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "ALL_PAGE", 2)  # 5 incidents: three pages
    target = tmp_path / "incidents.csv"
    code, _, err = run(capsys, "export", "incidents", "--url", url, "-o", str(target))
    assert code == 0, err
    assert f"wrote 5 incidents to {target} (csv)" in err
    rows = list(csv.reader(io.StringIO(target.read_text(), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == expected_order()
    assert not (tmp_path / "incidents.csv.part").exists()

    target = tmp_path / "out.json"  # the suffix says JSON
    code, _, err = run(capsys, "export", "incidents", "--url", url, "-o", str(target))
    assert code == 0, err
    docs = json.loads(target.read_text())
    assert [d["incident_id"] for d in docs] == expected_order()
    assert all(d["status"] == "open" and d["reports"] for d in docs)

    code, out, err = run(
        capsys, "export", "incidents", "--url", url, "--zone", "loc-east", "--from",
        "2023-11-14", "-o", "-", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert [d["zone"] for d in json.loads(out)] == ["loc-east"] * 3


def test_export_series_in_spans_of_the_api_limit(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.web.series

    days = ("--from", "2020-11-09", "--to", "2020-12-01")
    whole = tmp_path / "whole.json"
    code, _, err = run(capsys, "export", "series", "--url", url, *days, "-o", str(whole))
    assert code == 0, err
    expected = json.loads(whole.read_text())
    assert len(expected["buckets"]) == 22
    monkeypatch.setattr(streams.web.series, "MAX_BUCKETS", 5)  # client and API: 5 spans
    spans = tmp_path / "spans.json"
    code, _, err = run(capsys, "export", "series", "--url", url, *days, "-o", str(spans))
    assert code == 0, err
    assert "22 buckets of 1d (2 rows)" in err
    assert json.loads(spans.read_text()) == expected
    as_csv = tmp_path / "series.csv"
    code, _, err = run(capsys, "export", "series", "--url", url, *days, "-o", str(as_csv))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(as_csv.read_text(), newline="")))
    assert [(r["start"], r["zone"], r["incidents"]) for r in rows] == [
        ("2020-11-09T00:00:00+00:00", "shusha", "3"),
        ("2020-11-11T00:00:00+00:00", "lachin", "1"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("series", "--zone", "shusha"), "are for `export incidents`"),
        (("incidents", "--by", "party"), "are for `export series`"),
        (("series", "--from", "soon"), "not an RFC 3339 time"),
        (("series", "--from", "2021-01-02", "--to", "2021-01-01"), "is not after"),
        (("incidents", "--zone", "atlantis"), "unknown zone 'atlantis'"),
    ],
)
def test_export_errors_are_one_line_and_leave_no_file(
    url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    target = tmp_path / "x.csv"
    code, _, err = run(capsys, "export", *args, "--url", url, "-o", str(target))
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_export_without_a_worker_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "x.csv"
    code, _, err = run(
        capsys, "export", "series", "--url", f"http://127.0.0.1:{free_port()}", "-o", str(target)
    )
    assert code == 1 and "no monitor API" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    """`ceasefire-monitor export ... -o - | head` printed "error: [Errno 32] Broken pipe"."""
    script = tmp_path / "many_lines.py"
    script.write_text(
        "import sys\n"
        "from streams import cli\n"
        "def lines(args):\n"
        "    for n in range(1_000_000):\n"
        "        sys.stdout.write(f'{n}\\n')\n"
        "    return 0\n"
        "cli.cmd_schema = lines\n"
        "sys.exit(cli.main(['schema']))\n"
    )
    done = subprocess.run(
        f"{sys.executable} {script} | head -n 3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert done.stdout == "0\n1\n2\n"
    assert done.stderr == "", done.stderr


def test_tallies_of_a_worker_not_ready_say_so_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A worker whose broker came back empty answered 200 with zeros while not ready, and
    the table alone said "No incidents": the figures stand, with a note of what it waits for."""

    def not_ready(url: str) -> WorkerView:
        monitor = stand_in(url)
        waits = ["ceasefire.incidents.by-zone state"]
        for name, value in {
            "ready": False,
            "stalled": dict,
            "waiting_for": lambda: waits,
        }.items():
            setattr(monitor, name, value)
        return monitor

    with serve_api(not_ready) as url:
        code, out, err = run(capsys, "tallies", "--window", "all", "--url", url)
    assert code == 0 and "total" in out
    assert err.strip() == (
        "note: the worker is not ready (waiting for ceasefire.incidents.by-zone state): "
        "these figures can lag what was sent"
    ), err


def test_tallies_of_a_ready_worker_say_nothing_more(capsys: pytest.CaptureFixture[str]) -> None:
    def ready(url: str) -> WorkerView:
        monitor = stand_in(url)
        setattr(monitor, "ready", True)  # noqa: B010 (a stand-in's attribute)
        return monitor

    with serve_api(ready) as url:
        code, out, err = run(capsys, "tallies", "--window", "all", "--url", url)
    assert code == 0 and "total" in out and err == ""
