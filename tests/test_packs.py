"""Packs and the steps agents work through them in."""

from __future__ import annotations

import pytest

from streams.pipeline.packs import (
    PACK_BYTES,
    PACK_SIZE,
    STEP_RECORDS,
    packs,
    steps,
    unpack,
)

pytestmark = pytest.mark.timeout(30)


def test_packs_keep_equal_keys_together_and_hold_at_most_pack_size() -> None:
    records = [(f"k{i % 7}".encode(), f'{{"n": {i}}}'.encode()) for i in range(2000)]
    out = list(packs(records, [0, 1, 2, 3]))
    assert all(len(unpack(pack)) <= PACK_SIZE for _, pack in out)
    assert sorted(v for _, pack in out for v in unpack(pack)) == sorted(v for _, v in records)
    where = {v: p for p, pack in out for v in unpack(pack)}
    for key in {k for k, _ in records}:
        assert len({where[v] for k, v in records if k == key}) == 1


def test_packs_of_long_incidents_stay_under_the_message_limit() -> None:
    # 256 incidents with 4,000-character Cyrillic descriptions (~8 KB each) made a 2 MB
    # pack, which the producer refuses: the ingest stage retried that batch forever.
    records = [(b"k", b'{"d": "' + "Обстрел ".encode() * 500 + b'"}') for _ in range(600)]
    records.append((b"k", b"x" * (PACK_BYTES + 10)))  # larger than a pack: alone
    out = [pack for _, pack in packs(records, [0])]
    assert all(len(p) <= PACK_BYTES for p in out[:-1])
    assert out[-1] == records[-1][1]
    assert [v for pack in out for v in unpack(pack)] == [v for _, v in records]  # in order


def test_steps_bound_the_records_expanded_at_once_and_keep_order() -> None:
    full = b"\n".join([b"{}"] * PACK_SIZE)
    events = [full] * 150 + [b"{}"] * 5 + [full] * 3
    out = list(steps(events, lambda e: e))
    assert [e for step in out for e in step] == events  # every pack once, in order
    for step in out:
        assert sum(len(unpack(e)) for e in step) <= STEP_RECORDS
    assert len(out) == -(-sum(len(unpack(e)) for e in events) // STEP_RECORDS)
    assert list(steps([], lambda e: e)) == []


def test_packs_are_bounded_in_bytes_whatever_the_records_hold() -> None:
    from streams.pipeline.packs import PACK_BYTES

    # incidents with 4,000-character Cyrillic descriptions: ~8 KB each as UTF-8
    big = ("д" * 4000).encode()
    records = [(f"k{i}".encode(), big) for i in range(1200)]
    out = list(packs(records, [0, 1, 2, 3]))
    assert all(len(pack) <= PACK_BYTES for _, pack in out)
    assert sum(len(unpack(pack)) for _, pack in out) == len(records)
    # a record larger than a pack travels alone, never dropped
    huge = b"x" * (PACK_BYTES + 1)
    alone = list(packs([(b"a", b"1"), (b"a", huge), (b"a", b"2")], [0]))
    assert [unpack(pack) for _, pack in alone] == [[b"1"], [huge], [b"2"]]
