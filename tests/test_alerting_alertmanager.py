"""Delivery to Prometheus Alertmanager: the one-to-one mapping, retries with backoff, and a
round trip through a real Alertmanager (Debian's `prometheus-alertmanager`)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alerting.alertmanager import AlertmanagerClient, AlertmanagerError, to_alertmanager
from alerting.engine import evaluate_incident, evaluate_time
from alerting.rules import load_rules
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from schemas.alert_input import AlertInput, from_incident
from schemas.incident import Incident

pytestmark = pytest.mark.timeout(60)

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
GENERATOR = "http://monitor.example:8080/api/v1/alerts?status=all"


def _alert(**changes: Any) -> AlertEvent:
    base = AlertEvent(
        alert_id="0b6a0e0c-3d8e-5b1a-9b7c-2f1d4e5a6b7c",
        fingerprint="1f2e3d4c5b6a7980",
        status="firing",
        rule="zone-surge",
        severity="high",
        labels={"zone": "lachin-corridor"},
        value=12,
        threshold=10,
        window="1h",
        starts_at=datetime(2021, 5, 12, 10, 36, tzinfo=UTC),
        incident_ids=["a", "b", "c"],
        summary="12 incidents in zone lachin-corridor within 1h (threshold 10).",
    )
    return base.model_copy(update=changes)


def test_mapping_is_one_to_one() -> None:
    firing = to_alertmanager(_alert(), GENERATOR)
    assert firing == {
        "labels": {"zone": "lachin-corridor", "alertname": "zone-surge", "severity": "high"},
        "annotations": {
            "summary": "12 incidents in zone lachin-corridor within 1h (threshold 10).",
            "value": "12",
            "threshold": "10",
            "window": "1h",
            "incident_ids": "a,b,c",
            "fingerprint": "1f2e3d4c5b6a7980",
            "alert_id": "0b6a0e0c-3d8e-5b1a-9b7c-2f1d4e5a6b7c",
        },
        "startsAt": "2021-05-12T10:36:00Z",
        "generatorURL": GENERATOR,
    }
    ends = datetime(2021, 5, 12, 11, 4, tzinfo=UTC)
    resolved = to_alertmanager(_alert(status="resolved", ends_at=ends, value=9), GENERATOR)
    assert resolved["endsAt"] == "2021-05-12T11:04:00Z"
    assert resolved["annotations"]["value"] == "9"
    assert resolved["labels"] == firing["labels"]
    expiring = to_alertmanager(_alert(), GENERATOR, expires_at=ends)
    assert expiring["endsAt"] == "2021-05-12T11:04:00Z"
    # every digit the event has (`:g` gave "12345.7" and "1.23457e+06")
    exact = to_alertmanager(_alert(value=12345.67, threshold=1234567.0), GENERATOR)
    assert (exact["annotations"]["value"], exact["annotations"]["threshold"]) == (
        "12345.67",
        "1234567",
    )


# -- retries against a local HTTP server -------------------------------------------------


class FlakyAlertmanager:
    def __init__(self, failures: int, status: int = 503) -> None:
        self.failures = failures
        self.status = status
        self.bodies: list[Any] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        if len(self.bodies) <= self.failures:
            return web.Response(status=self.status, text="not now")
        return web.Response(status=200)


async def _serve(fake: FlakyAlertmanager) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/api/v2/alerts", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _client(url: str, sleeps: list[float], attempts: int = 4) -> AlertmanagerClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AlertmanagerClient(
        url,
        aiohttp.ClientSession,
        generator_url=GENERATOR,
        attempts=attempts,
        backoff=0.5,
        max_backoff=1.5,
        timeout=5,
        sleep=sleep,
    )


async def test_client_retries_with_exponential_backoff(sleeps: list[float]) -> None:
    fake = FlakyAlertmanager(failures=3)
    runner, url = await _serve(fake)
    try:
        async with _client(url + "/", sleeps) as client:
            await client.send([_alert()])
    finally:
        await runner.cleanup()
    assert len(fake.bodies) == 4
    assert fake.bodies[-1] == [to_alertmanager(_alert(), GENERATOR)]
    assert len(sleeps) == 3
    for got, base in zip(sleeps, (0.5, 1.0, 1.5), strict=True):  # doubling, capped at 1.5
        assert base * 0.8 <= got <= base * 1.2


async def test_client_gives_up_with_a_clear_error(sleeps: list[float]) -> None:
    fake = FlakyAlertmanager(failures=100)
    runner, url = await _serve(fake)
    try:
        async with _client(url, sleeps, attempts=3) as client:
            with pytest.raises(AlertmanagerError, match=r"after 3 attempts; last error: HTTP 503"):
                await client.send([_alert()])
    finally:
        await runner.cleanup()
    assert len(fake.bodies) == 3


async def test_client_does_not_retry_a_rejected_request(sleeps: list[float]) -> None:
    fake = FlakyAlertmanager(failures=100, status=400)
    runner, url = await _serve(fake)
    try:
        async with _client(url, sleeps) as client:
            with pytest.raises(AlertmanagerError, match=r"rejected 1 alert\(s\): HTTP 400"):
                await client.send([_alert()])
            await client.send([])  # nothing to send: no request
    finally:
        await runner.cleanup()
    assert len(fake.bodies) == 1
    assert sleeps == []


async def test_client_retries_when_nobody_listens(sleeps: list[float]) -> None:
    port = _free_port()
    async with _client(f"http://127.0.0.1:{port}", sleeps, attempts=2) as client:
        with pytest.raises(AlertmanagerError, match=r"after 2 attempts; last error: Client"):
            await client.send([_alert()])
    assert len(sleeps) == 1


# -- a real Alertmanager -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with running_alertmanager(
        tmp_path, 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'
    ) as url:
        yield url


@contextlib.contextmanager
def running_alertmanager(tmp_path: Path, config_text: str) -> Iterator[str]:
    """A real Alertmanager with `config_text`, on a loopback port: its URL."""
    if shutil.which(ALERTMANAGER) is None:
        pytest.skip(
            f"{ALERTMANAGER} is not installed "
            "(apt-get install -y prometheus-alertmanager); the CI installs it"
        )
    config = tmp_path / "alertmanager.yml"
    config.write_text(config_text)
    port = _free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"alertmanager exited with {proc.returncode}: "
                    + (tmp_path / "alertmanager.log").read_text(errors="replace")[-2000:]
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
                import urllib.request

                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager did not become ready within 20 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


async def _alerts(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with session.get(f"{url}/api/v2/alerts") as resp:
        assert resp.status == 200
        body: list[dict[str, Any]] = await resp.json()
        return body


def _incident(at: datetime) -> AlertInput:
    return from_incident(
        Incident(
            incident_id="5b0f1c2e-1111-5222-8333-444455556666",
            report_id="r-1",
            source="pkf-op-12",
            source_type="observation_post",
            occurred_at=at,
            reported_at=at,
            received_at=at,
            zone="shusha",
            lat=39.76,
            lon=46.75,
            category="heavy_weapons_fire",
            provision="complete ceasefire",
            perpetrator="az",
            target="am",
            killed=1,
            severity="critical",
            verification="observed",
        )
    )


async def test_round_trip_through_a_real_alertmanager(alertmanager: str) -> None:
    # Alerts from the engine itself: an incident seen 7 hours ago (its alerts hold for 6).
    rules = load_rules(None)
    state = ZoneState.new("shusha")
    seen = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=7)
    fired = evaluate_incident(rules, state, _incident(seen), seen)
    assert {a.rule for a in fired} == {"casualties", "heavy-weapons"}

    async with (
        AlertmanagerClient(
            alertmanager, aiohttp.ClientSession, generator_url=GENERATOR, attempts=3
        ) as client,
        aiohttp.ClientSession() as session,
    ):
        await client.send(fired)
        active: list[dict[str, Any]] = []
        for _ in range(50):
            active = await _alerts(session, alertmanager)
            if len(active) == 2:
                break
            await asyncio.sleep(0.1)
        by_rule = {a["labels"]["alertname"]: a for a in active}
        assert set(by_rule) == {"casualties", "heavy-weapons"}
        cas = by_rule["casualties"]
        event = next(a for a in fired if a.rule == "casualties")
        assert cas["labels"] == {
            "alertname": "casualties",
            "zone": "shusha",
            "severity": "critical",
        }
        assert cas["annotations"]["fingerprint"] == event.fingerprint
        assert cas["annotations"]["alert_id"] == event.alert_id
        assert cas["annotations"]["incident_ids"] == event.incident_ids[0]
        assert cas["annotations"]["summary"] == event.summary
        assert cas["status"]["state"] == "active"
        assert cas["generatorURL"] == GENERATOR
        starts = datetime.fromisoformat(cas["startsAt"].replace("Z", "+00:00"))
        assert starts == event.starts_at

        # Resolve one of them with the engine and post it: Alertmanager drops it from the
        # active alerts, the other stays.
        heavy = next(a for a in fired if a.rule == "heavy-weapons")
        resolved = [
            e
            for e in evaluate_time(rules, state, datetime.now(UTC))
            if e.fingerprint == heavy.fingerprint
        ]
        assert [(e.status, e.ends_at) for e in resolved] == [
            ("resolved", seen + timedelta(hours=6))
        ]
        await client.send(resolved)
        for _ in range(50):
            active = await _alerts(session, alertmanager)
            if len(active) == 1:
                break
            await asyncio.sleep(0.1)
        assert [a["labels"]["alertname"] for a in active] == ["casualties"]
