"""Settings as the command line meets them: URLs built from the API's host, Kafka names,
the flags each command takes, files read by every command, and what `run` writes to logs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams import cli
from streams.cli import api_client, common
from streams.config import Settings
from streams.kafka.broker import free_port


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, **(env or {})},
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    assert "CEASEFIRE_DEBUG" not in line and "Error:" not in line, line
    return line


def ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


# -- 1. an IPv6 host in URLs -----------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:6066"),
        ("worker-1", "http://worker-1:6066"),
        ("::1", "http://[::1]:6066"),
        ("::", "http://[::]:6066"),
        ("fd00::5", "http://[fd00::5]:6066"),
    ],
)
def test_a_url_built_from_the_web_host_brackets_an_ipv6_one(host: str, url: str) -> None:
    """`http://:::6066` was no URL: `run` on `CEASEFIRE_WEB_HOST=::` failed with
    "ValueError: Invalid URL: port can't be converted to integer"."""
    assert Settings(web_host=host).web_url() == url
    advertised = "http://worker-1.example:6066"
    assert Settings(web_host=host, advertised_url=advertised).web_url() == advertised


def test_tallies_asks_an_ipv6_web_host_at_a_url_with_it_in_brackets() -> None:
    port = free_port()
    line = one_error_line(
        run_cli("tallies", env={"CEASEFIRE_WEB_HOST": "::1", "CEASEFIRE_WEB_PORT": str(port)})
    )
    assert f"no monitor API at http://[::1]:{port} " in line, line


def test_only_a_wildcard_host_without_an_advertised_url_is_advertised_as_such() -> None:
    assert Settings(web_host="0.0.0.0").advertises_a_wildcard()
    assert Settings(web_host="::").advertises_a_wildcard()
    assert not Settings(web_host="127.0.0.1").advertises_a_wildcard()
    assert not Settings(
        web_host="0.0.0.0", advertised_url="http://worker-1:6066"
    ).advertises_a_wildcard()


# -- 5 (and 1). `run` in a log: no cursor codes, no wrapped lines, the wildcard said ----
@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("host", ["127.0.0.1", "::"])
def test_run_writes_a_log_without_cursor_codes_or_wrapped_lines(tmp_path: Path, host: str) -> None:
    """stdout and stderr to files, as `docker logs` keeps them: Faust's start-up spinner
    wrote `ESC[?25l`, `ESC[?25h` to stdout, and the notices on stderr were wrapped at 80
    columns, URLs split. On `::` it failed at start ("Invalid URL"); now it starts, and
    says that its peers are told a wildcard address."""
    if ":" in host and not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    web_port, broker_port = free_port(), free_port()
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")}
    env = {
        **environ,
        "CEASEFIRE_EMBEDDED_PORT": str(broker_port),
        "CEASEFIRE_WEB_HOST": host,
        "CEASEFIRE_DATA_DIR": str(tmp_path / "data"),
        "CEASEFIRE_INGEST_PROCESS": "false",
        "CEASEFIRE_IDENTITY_PROCESS": "false",
        "CEASEFIRE_ANONYMOUS_POST": "true",  # `::` without a token: on purpose here
        "COLUMNS": "80",
    }
    with out_path.open("w") as out, err_path.open("w") as err:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--web-port", str(web_port)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        answered = False
        while time.monotonic() < deadline and worker.poll() is None:
            try:
                loopback = "[::1]" if ":" in host else "127.0.0.1"  # `::` is IPv6 only
                url = f"http://{loopback}:{web_port}/api/v1/tallies?window=24h"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    answered = resp.status == 200
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        assert answered, err_path.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=40) == 0, err_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert "\x1b" not in stdout + stderr, repr(stdout + stderr)
    assert "OK ^" not in stdout, stdout  # the spinner's end, when not a terminal
    shown = f"[{host}]" if ":" in host else host
    lines = stderr.splitlines()
    [api] = [line for line in lines if line.startswith("API ")]
    assert f"http://{shown}:{web_port}/metrics" in api and "in another shell" in api, stderr
    [embedded] = [line for line in lines if line.startswith("Embedded broker (Tansu) on")]
    assert embedded.endswith("for a real Kafka."), stderr
    warnings = [line for line in lines if line.startswith("warning:")]
    if host == "::":
        [warning] = warnings
        assert "CEASEFIRE_ADVERTISED_URL" in warning, warning
        assert f"http://[::]:{web_port}" in warning, warning
    else:
        assert not warnings, stderr


def test_a_notice_is_one_line_however_long(tmp_path: Path) -> None:
    """Notices on stderr were wrapped at 80 columns when it is not a terminal."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "sample.jsonl"
    result = run_cli("simulate", "--output", str(path), "--count", "3", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [f"wrote 3 reports to {path}"], result.stderr


# -- 2. a bad zone catalogue or gazetteer: one line, every command ----------------------
@pytest.fixture
def not_json(tmp_path: Path) -> Path:
    path = tmp_path / "bad.geojson"
    path.write_text("nope\n")
    return path


@pytest.mark.parametrize(
    ("variable", "command", "said"),
    [
        ("CEASEFIRE_GAZETTEER", "feed", "gazetteer is not JSON"),
        ("CEASEFIRE_GAZETTEER", "backtest", "gazetteer is not JSON"),
        ("CEASEFIRE_ZONES", "backtest", "zone catalogue is not JSON"),
        ("CEASEFIRE_ZONES", "run", "zone catalogue is not JSON"),
    ],
)
def test_a_bad_zone_catalogue_or_gazetteer_is_one_clear_line(
    tmp_path: Path, not_json: Path, variable: str, command: str, said: str
) -> None:
    """It was "error: GazetteerError: ... (set CEASEFIRE_DEBUG=1 for the traceback)", the
    form of a bug; `feed` said it only once a broker answered."""
    reports = tmp_path / "in.jsonl"
    reports.write_text('{"report_id": "r"}\n')
    args = {
        "feed": ["feed", str(reports), "--broker", f"kafka://127.0.0.1:{free_port()}"],
        "backtest": ["backtest", str(reports)],
        "run": ["run"],
    }[command]
    env = {variable: str(not_json), "CEASEFIRE_EMBEDDED_PORT": str(free_port())}
    line = one_error_line(run_cli(*args, env=env))
    assert line.startswith(f"error: {not_json}: {said}"), line


def test_a_missing_gazetteer_is_one_clear_line_before_the_broker(tmp_path: Path) -> None:
    reports = tmp_path / "in.jsonl"
    reports.write_text('{"report_id": "r"}\n')
    nowhere = f"kafka://127.0.0.1:{free_port()}"
    env = {"CEASEFIRE_GAZETTEER": "/nope.json"}
    line = one_error_line(run_cli("feed", str(reports), "--broker", nowhere, env=env))
    assert "/nope.json" in line and "gazetteer" in line and "Kafka" not in line, line


@pytest.mark.parametrize("error", ["CatalogueError", "GazetteerError"])
def test_main_says_a_zone_catalogue_or_gazetteer_error_of_any_command_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: str
) -> None:
    from streams.classify.gazetteer import GazetteerError
    from streams.classify.zones import CatalogueError

    kind = {"CatalogueError": CatalogueError, "GazetteerError": GazetteerError}[error]

    def fails(args: object) -> int:
        raise kind("/etc/zones.json: feature 3 has no properties.id (the zone code)")

    monkeypatch.delenv("CEASEFIRE_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_schema", fails)
    assert cli.main(["schema"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: /etc/zones.json: feature 3 has no properties.id (the zone code)"
    ], err


# -- 3. the topic prefix and the app id: Kafka's names -------------------------------
@pytest.mark.parametrize("value", ["bad prefix/", "ceasefire/", "a:b.", "é.", "x" * 232])
def test_a_topic_prefix_kafka_refuses_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="Kafka"):
        Settings(topic_prefix=value)


