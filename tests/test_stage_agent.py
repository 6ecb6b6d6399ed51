"""A stage's Faust agent and what it is delivered: a record without a value, a batch whose
gap cannot be read. The agent raised and ended (Faust had acknowledged the batch already),
so the stage took no more input until the worker restarted. On in-memory fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from schemas.validation import Rejection, validate_report
from streams.intake import classify_report
from streams.pipeline import stage_input
from streams.pipeline.packs import unpack
from tests.test_stages import CLASSIFIER, NOW, Harness, report

pytestmark = pytest.mark.timeout(30)


def pack(*ids: str) -> bytes:
    """The identity stage's input: the documents of reports `ids`, as ingest packs them."""
    docs = []
    for rid in ids:
        valid = validate_report(json.dumps(report(rid)).encode(), now=NOW)
        assert not isinstance(valid, Rejection), valid
        classified = classify_report(valid, NOW, CLASSIFIER)
        assert not isinstance(classified, Rejection), classified
        docs.append(classified[1])
    return b"\n".join(docs)


class Stream:
    """What the agent iterates: Faust's `take_events`, yielding `batches` of
    (partition, offset, value)."""

    def __init__(self, batches: Sequence[Sequence[tuple[int, int, bytes | None]]]) -> None:
        self.batches = batches

    async def take_events(self, n: int, within: float) -> AsyncIterator[list[Any]]:
        for batch in self.batches:
            yield [
                SimpleNamespace(message=SimpleNamespace(partition=p, offset=o), value=v)
                for p, o, v in batch
            ]


def ready(h: Harness) -> None:
    h.identity.input.reset([0], {})
    h.identity.ready.set()


def serve(monkeypatch: pytest.MonkeyPatch, topic: dict[int, bytes], reachable: list[bool]) -> None:
    """The stage's reads of its input topic (gaps, tails) answered from `topic`, partition
    0, or timing out while `reachable[0]` is false."""

    async def read_range(
        bootstrap: str, ranges: Any, reached: dict[Any, int] | None = None, **_: Any
    ) -> dict[TopicPartition, list[tuple[int, bytes]]]:
        if not reachable[0]:
            raise TimeoutError("offsets not read within 60.0s")
        out = {}
        for tp, start, end in ranges:
            out[tp] = [(o, topic[o]) for o in range(start, min(end, len(topic)))]
            if reached is not None:
                reached[tp] = min(end, len(topic))
        return out

    monkeypatch.setattr(stage_input, "read_range", read_range)


def forwarded(h: Harness) -> list[str]:
    """The report ids the identity stage passed on to the zone stage (an upsert's `v`:
    source, report id, ...)."""
    h._forwarded()
    return [json.loads(doc)["v"][1] for _, p in h.pending for doc in unpack(p)]


async def test_a_tombstone_is_dead_lettered_and_the_agent_goes_on() -> None:
    h = Harness()
    ready(h)
    await h.identity._agent(Stream([[(0, 0, pack("a")), (0, 1, None)], [(0, 2, pack("b"))]]))
    assert [(reason, r[:3]) for reason, r in h.dead] == [("invalid_value", (0, 1, b""))]
    assert forwarded(h) == ["a", "b"]
    assert h.identity.input.progress.applied == {0: 2}


async def test_a_batch_whose_gap_cannot_be_read_is_left_to_the_tail_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The records skipped before a batch are read first; that read timing out (the broker
    away) raised out of the agent. Now the batch is left, and what it held is read and
    applied later, each record once."""
    topic = {0: pack("a"), 1: pack("b"), 2: pack("c"), 3: pack("d"), 4: pack("e")}
    reachable = [False]

    serve(monkeypatch, topic, reachable)
    h = Harness()
    ready(h)
    # offsets 0 and 1 never delivered (skipped in a rebalance): each batch has a gap first
    await h.identity._agent(Stream([[(0, 2, topic[2])], [(0, 3, topic[3])]]))
    assert h.identity.input.progress.applied == {0: -1}  # nothing applied, nothing lost
    reachable[0] = True
    await h.identity._agent(Stream([[(0, 4, topic[4])]]))  # its gap: 0..3, read and applied
    assert forwarded(h) == ["a", "b", "c", "d", "e"]
    assert h.identity.input.progress.applied == {0: 4}
    await h.identity.input.check_tail({0: 5})
    await h.identity.input.check_tail({0: 5})  # nothing behind: nothing applied twice
    assert forwarded(h) == ["a", "b", "c", "d", "e"]


async def test_a_tail_left_by_a_failed_batch_is_read_by_the_tail_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = {0: pack("a"), 1: pack("b"), 2: pack("c")}
    reachable = [False]

    serve(monkeypatch, topic, reachable)
    h = Harness()
    ready(h)
    await h.identity._agent(Stream([[(0, 2, topic[2])]]))  # the last batch: no next one
    reachable[0] = True
    await h.identity.input.check_tail({0: 3})  # notes where the partition stands
    await h.identity.input.check_tail({0: 3})  # no progress since: reads the tail
    assert forwarded(h) == ["a", "b", "c"]
    assert h.identity.input.progress.applied == {0: 2}


async def test_a_batch_delivered_while_not_ready_is_left_not_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A revoked stage (a rebalance, a pause) held its batch waiting to be ready again, and
    Faust's revocation waits for every event taken to be acknowledged: the agent now goes
    on, and the records are read again once the stage has recovered."""
    topic = {0: pack("a"), 1: pack("b"), 2: pack("c")}

    serve(monkeypatch, topic, [True])
    h = Harness()
    h.identity.input.reset([0], {})  # recovered, then revoked: not ready
    await asyncio.wait_for(h.identity._agent(Stream([[(0, 0, topic[0]), (0, 1, topic[1])]])), 1)
    assert forwarded(h) == []  # not applied by a stage that may no longer own it
    h.identity.ready.set()  # recovered again
    await h.identity._agent(Stream([[(0, 2, topic[2])]]))  # its gap 0..1 is read first
    assert forwarded(h) == ["a", "b", "c"]
