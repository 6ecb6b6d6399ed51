"""Kafka over TLS, end to end: a worker, `feed`, `tallies` and `alerts` against a broker
that only a TLS terminator (stunnel) exposes, with mutual TLS and a CA made here; and a
wrong CA, a certificate for another host, or no client certificate fail fast with one
line and exit code 1.

The embedded broker (Tansu 0.6.0) cannot serve TLS itself: it accepts `--cert` and goes
on serving plaintext. So it listens on a port no client is given and advertises stunnel's
port: a client that does not use TLS on every connection (bootstrap, then the broker
named in the metadata, then the group coordinator) cannot get through. stunnel also
requires a client certificate signed by the test CA, so every client must carry the
configured certificate too.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.config import Settings
from streams.kafka.broker import free_port
from tests.harness import Worker, wait_for
from tests.test_alerting_stream import report
from tests.tls_front import Pki, TlsBroker, stunnel_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(stunnel_binary() is None, reason="stunnel4 is not installed (CI has it)"),
]

#: A failing command must say so within this many seconds.
FAIL_FAST = 15.0


def mutual_tls(tls: TlsBroker) -> Settings:
    """Settings for the TLS front with the client's certificate (mutual TLS)."""
    return Settings(
        broker=tls.url,
        security_protocol="SSL",
        ssl_cafile=tls.pki.ca,
        ssl_certfile=tls.pki.client_cert,
        ssl_keyfile=tls.pki.client_key,
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    where = tmp_path_factory.mktemp("tls")
    broker = TlsBroker(Pki.make(where / "pki"), where).start()
    try:
        yield broker
    finally:
        broker.stop()


def tls_env(tls: TlsBroker, **override: str) -> dict[str, str]:
    env = {
        "CEASEFIRE_BROKER": tls.url,
        "CEASEFIRE_SECURITY_PROTOCOL": "SSL",
        "CEASEFIRE_SSL_CAFILE": str(tls.pki.ca),
        "CEASEFIRE_SSL_CERTFILE": str(tls.pki.client_cert),
        "CEASEFIRE_SSL_KEYFILE": str(tls.pki.client_key),
    }
    return {**env, **override}


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        env={**environ, **env},
    )


@pytest.mark.timeout(30)
def test_the_broker_is_reachable_only_through_tls(tls: TlsBroker) -> None:
    """The TLS port refuses a plaintext Kafka request, and the metadata names only the
    TLS port, so clients never reconnect to the plaintext one."""
    from kafka import KafkaAdminClient

    client_id = b"plaintext"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", tls.front.port), timeout=5) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        try:
            answer = sock.recv(64)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    # a Kafka answer would be a size then correlation id 7; TLS sends an alert or closes
    assert answer[4:8] != struct.pack(">i", 7)

    settings = mutual_tls(tls)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap(),
        request_timeout_ms=10_000,
        **settings.kafka_security(),
    )
    try:
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in brokers] == [("127.0.0.1", tls.front.port)]
    assert tls.front.port != tls.backend_port


@pytest.mark.timeout(180)
def test_worker_feed_tallies_and_alerts_over_tls(tls: TlsBroker, tmp_path: Path) -> None:
    env = tls_env(tls)
    before = tls.front.accepted()
    worker = Worker(None, tmp_path, name="tls", env=env).start(ready_timeout=90)
    try:
        assert str(tls.backend_port) not in json.dumps(worker.env)  # only the TLS port
        reports = tmp_path / "reports.jsonl"
        lines = [report(9001, killed=1), report(9002), report(9003)]
        reports.write_bytes(b"\n".join(lines) + b"\n")

        fed = cli("feed", str(reports), env=env)
        assert fed.returncode == 0, fed.stderr
        assert "sent 3 lines" in fed.stderr

        def tallied() -> list[tuple[str, int, int]] | None:
            rows = worker.tallies("24h", "zone")
            return (
                None if rows is None else [(r["zone"], r["incidents"], r["killed"]) for r in rows]
            )

        # The zone stage tallies in its `committed()`, after the identity stage counted:
        # wait for the tallies themselves, then ask the command once.
        wait_for(
            lambda: tallied() == [("loc-south", 3, 1)],
            timeout=60,
            what="the three reports tallied",
            explain=lambda: f"tallies: {tallied()}",
        )
        tallies = cli(
            "tallies", "--url", worker.url, "--window", "24h", "--by", "zone", "--json", env=env
        )
        assert tallies.returncode == 0, tallies.stderr
        rows = json.loads(tallies.stdout)["rows"]
        assert [(r["zone"], r["incidents"], r["killed"]) for r in rows] == [("loc-south", 3, 1)]

        def casualty_alert() -> dict[str, object] | None:
            result = cli("alerts", "--from-beginning", "--json", env=env, timeout=30)
            assert result.returncode == 0, result.stderr
            events = [json.loads(line) for line in result.stdout.splitlines() if line]
            return next(
                (e for e in events if e["rule"] == "casualties" and e["status"] == "firing"),
                None,
            )

        alert = wait_for(casualty_alert, timeout=60, interval=1, what="the casualties alert")
        assert alert["severity"] == "critical"
        labels = alert["labels"]
        assert isinstance(labels, dict) and labels["zone"] == "loc-south"
    finally:
        worker.stop()
    # the worker's clients (Faust, ingest, offsets readers) and the three commands all
    # came in through stunnel
    assert tls.front.accepted() - before >= 10


