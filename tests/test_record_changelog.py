"""The record's changelog: entries for what changed only, and batches folded for writing."""

from __future__ import annotations

import orjson
import pytest

from schemas.codes import LocationPrecision, SourceType, TimePrecision
from streams.record.changelog import (
    decode_detail,
    decode_tombstone,
    detail_row,
    encode_detail,
    encode_tombstone,
    from_detail_row,
)
from streams.record.model import Withdrawal, content_digest
from streams.record.record import Batch, Record
from streams.record.revisions import Outcome
from streams.tallies.state import IncidentTally
from tests.published import cells, feed
from tests.record_helpers import MIN, rv


def test_a_change_writes_entries_for_what_it_changed_only() -> None:
    record = Record()
    for i in range(300):  # 100 incidents of three reports, an hour apart
        record.apply(rv(f"op-{i % 3}", f"r{i}", t=(i // 3) * 3600 + (i % 3) * MIN))
    step = record.apply(rv("op-1", "r151", revision=1, t=50 * 3600 + MIN, killed=2))
    # The identity, the report, and the one incident's new version.
    assert step.outcome is Outcome.REVISED
    assert len(step.incidents) == 1
    assert sorted(k[:1] for k, _ in step.entries) == [b"d", b"k", b"v"]
    step = record.apply(Withdrawal("op-0", "r150", 1))
    # The incident is renamed after its next report: the old id's merged version has an
    # entry; the new id is at version 1, which needs none.
    assert sorted(k[:1] for k, _ in step.entries) == [b"d", b"k", b"v"]
    for v in (
        rv("op-1", "r151", revision=1, t=50 * 3600 + MIN, killed=2),
        Withdrawal("op-0", "r150", 0),
    ):
        assert record.apply(v).entries == []  # a duplicate, a stale withdrawal


def test_report_entries_round_trip() -> None:
    r = rv(
        "acled",
        "ARM1234",
        revision=1_700_000_000,
        source_type=SourceType.DATASET,
        claimant=None,
        perpetrator="nk",
        killed=4,
        time_precision=TimePrecision.WEEK,
        location_precision=LocationPrecision.REGION,
    )
    assert decode_detail(encode_detail(r)) == r
    assert decode_detail(encode_tombstone(17)) == 17
    assert decode_detail(encode_tombstone(17, "shusha")) == 17
    assert decode_tombstone(encode_tombstone(17, "lachin-corridor")) == (17, "lachin-corridor")
    assert decode_tombstone(encode_tombstone(17)) == (17, None)
    with pytest.raises(ValueError):
        decode_detail(b'[9,"x"]')


def test_detail_rows_of_format_2_keep_target_and_place_and_format_1_still_reads() -> None:
    named = rv("az-mod", "s1", claimant="az", target="az", place="Martuni")
    assert detail_row(named)[0] == 2
    back = decode_detail(encode_detail(named))
    assert back == named and (back.target, back.place) == ("az", "Martuni")
    assert decode_detail(encode_detail(rv("op1", "a"))) == rv("op1", "a")
    # A row as format 1 wrote it (changelogs and closed units hold them): no target, no
    # place, and the digest it was written with.
    old = rv("acled", "ARM1", perpetrator="nk", killed=2)
    row_1 = [1, *detail_row(old)[1:17]]
    assert len(row_1) == 17
    assert from_detail_row(row_1) == old
    assert decode_detail(orjson.dumps(row_1)) == old
    with pytest.raises(ValueError):
        from_detail_row([1, *detail_row(old)[1:]])  # format 1 with format 2's fields


def test_a_stated_time_of_day_is_written_as_format_3_and_only_then() -> None:
    timed = rv("acled", "ARM2", time_precision=TimePrecision.DAY, time_of_day=(-180, 360))
    row = detail_row(timed)
    assert row[0] == 3 and row[-1] == [-180, 360] and len(row) == 20
    back = decode_detail(encode_detail(timed))
    assert back == timed and back.time_of_day == (-180, 360)
    # every other report keeps format 2, which workers before format 3 read
    assert detail_row(rv("op1", "a"))[0] == 2
    for junk in ([-180], "x", [-180.5, 360], None):
        with pytest.raises(ValueError):
            from_detail_row([*row[:19], junk])
    with pytest.raises(ValueError):
        from_detail_row([2, *row[1:]])  # format 2 with format 3's fields


def test_civilian_casualties_are_written_as_format_4_and_only_then() -> None:
    for timed in (None, (-180, 360)):
        r = rv("op1", "a", civilian=True, time_of_day=timed, time_precision=TimePrecision.DAY)
        row = detail_row(r)
        assert row[0] == 4 and len(row) == 21 and row[-1] is True
        back = decode_detail(encode_detail(r))
        assert back == r and back.civilian and back.time_of_day == timed
    assert detail_row(rv("op1", "a"))[0] == 2  # workers before format 4 read the others
    with pytest.raises(ValueError):
        from_detail_row([*row[:20], False])  # a format-4 row is a civilian's
    assert rv("op1", "a", civilian=True).digest != rv("op1", "a").digest
    assert "civilian" not in rv("op1", "a")._content()


def test_a_report_naming_no_target_or_place_keeps_its_digest() -> None:
    """Digests are kept in identity state: adding the fields must not change old ones."""
    plain = rv("op1", "a")
    assert plain.digest == content_digest(plain._content())
    assert "target" not in plain._content() and "place" not in plain._content()
    assert rv("op1", "a", target="nk").digest != plain.digest
    assert rv("op1", "a", place="Shusha").digest != plain.digest
    assert "time_of_day" not in plain._content()
    assert rv("op1", "a", time_of_day=(60, 60)).digest != plain.digest


def test_a_batch_keeps_the_latest_of_everything() -> None:
    record = Record()
    batch = Batch()
    steps = [
        record.apply(rv("op-1", "a")),
        record.apply(rv("op-2", "b", t=MIN)),
        record.apply(rv("op-2", "b", t=MIN)),
        record.apply(rv("op-1", "a", revision=1, wounded=2)),
    ]
    for step in steps:
        batch.add(step)
    (incident,) = record.incidents()
    assert batch.incidents == {incident.incident_id: incident}
    assert incident.version == 3
    published = IncidentTally()
    feed(published, batch.incidents.values())
    assert cells(published) == record.tally()
    assert batch.outcomes == {Outcome.NEW: 2, Outcome.DUPLICATE: 1, Outcome.REVISED: 1}
    written = {k: v for s in steps for k, v in s.entries}
    assert batch.entries == written
    rebuilt = Record()
    rebuilt.restore(batch.entries.items())
    assert list(rebuilt.incidents()) == [incident]


def test_raw_names_are_written_as_format_5_and_only_then() -> None:
    names = ("Wagner mercenaries", None, "a stringer")
    for civilian in (False, True):
        for timed in (None, (-180, 360)):
            r = rv("op1", "a", civilian=civilian, time_of_day=timed, names_raw=names)
            row = detail_row(r)
            assert row[0] == 5 and len(row) == 22 and row[-1] == list(names)
            back = decode_detail(encode_detail(r))
            assert back == r and back.names_raw == names and back.civilian is civilian
    # every other report's row is of the formats workers before format 5 read
    assert detail_row(rv("op1", "a"))[0] == 2
    assert detail_row(rv("op1", "a", civilian=True))[0] == 4
    for junk in ("x", ["a", None], [1, None, None]):
        with pytest.raises(ValueError):
            from_detail_row([*row[:21], junk])
    with pytest.raises(ValueError):
        from_detail_row([*row[:20], None, list(names)])  # the civilian flag is a bool
