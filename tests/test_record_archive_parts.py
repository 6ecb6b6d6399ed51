"""A closed day larger than `archive.UNIT_PART_BYTES` is written as several parts, each one
changelog record of whole incidents (streams/record/archive.py, `encode_parts`). A unit
costs about 104 bytes a report, so a day of 10,000 reports was one record past Apache
Kafka's default `message.max.bytes` (1,048,588): the broker refused it, the sweep only
logged that, and the day came back open at every restart. The parts of a day are one unit
to the book: it closes, restores, reopens and closes again whole, and a write torn between
its parts and their deletes, or landing only some parts, ends as one that was not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.record.archive import (
    DAY,
    UNIT_PART_BYTES,
    UNIT_PREFIX,
    Archive,
    Group,
    decode_body,
    decode_unit_key,
    encode_parts,
    encode_unit,
    read_head,
    unit_key,
)
from streams.record.book import Change, IncidentBook
from streams.record.incident import IncidentFields, derive
from streams.record.model import ReportVersion, identity_key
from tests.published import cells
from tests.record_helpers import MIN, rv
from tests.test_record_torn_reopen import (
    BASE,
    LATER,
    Log,
    Worker,
    lands,
    parts_held,
    parts_written,
    within,
)

#: From BASE to the next UTC midnight (the days closed are UTC's): the day it starts is `D`.
MIDNIGHT = (BASE // DAY + 1) * DAY - BASE
D = int((BASE + MIDNIGHT) // DAY)
#: A part of at most this many bytes holds three or four of the incidents below.
CAP = 600


def everything(book: IncidentBook) -> dict[str, tuple[int, IncidentFields]]:
    """Every incident the book holds, open or closed: id -> (version, fields)."""
    out = {r.incident_id: (r.version, r.fields) for r in book.incidents()}
    for r in book.closed_incidents():
        assert r.incident_id not in out
        out[r.incident_id] = (r.version, r.fields)
    return out


def incident(i: int, size: int = 2, hour: float = 1.0, revision: int = 0) -> list[ReportVersion]:
    """The reports of the `i`th incident of day D: `size` of them, minutes apart at one place
    (incidents 40 km apart, 20 minutes after each other from `hour`)."""
    t = MIDNIGHT + hour * 3600 + i * 20 * MIN
    return [
        rv(f"op-{k}", f"r{i}", t=t + k * MIN, km=40.0 * i + 0.1 * k, revision=revision)
        for k in range(size)
    ]


def units(change: Change) -> list[tuple[bytes, bytes | None]]:
    return [(k, v) for k, v in change.entries + change.later if k.startswith(UNIT_PREFIX)]


def feed_both(closing: Worker, plain: Worker, reports: list[ReportVersion]) -> None:
    for r in reports:
        closing.commit(closing.book.upsert(r))
        plain.commit(plain.book.upsert(r))


def same(closing: Worker, plain: Worker) -> None:
    """The closing worker holds what one that never closes does: incidents (ids, versions,
    fields), tally cells, counts; and its changelog holds no part it does not."""
    assert everything(closing.book) == everything(plain.book)
    assert cells(closing.tally) == cells(plain.tally)
    assert closing.counts() == plain.counts()
    assert parts_written(closing.log) == parts_held(closing.book)


def test_part_keys() -> None:
    # Part 0's key is the key of a unit of one record, as every unit written before parts.
    assert unit_key("shusha", 19_676) == b"ushusha\x0019676"
    assert unit_key("shusha", 19_676, 0) == b"ushusha\x0019676"
    assert unit_key("shusha", 19_676, 3) == b"ushusha\x0019676\x003"
    for zone, day, part in (("shusha", 19_676, 0), ("a", -3, 0), ("a", -3, 12), ("z", 0, 1)):
        assert decode_unit_key(unit_key(zone, day, part)) == (zone, day, part)
    keys = {unit_key(z, d, p) for z in ("a", "ab") for d in (-1, 1, 11) for p in (0, 1, 11)}
    assert len(keys) == 18


def test_a_unit_within_the_cap_is_one_part_as_before() -> None:
    groups: list[Group] = [(incident(i), {}) for i in range(5)]
    fields = [derive(m) for m, _ in groups]
    ((n, value),) = encode_parts(groups, fields, CAP * 10)
    assert (n, value) == (5, encode_unit(groups, fields))


@pytest.mark.parametrize("keep", [0, 1, 4])
def test_parts_hold_whole_incidents_each_within_the_cap(keep: int) -> None:
    groups = [(incident(i, size=1 + i % 3), {f"x{i}": 2}) for i in range(40)]
    fields = [derive(m) for m, _ in groups]
    parts = encode_parts(groups, fields, CAP, keep)
    assert len(parts) > 5
    assert parts[0][0] >= keep  # the kept incidents together in the first
    # each part within the cap, but a first of the kept incidents alone, over it
    assert len(parts[0][1]) <= CAP or parts[0][0] == keep
    assert all(len(value) <= CAP for _, value in parts[1:])
    assert sum(n for n, _ in parts) == len(groups)
    assert [g for _, value in parts for g in decode_body(read_head(value).body)] == groups


def test_a_day_over_the_cap_closes_in_parts_each_under_it() -> None:
    """At the real cap: a busy day (6,000 reports of a sensor, each an incident of its own:
    a crowded cell) closes as parts each under 512 KiB, and a recovery holds it closed, as a
    book that never closed holds it."""
    closing, plain = Worker(Log()), Worker(Log())
    feed_both(
        closing,
        plain,
        [
            rv("sensor-7", f"a-{i:05d}", t=MIDNIGHT + i * 14.0, km=i % 50 * 0.01)
            for i in range(6000)
        ],
    )
    change = closing.book.sweep(LATER)
    closing.commit(change)
    written = units(change)
    assert len(written) >= 2
    assert [k for k, _ in written] == [unit_key("shusha", D, p) for p in range(len(written))]
    assert written[0][0] == b"ushusha\x00" + str(D).encode()  # the key of before
    assert all(v is not None and len(v) <= UNIT_PART_BYTES for _, v in written)
    keys = [k for _, v in written for k in read_head(v or b"").member_keys]
    assert sorted(keys) == sorted(identity_key(*r.ident) for r in plain.book.reports())
    closing.restart()
    assert len(closing.book) == 0 and closing.book.archive.reports == 6000
    assert closing.book.archive.parts("shusha", D) == len(written)
    same(closing, plain)


def closed_in_parts(n: int = 12) -> tuple[Worker, Worker]:
    """Day D of `n` incidents of two reports, closed in parts and recovered; and a worker
    fed the same that never closes."""
    closing, plain = Worker(Log(), CAP), Worker(Log(), CAP)
    feed_both(closing, plain, [r for i in range(n) for r in incident(i)])
    closing.commit(closing.book.sweep(LATER))
    closing.restart()
    assert closing.book.archive.parts("shusha", D) >= 3
    return closing, plain


def test_a_day_of_parts_restores_closed() -> None:
    closing, plain = closed_in_parts()
    assert len(closing.book) == 0 and closing.book.archive.reports == 24
    assert parts_held(closing.book) == {
        ("shusha", D, p) for p in range(len(parts_held(closing.book)))
    }
    same(closing, plain)


def test_a_late_report_reopens_every_part_of_its_day() -> None:
    closing, plain = closed_in_parts()
    n = closing.book.archive.parts("shusha", D)
    late = rv("patrol", "late", t=MIDNIGHT + 3600 + 5 * 20 * MIN + 30, km=40.0 * 5 + 0.05)
    change = closing.book.upsert(late)
    assert [m[0] for m in change.moves] == ["reopen"] * 12
    assert [k for k, v in change.later if v is None and k.startswith(UNIT_PREFIX)] == [
        unit_key("shusha", D, p) for p in range(n)
    ]
    closing.commit(change)
    plain.commit(plain.book.upsert(late))
    assert not closing.book.archive and len(closing.book) == 25
    same(closing, plain)
    closing.restart()
    assert not parts_written(closing.log) and len(closing.book) == 25
    same(closing, plain)


@pytest.mark.parametrize("torn", [False, True], ids=["whole", "reopen torn"])
def test_a_reclose_with_fewer_parts_leaves_no_stale_part(torn: bool) -> None:
    """Reopened, most of its reports withdrawn, closed again: one part, and none of the
    parts of before left on the changelog (to come back closed at a restart, counted
    twice); the reopen's write torn before it deleted them alike (the recovery does)."""
    closing, plain = closed_in_parts()
    assert closing.book.archive.parts("shusha", D) > 1
    late = rv("patrol", "late", t=MIDNIGHT + 3600 + 30, km=0.05)
    closing.commit(closing.book.upsert(late), torn=torn)
    plain.commit(plain.book.upsert(late))
    if torn:
        closing.restart()
    for i in range(2, 12):
        for k in range(2):
            closing.commit(closing.book.remove(f"op-{k}", f"r{i}", 1))
            plain.commit(plain.book.remove(f"op-{k}", f"r{i}", 1))
    change = closing.book.sweep(LATER)
    assert [k for k, _ in units(change)] == [unit_key("shusha", D)]
    closing.commit(change)
    closing.restart()
    assert parts_written(closing.log) == {("shusha", D, 0)}
    assert closing.book.archive.reports == 5 and len(closing.book) == 0
    same(closing, plain)