CASES: dict[str, tuple[Callable[[TlsBroker], dict[str, str]], list[str]]] = {
    # name: (environment changes, what the one line must say)
    "untrusted": (
        lambda t: {"CEASEFIRE_SSL_CAFILE": str(t.pki.other_ca)},
        ["TLS", "not trusted", "CEASEFIRE_SSL_CAFILE"],
    ),
    "wrong-host": (
        lambda t: {"CEASEFIRE_BROKER": f"kafka://127.0.0.1:{t.wrong_name.port}"},
        ["TLS", "not issued for 127.0.0.1"],
    ),
    "not-tls": (  # SSL configured, but pointed at a plaintext listener
        lambda t: {"CEASEFIRE_BROKER": f"kafka://127.0.0.1:{t.backend_port}"},
        ["TLS", "no TLS answer", "CEASEFIRE_SECURITY_PROTOCOL=SSL"],
    ),
    "no-client-cert": (
        lambda t: {"CEASEFIRE_SSL_CERTFILE": "", "CEASEFIRE_SSL_KEYFILE": ""},
        ["TLS", "client certificate", "CEASEFIRE_SSL_CERTFILE"],
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("untrusted", "feed"),
        ("untrusted", "alerts"),
        ("untrusted", "run"),
        ("wrong-host", "feed"),
        ("wrong-host", "run"),
        ("no-client-cert", "alerts"),
        ("not-tls", "feed"),
        ("no-client-cert", "run"),
    ],
)
def test_a_tls_problem_is_one_line_and_exit_1(
    tls: TlsBroker, tmp_path: Path, case: str, command: str
) -> None:
    change, words = CASES[case]
    reports = tmp_path / "reports.jsonl"
    reports.write_bytes(report(9100) + b"\n")
    env = {k: v for k, v in tls_env(tls, **change(tls)).items() if v}
    args = {
        "feed": ["feed", str(reports)],
        "alerts": ["alerts", "--from-beginning"],
        "run": ["run"],
    }[command]
    env.update(CEASEFIRE_WEB_PORT=str(free_port()), CEASEFIRE_DATA_DIR=str(tmp_path / "data"))
    started = time.monotonic()
    result = cli(*args, env=env, timeout=FAIL_FAST + 30)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert took < FAIL_FAST, f"{command} took {took:.1f}s to fail"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(30)
def test_the_tls_check_needs_one_good_bootstrap_server(tls: TlsBroker) -> None:
    """A server that does not listen is left to the clients ("no broker reachable"); one
    that answers TLS with a certificate this client trusts is enough."""
    from streams.kafka.tls import TlsProblem, check_tls

    dead = free_port()
    good = Settings(
        broker=f"kafka://127.0.0.1:{dead};127.0.0.1:{tls.front.port}",
        security_protocol="SSL",
        ssl_cafile=tls.pki.ca,
        ssl_certfile=tls.pki.client_cert,
        ssl_keyfile=tls.pki.client_key,
    )
    check_tls(good)
    check_tls(good.model_copy(update={"broker": f"kafka://127.0.0.1:{dead}"}))
    with pytest.raises(TlsProblem, match="not trusted"):
        check_tls(good.model_copy(update={"ssl_cafile": tls.pki.other_ca}))
    with pytest.raises(TlsProblem, match=r"TLS settings unusable .*CEASEFIRE_SSL_CAFILE"):
        check_tls(good.model_copy(update={"ssl_cafile": tls.pki.ca.with_name("missing.pem")}))


@pytest.mark.timeout(30)
def test_a_tls_problem_at_the_advertised_broker_is_named(tls: TlsBroker, tmp_path: Path) -> None:
    """Bootstrapping through a good front while the broker named another, whose
    certificate was for another host, gave "no Kafka broker reachable at <the good one>"."""
    from streams.kafka import tls as tls_check
    from streams.kafka.broker import EmbeddedBroker
    from tests.tls_front import TlsFront

    settings = mutual_tls(tls)
    ctx = tls_check.ssl_context_of(settings)
    assert ctx is not None
    # the broker names itself as the clients are told to reach it (asked over TLS)
    assert tls_check.advertised(ctx, "127.0.0.1", tls.front.port, 5) == [
        ("127.0.0.1", tls.front.port)
    ]
    tls_check.check_tls(settings)  # the two agree: nothing to say
    # A second broker behind a good front that advertises the wrong-name front, as a
    # broker whose advertised listener is another host's name would.
    backend = free_port()
    with (
        EmbeddedBroker(
            "127.0.0.1", backend, log=tmp_path / "tansu.log", advertised_port=tls.wrong_name.port
        ),
        TlsFront(
            backend, tls.pki.server_cert, tls.pki.server_key, tmp_path, client_ca=tls.pki.ca
        ) as front,
    ):
        misnamed = settings.model_copy(update={"broker": f"kafka://127.0.0.1:{front.port}"})
        with pytest.raises(tls_check.TlsProblem) as raised:
            tls_check.check_tls(misnamed)
    said = str(raised.value)
    assert f"names itself 127.0.0.1:{tls.wrong_name.port}" in said, said
    assert "not issued for 127.0.0.1" in said and "advertised listener" in said, said
