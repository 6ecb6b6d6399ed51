"""The command line as an operator meets it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert schema["additionalProperties"] is False
    assert "report_id" in schema["properties"]


def test_unreachable_broker_is_one_clear_line() -> None:
    port = free_port()  # nothing listens there
    result = cli("feed", "-", "--broker", f"kafka://127.0.0.1:{port}", timeout=120)
    assert result.returncode == 1
    assert "no Kafka broker reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_tallies_without_a_worker_is_one_clear_line() -> None:
    result = cli("tallies", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "no monitor API" in result.stderr and "Traceback" not in result.stderr


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
