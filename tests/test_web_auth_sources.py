"""Tokens scoped by source: one shared token let any holder (a party's statement feed, a
media feed) post, or withdraw for good at a huge revision, the observation posts' reports.
A token of CEASEFIRE_API_TOKENS_FILE posts only the sources its globs match; a POST carrying
another is refused whole (403) before anything is sent. And `run` refuses to listen beyond
the loopback interface with no token at all unless told to (anyone there could post)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.kafka.broker import free_port
from streams.web.access import AccessError, check_access, exposure_problem
from streams.web.api import Api
from streams.web.tokens import (
    EVERY_SOURCE,
    Poster,
    ScopedToken,
    TokenFileError,
    Tokens,
    claimed_source,
    first_outside,
    load_tokens,
    parse_tokens,
)
from tests.test_web_api import DLQ, REPORTS, RecordingProducer, report, stand_in

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]

MASTER = "all-sources-token"
MEDIA = "media-token-1"
PKF = "pkf-token-2"
FILE = f"""
- name: media
  token: {MEDIA}
  sources: ["media-*", azertac]
- name: pkf
  token: "{PKF}"
  sources: ["pkf-op-*"]
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- pure ------------------------------------------------------------------------------------
def test_the_file_is_a_list_of_named_tokens_with_source_globs() -> None:
    media, pkf = parse_tokens(FILE, "f")
    assert (media.name, media.token, media.sources) == ("media", MEDIA, ("media-*", "azertac"))
    assert media.covers("media-bbc") and media.covers("azertac")
    assert not media.covers("pkf-op-3") and not media.covers("Media-bbc")  # case-sensitive
    assert pkf.covers("pkf-op-3") and not pkf.covers("pkf-op")
    assert MEDIA not in repr(media)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "must be a YAML list of tokens"),
        ("name: a\ntoken: b\n", "must be a YAML list of tokens"),
        ("- name: a\n  token: [b\n", "is not YAML"),
        ("- name: a\n  token: 'b c'\n  sources: [x]\n", "U+0020 at position 2"),
        ('- name: a\n  token: "b\\tc"\n  sources: [x]\n', "U+0009"),
        ("- name: a\n  token: b\n  sources: []\n", "sources must be a non-empty list"),
        ("- name: a\n  token: b\n  sources: ['']\n", "not a source name or glob"),
        ("- name: a\n  token: b\n", "missing sources"),
        ("- name: a\n  token: b\n  sources: [x]\n  scope: y\n", "unknown scope"),
        ("- name: a\n  token: 12345\n  sources: [x]\n", "must be a string (quote it)"),
        ("- name: a\n  token: ''\n  sources: [x]\n", "the token is empty"),
        (
            "- {name: a, token: tok-dup, sources: [x]}\n"
            "- {name: b, token: tok-dup, sources: [y]}\n",
            "tokens 'a' and 'b' are the same token",
        ),
        (
            "- {name: a, token: t1, sources: [x]}\n- {name: a, token: t2, sources: [y]}\n",
            "the name 'a' is given to two tokens",
        ),
    ],
)
def test_a_bad_file_is_one_line_that_never_shows_a_token(text: str, said: str) -> None:
    with pytest.raises(TokenFileError) as caught:
        parse_tokens(text, "CEASEFIRE_API_TOKENS_FILE f")
    message = str(caught.value)
    assert said in message and "\n" not in message
    assert message.startswith("CEASEFIRE_API_TOKENS_FILE f")
    for secret in ("tok-dup", "b c", "t1", "t2", "[b"):
        assert secret not in message


def test_a_file_token_that_is_the_all_sources_token_is_refused() -> None:
    with pytest.raises(TokenFileError, match="token 'pkf' is CEASEFIRE_API_TOKEN"):
        parse_tokens(FILE, "f", master=PKF)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read it: No such file"):
        load_tokens(tmp_path / "none.yml")


