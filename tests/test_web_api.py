"""The HTTP API's handling of what clients send, without a broker: the API runs on a test
server over a stand-in worker whose producer records what would go to Kafka."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.metrics import REGISTRY
from streams.web.api import Api

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DLQ = "ceasefire.reports.dlq"
REPORTS = "ceasefire.reports"
KAFKA_MESSAGE_LIMIT = 1024 * 1024  # aiokafka's max_request_size, Kafka's default too


def report(i: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "report_id": f"r-{i}",
        "source": "jmc-aghdam",
        "source_type": "monitoring_centre",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "location": {"lat": 39.795, "lon": 47.113},
        "category": "small_arms_fire",
        **extra,
    }


class RecordingProducer:
    """What the API would send to Kafka, in order: (topic, value, key)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def on(self, topic: str) -> list[bytes]:
        return [value for t, value, _ in self.sent if t == topic]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(value) for value in self.on(DLQ)]


_ZONES = ZoneCatalogue.load(None)
_CLASSIFIER = Classifier(_ZONES, Gazetteer.load(None))


def stand_in(**settings: Any) -> tuple[WorkerView, RecordingProducer]:
    producer = RecordingProducer()
    monitor = SimpleNamespace(
        settings=Settings(**settings),
        ready=True,
        producer=SimpleNamespace(producer=producer),
        classifier=_CLASSIFIER,
        zones=_ZONES,
    )
    return cast("WorkerView", monitor), producer


class Harness:
    def __init__(
        self, client: TestClient[web.Request, web.Application], producer: RecordingProducer
    ):
        self.client = client
        self.producer = producer

    async def post(
        self, data: bytes | Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        sent = {**AUTH, "Content-Type": "application/json", **(headers or {})}
        resp = await self.client.post("/api/v1/reports", data=body, headers=sent, **kwargs)
        return resp.status, await resp.json()

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        resp = await self.client.get(path, headers=headers)
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def serve(**settings: Any) -> AsyncIterator[Harness]:
    monitor, producer = stand_in(api_token=TOKEN, **settings)
    async with TestClient(TestServer(Api(monitor).web)) as client:
        yield Harness(client, producer)


@pytest.fixture
async def api() -> AsyncIterator[Harness]:
    async for harness in serve():
        yield harness


# -- query parameters ---------------------------------------------------------------------
BAD_TALLY_QUERIES = [
    "as_of=nan",
    "as_of=NaN",
    "as_of=inf",
    "as_of=-inf",
    "as_of=1e20",
    "as_of=-1e20",
    "as_of=1e308",
    "as_of=0001-01-01T00:00:00%2B01:00",  # before year 1 in UTC
    "as_of=9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "as_of=2021-05-01T10:00:00",  # no offset
    "as_of=2026-12-01T10:00:00.%2B00:00",  # a dot with no fraction (fromisoformat took it)
    "as_of=20261201T100000Z",  # ISO 8601's basic form, not RFC 3339
    "as_of=%FF%FE",
    "as_of=yesterday",
    "scope=local&partitions=abc",
    "scope=local&partitions=",
    "scope=local",
    "scope=local&partitions=1,,2",
    "scope=local&partitions=-1",
    "scope=local&partitions=1.5",
    "scope=local&partitions=4",  # the stand-in has partitions 0-3
    pytest.param("scope=local&partitions=" + "9" * 5000, id="partitions=9...9"),
    "scope=local&as_of=nan&partitions=0",
    "scope=everywhere",
    "window=2h",
    "window=",
    "by=zone,",
    "by=%00",
]


@pytest.mark.parametrize("query", BAD_TALLY_QUERIES)
async def test_bad_tally_parameters_answer_400_with_a_json_error(api: Harness, query: str) -> None:
    status, body = await api.get(f"/api/v1/tallies?{query}", headers=AUTH)
    assert status == 400, body
    assert isinstance(body["error"], str) and body["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tallies?scope=local&partitions=abc",
        "/api/v1/series?scope=local&interval=1y",
        "/api/v1/alerts?scope=local&status=open",
        "/api/v1/incidents?scope=local&limit=0",
        "/api/v1/incidents/nonsense?scope=local",
        "/api/v1/tallies?scope=cluster&scope=local&partitions=0",
    ],
)
async def test_a_peer_query_without_the_token_is_401_before_its_parameters_are_read(
    api: Harness, path: str
) -> None:
    """A security review: a stranger's `scope=local` request with a bad parameter was
    told what was wrong with it (400) before being refused (401)."""
    status, body = await api.get(path)
    assert status == 401, body


