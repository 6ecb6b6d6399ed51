"""Complete tally answers from any worker.

Each worker counts only the partitions it owns. A query asks every owner, as the
partition assignor published them, for exactly the partitions it owns; an owner
answers only for partitions it still owns. The answer is complete only when every
partition answered once, otherwise the caller gets `Incomplete` (HTTP 503, retry),
never a silently partial count.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from streams import metrics
from streams.tallies.state import Row, merge_rows, query
from streams.tallies.windows import WINDOWS, grouping

if TYPE_CHECKING:
    from streams.pipeline.app import Monitor

PEER_TIMEOUT = aiohttp.ClientTimeout(total=5)


class Incomplete(RuntimeError):
    """Some partitions could not be counted (rebalance in progress, peer unreachable)."""


class NotOwner(RuntimeError):
    """Asked for partitions this worker does not own."""


def local_rows(
    monitor: Monitor, partitions: set[int], *, window: str, by: str, as_of: float
) -> list[Row]:
    zone = monitor.zone
    held = zone.partitions_ready()  # empty between an assignment and its recovery
    missing = partitions - held
    if missing:
        raise NotOwner(f"partitions {sorted(missing)} are not held by this worker now")
    return query((zone.tallies[p] for p in sorted(partitions)), window=window, by=by, as_of=as_of)


def partition_owners(monitor: Monitor) -> dict[str, set[int]]:
    from streams.pipeline.zone_stage import TABLE

    meta = monitor.app.router.table_metadata(TABLE)
    owners: dict[str, set[int]] = {}
    for url, topics in meta.items():
        parts = {p for ps in topics.values() for p in ps}
        if parts:
            owners[str(url).rstrip("/")] = parts
    return owners


async def cluster_rows(monitor: Monitor, *, window: str, by: str, as_of: float) -> list[Row]:
    keys = grouping(by)
    owners = partition_owners(monitor)
    me = monitor.settings.web_url().rstrip("/")
    if not owners:  # before the first assignment is published
        raise Incomplete("the worker has not been assigned partitions yet")
    covered = [p for parts in owners.values() for p in parts]
    expected = set(range(monitor.settings.partitions))
    if sorted(covered) != sorted(expected):
        raise Incomplete("partition ownership is changing (rebalance in progress)")

    async def ask(url: str, parts: set[int], session: aiohttp.ClientSession) -> list[Row]:
        if url == me:
            return local_rows(monitor, parts, window=window, by=by, as_of=as_of)
        params = {
            "window": window,
            "by": by,
            "as_of": str(as_of),
            "scope": "local",
            "partitions": ",".join(str(p) for p in sorted(parts)),
        }
        try:
            async with session.get(f"{url}/api/v1/tallies", params=params) as resp:
                if resp.status != 200:
                    raise Incomplete(f"worker {url} answered {resp.status}: {await resp.text()}")
                body: dict[str, Any] = await resp.json()
                rows: list[Row] = body["rows"]
                return rows
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Incomplete(f"worker {url} unreachable: {exc}") from exc
        except (ValueError, LookupError, TypeError) as exc:  # not JSON, or not the answer's shape
            raise Incomplete(f"worker {url} answered something else: {exc!r}") from exc

    headers = {}
    if monitor.settings.api_token:
        headers["Authorization"] = f"Bearer {monitor.settings.api_token}"
    async with aiohttp.ClientSession(timeout=PEER_TIMEOUT, headers=headers) as session:
        try:
            parts = await asyncio.gather(*(ask(u, ps, session) for u, ps in owners.items()))
        except NotOwner as exc:
            raise Incomplete(str(exc)) from exc
    try:
        return merge_rows(parts, keys)
    except (LookupError, TypeError, ValueError) as exc:  # a peer's rows not shaped as rows
        raise Incomplete(f"a worker answered rows that cannot be merged: {exc!r}") from exc


async def refresh_window_gauges(monitor: Monitor) -> None:
    """`ceasefire_incidents_window` is exported by the owner of partition 0 only, for the
    whole cluster: exactly one series per (zone, party, window), none stale."""
    if 0 not in monitor.zone.owned_partitions():
        metrics.INCIDENTS_WINDOW.clear()
        return
    now = time.time()
    fresh: dict[tuple[str, str, str], int] = {}
    try:
        for window in WINDOWS:
            for row in await cluster_rows(monitor, window=window, by="zone,party", as_of=now):
                fresh[(str(row["zone"]), str(row["party"]), window)] = int(row["incidents"])
    except Incomplete:
        return  # keep the last complete figures until the cluster settles
    metrics.INCIDENTS_WINDOW.clear()
    for (zone, party, window), value in fresh.items():
        metrics.INCIDENTS_WINDOW.labels(zone, party, window).set(value)


async def cluster_alerts(monitor: Monitor, status: str) -> list[dict[str, Any]]:
    """Alerts of every worker (each holds the zones of its partitions), merged."""
    owners = partition_owners(monitor)
    me = monitor.settings.web_url().rstrip("/")
    headers = {}
    if monitor.settings.api_token:
        headers["Authorization"] = f"Bearer {monitor.settings.api_token}"

    async def ask(url: str, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        if url == me:
            return monitor.alerting.alerts(status)
        params = {"status": status, "scope": "local"}
        try:
            async with session.get(f"{url}/api/v1/alerts", params=params) as resp:
                if resp.status != 200:
                    raise Incomplete(f"worker {url} answered {resp.status}")
                body: dict[str, Any] = await resp.json()
                alerts: list[dict[str, Any]] = body["alerts"]
                return alerts
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Incomplete(f"worker {url} unreachable: {exc}") from exc
        except (ValueError, LookupError, TypeError) as exc:  # not JSON, or not the answer's shape
            raise Incomplete(f"worker {url} answered something else: {exc!r}") from exc

    urls = set(owners) | {me}
    async with aiohttp.ClientSession(timeout=PEER_TIMEOUT, headers=headers) as session:
        parts = await asyncio.gather(*(ask(u, session) for u in sorted(urls)))
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for alerts in parts:
            for a in alerts:
                merged[(a["alert_id"], a["status"])] = a
        return sorted(merged.values(), key=lambda a: (a["starts_at"], a["alert_id"]))
    except (LookupError, TypeError, ValueError) as exc:  # a peer's alerts not shaped as alerts
        raise Incomplete(f"a worker answered alerts that cannot be merged: {exc!r}") from exc
