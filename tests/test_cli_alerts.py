"""Alert, backtest and other CLI output that quotes free text: printed as text, never read
as rich markup (a `[/]` in a report's source crashed the subscriber; a `[red]` vanished)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from schemas.alert import AlertEvent
from streams import cli
from streams.cli import alerts, common, worker
from streams.config import Settings

#: free text as reports carry it in `source` and `location.place`, accepted by validation
HOSTILE = "op[/]1 at Shusha [red] :fire: [bold"


def _alert(n: int, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "alert_id": f"a{n}",
        "fingerprint": f"f{n}",
        "rule": "heavy-weapons",
        "severity": "high",
        "status": "firing",
        "labels": {"zone": "shusha"},
        "value": 1,
        "threshold": 1,
        "window": "6h",
        "starts_at": "2021-05-12T12:00:00.000Z",
        "ends_at": None,
        "incident_ids": ["i1"],
        "summary": f"alert {n}",
    }
    doc.update(fields)
    return doc


class _Record:
    def __init__(self, value: bytes, offset: int) -> None:
        self.value = value
        self.topic = "ceasefire.alerts"
        self.partition = 0
        self.offset = offset


def _alerts_printed(
    monkeypatch: pytest.MonkeyPatch, docs: list[dict[str, Any]]
) -> tuple[int, list[str]]:
    """`alerts --from-beginning` over these records, as an operator's terminal would show it
    (wide, so that a line is one line): the exit code and the lines."""
    import kafka

    import streams.kafka.reachable
    import streams.kafka.tls

    records = [_Record(json.dumps(d).encode(), i) for i, d in enumerate(docs)]

    class Consumer:
        def __init__(self, **_: Any) -> None:
            pass

        def __iter__(self) -> Iterator[_Record]:
            return iter(records)

        def close(self) -> None:
            pass

    monkeypatch.setattr(kafka, "KafkaConsumer", Consumer)
    monkeypatch.setattr(streams.kafka.reachable, "check_listening", lambda s: None)
    monkeypatch.setattr(streams.kafka.tls, "check_tls", lambda s: None)
    monkeypatch.setattr(alerts, "_start_at_the_end_or_beginning", lambda c, s, b, w: None)
    screen = io.StringIO()
    monkeypatch.setattr(common, "out", Console(file=screen, width=400, color_system=None))
    code = cli.main(["alerts", "--from-beginning", "--broker", "kafka://127.0.0.1:1"])
    return code, screen.getvalue().splitlines()


def test_alerts_print_summaries_and_labels_as_text_not_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `[/]` in a summary raised MarkupError (exit 1, at the same record on every
    --from-beginning); a `[red]` was eaten. Every record is shown, its text as sent."""
    code, lines = _alerts_printed(
        monkeypatch,
        [
            _alert(1, summary=f"report from {HOSTILE}."),
            _alert(2, labels={"zone": "x[/]", "by": "[red]az"}),
            _alert(3, summary="after them"),
        ],
    )
    assert code == 0
    assert lines == [
        f"FIRING   high     2021-05-12T12:00:00.000Z  heavy-weapons  zone=shusha  "
        f"report from {HOSTILE}.",
        "FIRING   high     2021-05-12T12:00:00.000Z  heavy-weapons  by=[red]az, zone=x[/]  alert 2",
        "FIRING   high     2021-05-12T12:00:00.000Z  heavy-weapons  zone=shusha  after them",
    ]


def test_alert_line_keeps_the_severity_colour() -> None:
    line = alerts.alert_line(AlertEvent.model_validate(_alert(1, severity="critical")))
    assert line.plain.startswith("FIRING   critical ")
    assert line.style == common.SEVERITY_STYLE["critical"]


def test_a_resolved_alert_without_ends_at_prints_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ends_at` may be left out (the model's default is None): the raw dict's
    `alert["ends_at"]` raised KeyError. Times print as the topic carries them."""
    bare = _alert(1, status="resolved")
    del bare["ends_at"]
    ended = _alert(2, status="resolved", ends_at="2021-05-12T18:00:00Z")
    code, lines = _alerts_printed(monkeypatch, [bare, ended, _alert(3)])
    assert code == 0
    assert [line.split()[:3] for line in lines] == [
        ["RESOLVED", "high", "2021-05-12T12:00:00.000Z"],
        ["RESOLVED", "high", "2021-05-12T18:00:00.000Z"],
        ["FIRING", "high", "2021-05-12T12:00:00.000Z"],
    ]


@pytest.mark.timeout(120)
def test_backtest_prints_a_report_source_holding_markup(tmp_path: Path) -> None:
    """`backtest FILE` stopped with `error: MarkupError: closing tag '[/]' ...` on one
    report whose source was `op[/]1`."""
    report = {
        "report_id": "r1",
        "source": "op[/]1 [red]x",
        "source_type": "observation_post",
        "occurred_at": "2021-05-12T12:00:00Z",
        "location": {"place": "Shusha"},
        "category": "heavy_weapons_fire",
        "perpetrator": "az",
    }
    path = tmp_path / "reports.jsonl"
    path.write_text(json.dumps(report) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "backtest", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "op[/]1 [red]x" in result.stdout, result.stdout


@pytest.mark.parametrize("width", [220, 80])  # the table, and the narrow listing
def test_backtest_tables_print_labels_and_summaries_as_text(width: int) -> None:
    from alerting.backtest import render_backtest

    event = AlertEvent.model_validate(
        _alert(1, labels={"zone": "x[/]"}, summary=f"report from {HOSTILE}")
    )
    console = Console(record=True, width=width, color_system=None)
    render_backtest([event], console)
    text = console.export_text()
    assert "zone=x[/]" in text, text
    assert f"report from {HOSTILE}" in text, text


def test_simulate_names_an_output_path_holding_brackets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`simulate --output 'x[/].jsonl'` wrote the file, then failed with MarkupError."""
    (tmp_path / "out[").mkdir()
    path = tmp_path / "out[" / "][red]x.jsonl"  # `.../out[/][red]x.jsonl`
    said = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=said, width=1000, color_system=None))
    assert cli.main(["simulate", "--output", str(path), "--count", "5"]) == 0
    assert len(path.read_bytes().splitlines()) == 5
    assert said.getvalue() == f"wrote 5 reports to {path}\n"


def test_the_demo_feed_says_why_it_stopped_whatever_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `[/]` in the demo's error raised MarkupError in the reporting itself: the reason
    was lost to a thread traceback."""
    import streams.tools.simulate

    def fails(*_: Any, **__: Any) -> int:
        raise RuntimeError("broker said [/] no [red]x")

    monkeypatch.setattr(streams.tools.simulate, "run_simulation", fails)
    said = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=said, width=1000, color_system=None))
    worker._demo_feed(Settings(), threading.Event())
    assert said.getvalue() == "demo feed stopped: broker said [/] no [red]x\n"
