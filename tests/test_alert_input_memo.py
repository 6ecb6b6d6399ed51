"""The alert inputs the zone stage writes, read back by the alert stage without a parse:
the same inputs as parsing them, a miss parsed, bounded."""

from __future__ import annotations

import asyncio

import pytest

from schemas.alert_input import AlertInput, encode_alert_input, read_alert_input
from schemas.codes import Category, Party, Severity, Verification
from streams.pipeline.alert_input_memo import AlertInputMemo
from streams.pipeline.packs import unpack
from streams.pipeline.zone_stage import RETRACT_PREFIX
from tests.test_stages import Harness, report

pytestmark = pytest.mark.timeout(30)


def an_input(n: int) -> AlertInput:
    return AlertInput(
        f"inc-{n}",
        "shusha",
        1_700_000_000_000 + n,
        Category.SMALL_ARMS_FIRE,
        Severity.LOW,
        Verification.OBSERVED,
        Party.AZ,
        0,
        n,
        "am",
        False,
        None,
        "pkf-op-1",
    )


def test_a_held_input_is_read_once_without_a_parse_then_parsed() -> None:
    memo = AlertInputMemo()
    value = an_input(1)
    raw = encode_alert_input(value)
    memo.put(raw, value)
    assert memo.read(bytes(raw)) is value  # the bytes as read from the topic: equal, not same
    assert (memo.hits, memo.misses, len(memo)) == (1, 0, 0)
    again = memo.read(raw)  # a retried step reads it again: parsed
    assert again == value and again is not value
    assert (memo.hits, memo.misses) == (1, 1)
    with pytest.raises(ValueError, match="not an alert input"):
        memo.read(b'{"kind":"nothing"}')


def test_the_oldest_go_first_past_the_limit() -> None:
    memo = AlertInputMemo(limit=2)
    raws = [encode_alert_input(an_input(n)) for n in range(3)]
    for n, raw in enumerate(raws):
        memo.put(raw, an_input(n))
    assert len(memo) == 2
    assert [memo.read(raw) for raw in raws] == [an_input(n) for n in range(3)]
    assert (memo.hits, memo.misses) == (2, 1)


def test_what_the_zone_stage_writes_reads_back_as_parsing_it_does() -> None:
    memo = AlertInputMemo()

    async def run() -> Harness:
        h = Harness()
        h.zone.alert_inputs = memo
        await h.send(
            report("op", casualties={"killed": 2}),
            report("az-1", source="az-mod", source_type="party_statement", claimant="az"),
            report("am-1", source="am-mod", source_type="party_statement", claimant="am"),
        )
        await h.send(report("op", revision=1, casualties={"killed": 3}))
        return h

    h = asyncio.run(run())
    heard = [
        raw
        for _, _, pack in h.producer.sent[h.settings.zone_packs_topic]
        for raw in unpack(pack or b"")
        if not raw.startswith(RETRACT_PREFIX)
    ]
    assert len(heard) >= 2 and len(memo) == len(set(heard))
    assert [memo.read(raw) for raw in heard] == [read_alert_input(raw) for raw in heard]
    assert memo.misses == len(heard) - len(set(heard)) and len(memo) == 0