def test_a_token_is_looked_up_among_all_of_them() -> None:
    tokens = Tokens(MASTER, parse_tokens(FILE, "f"))
    assert tokens.poster(f"Bearer {MASTER}") == EVERY_SOURCE
    assert tokens.poster(f"bearer {MEDIA}") == Poster("media", ("media-*", "azertac"))
    assert tokens.poster(f"Bearer {PKF}") == Poster("pkf", ("pkf-op-*",))
    for header in (None, "", "Bearer", f"Bearer {MEDIA}x", f"Basic {MEDIA}", MEDIA):
        assert tokens.poster(header) is None, header
    assert Tokens().poster(None) == EVERY_SOURCE  # none configured: anyone
    assert Tokens(None, parse_tokens(FILE, "f")).poster(None) is None


def test_the_first_source_outside_a_scope() -> None:
    media = Poster("media", ("media-*",))
    assert first_outside([(0, "media-a"), (1, "pkf-op-1"), (2, "x")], media) == (1, "pkf-op-1")
    assert first_outside([(0, "media-a")], media) is None
    assert first_outside([(0, "pkf-op-1")], EVERY_SOURCE) is None


@pytest.mark.parametrize(
    ("raw", "source"),
    [
        (b'{"source": "pkf-op-1", "category": 7}', "pkf-op-1"),
        (b'{"specversion": "1.0", "source": "/feed", "data": {"source": "pkf-op-2"}}', "pkf-op-2"),
        (b'{"source": 7}', None),
        (b'["pkf-op-1"]', None),
        (b'{"source": "pkf', None),
        (b"\xff", None),
    ],
)
def test_the_source_a_rejected_item_claims(raw: bytes, source: str | None) -> None:
    assert claimed_source(raw) == source


def test_no_token_beyond_the_loopback_interface_needs_an_explicit_yes() -> None:
    none, some = Tokens(), Tokens(MASTER)
    scoped = Tokens(None, (ScopedToken("a", "t", ("x",)),))
    for host in ("0.0.0.0", "::", "10.0.0.5", "worker-1"):
        problem = exposure_problem(host, none, anonymous_post=False)
        assert problem is not None and host in problem
        for way in ("CEASEFIRE_API_TOKEN", "CEASEFIRE_API_TOKENS_FILE", "CEASEFIRE_ANONYMOUS_POST"):
            assert way in problem
        assert exposure_problem(host, none, anonymous_post=True) is None
        assert exposure_problem(host, some, anonymous_post=False) is None
        assert exposure_problem(host, scoped, anonymous_post=False) is None
    for host in ("127.0.0.1", "::1", "localhost"):
        assert exposure_problem(host, none, anonymous_post=False) is None


def test_the_start_check_reads_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yml"
    path.write_text(FILE)
    with pytest.raises(AccessError):
        check_access(Settings(web_host="0.0.0.0"))
    assert check_access(Settings(web_host="0.0.0.0", anonymous_post=True)) == Tokens()
    assert check_access(Settings(web_host="0.0.0.0", api_tokens_file=path)).scoped
    with pytest.raises(TokenFileError):
        check_access(Settings(api_tokens_file=tmp_path / "missing.yml"))


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CEASEFIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "run"],
        capture_output=True,
        text=True,
        timeout=40,
        # a broker nobody answers at: a worker that goes past the check fails there
        env={
            **environ,
            "CEASEFIRE_BROKER": "kafka://127.0.0.1:1",
            "CEASEFIRE_WEB_PORT": str(free_port()),
            **env,
        },
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    return line


def test_run_refuses_a_wildcard_address_without_a_token_in_one_line(tmp_path: Path) -> None:
    line = _error_line(_run({"CEASEFIRE_WEB_HOST": "0.0.0.0"}))
    assert "CEASEFIRE_WEB_HOST is 0.0.0.0" in line
    assert "CEASEFIRE_ANONYMOUS_POST=true" in line and "CEASEFIRE_API_TOKENS_FILE" in line
    bad = tmp_path / "tokens.yml"
    bad.write_text("- {name: a, token: 'sec ret', sources: [x]}\n")
    line = _error_line(_run({"CEASEFIRE_API_TOKENS_FILE": str(bad)}))
    assert "CEASEFIRE_API_TOKENS_FILE" in line and "U+0020" in line and "sec" not in line


