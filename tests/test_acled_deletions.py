"""Events ACLED deleted between two exports (`streams/tools/acled_deletions.py`), and the
feed's refusals around it. The feed withdrawing them from a worker on a real broker:
`tests/test_backfill_acled.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.report import WithdrawnReport
from schemas.validation import validate_report
from streams.tools.acled_deletions import Deletions, PartialExport, deletions, withdrawal_lines
from tests.test_feed_exit import ACLED_HEADER, ACLED_ROW, error_lines, run


def export(path: Path, rows: list[tuple[str, str]]) -> str:
    lines = ["event_id_cnty,event_date,timestamp"] + [f"{e},{d},1700000000" for e, d in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


PREVIOUS = [
    ("AZE1", "2021-01-05"),
    ("ARM2", "2021-02-10"),
    ("AZE3", "2021-03-15"),
    ("ARM4", "2021-04-20"),
    ("AZE5", "2021-05-25"),
    ("GEO6", "2021-03-01"),  # a country the new export does not cover
    ("AZE7", "2020-12-01"),  # before the new export's first day
]


def test_events_absent_within_the_new_exports_dates_and_countries_are_deleted(
    tmp_path: Path,
) -> None:
    previous = export(tmp_path / "previous.csv", PREVIOUS)
    # AZE3 deleted; AZE1 and ARM4 kept (one of them in another date form); two new events
    new = export(
        tmp_path / "new.csv",
        [("AZE1", "5 January 2021"), ("ARM2", "2021-02-10"), ("ARM4", "2021-04-20"),
         ("AZE5", "2021-05-25"), ("ARM8", "2021-01-02"), ("AZE9", "2021-06-30")],
    )  # fmt: skip
    found = deletions(previous, new)
    assert found.ids == ["AZE3"]
    assert found.outside == 2  # GEO6 and AZE7: outside the slice, kept
    assert (str(found.first_day), str(found.last_day)) == ("2021-01-02", "2021-06-30")
    assert found.countries == ("ARM", "AZE")
    assert found.said("previous.csv", "new.csv") == (
        "1 event of previous.csv is absent from new.csv within its dates and countries "
        "(2021-01-02 to 2021-06-30, ARM, AZE); 2 more absent outside those kept"
    )


def test_a_row_of_the_new_export_whose_date_is_unreadable_still_holds_its_event(
    tmp_path: Path,
) -> None:
    previous = export(tmp_path / "previous.csv", PREVIOUS[:5])
    new = export(
        tmp_path / "new.csv",
        [("AZE1", "2021-01-05"), ("ARM2", "yesterday"), ("AZE3", "2021-03-15"),
         ("ARM4", "2021-04-20"), ("AZE5", "2021-05-25"), ("", "2021-05-25")],
    )  # fmt: skip
    assert deletions(previous, new).ids == []


def test_a_new_export_with_a_row_it_cannot_read_withdraws_nothing(tmp_path: Path) -> None:
    """A row not read (here: bytes that are not UTF-8, as in a legacy code page) may hold
    any event: its event would have been withdrawn as absent."""
    previous = export(tmp_path / "previous.csv", PREVIOUS[:5])
    new = tmp_path / "new.csv"
    new.write_bytes(
        Path(export(tmp_path / "rest.csv", PREVIOUS[:2] + PREVIOUS[3:5])).read_bytes()
        + b"AZE3,2021-03-15,1700000000,G\xf6yg\xf6l\n"
    )
    with pytest.raises(PartialExport, match=r"1 rows of .*new.csv could not be read \(line 6"):
        deletions(previous, str(new))


def test_a_new_export_with_under_half_of_the_previous_ones_events_is_refused(
    tmp_path: Path,
) -> None:
    previous = export(tmp_path / "previous.csv", PREVIOUS[:5])
    new = export(tmp_path / "new.csv", [("AZE1", "2021-01-05"), ("ARM4", "2021-05-25")])
    with pytest.raises(PartialExport, match=r"holds 2 of the 5 events .*partial export"):
        deletions(previous, new)
    empty = export(tmp_path / "empty.csv", [])
    with pytest.raises(PartialExport, match="no event with a readable event_date"):
        deletions(previous, empty)


def test_each_withdrawal_is_one_the_schema_takes_one_above_the_version_it_retracts() -> None:
    found = Deletions(ids=["AZE3", "ARM4"], revisions={"AZE3": 1_700_000_000, "ARM4": None})
    lines = withdrawal_lines(found, now=1_800_000_000)
    expected = [("AZE3", 1_700_000_001), ("ARM4", 1_800_000_000)]  # no number: the clock
    assert len(lines) == 2
    for line, (event_id, revision) in zip(lines, expected, strict=True):
        result = validate_report(line)
        assert isinstance(result, WithdrawnReport), result
        assert (result.source, result.report_id, result.revision) == ("acled", event_id, revision)


def revision_of(line: bytes) -> int:
    withdrawal = validate_report(line)
    assert isinstance(withdrawal, WithdrawnReport), withdrawal
    return withdrawal.revision


def stamped(path: Path, rows: list[tuple[str, str, str]]) -> str:
    lines = ["event_id_cnty,event_date,timestamp"] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_an_event_listed_twice_is_one_event_withdrawn_once_above_its_latest_row(
    tmp_path: Path,
) -> None:
    """ACLED exports hold duplicate rows: AZE3's two were two withdrawals, two events in
    the message and in the partial-export check."""
    previous = stamped(
        tmp_path / "previous.csv",
        [("AZE1", "2021-01-05", "1700000000"), ("AZE3", "2021-03-15", "1700000500"),
         ("AZE3", "2021-03-15", "1700000900.0"), ("AZE4", "2021-04-01", "1700000000"),
         ("AZE5", "2021-05-25", ""), ("AZE6", "2021-06-01", "1700000000")],
    )  # fmt: skip
    new = export(
        tmp_path / "new.csv",
        [("AZE1", "2021-01-05"), ("AZE4", "2021-04-01"), ("AZE6", "2021-06-01"),
         ("AZE9", "2021-06-30")],
    )  # fmt: skip
    found = deletions(previous, new)
    assert found.ids == ["AZE3", "AZE5"]
    assert found.revisions == {"AZE3": 1_700_000_900, "AZE5": 0}  # no timestamp: revision 0
    assert found.said("previous.csv", "new.csv").startswith("2 events of previous.csv")
    revisions = [revision_of(line) for line in withdrawal_lines(found, now=2**40)]
    assert revisions == [1_700_000_901, 1]


def test_an_event_acled_moved_to_another_slice_comes_back_when_that_slice_is_fed(
    tmp_path: Path,
) -> None:
    """AZE2's date corrected into the previous year (stamped 1650000000, before the feed
    ran) is absent from this year's export, so withdrawn; at the feed's clock the
    withdrawal outranked the corrected row for good, which came in the other slice's
    export as a stale revision: the event was lost."""
    previous = stamped(
        tmp_path / "previous.csv",
        [("AZE1", "2021-01-03", "1640000000"), ("AZE2", "2021-06-01", "1640000000"),
         ("AZE3", "2021-12-30", "1640000000")],
    )  # fmt: skip
    new = stamped(
        tmp_path / "new.csv",
        [("AZE1", "2021-01-03", "1640000000"), ("AZE3", "2021-12-30", "1640000000")],
    )
    found = deletions(previous, new)
    assert found.ids == ["AZE2"]
    [line] = withdrawal_lines(found, now=1_796_474_263)
    withdrawal = revision_of(line)
    moved = 1_650_000_000  # the corrected row, in the 2020 export
    assert 1_640_000_000 < withdrawal < moved  # it retracts 2021's version, not the moved one


def acled_file(path: Path, ids_and_dates: list[tuple[str, str]]) -> str:
    rows = (ACLED_ROW.format(id=e, date=d) for e, d in ids_and_dates)
    path.write_text(ACLED_HEADER + "".join(rows), encoding="utf-8")
    return str(path)


def test_feed_withdraws_the_deleted_events_after_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = acled_file(tmp_path / "previous.csv", PREVIOUS[:5])
    new = acled_file(tmp_path / "new.csv", [r for r in PREVIOUS[:5] if r[0] != "AZE3"])
    code, text, producer = run([new, "--format", "acled", "--withdraw-missing-from", previous],
                               monkeypatch)  # fmt: skip
    assert (code, error_lines(text)) == (0, []), text
    assert len(producer.sent) == 5  # the export's 4 rows, then the withdrawal
    withdrawal = validate_report(producer.sent[-1])
    assert isinstance(withdrawal, WithdrawnReport)
    assert (withdrawal.source, withdrawal.report_id) == ("acled", "AZE3")
    assert withdrawal.revision == 1637107201  # one above the row's ACLED timestamp
    said = " ".join(text.split())
    assert "1 event of previous.csv is absent from new.csv within its dates and countries" in said
    assert "withdrawing them (AZE3)" in said


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--format", "csv"], "use it with --format acled"),
        (["--format", "acled", "-"], "give it as a file"),
    ],
)
def test_feed_refuses_what_it_cannot_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], error: str
) -> None:
    previous = acled_file(tmp_path / "previous.csv", PREVIOUS[:5])
    new = args[2] if len(args) > 2 else acled_file(tmp_path / "new.csv", PREVIOUS[:5])
    code, text, producer = run([new, *args[:2], "--withdraw-missing-from", previous], monkeypatch)
    assert code == 1 and producer.sent == []
    [line] = error_lines(text)
    assert error in line


def test_feed_sends_nothing_when_the_new_export_looks_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = acled_file(tmp_path / "previous.csv", PREVIOUS[:5])
    new = acled_file(tmp_path / "new.csv", [("AZE1", "2021-01-05"), ("ARM4", "2021-05-25")])
    code, text, producer = run(
        [new, "--format", "acled", "--withdraw-missing-from", previous], monkeypatch
    )
    assert code == 1 and producer.sent == []
    [line] = error_lines(text)
    assert "more likely a partial export than 3 deletions; nothing withdrawn" in line
