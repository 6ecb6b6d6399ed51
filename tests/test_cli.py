"""The command line as an operator meets it."""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.harness import read_topic


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_schema_prints_the_report_json_schema() -> None:
    result = cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    report = schema["$defs"]["Report"]  # one of a report or a withdrawal
    assert [x["$ref"] for x in schema["oneOf"]] == ["#/$defs/Report", "#/$defs/WithdrawnReport"]
    assert report["additionalProperties"] is False
    assert "report_id" in report["properties"]


def test_unreachable_broker_is_one_clear_line() -> None:
    port = free_port()  # nothing listens there
    result = cli("feed", "-", "--broker", f"kafka://127.0.0.1:{port}", timeout=20)
    assert result.returncode == 1
    # said at once (kafka-python's bootstrap took 30 s to give up on a refused port)
    assert (
        f"no Kafka broker reachable at 127.0.0.1:{port} (127.0.0.1:{port} connection refused)"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_tallies_without_a_worker_is_one_clear_line() -> None:
    result = cli("tallies", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "no monitor API" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("feed", "/nonexistent/in.jsonl"), "no such file: /nonexistent/in.jsonl"),
        (
            ("export", "incidents", "-o", "/nonexistent/dir/x.csv"),
            "cannot write /nonexistent/dir/x.csv: No such file or directory",
        ),
        (("simulate", "--rate", "0"), "argument --rate: must be a positive number"),
        # nan ran for good (it never compares as reached)
        (("simulate", "--duration", "nan"), "argument --duration: not a duration: 'nan'"),
        (("simulate", "--duration", "inf"), "argument --duration: not a duration: 'inf'"),
        (("feed", "/dev/null"), "/dev/null is not a regular file: feed reads a file"),
        # a typo in an id was "InvalidURL: URL can't contain control characters"
        (("incidents", "x y"), "'x y' is not an incident id"),
        (("export", "incidents", "-o", "/tmp"), "/tmp is a directory: give a file name"),
    ],
)
def test_a_bad_file_or_value_is_one_line_without_class_names(
    args: tuple[str, ...], said: str
) -> None:
    # --broker where the command takes it: nothing is sent anywhere
    kafka = args[0] in {"feed", "simulate"}
    broker = ["--broker", f"kafka://127.0.0.1:{free_port()}"] if kafka else []
    result = cli(*args, *broker, timeout=60)
    assert result.returncode in (1, 2), result.stderr  # 2: argparse's own
    assert said in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    assert "Error:" not in result.stderr and ".part" not in result.stderr
    assert "CEASEFIRE_DEBUG" not in result.stderr


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_feed_sends_every_line_and_summarises_rejections(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    good = {
        "report_id": "f1",
        "source": "pkf-op-3",
        "source_type": "patrol",
        "occurred_at": "2021-05-01T10:00:00Z",
        "location": {"place": "Hadrut"},
        "category": "mine_incident",
    }
    lines = [
        json.dumps(good),
        json.dumps(good),
        "{nope",
        json.dumps({**good, "report_id": "f2", "x": 1}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli("feed", str(path), "--broker", broker.url)
    assert result.returncode == 0, result.stderr
    assert "sent 4 lines" in result.stderr
    assert "invalid_json" in result.stderr and "unknown_field" in result.stderr
    records = read_topic(broker.bootstrap, "ceasefire.reports", expect=4)
    assert sorted(r.value for r in records) == sorted(line.encode() for line in lines)


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_alerts_follow_prints_each_alert_as_it_comes(broker: EmbeddedBroker) -> None:
    """`alerts --follow` waits for alerts and prints each as it arrives (it crashed at its
    first wait: kafka-python takes no None timeout); without it, no alert is one line."""

    from tests.harness import produce

    def alert(n: int) -> bytes:
        return _alert(f"alert {n}")

    produce(broker.bootstrap, "ceasefire.alerts", [alert(1)])
    follow, lines = _follow_alerts(*FOLLOW_ALL, "--broker", broker.url)
    try:
        assert json.loads(lines.get(timeout=45))["summary"] == "alert 1"
        # another writer's record: said on stderr and skipped (it ended --follow)
        produce(broker.bootstrap, "ceasefire.alerts", [b"{oops", alert(2)], key=b"one-partition")
        assert json.loads(lines.get(timeout=30))["summary"] == "alert 2"
        assert follow.poll() is None  # still following
    finally:
        follow.terminate()
        _, err = follow.communicate(timeout=20)
    assert "Traceback" not in err, err
    assert "skipped a record that is not an alert event at ceasefire.alerts" in err, err
    # two alerts in one batch: the embedded broker lists the end as the batch's start + 1,
    # and `alerts` showed the last one again as new
    produce(broker.bootstrap, "ceasefire.alerts", [alert(3), alert(4)], key=b"one-partition")
    quiet = cli("alerts", "--broker", broker.url, timeout=60)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and "no new alert on ceasefire.alerts within 3 s" in quiet.stderr


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_workers_restart_around_a_standalone_embedded_broker(tmp_path: Path) -> None:
    """`ceasefire-monitor broker` keeps the data while `run` (with no broker configured)
    joins it, stops and starts again: the restarted worker fires nothing twice."""
    import os
    import signal

    from streams.kafka.broker import port_open
    from tests.harness import Worker, produce, wait_for
    from tests.test_alerting_stream import report

    port = free_port()
    env = {"CEASEFIRE_EMBEDDED_PORT": str(port)}
    environ = {k: v for k, v in os.environ.items() if k != "CEASEFIRE_BROKER"}
    broker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "broker"],
        env={**environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout=20, what="the embedded broker")
        bootstrap = f"127.0.0.1:{port}"
        death = report(1, killed=1)
        for name in ("first", "restarted"):
            worker = Worker(None, tmp_path, name=name, env=env).start()
            try:
                produce(bootstrap, "ceasefire.reports", [death])

                def processed(w: Worker = worker) -> bool:
                    seen = w.metric("ceasefire_reports_total")
                    return seen + w.metric("ceasefire_reports_duplicate_total") >= 1

                wait_for(processed, timeout=30, what="the report processed")
                firing = [
                    json.loads(r.value)
                    for r in read_topic(bootstrap, "ceasefire.alerts", expect=1)
                    if json.loads(r.value)["status"] == "firing"
                ]
                assert [a["rule"] for a in firing] == ["casualties"], firing
            finally:
                worker.stop()
            assert "Using the broker already listening" in worker.log_path.read_text()
        assert broker.poll() is None  # outlived both workers
        broker.send_signal(signal.SIGINT)
        _, err = broker.communicate(timeout=20)
        assert broker.returncode == 0, err
        assert "in-memory data is gone" in err
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait(timeout=5)


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_a_worker_whose_broker_is_gone_is_not_ready(tmp_path: Path) -> None:
    """It answered ready for minutes with its broker stopped: a load balancer kept sending
    it reports, and CeasefireWorkerNotReady could not fire."""
    import signal

    from streams.kafka.broker import port_open
    from tests.harness import Worker, wait_for

    port = free_port()
    env = {"CEASEFIRE_EMBEDDED_PORT": str(port)}
    broker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "broker"],
        env={**{k: v for k, v in os.environ.items() if k != "CEASEFIRE_BROKER"}, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout=20, what="the embedded broker")
        worker = Worker(None, tmp_path, name="orphan", env=env).start()
        try:
            assert worker.metric("ceasefire_worker_ready") == 1
            broker.send_signal(signal.SIGINT)
            broker.wait(timeout=20)

            def waits_for_broker() -> bool:
                status, body = worker.get("/readyz")
                waiting = body.get("waiting_for", []) if isinstance(body, dict) else []
                return status == 503 and any(w.startswith("broker") for w in waiting)

            wait_for(waits_for_broker, timeout=45, what="not ready without its broker")
            assert worker.metric("ceasefire_worker_ready") == 0
            # reports posted meanwhile are refused at once, saying why (it took 40 s)
            started = time.monotonic()
            status, body = worker.post("/api/v1/reports", {"report_id": "r", "source": "s"})
            assert status == 503 and "waiting for broker" in body["error"], body
            assert time.monotonic() - started < 5
            # SIGTERM: it stops, though no broker is there to leave its groups on (it waited
            # about 75 s for one, longer than an orchestrator's grace period)
            assert worker.stop(timeout=40) == 0, worker.log_tail()
            # by itself, or by the stop deadline ("stopping without waiting any longer"),
            # and without the tracebacks of consumers whose fetches were cancelled
            # (streams/kafka/fetcher_close.py)
            log = worker.log_path.read_text(errors="replace")
            assert "Traceback" not in log and "Unclosed AIOKafka" not in log, log[-3000:]
        finally:
            worker.stop()
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait(timeout=5)


def test_embedded_broker_settings_shorten_only_unset_group_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams.config import Settings

    monkeypatch.setenv("CEASEFIRE_SESSION_TIMEOUT", "9")
    monkeypatch.setenv("CEASEFIRE_EMBEDDED_PORT", "19092")
    s = Settings().on_embedded_broker()
    assert s.broker == "kafka://127.0.0.1:19092" and s.bootstrap() == "127.0.0.1:19092"
    assert (s.rebalance_timeout, s.session_timeout, s.heartbeat_interval) == (3.0, 9.0, 1.0)
    assert Settings().rebalance_timeout == 20.0  # Apache Kafka defaults otherwise


def test_run_with_the_web_port_in_use_fails_at_once_without_touching_the_broker() -> None:
    """The port is checked before the broker, Faust or the demo: one line, exit 1, quickly.
    The configured "broker" is a listener of this test's: a connection to it would show."""
    import select
    import socket
    import time

    with (
        socket.create_server(("127.0.0.1", 0)) as web,
        socket.create_server(("127.0.0.1", 0)) as fake_broker,
    ):
        web_port = web.getsockname()[1]
        broker_port = fake_broker.getsockname()[1]
        started = time.monotonic()
        result = cli(
            "run",
            "--demo",
            "--web-port",
            str(web_port),
            env={"CEASEFIRE_BROKER": f"kafka://127.0.0.1:{broker_port}"},
            timeout=30,
        )
        elapsed = time.monotonic() - started
        touched, _, _ = select.select([fake_broker], [], [], 0)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {web_port} on 127.0.0.1 is already in use" in lines[0]
    assert "--web-port" in lines[0]
    assert elapsed < 10, elapsed  # interpreter start-up only: no group join, no broker wait
    assert not touched, "run connected to the broker before checking its port"


def test_the_reserved_api_port_is_the_one_the_api_serves_on() -> None:
    """`run` keeps the port bound from its check until the API server takes the sockets."""
    import socket

    from streams.web import listen

    port = free_port()
    listen.reserve("127.0.0.1", port)
    try:
        with pytest.raises(OSError), socket.socket() as other:
            other.bind(("127.0.0.1", port))  # held meanwhile: nobody else can take it
        sockets = listen.take("127.0.0.1", port)
        assert sockets is not None and listen.take("127.0.0.1", port) is None
        assert [s.getsockname() for s in sockets] == [("127.0.0.1", port)]
    finally:
        for s in sockets or []:
            s.close()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_broker_command_stops_promptly_and_cleanly_on_sigterm_and_ctrl_c() -> None:
    """SIGTERM used to take 10 s and end in "error: TimeoutExpired" (exit 1); Ctrl-C
    stops it even when it was started with SIGINT ignored (it waited for good)."""
    import os
    import signal
    import time

    from streams.kafka.broker import port_open
    from tests.harness import wait_for

    def ignoring_ctrl_c() -> None:  # as a shell's `&` starts it in a script
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    environ = {k: v for k, v in os.environ.items() if k != "CEASEFIRE_BROKER"}
    for sig, ignored in ((signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "broker"],
            env={**environ, "CEASEFIRE_EMBEDDED_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=ignoring_ctrl_c if ignored else None,
        )
        try:

            def listening(p: int = port) -> bool:
                return port_open("127.0.0.1", p)

            wait_for(listening, timeout=20, what="the broker")
            # The banner comes after the port opens: let the command reach its wait (where
            # the old handler hung), so the signal is not handled while it still prints.
            time.sleep(1.0)
            started = time.monotonic()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=15)
            elapsed = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        assert proc.returncode == 0, (sig, err)
        assert elapsed < 5, (sig, elapsed)
        assert "error" not in err.lower(), err
        assert "in-memory data is gone" in err
        assert not port_open("127.0.0.1", port), "the Tansu child outlived the command"


def test_an_error_line_is_one_line_of_plain_text() -> None:
    """A message holding `[/...]` crashed rich's markup (a traceback); a long one wrapped."""
    url = f"http://127.0.0.1:{free_port()}/{'x' * 100}/[/oops]"
    result = cli("tallies", "--url", url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no monitor API at") and url in line


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:abc", "Port could not be cast"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:0", "no host and port"),
    ],
)
def test_a_url_with_no_port_to_ask_is_one_line(url: str, said: str) -> None:
    """They were `error: InvalidURL: ...` with a hint to set CEASEFIRE_DEBUG: a bug's way."""
    from streams.cli.api_client import api_url
    from streams.cli.common import CliError

    with pytest.raises(CliError, match=re.escape(said)) as raised:
        api_url(argparse.Namespace(url=url), Settings())
    assert str(raised.value).startswith(f"--url {url}: ")


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"CEASEFIRE_PARTITIONS": "0"}, ["tallies"], "CEASEFIRE_PARTITIONS: "),  # no flag
        ({}, ["topics", "--partitions", "-3"], "CEASEFIRE_PARTITIONS or --partitions:"),
        ({"CEASEFIRE_ADVERTISED_URL": "127.0.0.1:6066"}, ["tallies"], "is not an http://"),
        ({"CEASEFIRE_ALERTMANAGER_URL": "am:9093"}, ["tallies"], "CEASEFIRE_ALERTMANAGER_URL:"),
        ({"CEASEFIRE_SESSION_TIMEOUT": "-5"}, ["tallies"], "CEASEFIRE_SESSION_TIMEOUT:"),
        ({"CEASEFIRE_HEARTBEAT_INTERVAL": "40"}, ["tallies"], "must be shorter than"),
        ({"CEASEFIRE_CEASEFIRE_START": "2099-01-01T00:00:00Z"}, ["tallies"], "in the future"),
        ({"CEASEFIRE_OBSERVED_SINCE": "yesterday"}, ["tallies"], "CEASEFIRE_OBSERVED_SINCE:"),
        ({}, ["feed", "-", "--broker", "kafka://nohost:notaport"], "is not kafka://host:port"),
        ({}, ["run", "--web-port", "81602"], "CEASEFIRE_WEB_PORT or --web-port:"),
        # TLS and SASL settings that PLAINTEXT (the default) ignored without a word
        ({"CEASEFIRE_SSL_CAFILE": "/tls/ca.pem"}, ["tallies"], "PLAINTEXT does not use it"),
        ({"CEASEFIRE_SASL_PASSWORD": "s"}, ["feed", "-"], "set CEASEFIRE_SECURITY_PROTOCOL="),
        # SASL without its credentials read as "no Kafka broker reachable", after 30 s
        (
            {"CEASEFIRE_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CEASEFIRE_SASL_USERNAME": "u"},
            ["topics"],
            "set CEASEFIRE_SASL_PASSWORD",
        ),
        # the API and the embedded broker on one port: a 51-line traceback after 10 s
        ({"CEASEFIRE_EMBEDDED_PORT": "38114"}, ["run", "--web-port", "38114"], "are both 38114"),
        ({"CEASEFIRE_ADVERTISED_URL": "http://127.0.0.1:99999"}, ["tallies"], "port 99999"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    env: dict[str, str], args: list[str], said: str
) -> None:
    result = cli(*args, env=env, timeout=60)
    assert result.returncode == 1, result
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: CEASEFIRE_"), line
    assert said in line and "pydantic" not in line and "ValidationError" not in line, line


