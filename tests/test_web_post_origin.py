"""`POST /api/v1/reports` from a web page is refused: a page of any site could post reports
to a worker without the token (the default) in a request no preflight guards (a `no-cors`
fetch of a Blob has no Content-Type, which the API reads as JSON), or under its own host
name (DNS rebinding). Reporting systems post without a browser, so without `Origin` or
`Sec-Fetch-Site`; an origin named in CEASEFIRE_POST_ORIGINS may post."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from streams.config import Settings
from streams.web.api import Api
from tests.test_web_api import REPORTS, RecordingProducer, report, stand_in

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]


@asynccontextmanager
async def serve(**settings: Any) -> AsyncIterator[tuple[Client, RecordingProducer]]:
    monitor, producer = stand_in(**settings)
    async with TestClient(TestServer(Api(monitor).web)) as client:
        yield client, producer


async def post_blob(client: Client, headers: dict[str, str]) -> tuple[int, Any]:
    """As a page's `fetch(url, {method: "POST", mode: "no-cors", body: new Blob([...])})`:
    no Content-Type."""
    resp = await client.post(
        "/api/v1/reports",
        data=json.dumps(report()).encode(),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        # DNS rebinding: the attacker's name resolves to the worker, the page is same-origin
        {"Host": "attacker.example:6066", "Origin": "http://attacker.example:6066"},
        {"Host": "attacker.example:6066", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null"},  # a sandboxed frame, a file: page
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_post_from_a_web_page_is_403_and_publishes_nothing(headers: dict[str, str]) -> None:
    # any host name allowed (CEASEFIRE_ALLOWED_HOSTS=*): the page is still refused
    async with serve(allowed_hosts="*") as (client, producer):
        status, body = await post_blob(client, headers)
        assert status == 403, body
        assert "from a web page is refused" in body["error"]
        assert "CEASEFIRE_POST_ORIGINS" in body["error"]
        assert producer.sent == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "attacker.example:6066", "Origin": "http://attacker.example:6066"},
        {"Host": "attacker.example:6066", "Sec-Fetch-Site": "same-origin"},
        {"Host": "worker-1.internal:6066"},
    ],
)
async def test_a_post_under_a_name_the_worker_does_not_answer_to_is_421(
    headers: dict[str, str],
) -> None:
    """DNS rebinding (or a name not in CEASEFIRE_ALLOWED_HOSTS): refused before the Origin
    check, on every route (tests/test_web_hosts.py)."""
    async with serve() as (client, producer):
        status, body = await post_blob(client, headers)
        assert status == 421, body
        assert "CEASEFIRE_ALLOWED_HOSTS" in body["error"]
        assert producer.sent == []


async def test_a_post_from_a_web_page_is_403_with_a_json_type_and_a_token_too() -> None:
    async with serve(api_token="s3cret") as (client, producer):
        resp = await client.post(
            "/api/v1/reports",
            json=report(),
            headers={"Origin": "https://evil.example", "Authorization": "Bearer s3cret"},
        )
        assert resp.status == 403 and producer.sent == []


async def test_a_refused_page_is_told_before_it_uploads_the_body() -> None:
    async with serve() as (client, producer):
        resp = await client.post(
            "/api/v1/reports",
            json=report(),
            headers={"Origin": "https://evil.example", "Expect": "100-continue"},
            expect100=True,
        )
        assert resp.status == 403 and producer.sent == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, a reporting system: no Origin, no Sec-Fetch-*
        {"Sec-Fetch-Site": "none"},  # a user's own navigation
        {"Host": "worker-1.internal:6066"},
    ],
)
async def test_reporting_systems_still_post_without_a_content_type(headers: dict[str, str]) -> None:
    async with serve(allowed_hosts="*.internal") as (client, producer):
        status, body = await post_blob(client, headers)
        assert status == 202, body
        assert len(producer.on(REPORTS)) == 1


async def test_an_origin_named_in_the_setting_may_post() -> None:
    origins = "https://reports.example.org, http://127.0.0.1:8080/"
    async with serve(post_origins=origins) as (client, producer):
        for origin in ("https://reports.example.org", "HTTPS://Reports.Example.org"):
            headers = {"Origin": origin, "Sec-Fetch-Site": "cross-site"}
            status, body = await post_blob(client, headers)
            assert status == 202, body
        status, _ = await post_blob(client, {"Origin": "http://127.0.0.1:8080"})
        assert status == 202
        status, _ = await post_blob(client, {"Origin": "https://reports.example.org.evil"})
        assert status == 403
        status, _ = await post_blob(client, {"Sec-Fetch-Site": "cross-site"})  # no Origin
        assert status == 403
        assert len(producer.on(REPORTS)) == 3


@pytest.mark.parametrize(
    "value", ["reports.example.org", "https://reports.example.org/submit", "null", "*"]
)
def test_the_setting_takes_origins_only(value: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(post_origins=value)


def test_the_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEASEFIRE_POST_ORIGINS", "https://a.example,https://b.example:8443")
    assert Settings().post_origin_set() == {"https://a.example", "https://b.example:8443"}
    monkeypatch.setenv("CEASEFIRE_POST_ORIGINS", "")
    assert Settings().post_origin_set() == frozenset()
