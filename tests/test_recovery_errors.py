"""A recovery that cannot finish says so at ERROR, naming what it waits for, and is retried
with backoff; one whose partitions moved meanwhile says so at ERROR too (it was a WARNING
that read as a revocation, after 300 s of silence)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from streams.pipeline import stage as stage_module
from streams.store.changelog import Recovered
from tests.test_alert_state import recovered
from tests.test_theatre_stage import CHANGELOG, Theatre

pytestmark = pytest.mark.timeout(30)

WAITING = (
    "reading stood still for 30s short of the end: "
    "ceasefire-monitor-alert-state-changelog[1] at offset 0 of end 1 (watermark 0)"
)


def test_a_recovery_that_cannot_finish_is_an_error_saying_what_it_waits_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(stage_module, "RECOVERY_RETRY_FIRST_SECONDS", 0.01)

    async def go() -> None:
        th = Theatre()
        st = th.stage
        st.owned_partitions = lambda: {0}  # type: ignore[method-assign]
        calls: list[int] = []

        async def stuck(partitions: Any) -> dict[int, Recovered]:
            calls.append(len(calls))
            if len(calls) <= 2:
                raise TimeoutError(WAITING)
            return {0: recovered(th.producer.sent.get(CHANGELOG, []))}

        st.store.recover = stuck  # type: ignore[method-assign]
        st.revoked()
        await asyncio.wait([asyncio.ensure_future(st._on_recovered())])
        await asyncio.wait_for(st.ready.wait(), timeout=5)
        assert len(calls) == 3

        # partitions moved while a recovery was failing: the error is said all the same
        async def moved(partitions: Any) -> dict[int, Recovered]:
            st.revoked()
            raise TimeoutError(WAITING)

        st.store.recover = moved  # type: ignore[method-assign]
        await st._on_recovered()

    with caplog.at_level(logging.INFO, logger=stage_module.__name__):
        asyncio.run(go())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3, caplog.text
    for r in errors:
        assert "recovering the state failed" in r.getMessage()
        assert f"TimeoutError: {WAITING}" in r.getMessage()
    assert "(attempt 1)" in errors[0].getMessage()
    assert "(attempt 2)" in errors[1].getMessage()
    assert "until the recovery of its new assignment" in errors[2].getMessage()
    assert "recovered the state at attempt 3" in caplog.text
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.msg]