def test_a_reclose_leaves_each_incident_in_its_part() -> None:
    """A day closed while an incident across its midnight was not yet closable: that one
    closes later into the day's unit, joining its last part or after it. The parts before
    are not written again (a part is only ever written again with more incidents: a close
    landing in part loses none)."""
    closing, plain = Worker(Log(), CAP), Worker(Log(), CAP)
    reports = [r for i in range(12) for r in incident(i)]
    # Across the next midnight: 23:59 and 00:06 of the day after.
    across = [
        rv("op-0", "late", t=MIDNIGHT + DAY - MIN),
        rv("op-1", "late", t=MIDNIGHT + DAY + 6 * MIN, km=0.1),
    ]
    feed_both(closing, plain, reports + across)
    first = closing.book.sweep(BASE + MIDNIGHT + DAY + 4 * MIN)  # the last report after it
    closing.commit(first)
    before = {k: v for k, v in units(first) if v is not None}
    n = len(before)
    assert n >= 3 and len(closing.book) == 2
    second = closing.book.sweep(LATER)
    closing.commit(second)
    rewritten = [decode_unit_key(k)[2] for k, _ in units(second)]
    assert rewritten and rewritten[0] >= n - 1  # the last part, or parts after it
    assert rewritten == list(range(rewritten[0], rewritten[0] + len(rewritten)))
    for part in range(n - 1):  # the parts before hold what they held
        assert (
            closing.book.archive._parts(("shusha", D))[part]
            == read_head(before[unit_key("shusha", D, part)]).body
        )
    assert closing.book.archive.reports == 26 and len(closing.book) == 0
    same(closing, plain)
    closing.restart()
    same(closing, plain)