@pytest.mark.parametrize("value", ["", "bad id", "monitor/1", "x" * 221])
def test_an_app_id_kafka_refuses_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match=r"app id|Kafka"):
        Settings(app_id=value)


@pytest.mark.parametrize("value", ["s3cret\n", " s3cret", "s3cret\r\n"])
def test_an_api_token_is_the_word_a_secret_file_holds(value: str) -> None:
    """A secret file ends with a newline: kept, no client's `Bearer s3cret` matched it."""
    assert Settings(api_token=value).api_token == "s3cret"


def test_an_api_token_no_header_can_carry_is_one_line_naming_it(tmp_path: Path) -> None:
    nowhere = f"kafka://127.0.0.1:{free_port()}"
    result = run_cli(
        "run", "--broker", nowhere, env={"CEASEFIRE_API_TOKEN": "two words", "HOME": str(tmp_path)}
    )
    line = one_error_line(result)
    assert line.startswith("error: CEASEFIRE_API_TOKEN: "), line
    assert "U+0020 at position 4" in line and "two words" not in line, line  # a secret


def test_the_longest_prefix_and_app_id_allowed_make_names_kafka_holds() -> None:
    """The limits leave room for the longest topic and changelog names the monitor makes
    (Kafka's longest topic name is 249 characters)."""
    from streams.kafka.topics import topic_specs
    from streams.pipeline import tables

    prefix, app_id = "p" * 231, "a" * 220
    s = Settings(topic_prefix=prefix, app_id=app_id, partitions=1)
    topics = [spec.name for spec in topic_specs(s)]
    assert max(len(t) for t in topics) == 249, topics
    names = [
        f"{app_id}-{table}-changelog"
        for table in (
            tables.IDENTITY_TABLE,
            tables.ZONE_TABLE,
            tables.ALERT_TABLE,
            tables.THEATRE_TABLE,
        )
    ]
    for app in (app_id, f"{app_id}-identity"):  # the worker's and its identity process's app
        names.append(f"{app}-__assignor-__leader")  # Faust's
    assert max(len(n) for n in names) == 249, names
    for legal in ("", "ceasefire.", "prod_2-ceasefire."):
        assert Settings(topic_prefix=legal).topic_prefix == legal


