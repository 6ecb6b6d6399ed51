"""Delivery to Prometheus Alertmanager (API v2), one alert event to one Alertmanager alert.

Mapping (`to_alertmanager`):

- labels: the alert's labels, plus `alertname` (the rule) and `severity`;
- annotations: `summary`, `value`, `threshold`, `window`, `incident_ids` (comma-joined),
  `fingerprint`, `alert_id`;
- `startsAt`; `endsAt` when resolved (or `expires_at`, if given, while firing); neither
  after `now` for a resolved alert, and `startsAt` never after `endsAt` (an alert started
  in the future stayed active in Alertmanager until then, and its resolution was notified
  that late);
- `generatorURL`.

Alertmanager considers a firing alert without `endsAt` resolved after its
`resolve_timeout` (5 minutes by default) unless it is posted again, so a sender keeps
re-posting the firing alerts (as Prometheus does) until it posts them resolved. It
re-posts its recent resolutions too (`to_repost`, as Prometheus does for 15 minutes): a
resolution whose post failed (Alertmanager restarting, unreachable) reaches it with the next
re-post, with its own `endsAt`, instead of Alertmanager timing the alert out later.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from schemas.alert import AlertEvent

log = logging.getLogger(__name__)


class AlertmanagerError(RuntimeError):
    """Alertmanager did not accept the alerts (after the last attempt, or a 4xx answer)."""


def _rfc3339(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _number(value: float) -> str:
    """As the event says it, every digit (`:g` rounded to 6: 12345.67 was "12345.7")."""
    number = float(value)  # an int where an event was copied with one
    return str(int(number)) if number.is_integer() else repr(number)


def to_alertmanager(
    alert: AlertEvent,
    generator_url: str,
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Alertmanager v2 `postableAlert` for one alert event.

    `expires_at` (firing alerts only) sets `endsAt` in the future, as Prometheus does, so
    the alert stays active that long without being re-posted. `now` (the time of posting):
    no `startsAt` after it, and for a resolved alert no `endsAt` either (Alertmanager holds
    an alert whose `endsAt` is ahead active until then). A resolved alert's `startsAt` is
    never after its `endsAt`."""
    labels = dict(alert.labels)
    labels["alertname"] = alert.rule
    labels["severity"] = str(alert.severity)
    annotations = {
        "summary": alert.summary,
        "value": _number(alert.value),
        "threshold": _number(alert.threshold),
        "window": alert.window,
        "incident_ids": ",".join(alert.incident_ids),
        "fingerprint": alert.fingerprint,
        "alert_id": alert.alert_id,
    }
    starts = alert.starts_at if now is None else min(alert.starts_at, now)
    ends: datetime | None = None
    if alert.status == "resolved":
        ends = alert.ends_at or alert.starts_at
        ends = ends if now is None else min(ends, now)
        starts = min(starts, ends)
    elif expires_at is not None:
        ends = expires_at
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(starts),
        "generatorURL": generator_url,
    }
    if ends is not None:
        body["endsAt"] = _rfc3339(ends)
    return body


def to_repost(
    firing: Iterable[AlertEvent], resolved: Iterable[AlertEvent], zones: Collection[str]
) -> list[AlertEvent]:
    """What a worker posts again: every alert firing in its zones, and the latest of the
    recent resolutions (`resolved`, oldest first) of each other fingerprint of its `zones`.

    A fingerprint firing again is left out of the resolutions: Alertmanager takes the younger
    post of the same labels, and a stale resolution would hide the new episode until its
    next re-post. Resolutions first: nothing in one post overturns another."""
    firing = list(firing)
    now_firing = {a.fingerprint for a in firing}
    latest: dict[str, AlertEvent] = {}
    for event in resolved:
        if event.fingerprint not in now_firing and event.labels.get("zone") in zones:
            latest.pop(event.fingerprint, None)  # kept in the order of its latest
            latest[event.fingerprint] = event
    return [*latest.values(), *firing]


SessionFactory = Callable[[], aiohttp.ClientSession]


class AlertmanagerClient:
    """Posts alert events to `{url}/api/v2/alerts`, retrying with exponential backoff.

    Retried: connection errors, timeouts, 5xx and 429 answers, up to `attempts` tries with
    a delay of `backoff` * 2^n (capped at `max_backoff`, with ±20% jitter) between them.
    A 4xx answer other than 429 is not retried: the request itself is wrong.
    Raises `AlertmanagerError` when it gives up. Use as `async with`, or call `close()`."""

    def __init__(
        self,
        url: str,
        session_factory: SessionFactory | None = None,
        *,
        generator_url: str = "",
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/api/v2/alerts"
        self.generator_url = generator_url or self.url
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session_factory: SessionFactory = session_factory or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None
        self._sleep = sleep

    async def __aenter__(self) -> AlertmanagerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base: float = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return base * random.uniform(0.8, 1.2)

    async def send(self, alerts: list[AlertEvent], *, expires_at: datetime | None = None) -> None:
        """Post the alerts in one request. No request for an empty list."""
        if not alerts:
            return
        now = datetime.now(UTC)
        body = [
            to_alertmanager(a, self.generator_url, expires_at=expires_at, now=now) for a in alerts
        ]
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._client().post(
                    self.endpoint, json=body, timeout=self.timeout
                ) as resp:
                    if 200 <= resp.status < 300:
                        return
                    text = (await resp.text())[:500]
                    last = f"HTTP {resp.status}: {text.strip()}"
                    if 400 <= resp.status < 500 and resp.status != 429:
                        raise AlertmanagerError(
                            f"Alertmanager at {self.endpoint} rejected {len(body)} alert(s): {last}"
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                wait = self.delay(attempt)
                log.warning(
                    "Alertmanager post failed (attempt %d of %d, %s); retrying in %.1fs",
                    attempt,
                    self.attempts,
                    last,
                    wait,
                )
                await self._sleep(wait)
        raise AlertmanagerError(
            f"could not post {len(body)} alert(s) to Alertmanager at {self.endpoint} "
            f"after {self.attempts} attempts; last error: {last}"
        )
