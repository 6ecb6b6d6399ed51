"""The pure counting core: de-duplication, event-time buckets, exact windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.tallies.counted import Counted
from streams.tallies.ledger import decode_entry, encode_entry, entry_key, entry_partition
from streams.tallies.state import PartitionTally, merge_rows, query
from streams.tallies.windows import QueryError

AS_OF = datetime(2021, 5, 12, 10, 37, 15, tzinfo=UTC).timestamp()


def c(
    key: str,
    ago: float,
    zone: str = "shusha",
    party: str = "az",
    cat: str = "small_arms_fire",
    killed: int = 0,
    wounded: int = 0,
) -> Counted:
    return Counted(key, AS_OF - ago, zone, party, cat, killed, wounded)


def test_duplicate_key_is_counted_once() -> None:
    part = PartitionTally()
    assert part.add(c("s\x1f1", 60))
    assert not part.add(c("s\x1f1", 60))
    assert not part.add(c("s\x1f1", 3600 * 30, zone="aghdam"))  # a corrected re-send too
    rows = query([part], window="30d", by="zone", as_of=AS_OF)
    assert rows == [{"zone": "shusha", "incidents": 1, "reports": 1, "killed": 0, "wounded": 0}]


def test_window_edges_are_exact_to_the_second() -> None:
    part = PartitionTally()
    part.add(c("a", 0))  # exactly at as_of: inside (window is (as_of - w, as_of])
    part.add(c("b", 3600))  # exactly one hour before: outside the 1h window
    part.add(c("c", 3599))
    part.add(c("d", -1))  # after as_of: outside
    rows = query([part], window="1h", by="zone", as_of=AS_OF)
    assert rows[0]["incidents"] == 2
    rows = query([part], window="24h", by="zone", as_of=AS_OF)
    assert rows[0]["incidents"] == 3


def test_full_buckets_and_edge_buckets_agree_with_a_scan() -> None:
    import random

    rng = random.Random(7)
    part = PartitionTally()
    reports = []
    for i in range(3000):
        r = c(
            f"k{i}",
            rng.uniform(-7200, 40 * 86400),
            zone=rng.choice(["a", "b", "c"]),
            party=rng.choice(["az", "am"]),
            killed=rng.choice([0, 0, 1]),
            wounded=rng.choice([0, 2]),
        )
        part.add(r)
        reports.append(r)
    for window, secs in (("1h", 3600), ("24h", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400)):
        for as_of in (AS_OF, AS_OF - 12345.5, AS_OF - 5 * 86400):
            expected: dict[tuple[str, str], list[int]] = {}
            for r in reports:
                if as_of - secs < r.occurred <= as_of:
                    t = expected.setdefault((r.zone, r.party), [0, 0, 0, 0])
                    t[0] += 1
                    t[1] += 1
                    t[2] += r.killed
                    t[3] += r.wounded
            rows = query([part], window=window, by="zone,party", as_of=as_of)
            got = {
                (str(x["zone"]), str(x["party"])): [
                    x["incidents"],
                    x["reports"],
                    x["killed"],
                    x["wounded"],
                ]
                for x in rows
            }
            assert got == expected, (window, as_of)


def test_late_report_lands_in_its_event_time_bucket() -> None:
    part = PartitionTally()
    part.add(c("late", 3 * 86400))  # arrived now, happened three days ago
    assert query([part], window="24h", by="zone", as_of=AS_OF) == []
    assert query([part], window="7d", by="zone", as_of=AS_OF)[0]["incidents"] == 1
    three_days_ago = AS_OF - 3 * 86400 + 60
    assert query([part], window="1h", by="zone", as_of=three_days_ago)[0]["incidents"] == 1


def test_groupings_and_casualties() -> None:
    part = PartitionTally()
    part.add(c("1", 10, zone="z1", party="az", cat="drone_strike", killed=2, wounded=1))
    part.add(c("2", 20, zone="z1", party="am", cat="drone_strike", wounded=3))
    part.add(c("3", 30, zone="z2", party="am", cat="mine_incident"))
    by_party = query([part], window="1h", by="party", as_of=AS_OF)
    assert by_party == [
        {"party": "am", "incidents": 2, "reports": 2, "killed": 0, "wounded": 3},
        {"party": "az", "incidents": 1, "reports": 1, "killed": 2, "wounded": 1},
    ]
    by_cat = query([part], window="1h", by="category", as_of=AS_OF)
    assert [r["category"] for r in by_cat] == ["drone_strike", "mine_incident"]
    assert len(query([part], window="1h", by="zone,party", as_of=AS_OF)) == 3


def test_partitions_sum_and_merge_rows() -> None:
    p0, p1 = PartitionTally(), PartitionTally()
    p0.add(c("x", 10))
    p1.add(c("y", 10))
    together = query([p0, p1], window="1h", by="zone", as_of=AS_OF)
    merged = merge_rows(
        [
            query([p0], window="1h", by="zone", as_of=AS_OF),
            query([p1], window="1h", by="zone", as_of=AS_OF),
        ],
        ("zone",),
    )
    assert together == merged
    assert together[0]["incidents"] == 2


def test_forget_before_drops_old_reports_and_their_keys() -> None:
    part = PartitionTally()
    part.add(c("old", 61 * 86400))
    part.add(c("new", 10))
    assert part.forget_before(AS_OF - 60 * 86400) == 1
    assert len(part) == 1
    assert part.is_new("old")


def test_unknown_window_or_grouping_is_a_clear_error() -> None:
    with pytest.raises(QueryError, match="unknown window"):
        query([], window="2h", by="zone", as_of=AS_OF)
    with pytest.raises(QueryError, match="unknown grouping"):
        query([], window="1h", by="source", as_of=AS_OF)


def test_ledger_entry_round_trip() -> None:
    batch = [c("s\x1f1", 10, killed=1), c("s\x1f2", 20)]
    assert decode_entry(encode_entry(batch)) == batch
    key = entry_key(3, 12345)
    assert entry_partition(key) == 3
    assert entry_key(3, 9) < entry_key(3, 10) < entry_key(3, 10, 1)  # keys sort in offset order


def test_large_batches_are_split_into_bounded_entries() -> None:
    from streams.tallies.ledger import ENTRY_SIZE, chunks

    batch = [c(f"k{i}", 10) for i in range(ENTRY_SIZE * 2 + 5)]
    parts = chunks(batch)
    assert [len(p) for p in parts] == [ENTRY_SIZE, ENTRY_SIZE, 5]
    assert [r for p in parts for r in p] == batch
    assert max(len(encode_entry(p)) for p in parts) < 512 * 1024


def test_entries_of_maximal_non_latin_keys_stay_under_the_message_limit() -> None:
    from streams.tallies.ledger import ENTRY_BYTES, chunks, entry_offset

    # source of 64 and report_id of 128 astral-plane characters: 12 bytes each as JSON
    key = "𠀀" * 64 + "\x1f" + "𠀁" * 128
    batch = [c(f"{key}{i}", 10) for i in range(3000)]
    parts = chunks(batch)
    assert [r for p in parts for r in p] == batch
    assert all(len(encode_entry(p)) <= ENTRY_BYTES for p in parts)
    assert entry_offset(entry_key(2, 41, 3)) == 41
    assert entry_offset("not-an-entry") is None