def test_a_unit_with_a_part_missing_is_held_and_taken_whole() -> None:
    """Parts 0 and 2 landed, 1 did not (its incidents are open): the unit spans three part
    numbers (a reopen deletes the three keys), the one missing holding nothing; its last
    part is the one a re-close writes again with more."""
    groups: list[Group] = [(incident(i), {}) for i in range(3)]
    heads = [read_head(encode_unit([g], [derive(g[0])])) for g in groups]
    archive = Archive()
    archive.add("shusha", D, heads[2], part=2, bulk=True)
    archive.add("shusha", D, heads[0], part=0, bulk=True)
    archive.seal()
    assert archive.parts("shusha", D) == 3 and archive.reports == 4 and len(archive) == 1
    assert archive.peek("shusha", D) == [groups[0], groups[2]]
    assert archive.unit_of_report(identity_key("op-1", "r2")) == ("shusha", D)
    with pytest.raises(ValueError, match="held already"):
        archive.add("shusha", D, heads[0], part=0)
    assert archive.take_last("shusha", D) == (2, [groups[2]])
    assert archive.parts("shusha", D) == 1 and archive.reports == 2
    archive.add("shusha", D, heads[1], part=1)
    assert archive.take("shusha", D) == [groups[0], groups[1]]
    assert not archive and not archive.days and archive.reports == 0