def test_an_empty_broker_setting_is_unset() -> None:
    from streams.config import Settings

    assert Settings(broker="").broker is None
    assert Settings(broker="kafka://a:9092;b.example:19092").bootstrap() == "a:9092,b.example:19092"
    for broker in ("kafka://kafka_1:9092", "kafka://[::1]:9092", "10.0.0.5:9092"):
        assert Settings(broker=broker).broker == broker


def test_run_checks_its_rule_file_first_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    port = free_port()  # nothing is started: no broker on it afterwards
    result = cli("run", "--rules", str(broken), env={"CEASEFIRE_EMBEDDED_PORT": str(port)})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: rule file {broken}: not valid YAML"), line


@pytest.mark.parametrize(
    "text",
    ["rules: []\n", "rules:\n  - {name: quiet, kind: incident, severity: high, enabled: false}\n"],
)
def test_run_warns_of_a_rule_file_with_no_enabled_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """It started a worker that raises no alert, saying nothing."""
    import io

    from rich.console import Console

    from streams.cli import common, worker

    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    said = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=said, width=300, color_system=None))
    worker._check_files(Settings(rules=rules))
    assert f"the rule file {rules} has no enabled rule: this worker raises no alert" in (
        said.getvalue()
    )
    said.truncate(0)
    worker._check_files(Settings())  # the shipped rules: nothing said
    assert said.getvalue() == ""


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_topics_says_what_the_broker_holds_and_refuses_a_mismatch(broker: EmbeddedBroker) -> None:
    prefix = {"CEASEFIRE_TOPIC_PREFIX": "mismatch."}
    made = cli("topics", "--broker", broker.url, "--partitions", "2", env=prefix)
    assert made.returncode == 0, made.stderr
    rows = {line.split()[0]: line.split()[1:] for line in made.stdout.splitlines()}
    assert rows["mismatch.reports"] == ["2", "partitions", "created"], made.stdout
    assert rows["mismatch.fatalities.theatre"][0] == "1"
    # a raised retention does not reach existing topics by itself: said, then set
    year = {**prefix, "CEASEFIRE_RETENTION_DAYS": "365"}
    said = cli("topics", "--broker", broker.url, "--partitions", "2", env=year)
    assert said.returncode == 0, said.stderr
    assert "retention.ms: 5184000000, the settings give 31536000000" in said.stdout
    assert "3 configs of existing topics differ" in said.stdout
    update = cli("topics", "--broker", broker.url, "--partitions", "2", "--update-config", env=year)
    assert update.returncode == 0, update.stderr
    assert update.stdout.count("retention.ms: 5184000000 -> 31536000000  set") == 3
    assert (
        "differ" not in cli("topics", "--broker", broker.url, "--partitions", "2", env=year).stdout
    )
    again = cli("topics", "--broker", broker.url, "--partitions", "3", env=prefix)
    assert again.returncode == 1
    [line] = again.stderr.strip().splitlines()
    assert (
        "mismatch.reports has 2 partitions, but CEASEFIRE_PARTITIONS (the topics command's "
        "--partitions) is 3" in line
    )


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_topics_refuses_an_earlier_deployment_s_changelogs_under_the_same_app_id(
    broker: EmbeddedBroker,
) -> None:
    """A new topic prefix with more partitions, the app id kept: the worker met the earlier
    deployment's changelogs (named for the app id), never became ready and did not say why."""
    from kafka.admin import KafkaAdminClient, NewTopic

    earlier = {"CEASEFIRE_TOPIC_PREFIX": "before.", "CEASEFIRE_APP_ID": "kept-app"}
    assert cli("topics", "--broker", broker.url, "--partitions", "2", env=earlier).returncode == 0
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:  # what its workers' Faust made
        admin.create_topics([NewTopic("kept-app-alert-state-changelog", 2, 1)])
    finally:
        admin.close()
    grown = {**earlier, "CEASEFIRE_TOPIC_PREFIX": "grown."}
    refused = cli("topics", "--broker", broker.url, "--partitions", "4", env=grown)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert (
        "changelog topic kept-app-alert-state-changelog has 2 partitions, but the stage's input "
        "has 4" in line
    ), line
    assert "needs its own CEASEFIRE_APP_ID" in line
    own = {**grown, "CEASEFIRE_APP_ID": "grown-app"}
    made = cli("topics", "--broker", broker.url, "--partitions", "4", env=own)
    assert made.returncode == 0, made.stderr