@pytest.mark.parametrize(
    ("env", "command"),
    [
        ({"CEASEFIRE_TOPIC_PREFIX": "bad prefix/"}, "topics"),
        ({"CEASEFIRE_TOPIC_PREFIX": "bad prefix/"}, "alerts"),
        ({"CEASEFIRE_APP_ID": "monitor one"}, "topics"),
    ],
)
def test_a_bad_topic_prefix_or_app_id_is_one_line_naming_it(
    env: dict[str, str], command: str
) -> None:
    """`topics` created 8 topics of illegal names on the embedded broker; `alerts` said
    "ValueError" with the debug hint. Refused before any broker is asked (none here)."""
    nowhere = f"kafka://127.0.0.1:{free_port()}"
    line = one_error_line(run_cli(command, "--broker", nowhere, env=env))
    [variable] = env
    assert line.startswith(f"error: {variable}: "), line
    assert "Kafka refuses" in line and "no Kafka broker" not in line, line


# -- 4. --broker only where Kafka is used; a flag named only where it exists -------------
@pytest.mark.parametrize("command", ["tallies", "incidents", "export incidents", "schema"])
def test_commands_that_use_no_kafka_take_no_broker_flag(command: str) -> None:
    """`tallies --broker kafka://nohost.invalid:1` printed the table: the flag was ignored."""
    result = run_cli(*command.split(), "--broker", "kafka://nohost.invalid:1")
    assert result.returncode == 2, result.stderr
    assert "unrecognized arguments: --broker" in result.stderr, result.stderr


def test_which_commands_take_the_broker_flag() -> None:
    parser = cli.build_parser()
    broker = ["--broker", "kafka://k:9092"]
    for command in (["run"], ["feed", "x"], ["simulate"], ["alerts"], ["bench"], ["topics"]):
        assert parser.parse_args([*command, *broker]).broker == "kafka://k:9092", command
    for command in (["tallies"], ["incidents"], ["export", "series"], ["schema"]):
        assert not hasattr(parser.parse_args(command), "broker"), command
    with pytest.raises(SystemExit):
        parser.parse_args(["backtest", "x.jsonl", *broker])


@pytest.mark.parametrize(
    ("env", "args", "said", "not_said"),
    [
        ({"CEASEFIRE_WEB_PORT": "abc"}, ["tallies"], "CEASEFIRE_WEB_PORT: ", "--web-port"),
        ({"CEASEFIRE_WEB_PORT": "abc"}, ["run"], "CEASEFIRE_WEB_PORT or --web-port: ", None),
        ({"CEASEFIRE_PARTITIONS": "0"}, ["incidents"], "CEASEFIRE_PARTITIONS: ", "--partitions"),
        ({}, ["topics", "--partitions", "0"], "CEASEFIRE_PARTITIONS or --partitions: ", None),
        ({"CEASEFIRE_BROKER": "x"}, ["export", "series"], "CEASEFIRE_BROKER: ", "--broker"),
        ({"CEASEFIRE_BROKER": "x"}, ["alerts"], "CEASEFIRE_BROKER or --broker: ", None),
    ],
)
def test_a_settings_error_names_a_flag_only_of_the_command_run(
    env: dict[str, str], args: list[str], said: str, not_said: str | None
) -> None:
    line = one_error_line(run_cli(*args, env=env))
    assert line.startswith(f"error: {said}"), line
    assert not_said is None or not_said not in line, line


