"""`ceasefire-monitor backtest` on files it cannot (wholly) read: what it rejected and why,
as `feed` says it, before the alerts; an error when it replayed nothing; progress on a
terminal. In process, no broker."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import streams.cli as cli
from streams.cli import common

pytestmark = pytest.mark.timeout(60)

REPORT = {
    "report_id": "r1",
    "source": "pkf-op-3",
    "source_type": "patrol",
    "occurred_at": "2021-05-01T10:00:00Z",
    "location": {"lat": 39.758, "lon": 46.748},
    "category": "small_arms_fire",
    "casualties": {"killed": 1},
}

ACLED_DMY = (
    "event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,"
    "admin1,location,latitude,longitude,geo_precision,source,notes,fatalities,timestamp\n"
    "AZE1,16/11/2021,1,Battles,Armed clash,Military Forces of Azerbaijan (2003-),"
    "Military Forces of Armenia (2018-),Syunik,Sev Lich,39.39,46.03,1,APA,clashes,2,1637107200\n"
    "AZE2,17/11/2021,1,Battles,Armed clash,Military Forces of Azerbaijan (2003-),"
    "Military Forces of Armenia (2018-),Syunik,Sev Lich,39.39,46.03,1,APA,clashes,0,1637107200\n"
)


def run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`backtest` with stdout and stderr into one buffer, in the order written."""
    both = io.StringIO()
    monkeypatch.setattr(sys, "stdout", both)
    monkeypatch.setattr(sys, "stderr", both)
    monkeypatch.setattr(common, "console", common._Console(stderr=True, width=200))  # no wrapping
    code = cli.main(["backtest", *args])
    return code, both.getvalue()


def jsonl(tmp_path: Path, *docs: dict[str, Any] | str) -> str:
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(d if isinstance(d, str) else json.dumps(d) for d in docs) + "\n")
    return str(path)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_a_file_of_which_every_row_is_rejected_is_an_error_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """d/m/y dates in an ACLED export: every row was set aside unsaid, and the backtest
    said "No alerts would have fired." and exited 0."""
    path = tmp_path / "acled.csv"
    path.write_text(ACLED_DMY)
    code, text = run([str(path), "--format", "acled"], monkeypatch)
    assert code == 1
    assert "No alerts would have fired" not in text
    # feed's table: by reason, then the first rejected lines with their line numbers
    assert "invalid_json" in text and "first rejected lines" in text
    assert "event_date '16/11/2021' is not a date" in text
    assert "event_date '17/11/2021' is not a date" in text
    [error] = error_lines(text)
    assert "all 2 rows of" in error and "were rejected (invalid_json 2)" in error
    assert "nothing to replay" in error and "'16/11/2021' is not a date" in error
    assert text.index("first rejected lines") < text.index("error:")


def test_a_csv_file_replayed_as_json_lines_says_which_format_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "acled.csv"
    path.write_text(ACLED_DMY)
    code, text = run([str(path)], monkeypatch)  # --format jsonl, the default
    assert code == 1
    [error] = error_lines(text)
    assert "all 3 lines of" in error and "message is not JSON" in error
    assert "--format acled" in error


def test_some_rows_rejected_are_shown_before_the_alerts_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = {k: v for k, v in REPORT.items() if k != "occurred_at"}
    path = jsonl(
        tmp_path,
        REPORT,
        {**typo, "report_id": "r2", "occured_at": REPORT["occurred_at"]},
        {**REPORT, "report_id": "r3", "location": {"place": "Atlantis"}},
        {**REPORT, "casualties": {"killed": 2}},  # r1 again at its revision: a conflict
    )
    code, text = run([path], monkeypatch)
    assert code == 0
    for reason in ("unknown_field", "unknown_place", "revision_conflict"):
        assert reason in text
    assert "occured_at" in text and "'Atlantis' is not in the gazetteer" in text
    assert not error_lines(text)
    # before the alerts the rejected reports would not have fired
    assert text.index("first rejected lines") < text.index("Backtest: ")
    assert "1 reports replayed in event-time order, 3 rejected" in text
    warning = next(line for line in text.splitlines() if line.startswith("warning:"))
    assert "3 of 4 lines" in warning and "unknown_field 1" in warning
    assert text.index("Backtest: ") < text.index("warning:")


def test_a_clean_file_shows_no_rejection_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text = run([jsonl(tmp_path, REPORT)], monkeypatch)
    assert code == 0
    assert "first rejected lines" not in text and "warning:" not in text
    assert "Backtest: " in text and "1 reports replayed" in text


def test_an_empty_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    code, text = run([str(path), "--format", "acled"], monkeypatch)
    assert code == 1
    [error] = error_lines(text)
    assert "holds no reports" in error and "No alerts would have fired" not in text


def test_progress_on_a_terminal_and_none_in_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 20,000-row backtest ran 40 s without a word: reading, replaying and writing the
    table now show progress on stderr when it is a terminal (as feed's)."""
    path = jsonl(tmp_path, *({**REPORT, "report_id": f"r{n}"} for n in range(50)))
    terminal = io.StringIO()
    monkeypatch.setattr(
        common,
        "console",
        common._Console(file=terminal, force_terminal=True, color_system=None, width=150),
    )
    assert cli.main(["backtest", path]) == 0
    shown = terminal.getvalue()
    for phase in ("reading reports.jsonl", "replaying in event-time order", "writing the table"):
        assert phase in shown
    assert "50 reports replayed" in shown
    out = capsys.readouterr().out
    assert "Backtest: " in out and "replaying" not in out  # the table, whole, on stdout
    # not a terminal (a log, a pipe): no progress
    monkeypatch.setattr(common, "console", common._Console(file=(log := io.StringIO()), width=150))
    assert cli.main(["backtest", path]) == 0
    assert "replaying" not in log.getvalue() and "50 reports replayed" in log.getvalue()
    assert "Backtest: " in capsys.readouterr().out