def test_simulate_writes_a_sample_file_to_feed_or_backtest(tmp_path: Path) -> None:
    from schemas.report import Report, WithdrawnReport
    from schemas.validation import validate_report

    path = tmp_path / "sample.jsonl"
    made = cli("simulate", "--output", str(path), "--count", "200", "--rate", "0.1")
    assert made.returncode == 0, made.stderr
    lines = path.read_bytes().splitlines()
    assert len(lines) == 200 and f"wrote 200 reports to {path}" in " ".join(made.stderr.split())
    valid = [validate_report(line) for line in lines]
    assert all(isinstance(v, Report | WithdrawnReport) for v in valid)  # times up to now
    replay = cli("backtest", str(path))
    assert replay.returncode == 0 and "reports replayed" in replay.stderr, replay.stderr
    wrong = cli("simulate", "--count", "5")
    assert wrong.returncode == 1 and "--count is for --output" in wrong.stderr


def test_urls_with_a_scheme_pass_including_ipv6() -> None:
    from streams.config import Settings

    for url in ("http://[::1]:6066", "http://10.0.0.5:6066/", "https://worker-1.example/x"):
        assert Settings(advertised_url=url).advertised_url == url


@pytest.mark.timeout(120)
def test_a_table_piped_into_a_reader_that_stops_ends_quietly(tmp_path: Path) -> None:
    """`backtest ... | head -1` exited 1 (rich's broken-pipe exit): scripts with pipefail
    failed on it. It ends as the other output does: exit 0, nothing on stderr."""
    import os

    reports = tmp_path / "reports.jsonl"
    made = cli("simulate", "--output", str(reports), "--count", "300")
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "backtest", str(reports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()  # the table's first line, then the reader stops
    proc.stdout.close()
    assert proc.wait(timeout=90) == 0
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "error" not in err.lower(), err


def _alerts_topic_exists(bootstrap: str, topic: str) -> bool:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return topic in admin.list_topics()
    finally:
        admin.close()


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_alerts_before_the_topics_exist_creates_no_topic(broker: EmbeddedBroker) -> None:
    """Subscribing to the missing alert topic had the broker create it, with its default
    partitions and retention: `run` then found a topic it had not made. Without the topic
    there is no new alert; --follow waits for `run` (or `topics`) to create it."""

    from streams.config import Settings
    from streams.kafka.topics import ensure_topics
    from tests.harness import produce

    prefix = {"CEASEFIRE_TOPIC_PREFIX": "early."}
    quiet = cli("alerts", "--broker", broker.url, env=prefix, timeout=60)
    # said as missing, not as "no alerts": a wrong prefix looked like a quiet theatre
    assert quiet.returncode == 1, quiet.stderr
    assert "there is no topic early.alerts on" in quiet.stderr, quiet.stderr
    assert "Traceback" not in quiet.stderr
    assert not _alerts_topic_exists(broker.bootstrap, "early.alerts")

    env = {**os.environ, **prefix, "CEASEFIRE_BROKER": broker.url}
    follow, lines = _follow_alerts("--follow", "--json", env=env)
    try:
        time.sleep(4)  # past its start-up and a few looks for the topic
        assert follow.poll() is None
        assert not _alerts_topic_exists(broker.bootstrap, "early.alerts")
        settings = Settings(broker=broker.url, topic_prefix="early.", partitions=2)
        ensure_topics(settings)  # as `run` does
        produce(broker.bootstrap, "early.alerts", [_alert("the first alert")])
        assert json.loads(lines.get(timeout=30))["summary"] == "the first alert"
    finally:
        follow.terminate()
        _, err = follow.communicate(timeout=20)
    assert "Traceback" not in err, err


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_alerts_follow_reads_a_topic_created_again_from_its_start(tmp_path: Path) -> None:
    """The embedded broker restarted empty: the subscriber's position was beyond the new
    topic's end, the broker answered its fetches with nothing, and --follow went silent for
    good while alerts came."""

    from kafka.admin import KafkaAdminClient, NewTopic

    from tests.harness import produce

    port = free_port()

    def broker_with_alerts(log: str, summaries: list[str]) -> EmbeddedBroker:
        broker = EmbeddedBroker("127.0.0.1", port, log=tmp_path / log).start()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            admin.create_topics([NewTopic("ceasefire.alerts", 1, 1)])
        finally:
            admin.close()
        produce(broker.bootstrap, "ceasefire.alerts", [_alert(s) for s in summaries])
        return broker

    broker = broker_with_alerts("first.log", [f"old {n}" for n in range(6)])
    follow, lines = _follow_alerts(*FOLLOW_ALL, "--broker", broker.url)
    try:
        for n in range(6):
            assert json.loads(lines.get(timeout=45))["summary"] == f"old {n}"
        broker.stop()
        broker = broker_with_alerts("second.log", ["new 0", "new 1"])
        assert json.loads(lines.get(timeout=45))["summary"] == "new 0"
        assert json.loads(lines.get(timeout=10))["summary"] == "new 1"
        assert follow.poll() is None
    finally:
        follow.terminate()
        _, err = follow.communicate(timeout=20)
        broker.stop()
    assert "position 6 is beyond the partition's end 2" in err, err
    assert "Traceback" not in err, err


FOLLOW_ALL = ("--follow", "--from-beginning", "--json")


def _follow_alerts(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """`alerts ARGS` running, and the lines it prints as they come."""
    follow = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "alerts", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else dict(os.environ),
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return follow, lines


def _alert(summary: str) -> bytes:
    return json.dumps(
        {
            "alert_id": summary,
            "fingerprint": summary,
            "rule": "casualties",
            "severity": "critical",
            "status": "firing",
            "labels": {"zone": "loc-south"},
            "value": 1,
            "threshold": 1,
            "window": "24h",
            "starts_at": "2026-12-01T00:00:00Z",
            "ends_at": None,
            "summary": summary,
        }
    ).encode()


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_simulate_and_feed_send_to_topics_of_another_partition_count(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Producers refused topics with other partitions than their shell's
    CEASEFIRE_PARTITIONS ("error: TopicMismatch: ... (or --partitions)", a flag they do not
    have): `simulate` on the host against the compose stack's 8. A topic they create gets
    the count the others have."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from streams.config import Settings
    from streams.kafka.topics import topic_partitions

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:  # the input topic alone, as another deployment made it
        admin.create_topics([NewTopic("other.reports", 2, 1)])
    finally:
        admin.close()
    env = {"CEASEFIRE_TOPIC_PREFIX": "other.", "CEASEFIRE_PARTITIONS": "4"}
    sent = cli("simulate", "--broker", broker.url, "--duration", "2s", "--rate", "10", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "sent " in sent.stderr and "reports to other.reports" in sent.stderr, sent.stderr
    # the status line whole into a pipe: cut at 80 columns, it lost its last counts
    assert re.search(r"late \d+  malformed \d+  bursts \d+", sent.stderr), sent.stderr
    have = topic_partitions(Settings(broker=broker.url, topic_prefix="other."))
    assert have["other.reports"] == 2
    assert have["other.alerts"] == have["other.incidents"] == 2  # not the shell's 4
    assert have["other.fatalities.theatre"] == 1
    assert read_topic(broker.bootstrap, "other.reports", expect=1)  # delivered
    path = tmp_path / "one.jsonl"
    line = {
        "report_id": "f1",
        "source": "pkf-op-3",
        "source_type": "patrol",
        "occurred_at": "2021-05-01T10:00:00Z",
        "location": {"place": "Hadrut"},
        "category": "mine_incident",
    }
    path.write_text(json.dumps(line) + "\n")
    fed = cli("feed", str(path), "--broker", broker.url, env=env)
    assert fed.returncode == 0, fed.stderr
    assert "sent 1 line to" in fed.stderr, fed.stderr


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_broker_command_fails_when_its_broker_exits_unasked() -> None:
    """Tansu ending on its own (a panic exits 0; here a SIGTERM sent to it alone) was a
    clean stop: exit 0, while every worker lost its broker."""
    import signal

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "broker"],
        env={**os.environ, "CEASEFIRE_EMBEDDED_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        # its banner: started, now waiting for the broker (before it, an exit is a failed
        # start, said otherwise)
        banner = proc.stderr.readline()
        assert "Embedded broker" in banner, banner
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGTERM)  # the Tansu process, not the command
        _, rest = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    err = banner + (rest or "")
    assert proc.returncode == 1, err
    assert "error: the embedded broker exited on its own with code 0" in err, err


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_broker_command_says_why_its_broker_did_not_start() -> None:
    """A port bound by another program without listening: Tansu panics on AddrInUse and
    exits 0, and the command said only "exited at start with code 0"."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = cli("broker", env={"CEASEFIRE_EMBEDDED_PORT": str(port)})
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the embedded broker exited at start with code 0: "), line
    assert f"port 127.0.0.1:{port} is in use by another program" in line, line


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_run_stopped_by_sigterm_while_it_starts_exits_0(tmp_path: Path) -> None:
    """SIGTERM while `run` still starts (here: waiting for a broker address that accepts
    and never answers) ends it at once with 0, as a stop asked for; it ended by the
    signal (-15), which a membership test saw once under load."""
    import signal
    import socket
    import threading

    from tests.harness import wait_for

    accepted: list[socket.socket] = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(0.2)
        port = silent.getsockname()[1]
        done = threading.Event()

        def accept() -> None:
            while not done.is_set():
                try:
                    accepted.append(silent.accept()[0])
                except TimeoutError:
                    continue

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--web-port", str(free_port())],
            env={
                **os.environ,
                "CEASEFIRE_BROKER": f"kafka://127.0.0.1:{port}",
                "CEASEFIRE_DATA_DIR": str(tmp_path),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: bool(accepted), timeout=30, what="run reaching the broker")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
            elapsed = time.monotonic() - started
        finally:
            done.set()
            acceptor.join(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            for conn in accepted:
                conn.close()
    assert proc.returncode == 0, err
    assert elapsed < 5, elapsed
    assert "Stopped (SIGTERM) before the worker started." in err, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize(
    "args",
    [
        ["--repeat", "0"],
        ["--triggers", "-1"],
        ["--state", "0"],
        ["--n", "0"],
        ["--n", "-5"],
        ["--state", "10", "--days", "0"],
        ["--state", "10", "--days", "-1"],
        ["--state", "10", "--days", "nan"],
        ["--state", "10", "--days", "inf"],
    ],
)
def test_bench_refuses_counts_and_days_below_one_at_once(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--n 0` ran a bench of nothing; `--days 0` spread every report on one instant."""
    from streams.cli import build_parser

    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["bench", *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {args[-2]}: must be" in err, err


def test_bench_takes_fractional_days() -> None:
    from streams.cli import build_parser

    parsed = build_parser().parse_args(["bench", "--state", "10", "--days", "0.5", "--n", "3"])
    assert (parsed.days, parsed.n, parsed.state) == (0.5, 3, 10)
