"""The command line's one-line errors where a newcomer's mistakes meet them: a file that
is none, a flag of the other mode, a URL that is not a worker's, and help that reads right."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=50,
        env=environ,
        cwd=cwd,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    return line


@pytest.mark.parametrize("command", ["feed", "backtest"])
def test_feed_and_backtest_say_a_file_that_is_none_alike(tmp_path: Path, command: str) -> None:
    """backtest said "No such file or directory: x" and "Is a directory: /tmp", feed
    "no such file: x" and "/tmp is a directory: feed takes a file"."""
    assert error_line(run_cli(command, "nofile.jsonl", cwd=tmp_path)) == (
        "error: no such file: nofile.jsonl"
    )
    assert error_line(run_cli(command, str(tmp_path), cwd=tmp_path)) == (
        f"error: {tmp_path} is a directory: {command} takes a file"
    )


def test_simulate_to_a_file_refuses_duration_as_kafka_refuses_count(tmp_path: Path) -> None:
    """`--duration` with `--output` was ignored (1,000 reports written, exit 0)."""
    line = error_line(run_cli("simulate", "--output", "a.jsonl", "--duration", "10s", cwd=tmp_path))
    assert "--count" in line and "--duration" in line, line
    assert not (tmp_path / "a.jsonl").exists()


@pytest.fixture
def other_server() -> Iterator[str]:
    """An HTTP server that is not the monitor (Prometheus and Grafana sit beside it)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>\n<head><title>Error</title></head>\n<body>Not here</body>\n</html>\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", [["tallies"], ["incidents"]])
def test_a_url_of_another_server_is_one_line_not_its_page(
    tmp_path: Path, other_server: str, command: list[str]
) -> None:
    line = error_line(run_cli(*command, "--url", other_server, cwd=tmp_path))
    assert ": 404 " in line and "not the monitor API's" in line and "<html>" not in line, line


@pytest.mark.parametrize("command", ["tallies", "export"])
def test_help_shows_zone_party_as_one_grouping(tmp_path: Path, command: str) -> None:
    out = run_cli(command, "--help", cwd=tmp_path).stdout
    assert "verification | zone,party}" in " ".join(out.split()), out


def test_a_data_dir_that_cannot_be_written_is_one_line_before_the_broker(tmp_path: Path) -> None:
    """A read-only CEASEFIRE_DATA_DIR was a 27-line traceback once the broker answered; a
    file in its place was a line that did not name the setting."""
    (tmp_path / "afile").write_text("")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")}
    for data_dir, why in [("afile", "File exists"), ("afile/sub", "Not a directory")]:
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "run", "--broker", "kafka://127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=50,
            env={**environ, "CEASEFIRE_DATA_DIR": str(tmp_path / data_dir)},
            cwd=tmp_path,
        )
        line = error_line(result)
        assert line == f"error: CEASEFIRE_DATA_DIR: {tmp_path / data_dir}: {why}", line
