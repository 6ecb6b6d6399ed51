"""The worker's broker probe: readiness and `ceasefire_broker_answering`
(`Monitor._probe_broker`, on a stand-in for the worker: no broker is needed to decide)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams import metrics
from streams.pipeline.app import BROKER_DOWN_AFTER, Monitor

pytestmark = pytest.mark.timeout(10)


def test_the_broker_is_down_after_three_unanswered_probes_and_up_at_the_next_answer() -> None:
    answers = [True, False, False, False, False, True]
    changes: list[int] = []

    async def reachable(timeout: float) -> bool:
        return answers.pop(0)

    worker = SimpleNamespace(producer=SimpleNamespace(reachable=reachable), broker_misses=0)
    worker.update_ready = lambda: changes.append(worker.broker_misses)
    seen = []
    for _ in range(6):
        asyncio.run(Monitor._probe_broker(worker))  # type: ignore[arg-type]
        seen.append(metrics.REGISTRY.get_sample_value("ceasefire_broker_answering"))
    assert BROKER_DOWN_AFTER == 3
    assert seen == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert changes == [3, 0]  # readiness re-read when it went down and when it came back