async def test_an_as_of_that_is_a_date_says_which_instants_would_do(api: Harness) -> None:
    status, body = await api.get("/api/v1/tallies?as_of=2021-03-31")
    assert status == 400, body
    assert "is a date" in body["error"] and "2021-03-31T00:00:00+04:00" in body["error"], body


@pytest.mark.parametrize("query", ["status=open", "status=", "scope=peer", "status=all&scope=x"])
async def test_bad_alert_parameters_answer_400_with_a_json_error(api: Harness, query: str) -> None:
    status, body = await api.get(f"/api/v1/alerts?{query}")
    assert status == 400, body
    assert body["error"]


# -- authorization ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {TOKEN}", 202),
        (f"bearer {TOKEN}", 202),
        (f"BEARER {TOKEN}", 202),
        (f"Bearer   {TOKEN}", 202),
        (f"Basic {TOKEN}", 401),
        ("Bearer", 401),
        ("Bearer wrong", 401),
        (f"Bearer {TOKEN}x", 401),
        (TOKEN, 401),
        ("Bearer s3crét", 401),
    ],
)
async def test_the_bearer_scheme_is_case_insensitive(
    api: Harness, header: str, status: int
) -> None:
    got, body = await api.post(report(), headers={"Authorization": header})
    assert got == status, body
    if status == 401:
        assert body["error"] and api.producer.sent == []


async def test_no_authorization_header_is_401(api: Harness) -> None:
    resp = await api.client.post(
        "/api/v1/reports", data=json.dumps(report()), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 401 and (await resp.json())["error"]


async def test_the_token_is_compared_in_constant_time(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    status, _ = await api.post(report(), headers={"Authorization": f"bearer {TOKEN}"})
    assert status == 202
    assert compared == [(TOKEN.encode(), TOKEN.encode())]


# -- content type -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",  # what `curl -d` sends unless told otherwise
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "text/json; charset=latin-1",
        "application/+json",
    ],
)
async def test_a_body_that_is_not_json_by_type_is_415(api: Harness, content_type: str) -> None:
    status, body = await api.post(report(), headers={"Content-Type": content_type})
    assert status == 415, body
    assert "application/json" in body["error"] or "UTF-8" in body["error"]
    assert api.producer.sent == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/cloudevents+json",
        # JSON as a CloudEvent's datacontenttype is judged; 415 "is not JSON" before
        "text/json",
    ],
)
async def test_json_content_types_are_read(api: Harness, content_type: str) -> None:
    status, body = await api.post(report(), headers={"Content-Type": content_type})
    assert status == 202 and len(body["accepted"]) == 1


async def test_a_body_without_content_type_is_read_as_json(api: Harness) -> None:
    resp = await api.client.post(
        "/api/v1/reports",
        data=json.dumps(report()).encode(),
        headers=AUTH,
        skip_auto_headers=["Content-Type"],
    )
    assert "Content-Type" not in resp.request_info.headers
    assert resp.status == 202 and len((await resp.json())["accepted"]) == 1


@pytest.mark.parametrize(
    ("encoding", "data", "status"),
    [
        ("gzip", b"not gzip" * 10, 400),  # a 500 and a traceback in the log
        ("deflate", b"xx", 400),
        ("foo", None, 415),  # read as plain: accepted and published
        ("gzip", "gzip", 202),
        ("deflate", "deflate", 202),
    ],
)
async def test_a_body_is_read_as_its_content_encoding_says_or_refused(
    api: Harness, encoding: str, data: bytes | str | None, status: int
) -> None:
    plain = json.dumps(report()).encode()
    if data == "gzip":
        data = gzip.compress(plain)
    elif data == "deflate":
        data = zlib.compress(plain)
    elif data is None:
        data = plain
    got, body = await api.post(data, headers={"Content-Encoding": encoding})
    assert got == status, body
    if status == 400:
        assert body["error"] == (
            f"the request body is not {encoding} data, as its Content-Encoding says"
        )
    if status == 415:
        assert "Content-Encoding 'foo' is not supported" in body["error"]
    assert bool(api.producer.sent) is (status == 202)


