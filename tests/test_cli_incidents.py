"""`ceasefire-monitor incidents`, in process, against the API served in a thread over a
stand-in worker holding real incident books."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from streams import cli
from streams.cli import queries
from streams.kafka.broker import free_port
from streams.record.incident import incident_id
from streams.web.incidents import CSV_COLUMNS
from tests.api_server import serve_api
from tests.test_web_incidents_api import EVENT_ID, all_books, expected_order, stand_in

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_api(lambda url: stand_in(all_books(), url=url)) as u:
        yield u


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["incidents", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_table_lists_open_incidents_newest_first(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--url", url)
    assert code == 0
    positions = [out.index(iid) for iid in expected_order()]
    assert positions == sorted(positions)  # newest first, every id whole
    assert "Open incidents, newest first (5)" in out
    assert "am\u2192az" in out and "More incidents" not in out


def test_limit_says_there_is_more_and_all_follows_every_page(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--url", url, "--limit", "2")
    assert code == 0 and "More incidents match" in out
    assert sum(iid in out for iid in expected_order()) == 2
    code, out, _ = run(capsys, "--url", url, "--limit", "2", "--all", "--json")
    body = json.loads(out)
    assert [i["incident_id"] for i in body["incidents"]] == expected_order()
    assert body["next_cursor"] is None


def test_filters_reach_the_api(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys, "--url", url, "--zone", "loc-east", "--from", "2023-11-14T23:14:00Z", "--json"
    )
    assert [i["zone"] for i in json.loads(out)["incidents"]] == ["loc-east", "loc-east"]
    _, out, _ = run(
        capsys, "--url", url, "--attribution", "az", "--verification", "observed", "--json"
    )
    assert [i["incident_id"] for i in json.loads(out)["incidents"]] == [EVENT_ID]
    _, out, _ = run(
        capsys,
        "--url",
        url,
        "--category",
        "engineering_works",
        "--to",
        "2030-01-01T00:00:00Z",
        "--json",
    )
    assert [i["category"] for i in json.loads(out)["incidents"]] == ["engineering_works"]


def test_csv_with_all_has_one_header_and_every_incident(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--url", url, "--all", "--limit", "1", "--csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == expected_order()


def test_one_incident_with_its_reports(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--url", url, "--id", EVENT_ID)
    assert code == 0
    assert EVENT_ID in out and "3 reports" in out
    for source, rid in (("pkf-op-1", "op-1"), ("az-mod", "az-1"), ("am-mod", "am-1")):
        assert source in out and rid in out
    assert "am accuses az" in out and "party_statement" in out
    code, out, _ = run(capsys, "--url", url, "--id", EVENT_ID, "--json")
    assert len(json.loads(out)["reports"]) == 3
    # the id as a plain argument, as a user types it first after the list
    code, plain, _ = run(capsys, "--url", url, EVENT_ID, "--json")
    assert code == 0 and json.loads(plain) == json.loads(out)
    # in capitals, as some tools copy a UUID: the API takes it, so does the command
    code, upper, _ = run(capsys, "--url", url, EVENT_ID.upper(), "--json")
    assert code == 0 and json.loads(upper) == json.loads(out)


def test_the_list_says_how_to_show_one(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--url", url, "--limit", "1")
    assert code == 0 and "ceasefire-monitor incidents ID" in out


def test_report_ids_are_shown_whole(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of one incident gives way in other columns, never in the ids an analyst
    copies (a long ACLED-style id was cut with an ellipsis in an 80-column output)."""
    _, out, _ = run(capsys, "--url", url, "--id", EVENT_ID, "--json")
    doc = json.loads(out)
    long_id = "acled-AZE" + "0123456789" * 5
    doc["reports"][0]["report_id"] = long_id
    monkeypatch.setattr(queries, "api_get", lambda *_a, **_k: doc)
    code, out, err = run(capsys, "--url", url, "--id", EVENT_ID)
    assert code == 0, err
    assert long_id in out.replace("\n", "").replace(" ", "").replace("│", "")


def test_errors_are_one_line_and_exit_1(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = incident_id(("nobody", "x"))
    code, _, err = run(capsys, "--url", url, "--id", unknown)
    assert code == 1 and err.count("\n") == 1 and f"404 no incident {unknown}" in err
    code, _, err = run(capsys, "--url", url, "--zone", "atlantis")
    assert code == 1 and err.count("\n") == 1 and "unknown zone 'atlantis'" in err
    code, _, err = run(capsys, "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "no monitor API" in err and "Traceback" not in err
    # filters beside --id would be ignored: said, not silently dropped
    code, _, err = run(capsys, "--url", url, "--id", EVENT_ID, "--zone", "shusha", "--limit", "2")
    assert code == 1 and "--zone, --limit would be ignored" in err
    code, _, err = run(capsys, "--url", url, EVENT_ID, "--csv")
    assert code == 1 and "shows one incident" in err
    with pytest.raises(SystemExit):  # the id twice, one of them as --id
        run(capsys, "--url", url, EVENT_ID, "--id", EVENT_ID)


def test_a_narrow_terminal_gets_every_field_whole(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns the 11-column table cut every field but the id to "…", and the
    reports' table ran off the edge: narrower than the table, one incident a few lines."""
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(queries, "wide_console", lambda: Console(file=screen, width=80))
    code, _, _ = run(capsys, "--url", url)
    text = screen.getvalue()
    assert code == 0 and "…" not in text, text
    for iid in expected_order():
        assert f"  {iid}\n" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    screen.truncate(0)
    screen.seek(0)
    code, _, _ = run(capsys, "--url", url, EVENT_ID)
    text = screen.getvalue()
    assert code == 0 and "…" not in text, text
    for source, rid in (("pkf-op-1", "op-1"), ("az-mod", "az-1"), ("am-mod", "am-1")):
        assert f"{source} {rid} (revision " in text, text
    assert "  verification: observed" in text
