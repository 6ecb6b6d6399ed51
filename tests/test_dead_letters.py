"""Dead letters of the internal topics: what is sent, and how loudly it is logged."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from streams.config import Settings
from streams.pipeline.dead_letters import InternalDeadLetters
from tests.fakes import FakeProducer

pytestmark = pytest.mark.timeout(30)


class Shared:
    """What `SharedProducer.started` gives: the fake."""

    def __init__(self) -> None:
        self.fake = FakeProducer()

    async def started(self) -> Any:
        return self.fake


def test_a_conflict_is_a_warning_and_junk_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """A revision conflict is the sender's data (a warning, answered on the DLQ); a record
    this monitor did not write to its internal topic is a fault to look into (an error).
    Both reach the dead-letter topic with their reason."""
    settings = Settings()
    shared = Shared()
    letters = InternalDeadLetters(settings, shared)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="streams.pipeline.dead_letters"):
        asyncio.run(letters("t", [(0, 5, b"{}", "revision 1 again")], "revision_conflict"))
        asyncio.run(letters("t", [(1, 7, b"junk", "not JSON")]))
    levels = [(r.levelno, "revision_conflict" in r.getMessage()) for r in caplog.records]
    assert levels == [(logging.WARNING, True), (logging.ERROR, False)]
    sent = [json.loads(v or b"") for _, _, v in shared.fake.sent[settings.dlq_topic]]
    assert [(d["reason"], d["source_partition"], d["source_offset"]) for d in sent] == [
        ("revision_conflict", 0, 5),
        ("invalid_value", 1, 7),
    ]