# -- 6. --url without its scheme ---------------------------------------------------------
@pytest.mark.parametrize("command", ["tallies", "incidents", "export series -o -"])
def test_a_url_without_a_scheme_is_said_so(command: str, tmp_path: Path) -> None:
    """`tallies --url localhost:16166` asked whether `run` was up."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command.split(), "--url", f"localhost:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    line = one_error_line(result)
    assert f"localhost:{port}" in line and "http://" in line, line
    assert "is `ceasefire-monitor run` up" not in line, line
    assert not list(tmp_path.iterdir())  # export wrote nothing


def test_the_api_bound_on_the_ipv6_wildcard_answers_ipv4_clients_too() -> None:
    """`CEASEFIRE_WEB_HOST=::` bound an IPv6-only socket: no IPv4 client reached the API.
    Beside an IPv4 socket of the same name (no host: both families), IPv6 stays IPv6 only."""
    from streams.web import listen

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port = free_port()
    try:
        sockets = listen.bind_sockets("::", port)
    except OSError as exc:
        pytest.skip(f"cannot bind :: here: {exc}")
    try:
        for sock in sockets:
            sock.listen(1)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        for sock in sockets:
            sock.close()


def test_an_export_waits_out_a_busy_worker_and_other_commands_do_not() -> None:
    """A worker answers a few large requests at once and 503 with Retry-After beyond:
    `export` asked once and failed while two others ran; it now asks again."""
    import http.server
    import json as _json
    import threading

    answers = [503, 503, 200]

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = answers.pop(0) if answers else 200
            body = _json.dumps({"error": "busy"} if code == 503 else {"ok": True}).encode()
            self.send_response(code)
            self.send_header("Retry-After", "0.1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert api_client.api_get(base, "/api/v1/series", {}, patience=10) == {"ok": True}
        answers[:] = [503]
        with pytest.raises(common.CliError, match="503 busy"):
            api_client.api_get(base, "/api/v1/tallies", {})  # a table is asked once
    finally:
        server.shutdown()
        server.server_close()


def test_replicated_topics_take_a_write_only_once_two_replicas_hold_it() -> None:
    """`acks=all` with the broker's default `min.insync.replicas` of 1 acknowledges a write
    the leader alone holds. From a replication factor of 3, every topic the monitor makes
    (its own and the stages' changelogs, as Faust declares them or as the identity process
    names them) asks for 2; below 3, nothing (2 of 2 would refuse writes while one broker
    is down)."""
    from dataclasses import replace

    from streams.kafka.topics import topic_specs
    from streams.pipeline.app import Monitor
    from streams.pipeline.faust_app import faust_app
    from streams.pipeline.identity_stage import IdentityStage

    for factor, wanted in ((1, None), (2, None), (3, "2"), (5, "2")):
        specs = topic_specs(Settings(replication_factor=factor))
        assert {spec.config.get("min.insync.replicas") for spec in specs} == {wanted}
    settings = Settings(replication_factor=3, identity_process=False)
    monitor = Monitor(settings)
    assert isinstance(monitor.identity, IdentityStage)
    assert monitor.theatre is not None
    tables = [monitor.identity.table, monitor.zone.table, monitor.alerting.table]
    for table in [*tables, monitor.theatre.table]:
        changelog = table.changelog_topic
        assert changelog.config == {"min.insync.replicas": "2"}, changelog.get_topic_name()
        assert changelog.compacting
    # as the identity process makes it: in an app of its own, the changelog named for the
    # worker's
    app = faust_app(settings, "elsewhere", client_id="elsewhere", web=False)
    named = IdentityStage(replace(monitor.identity.ports, app=app), changelog_app_id="x")
    assert named.table.changelog_topic.config == {"min.insync.replicas": "2"}
    assert named.table.changelog_topic.compacting