# A day of incidents (two to four of them to a part), some across its end and left open by
# the first sweep; then closed again, reopened by a late report, emptied in part and closed
# again. Each write may land in part or whole, its deletes whole, in part or not at all,
# and a restart may follow it (a crash); a sweep's failed write is only logged (no
# restart: the worker goes on with its memory closed). Ends as a worker that never tore.
landing = st.sampled_from(["whole", "whole", "deletes lost", "deletes in part", "in part"])
write = st.tuples(landing, st.integers(0, 2**16 - 1), st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=2, max_size=14),  # the day's incidents, by size
    st.lists(st.booleans(), min_size=14, max_size=14),  # which are across its end
    st.lists(write, min_size=5, max_size=5),
    st.integers(0, 13),  # the incident a late report joins
    st.integers(0, 14),  # how many incidents are withdrawn after
)
def test_a_day_of_parts_torn_anywhere_ends_as_one_never_torn(
    sizes: list[int],
    across: list[bool],
    writes: list[tuple[str, int, bool]],
    joined: int,
    withdrawn: int,
) -> None:
    torn, whole, plain = Worker(Log(), CAP), Worker(Log(), CAP), Worker(Log(), CAP)
    reports: list[ReportVersion] = []
    firsts: list[ReportVersion] = []  # of each incident
    for i, size in enumerate(sizes):
        if across[i]:  # 23:55, and 6 minutes after midnight
            members = [
                rv(f"op-{k}", f"r{i}", t=MIDNIGHT + DAY - 5 * MIN + k * 11 * MIN, km=40.0 * i)
                for k in range(max(size, 2))
            ]
        else:
            members = incident(i, size)
        firsts.append(members[0])
        reports += members
    for r in reports:
        for w in (torn, whole, plain):
            w.commit(w.book.upsert(r))
    cutoff = BASE + MIDNIGHT + DAY + 4 * MIN
    j = joined % len(sizes)  # a minute after its first report, beside it
    late = rv("patrol", "late", t=firsts[j].occurred - BASE + 30, km=40.0 * j + 0.05)
    steps: list[Callable[[IncidentBook], Change]] = [
        lambda b: b.sweep(cutoff),
        lambda b: b.sweep(LATER),
        lambda b: b.upsert(late),
        lambda b: _withdraw(b, reports, withdrawn),
        lambda b: b.sweep(LATER),
    ]
    for step, (how, mask, restart) in zip(steps, writes, strict=True):
        sweep = step is steps[0] or step is steps[1] or step is steps[4]
        whole.commit(step(whole.book))
        change = step(torn.book)
        if how == "in part" and sweep:
            torn.commit(change, landed=lands(mask))
            continue  # (logged; the worker goes on)
        if how == "deletes lost":
            torn.commit(change, torn=True)
        elif how == "deletes in part":
            torn.commit(change, later_landed=lands(mask))
        else:
            torn.commit(change)
        if how != "whole" or restart:
            torn.restart()
    plain.commit(plain.book.upsert(late))
    plain.commit(_withdraw(plain.book, reports, withdrawn))
    for w in (torn, whole):
        w.restart()  # what the changelog holds, closed where it is
        w.commit(w.book.sweep(LATER))
        w.restart()
        assert len(w.book) == 0
        same(w, plain)
        assert within(w.log, CAP)


def _withdraw(book: IncidentBook, reports: list[ReportVersion], incidents: int) -> Change:
    change = Change()
    for r in reports:
        if int(r.report_id[1:]) < incidents:
            change.extend(book.remove(r.source, r.report_id, 1))
    return change
