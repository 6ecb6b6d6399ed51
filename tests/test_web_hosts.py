"""The API answers only to its own host names, IP addresses and CEASEFIRE_ALLOWED_HOSTS:
a request naming another host is 421 (DNS rebinding let any web page an analyst opened
read the API through the analyst's browser: `Host: attacker.example:6066` was answered 200)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from streams.config import Settings
from streams.web.api import Api
from streams.web.hosts import (
    allowed_hosts,
    default_names,
    header_host,
    is_ip_literal,
    is_loopback,
    parse_allowed,
)
from tests.test_web_api import AUTH, REPORTS, RecordingProducer, report, stand_in

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]


# -- pure ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("attacker.example:6066", "attacker.example"),
        ("Worker-1.Example.ORG.:6066", "worker-1.example.org"),
        ("localhost", "localhost"),
        ("[::1]:6066", "[::1]"),
        ("127.0.0.1:6066", "127.0.0.1"),
        ("::1", "::1"),
    ],
)
def test_the_host_of_a_host_header(header: str, host: str) -> None:
    assert header_host(header) == host


@pytest.mark.parametrize(
    ("host", "literal"),
    [
        ("127.0.0.1", True),
        ("10.0.0.5", True),
        ("[::1]", True),
        ("[fe80::1%25eth0]", True),
        ("::1", True),
        ("localhost", False),
        ("127.0.0.1.nip.io", False),
        ("[attacker.example]", False),
    ],
)
def test_ip_literals(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal


def test_names_allowed_by_default_and_by_the_setting() -> None:
    allowed = allowed_hosts("0.0.0.0", "http://worker-1:6066", "monitor.example.org,*.corp.example")
    for header in (
        "localhost:6066",
        "LOCALHOST.:6066",
        "worker-1:6066",  # the advertised URL's: peers and Prometheus ask by it
        "monitor.example.org",
        "a.corp.example:6066",
        "a.b.corp.example",
        f"{socket.gethostname()}:6066",
        socket.getfqdn(),
        "127.0.0.1:6066",
        "10.1.2.3",
        "[::1]:6066",
        "[2001:db8::5]:6066",
    ):
        assert allowed.allows(header), header
    for header in (
        "attacker.example:6066",
        "corp.example",  # *.corp.example is the names under it
        "evilcorp.example",
        "worker-2:6066",
        "monitor.example.org.evil.example",
        "127.0.0.1.nip.io:6066",
        "localhost.attacker.example",
    ):
        assert not allowed.allows(header), header


def test_a_named_web_host_is_allowed_and_a_wildcard_one_names_nothing() -> None:
    assert "worker-1.lan" in default_names("Worker-1.lan", None)
    assert not ({"0.0.0.0", "::", "[::]"} & default_names("0.0.0.0", None))
    assert "10.0.0.5" not in default_names("10.0.0.5", "http://10.0.0.5:6066")


def test_a_star_allows_any_name() -> None:
    assert parse_allowed("*").allows("attacker.example:6066")
    assert not parse_allowed("").allows("attacker.example:6066")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("worker-1", False),
    ],
)
def test_loopback_listen_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("value", ["http://a.example", "a.example:6066", "a b", "a.*.example"])
def test_the_setting_takes_names_only(value: str) -> None:
    with pytest.raises(ValidationError, match="is not a host name"):
        Settings(allowed_hosts=value)


def test_the_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEASEFIRE_ALLOWED_HOSTS", "monitor.example.org, *.corp.example")
    assert Settings().allowed_hosts == "monitor.example.org, *.corp.example"
    monkeypatch.setenv("CEASEFIRE_ALLOWED_HOSTS", "")
    assert Settings().allowed_hosts is None


# -- served ----------------------------------------------------------------------------------
@asynccontextmanager
async def serve(**settings: Any) -> AsyncIterator[tuple[Client, RecordingProducer]]:
    monitor, producer = stand_in(**settings)
    async with TestClient(TestServer(Api(monitor).web)) as client:
        yield client, producer


ROUTES = ["/", "/healthz", "/readyz", "/metrics", "/api/v1/zones", "/api/v1/incidents", "/x"]


@pytest.mark.parametrize("path", ROUTES)
async def test_a_request_naming_another_host_is_421_on_every_route(path: str) -> None:
    async with serve() as (client, _):
        resp = await client.get(path, headers={"Host": "attacker.example:6066"})
        assert resp.status == 421, await resp.text()
        body = await resp.json()
        assert "'attacker.example'" in body["error"]
        assert "CEASEFIRE_ALLOWED_HOSTS" in body["error"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1:6066", "[::1]:6066", "localhost:6066", "worker-1:6066", "x.corp.example"]
)
async def test_addresses_own_names_and_allowed_ones_are_answered(host: str) -> None:
    settings = {"advertised_url": "http://worker-1:6066", "allowed_hosts": "*.corp.example"}
    async with serve(**settings) as (client, _):
        resp = await client.get("/api/v1/zones", headers={"Host": host})
        assert resp.status == 200, await resp.text()


async def test_a_post_naming_another_host_publishes_nothing_even_with_the_token() -> None:
    async with serve(api_token="s3cret") as (client, producer):
        for expect in (False, True):
            resp = await client.post(
                "/api/v1/reports",
                json=report(),
                headers={**AUTH, "Host": "attacker.example:6066"},
                expect100=expect,
            )
            assert resp.status == 421, await resp.text()
        assert producer.sent == []
        resp = await client.post("/api/v1/reports", json=report(), headers=AUTH)
        assert resp.status == 202
        assert len(producer.on(REPORTS)) == 1


async def test_a_star_answers_any_name() -> None:
    async with serve(allowed_hosts="*") as (client, _):
        resp = await client.get("/api/v1/zones", headers={"Host": "attacker.example:6066"})
        assert resp.status == 200
