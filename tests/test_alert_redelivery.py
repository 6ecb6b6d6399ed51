"""Alert events whose post to Alertmanager failed reach it once it is back: firing ones with
the periodic re-post (as before), resolutions too, for 15 minutes after they were published,
by whichever worker owns the zone then. On the alert stage's in-memory fakes and a fake
Alertmanager client: milliseconds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.alertmanager import AlertmanagerError, to_repost
from schemas.alert import AlertEvent
from streams.pipeline.alerting_stage import RESOLVED_RESEND_SECONDS
from tests.test_alert_state import Run, incident

pytestmark = pytest.mark.timeout(60)

ALERTS = "ceasefire.alerts"


class Alertmanager:
    """`AlertmanagerClient.send`, refused while `up` is false (as after its 5 attempts)."""

    def __init__(self) -> None:
        self.up = False
        self.received: list[AlertEvent] = []

    async def send(self, alerts: list[AlertEvent], **_: Any) -> None:
        if not self.up:
            raise AlertmanagerError("could not post: connection refused")
        self.received.extend(alerts)


async def delivered(r: Run) -> None:
    """Until the delivery task has taken every event handed to it."""
    for _ in range(100):
        await asyncio.sleep(0)
        if r.stage._to_alertmanager.empty():
            break
    await asyncio.sleep(0.01)


def follow(r: Run, published_ms: int | None = None) -> None:
    """The worker's history reads the alert topic (as `ResolvedHistory.follow` does)."""
    at = int(time.time() * 1000) if published_ms is None else published_ms
    for _, _, value in r.producer.sent[ALERTS]:
        r.stage.history._add(value, at)
    r.stage.history._caught_up = True  # read to the end


def published(r: Run) -> list[AlertEvent]:
    return [AlertEvent.model_validate_json(v or b"") for *_, v in r.producer.sent[ALERTS]]


async def a_resolution_alertmanager_missed(r: Run, am: Alertmanager) -> AlertEvent:
    r.stage.alertmanager = am  # type: ignore[assignment]
    await r.start()
    am.up = True
    await r.step(incident("shusha", 0.5, killed=1))  # fires, delivered
    await delivered(r)
    am.up = False  # Alertmanager restarts
    await asyncio.sleep(1.1)  # the alert's hold passes
    await r.stage._tick()  # the clock resolves it: its post fails
    await delivered(r)
    fired, resolved = published(r)
    assert (fired.status, resolved.status) == ("firing", "resolved")
    assert [e.status for e in am.received] == ["firing"]
    return resolved


def test_a_resolution_whose_post_failed_reaches_alertmanager_with_the_next_re_post() -> None:
    """It did not: only firing alerts were posted again, and Alertmanager held the alert
    active until its resolve_timeout after the last re-post, then ended it at that time."""

    async def run() -> None:
        r, am = Run(), Alertmanager()
        resolved = await a_resolution_alertmanager_missed(r, am)
        follow(r)
        am.up = True
        r.stage._last_resend = 0.0  # a minute on
        await r.stage._tick()
        await delivered(r)
        assert am.received[1:] == [resolved]  # its own ends_at, not Alertmanager's timeout
        assert resolved.ends_at is not None

    asyncio.run(run())


def test_the_zone_s_next_owner_posts_a_resolution_the_previous_one_could_not() -> None:
    async def run() -> None:
        r, am = Run(), Alertmanager()
        resolved = await a_resolution_alertmanager_missed(r, am)
        heir, am_back = await Run.of(r.changelog()), Alertmanager()
        heir.stage.alertmanager = am_back  # type: ignore[assignment]
        heir.producer.sent[ALERTS] = list(r.producer.sent[ALERTS])  # the topic it follows
        follow(heir)
        am_back.up = True
        await heir.stage._tick()
        await delivered(heir)
        assert am_back.received == [resolved]

    asyncio.run(run())


def test_resolutions_are_posted_again_for_15_minutes_only() -> None:
    async def run() -> None:
        r, am = Run(), Alertmanager()
        await a_resolution_alertmanager_missed(r, am)
        old = int((time.time() - RESOLVED_RESEND_SECONDS - 1) * 1000)
        follow(r, published_ms=old)
        am.up = True
        r.stage._last_resend = 0.0
        await r.stage._tick()
        await delivered(r)
        assert [e.status for e in am.received] == ["firing"]  # nothing more

    asyncio.run(run())


@pytest.mark.parametrize("unsure", ["recovering", "reading"])
def test_no_resolution_is_posted_before_the_state_is_recovered_and_the_topic_read(
    unsure: str,
) -> None:
    """Recovering: a new episode firing there is not known yet; Alertmanager takes the
    younger post of the same labels, and a stale resolution would have hidden it until the
    next re-post. Reading: a starting worker's history holds what it has read so far, an
    episode's older resolution with its newer one not read yet, posted for a minute."""

    async def run() -> None:
        r, am = Run(), Alertmanager()
        await a_resolution_alertmanager_missed(r, am)
        follow(r)
        if unsure == "recovering":
            r.stage.ready.clear()  # revoked and assigned again
        else:
            r.stage.history._caught_up = False  # part of the topic still to read
        am.up = True
        r.stage._last_resend = 0.0
        await r.stage._tick()
        await delivered(r)
        assert [e.status for e in am.received] == ["firing"]

    asyncio.run(run())


def _event(fingerprint: str, status: str, zone: str = "shusha", minute: int = 0) -> AlertEvent:
    start = datetime(2026, 12, 5, 10, tzinfo=UTC) + timedelta(minutes=minute)
    return AlertEvent(
        alert_id=f"{fingerprint}-{minute}",
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        rule="casualties",
        severity="high",  # type: ignore[arg-type]
        labels={"zone": zone},
        value=1,
        threshold=1,
        window="0s",
        starts_at=start,
        ends_at=start + timedelta(minutes=1) if status == "resolved" else None,
        summary="s",
    )


def test_to_repost_takes_the_latest_resolution_of_each_fingerprint_not_firing_again() -> None:
    a1, a2 = _event("a", "resolved", minute=0), _event("a", "resolved", minute=5)
    b = _event("b", "resolved", minute=1)
    b_again = _event("b", "firing", minute=7)
    c_elsewhere = _event("c", "resolved", zone="lachin-corridor", minute=2)
    theatre = _event("t", "resolved", zone="theatre", minute=3)
    got = to_repost([b_again], [a1, b, c_elsewhere, a2, theatre], {"shusha", "theatre"})
    assert got == [a2, theatre, b_again]