# -- served ----------------------------------------------------------------------------------
@asynccontextmanager
async def serve(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[Client, RecordingProducer]]:
    path = tmp_path / "tokens.yml"
    path.write_text(FILE)
    monitor, producer = stand_in(api_tokens_file=path, **settings)
    async with TestClient(TestServer(Api(monitor).web)) as client:
        yield client, producer


async def _post(client: Client, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **(bearer(token) if token else {})}
    resp = await client.post("/api/v1/reports", data=json.dumps(body).encode(), headers=headers)
    return resp.status, await resp.json()


async def test_a_scoped_token_posts_its_own_sources(tmp_path: Path) -> None:
    async with serve(tmp_path, api_token=MASTER) as (client, producer):
        body = [report(1, source="media-bbc"), report(2, source="azertac")]
        status, answer = await _post(client, body, MEDIA)
        assert status == 202, answer
        assert [a["source"] for a in answer["accepted"]] == ["media-bbc", "azertac"]
        assert len(producer.on(REPORTS)) == 2


@pytest.mark.parametrize(
    "outside",
    [
        report(3, source="pkf-op-1"),
        report(3, source="pkf-op-1", withdrawn=True, revision=2**62),
        {"source": "pkf-op-1", "report_id": "r-3", "category": "not one"},  # rejected anyway
    ],
)
async def test_a_scoped_token_posting_another_source_is_403_and_nothing_is_sent(
    tmp_path: Path, outside: dict[str, Any]
) -> None:
    async with serve(tmp_path, api_token=MASTER) as (client, producer):
        body = [report(1, source="media-bbc"), {"not": "a report"}, outside]
        status, answer = await _post(client, body, MEDIA)
        assert status == 403, answer
        assert answer["source"] == "pkf-op-1" and answer["token"] == "media"
        assert answer["index"] == 2
        assert "'media'" in answer["error"] and "'pkf-op-1'" in answer["error"]
        assert MEDIA not in json.dumps(answer)
        assert producer.sent == []  # no report, no dead letter
        status, answer = await _post(client, outside, MEDIA)  # a single item alike
        assert status == 403 and producer.sent == []


async def test_items_naming_no_source_are_rejected_as_before(tmp_path: Path) -> None:
    async with serve(tmp_path) as (client, producer):
        body = [report(1, source="media-bbc"), {"source": 7}, [1], "x"]
        status, answer = await _post(client, body, MEDIA)
        assert status == 202, answer
        assert [r["index"] for r in answer["rejected"]] == [1, 2, 3]
        assert len(producer.on(REPORTS)) == 1 and len(producer.on(DLQ)) == 3


async def test_the_all_sources_token_posts_any_source(tmp_path: Path) -> None:
    async with serve(tmp_path, api_token=MASTER) as (client, producer):
        body = [report(1, source="media-bbc"), report(2, source="pkf-op-1")]
        status, answer = await _post(client, body, MASTER)
        assert status == 202 and len(answer["accepted"]) == 2
        assert len(producer.on(REPORTS)) == 2


async def test_without_a_known_token_a_post_is_401(tmp_path: Path) -> None:
    async with serve(tmp_path) as (client, producer):
        for token in (None, "nope", MEDIA + "x"):
            status, answer = await _post(client, report(1, source="media-bbc"), token)
            assert status == 401, answer
            assert "CEASEFIRE_API_TOKENS_FILE" in answer["error"]
        assert producer.sent == []


async def test_peers_use_the_all_sources_token_and_a_scoped_one_is_not_it(tmp_path: Path) -> None:
    async with serve(tmp_path, api_token=MASTER) as (client, _):
        path = "/api/v1/alerts?scope=local"
        assert (await client.get(path, headers=bearer(MEDIA))).status == 401
        assert (await client.get(path, headers=bearer(MASTER))).status != 401
        assert (await client.get("/api/v1/zones", headers=bearer(MEDIA))).status == 200
