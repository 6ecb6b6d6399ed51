"""`GET /api/v1/incidents` and `GET /api/v1/incidents/{incident_id}` on test servers over
stand-in workers holding real incident books: one worker owning every partition, and two
workers asking each other (the fan-out with its bearer token). No broker."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.codes import Category, SourceType
from streams.classify.zones import ZoneCatalogue
from streams.config import Settings
from streams.kafka.broker import free_port
from streams.record.book import IncidentBook
from streams.record.incident import incident_id
from streams.record.model import ReportVersion
from streams.web.api import Api
from streams.web.incidents import CSV_COLUMNS
from tests.record_helpers import MIN, rv

if TYPE_CHECKING:
    from streams.web.worker_view import WorkerView

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ZONES = ZoneCatalogue.load(None)
Client = TestClient[web.Request, web.Application]

# One shelling heard by a post and claimed by both ministries, each accusing the other.
EVENT = [
    rv("pkf-op-1", "op-1", t=0, perpetrator="az", killed=1),
    rv(
        "az-mod",
        "az-1",
        t=5 * MIN,
        km=1,
        source_type=SourceType.PARTY_STATEMENT,
        claimant="az",
        perpetrator="am",
        killed=4,
    ),
    rv(
        "am-mod",
        "am-1",
        t=10 * MIN,
        km=0.5,
        source_type=SourceType.PARTY_STATEMENT,
        claimant="am",
        perpetrator="az",
    ),
]
UNRELATED = rv("pkf-op-2", "op-2", t=3 * 3600, category=Category.ENGINEERING_WORKS)
EAST = [
    rv("pkf-op-5", f"e-{i}", t=i * 7200 + 60, zone="loc-east", perpetrator="am") for i in range(3)
]
EVENT_ID = incident_id(("pkf-op-1", "op-1"))


def book(*reports: ReportVersion) -> IncidentBook:
    b = IncidentBook()
    for r in reports:
        b.upsert(r)
    return b


def stand_in(
    books: dict[int, IncidentBook],
    *,
    url: str = "http://127.0.0.1:1",
    owners: dict[str, set[int]] | None = None,
    ready: Callable[[], set[int]] | None = None,
) -> WorkerView:
    owners = owners if owners is not None else {url: set(books)}
    monitor = SimpleNamespace(
        settings=Settings(partitions=2, advertised_url=url, api_token=TOKEN),
        zones=ZONES,
        zone=SimpleNamespace(books=books, partitions_ready=ready or (lambda: set(books))),
        app=SimpleNamespace(
            router=SimpleNamespace(
                table_metadata=lambda _: {u: {"t": ps} for u, ps in owners.items()}
            )
        ),
    )
    return cast("WorkerView", monitor)


@asynccontextmanager
async def serve(monitor: WorkerView, port: int | None = None) -> AsyncIterator[Client]:
    server = TestServer(Api(monitor).web, host="127.0.0.1", port=port)
    async with TestClient(server) as client:
        yield client


def all_books() -> dict[int, IncidentBook]:
    return {0: book(*EVENT, UNRELATED), 1: book(*EAST)}


@pytest.fixture
async def one() -> AsyncIterator[Client]:
    async with serve(stand_in(all_books())) as client:
        yield client


async def get(client: Client, path: str, **kwargs: Any) -> tuple[int, Any]:
    resp = await client.get(path, **kwargs)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


def expected_order() -> list[str]:
    incidents = [i for b in all_books().values() for i in b.incidents()]
    ordered = sorted(incidents, key=lambda i: (-i.fields.occurred, i.incident_id))
    return [i.incident_id for i in ordered]


# -- the list ------------------------------------------------------------------------------
async def test_the_list_is_every_open_incident_newest_first(one: Client) -> None:
    status, body = await get(one, "/api/v1/incidents")
    assert status == 200
    assert body["next_cursor"] is None
    ids = [i["incident_id"] for i in body["incidents"]]
    assert ids == expected_order() and len(ids) == 5  # the event, the unrelated, 3 east
    event = next(i for i in body["incidents"] if i["incident_id"] == EVENT_ID)
    assert event["status"] == "open"
    assert event["attribution"] == "az"  # what the post observed
    assert event["claims"] == {"am": "az", "az": "am"}
    assert event["killed"] == 1  # the observed figure, not the claim's 4, never summed
    assert [r["source"] for r in event["reports"]] == ["pkf-op-1", "az-mod", "am-mod"]


async def test_pages_of_one_follow_the_cursor_to_the_end(one: Client) -> None:
    seen: list[str] = []
    path = "/api/v1/incidents?limit=1"
    for _ in range(10):
        resp = await one.get(path)
        body = await resp.json()
        assert len(body["incidents"]) == 1
        seen.append(body["incidents"][0]["incident_id"])
        if body["next_cursor"] is None:
            assert "Link" not in resp.headers
            break
        link = resp.headers["Link"]
        assert link.endswith('>; rel="next"') and f"cursor={body['next_cursor']}" in link
        path = link[1 : link.index(">")]  # the Link header's next page, as a client follows it
    assert seen == expected_order()


async def test_filters_narrow_the_list(one: Client) -> None:
    _, body = await get(one, "/api/v1/incidents?zone=loc-east&from=2023-11-14T23:14:00Z")
    assert [i["zone"] for i in body["incidents"]] == ["loc-east", "loc-east"]
    _, body = await get(one, "/api/v1/incidents?attribution=am&verification=observed")
    assert {i["zone"] for i in body["incidents"]} == {"loc-east"}
    _, body = await get(one, "/api/v1/incidents?zone=shusha&zone=loc-east&attribution=unknown")
    assert [i["category"] for i in body["incidents"]] == ["engineering_works"]
    _, body = await get(one, "/api/v1/incidents?category=engineering_works")
    assert [i["category"] for i in body["incidents"]] == ["engineering_works"]
    _, body = await get(one, "/api/v1/incidents?zone=shusha&to=2023-11-14T22:13:21Z")
    assert [i["incident_id"] for i in body["incidents"]] == [EVENT_ID]


#: base64 of 3,000 "[", within the cursor's length limit
NESTED_CURSOR = base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "zone=nowhere",
        "attribution=azerbaijan",
        "limit=0",
        "limit=5000",
        "cursor=garbage",
        pytest.param("cursor=" + NESTED_CURSOR, id="nested-cursor"),  # was a 500
        "from=2021-05-01T00:00:00",
        "format=xml",
        "zones=shusha",
        "scope=local&partitions=7",
        "scope=everywhere",
    ],
)
async def test_bad_list_parameters_answer_400_with_a_json_error(one: Client, query: str) -> None:
    status, body = await get(one, f"/api/v1/incidents?{query}", headers=AUTH)
    assert status == 400 and body["error"]


@pytest.mark.parametrize(
    ("query", "headers"),
    [("format=csv", {}), ("", {"Accept": "text/csv"}), ("limit=2&format=csv", {})],
)
async def test_csv_export_parses_back_to_the_same_incidents(
    one: Client, query: str, headers: dict[str, str]
) -> None:
    _, listing = await get(one, f"/api/v1/incidents?{query.replace('format=csv', '')}")
    resp = await one.get(f"/api/v1/incidents?{query}", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8; header=present"
    assert resp.headers["Vary"] == "Accept"  # a cache must not answer JSON with it
    assert ("Link" in resp.headers) is (listing["next_cursor"] is not None)
    assert (await one.get(f"/api/v1/incidents?{query}")).headers["Vary"] == "Accept"
    rows = list(csv.DictReader(io.StringIO(await resp.text(), newline="")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["incident_id"] for r in rows] == [i["incident_id"] for i in listing["incidents"]]
    for row, incident in zip(rows, listing["incidents"], strict=True):
        assert row["occurred_at"] == incident["occurred_at"]
        assert int(row["report_count"]) == len(incident["reports"])


# -- one incident ------------------------------------------------------------------------------
async def test_one_incident_lists_its_reports_in_detail(one: Client) -> None:
    status, body = await get(one, f"/api/v1/incidents/{EVENT_ID}")
    assert status == 200
    assert body["incident_id"] == EVENT_ID and body["status"] == "open"
    reports = {r["source"]: r for r in body["reports"]}
    assert set(reports) == {"pkf-op-1", "az-mod", "am-mod"}
    az = reports["az-mod"]
    assert (az["report_id"], az["revision"], az["source_type"]) == ("az-1", 0, "party_statement")
    assert (az["claimant"], az["perpetrator"], az["killed"], az["wounded"]) == ("az", "am", 4, 0)
    assert az["verification"] == "alleged"
    assert reports["pkf-op-1"]["verification"] == "observed"
    assert reports["pkf-op-1"]["claimant"] is None
    assert abs(az["lon"] - EVENT[1].lon) < 1e-9 and az["category"] == "heavy_weapons_fire"
    assert az["occurred_at"].endswith("+00:00")


async def test_an_unknown_id_is_404_and_a_malformed_one_400(one: Client) -> None:
    status, body = await get(one, f"/api/v1/incidents/{incident_id(('nobody', 'x'))}")
    assert status == 404 and "no incident" in body["error"]
    status, body = await get(one, f"/api/v1/incidents/{EVENT_ID.upper()}")
    assert status == 200 and body["incident_id"] == EVENT_ID
    status, body = await get(one, "/api/v1/incidents/op-1")
    assert status == 400 and "not an incident id" in body["error"]


async def test_a_merged_id_is_404_saying_where_its_latest_version_is() -> None:
    late_first = rv("pkf-op-9", "first", t=-5 * MIN)  # an earlier report: the incident renamed
    b = book(*EVENT)
    b.upsert(late_first)
    async with serve(stand_in({0: b, 1: book()})) as client:
        status, body = await get(client, f"/api/v1/incidents/{EVENT_ID}")
        assert status == 404
        assert "no longer open" in body["error"] and "ceasefire.incidents" in body["error"]
        assert body["version"] == b.versions[EVENT_ID] == 4
        renamed = incident_id(("pkf-op-9", "first"))
        status, body = await get(client, f"/api/v1/incidents/{renamed}")
        assert status == 200 and len(body["reports"]) == 4


# -- peers -------------------------------------------------------------------------------------
async def test_scope_local_needs_the_token_and_the_partitions() -> None:
    books = all_books()
    async with serve(stand_in(books, ready=lambda: {0})) as client:
        for path in ("/api/v1/incidents", f"/api/v1/incidents/{EVENT_ID}"):
            status, _ = await get(client, f"{path}?scope=local&partitions=0")
            assert status == 401
            status, body = await get(client, f"{path}?scope=local&partitions=0,1", headers=AUTH)
            assert status == 409 and "[1]" in body["error"]
            status, body = await get(client, f"{path}?scope=local&partitions=0", headers=AUTH)
            assert status == 200
        _, body = await get(
            client, "/api/v1/incidents?scope=local&partitions=0&limit=1", headers=AUTH
        )
        assert len(body["incidents"]) == 1 and body["more"] is True
        _, body = await get(
            client, f"/api/v1/incidents/{EVENT_ID}?scope=local&partitions=0", headers=AUTH
        )
        assert body["incident"]["incident_id"] == EVENT_ID and body["version"] == 3


async def test_two_workers_answer_completely_and_alike() -> None:
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    books = all_books()
    owners = {urls[0]: {0}, urls[1]: {1}}
    a = stand_in({0: books[0]}, url=urls[0], owners=owners)
    b = stand_in({1: books[1]}, url=urls[1], owners=owners)
    async with serve(a, ports[0]) as ca, serve(b, ports[1]) as cb:
        for client in (ca, cb):
            _, body = await get(client, "/api/v1/incidents")
            assert [i["incident_id"] for i in body["incidents"]] == expected_order()
            seen: list[str] = []
            cursor = ""
            while True:
                _, page = await get(client, f"/api/v1/incidents?limit=2&cursor={cursor}")
                seen += [i["incident_id"] for i in page["incidents"]]
                if page["next_cursor"] is None:
                    break
                cursor = page["next_cursor"]
            assert seen == expected_order()
            # filters and times travel to the peer as they came
            _, body = await get(client, "/api/v1/incidents?from=2023-11-15T00:00:00%2B00:00")
            later = [
                incident_id(("pkf-op-5", "e-2")),
                incident_id(("pkf-op-2", "op-2")),
                incident_id(("pkf-op-5", "e-1")),
            ]
            assert [i["incident_id"] for i in body["incidents"]] == later
            status, one = await get(client, f"/api/v1/incidents/{EVENT_ID}")  # held by a
            assert status == 200 and len(one["reports"]) == 3
            east = incident_id(("pkf-op-5", "e-0"))  # held by b
            status, one = await get(client, f"/api/v1/incidents/{east}")
            assert status == 200 and one["zone"] == "loc-east"
            status, _ = await get(client, f"/api/v1/incidents/{incident_id(('x', 'y'))}")
            assert status == 404


async def test_a_moving_partition_or_a_missing_owner_is_503_never_a_partial_answer() -> None:
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    books = all_books()
    owners = {urls[0]: {0}, urls[1]: {1}}
    a = stand_in({0: books[0]}, url=urls[0], owners=owners)
    recovering = stand_in({1: books[1]}, url=urls[1], owners=owners, ready=set)
    async with serve(a, ports[0]) as ca, serve(recovering, ports[1]):
        for path in ("/api/v1/incidents", f"/api/v1/incidents/{incident_id(('x', 'y'))}"):
            status, body = await get(ca, path)
            assert status == 503 and "retry" in body["error"]
    # partition 1 has no owner (a rebalance): 503 too
    half = stand_in({0: books[0]}, url=urls[0], owners={urls[0]: {0}})
    async with serve(half) as client:
        status, _ = await get(client, "/api/v1/incidents")
        assert status == 503
    # and an owner nobody can reach
    gone = stand_in({0: books[0]}, url=urls[0], owners={urls[0]: {0}, urls[1]: {1}})
    async with serve(gone) as client:
        status, _ = await get(client, f"/api/v1/incidents/{EVENT_ID}")
        assert status == 503


async def test_a_report_s_names_as_given_its_target_and_place_are_in_the_detail() -> None:
    """SPEC.md keeps an unmatched name verbatim: the incident's `perpetrator_raw`, and each
    report's `perpetrator_raw` / `target_raw` / `claimant_raw` (null when the name matched a
    party or none was given), with the target and the place it named."""
    named = rv(
        "civ-line",
        "c-1",
        names_raw=("Wagner mercenaries", None, None),
        target="civilians",
        place="Shusha",
    )
    plain = rv("pkf-op-1", "op-1", t=MIN, perpetrator="az")
    iid = incident_id(("civ-line", "c-1"))
    async with serve(stand_in({0: book(named, plain), 1: book()})) as client:
        status, body = await get(client, f"/api/v1/incidents/{iid}")
        assert status == 200, body
        assert body["perpetrator_raw"] == "Wagner mercenaries"
        assert body["time_precision"] == "exact"
        reports = {r["source"]: r for r in body["reports"]}
        civ, op = reports["civ-line"], reports["pkf-op-1"]
        assert (civ["perpetrator"], civ["perpetrator_raw"]) == ("unknown", "Wagner mercenaries")
        assert (civ["target_raw"], civ["claimant_raw"]) == (None, None)
        assert (civ["target"], civ["place"]) == ("civilians", "Shusha")
        assert (op["perpetrator_raw"], op["target"], op["place"]) == (None, None, None)
        resp = await client.get("/api/v1/incidents?format=csv&zone=shusha")
        assert resp.status == 200
        [row] = list(csv.DictReader(io.StringIO(await resp.text(), newline="")))
        assert (row["perpetrator_raw"], row["time_precision"]) == ("Wagner mercenaries", "exact")