async def test_a_post_with_an_unknown_parameter_is_400_and_publishes_nothing(api: Harness) -> None:
    """`?dry_run=true` was ignored: the client's reports were published."""
    resp = await api.client.post(
        "/api/v1/reports?dry_run=true",
        data=json.dumps(report()).encode(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert "unknown parameter 'dry_run'" in (await resp.json())["error"]
    assert api.producer.sent == []


# -- limits -------------------------------------------------------------------------------
async def test_a_body_over_the_limit_is_413_before_it_is_read() -> None:
    async for api in serve(max_body_bytes=4096):
        status, body = await api.post(b"[" + b" " * 5000 + b"]")
        assert status == 413 and body["limit"] == 4096 and "4096" in body["error"]

        # no Content-Length (chunked): refused once it has read past the limit
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        resp = await api.client.post(
            "/api/v1/reports",
            data=chunks(),
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert "Content-Length" not in resp.request_info.headers
        assert resp.status == 413 and (await resp.json())["limit"] == 4096
        # `Expect: 100-continue`: refused before the client uploads the body
        status, body = await api.post(b" " * 5000, expect100=True)
        assert status == 413
        assert api.producer.sent == []  # refused by size: no dead letter either
        status, body = await api.post([report()], expect100=True)
        assert status == 202 and len(body["accepted"]) == 1


async def test_the_body_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_body_bytes == 1024 * 1024
    monkeypatch.setenv("CEASEFIRE_MAX_BODY_BYTES", "65536")
    assert Settings().max_body_bytes == 65536
    one = json.dumps([report(i) for i in range(100)]).encode()
    assert 1024 < len(one) < 65536
    async for api in serve(max_body_bytes=len(one)):
        status, body = await api.post(one)
        assert status == 202 and len(body["accepted"]) == 100
        status, body = await api.post(one + b" ")
        assert status == 413


async def test_more_than_1000_reports_are_refused_whole(api: Harness) -> None:
    status, body = await api.post([report(i) for i in range(1001)])
    assert status == 413 and "at most 1000 reports" in body["error"]
    assert api.producer.sent == []
    status, body = await api.post([report(i) for i in range(1000)])
    assert status == 202 and len(body["accepted"]) == 1000
    assert len(api.producer.on(REPORTS)) == 1000


# -- bodies that used to answer 500 -------------------------------------------------------
def nested_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def nested_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def original(dead: dict[str, Any]) -> bytes:
    return base64.b64decode(dead["original_base64"])


@pytest.mark.parametrize(
    "body",
    [
        nested_object(10_000),
        b'{"specversion": "1.0", "data": ' + nested_object(10_000) + b"}",
        json.dumps(report()).encode().replace(b'"r-1"', b'"\\ud800"'),
        b'{"specversion": "1.0", "id": "e", "source": "s", "type": "t", '
        b'"data": {"report_id": "\\ud800"}}',
        b'{"report_id": "\\udc00x"}',
        b'{"report_id": "\xff"}',
    ],
    ids=["nested", "nested-envelope", "lone-surrogate", "surrogate-envelope", "low-half", "latin1"],
)
async def test_a_single_unreadable_report_is_400_and_dead_lettered_as_sent(
    api: Harness, body: bytes
) -> None:
    status, answer = await api.post(body)
    assert status == 400, answer
    assert answer["reason"] in ("too_deep", "invalid_encoding") and answer["error"]
    [dead] = api.producer.dead_letters()
    assert original(dead) == body and dead["reason"] == answer["reason"]
    assert dead["source_topic"] == "http"
    assert api.producer.on(REPORTS) == []


@pytest.mark.parametrize(
    "item",
    [
        nested_array(10_000),
        nested_object(10_000),
        json.dumps(report()).encode().replace(b'"r-1"', b'"\\ud800"'),
        b'{"specversion": "1.0", "data": ' + nested_object(5_000) + b"}",
    ],
    ids=["nested-array", "nested-object", "lone-surrogate", "nested-envelope"],
)
async def test_an_unreadable_item_of_a_batch_is_rejected_alone(api: Harness, item: bytes) -> None:
    good = json.dumps(report(2)).encode()
    status, answer = await api.post(b"[" + good + b",\n  " + item + b"  ]")
    assert status == 202, answer
    assert [a["index"] for a in answer["accepted"]] == [0]
    [rejected] = answer["rejected"]
    assert rejected["index"] == 1 and rejected["reason"] in ("too_deep", "invalid_encoding")
    [dead] = api.producer.dead_letters()
    assert original(dead) == item
    assert api.producer.on(REPORTS) == [good]


async def test_a_body_nested_10000_deep_is_one_rejected_item(api: Harness) -> None:
    body = nested_array(10_000)
    status, answer = await api.post(body)
    assert status == 202 and answer["accepted"] == []
    assert answer["rejected"][0]["reason"] == "too_deep"
    assert original(api.producer.dead_letters()[0]) == body[1:-1]


@pytest.mark.parametrize("size", [5_000_000, 15_000_000])
async def test_a_huge_single_report_is_413_and_dead_lettered_within_kafka_limits(
    size: int,
) -> None:
    body = json.dumps(report(description="é" + "x" * size)).encode()
    async for api in serve(max_body_bytes=16 * 1024 * 1024):
        status, answer = await api.post(body)
        assert status == 413 and answer["reason"] == "too_large", answer
        [value] = api.producer.on(DLQ)
        assert len(value) < KAFKA_MESSAGE_LIMIT
        dead = json.loads(value)
        kept = original(dead)
        assert body.startswith(kept) and len(kept) == 64 * 1024
        assert f"first {len(kept)} of {len(body)} bytes" in dead["message"]
        # the record says it holds a part, and of what size (it said 65536, not cut)
        assert (dead["original_size"], dead["original_truncated"]) == (len(body), True)
        assert dead["original_text"] is None  # as for any cut original (README)


async def test_a_huge_report_with_the_default_limit_is_413_without_a_dead_letter(
    api: Harness,
) -> None:
    status, answer = await api.post(json.dumps(report(description="x" * 5_000_000)).encode())
    assert status == 413 and answer["limit"] == 1024 * 1024
    assert api.producer.sent == []


async def test_a_broker_that_does_not_confirm_is_a_503_within_the_confirm_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker holding requests (SIGSTOP) held a POST 40 s, the producer's own timeout,
    past many gateways' timeouts; the answer is a 503 to retry when it has not confirmed in
    CONFIRM_SECONDS."""
    from streams.web import api as api_module

    monkeypatch.setattr(api_module, "CONFIRM_SECONDS", 0.2)

    class SilentBroker(RecordingProducer):
        async def send(
            self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
        ) -> asyncio.Future[None]:
            self.sent.append((topic, value, key))
            return asyncio.get_running_loop().create_future()  # never confirmed

    async for api in serve():
        silent = SilentBroker()
        api.producer.send = silent.send  # type: ignore[method-assign]
        started = asyncio.get_running_loop().time()
        posted = api.post([report(1), {"report_id": "bad"}])
        status, answer = await asyncio.wait_for(posted, 10)  # it waited for good
        assert status == 503, answer
        assert "did not confirm the reports within 0.2 s; retry" in answer["error"]
        assert asyncio.get_running_loop().time() - started < 5
        # the report; the bad item's dead letter waits for it to be confirmed
        assert [topic for topic, _, _ in silent.sent] == [REPORTS]


async def test_a_huge_item_of_a_batch_is_rejected_and_truncated_in_its_dead_letter() -> None:
    big = json.dumps(report(3, description="€" * 2_000_000), ensure_ascii=False).encode()
    async for api in serve(max_body_bytes=16 * 1024 * 1024):
        status, answer = await api.post(b"[" + json.dumps(report(1)).encode() + b"," + big + b"]")
        assert status == 202 and answer["rejected"][0]["reason"] == "too_large"
        [value] = api.producer.on(DLQ)
        assert len(value) < KAFKA_MESSAGE_LIMIT
        kept = original(json.loads(value))
        assert big.startswith(kept) and 64 * 1024 - 3 <= len(kept) <= 64 * 1024
        kept.decode()  # cut between characters, not inside one


@pytest.mark.parametrize(
    "item",
    [
        # the most escaping a 64 KiB item can ask of the record's text: raw control bytes
        b'{"report_id": "' + b"\x01" * (64 * 1024 - 20) + b'"}',
        # about the most field errors a 64 KiB item can hold
        json.dumps({f"f{i}": 0 for i in range(6500)}, separators=(",", ":")).encode(),
    ],
    ids=["control-bytes", "many-errors"],
)
async def test_a_dead_letter_always_fits_a_kafka_message(api: Harness, item: bytes) -> None:
    status, answer = await api.post(b"[" + item + b"]")
    assert status == 202 and answer["rejected"], answer
    [value] = api.producer.on(DLQ)
    assert len(value) < KAFKA_MESSAGE_LIMIT
    dead = json.loads(value)
    assert len(item) <= 64 * 1024 and original(dead) == item and len(dead["errors"]) <= 100


# -- the bytes as sent --------------------------------------------------------------------
async def test_items_keep_the_bytes_the_client_sent(api: Harness) -> None:
    accepted = (
        b'{ "category":"small_arms_fire","report_id" : "r-\\u00e9", "source":"jmc-aghdam",'
        b'"source_type":"monitoring_centre","occurred_at":"'
        + (datetime.now(UTC) - timedelta(minutes=5)).isoformat().encode()
        + b'","location":{"lat":39.795e0,"lon":47.113}}'
    )
    rejected = b'{"report_id": "r-\xc3\xa9", "extra" : [1.0E2, "]},{["]}'
    not_json = b"{oops: [1]}"
    body = b"\n[\n\t" + accepted + b" ,\r\n" + rejected + b",  " + not_json + b"\n]\n"
    status, answer = await api.post(body)
    assert status == 202, answer
    assert [a["index"] for a in answer["accepted"]] == [0]
    assert answer["accepted"][0]["report_id"] == "r-é"
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (1, "unknown_field"),
        (2, "invalid_json"),
    ]
    assert api.producer.on(REPORTS) == [accepted]
    assert [original(d) for d in api.producer.dead_letters()] == [rejected, not_json]


async def test_a_single_report_keeps_the_whole_body(api: Harness) -> None:
    body = b'  {"report_id": "x", "unknown": 1}\n'
    status, answer = await api.post(body)
    assert status == 202 and answer["rejected"][0]["reason"] in ("unknown_field", "missing_field")
    assert [original(d) for d in api.producer.dead_letters()] == [body]


@pytest.mark.parametrize(
    "body", [b"[{}, {", b"[1,,2]", b"[1,]", b"[1] [2]", b'["open', b"[1}", b"[\xff,"]
)
async def test_a_broken_array_is_400_and_dead_lettered_whole(api: Harness, body: bytes) -> None:
    status, answer = await api.post(body)
    assert status == 400 and answer["reason"] in ("invalid_json", "invalid_encoding"), answer
    assert [original(d) for d in api.producer.dead_letters()] == [body]


async def test_a_broker_failure_is_503_not_500(api: Harness) -> None:
    from aiokafka.errors import KafkaTimeoutError

    async def failing(*args: Any, **kwargs: Any) -> asyncio.Future[None]:
        raise KafkaTimeoutError()

    def rejected() -> float:
        value = REGISTRY.get_sample_value(
            "ceasefire_reports_rejected_total", {"reason": "unknown_field"}
        )
        return value or 0.0

    api.producer.send = failing  # type: ignore[method-assign]
    before = rejected()
    for _ in range(3):  # the client retries: nothing was dead-lettered, nothing counted
        status, answer = await api.post([report(), report(nonsense=1)])
        assert status == 503 and "retry" in answer["error"]
    assert rejected() == before


async def test_a_503_for_refused_reports_leaves_no_dead_letter_behind(api: Harness) -> None:
    """The dead letters went out with the reports: when the reports' send failed, the
    answer said retry and nothing dead-lettered, while one was, uncounted; the retry wrote
    it again."""
    from aiokafka.errors import KafkaTimeoutError

    send = api.producer.send
    refusing = [True]

    async def reports_refused(
        topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        if topic == REPORTS and refusing[0]:
            raise KafkaTimeoutError("no metadata for the reports topic")
        return await send(topic, value, key)

    api.producer.send = reports_refused  # type: ignore[method-assign]
    status, _ = await api.post([report(), report(nonsense=1)])
    assert status == 503 and api.producer.on(DLQ) == []
    refusing[0] = False
    status, _ = await api.post([report(), report(nonsense=1)])
    assert status == 202 and len(api.producer.on(DLQ)) == 1


# -- fan-out to peers ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        b'{"nope": 1}',
        b"{not json",
        b"[]",
        b'{"rows": 1, "alerts": 1}',
        b'{"rows": [1], "alerts": [1]}',
    ],
)
async def test_a_peer_answering_nonsense_makes_the_answer_incomplete_not_a_crash(
    answer: bytes,
) -> None:
    from streams.web.fanout import Incomplete, cluster_alerts, cluster_rows

    async def peer(request: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/tallies", peer)
    app.router.add_get("/api/v1/alerts", peer)
    async with TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        monitor = SimpleNamespace(
            settings=Settings(partitions=2, web_port=1),  # not the peer: every part is asked
            app=SimpleNamespace(
                router=SimpleNamespace(table_metadata=lambda _: {url: {"t": {0, 1}}})
            ),
            alerting=SimpleNamespace(
                alerts=lambda status: [],
                holds_its_partitions=lambda: True,
                knows_resolved=lambda: True,
            ),
        )
        with pytest.raises(Incomplete):
            await cluster_rows(cast("WorkerView", monitor), window="24h", by="zone", as_of=1.6e9)
        with pytest.raises(Incomplete):
            await cluster_alerts(cast("WorkerView", monitor), "firing")


@pytest.mark.parametrize(
    ("owned", "recovered", "theatre", "complete"),
    [
        ({0, 1}, True, True, True),
        ({0}, True, True, False),
        ({0, 1}, False, True, False),
        (set(), True, True, False),
        ({0, 1}, True, False, False),  # the theatre's partition has no owner yet
    ],
)
async def test_firing_alerts_are_answered_only_when_every_partition_s_state_answers(
    owned: set[int], recovered: bool, theatre: bool, complete: bool
) -> None:
    """While partitions moved, the firing alerts of those moving (and the theatre's) were
    left out of a 200 answer (the page showed them gone); resolved ones come from the
    alert topic."""
    from streams.pipeline.tables import THEATRE_TABLE
    from streams.web.fanout import Incomplete, cluster_alerts

    def metadata(table: str) -> dict[str, dict[str, set[int]]]:
        if table == THEATRE_TABLE:
            return {me: {"t": {0}}} if theatre else {}
        return {me: {"t": owned}} if owned else {}

    firing = {"alert_id": "a", "status": "firing", "starts_at": "2026-12-01T00:00:00.000Z"}
    settings = Settings(partitions=2, web_port=1)
    me = settings.web_url().rstrip("/")
    monitor = SimpleNamespace(
        settings=settings,
        app=SimpleNamespace(router=SimpleNamespace(table_metadata=metadata)),
        alerting=SimpleNamespace(
            alerts=lambda status: [] if status == "resolved" else [firing],
            holds_its_partitions=lambda: recovered,
            knows_resolved=lambda: True,
        ),
    )
    view = cast("WorkerView", monitor)
    if complete:
        assert await cluster_alerts(view, "firing") == [firing]
    else:
        with pytest.raises(Incomplete):
            await cluster_alerts(view, "firing")
    assert await cluster_alerts(view, "resolved") == []


@pytest.mark.parametrize("status", ["resolved", "all"])
async def test_resolved_alerts_are_answered_only_once_the_alert_topic_is_read(status: str) -> None:
    """A starting worker answered 200 with the resolutions it had read so far."""
    from streams.web.fanout import Incomplete, cluster_alerts

    settings = Settings(partitions=1, web_port=1)
    me = settings.web_url().rstrip("/")
    read = False
    monitor = SimpleNamespace(
        settings=settings,
        app=SimpleNamespace(router=SimpleNamespace(table_metadata=lambda _: {me: {"t": {0}}})),
        alerting=SimpleNamespace(
            alerts=lambda status: [],
            holds_its_partitions=lambda: True,
            knows_resolved=lambda: read,
        ),
    )
    view = cast("WorkerView", monitor)
    with pytest.raises(Incomplete, match="reading the resolved alerts"):
        await cluster_alerts(view, status)
    assert await cluster_alerts(view, "firing") == []  # firing ones: from the zones' state
    read = True
    assert await cluster_alerts(view, status) == []


@pytest.mark.parametrize("status", ["resolved", "all"])
async def test_resolved_alerts_come_from_another_worker_while_this_one_reads_them(
    status: str,
) -> None:
    """Every worker reads the same alert topic: one still reading it (starting) made the
    cluster's answer 503 although another worker had read it all."""
    from streams.web.fanout import Incomplete, cluster_alerts

    resolved = {"alert_id": "r", "status": "resolved", "starts_at": "2026-12-01T00:00:00.000Z"}
    firing = {"alert_id": "f", "status": "firing", "starts_at": "2026-12-02T00:00:00.000Z"}
    asked: list[str] = []
    peer_read = [True]

    async def peer(request: web.Request) -> web.Response:
        asked.append(request.query["status"])
        if request.query["status"] == "firing":
            return web.json_response({"alerts": [firing]})
        if not peer_read[0]:
            return web.json_response({"error": "still reading"}, status=409)
        return web.json_response({"alerts": [resolved]})

    app = web.Application()
    app.router.add_get("/api/v1/alerts", peer)
    async with TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        settings = Settings(partitions=2, web_port=1)
        me = settings.web_url().rstrip("/")
        monitor = SimpleNamespace(
            settings=settings,
            app=SimpleNamespace(
                router=SimpleNamespace(table_metadata=lambda _: {me: {"t": {0}}, url: {"t": {1}}})
            ),
            alerting=SimpleNamespace(
                alerts=lambda status: [],
                holds_its_partitions=lambda: True,
                knows_resolved=lambda: False,
            ),
        )
        view = cast("WorkerView", monitor)
        expected = [resolved] if status == "resolved" else [resolved, firing]
        assert await cluster_alerts(view, status) == expected
        assert sorted(asked) == (["resolved"] if status == "resolved" else ["firing", "resolved"])
        peer_read[0] = False  # no worker has read it all: 503, each one's reason said
        with pytest.raises(Incomplete, match=r"still reading the resolved alerts.*409"):
            await cluster_alerts(view, status)


@pytest.mark.parametrize("offset", ["+15:00", "+23:59", "-13:00"])
def test_query_times_refuse_utc_offsets_no_place_uses(offset: str) -> None:
    """As a report's time: `from`, `to` and `as_of` at +15:00 answered 200, hours off."""
    from streams.tallies.windows import QueryError
    from streams.web.params import parse_as_of, parse_bound

    with pytest.raises(QueryError, match="offsets run from -12:00 to"):
        parse_as_of(f"2026-05-01T10:00:00{offset}")
    for name in ("from", "to"):
        with pytest.raises(QueryError, match=f"^{name} .*not one in use"):
            parse_bound(name, f"2026-05-01T10:00:00{offset}")
    for edge in ("+14:00", "-12:00", "Z", "+00:00"):
        parse_as_of(f"2026-05-01T10:00:00{edge}")
        parse_bound("from", f"2026-05-01T10:00:00{edge}")


def test_as_of_accepts_rfc3339_and_the_epoch_seconds_peers_pass() -> None:
    from streams.tallies.windows import QueryError
    from streams.web.params import parse_as_of

    assert parse_as_of("2021-05-01T10:00:00Z") == 1619863200.0
    assert parse_as_of("2021-05-01T14:00:00+04:00") == 1619863200.0
    assert parse_as_of(str(1619863200.25)) == 1619863200.25
    assert parse_as_of("9999-12-31T23:59:59Z") == 253402300799.0
    assert abs(parse_as_of(None) - datetime.now(UTC).timestamp()) < 5
    assert parse_as_of("2021-05-01T10:00:00z") == 1619863200.0  # RFC 3339 allows it
    assert parse_as_of("-315619200.0") == -315619200.0  # peers: before 1970
    # what `float` read as epoch seconds, answering 200 for another time
    for loose in ("1_619_863_200", " 1619863200", "1619863200 ", "\uff11\uff16", "1e9", "inf"):
        with pytest.raises(QueryError):
            parse_as_of(loose)
    for sign in ("+1", "--1", "-", "1.", ".5"):
        with pytest.raises(QueryError):
            parse_as_of(sign)


@given(
    st.floats(
        min_value=datetime(1, 1, 1, tzinfo=UTC).timestamp(),
        max_value=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp(),
    )
)
def test_the_as_of_a_peer_is_sent_reads_back_exactly(seconds: float) -> None:
    """`str` wrote -315619200.0 (before 1970) and 1e-06, which peers refused: such a query
    was 503 on every retry from two workers, though one answered it."""
    from streams.web.fanout import exact_seconds
    from streams.web.params import parse_as_of

    assert parse_as_of(exact_seconds(seconds)) == seconds


async def test_readyz_says_what_readiness_waits_for() -> None:
    monitor, _ = stand_in()
    waiting = ["ingest", "ceasefire.reports.by-zone state"]
    fake = cast(Any, monitor)
    fake.ready, fake.stalled, fake.waiting_for = False, dict, lambda: waiting
    async with TestClient(TestServer(Api(monitor).web)) as client:
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert await resp.json() == {"status": "not ready", "waiting_for": waiting}
        fake.ready = True
        resp = await client.get("/readyz")
        assert (resp.status, await resp.json()) == (200, {"status": "ready"})
